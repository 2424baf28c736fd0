"""The ``adaptau`` command line: parse options, call one engine function, render.

No math, file formats or training loops live here. Every command accepts
``--config FILE.toml`` (flags override the file), ``--json`` for machine output
on stdout and ``--quiet`` for scripts. User errors exit with code 2 and one
readable line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptau_cli import __version__
from adaptau_cli.errors import EXIT_INTERNAL, AdaptauError
from adaptau_cli.ui import err_console

app = typer.Typer(
    name="adaptau",
    help="Train and evaluate normalized-embedding recommenders with an adaptive temperature (Adap-τ).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_STATE = {"debug": False}


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


# ---------------------------------------------------------------------------
# Options shared by every command that names a dataset (same as `preprocess`).
# ---------------------------------------------------------------------------
DatasetArg = Annotated[Optional[str], typer.Argument(
    help="Registry name (ml-100k, ml-1m, gowalla, yelp2018, amazon-book, synthetic); omit with --source.")]
SourceOpt = Annotated[Optional[Path], typer.Option("--source", help="Your own data: a file or a folder.")]
FormatOpt = Annotated[Optional[str], typer.Option(
    "--format", help="auto|lightgcn|csv|tsv|recbole|movielens|udata|parquet (default: auto-detect).")]
UserColOpt = Annotated[Optional[str], typer.Option("--user-col", help="User column (CSV/TSV/parquet).")]
ItemColOpt = Annotated[Optional[str], typer.Option("--item-col", help="Item column (CSV/TSV/parquet).")]
RatingColOpt = Annotated[Optional[str], typer.Option("--rating-col", help="Rating column, if any.")]
TimeColOpt = Annotated[Optional[str], typer.Option("--time-col", help="Timestamp column, if any.")]
SepOpt = Annotated[Optional[str], typer.Option("--sep", help="Field separator (default: detected).")]
MinRatingOpt = Annotated[Optional[float], typer.Option(
    "--min-rating", help="Explicit -> implicit: keep interactions with rating >= this.")]
UserCoreOpt = Annotated[Optional[int], typer.Option("--user-core", help="Iterative k-core: min interactions per user.")]
ItemCoreOpt = Annotated[Optional[int], typer.Option("--item-core", help="Iterative k-core: min interactions per item.")]
SplitOpt = Annotated[Optional[str], typer.Option(
    "--split", help="auto|given|random|temporal-global|temporal-user|loo-last|loo-random, "
                    "or train,valid,test ratios such as 0.8,0.1,0.1 (random per user).")]
ValidRatioOpt = Annotated[Optional[float], typer.Option(
    "--valid-ratio", help="Carve a per-user validation set of this share out of a given train split.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
MirrorOpt = Annotated[Optional[Path], typer.Option(
    "--mirror", envvar="ADAPTAU_MIRROR", help="Local folder holding the registry's files (no internet).")]
HomeOpt = Annotated[Optional[Path], typer.Option(
    "--home", envvar="ADAPTAU_HOME", help="Dataset store root (default: the platform cache dir).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file; flags override it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def preprocess_overrides(dataset, source, format, user_col, item_col, rating_col, time_col, sep,
                         min_rating, user_core, item_core, split, valid_ratio, seed, mirror, home) -> dict:
    """The dataset flags as PreprocessConfig overrides (None = not given)."""
    ratios = None
    if split is not None and any(ch.isdigit() for ch in split):
        ratios, split = split, "random"
    return dict(dataset=dataset, source=str(source) if source else None, format=format,
                user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col,
                sep=sep, min_rating=min_rating, user_core=user_core, item_core=item_core,
                split=split, ratios=ratios, valid_ratio=valid_ratio, seed=seed,
                mirror=str(mirror) if mirror else None, home=str(home) if home else None)


# ---------------------------------------------------------------------------
# data commands: preprocess, datasets                          (issue: data)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# training commands: train, estimate-tau                       (issue: engine)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# analysis commands: evaluate, analyze-magnitude, recommend, quickstart
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turn known errors into one line + exit code."""
    try:
        app(args=argv, prog_name="adaptau", standalone_mode=True)
    except SystemExit:
        raise
    except AdaptauError as exc:
        if _STATE["debug"]:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # an internal failure: still one line unless --debug
        if _STATE["debug"]:
            traceback.print_exc()
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                          "(rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERNAL)
