"""The temperature controller: Adap-τ's τ0 and τ_u for any model, epoch by epoch.

``TemperatureController`` is the one place where a run's temperatures are
decided; the trainer, ``adaptau estimate-tau`` and a user's own training loop
all go through it. It is built from dataset statistics only (the training
pairs, n and m), not from a model or a prepared-dataset object, so it drops
into any PyTorch recommender::

    ctl = TemperatureController(TemperatureSettings(mode="adap-tau"), n_users, n_items, train_users, train_items)
    # (a run's settings: TrainConfig(...).parts().temperature)
    for epoch in range(1, epochs + 1):
        ctl.open_epoch(epoch, user_vectors, item_vectors)   # scoring-ready (normalized) embeddings
        for users, ... in batches:
            w_neg, w_pos = ctl.inverse_temperatures(users)  # 1/τ per row (or a scalar)
            ...                                             # loss with those temperatures
            ctl.observe(users, loss_rows_at_tau_1)           # detached per-row losses at τ = 1
        ctl.close_epoch(epoch, validation_recall)          # may end the warm-up

Per epoch: τ0 is the data-only prior during the warm-up (``tau.Warmup`` decides
when it ends) and the guarded closed form of the epoch's starting embeddings
after it; τ_u follows from τ0 and each user's mean τ = 1 loss of the previous
epoch (Adap-τ; every τ_u = τ0 in the first epoch). The closed form is measured
in every epoch, warm-up included, so a run's history shows what it would say.
``state_dict`` / ``load_state_dict`` make a resumed run continue exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from adaptau_cli.base.settings import TemperatureSettings
from adaptau_cli.method import tau as taumod

TAU_MODES = ("fixed", "adap-tau0", "adap-tau", "none")


@dataclasses.dataclass
class EpochTemperatures:
    """What one epoch trains with, and what the closed form read off its starting embeddings."""

    tau0: float
    source: str                   # fixed|none|prior|closed-form|guarded
    reason: str | None            # why a guard intervened
    tau0_raw: float               # the closed form used (NaN in warm-up and non-adaptive modes)
    tau_u: torch.Tensor           # (n_users,) float64 on CPU (τ0 everywhere unless adap-tau)
    w_neg: torch.Tensor | float   # 1/τ for the negatives: a per-user table on the device, or a scalar
    w_pos: torch.Tensor | float   # 1/τ for the positive logit
    stats: taumod.ScoreStats | None = None   # μ+, μ, σ² of the starting embeddings (adaptive modes)
    closed: float = float("nan")  # the closed-form τ0 of those embeddings, warm-up included (unguarded)
    warmup: bool = False          # this epoch trains at the prior


@dataclasses.dataclass
class TauEstimate:
    """τ0 with every ingredient: from the data (the prior) and, given embeddings, the closed forms."""

    n_users_filtered: int        # n'
    n_items: int                 # m
    n_pairs_filtered: int        # |D'|
    user_quantile: float
    log_term: float
    warmup_gap: float
    prior_tau0: float
    prior_w0: float
    mu_pos: float | None = None
    mu: float | None = None
    var_pos: float | None = None
    var: float | None = None
    tau0_full: float | None = None
    tau0_simplified: float | None = None
    w0_full: float | None = None
    w0_simplified: float | None = None
    tau0_used: float | None = None       # what training uses after warm-up (its formula, guarded)
    guard_reason: str | None = None


def _inverse(x: float) -> float:
    return 1.0 / x if x and math.isfinite(x) else float("nan")


class TemperatureController:
    """τ0 and τ_u of one run; see the module docstring for the loop it serves."""

    def __init__(self, settings: TemperatureSettings, n_users: int, n_items: int, train_users: np.ndarray,
                 train_items: np.ndarray, device: str | torch.device = "cpu"):
        if settings.mode not in TAU_MODES:
            raise ValueError(f"unknown tau mode {settings.mode!r} (expected one of {', '.join(TAU_MODES)})")
        self.settings = settings
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.device = torch.device(device)
        train_users = np.asarray(train_users)
        train_items = np.asarray(train_items)
        activity = np.bincount(train_users, minlength=self.n_users)
        self.users = taumod.filtered_users(activity, settings.user_quantile_filter)
        keep = np.zeros(self.n_users, dtype=bool)
        keep[self.users] = True
        sel = keep[train_users]
        self.pair_users = train_users[sel]
        self.pair_items = train_items[sel]
        self.log_term = taumod.log_term(len(self.users), self.n_items, int(sel.sum()))
        self.prior = taumod.prior_tau0(self.log_term, settings.warmup_gap)
        self.active = torch.as_tensor(activity > 0)
        self.warmup = taumod.Warmup(settings.warmup_epochs if settings.adaptive else 0, settings.warmup_patience)
        self.state = taumod.TauState()
        self.epoch: EpochTemperatures | None = None
        self._loss_sum: torch.Tensor | None = None
        self._loss_count: torch.Tensor | None = None

    # ------------------------------------------------------------------ per epoch

    @property
    def tracks_user_loss(self) -> bool:
        """Whether ``observe`` needs the per-row losses at τ = 1 (only per-user Adap-τ uses them)."""
        return self.settings.mode == "adap-tau"

    def open_epoch(self, epoch: int, user_emb: torch.Tensor | None = None,
                   item_emb: torch.Tensor | None = None) -> EpochTemperatures:
        """Decide epoch ``epoch``'s (1-based) temperatures from the scoring-ready embeddings it starts from.

        The embeddings are needed in the adaptive modes only (the closed form).
        """
        s = self.settings
        warm = self.warmup.active(epoch)
        reason = None
        raw = closed = float("nan")
        stats = None
        if s.mode == "fixed":
            tau0, source = float(s.tau), "fixed"
        elif s.mode == "none":
            tau0, source = 1.0, "none"
        else:
            if user_emb is None or item_emb is None:
                raise ValueError("the adaptive modes need the epoch's user and item embeddings")
            stats = taumod.score_stats(user_emb, item_emb, self.users, self.pair_users, self.pair_items)
            closed = self._closed_form(stats)
            if warm:
                tau0, source = self.prior, "prior"
                tau0, reason = taumod.guard_tau0(tau0, self.prior, s.tau_min, s.tau_max)
            else:
                raw = closed
                tau0, reason = taumod.guard_tau0(raw, self.prior, s.tau_min, s.tau_max)
                source = "closed-form" if reason is None else "guarded"
        state = self.state
        if s.mode == "adap-tau" and state.user_loss is not None:
            tau_u = taumod.user_taus(tau0, state.user_loss, self.n_users, s.baseline, s.quantile, s.scale,
                                     mask=state.user_count > 0, tau_min=s.tau_min, tau_max=s.tau_max)
            w_table = (1.0 / tau_u).to(device=self.device, dtype=torch.float32)
            w_neg = w_table
            w_pos = w_table if s.user_positive else 1.0 / tau0
        else:
            tau_u = torch.full((self.n_users,), tau0, dtype=torch.float64)
            w_neg = w_pos = 1.0 / tau0
        self.epoch = EpochTemperatures(tau0, source, reason, raw, tau_u, w_neg, w_pos, stats, closed, warm)
        if self.tracks_user_loss:
            self._loss_sum = torch.zeros(self.n_users, dtype=torch.float64, device=self.device)
            self._loss_count = torch.zeros(self.n_users, dtype=torch.float64, device=self.device)
        return self.epoch

    def inverse_temperatures(self, users: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(1/τ for the negatives, 1/τ for the positive) of a batch's rows: (B,) tensors or scalars."""
        e = self._current()
        w_neg = e.w_neg[users] if isinstance(e.w_neg, torch.Tensor) else e.w_neg
        w_pos = e.w_pos[users] if isinstance(e.w_pos, torch.Tensor) else e.w_pos
        return w_neg, w_pos

    def observe(self, users: torch.Tensor, loss_tau1: torch.Tensor | None) -> None:
        """Add a batch's detached per-row losses at τ = 1 to its users' epoch loss L_u."""
        if not self.tracks_user_loss:
            return
        self._current()
        self._loss_sum.index_add_(0, users, loss_tau1.to(torch.float64))
        self._loss_count.index_add_(0, users, torch.ones(users.shape[0], dtype=torch.float64, device=self.device))

    def user_loss_totals(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The epoch's per-user (sum, count) of τ = 1 losses so far (for an all-reduce across processes)."""
        return (self._loss_sum, self._loss_count) if self.tracks_user_loss else None

    def close_epoch(self, epoch: int, monitored: float | None = None, monitor: str = "the metric") -> str | None:
        """End epoch ``epoch``: L_u for the next epoch; the reason when the warm-up ended with it.

        ``monitored``: the epoch's validation value (None when it was not evaluated).
        """
        e = self._current()
        user_loss = user_count = None
        if self.tracks_user_loss:
            user_count = self._loss_count.cpu()
            user_loss = self._loss_sum.cpu() / user_count.clamp(min=1)
        self.state = taumod.TauState(e.tau0, e.source, e.reason, self.log_term, e.tau0_raw, user_loss, user_count)
        return self.warmup.observe(epoch, monitored, monitor)

    def _current(self) -> EpochTemperatures:
        if self.epoch is None:
            raise RuntimeError("open_epoch() first")
        return self.epoch

    def _closed_form(self, stats: taumod.ScoreStats) -> float:
        if self.settings.formula == "full":
            return taumod.tau0_full(stats.mu_pos, stats.mu, stats.var_pos, stats.var, self.log_term)
        return taumod.tau0_simplified(stats.mu_pos, stats.mu, self.log_term)

    # ------------------------------------------------------------------ what estimate-tau prints

    def estimate(self, user_emb: torch.Tensor | None = None, item_emb: torch.Tensor | None = None) -> TauEstimate:
        """τ0 from the data (the warm-up prior) and, given scoring-ready embeddings, from them."""
        s = self.settings
        est = TauEstimate(n_users_filtered=len(self.users), n_items=self.n_items,
                          n_pairs_filtered=len(self.pair_users), user_quantile=s.user_quantile_filter,
                          log_term=self.log_term, warmup_gap=s.warmup_gap, prior_tau0=self.prior,
                          prior_w0=_inverse(self.prior))
        if user_emb is None or item_emb is None:
            return est
        stats = taumod.score_stats(user_emb, item_emb, self.users, self.pair_users, self.pair_items)
        full = taumod.tau0_full(stats.mu_pos, stats.mu, stats.var_pos, stats.var, self.log_term)
        simple = taumod.tau0_simplified(stats.mu_pos, stats.mu, self.log_term)
        used, reason = taumod.guard_tau0(full if s.formula == "full" else simple, self.prior, s.tau_min, s.tau_max)
        est.mu_pos, est.mu, est.var_pos, est.var = stats.mu_pos, stats.mu, stats.var_pos, stats.var
        est.tau0_full, est.tau0_simplified = full, simple
        est.w0_full, est.w0_simplified = _inverse(full), _inverse(simple)
        est.tau0_used, est.guard_reason = used, reason
        return est

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint: the τ state between epochs and the warm-up state."""
        return {"tau_state": self.state.to_dict(), "warmup": self.warmup.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = taumod.TauState.from_dict(state["tau_state"])
        if "warmup" in state:
            self.warmup = taumod.Warmup.from_dict(state["warmup"])

    def summary(self) -> dict[str, float]:
        """min / q10 / median / q90 / max of the epoch's τ_u over users with training pairs."""
        tau_u = self._current().tau_u
        vals = tau_u[self.active] if bool(self.active.any()) else tau_u
        q = torch.quantile(vals, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
        return {"tau_u_min": float(vals.min()), "tau_u_q10": float(q[0]), "tau_u_median": float(q[1]),
                "tau_u_q90": float(q[2]), "tau_u_max": float(vals.max())}
