"""The operator commands stay light (``tests/test_startup.py``'s rule): ``cases`` actions with
``--as``, ``refunds list`` with nothing waiting, ``refunds record``, ``operators``, ``audit anchor``
and ``audit verify`` load none of the chain libraries or the other front ends, each in a fresh
interpreter. (``refunds list`` imports web3 only when it builds an EVM transaction.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.test_startup import World, heavy, run_command
from tests.test_startup import world as world  # the module's fixture, reused here

COMMANDS = [
    (["refunds", "list", "--json"], 0, "[]"),
    (["refunds", "list"], 0, "0 approved refund(s)"),
    (["refunds", "record", "{reference}", "0x" + "ab" * 32, "--as", "nobody"], 1, ""),
    (["cases", "approve", "{reference}", "--as", "nobody"], 1, ""),
    (["cases", "reject", "{reference}", "--as", "nobody", "--reason-code", "other"], 1, ""),
    (["operators", "list", "--json"], 0, "[]"),
    # the head: the two cases' events, and one per failed sign-in of the commands before (issue 19)
    (["audit", "anchor", "--json"], 0, '"event_id": '),
    (["audit", "verify", "--json"], 0, '"ok": true'),
]


@pytest.mark.parametrize(("args", "exit_code", "expected"), COMMANDS, ids=[" ".join(a[:3]) for a, _, _ in COMMANDS])
def test_the_operator_commands_import_no_chain_library(
    world: World, tmp_path: Path, args: list[str], exit_code: int, expected: str
) -> None:
    env = {**world.env, "RECOVERY_OPERATOR_PASSWORD": "not the password at all",
           "RECOVERY_AUDIT_ANCHOR_FILE": str(world.database.parent / "anchors.jsonl")}
    isolated = dataclasses.replace(world, env=env)
    code, modules, stdout = run_command(isolated, tmp_path, [a.format(reference=world.reference) for a in args])
    assert (code or 0) == exit_code, stdout
    assert expected in stdout
    assert heavy(modules) == [], f"`recovery {' '.join(args)}` imported {heavy(modules)}"
