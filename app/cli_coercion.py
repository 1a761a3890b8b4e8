"""The CLI's plain ``str``, ``int`` and ``bool`` options and arguments, coerced without pydantic (issue 20).

Typer coerces every parameter's value through a pydantic ``TypeAdapter``: importing pydantic and
building the adapters is about a fifth of a read command's start-up (``recovery cases list``).
Most of our parameters are plain text, whole numbers or flags, which need no such machinery.
:func:`use_plain_coercion` gives each such parameter of the command tree (``str``, ``int`` without
``clamp``, ``bool``, each also ``| None``, with no custom ``parser``) a coercer of its own, with typer's
bounds (``min``/``max``) and click's error form (exit 2, ``Invalid value for '--limit': ...``).
Every other parameter (paths, enums, dates, decimals, lists) is still coerced by typer.

This sets typer's per-parameter coercer (``_TyperParameter._runtime_param``), which typer builds
lazily on first use, and subclasses ``typer._coercion.RuntimeParam``: not a public interface. Where
a typer release has neither (``pyproject.toml`` admits typer from 0.15), nothing is set and typer
coerces every parameter itself (correct, only slower); ``tests/test_startup.py`` then reports
pydantic loaded by the read commands.
"""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

from typer import BadParameter, Context

try:
    from typer._coercion import RuntimeParam
except ImportError:  # a typer release without it: use_plain_coercion sets nothing
    RuntimeParam = None  # type: ignore[assignment, misc]

#: the annotations coerced here
PLAIN_TYPES: tuple[type, ...] = (str, int, bool)
#: the words a yes/no value may be given as (pydantic's, as typer accepts them), without regard to case
BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "on": True, "1": True,
              "false": False, "f": False, "no": False, "n": False, "off": False, "0": False, "": False}


#: a whole number as an operator types it: ASCII digits, an optional sign (no ``1_000``, ``0x10``, ``1.0``)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def plain_type(annotation: Any) -> type | None:
    """``str``, ``int`` or ``bool`` for those annotations (alone or ``| None``), else None."""
    if annotation in PLAIN_TYPES:
        return annotation  # type: ignore[no-any-return]
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1 and inner[0] in PLAIN_TYPES:
            return inner[0]  # type: ignore[no-any-return]
    return None


class PlainRuntimeParam(RuntimeParam or object):  # type: ignore[misc]
    """Text as given; a yes/no word; a whole number in base 10 within the parameter's ``min``/``max``."""

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        kind = plain_type(self.annotation)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if kind is str:
            return value if isinstance(value, str) else str(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
                return BOOL_WORDS[value.strip().lower()]
            raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BadParameter(f"{value!r} is not a valid integer.", ctx=ctx, param=param)
        if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value.strip()):
            raise BadParameter(f"{value!r} is not a valid integer.", ctx=ctx, param=param)
        number = int(value)
        low, high = self.parameter_info.min, self.parameter_info.max
        if low is not None and number < low:
            raise BadParameter(f"{number} is less than the minimum {low}.", ctx=ctx, param=param)
        if high is not None and number > high:
            raise BadParameter(f"{number} is more than the maximum {high}.", ctx=ctx, param=param)
        return number


def _plain_coercer(param: Any) -> PlainRuntimeParam | None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None:
        return None  # not a typer parameter, or its coercer is built already
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or getattr(info, "parser", None) is not None or \
            getattr(info, "clamp", False) or plain_type(descriptor.annotation) is None:
        return None
    return PlainRuntimeParam(parameter_info=info, annotation=descriptor.annotation)


def use_plain_coercion(command: Any) -> int:
    """Give every plain parameter of ``command`` and its subcommands the coercer above, their
    ``--help`` flags included (each command makes and keeps its help option on first use: it is made
    here, as parsing would make it); how many."""
    if RuntimeParam is None:
        return 0
    count = 0
    help_option = command.get_help_option(Context(command)) if hasattr(command, "get_help_option") else None
    for param in [*getattr(command, "params", ()), *([help_option] if help_option is not None else [])]:
        coercer = _plain_coercer(param)
        if coercer is not None:
            param._runtime_param = coercer
            count += 1
    for sub in getattr(command, "commands", {}).values():
        count += use_plain_coercion(sub)
    return count
