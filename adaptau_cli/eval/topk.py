"""Exact top-K of user x item scores in bounded memory, with a deterministic tie-break.

Scoring runs in blocks of users so memory stays bounded at
``block x n_items`` floats whatever the catalogue size: the block is at most
``batch_users``, small enough that one block of scores fits in
``max_block_bytes`` (256 MiB by default) and, for small catalogues, about a
million scores so the selection runs in cache (``block_size``; a 1M-item
catalogue is scored 64 users at a time).

Ties are broken deterministically: at equal score the lower item index ranks
first (``torch.topk`` alone gives no such guarantee), so results do not depend
on the device, the block size or the thread count. On the CPU the top-K is
found without a full-row sort or ``topk`` (see ``_chunked_topk_cpu``): that
selection, not the matrix product, dominated the cost. On large catalogues
and CPUs with native bfloat16 the product itself is screened first
(``eval/screen.py``); then two items whose float32 scores agree to the last
bit may come out in the other order than the full product would give.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from adaptau_cli.eval import screen as screening

DEFAULT_MAX_BLOCK_BYTES = 256 * 2**20


CACHE_SCORES = 2**20


def block_size(n_items: int, batch_users: int, max_block_bytes: int | None = DEFAULT_MAX_BLOCK_BYTES,
               bytes_per_score: int = 4, cache_scores: int | None = None) -> int:
    """Users scored at once.

    ``batch_users`` is the upper bound; the block is shrunk so that one block of
    scores fits ``max_block_bytes`` (bounded memory), and to about ``CACHE_SCORES``
    scores (but not below 64 users) so that the selection passes over a block run
    in cache -- measured ~15% faster on ML-1M than 1024-user blocks.
    """
    bs = max(1, int(batch_users))
    bs = min(bs, max(64, (cache_scores or CACHE_SCORES) // max(1, n_items)))
    if max_block_bytes:
        bs = min(bs, max(1, int(max_block_bytes) // max(1, n_items * bytes_per_score)))
    return bs


def _order_keys(vals: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """int64 keys whose descending order is (score descending, item index ascending).

    The float32 score is mapped to an order-preserving int32 (flip the magnitude
    bits of negatives; -0.0 is folded onto +0.0 first) in the high half, and
    ``2^32 - 1 - index`` in the low half, so sorting the keys gives the exact,
    deterministic ranking with no separate tie-break pass.
    """
    bits = (vals.float() + 0.0).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (bits.to(torch.int64) << 32) + (0xFFFFFFFF - cols)


def _exact_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of full rows with the lower-index tie-break (any device and dtype; the obvious path)."""
    cols = torch.arange(scores.shape[1], device=scores.device).expand(scores.shape[0], -1)
    if scores.dtype in (torch.float32, torch.float16, torch.bfloat16):
        idx = torch.topk(_order_keys(scores, cols), k, dim=1).indices
        return torch.gather(scores, 1, idx), idx
    vals, idx = torch.sort(scores, dim=1, descending=True, stable=True)
    return vals[:, :k], idx[:, :k]


def _left_align(mask: torch.Tensor, values: torch.Tensor, fill) -> torch.Tensor:
    """Per row, the ``values`` where ``mask`` holds, moved to the left; the rest ``fill``."""
    width = int(mask.sum(1).max()) if mask.numel() else 0
    pos = torch.where(mask, torch.cumsum(mask, 1) - 1, width)
    out = torch.full((mask.shape[0], width + 1), fill, dtype=values.dtype)
    out.scatter_(1, pos, values)
    return out[:, :width]


