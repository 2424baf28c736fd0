"""`adaptau estimate-tau`: τ0 and w0 = 1/τ0 with every ingredient shown.

From the data alone: n' (users above the 20%-quantile of training counts,
strict), m, |D'| (their training pairs), the log term log(n'm/(2|D'|)) and the
warm-up prior τ0 = gap / log term (ML-1M: 2.247 and 0.311 with gap 0.7).
Given a trained run or checkpoint: μ+, σ+² over D', μ, σ² over all (user,
item) pairs of those users, and τ0 by the full and by the simplified formula,
plus the value training would use after its guards.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from adaptau_cli.base.settings import TrainConfig
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.method import tau as taumod


@dataclasses.dataclass
class TauEstimate:
    dataset: str
    n_users_filtered: int        # n'
    n_items: int                 # m
    n_pairs_filtered: int        # |D'|
    user_quantile: float
    log_term: float
    warmup_gap: float
    prior_tau0: float
    prior_w0: float
    checkpoint: str | None = None
    epoch: int | None = None
    mu_pos: float | None = None
    mu: float | None = None
    var_pos: float | None = None
    var: float | None = None
    tau0_full: float | None = None
    tau0_simplified: float | None = None
    w0_full: float | None = None
    w0_simplified: float | None = None
    tau0_used: float | None = None       # what training would use (formula of the run, guarded)
    guard_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _inv(x: float) -> float:
    return 1.0 / x if x and math.isfinite(x) else float("nan")


def estimate_tau(dataset: PreparedDataset, train_cfg: TrainConfig | None = None, run=None) -> TauEstimate:
    """τ0 of ``dataset`` from the data (warm-up prior) and, given a ``LoadedRun``, from its embeddings."""
    cfg = train_cfg or (run.train_config if run is not None else TrainConfig())
    users = taumod.filtered_users(dataset.user_activity, cfg.user_quantile_filter)
    sel = np.isin(dataset.train.users, users)
    n_pairs = int(sel.sum())
    lt = taumod.log_term(len(users), dataset.n_items, n_pairs)
    prior = taumod.prior_tau0(lt, cfg.warmup_gap)
    est = TauEstimate(dataset=dataset.name, n_users_filtered=len(users), n_items=dataset.n_items,
                      n_pairs_filtered=n_pairs, user_quantile=cfg.user_quantile_filter, log_term=lt,
                      warmup_gap=cfg.warmup_gap, prior_tau0=prior, prior_w0=_inv(prior))
    if run is None:
        return est
    u, i = run.scoring_embeddings(dataset)  # refuses another dataset
    stats = taumod.score_stats(u, i, users, dataset.train.users[sel], dataset.train.items[sel])
    full = taumod.tau0_full(stats.mu_pos, stats.mu, stats.var_pos, stats.var, lt)
    simple = taumod.tau0_simplified(stats.mu_pos, stats.mu, lt)
    raw = full if cfg.tau0_formula == "full" else simple
    used, reason = taumod.guard_tau0(raw, prior, cfg.tau_min, cfg.tau_max)
    est.checkpoint = str(run.checkpoint_path)
    est.epoch = int(run.epoch)
    est.mu_pos, est.mu, est.var_pos, est.var = stats.mu_pos, stats.mu, stats.var_pos, stats.var
    est.tau0_full, est.tau0_simplified = full, simple
    est.w0_full, est.w0_simplified = _inv(full), _inv(simple)
    est.tau0_used, est.guard_reason = used, reason
    return est

