"""Where a training run goes: ``--out``, ``--resume``, the run's ``config.toml``, the default name.

``adaptau train`` names its run directory in one of three ways: ``--out DIR``;
``--resume DIR`` (continue that run: its ``config.toml`` is the settings file
unless ``--config`` names another); or neither, and the run is named after its
settings, ``runs/NAME-MODEL[-LOSS]-TAUMODE`` (``-2``, ``-3`` ... when taken). A resumed
run's ``config.toml`` may predate a setting added since; ``train_defaults``
then holds the value that run was trained with (``LEGACY_TRAIN_DEFAULTS``), so
that resuming does not switch the new default on halfway.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, legacy_train_defaults

RUNS_ROOT = Path("runs")
CONFIG_NAME = "config.toml"


@dataclasses.dataclass(frozen=True)
class RunTarget:
    """The run directory a ``train`` call writes, and the settings file it reads."""

    out: Path | None                  # None: named from the settings (``default_run_dir``)
    resume: bool                      # continue the run in ``out``
    config: Path | None               # --config, or the resumed run's config.toml
    train_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # below the file, above defaults

    def run_dir(self, data_cfg: PreprocessConfig, train_cfg: TrainConfig) -> Path:
        return self.out if self.out is not None else default_run_dir(data_cfg, train_cfg)


def resolve_target(out: str | Path | None = None, resume: str | Path | None = None,
                   config: str | Path | None = None) -> RunTarget:
    """The run of ``--out`` / ``--resume`` / ``--config``; UserError when they contradict each other."""
    config = Path(config) if config is not None else None
    if resume is None:
        return RunTarget(out=Path(out) if out is not None else None, resume=False, config=config)
    resume = Path(resume)
    if out is not None and Path(out) != resume:
        raise UserError("--resume and --out name different run directories")
    own = resume / CONFIG_NAME
    if config is None:
        if not own.is_file():
            raise UserError(f"nothing to resume: {own} not found")
        config = own
    defaults = legacy_train_defaults(config) if config == own else {}
    return RunTarget(out=resume, resume=True, config=config, train_defaults=defaults)


def default_run_dir(data_cfg: PreprocessConfig, train_cfg: TrainConfig, root: str | Path = RUNS_ROOT) -> Path:
    """``runs/NAME-MODEL[-LOSS]-TAUMODE``, or the first of ``-2``, ``-3`` ... not taken yet.

    LOSS is there when it is not the softmax (``bpr``, the rivals, ``softmax-logq``),
    so that runs of different losses get names that say which is which.
    """
    name = data_cfg.dataset or Path(data_cfg.source or "data").stem
    loss = "" if train_cfg.loss == "softmax" and not train_cfg.logq else \
        f"-{train_cfg.loss}" + ("-logq" if train_cfg.logq else "")
    base = Path(root) / f"{name}-{train_cfg.model}{loss}-{train_cfg.tau_mode}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out
