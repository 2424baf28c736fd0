"""``adaptau quickstart``: the whole story on the built-in sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptau_cli.cli.options import JsonOpt, QuietOpt, ThreadsOpt

QuickOutOpt = Annotated[Path, typer.Option("--out", help="Folder for everything it makes.")]
SmallOpt = Annotated[bool, typer.Option(
    "--small", help="The tiny sample and 3 epochs: seconds instead of minutes (for tests, a first look).")]


def quickstart_cmd(out: QuickOutOpt = Path("adaptau-quickstart"), small: SmallOpt = False,
                   threads: ThreadsOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False) -> None:
    """The whole story on the built-in sample.

    Preprocess, estimate-tau, train no-norm and Adap-τ MF, evaluate, plot.
    """
    from adaptau_cli.base.console import emit
    from adaptau_cli.cli.render import render_quickstart
    from adaptau_cli.workflows.quickstart import run_quickstart

    result = run_quickstart(out, small=small, quiet=quiet or as_json, threads=threads)
    emit(result.to_dict(), as_json, None if quiet else render_quickstart)


COMMANDS = {"quickstart": quickstart_cmd}
