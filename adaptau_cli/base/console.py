"""Terminal output: progress and tables on stderr, machine-readable JSON on stdout.

Progress bars are hidden when stderr is not a terminal or with ``--quiet`` so
that scripts and logs stay clean.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err_console = Console(stderr=True)


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


def info(message: str, quiet: bool = False) -> None:
    """A status line on stderr (suppressed by --quiet)."""
    if not quiet:
        err_console.print(message, highlight=False)


def emit(payload: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """JSON on stdout with ``--json``; otherwise ``render`` draws rich tables on stderr."""
    if as_json:
        from adaptau_cli.base.files import json_default

        sys.stdout.write(json.dumps(payload, indent=2, default=json_default) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(payload)
