"""Exact top-K through a bfloat16 screen: rank with cheap low-precision scores, then re-score the few candidates.

Why: a full-ranking pass is one (users x d)(d x items) float32 product plus a
selection, and the product dominates (docs/scaling.md: two thirds of a
Gowalla-size validation pass). On CPUs with native bfloat16 dot products
(``avx512_bf16`` / AMX) the same product in bfloat16 runs ~4x faster (docs/scaling.md). Its
scores are off by at most a known amount, so they can pick a small candidate
set that provably holds the exact top-K; the candidates are then re-scored
(float64 sums rounded to float32) and ranked with the same (score, lower
index) keys. The answer is the exact ranking, not an approximation of it: it
can differ from the full float32 product's only where two scores agree to
float32's last bit (the product's own rounding decides those), which moves no
metric beyond that noise.

The bound. bfloat16 keeps 8 significant bits (unit roundoff u = 2^-8). The
inputs are rounded (relative error <= u each), the products are accumulated
in float32 and the result rounded to bfloat16 (<= u), so for a user row a and
item row b: |s~ - s| <= (3u + 3u^2 + u^3 + d·2^-23)·‖a‖·‖b‖ <= eps·‖a‖·max‖b‖
(``eps_factor``; Cauchy–Schwarz bounds Σ|a_k b_k| by ‖a‖‖b‖).
If ``thr`` is a value with at least K items of screened score >= thr, those
items truly score >= thr - eps, so the K-th best true score t_K >= thr - eps,
and every item of the exact top-K (true score >= t_K) has a screened score
>= thr - 2·eps. The tightest such thr is the K-th largest screened score itself,
found among a first, looser candidate set. ``thr`` is the K-th largest maximum over interleaved chunks of
the row (K chunks each hold an item >= it), as in ``topk._chunked_topk_cpu``; only
the chunks whose maximum reaches thr - 2·eps can hold a candidate.

Guards: the screen is used only for float32 CPU embeddings on a CPU that
reports native bfloat16 (else the bfloat16 product is slow, not wrong); a row
whose candidate set is too large (masked rows, many near-equal scores) is
ranked by the full product; and the first screened block of a process is
also ranked by the full product and compared, score by score at each rank: a
difference beyond float32 rounding (a BLAS whose bfloat16 product does not
accumulate in float32, so the bound fails) turns the screen off for the process. ``ADAPTAU_SCREEN=0``
turns it off by hand (benchmarks compare both).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

U_BF16 = 2.0 ** -8
MIN_ITEMS = 4096                     # below this the float32 pass is already cheap
_state = {"verified": False, "disabled": False}


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux x86: avx512_bf16 or amx_bf16 in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def screen_applies(user_emb: torch.Tensor, item_emb: torch.Tensor, k: int) -> bool:
    """Whether the screen can rank these: float32 CPU tensors, and at least 16·k items (more chunks than k)."""
    return (user_emb.device.type == "cpu" and user_emb.dtype == torch.float32 and item_emb.dtype == torch.float32
            and k >= 1 and item_emb.shape[0] >= 16 * k)


def screen_enabled(user_emb: torch.Tensor, item_emb: torch.Tensor, k: int) -> bool:
    """Whether ``score_topk`` screens by default: where it applies, on a large catalogue and a native-bfloat16 CPU."""
    if os.environ.get("ADAPTAU_SCREEN", "1") == "0" or _state["disabled"]:
        return False
    return screen_applies(user_emb, item_emb, k) and item_emb.shape[0] >= MIN_ITEMS and cpu_has_bf16()


class ItemScreen:
    """The catalogue prepared once per ranking pass: bfloat16 rows and the largest row norm."""

    def __init__(self, item_emb: torch.Tensor):
        self.items = item_emb
        self.items_bf16 = item_emb.to(torch.bfloat16)
        self.max_norm = float(item_emb.norm(dim=1).max()) if item_emb.shape[0] else 0.0


def eps_factor(dim: int) -> float:
    """The screen's error bound per unit of ‖a‖·max‖b‖ (module docstring), rounded up."""
    u = U_BF16
    return 3 * u + 4 * u * u + dim * 2.0 ** -22


SCREEN_CHUNK = 8                     # items per interleaved chunk (measured: 8 beat 4, 16 and sqrt-sized 28)


def chunk_layout(n: int) -> tuple[int, int]:
    """(items per chunk c0, chunks C) of the interleaved chunks: chunk j holds columns j, j + C, j + 2C ...

    Small chunks: after the threshold only the members of the ~k chunks that
    reach it are read, and they sit C columns apart (a cache line each), so
    fewer members per chunk is less memory traffic. C = n / 8 > k because the
    screen applies only from n >= 16·k (``screen_applies``).
    """
    return SCREEN_CHUNK, n // SCREEN_CHUNK


