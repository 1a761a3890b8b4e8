"""Mutations of recorded chain answers, for the "never guess" property tests.

A parser fed a mutated body (a field removed, a value of another type, an enum value nobody has
seen) may fail with a clear error, answer "try later", or report the transaction as ``unclear``;
what it must never do is report a success with a transfer the original answer did not have.
:func:`mutated_bodies` is a hypothesis strategy over such bodies; :func:`assert_no_new_credit`
is the property.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from chains.base import Observation, Transfer, TxStatus

__all__ = ["Path", "assert_no_new_credit", "mutate", "mutated_bodies", "paths", "transfer_key"]

Path = tuple[str | int, ...]

#: values that replace a field: other types, and enum-like strings no chain has sent
REPLACEMENTS: tuple[Any, ...] = (None, "", "UNKNOWN_VALUE_X", -1, 0, 2**70, 1.5, True, [], {}, "0x")


def paths(body: Any, prefix: Path = (), limit: int = 5000) -> Iterator[Path]:
    """Every path to a value in ``body`` (dict keys and list indexes), depth first."""
    count = 0
    stack: list[tuple[Path, Any]] = [(prefix, body)]
    while stack and count < limit:
        path, value = stack.pop()
        if path:
            count += 1
            yield path
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))


def mutate(body: Any, path: Path, how: str, replacement: Any = None) -> Any:
    """A deep copy of ``body`` with the value at ``path`` removed (``how="remove"``) or replaced."""
    out = copy.deepcopy(body)
    holder = out
    for step in path[:-1]:
        holder = holder[step]
    last = path[-1]
    if how == "remove":
        del holder[last]
    else:
        holder[last] = replacement
    return out


def mutated_bodies(body: Any) -> st.SearchStrategy[tuple[str, Any]]:
    """(description, mutated body) drawn from every path of ``body``."""
    every = list(paths(body))

    @st.composite
    def _one(draw: st.DrawFn) -> tuple[str, Any]:
        path = draw(st.sampled_from(every))
        if draw(st.booleans()):
            return f"remove {path}", mutate(body, path, "remove")
        value = draw(st.sampled_from(REPLACEMENTS))
        return f"set {path} = {value!r}", mutate(body, path, "set", value)

    return _one()


def transfer_key(t: Transfer) -> tuple[Any, ...]:
    return (t.kind, t.sender, t.recipient, t.amount, t.contract, t.memo)


def assert_no_new_credit(original: Observation | None, mutated: Observation, what: str) -> None:
    """``mutated`` (parsed from a mutation of the body ``original`` was parsed from) is not a
    success with a transfer that ``original`` did not have."""
    if mutated.status is not TxStatus.SUCCESS:
        return
    succeeded = original is not None and original.status is TxStatus.SUCCESS
    before = {transfer_key(t) for t in original.transfers} if original is not None and succeeded else set()
    new = [t for t in mutated.transfers if transfer_key(t) not in before]
    assert not new, f"{what}: a success with transfers the recorded answer does not have: {new}"
