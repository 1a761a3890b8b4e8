"""The CLI's consoles and groups, light at start-up (issue 20).

``recovery --help`` and a command's usage error need neither Rich nor typer's Rich formatter: the
groups are built with ``rich_markup_mode=None`` (typer then formats help and usage errors the way
click does, without importing ``typer.rich_utils``, which loads ``rich.markdown``, ``markdown_it``,
``rich.traceback`` and ``rich.pretty``), and the consoles the commands print with are built, and
Rich imported, when a command first prints. Commands import ``rich.table`` in their own bodies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A ``rich.console.Console`` built on first use, with the options given. Attributes and the
    context manager protocol go to it; hand :func:`real_console` to Rich objects that keep one."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._console: Console | None = None

    def real(self) -> Console:
        console = self._console
        if console is None:
            from rich.console import Console

            console = self._console = Console(**self._options)
        return console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)

    def __enter__(self) -> Console:
        return self.real().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self.real().__exit__(*exc_info)


def lazy_console(**options: Any) -> Console:
    """A console like ``Console(**options)`` whose Rich is imported when it first prints."""
    return cast("Console", _LazyConsole(options))


def real_console(console: Console) -> Console:
    """The Rich console itself behind ``console`` (a progress bar or a live display holds it)."""
    lazy: object = console
    return lazy.real() if isinstance(lazy, _LazyConsole) else console


def group(help: str, **options: Any) -> typer.Typer:
    """A command group of the CLI: plain (click) help and usage errors, no Rich formatter."""
    options.setdefault("no_args_is_help", True)
    # click wraps help at 80 columns at most; a wider terminal gets up to 120 (subgroups inherit it)
    options.setdefault("context_settings", {"max_content_width": 120})
    return typer.Typer(help=help, rich_markup_mode=None, **options)
