"""`adaptau estimate-tau`: τ0 and w0 = 1/τ0 with every ingredient shown.

From the data alone: n' (users above the 20%-quantile of training counts,
strict), m, |D'| (their training pairs), the log term log(n'm/(2|D'|)) and the
warm-up prior τ0 = gap / log term (ML-1M: 2.247 and 0.311 with gap 0.7).
Given a trained run or checkpoint: μ+, σ+² over D', μ, σ² over all (user,
item) pairs of those users, and τ0 by the full and by the simplified formula,
plus the value training would use after its guards, and when and why the
run's warm-up ended. It is the training's own ``TemperatureController`` that
computes all of it, so the command shows exactly what training uses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.method.temperature import TauEstimate as _Estimate
from adaptau_cli.method.temperature import TemperatureController


@dataclasses.dataclass
class TauEstimate(_Estimate):
    dataset: str = ""
    checkpoint: str | None = None
    epoch: int | None = None
    warmup_ended_after: int | None = None    # the run's last warm-up epoch (None: still warming up)
    warmup_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def controller_for(dataset: PreparedDataset, train_cfg: TrainConfig) -> TemperatureController:
    """The temperature controller a training run of ``train_cfg`` on ``dataset`` starts with."""
    return TemperatureController(train_cfg.parts().temperature, dataset.n_users,
                                 dataset.n_items, dataset.train.users, dataset.train.items)


def estimate_tau(dataset: PreparedDataset, train_cfg: TrainConfig | None = None, run=None) -> TauEstimate:
    """τ0 of ``dataset`` from the data (warm-up prior) and, given a ``LoadedRun``, from its embeddings."""
    cfg = train_cfg or (run.train_config if run is not None else TrainConfig())
    controller = controller_for(dataset, cfg)
    embeddings = run.scoring_embeddings(dataset) if run is not None else (None, None)  # refuses another dataset
    est = TauEstimate(**dataclasses.asdict(controller.estimate(*embeddings)), dataset=dataset.name)
    if run is not None:
        est.checkpoint = str(run.checkpoint_path)
        est.epoch = int(run.epoch)
        warmup = getattr(run, "warmup", None) or {}
        est.warmup_ended_after, est.warmup_reason = warmup.get("ended_after"), warmup.get("reason")
    return est


def with_prior(cfg: TrainConfig, gap: float | None = None, quantile: float | None = None) -> TrainConfig:
    """A copy of ``cfg`` with the warm-up prior's gap and user quantile replaced where given."""
    changes = {k: v for k, v in (("warmup_gap", gap), ("user_quantile_filter", quantile)) if v is not None}
    return dataclasses.replace(cfg, **changes)


def estimate_tau_for(checkpoint: str | Path | None, data_cfg: PreprocessConfig | None,
                     train_cfg: TrainConfig | None, gap: float | None = None, quantile: float | None = None,
                     quiet: bool = False) -> TauEstimate:
    """``adaptau estimate-tau``: τ0 on ``data_cfg``'s dataset, or on the checkpoint's own when none is named.

    The settings are the checkpoint's when there is one, else ``train_cfg``; ``gap`` and
    ``quantile`` replace the prior's (``with_prior``).
    """
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.runs import load_run, open_run_dataset

    run = load_run(checkpoint) if checkpoint is not None else None
    if data_cfg is None and run is not None:
        dataset = open_run_dataset(run)
    else:  # an empty PreprocessConfig: 'no dataset given'
        dataset = prepare_dataset(data_cfg or PreprocessConfig(), quiet=quiet)
    base = run.train_config if run is not None else (train_cfg or TrainConfig())
    return estimate_tau(dataset, with_prior(base, gap, quantile), run)
