"""Training losses: sampled softmax with per-row / shared / in-batch negatives, and BPR.

The sampled softmax of a row (user u, positive i, negatives N) is

    L = -w_pos·f(u,i) + logsumexp_{j∈N}(w_u·f(u,j))            (positive excluded)
    L = -w_pos·f(u,i) + logsumexp({w_pos·f(u,i)} ∪ {w_u·f(u,j)})  (positive included)

with w = 1/τ. ``w_u`` is a per-row vector (Adap-τ's 1/τ_u) or a scalar, and
``w_pos`` is the global 1/τ0 (the published choice) or the same per-row vector.
The published code leaves the positive out of the denominator; the paper's
formula keeps it in; ``positive_in_denominator`` selects.

Negatives (why four):
* ``per-row``: M uniform items per positive, with replacement, no filtering of
  the user's positives — the faithful MF setup. Scores are either gathered
  from one dense (B×m) product (when the catalogue is small next to M, a GEMM
  beats gathering B·M·d floats) or computed in bounded-memory row chunks by
  ``GatherScores`` (a custom autograd function that recomputes the gathered
  rows in backward instead of keeping a B×M×d tensor alive).
* ``shared``: M uniform items for the whole batch: scores are one (B×d)(d×M)
  product, the fast mode.
* ``grouped``: G blocks of M uniform items, each shared by one contiguous slice
  of the (shuffled) batch: G GEMMs of (B/G×d)(d×M), so the same FLOPs as
  ``shared``, but G·M distinct negatives per step instead of M. It sits between
  shared (G = 1) and per-row (G = B): on a large catalogue a shared block of
  1024 gives each item a negative gradient in ~2.5% of the steps (Yelp2018,
  38k items), G = 16 blocks in ~35%, at about shared's cost.
* ``in-batch``: the other positives of the batch (the published LightGCN
  setup); the diagonal (the row's own positive) is masked out of the negatives.
* ``all``: every item of the catalogue, once — the full softmax, the limit the
  uniform samplers estimate, with no sampling noise. Affordable when the
  catalogue is small (ML-1M: 3,043 items, one (B×d)(d×m) product per step, about
  half a per-row step's cost); on ML-1M as accurate as per-row sampling and
  better than shared (docs/results.md). Its L2 term weights each item by M/m,
  the expected count of M uniform draws, so ``l2`` means what it means for the
  samplers.

L2 (the published setup): ``l2·(‖e_u‖² + ‖e_i‖² + ‖e_negs‖²)/(2B)`` on the raw
(unnormalized, layer-0) rows. Per-row counts every one of the B·M negative
rows; shared counts each shared row once per batch row (so the term equals
per-row's in expectation); in-batch has no separate negative rows; ``all``
weights every item by ``neg_l2_weight`` (M/m: per-row's expectation again).

Every loss also returns the per-row loss at τ = 1, detached (Adap-τ's L_u is
its per-user mean over the previous epoch).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch.nn import functional as F

NEGATIVES = ("per-row", "shared", "grouped", "in-batch", "all")
ADAPTAU_LOSSES = ("softmax", "bpr")                            # AdapTauLoss
RIVAL_LOSSES = ("ccl", "directau", "bsl", "learned-tau")       # method/rivals.py (issue #17)
LOSSES = ADAPTAU_LOSSES + RIVAL_LOSSES
NORMS = ("both", "user", "item", "none")
CHUNK_ELEMENTS = 1 << 23   # gathered floats per chunk in the chunked per-row path (32 MiB)
DENSE_LIMIT = 1 << 26      # the dense per-row path is used while B·m stays under this


def normalize_flags(norm: str) -> tuple[bool, bool]:
    """(normalize users, normalize items) for ``--norm both|user|item|none``."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (expected one of {', '.join(NORMS)})")
    return norm in ("both", "user"), norm in ("both", "item")


def maybe_normalize(x: torch.Tensor, on: bool) -> torch.Tensor:
    """``F.normalize(x, dim=-1)`` when ``on`` (the same values), with ``RowNormalize``'s shorter backward."""
    return RowNormalize.apply(x) if on else x


