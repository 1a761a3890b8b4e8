"""The CLI's plain options are coerced without pydantic (``app.cli_coercion``, issue 20): every
value they accept, typer's own coercion accepts as the same value; what they refuse, they refuse
with click's error naming the option (exit 2); and the tree really uses them."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import typer
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from app import cli
from app.cli_coercion import PlainRuntimeParam, plain_type, use_plain_coercion

runner = CliRunner()


def _option(annotation: Any, **bounds: Any) -> tuple[TyperOption, typer.Context]:
    """A ``--value`` option of ``annotation`` on a one-command app (typer's own coercer, unset)."""
    app = typer.Typer()

    def command(value: Any = None) -> None:
        pass

    command.__annotations__ = {"value": Annotated[annotation, typer.Option(**bounds)], "return": None}
    app.command()(command)
    click_command = typer.main.get_command(app)
    option = next(p for p in click_command.params if p.name == "value")
    assert isinstance(option, TyperOption)
    return option, typer.Context(click_command)


def _coerce(coercer: Any, option: TyperOption, ctx: typer.Context, value: Any) -> tuple[bool, Any]:
    try:
        return True, coercer.coerce(value, param=option, ctx=ctx)
    except typer.BadParameter:
        return False, None


INTEGERS = ["0", "1", "7", " 42 ", "+5", "-3", "100", "10000", "10001", "abc", "", " ", "1.5", "1e3", "0x10",
            "1_000", "--1", "٣", 12, 0]
WORDS = ["true", "True", "TRUE", "t", "yes", "y", "on", "1", "false", "f", "no", "n", "off", "0", "", "maybe",
         "2", True, False]
TEXTS = ["", "plain", "  spaced  ", "RC-000001", "ünïcode", "x' OR '1'='1"]


@pytest.mark.parametrize(("annotation", "bounds", "values"), [
    (int, {}, INTEGERS),
    (int, {"min": 1, "max": 10_000}, INTEGERS),
    (int | None, {"min": 0}, INTEGERS),
    (bool, {}, WORDS),
    (str, {}, TEXTS),
    (str | None, {}, TEXTS),
], ids=["int", "int 1..10000", "int>=0 or None", "bool", "str", "str or None"])
def test_what_the_plain_coercer_accepts_typer_accepts_as_the_same_value(annotation: Any, bounds: dict[str, Any],
                                                                         values: list[Any]) -> None:
    option, ctx = _option(annotation, **bounds)
    plain = PlainRuntimeParam(parameter_info=option.type_descriptor.parameter_info,
                              annotation=option.type_descriptor.annotation)
    theirs = option.get_runtime_param()  # typer's, through pydantic
    accepted = 0
    for value in values:
        ours_ok, ours = _coerce(plain, option, ctx, value)
        their_ok, their_value = _coerce(theirs, option, ctx, value)
        if ours_ok:
            accepted += 1
            assert their_ok and ours == their_value and type(ours) is type(their_value), value
    assert accepted >= len(values) // 3  # the ordinary values pass (a coercer that refuses all would pass above)


@pytest.mark.parametrize(("args", "message"), [
    (["--limit", "0"], "Invalid value for '--limit': 0 is less than the minimum 1."),
    (["--limit", "10001"], "Invalid value for '--limit': 10001 is more than the maximum 10000."),
    (["--limit", "ten"], "Invalid value for '--limit': 'ten' is not a valid integer."),
    (["--offset", "-1"], "Invalid value for '--offset': -1 is less than the minimum 0."),
    (["--offset", "1.5"], "Invalid value for '--offset': '1.5' is not a valid integer."),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_refused_value_names_the_option_and_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, ["cases", "list", *args])
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_the_cli_tree_uses_the_plain_coercer_for_every_plain_parameter() -> None:
    """Every str/int/bool parameter and every --help of every command gets it; the others keep typer's."""
    tree = typer.main.get_command(cli.app)
    installed = use_plain_coercion(tree)
    assert installed > 100

    def walk(command: Any) -> list[Any]:
        helps = [command._help_option] if getattr(command, "_help_option", None) is not None else []
        return [*command.params, *helps, *(p for sub in getattr(command, "commands", {}).values() for p in walk(sub))]

    params = [p for p in walk(tree) if hasattr(p, "type_descriptor")]
    plain = [p for p in params if isinstance(p._runtime_param, PlainRuntimeParam)]
    assert len(plain) == installed
    for p in params:
        info = p.type_descriptor.parameter_info
        expected = plain_type(p.type_descriptor.annotation) is not None and info.parser is None and not info.clamp
        assert isinstance(p._runtime_param, PlainRuntimeParam) == expected, p.name
    assert use_plain_coercion(tree) == 0  # once set, left alone


@pytest.mark.parametrize(("annotation", "kind"), [
    (str, str), (int, int), (bool, bool), (str | None, str), (int | None, int),
    (float, None), (list[str], None), (str | int, None), (None, None),
])
def test_plain_types(annotation: Any, kind: type | None) -> None:
    assert plain_type(annotation) is kind
