"""The rival losses of issue #17, on ``AdapTauLoss``'s interface, and ``make_criterion`` that picks one.

Each is a ``torch.nn.Module`` whose ``forward(user_rows, pos_rows, negatives,
w_neg=1.0, w_pos=1.0, track_tau1=False)`` takes what ``AdapTauLoss`` takes (raw
user and positive rows, normalized here per ``norm``; a ``Negatives``; the run's
inverse temperatures 1/τ) and returns a ``BatchLoss``. Whether a loss uses the
run's temperatures, and whether it has a per-row loss at τ = 1 for Adap-τ's L_u,
is in ``RIVALS``; ``check_rival_settings`` refuses what cannot work, in one line.

* ``ccl`` — SimpleX's cosine contrastive loss (Mao et al., CIKM 2021):
  ``relu(1 − f(u,i)) + w·mean_j relu(f(u,j) − margin)``. No temperature.
* ``directau`` — DirectAU (Wang et al., KDD 2022): alignment ``‖ũ − ĩ‖²`` plus
  ``γ·(uniformity(users) + uniformity(items))/2`` over the batch. No negatives,
  no temperature.
* ``bsl`` — the bilateral softmax loss (Wu et al., ICDE 2024), per row as in the
  authors' code: ``−w_pos·f(u,i) + t2·logsumexp_j(w·f(u,j))``. Dividing by t2 shows
  what it is: the softmax loss with the positive scored at temperature t2·τ and
  the negatives at τ. It uses the run's τ (fixed or adaptive) as its τ1.
* ``learned-tau`` — the sampled softmax with τ = exp(log_tau) an ``nn.Parameter``
  of the loss, trained with the model and clamped to [τ_min, τ_max] (CLIP's recipe).
* ``logq`` (a setting of ``softmax`` with in-batch negatives) — the sampled
  softmax with each in-batch logit corrected by −log q_j (Yi et al., RecSys 2019).

The references in ``tests/test_rivals.py`` check values and gradients of each.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
import torch
from torch.nn import functional as F

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import LossSettings
from adaptau_cli.method.losses import (
    ADAPTAU_LOSSES,
    AdapTauLoss,
    BatchLoss,
    Negatives,
    fused_matrix_softmax,
    logsumexp_rows,
    maybe_normalize,
    normalize_flags,
    per_row_scores,
    row_weights,
    softmax_rows,
)

ADAPTIVE_MODES = ("adap-tau0", "adap-tau")


@dataclasses.dataclass(frozen=True)
class Rival:
    """What a rival loss needs from a run."""

    run_temperature: bool     # it scales its logits by the run's 1/τ (else the run must use --tau-mode none)
    tau1: bool                # it has a per-row loss at τ = 1 (Adap-τ's L_u); implies run_temperature
    softmax: bool             # it has a softmax denominator (--positive-in-denominator means something)
    cosine: bool              # it is defined on normalized vectors (--norm both only)
    negatives: str | None     # the only negatives mode it works with (None: any)
    why: str                  # why it takes no run temperature, for the refusal's hint


RIVALS: dict[str, Rival] = {
    "ccl": Rival(False, False, False, True, None, "CCL scores raw cosines against a margin, with no temperature"),
    "directau": Rival(False, False, False, True, "in-batch", "DirectAU has no temperature"),
    "bsl": Rival(True, True, True, False, None, ""),
    "learned-tau": Rival(False, False, True, False, None, "its τ is a parameter trained with the model"),
}


# ---------------------------------------------------------------------------
# scores against the negatives
# ---------------------------------------------------------------------------

def negative_scores(u: torch.Tensor, p: torch.Tensor, negatives: Negatives, norm_items: bool,
                    per_row_strategy: str = "auto") -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, M) scores f(u, j) of each row against its negatives, and which entries are negatives (None: all).

    ``u`` and ``p`` are the (normalized) user and positive rows. The same
    negatives as ``AdapTauLoss`` on its plain autograd path: in-batch masks the
    row's own positive (the diagonal) out of its negatives.
    """
    kind = negatives.kind
    if kind == "in-batch":
        return u @ p.t(), ~torch.eye(u.shape[0], dtype=torch.bool, device=u.device)
    items = maybe_normalize(negatives.items, norm_items)
    if kind in ("shared", "all"):
        return u @ items.t(), None
    if kind == "per-row":
        return per_row_scores(u, items, negatives.index, per_row_strategy), None
    if kind == "grouped":
        blocks = items.view(negatives.groups, -1, items.shape[-1])
        parts = [u[s:e] @ blocks[g].t() for g, (s, e) in enumerate(negatives.row_bounds(u.shape[0]))
                 if e > s]
        return torch.cat(parts), None
    raise ValueError(f"unknown negatives {kind!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean(1)
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1)


