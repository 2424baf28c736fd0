"""The ``adaptau`` command line: the Typer app, its global options, and ``main`` with its exit codes.

Each command lives in a module of its group (``data_cmds``, ``train_cmds``,
``analysis_cmds``, ``quickstart_cmd``): it parses options, builds its settings
once (``base.settings.build``), calls one engine or workflow function and
renders the result (``render``). No math, file formats or training loops live
here. Every command accepts ``--config FILE.toml`` (flags override the file),
``--json`` for machine output on stdout and ``--quiet`` for scripts. User
errors exit with code 2 and one readable line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors click; older releases depend on it
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from adaptau_cli import __version__
from adaptau_cli.base.console import err_console, plain
from adaptau_cli.base.errors import EXIT_INTERNAL, AdaptauError
from adaptau_cli.cli import (
    analysis_cmds,
    compare_cmd,
    data_cmds,
    export_cmd,
    quickstart_cmd,
    sweep_cmd,
    train_cmds,
    tune_cmd,
)

_STATE = {"debug": False}


def _report(exc: BaseException) -> int:
    """Print one readable line for an error escaping a command; return the exit code."""
    if _STATE["debug"]:
        traceback.print_exc()
    from adaptau_cli.engine.distributed import is_worker, world_from_env  # torch: only on the error path

    if isinstance(exc, AdaptauError):
        if is_worker():          # every rank of a torchrun group meets the same bad input: rank 0 says it
            return exc.exit_code
        err_console.print(f"[bold red]error:[/] {plain(exc.one_line())}", highlight=False, soft_wrap=True)
        return exc.exit_code
    rank = f"rank {world_from_env().rank}: " if is_worker() else ""
    err_console.print(f"[bold red]{rank}internal error:[/] {plain(type(exc).__name__)}: {plain(exc)} "
                      "(rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
    return EXIT_INTERNAL


def _stdout_closed() -> int:
    """The reader of stdout left (``adaptau ... | head``): stop quietly, as Unix tools do.

    stdout is pointed at /dev/null so that Python's final flush does not raise again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. CliRunner)
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


class _ErrorReportingGroup(TyperGroup):
    """Turns engine errors into one line + exit code inside click itself.

    Doing it here (not only in ``main``) means ``CliRunner().invoke(app, ...)``
    sees exactly what a user sees: exit code 2 for user errors, no traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click_exceptions.ClickException,
                KeyboardInterrupt):
            raise
        except BrokenPipeError:
            raise typer.Exit(_stdout_closed()) from None
        except Exception as exc:  # noqa: BLE001 - every other error gets one line
            raise typer.Exit(_report(exc)) from None


app = typer.Typer(
    name="adaptau",
    help="Train and evaluate normalized-embedding recommenders with an adaptive temperature (Adap-τ).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=_ErrorReportingGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adaptau {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Adap-τ: normalized embeddings with an adaptive temperature, from raw logs to honest metrics."""
    _STATE["debug"] = debug


for _group in (data_cmds, train_cmds, analysis_cmds, quickstart_cmd, export_cmd, compare_cmd, sweep_cmd, tune_cmd):
    for _name, _command in _group.COMMANDS.items():
        app.command(_name)(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turn known errors into one line + exit code.

    It sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it, before torch is
    imported (every command imports it lazily): OpenMP threads that spin while
    waiting turn a busy 2-core machine into a 10-100x slowdown (measured: a 1 s
    epoch took 95 s beside another job). Importing the package sets nothing.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app(args=argv, prog_name="adaptau", standalone_mode=True)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(_stdout_closed())
    except AdaptauError as exc:
        sys.exit(_report(exc))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # an internal failure: still one line unless --debug
        sys.exit(_report(exc))
