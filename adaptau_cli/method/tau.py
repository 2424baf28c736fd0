"""Temperatures: the Adap-τ0 closed form, its warm-up prior and guards, and per-user Adap-τ.

Pure functions (no training state) so each piece is checked against a slow
reference in ``tests/test_tau.py``. See ``docs/ALGORITHM.md`` for the method:

* ``log_term = log(n'·m / (2|D'|))`` over the users whose training count is
  strictly above the 20% quantile of user counts (the published filter; users
  with no training pair are not counted);
* ``τ0 = (σ+² - σ²) / (-(μ+ - μ) + sqrt((μ+ - μ)² + 2(σ+² - σ²)·log_term))``
  (full) or ``(μ+ - μ) / log_term`` (simplified, used when σ+² ≈ σ²);
* warm-up prior ``τ0 = gap / log_term`` with gap 0.7 (ML-1M: 2.247 → 0.311);
* per user ``τ_u = τ0·exp(W(clamp((L_u - baseline)/scale, -1/e, 1000)))``.

Guards (why): at random initialization μ+ ≈ μ and the closed form explodes
(w0 in the millions); a negative gap would give a negative τ. ``guard_tau0``
replaces a non-finite or non-positive τ0 by the prior and clamps the result to
``[tau_min, tau_max]`` (defaults 0.02 .. 2.0 in TrainConfig: below 0.02 the
logits of cosines exceed ±50 and float32 softmax loses all but the hardest
negative; above 2 the softmax is nearly uniform and gradients vanish), and
returns a human-readable reason whenever it intervened so the run logs it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from adaptau_cli.method.lambertw import BRANCH_POINT, lambertw

X_MAX = 1000.0  # upper clamp of the Lambert W argument (as published)


# ---------------------------------------------------------------------------
# data-only ingredients
# ---------------------------------------------------------------------------

def filtered_users(user_activity: np.ndarray, quantile: float = 0.2) -> np.ndarray:
    """Indices of users whose training count is strictly above the ``quantile`` of counts.

    The quantile is taken over users that have at least one training pair
    (numpy's default linear interpolation), as in the published code.
    """
    counts = np.asarray(user_activity, dtype=np.int64)
    active = counts > 0
    if not active.any():
        return np.zeros(0, dtype=np.int64)
    threshold = np.quantile(counts[active], quantile) if quantile > 0 else 0
    keep = np.flatnonzero(active & (counts > threshold))
    if len(keep) == 0:  # every user has the same count: keep all active users
        keep = np.flatnonzero(active)
    return keep


def log_term(n_users: int, n_items: int, n_pairs: int) -> float:
    """``log(n·m / (2|D|))``; the ``log(nm/2|D|)`` of the closed form."""
    if n_users <= 0 or n_items <= 0 or n_pairs <= 0:
        return float("nan")
    return math.log(n_users * n_items / (2.0 * n_pairs))


def prior_tau0(log_term_value: float, gap: float = 0.7) -> float:
    """The warm-up τ0: assume μ+ - μ = ``gap`` (0.7 in the published code)."""
    return gap / log_term_value if log_term_value > 0 else float("nan")


# ---------------------------------------------------------------------------
# the closed form
# ---------------------------------------------------------------------------

def tau0_full(mu_pos: float, mu: float, var_pos: float, var: float, log_term_value: float) -> float:
    """Gradient-maximizing τ0 with both means and variances (the paper's full formula)."""
    gap = mu_pos - mu
    dvar = var_pos - var
    if abs(dvar) < 1e-12:
        return tau0_simplified(mu_pos, mu, log_term_value)
    disc = gap * gap + 2.0 * dvar * log_term_value
    if disc < 0:
        return float("nan")
    denom = -gap + math.sqrt(disc)
    if denom == 0:
        return float("nan")
    return dvar / denom


def tau0_simplified(mu_pos: float, mu: float, log_term_value: float) -> float:
    """``(μ+ - μ) / log_term`` (σ+² ≈ σ²), the form the published code used (w0 = 1/τ0)."""
    if log_term_value == 0:
        return float("nan")
    return (mu_pos - mu) / log_term_value


@dataclasses.dataclass
class ScoreStats:
    """Mean and variance of the score over the positive pairs D' and over all (u, i) pairs."""

    mu_pos: float
    mu: float
    var_pos: float
    var: float
    n_users: int
    n_pairs: int


@torch.no_grad()
def score_stats(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                pair_users: np.ndarray, pair_items: np.ndarray) -> ScoreStats:
    """μ+, σ+² over the given positive pairs; μ, σ² over all (user in ``users``) × (every item).

    ``user_emb``/``item_emb`` are scoring-ready (normalized for cosine). Exact
    without forming the n×m matrix: μ = mean_u e_u·ē with ē the mean item
    vector, and E[f²] = mean_u e_uᵀ C e_u with C = mean_i e_i e_iᵀ (d×d), so the
    cost is O(|D'|·d + (n + m)·d²). Computed in float64.
    """
    u = user_emb.detach().to(torch.float64)
    it = item_emb.detach().to(torch.float64)
    dev = u.device
    uu = u[torch.as_tensor(users, dtype=torch.long, device=dev)]
    mu_pos, var_pos = positive_moments(u, it, pair_users, pair_items)
    mean_item = it.mean(0)
    mu = (uu @ mean_item).mean().item()
    second = it.t() @ it / it.shape[0]
    ef2 = ((uu @ second) * uu).sum(1).mean().item()
    return ScoreStats(mu_pos, mu, var_pos, max(ef2 - mu * mu, 0.0), len(users), len(pair_users))


# positive pairs gathered at once up to this many; beyond, in blocks of it (bounded memory: two
# (block × d) float64 tensors, 64 MiB at d = 64, instead of two |D'| × d ones — 2.4 GB on Amazon-Book)
PAIR_BLOCK = 1 << 16


def positive_moments(u: torch.Tensor, it: torch.Tensor, pair_users: np.ndarray,
                     pair_items: np.ndarray) -> tuple[float, float]:
    """Mean and (population) variance of ``u[pair_users] · it[pair_items]`` in bounded memory.

    Blocks of ``PAIR_BLOCK`` pairs are combined exactly (Chan et al.'s pairwise update of
    count, mean and sum of squared deviations), so the result does not depend on the block
    size beyond float64 rounding; one block is the plain two-pass mean and variance.
    """
    n = len(pair_users)
    if n == 0:
        return float("nan"), float("nan")
    dev = u.device

    def scores(start: int, end: int) -> torch.Tensor:
        pu = u[torch.as_tensor(pair_users[start:end], dtype=torch.long, device=dev)]
        pi = it[torch.as_tensor(pair_items[start:end], dtype=torch.long, device=dev)]
        return (pu * pi).sum(1)

    if n <= PAIR_BLOCK:
        pos = scores(0, n)
        return pos.mean().item(), pos.var(unbiased=False).item()
    count, mean, m2 = 0, 0.0, 0.0
    for start in range(0, n, PAIR_BLOCK):
        pos = scores(start, min(start + PAIR_BLOCK, n))
        nb, mb = pos.shape[0], pos.mean().item()
        m2b = ((pos - mb) ** 2).sum().item()
        delta, total = mb - mean, count + nb
        mean += delta * nb / total
        m2 += m2b + delta * delta * count * nb / total
        count = total
    return mean, m2 / count


def guard_tau0(tau0: float, prior: float, tau_min: float, tau_max: float) -> tuple[float, str | None]:
    """Keep τ0 usable: non-finite or <= 0 → the prior; then clamp to [tau_min, tau_max].

    Returns ``(tau0, reason)`` with ``reason`` None when nothing was changed.
    """
    reason = None
    if not math.isfinite(tau0) or tau0 <= 0:
        fallback = prior if math.isfinite(prior) and prior > 0 else min(max(0.1, tau_min), tau_max)
        reason = f"tau0={tau0:.4g} is not a positive finite number; using the prior {fallback:.4g}"
        tau0 = fallback
    if tau0 < tau_min:
        reason = (reason + "; " if reason else "") + f"tau0={tau0:.4g} below tau_min; clamped to {tau_min:g}"
        tau0 = tau_min
    elif tau0 > tau_max:
        reason = (reason + "; " if reason else "") + f"tau0={tau0:.4g} above tau_max; clamped to {tau_max:g}"
        tau0 = tau_max
    return float(tau0), reason


# ---------------------------------------------------------------------------
# per-user temperature
# ---------------------------------------------------------------------------

def lambert_argument(user_loss: torch.Tensor, baseline: str = "mean", quantile: float = 0.9,
                     scale: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """x_u = clamp((L_u - baseline)/scale, -1/e, 1000); users outside ``mask`` (no loss) get 0.

    ``baseline`` is the mean of L_u over masked users, or their ``quantile``
    ("ratio" mode of the published code).
    """
    loss = user_loss.to(torch.float64)
    if mask is None:
        mask = torch.isfinite(loss)
    x = torch.zeros_like(loss)
    if bool(mask.any()):
        vals = loss[mask]
        if baseline == "mean":
            base = vals.mean()
        elif baseline == "quantile":
            base = torch.quantile(vals, quantile)
        else:
            raise ValueError(f"unknown tau baseline {baseline!r} (expected 'mean' or 'quantile')")
        x[mask] = torch.clamp((vals - base) / scale, min=BRANCH_POINT, max=X_MAX)
    return x


def user_taus(tau0: float, user_loss: torch.Tensor | None, n_users: int, baseline: str = "mean",
              quantile: float = 0.9, scale: float = 1.0, mask: torch.Tensor | None = None,
              tau_min: float = 0.0, tau_max: float = math.inf) -> torch.Tensor:
    """τ_u = τ0·exp(W(x_u)) (float64), clamped to [tau_min, tau_max]; all τ0 when no loss yet (epoch 0)."""
    if user_loss is None:
        return torch.full((n_users,), float(tau0), dtype=torch.float64)
    x = lambert_argument(user_loss, baseline, quantile, scale, mask)
    tau = tau0 * torch.exp(lambertw(x))
    return torch.clamp(tau, min=tau_min, max=tau_max)


# ---------------------------------------------------------------------------
# when the warm-up ends
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Warmup:
    """The warm-up on the data-only prior, and the rule that ends it.

    Why a rule and not a count of epochs: a count means ten times less
    movement of the embeddings at lr 1e-4 than at 1e-3, so no one count carries
    from one dataset to the next (ML-1M wants ~2 at lr 1e-3, Yelp2018 100 at
    1e-4: docs/results.md). The rule keeps the prior while it still helps: the
    warm-up ends after ``patience`` evaluations without a gain in the monitored
    metric under the prior (``patience = 0``: no rule), and at the latest after
    ``max_epochs``. ``ended_after`` is the last warm-up epoch, ``reason`` why it
    ended; both go to the history, the report and ``estimate-tau``.
    """

    max_epochs: int
    patience: int = 0
    best: float = -math.inf
    since: int = 0                      # evaluations since the last gain under the prior
    ended_after: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.ended_after is None and self.max_epochs <= 0:
            self.ended_after, self.reason = 0, "no warm-up"

    def active(self, epoch: int) -> bool:
        """Whether ``epoch`` (1-based) trains at the prior."""
        return self.ended_after is None and epoch <= self.max_epochs

    def observe(self, epoch: int, value: float | None, monitor: str = "the metric") -> str | None:
        """Record warm-up ``epoch``'s monitored ``value`` (None: not evaluated); the reason when it ended."""
        if not self.active(epoch):
            return None
        if value is not None and math.isfinite(value):
            if value > self.best:
                self.best, self.since = float(value), 0
            else:
                self.since += 1
        if self.patience and self.since >= self.patience:
            self.reason = f"no {monitor} gain under the prior for {self.patience} evaluations"
        elif epoch >= self.max_epochs:
            self.reason = f"{self.max_epochs} warm-up epochs done"
        else:
            return None
        self.ended_after = epoch
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Warmup":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


# ---------------------------------------------------------------------------
# what a checkpoint keeps
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TauState:
    """The temperature state between epochs (saved in checkpoints for exact resume).

    ``tau0`` is the value used in the epoch just finished, ``source`` says where
    it came from (fixed|none|prior|closed-form|fallback), ``reason`` why a guard
    intervened; ``user_loss``/``user_count`` are that epoch's per-user mean loss
    at τ = 1 (the input of the next epoch's τ_u).
    """

    tau0: float = float("nan")
    source: str = "none"
    reason: str | None = None
    log_term: float = float("nan")
    tau0_raw: float = float("nan")
    user_loss: torch.Tensor | None = None
    user_count: torch.Tensor | None = None

    @property
    def w0(self) -> float:
        return 1.0 / self.tau0 if self.tau0 and math.isfinite(self.tau0) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("user_loss", "user_count"):
            if d[key] is not None:
                d[key] = d[key].detach().cpu().clone()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TauState":
        return cls(**{f.name: d.get(f.name, f.default) for f in dataclasses.fields(cls)})