def _scaled(pos: torch.Tensor, w) -> torch.Tensor:
    return pos * (w.to(pos.dtype) if isinstance(w, torch.Tensor) else w)


def _col(w, like: torch.Tensor):
    if isinstance(w, torch.Tensor):
        return w.to(like.dtype)[:, None] if w.dim() == 1 else w.to(like.dtype)
    return w


class _PairLoss(torch.nn.Module):
    """What every rival shares: normalization per ``norm`` and the positive scores."""

    def __init__(self, norm: str = "both", per_row_strategy: str = "auto"):
        super().__init__()
        self.norm_users, self.norm_items = normalize_flags(norm)
        self.per_row_strategy = per_row_strategy

    def _rows(self, user_rows: torch.Tensor, pos_rows: torch.Tensor):
        u = maybe_normalize(user_rows, self.norm_users)
        p = maybe_normalize(pos_rows, self.norm_items)
        return u, p, (u * p).sum(1)

    def _negatives(self, u, p, negatives: Negatives):
        return negative_scores(u, p, negatives, self.norm_items, self.per_row_strategy)


# ---------------------------------------------------------------------------
# CCL (SimpleX)
# ---------------------------------------------------------------------------

class CosineContrastiveLoss(_PairLoss):
    """SimpleX's CCL: ``relu(1 − f(u,i)) + w·mean_{j∈N} relu(f(u,j) − margin)``.

    Why this form: the positive is pulled to cosine 1, and only the negatives
    above the margin push, each weighted w/|N| — hard negatives only, which is
    what SimpleX credits for its strength with many negatives (their config:
    1000 negatives, margin 0.9, w 150). It has no temperature: ``w_neg``/``w_pos``
    are ignored and there is no τ = 1 statistic (``row_loss_tau1`` is None).
    """

    def __init__(self, margin: float = 0.9, negative_weight: float = 150.0, norm: str = "both",
                 per_row_strategy: str = "auto"):
        super().__init__(norm, per_row_strategy)
        self.margin, self.negative_weight = float(margin), float(negative_weight)

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives, w_neg=1.0, w_pos=1.0,
                track_tau1: bool = False) -> BatchLoss:
        u, p, pos = self._rows(user_rows, pos_rows)
        neg, mask = self._negatives(u, p, negatives)
        rows = F.relu(1.0 - pos) + self.negative_weight * _masked_mean(F.relu(neg - self.margin), mask)
        return BatchLoss(rows.mean(), rows.detach(), None, pos.detach())


# ---------------------------------------------------------------------------
# DirectAU
# ---------------------------------------------------------------------------

