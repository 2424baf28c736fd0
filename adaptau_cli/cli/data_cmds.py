"""Data commands: ``preprocess`` and ``datasets``."""

from __future__ import annotations

from typing import Annotated

import typer

from adaptau_cli.cli.options import ConfigOpt, DataFlags, HomeOpt, JsonOpt, QuietOpt, flag_groups

ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even if this dataset is already prepared.")]
ListOpt = Annotated[bool, typer.Option("--list", help="Show the registry and the prepared datasets, then exit.")]


@flag_groups
def preprocess_cmd(*, data: DataFlags, force: ForceOpt = False, list_: ListOpt = False, config: ConfigOpt = None,
                   as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Download or read a dataset, clean and split it, and store it as parquet (reused when unchanged)."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, build
    from adaptau_cli.cli.render import preprocess_payload, render_datasets, render_preprocess
    from adaptau_cli.data.prepare import list_datasets, prepare

    if list_:
        emit(list_datasets(data.home), as_json, render_datasets)
        return
    cfg = build(PreprocessConfig, config, "dataset", data.overrides())
    result = prepare(cfg, force=force, quiet=quiet)
    emit(preprocess_payload(result), as_json, None if quiet else render_preprocess)


def datasets_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Show the dataset registry and the datasets prepared in the store."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.cli.render import render_datasets
    from adaptau_cli.data.prepare import list_datasets

    emit(list_datasets(home), as_json, render_datasets)


COMMANDS = {"preprocess": preprocess_cmd, "datasets": datasets_cmd}