def _chunked_topk_cpu(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of float32 rows on the CPU, without a full-row ``topk``.

    Each row is cut into C interleaved chunks (chunk j = columns j, j+C, j+2C ...).
    ``thr``, the k-th largest chunk maximum, is found with ``np.partition``; at
    least k items score >= thr, so every top-k item (and every item tied with
    one) scores >= thr and lies in one of the k chunks whose maximum is >= thr.
    Only those chunks' items (plus the few leftover columns) are looked at: the
    ones >= thr are kept and ranked with exact (score, index) keys. A row where
    more than k chunk maxima reach thr (equal scores, or fewer than k unmasked
    items) is ranked by the full-row exact path instead.
    """
    n_rows, n = scores.shape
    c0 = max(2, n // max(k + 1, int((k * n) ** 0.5)))       # items per chunk
    C = n // c0                                              # chunks (> k)
    m = C * c0
    cmax = scores[:, :m].view(n_rows, c0, C).amax(1)
    thr = torch.from_numpy(np.partition(cmax.numpy(), C - k, axis=1)[:, C - k].copy())
    chosen = cmax >= thr[:, None]
    good = chosen.sum(1) == k
    vals = torch.empty((n_rows, k), dtype=scores.dtype)
    idx = torch.empty((n_rows, k), dtype=torch.long)
    rows = torch.nonzero(good).flatten()
    if len(rows):
        chunks = torch.nonzero(chosen[rows])[:, 1].view(len(rows), k)
        cols = (chunks[:, :, None] + C * torch.arange(c0)).view(len(rows), k * c0)
        if m < n:
            cols = torch.cat([cols, torch.arange(m, n).expand(len(rows), n - m)], 1)
        sub = scores[rows] if len(rows) < n_rows else scores
        cand = torch.gather(sub, 1, cols)
        keep = cand >= thr[rows, None]
        keys = _left_align(keep, _order_keys(cand, cols), torch.iinfo(torch.int64).min)
        top = np.sort(keys.numpy(), axis=1)[:, :-k - 1:-1]          # the k largest keys, best first
        top_idx = torch.from_numpy(np.ascontiguousarray(0xFFFFFFFF - (top & 0xFFFFFFFF)))
        idx[rows] = top_idx
        vals[rows] = torch.gather(sub, 1, top_idx)
    bad = torch.nonzero(~good).flatten()
    step = max(1, 2**22 // n)
    for s in range(0, len(bad), step):
        b = bad[s:s + step]
        vals[b], idx[b] = _exact_topk(scores[b], k)
    return vals, idx


def _topk_lowest_index(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row, best first, equal scores ordered by ascending column index."""
    n = scores.shape[1]
    if scores.device.type == "cpu" and scores.dtype == torch.float32 and n >= max(256, 8 * k):
        return _chunked_topk_cpu(scores, k)
    return _exact_topk(scores, k)


def score_topk(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
               exclude: sp.csr_matrix | None, k: int, batch_users: int = 1024,
               max_block_bytes: int | None = DEFAULT_MAX_BLOCK_BYTES,
               return_scores: bool = False, screen: bool | None = None):
    """Top-k item indices per user by inner product of the given (scoring-ready) embeddings.

    ``exclude`` rows are masked to -inf (training items, and validation items when
    ranking test). Returns an int64 array of shape (len(users), k); with
    ``return_scores`` also the float32 scores of those items (-inf = masked).
    ``screen``: rank through the exact bfloat16 screen (``eval/screen.py``: the
    float32 ranking up to last-bit ties, faster on CPUs with native bfloat16);
    None = where it pays.
    """
    n_items = item_emb.shape[0]
    k = min(k, n_items)
    users = np.asarray(users, dtype=np.int64)
    out = np.empty((len(users), k), dtype=np.int64)
    out_scores = np.empty((len(users), k), dtype=np.float32) if return_scores else None
    item_t = item_emb.t()                     # a view: BLAS reads it transposed, no copy of the catalogue
    device = user_emb.device
    use_screen = (screening.screen_enabled(user_emb, item_emb, k) if screen is None
                  else bool(screen) and screening.screen_applies(user_emb, item_emb, k))
    # the screen's block holds 2-byte scores and its passes touch ~k chunks a row: 8x the float32 block
    bs = block_size(n_items, batch_users, max_block_bytes, item_emb.element_size(),
                    cache_scores=CACHE_SCORES * (8 if use_screen else 1))
    items = screening.ItemScreen(item_emb) if use_screen else None
    if exclude is not None:
        # the masked cells of all requested users, as flat offsets into a block of scores
        sub = exclude[users]
        ex_ptr = sub.indptr
        ex_flat = torch.as_tensor(np.repeat(np.arange(len(users), dtype=np.int64) * n_items, np.diff(ex_ptr))
                                  + sub.indices.astype(np.int64), device=device)
    with torch.no_grad():
        for start in range(0, len(users), bs):
            block = users[start:start + bs]
            rows = user_emb[torch.as_tensor(block, dtype=torch.long, device=device)]
            flat = (ex_flat[ex_ptr[start]:ex_ptr[start + len(block)]] - start * n_items
                    if exclude is not None else None)
            vals = None
            if items is not None:
                vals, idx, fallbacks = _screened_block(rows, items, item_t, flat, k, screen is None)
                if vals is None or 2 * fallbacks > len(block):
                    items = None              # it disagreed with the full product, or it does not pay here
            if vals is None:
                vals, idx = _topk_lowest_index(_masked_scores(rows, item_t, flat), k)
            out[start:start + len(block)] = idx.cpu().numpy()
            if out_scores is not None:
                out_scores[start:start + len(block)] = vals.float().cpu().numpy()
    return (out, out_scores) if return_scores else out


def _masked_scores(rows: torch.Tensor, item_t: torch.Tensor, flat: torch.Tensor | None) -> torch.Tensor:
    """The exact float32 scores of a block of users, masked cells (flat offsets into the block) at -inf."""
    scores = rows @ item_t
    if flat is not None:
        scores.view(-1).index_fill_(0, flat, -torch.inf)
    return scores


def _screened_block(rows, items, item_t, flat, k: int, check: bool):
    """(vals, idx, rows ranked by the full product) of one block through the screen; vals None if the check fails.

    ``check``: on the process's first screened block, also rank exactly and
    compare (``screen.verified``); an explicit ``screen=True`` skips it (tests
    compare the two paths themselves).
    """
    n_items = item_t.shape[1]
    vals, idx, exact_rows = screening.screened_topk(rows, items, flat, k, _order_keys,
                                                    max(8 * k, 512))
    if len(exact_rows):
        sub_flat = None
        if flat is not None:
            row_of = flat // n_items
            pos = torch.full((rows.shape[0],), -1, dtype=torch.long)
            pos[exact_rows] = torch.arange(len(exact_rows))
            sel = pos[row_of] >= 0
            sub_flat = pos[row_of[sel]] * n_items + flat[sel] % n_items
        vals[exact_rows], idx[exact_rows] = _topk_lowest_index(_masked_scores(rows[exact_rows], item_t, sub_flat), k)
    if check and screening.needs_verification():
        want_vals, want_idx = _topk_lowest_index(_masked_scores(rows, item_t, flat), k)
        slack = 2 * screening.float32_slack(rows, items.max_norm)[:, None]    # rank by rank, to float32 noise
        both_inf = torch.isneginf(vals) & torch.isneginf(want_vals)
        agree = bool(((vals - want_vals).abs() <= slack).logical_or(both_inf).all())
        if not screening.verified(agree):
            return None, None, 0
    return vals, idx, len(exact_rows)