class _Uniformity(torch.autograd.Function):
    """``log Σ_{a<b} exp(−t·‖x_a − x_b‖²)`` with a hand-written backward.

    Why: autograd over the B×B distance matrix makes about ten passes over
    B² floats (and a masked gather of the upper triangle with its scatter
    back); on a CPU that cost 70 ms per call at B = 2048, five times an
    Adap-τ step. Here the forward is one Gram GEMM and one exp pass; the
    weights E = exp(−t·sq − shift) are kept, and since
    ∂‖x_a − x_b‖²/∂x_a = 2(x_a − x_b) the gradient is one more GEMM:
    ``∂/∂x_a = −2t/S · (r_a·x_a − (E x)_a)`` with r the row sums of E (zero
    diagonal) and S the sum over distinct pairs. The shift (the largest
    exponent) keeps unnormalized rows far apart from underflowing to log 0.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, t: float):
        sq_norm = x.pow(2).sum(1)
        e = torch.mm(x, x.t()).mul_(2.0 * t)                     # becomes −t·‖x_a − x_b‖² in place
        e.sub_(sq_norm[:, None] * t).sub_(sq_norm[None, :] * t).clamp_(max=0.0)
        e.fill_diagonal_(float("-inf"))                          # a row is no pair of itself
        shift = e.max()
        e.sub_(shift).exp_()
        row_sums = e.sum(1)
        pair_sum = row_sums.sum(dtype=torch.float64) / 2         # every distinct pair counted once
        ctx.save_for_backward(x, e, row_sums)
        ctx.t, ctx.pair_sum = t, pair_sum
        return (torch.log(pair_sum) + shift.double()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, e, row_sums = ctx.saved_tensors
        scale = grad * (-2.0 * ctx.t / ctx.pair_sum).to(x.dtype)
        gx = row_sums[:, None] * x - torch.mm(e, x)
        return gx * scale, None


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """``log mean_{a<b} exp(−t·‖x_a − x_b‖²)`` over the distinct pairs of rows of ``x`` (0 with fewer than 2 rows).

    The squared distances come from the Gram matrix, not ``torch.pdist``: the
    same numbers, and a zero distance (a user twice in a batch) has gradient 0
    here where the square root inside pdist has none. ``_Uniformity`` holds
    the arithmetic and its gradient.
    """
    n = x.shape[0]
    if n < 2:
        return x.sum() * 0.0
    return _Uniformity.apply(x, float(t)) - math.log(n * (n - 1) / 2)


class DirectAULoss(_PairLoss):
    """DirectAU: ``‖ũ − ĩ‖² + γ·(uniformity(batch users) + uniformity(batch items))/2``.

    Why: it optimizes the two properties a contrastive loss reaches only
    indirectly — aligned positive pairs and embeddings spread uniformly on the
    sphere — with no negatives to sample. The uniformity is a batch term; each
    row's loss carries it whole, so that the mean row loss is the published
    batch loss. ``negatives``, ``w_neg`` and ``w_pos`` are ignored; no τ = 1 statistic.
    """

    def __init__(self, gamma: float = 1.0, norm: str = "both"):
        super().__init__(norm)
        self.gamma = float(gamma)

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives | None = None,
                w_neg=1.0, w_pos=1.0, track_tau1: bool = False) -> BatchLoss:
        u, p, pos = self._rows(user_rows, pos_rows)
        align = (u - p).pow(2).sum(1)
        uniform = (uniformity(u) + uniformity(p)) / 2
        rows = align + self.gamma * uniform
        return BatchLoss(rows.mean(), rows.detach(), None, pos.detach())


# ---------------------------------------------------------------------------
# BSL
# ---------------------------------------------------------------------------

class BilateralSoftmaxLoss(_PairLoss):
    """BSL per row, as the authors' code computes it: ``−w_pos·f(u,i) + t2·logsumexp_{j∈N}(w_neg·f(u,j))``.

    Source: Wu et al., "BSL: Understanding and Improving Softmax Loss for
    Recommendation" (ICDE 2024) and its code (github.com/junkangwu/BSL,
    ``utils/losses.py``, mode ``reweight``: ``−log(exp(s⁺/τ1) / (Σ exp(s⁻/τ1))^τ2)``).
    The paper applies the softmax's Log-Expectation-Exp (a DRO over the
    negatives) to the positives too; over a row's single positive that leaves
    the exponent t2 on the negatives' sum, i.e. (divide by t2) the positive
    scored at temperature t2·τ1 against negatives at τ1: t2 > 1 softens the
    pull on hard (possibly noisy) positives. t2 = 1 is the plain softmax.
    τ1 is the run's temperature (fixed, or Adap-τ's), and the τ = 1 statistic
    is this loss at τ1 = 1. (The authors' per-user ``multi`` mode averages
    exp(s⁺/τ1) over a user's rows of the batch; it needs user ids, which this
    interface does not carry.)
    """

    def __init__(self, tau2: float = 1.1, norm: str = "both", positive_in_denominator: bool = False,
                 per_row_strategy: str = "auto"):
        super().__init__(norm, per_row_strategy)
        self.tau2 = float(tau2)
        self.positive_in_denominator = bool(positive_in_denominator)

    def _bsl_rows(self, pos, neg, mask, w_neg, w_pos) -> torch.Tensor:
        lp = _scaled(pos, w_pos)
        ln = neg * _col(w_neg, neg)
        if mask is not None:
            ln = ln.masked_fill(~mask, float("-inf"))
        if self.positive_in_denominator:
            ln = torch.cat([lp[:, None], ln], 1)
        return self.tau2 * logsumexp_rows(ln) - lp

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives, w_neg=1.0, w_pos=1.0,
                track_tau1: bool = False) -> BatchLoss:
        u, p, pos = self._rows(user_rows, pos_rows)
        neg, mask = self._negatives(u, p, negatives)
        rows = self._bsl_rows(pos, neg, mask, w_neg, w_pos)
        tau1 = None
        if track_tau1:
            with torch.no_grad():
                tau1 = self._bsl_rows(pos.detach(), neg.detach(), mask, 1.0, 1.0)
        return BatchLoss(rows.mean(), rows.detach(), tau1, pos.detach())


# ---------------------------------------------------------------------------
# InfoNCE with a learned temperature
# ---------------------------------------------------------------------------

class LearnedTauSoftmaxLoss(_PairLoss):
    """The sampled softmax with τ = exp(log_tau), a parameter of this module trained with the model.

    Why a log: τ stays positive and Adam's steps are relative. Why the clamp:
    gradient descent on τ alone tends to shrink it without bound (sharper
    logits always fit the batch better); CLIP (Radford et al. 2021) starts at
    τ = 0.07 and keeps 1/τ <= 100 by clamping the parameter after each step —
    done here at the start of each forward, which is the same thing for the
    next step and needs nothing from the trainer. The run's ``w_neg``/``w_pos``
    are ignored (the run must use ``--tau-mode none``); no τ = 1 statistic.
    """

    def __init__(self, tau_init: float = 0.07, tau_min: float = 0.01, tau_max: float = 2.0, norm: str = "both",
                 positive_in_denominator: bool = False, per_row_strategy: str = "auto"):
        super().__init__(norm, per_row_strategy)
        if not 0 < tau_min <= tau_init <= tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_init <= tau_max, got {tau_min}, {tau_init}, {tau_max}")
        self.log_tau = torch.nn.Parameter(torch.tensor(math.log(tau_init), dtype=torch.float32))
        self.log_min, self.log_max = math.log(tau_min), math.log(tau_max)
        self.positive_in_denominator = bool(positive_in_denominator)

    @property
    def tau(self) -> float:
        """The temperature the next batch uses (the parameter, clamped)."""
        return math.exp(min(max(float(self.log_tau.detach()), self.log_min), self.log_max))

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives, w_neg=1.0, w_pos=1.0,
                track_tau1: bool = False) -> BatchLoss:
        with torch.no_grad():
            self.log_tau.clamp_(self.log_min, self.log_max)
        u, p, pos = self._rows(user_rows, pos_rows)
        neg, mask = self._negatives(u, p, negatives)
        w = torch.exp(-self.log_tau).to(pos.dtype)
        rows = softmax_rows(pos, neg, w, w, self.positive_in_denominator, mask)
        return BatchLoss(rows.mean(), rows.detach(), None, pos.detach())


# ---------------------------------------------------------------------------
# log-Q corrected in-batch softmax
# ---------------------------------------------------------------------------

def log_sampling_probability(item_popularity) -> torch.Tensor:
    """log q_j = log(|P_j| / |D|): how likely item j is drawn as an in-batch negative (one draw).

    An in-batch negative is another row's positive, so item j turns up in
    proportion to its training count. A count of 0 (never a positive, so never
    an in-batch negative) is read as 1 to keep the table finite.
    """
    pop = torch.as_tensor(np.asarray(item_popularity, dtype=np.float64)).clamp(min=1.0)
    return torch.log(pop) - math.log(float(pop.sum()))


class LogQSoftmaxLoss(_PairLoss):
    """The sampled softmax over in-batch negatives with the log-Q correction: every logit minus log q_j.

    In-batch negatives are other rows' positives, so they are drawn in
    proportion to popularity; the uncorrected softmax then over-penalizes
    popular items (it estimates a softmax under the popularity distribution, not
    the uniform one). Subtracting log q_j from each candidate's logit undoes the
    sampling's weight (Bengio & Senécal's importance-sampled softmax).

    Why the positive too: Yi et al. (RecSys 2019, "Sampling-bias-corrected
    neural modeling for large corpus item recommendations", eq. 3) correct
    every logit of the batch softmax, s^c(x, y_j) = s(x, y_j) − log p_j, the
    positive's included — the positive is itself one of the batch's sampled
    items — and TensorFlow's ``sampled_softmax_loss`` does the same
    (``subtract_log_q``: the true logits minus log of their expected count).
    With the positive in the denominator (``positive_in_denominator``) this
    changes the gradients; with it left out (the default, as AdapTauLoss) the
    positive's correction is a constant per row: it moves the loss value only.
    The correction applies to the scaled logit, w·f(u,j) − log q_j: log q is
    a property of the sampler, not of the temperature. The temperatures and
    the τ = 1 statistic are as AdapTauLoss's (on its plain autograd path, not
    the fused kernel), so every ``--tau-mode`` works with it.
    """

    def __init__(self, item_popularity, norm: str = "both", positive_in_denominator: bool = False):
        super().__init__(norm)
        # derived from the data, so not saved (persistent=False); float64, cast per batch to the rows' dtype
        self.register_buffer("log_q", log_sampling_probability(item_popularity), persistent=False)
        self.positive_in_denominator = bool(positive_in_denominator)

    def _corrected_rows(self, pos, neg, mask, log_q, w_neg, w_pos) -> torch.Tensor:
        lp = _scaled(pos, w_pos) - log_q
        ln = (neg * _col(w_neg, neg) - log_q[None, :]).masked_fill(~mask, float("-inf"))
        if self.positive_in_denominator:
            ln = torch.cat([lp[:, None], ln], 1)
        return logsumexp_rows(ln) - lp

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives, w_neg=1.0, w_pos=1.0,
                track_tau1: bool = False) -> BatchLoss:
        if negatives.kind != "in-batch":
            raise ValueError(f"the log-Q correction is for in-batch negatives, not {negatives.kind!r}")
        if negatives.index is None:
            raise ValueError("the log-Q correction needs the batch's positive item ids: Negatives.in_batch(pos_items)")
        u, p, pos = self._rows(user_rows, pos_rows)
        log_q = self.log_q[negatives.index].to(pos.dtype)
        rows = self._fused_rows(u, p, pos, log_q, w_neg, w_pos)
        tau1 = None
        if track_tau1:
            with torch.no_grad():
                neg, mask = self._negatives(u.detach(), p.detach(), negatives)
                tau1 = self._corrected_rows(pos.detach(), neg, mask, log_q, 1.0, 1.0)
        return BatchLoss(rows.mean(), rows.detach(), tau1, pos.detach())

    def _fused_rows(self, u, p, pos, log_q, w_neg, w_pos) -> torch.Tensor:
        """``_corrected_rows`` through the fused kernel (``fused_matrix_softmax``): the correction rides the GEMM.

        Why: the plain autograd graph makes ~10 passes over the B×B logits
        (3.6× an Adap-τ epoch on ML-1M). The fused kernel computes
        w_b·(u_b·n_j) per entry; with one column appended to each side,
        u' = [u, −1/w] and n' = [p, log q], the product is
        w_b·(u_b·p_j) − log q_j, the corrected logit, and the appended
        column's gradients are dropped by ``torch.cat``'s backward.
        """
        w = row_weights(w_neg, u.shape[0], u)
        u_ext = torch.cat([u, (-1.0 / w)[:, None]], 1)
        n_ext = torch.cat([p, log_q[:, None]], 1)
        rows, _ = fused_matrix_softmax(u_ext, n_ext, pos, w, w_pos, self.positive_in_denominator, mask_diag=True,
                                       want_tau1=False, pos_offset=log_q)
        return rows


# ---------------------------------------------------------------------------
# choosing and checking
# ---------------------------------------------------------------------------

def make_criterion(settings: LossSettings, item_popularity: Iterable[int] | np.ndarray | None = None,
                   adaptau: type[AdapTauLoss] = AdapTauLoss) -> torch.nn.Module:
    """The loss module a run's ``LossSettings`` ask for.

    softmax / bpr: ``adaptau(loss, norm, positive_in_denominator)``, the very
    object the trainer always built (golden runs stay bit-identical); the
    trainer passes the class it names, so an instrumented subclass stands in.
    ``logq``: ``LogQSoftmaxLoss`` (needs ``item_popularity``, the training count per item).
    """
    s = settings
    if s.logq:
        if s.loss != "softmax":
            raise ValueError(f"logq corrects the softmax, not loss {s.loss!r}")
        if item_popularity is None:
            raise ValueError("logq needs the items' training popularity")
        return LogQSoftmaxLoss(item_popularity, s.norm, s.positive_in_denominator)
    if s.loss in ADAPTAU_LOSSES:
        return adaptau(s.loss, s.norm, s.positive_in_denominator)
    if s.loss == "ccl":
        return CosineContrastiveLoss(s.ccl_margin, s.ccl_negative_weight, s.norm)
    if s.loss == "directau":
        return DirectAULoss(s.directau_gamma, s.norm)
    if s.loss == "bsl":
        return BilateralSoftmaxLoss(s.bsl_tau2, s.norm, s.positive_in_denominator)
    if s.loss == "learned-tau":
        return LearnedTauSoftmaxLoss(s.learned_tau_init, s.learned_tau_min, s.learned_tau_max, s.norm,
                                     s.positive_in_denominator)
    raise ValueError(f"unknown loss {s.loss!r}")


def learned_temperature(criterion: torch.nn.Module) -> float | None:
    """The τ a loss learns (``LearnedTauSoftmaxLoss``), for the history; None for every other loss."""
    return criterion.tau if isinstance(criterion, LearnedTauSoftmaxLoss) else None


def check_rival_settings(s: LossSettings, tau_mode: str) -> None:
    """Refuse, in one line (``UserError``), a rival loss or ``logq`` with settings it cannot honour."""
    _check_logq(s)
    rival = RIVALS.get(s.loss)
    if rival is None:
        return
    flag = f"--loss {s.loss}"
    if tau_mode in ADAPTIVE_MODES and not rival.tau1:
        raise UserError(f"{flag} has no per-row loss at τ = 1, which --tau-mode {tau_mode} learns its "
                        f"temperatures from", hint=f"use --tau-mode none ({rival.why})")
    if tau_mode != "none" and not rival.run_temperature:
        raise UserError(f"{flag} takes no temperature from --tau-mode {tau_mode}: {rival.why}",
                        hint="use --tau-mode none")
    if rival.negatives and s.negatives != rival.negatives:
        raise UserError(f"{flag} uses no sampled negatives, but --negatives {s.negatives} would draw them",
                        hint=f"use --negatives {rival.negatives} (it contrasts the batch's own users and items)")
    if rival.cosine and s.norm != "both":
        raise UserError(f"{flag} is defined on normalized embeddings, not --norm {s.norm}", hint="use --norm both")
    if s.positive_in_denominator and not rival.softmax:
        raise UserError(f"{flag} has no softmax denominator to put the positive in",
                        hint="drop --positive-in-denominator")
    _check_numbers(s)


def _check_logq(s: LossSettings) -> None:
    if not s.logq:
        return
    if s.loss != "softmax":
        raise UserError(f"--logq corrects the softmax's logits, not --loss {s.loss}", hint="use --loss softmax")
    if s.negatives != "in-batch":
        raise UserError(f"--logq corrects in-batch negatives (drawn by popularity); --negatives {s.negatives} "
                        "draws uniform items, which need no correction",
                        hint="use --negatives in-batch, or drop --logq")


def _check_numbers(s: LossSettings) -> None:
    checks = {
        "ccl": [(-1 < s.ccl_margin < 1, f"--ccl-margin must be a cosine in (-1, 1), got {s.ccl_margin}"),
                (s.ccl_negative_weight >= 0, f"--ccl-negative-weight must be >= 0, got {s.ccl_negative_weight}")],
        "directau": [(s.directau_gamma >= 0, f"--directau-gamma must be >= 0, got {s.directau_gamma}")],
        "bsl": [(s.bsl_tau2 > 0 and math.isfinite(s.bsl_tau2), f"--bsl-tau2 must be > 0, got {s.bsl_tau2}")],
        "learned-tau": [(0 < s.learned_tau_min <= s.learned_tau_init <= s.learned_tau_max < math.inf,
                         "need 0 < --learned-tau-min <= --learned-tau-init <= --learned-tau-max, got "
                         f"{s.learned_tau_min}, {s.learned_tau_init}, {s.learned_tau_max}")],
    }
    for ok, message in checks.get(s.loss, []):
        if not ok:
            raise UserError(message)