def screened_topk(user_rows: torch.Tensor, screen: ItemScreen, flat_masked: torch.Tensor | None, k: int,
                  order_keys, max_candidates: int):
    """(vals, idx, exact_rows): the top-``k`` of rows whose candidate set was small, and the rows left to rank exactly.

    ``user_rows`` (B, d) float32; ``flat_masked``: offsets into the (B, m) block of the
    cells that never rank (training items); ``order_keys``: the exact path's
    (score, index) keys, so the ranking and its tie-break are the same.
    Only the chunks whose screened maximum reaches a row's threshold are looked
    at (about k of them), plus the columns past the last whole chunk.
    Rows in ``exact_rows`` have garbage in ``vals``/``idx``; the caller ranks them.
    """
    n_rows, m = user_rows.shape[0], screen.items.shape[0]
    approx = user_rows.to(torch.bfloat16) @ screen.items_bf16.t()            # (B, m) bfloat16
    if flat_masked is not None and flat_masked.numel():
        approx.view(-1).index_fill_(0, flat_masked, -torch.inf)
    c0, chunks = chunk_layout(m)
    whole = chunks * c0
    cmax = approx[:, :whole].view(n_rows, c0, chunks).amax(1).float()      # (B, C)
    thr = torch.from_numpy(np.partition(cmax.numpy(), chunks - k, axis=1)[:, chunks - k].copy())
    eps = eps_factor(user_rows.shape[1]) * user_rows.norm(dim=1) * screen.max_norm
    theta = _round_down(thr - 2 * eps)
    theta_bf = theta.to(torch.bfloat16)
    # candidates: the columns of each chunk whose maximum reaches theta, then the tail past the last chunk
    pair_rows, pair_chunks = torch.nonzero(cmax >= theta[:, None], as_tuple=True)
    in_chunks = approx[:, :whole].view(n_rows, c0, chunks).permute(0, 2, 1)[pair_rows, pair_chunks]  # (P, c0)
    pair, offset = torch.nonzero(in_chunks >= theta_bf[pair_rows, None], as_tuple=True)
    rows, cols = pair_rows[pair], pair_chunks[pair] + chunks * offset
    if whole < m:
        tail_rows, tail_cols = torch.nonzero(approx[:, whole:] >= theta_bf[:, None], as_tuple=True)
        rows, cols = torch.cat([rows, tail_rows]), torch.cat([cols, tail_cols + whole])
    order = torch.argsort(rows, stable=True)                 # group each row's candidates together
    rows, cols = rows[order], cols[order]
    counts = torch.bincount(rows, minlength=n_rows)
    exact_rows = torch.nonzero((counts < k) | (counts > max_candidates) | ~torch.isfinite(theta)).flatten()
    if len(exact_rows) < n_rows:                 # tighten: thr = the k-th largest screened score of the row
        cand = approx[rows, cols]
        width = int(counts.max())
        slot = torch.arange(rows.numel()) - (torch.cumsum(counts, 0) - counts)[rows]
        padded = torch.full((n_rows, width), -torch.inf, dtype=torch.float32)
        padded[rows, slot] = cand.float()
        kth = torch.topk(padded, min(k, width), dim=1).values[:, -1]
        tight = _round_down(kth - 2 * eps).to(torch.bfloat16)
        keep = cand >= tight[rows]
        rows, cols = rows[keep], cols[keep]
        counts = torch.bincount(rows, minlength=n_rows)
    vals = torch.empty((n_rows, k), dtype=torch.float32)
    idx = torch.empty((n_rows, k), dtype=torch.long)
    if len(exact_rows):
        keep = torch.ones(n_rows, dtype=torch.bool)
        keep[exact_rows] = False
        sel = keep[rows]
        rows, cols = rows[sel], cols[sel]
        counts = counts * keep
    if rows.numel() == 0:
        return vals, idx, exact_rows
    width = int(counts.max())
    slot = torch.arange(rows.numel()) - (torch.cumsum(counts, 0) - counts)[rows]
    padded_cols = torch.zeros((n_rows, width), dtype=torch.long)
    padded_cols[rows, slot] = cols
    valid = torch.zeros((n_rows, width), dtype=torch.bool)
    valid[rows, slot] = True
    cand_vals = rescore(user_rows, screen.items, padded_cols)
    keys = order_keys(cand_vals, padded_cols).masked_fill_(~valid, torch.iinfo(torch.int64).min)
    top = torch.topk(keys, k, dim=1).indices
    idx[:] = torch.gather(padded_cols, 1, top)
    vals[:] = torch.gather(cand_vals, 1, top)
    return vals, idx, exact_rows


def rescore(user_rows: torch.Tensor, items: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Float32 scores of each row against its own candidate columns ``cols`` (B, w): one batched product.

    Ranking by these is the exact ranking of the float32 scores up to their
    last bit: the full product's GEMM sums the d terms in another order, so a
    score may differ by float32 rounding (~1e-7 relative) and two items whose
    scores agree to that can come out in the other order — the one place the
    two paths differ (docs/scaling.md).
    """
    gathered = items.index_select(0, cols.reshape(-1)).view(cols.shape[0], cols.shape[1], -1)
    return torch.bmm(user_rows[:, None, :], gathered.transpose(1, 2)).squeeze(1)   # (B,1,d)(B,d,w): the fast form


def float32_slack(user_rows: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Per row, how far a float32 GEMM's score may sit from the exact one: d·2^-23·‖a‖·max‖b‖ (generous)."""
    return user_rows.shape[1] * 2.0 ** -23 * user_rows.norm(dim=1) * max_norm + 1e-30


def _round_down(x: torch.Tensor) -> torch.Tensor:
    """``x`` lowered just enough that rounding it to bfloat16 (half an ulp, <= |x|·2^-8) cannot raise it past x."""
    return x - x.abs() * (2 * U_BF16) - torch.finfo(torch.float32).tiny


def verified(first_block_agrees: bool) -> bool:
    """Record the first screened block's comparison with the exact path; False turns the screen off."""
    _state["verified"] = True
    if not first_block_agrees:
        _state["disabled"] = True
    return first_block_agrees


def needs_verification() -> bool:
    return not _state["verified"]
