"""Training commands: ``train`` and ``estimate-tau``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptau_cli.cli.options import (
    ConfigOpt,
    JsonOpt,
    LogToOpt,
    MlflowUriOpt,
    ModelFlags,
    QuietOpt,
    RuntimeFlags,
    TrainDataFlags,
    flag_groups,
    train_overrides,
)

OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/NAME-MODEL-TAUMODE).")]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this directory.")]
CheckpointOpt = Annotated[Optional[Path], typer.Option(
    "--checkpoint", help="A run directory or checkpoint: also estimate from its embeddings.")]
GapOpt = Annotated[Optional[float], typer.Option("--gap", help="Assumed mu+ - mu of the prior (default 0.7).")]
NprocOpt = Annotated[Optional[int], typer.Option(
    "--nproc", help="Train data-parallel in N processes on this machine (torch.distributed.run: gloo on CPU, "
                    "nccl on CUDA); the batch stays the global batch, the run the same run. Default 1. "
                    "Several machines: torchrun --nnodes ... $(which adaptau) train ... (docs/scaling.md).")]
QuantileOpt = Annotated[Optional[float], typer.Option(
    "--user-quantile", help="Users with training count above this quantile enter (default 0.2).")]


@flag_groups
def train_cmd(*, data: TrainDataFlags, model: ModelFlags, out: OutOpt = None, resume: ResumeOpt = None,
              runtime: RuntimeFlags, quiet: QuietOpt = False, as_json: JsonOpt = False,
              config: ConfigOpt = None, nproc: NprocOpt = None, log_to: LogToOpt = None,
              mlflow_uri: MlflowUriOpt = None) -> None:
    """Train MF or LightGCN with a fixed, Adap-τ0 or Adap-τ temperature; write a run directory."""
    if nproc is not None and nproc != 1:
        from adaptau_cli.cli.launch import command_line, launch

        raise typer.Exit(launch(nproc, command_line()))
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, build
    from adaptau_cli.cli.render import render_train, train_payload
    from adaptau_cli.engine.rundir import resolve_target
    from adaptau_cli.workflows.training import train_target

    target = resolve_target(out=out, resume=resume, config=config)
    data_cfg = build(PreprocessConfig, target.config, "dataset", data.overrides())
    train_cfg = build(TrainConfig, target.config, "train", train_overrides(model, runtime),
                      base=target.train_defaults)
    result = train_target(target, train_cfg, data_cfg, quiet=quiet, log_to=log_to or (), mlflow_uri=mlflow_uri)
    from adaptau_cli.engine.distributed import is_worker

    if not is_worker():                  # one summary from a torchrun group: rank 0's
        emit(train_payload(result), as_json, None if quiet else render_train)


@flag_groups
def estimate_tau_cmd(*, data: TrainDataFlags, checkpoint: CheckpointOpt = None, gap: GapOpt = None,
                     quantile: QuantileOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
                     config: ConfigOpt = None) -> None:
    """Print tau0 and w0 = 1/tau0 with every ingredient (data-only prior; closed form given a checkpoint)."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, build
    from adaptau_cli.cli.render import render_estimate
    from adaptau_cli.workflows.estimate import estimate_tau_for

    own_data = checkpoint is not None and not data.named and config is None   # the checkpoint's dataset
    data_cfg = None if own_data else build(PreprocessConfig, config, "dataset", data.overrides())
    train_cfg = None if checkpoint is not None else build(TrainConfig, config, "train")
    est = estimate_tau_for(checkpoint, data_cfg, train_cfg, gap=gap, quantile=quantile, quiet=quiet)
    emit(est.to_dict(), as_json, render_estimate)


COMMANDS = {"train": train_cmd, "estimate-tau": estimate_tau_cmd}