class RowNormalize(torch.autograd.Function):
    """x / max(‖x‖, ε) along the last dim, ε = 1e-12, exactly as ``F.normalize`` computes it.

    Why: the autograd graph of ``F.normalize`` back-propagates through the
    norm, the clamp and the division in ~10 small ops; the closed form
    ∂/∂x = (g − y·⟨y, g⟩)/max(‖x‖, ε) is four, which is 0.3 ms of a 14 ms
    Amazon-Book step (three normalized batches). Rows whose norm is clamped
    have a constant denominator, so their gradient is g/ε, as autograd gives.
    """

    @staticmethod
    def forward(ctx, x):
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        denom = norm.clamp_min(1e-12)
        y = x / denom
        ctx.save_for_backward(y, denom, norm > 1e-12)
        return y

    @staticmethod
    def backward(ctx, g):
        y, denom, through = ctx.saved_tensors
        dot = (y * g).sum(-1, keepdim=True).mul_(through)
        return (g - y * dot) / denom


RowLookup = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dense_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (any index shape) with the usual dense gradient, a table-sized tensor."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[-1])


def sparse_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` whose gradient is sparse, the gathered rows only (``F.embedding(sparse=True)``).

    Why: a row-wise optimizer (``engine.optimizers.RowwiseAdam``) then costs
    O(batch) per step instead of O(catalogue); see docs/scaling.md.
    """
    return F.embedding(index, table, sparse=True)


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------

class GatherScores(torch.autograd.Function):
    """scores[b, j] = u[b] · table[idx[b, j]] in row chunks, never holding B×M×d for backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, table: torch.Tensor, idx: torch.Tensor, chunk: int):
        B, M = idx.shape
        out = u.new_empty(B, M)
        for s in range(0, B, chunk):
            rows = table[idx[s:s + chunk]]                       # (c, M, d)
            out[s:s + chunk] = torch.bmm(rows, u[s:s + chunk, :, None]).squeeze(-1)
        ctx.save_for_backward(u, table, idx)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, table, idx = ctx.saved_tensors
        chunk = ctx.chunk
        grad = grad.contiguous()
        gu = torch.empty_like(u) if ctx.needs_input_grad[0] else None
        gt = torch.zeros_like(table) if ctx.needs_input_grad[1] else None
        d = u.shape[1]
        for s in range(0, idx.shape[0], chunk):
            g = grad[s:s + chunk]                                # (c, M)
            ix = idx[s:s + chunk]
            if gu is not None:
                gu[s:s + chunk] = torch.bmm(g[:, None, :], table[ix]).squeeze(1)
            if gt is not None:
                contrib = g[:, :, None] * u[s:s + chunk, None, :]  # (c, M, d)
                gt.index_add_(0, ix.reshape(-1), contrib.reshape(-1, d))
        return gu, gt, None, None


def per_row_scores(u: torch.Tensor, items: torch.Tensor, idx: torch.Tensor,
                   strategy: str = "auto") -> torch.Tensor:
    """(B, M) scores of each row against its own sampled items ``idx`` (B, M).

    ``dense``: one (B×m) product then a gather; ``chunked``: ``GatherScores``;
    ``auto``: dense while the catalogue is at most 4·M items and B·m fits DENSE_LIMIT.
    """
    B, M = idx.shape
    m = items.shape[0]
    if strategy == "auto":
        strategy = "dense" if (m <= 4 * M and B * m <= DENSE_LIMIT) else "chunked"
    if strategy == "dense":
        return torch.gather(u @ items.t(), 1, idx)
    if strategy == "chunked":
        chunk = max(1, CHUNK_ELEMENTS // max(1, M * u.shape[1]))
        return GatherScores.apply(u, items, idx, chunk)
    raise ValueError(f"unknown per-row strategy {strategy!r}")


# ---------------------------------------------------------------------------
# the fused shared / in-batch softmax (the fast path)
# ---------------------------------------------------------------------------

FUSED_CHUNK_ELEMENTS = 1 << 19   # rows per chunk x M: 2 MiB of float32 (measured best of 1, 2, 4, 8 MiB)
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
UNSHIFTED_LIMIT = 64.0          # |base-2 logit| up to which 2^Z needs no max shift (float32: 2^±126)


class FusedMatrixSoftmax(torch.autograd.Function):
    """Per-row sampled softmax over the score matrix S = u·nᵀ, fused and chunked by rows.

    Why: with shared (or in-batch) negatives the work is three (B×d)(d×M)
    GEMMs, but a plain autograd graph also makes ~10 passes over the B×M
    logits (scale, max, subtract, exp, sum, the τ=1 copy, the backward
    softmax), and at Amazon-Book's B×M they are main-memory passes that cost
    about as much as the GEMMs on a CPU. Here the elementwise steps run on a
    block of rows right after its GEMM, while it is in cache, and the block's
    exponentials E = 2^(Z − c) are kept for backward: the softmax is
    E/Σ_j E, so backward is the two GEMMs alone, its per-row scale applied to
    (B×d) operands and results instead of to the B×M matrix.

    Exponentials are taken base 2 with log2(e)·w folded into the user rows
    before the GEMM (Z = (u·w·log2 e)·nᵀ): torch's CPU ``exp2`` is several
    times faster than ``exp``. The shift c is the row maximum, except for
    cosine scores (``bounded``) with |Z| ≤ ``UNSHIFTED_LIMIT`` (τ ≥ 0.0225):
    there c = 0 — 2^Z can neither overflow nor leave float32's normal range,
    and the max and subtract passes are skipped.

    Inputs: u (B,d); n (G,M,d) negative blocks, block g scoring the rows ``slices[g]`` = (start, end)
    (G = 1 and ((0, B),) for shared negatives, one block per row slice for grouped); lp (B,) positive
    logits already scaled (w_pos·f(u,i)), w (B,) = 1/τ_u for the negatives (not differentiated),
    ``include_pos``: the positive in the denominator; ``mask_diag``: in-batch
    (entry (r, r) is the row's own positive, not a negative).
    Returns (loss rows (B,), loss rows at τ = 1 (B,), not differentiable).
    The τ = 1 row uses the raw positive score ``pos1`` (B,).
    """

    @staticmethod
    def forward(ctx, u, n, lp, w, pos1, include_pos: bool, mask_diag: bool, chunk: int, bounded: bool,
                want_tau1: bool, slices: tuple[tuple[int, int], ...]):
        B = u.shape[0]
        M = n.shape[1]
        wl = w * LOG2E
        uw = u * wl[:, None]                         # Z = uw·nᵀ are the logits in base 2: the scale rides the GEMM
        lp2 = lp.detach() * LOG2E
        unshifted = bounded and B > 0 and float(wl.abs().max()) <= UNSHIFTED_LIMIT and (
            not include_pos or float(lp2.abs().max()) <= UNSHIFTED_LIMIT)
        E = u.new_empty(B, M)                        # 2^(Z - c), row by row
        tot = u.new_empty(B)                         # Σ_j E (the positive's term added after the loop)
        shift = u.new_zeros(B)                       # c
        tot1, shift1 = u.new_ones(B), u.new_zeros(B)   # the same at τ = 1 (ones: log2 gives 0 unless tracked)
        p2 = pos1 * LOG2E
        inv_w = 1.0 / w                              # Z / w = S·log2(e): the tau = 1 logits in base 2
        buf = u.new_empty(min(chunk, B), M) if want_tau1 else None
        for r0, r1, g in _row_blocks(slices, chunk):
            Ec = E[r0:r1]
            torch.mm(uw[r0:r1], n[g].t(), out=Ec)
            if mask_diag:  # the row's own positive is no negative: -inf, so every exp2 below gives 0
                rr = torch.arange(r0, r1, device=u.device)
                Ec[rr - r0, rr] = float("-inf")
            if want_tau1:
                z1 = torch.mul(Ec, inv_w[r0:r1, None], out=buf[: r1 - r0])
                if not bounded:  # cosines (|S| <= 1) need no max shift at τ = 1
                    shift1[r0:r1] = mx1 = _row_max(z1, p2[r0:r1] if include_pos else None, mask_diag)
                    z1.sub_(mx1[:, None])
                torch.sum(z1.exp2_(), 1, out=tot1[r0:r1])
            if not unshifted:
                shift[r0:r1] = mx = _row_max(Ec, lp2[r0:r1] if include_pos else None, mask_diag)
                Ec.sub_(mx[:, None])
            torch.sum(Ec.exp2_(), 1, out=tot[r0:r1])
        if include_pos:
            tot += torch.exp2(lp2 - shift)
            if want_tau1:
                tot1 += torch.exp2(p2 - shift1)
        lse2 = torch.log2(tot).add_(shift)           # log2 of the denominators
        lse1 = torch.log2(tot1).add_(shift1)
        ctx.save_for_backward(uw, n, lp, wl, E, tot, lse2)
        ctx.include_pos, ctx.slices = include_pos, slices
        rows1 = lse1 * LN2 - pos1
        ctx.mark_non_differentiable(rows1)
        return lse2 * LN2 - lp, rows1

    @staticmethod
    def backward(ctx, g, _g1):
        uw, n, lp, wl, E, tot, lse2 = ctx.saved_tensors
        g = g.contiguous()
        # dL/dZ = g·ln2·E/tot row by row: that scale s rides the (B×d) sides of the two GEMMs
        s = torch.where(tot > 0, g * LN2 / tot, torch.zeros_like(tot))
        su = uw * s[:, None]
        guw = torch.empty_like(uw)
        # each block's gradient transposed: (d×B)(B×M) runs ~20% faster than (M×B)(B×d)
        gnt = n.new_zeros(n.shape[0], n.shape[2], n.shape[1])
        for b, (r0, r1) in enumerate(ctx.slices):
            if r1 > r0:
                torch.mm(E[r0:r1], n[b], out=guw[r0:r1])
                torch.mm(su[r0:r1].t(), E[r0:r1], out=gnt[b])
        glp = -g
        if ctx.include_pos:
            glp = glp + g * torch.exp2(lp.detach() * LOG2E - lse2)
        return guw.mul_((s * wl)[:, None]), gnt.transpose(1, 2).contiguous(), glp, *([None] * 8)


def _row_blocks(slices: tuple[tuple[int, int], ...], chunk: int):
    """(first row, end row, block) for each run of at most ``chunk`` rows within each block's row slice."""
    for g, (start, end) in enumerate(slices):
        for r0 in range(start, end, chunk):
            yield r0, min(end, r0 + chunk), g


def _row_max(z: torch.Tensor, pos: torch.Tensor | None, mask_diag: bool) -> torch.Tensor:
    """Each row's largest logit, the positive's (``pos``) included; 0 for a row of -inf (in-batch with B = 1)."""
    mx = z.amax(1)
    if pos is not None:
        mx = torch.maximum(mx, pos)
    return torch.nan_to_num(mx, neginf=0.0) if mask_diag else mx


def row_weights(w, rows: int, like: torch.Tensor) -> torch.Tensor:
    """1/τ as a detached, contiguous (rows,) tensor of ``like``'s dtype, from a scalar or a 0-d / (rows,) tensor."""
    if isinstance(w, torch.Tensor):
        w = w.to(like.dtype)
    else:
        w = torch.full((rows,), float(w), dtype=like.dtype, device=like.device)
    return w.detach().expand(rows).contiguous()


def fused_matrix_softmax(u: torch.Tensor, n: torch.Tensor, pos: torch.Tensor, w_neg=1.0, w_pos=1.0,
                         positive_in_denominator: bool = False, mask_diag: bool = False,
                         bounded: bool = False, want_tau1: bool = True,
                         pos_offset: torch.Tensor | None = None,
                         bounds: list[tuple[int, int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the softmax over S = u·nᵀ (and the τ = 1 rows); see ``FusedMatrixSoftmax``.

    ``n``: (M, d), or (G, M, d) blocks of which block g serves the rows ``bounds[g]`` (grouped
    negatives: one kernel for all blocks). ``bounded``: the scores are cosines (|S| <= 1), so the
    τ = 1 rows need no max shift. ``pos_offset`` (B,): subtracted from the scaled positive logit
    (the log-Q correction).
    """
    B = u.shape[0]
    blocks = n if n.dim() == 3 else n[None]
    slices = tuple(bounds) if bounds is not None else ((0, B),)
    if len(slices) != blocks.shape[0]:
        raise ValueError(f"{blocks.shape[0]} negative blocks for {len(slices)} row slices")
    M = blocks.shape[1]
    w = row_weights(w_neg, B, u)
    lp = pos * (w_pos.to(pos.dtype) if isinstance(w_pos, torch.Tensor) else w_pos)
    if pos_offset is not None:
        lp = lp - pos_offset
    chunk = max(1, FUSED_CHUNK_ELEMENTS // max(1, M))
    return FusedMatrixSoftmax.apply(u, blocks, lp, w, pos.detach(), bool(positive_in_denominator), mask_diag, chunk,
                                    bool(bounded), bool(want_tau1), slices)


# ---------------------------------------------------------------------------
# losses on score matrices
# ---------------------------------------------------------------------------

def _as_col(w, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(w, torch.Tensor) and w.dim() == 1:
        return w.to(like.dtype)[:, None]
    return w if not isinstance(w, torch.Tensor) else w.to(like.dtype)


class _LogSumExpRows(torch.autograd.Function):
    """``logsumexp(x, 1)`` with base-2 exponentials (torch's CPU exp2 is much faster than exp)."""

    @staticmethod
    def forward(ctx, x):
        x2 = x * LOG2E
        mx = x2.amax(1)
        mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        lse2 = torch.log2(torch.exp2(x2 - mx[:, None]).sum(1)) + mx
        ctx.save_for_backward(x2, lse2)
        return lse2 * LN2

    @staticmethod
    def backward(ctx, g):
        x2, lse2 = ctx.saved_tensors
        return torch.exp2(x2 - lse2[:, None]).mul_(g[:, None])


def logsumexp_rows(x: torch.Tensor) -> torch.Tensor:
    return _LogSumExpRows.apply(x)


def softmax_rows(pos: torch.Tensor, neg: torch.Tensor, w_neg=1.0, w_pos=1.0,
                 positive_in_denominator: bool = False, neg_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row sampled-softmax loss. ``pos`` (B,), ``neg`` (B, M), ``w_*`` scalar or (B,) = 1/τ.

    ``neg_mask`` (B, M) bool marks the entries that count as negatives.
    """
    lp = pos * (w_pos.to(pos.dtype) if isinstance(w_pos, torch.Tensor) else w_pos)
    ln = neg * _as_col(w_neg, neg)
    if neg_mask is not None:
        ln = ln.masked_fill(~neg_mask, float("-inf"))
    if positive_in_denominator:
        ln = torch.cat([lp[:, None], ln], 1)
    return logsumexp_rows(ln) - lp


def bpr_rows(pos: torch.Tensor, neg: torch.Tensor, w_neg=1.0, w_pos=1.0,
             neg_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row BPR: mean over the row's negatives of ``-log σ(w_pos·f(u,i) - w_u·f(u,j))``."""
    lp = pos * (w_pos.to(pos.dtype) if isinstance(w_pos, torch.Tensor) else w_pos)
    ln = neg * _as_col(w_neg, neg)
    terms = F.softplus(ln - lp[:, None])
    if neg_mask is not None:
        terms = terms * neg_mask
        return terms.sum(1) / neg_mask.sum(1).clamp(min=1)
    return terms.mean(1)


def group_bounds(rows: int, groups: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal row slices ``[(start, end)]`` of a batch, one per negative block."""
    edges = [rows * g // groups for g in range(groups + 1)]
    return list(zip(edges[:-1], edges[1:]))


# ---------------------------------------------------------------------------
# one batch, end to end
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class BatchLoss:
    loss: torch.Tensor                    # scalar: mean row loss (+ the L2 term in ``batch_loss``), back-propagated
    row_loss: torch.Tensor                # (B,) detached, at the run's temperatures
    row_loss_tau1: torch.Tensor | None    # (B,) detached, at τ = 1 (for Adap-τ's L_u), if asked
    pos_score: torch.Tensor               # (B,) detached positive-pair scores f(u, i)


@dataclasses.dataclass
class Negatives:
    """What a batch's rows are contrasted with; build one with the class methods.

    ``items`` are raw (un-normalized) item vectors: the shared block (M, d), the
    grouped blocks stacked (G·M, d), or the whole catalogue (m, d) for
    ``per_row`` (sampled by ``index`` (B, M), scored in bounded memory) and
    ``catalogue`` (the full softmax). ``in_batch`` uses the batch's own positives;
    its ``index``, when given, holds their item ids (the log-Q correction of
    ``rivals.LogQSoftmaxLoss`` looks up each negative's popularity by it).
    """

    kind: str
    items: torch.Tensor | None = None
    index: torch.Tensor | None = None
    groups: int = 1
    bounds: list[tuple[int, int]] | None = None   # grouped: each block's row slice (default: group_bounds)

    def row_bounds(self, rows: int) -> list[tuple[int, int]]:
        """The row slice ``[(start, end)]`` each grouped block serves in a batch of ``rows``.

        Near-equal slices unless given: a data-parallel rank holds part of the
        global batch, and its rows keep the blocks they had in the whole batch.
        """
        return self.bounds if self.bounds is not None else group_bounds(rows, self.groups)

    @classmethod
    def shared(cls, block: torch.Tensor) -> "Negatives":
        return cls("shared", block)

    @classmethod
    def grouped(cls, blocks: torch.Tensor, groups: int, bounds: list[tuple[int, int]] | None = None) -> "Negatives":
        """``groups`` blocks of M rows stacked as (groups·M, d); block g serves row slice g of the batch
        (``bounds[g]`` when given, else the g-th of ``groups`` near-equal slices)."""
        return cls("grouped", blocks, groups=int(groups), bounds=bounds)

    @classmethod
    def per_row(cls, catalogue: torch.Tensor, index: torch.Tensor) -> "Negatives":
        return cls("per-row", catalogue, index)

    @classmethod
    def in_batch(cls, pos_items: torch.Tensor | None = None) -> "Negatives":
        """The batch's own positives; ``pos_items`` (B,) are their item ids, if a loss needs them."""
        return cls("in-batch", index=pos_items)

    @classmethod
    def catalogue(cls, items: torch.Tensor) -> "Negatives":
        return cls("all", items)

    @classmethod
    def from_indices(cls, kind: str, item_table: torch.Tensor, neg_items: torch.Tensor | None,
                     pos_items: torch.Tensor | None = None,
                     bounds: list[tuple[int, int]] | None = None) -> "Negatives":
        """The negatives a sampler drew as indices into ``item_table`` (see ``batch_loss`` for the shapes).

        ``pos_items``: the batch's positive item ids, kept by in-batch negatives (which they are).
        ``gather_batch`` gathers shared and grouped rows with the positives' instead.
        """
        if kind not in NEGATIVES:
            raise ValueError(f"unknown negatives {kind!r} (expected one of {', '.join(NEGATIVES)})")
        if kind == "shared":
            return cls.shared(dense_rows(item_table, neg_items))
        if kind == "grouped":
            return cls.grouped(dense_rows(item_table, neg_items.reshape(-1)), neg_items.shape[0], bounds)
        if kind == "per-row":
            return cls.per_row(item_table, neg_items)
        if kind == "all":
            return cls.catalogue(item_table)
        return cls.in_batch(pos_items)


@dataclasses.dataclass
class BatchRows:
    """What ``gather_batch`` gathered: (B, d) user and positive rows, the ``Negatives``, and their rows
    (shared: (M, d), grouped: (G·M, d); None for the other kinds)."""
    users: torch.Tensor
    pos: torch.Tensor
    negatives: Negatives
    neg_rows: torch.Tensor | None


class AdapTauLoss(torch.nn.Module):
    """Sampled softmax (or BPR) with per-row temperatures, for any model's user and item vectors.

    ``forward(user_rows, pos_rows, negatives, w_neg, w_pos)`` takes the raw
    vectors of a batch's users and positive items (normalized here, per
    ``norm``), a ``Negatives`` and the inverse temperatures 1/τ (scalars or
    (B,) tensors, e.g. from ``TemperatureController.inverse_temperatures``), and
    returns a ``BatchLoss``: the mean row loss to back-propagate, the detached
    per-row losses, and with ``track_tau1`` the per-row losses at τ = 1 that
    Adap-τ's L_u is built from. The fused kernels (``FusedMatrixSoftmax``) run
    underneath for shared, grouped, in-batch and all-item negatives. L2 is a
    separate term on the raw tables: ``l2_penalty``.
    """

    def __init__(self, loss: str = "softmax", norm: str = "both", positive_in_denominator: bool = False,
                 fused: bool = True, per_row_strategy: str = "auto"):
        super().__init__()
        if loss not in ADAPTAU_LOSSES:   # the rivals are other modules: rivals.make_criterion builds any loss
            raise ValueError(f"unknown loss {loss!r} for AdapTauLoss (expected one of {', '.join(ADAPTAU_LOSSES)})")
        self.kind = loss
        self.norm_users, self.norm_items = normalize_flags(norm)
        self.positive_in_denominator = bool(positive_in_denominator)
        self.fused = bool(fused)
        self.per_row_strategy = per_row_strategy

    def forward(self, user_rows: torch.Tensor, pos_rows: torch.Tensor, negatives: Negatives, w_neg=1.0, w_pos=1.0,
                track_tau1: bool = False) -> BatchLoss:
        nu, ni = self.norm_users, self.norm_items
        softmax = self.kind == "softmax"
        include = self.positive_in_denominator
        B = user_rows.shape[0]
        u = maybe_normalize(user_rows, nu)
        p = maybe_normalize(pos_rows, ni)
        pos = (u * p).sum(1)
        mask = None
        tau1 = None
        kind = negatives.kind
        use_fused = self.fused and softmax and kind not in ("per-row", "grouped")
        if kind == "grouped":
            blocks = maybe_normalize(negatives.items, ni).view(negatives.groups, -1, negatives.items.shape[-1])
            bounds = negatives.row_bounds(B)
            if self.fused and softmax:
                use_fused = True
                rows, rows1 = fused_matrix_softmax(u, blocks, pos, w_neg, w_pos, include, bounded=nu and ni,
                                                   want_tau1=track_tau1, bounds=bounds)
                tau1 = rows1 if track_tau1 else None
            else:
                neg = torch.cat([u[s:e] @ blocks[g].t() for g, (s, e) in enumerate(bounds) if e > s])
        elif use_fused:
            n = maybe_normalize(negatives.items, ni) if kind in ("shared", "all") else p
            rows, rows1 = fused_matrix_softmax(u, n, pos, w_neg, w_pos, include, mask_diag=kind == "in-batch",
                                               bounded=nu and ni, want_tau1=track_tau1)
            tau1 = rows1 if track_tau1 else None
        elif kind in ("shared", "all"):
            neg = u @ maybe_normalize(negatives.items, ni).t()
        elif kind == "per-row":
            neg = per_row_scores(u, maybe_normalize(negatives.items, ni), negatives.index, self.per_row_strategy)
        else:
            neg = u @ p.t()
            mask = ~torch.eye(B, dtype=torch.bool, device=u.device)

        if not use_fused:
            rows = (softmax_rows(pos, neg, w_neg, w_pos, include, mask) if softmax
                    else bpr_rows(pos, neg, w_neg, w_pos, mask))
            if track_tau1:
                with torch.no_grad():
                    tau1 = (softmax_rows(pos.detach(), neg.detach(), 1.0, 1.0, include, mask) if softmax
                            else bpr_rows(pos.detach(), neg.detach(), 1.0, 1.0, mask))
        return BatchLoss(rows.mean(), rows.detach(), tau1, pos.detach())


def gather_batch(user_table: torch.Tensor, item_table: torch.Tensor, users: torch.Tensor, pos_items: torch.Tensor,
                 negatives: str, neg_items: torch.Tensor | None, bounds: list[tuple[int, int]] | None = None,
                 lookup: RowLookup = dense_rows) -> BatchRows:
    """A batch's user rows, positive rows and ``Negatives``, with one lookup per table.

    Why one: each lookup adds its own term to the table's gradient — with
    ``dense_rows`` a table-sized scatter, with ``sparse_rows`` one more block for
    the optimizer to merge — so shared and grouped negatives are gathered in
    the same lookup as the positives. ``bounds``: grouped row slices (default
    ``group_bounds``). The rows serve ``l2_penalty(rows=...)`` when the tables
    are the model's raw tables.
    """
    user_rows = lookup(user_table, users)
    if negatives in ("shared", "grouped"):
        B = pos_items.shape[0]
        flat = neg_items.reshape(-1)
        pos_rows, neg_rows = lookup(item_table, torch.cat([pos_items, flat])).split([B, flat.shape[0]])
        negs = (Negatives.shared(neg_rows) if negatives == "shared"
                else Negatives.grouped(neg_rows, neg_items.shape[0], bounds))
        return BatchRows(user_rows, pos_rows, negs, neg_rows)
    negs = Negatives.from_indices(negatives, item_table, neg_items, pos_items, bounds)   # no rows to gather
    return BatchRows(user_rows, lookup(item_table, pos_items), negs, None)


def l2_penalty(l2: float, user_table: torch.Tensor, item_table: torch.Tensor, users: torch.Tensor,
               pos_items: torch.Tensor, negatives: str, neg_items: torch.Tensor | None,
               neg_l2_weight: float = 1.0, bounds: list[tuple[int, int]] | None = None,
               rows: BatchRows | None = None) -> torch.Tensor | float:
    """``l2·(‖e_u‖² + ‖e_i‖² + Σ‖e_neg‖²)/(2B)`` on the raw tables (the published term; see the module docstring).

    Each negative row counts as often as it is a negative of some row: per-row
    by its draw count, shared B times, grouped by its slice's size, all-item by
    ``neg_l2_weight`` (M/m) per row; in-batch adds nothing. ``rows``: the
    batch's rows already gathered from these same tables (``gather_batch``),
    used instead of a second lookup — and the only way the term's gradient
    stays sparse under ``sparse_rows``.
    """
    if l2 <= 0:
        return 0.0
    B = users.shape[0]
    if rows is not None:
        reg = rows.users.pow(2).sum() + rows.pos.pow(2).sum()
    else:
        reg = dense_rows(user_table, users).pow(2).sum() + dense_rows(item_table, pos_items).pow(2).sum()
    neg_rows = rows.neg_rows if rows is not None else None
    if negatives == "per-row":   # Σ_j count_j·‖e_j‖²: the same sum, without a B·M scatter in backward
        counts = torch.bincount(neg_items.reshape(-1), minlength=item_table.shape[0]).to(item_table.dtype)
        reg = reg + (counts * item_table.pow(2).sum(1)).sum()
    elif negatives == "shared":
        neg_rows = dense_rows(item_table, neg_items) if neg_rows is None else neg_rows
        reg = reg + B * neg_rows.pow(2).sum()
    elif negatives == "grouped":   # block g is a negative of each of its slice's rows
        slices = bounds if bounds is not None else group_bounds(B, neg_items.shape[0])
        sizes = torch.tensor([e - s for s, e in slices], dtype=item_table.dtype,
                             device=item_table.device)
        neg_rows = dense_rows(item_table, neg_items) if neg_rows is None else neg_rows.view(*neg_items.shape, -1)
        reg = reg + (sizes * neg_rows.pow(2).sum((1, 2))).sum()
    elif negatives == "all":
        reg = reg + B * neg_l2_weight * item_table.pow(2).sum()
    return l2 * reg / (2.0 * B)


def batch_loss(user_table: torch.Tensor, item_table: torch.Tensor, users: torch.Tensor,
               pos_items: torch.Tensor, neg_items: torch.Tensor | None, *, negatives: str = "shared",
               loss: str = "softmax", norm: str = "both", w_neg=1.0, w_pos=1.0,
               positive_in_denominator: bool = False, l2: float = 0.0,
               user_weight: torch.Tensor | None = None, item_weight: torch.Tensor | None = None,
               track_tau1: bool = False, per_row_strategy: str = "auto", fused: bool = True,
               neg_l2_weight: float = 1.0) -> BatchLoss:
    """The loss of one batch from the model's (user, item) tables: ``AdapTauLoss`` plus ``l2_penalty``.

    ``neg_items``: (B, M) for per-row, (M,) for shared, (G, M) for grouped (row slice g of
    ``group_bounds(B, G)`` against block g), ignored for in-batch and all.
    ``user_weight``/``item_weight``: the raw layer-0 tables the L2 term is taken on
    (default: the given tables). ``w_neg``/``w_pos``: 1/τ, scalar or (B,).
    ``fused``: use ``FusedMatrixSoftmax`` for the softmax with shared / in-batch
    negatives (same numbers as the plain autograd path, which the tests check).
    ``neg_l2_weight``: with ``all``, the L2 weight of each item per row (M/m).
    """
    criterion = AdapTauLoss(loss, norm, positive_in_denominator, fused, per_row_strategy)
    rows = gather_batch(user_table, item_table, users, pos_items, negatives, neg_items)
    out = criterion(rows.users, rows.pos, rows.negatives, w_neg, w_pos, track_tau1)
    if l2 > 0:
        own = user_weight is None and item_weight is None   # the L2 term is on the tables just gathered
        out.loss = out.loss + l2_penalty(l2, user_table if user_weight is None else user_weight,
                                         item_table if item_weight is None else item_weight, users, pos_items,
                                         negatives, neg_items, neg_l2_weight, rows=rows if own else None)
    return out
