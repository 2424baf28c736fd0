"""Terminal output: progress and tables on stderr, machine-readable JSON on stdout.

Progress bars are hidden when stderr is not a terminal or with ``--quiet`` so
that scripts and logs stay clean.

Everything printed goes through rich markup, so text that comes from the user
(paths, ids, names, error messages quoting input) must pass through ``plain``
first: square brackets would otherwise be read as style tags and vanish, and a
control character would reach the terminal. ``info`` does it for the values it
is given by keyword.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# emoji=False: ':cat:' in a user's item id stays ':cat:'
err_console = Console(stderr=True, emoji=False)

# C0/C1 control characters and the bidirectional overrides that reorder what a terminal shows
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with every control character written out as ``\\xNN`` (``\\uNNNN`` above 0xff)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", str(text))


def plain(text: object) -> str:
    """User text made safe to print through rich: brackets escaped, control characters written out."""
    return escape(printable(text))


def show_progress(quiet: bool = False) -> bool:
    return (not quiet) and sys.stderr.isatty()


def make_progress(quiet: bool = False, *extra_columns) -> Progress:
    """A rich progress display on stderr, disabled when it would only add noise."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show_progress(quiet),
        transient=False,
    )


def info(message: str, quiet: bool = False, **values: Any) -> None:
    """A status line on stderr (suppressed by --quiet).

    ``message`` is rich markup written by the program; user text goes in ``values``,
    which are made ``plain`` and filled into the message's ``{name}`` fields:
    ``info("[yellow]skipped[/] {ids}", ids=", ".join(unknown))``.
    """
    if not quiet:
        if values:
            message = message.format(**{k: plain(v) for k, v in values.items()})
        err_console.print(message, highlight=False)


def emit(payload: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """JSON on stdout with ``--json``; otherwise ``render`` draws rich tables on stderr."""
    if as_json:
        from adaptau_cli.base.files import json_default

        sys.stdout.write(json.dumps(payload, indent=2, default=json_default) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(payload)
