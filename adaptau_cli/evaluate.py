"""Full-ranking evaluation: score every item for every user, mask known items, metrics @K.

One implementation serves training's validation and ``adaptau evaluate``.
Scoring runs in blocks of ``batch_users`` users so memory stays bounded at
``batch_users x n_items`` floats whatever the catalogue size.

Metric definitions (binary relevance, averaged over users with held-out items):
recall@K = hits / |held-out|; precision@K = hits / K; NDCG@K = DCG / IDCG with the
ideal DCG over min(|held-out|, K) relevant items; hit@K = 1 if any hit; MRR@K =
1 / rank of the first hit (0 if none); MAP@K = sum_k P@k * rel_k / min(|held-out|, K).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "map")


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]        # "recall@20" -> value
    n_users: int                     # users with held-out items that were counted
    users: np.ndarray                # those users
    topk: np.ndarray                 # (n_users, max K) item indices, best first


def score_topk(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
               exclude: sp.csr_matrix | None, k: int, batch_users: int = 1024) -> np.ndarray:
    """Top-k item indices per user by inner product of the given (scoring-ready) embeddings.

    ``exclude`` rows are masked to -inf (training items, and validation items when
    ranking test). Returns an int64 array of shape (len(users), k).
    """
    n_items = item_emb.shape[0]
    k = min(k, n_items)
    out = np.empty((len(users), k), dtype=np.int64)
    item_t = item_emb.t().contiguous()
    with torch.no_grad():
        for start in range(0, len(users), batch_users):
            block = users[start:start + batch_users]
            scores = user_emb[torch.as_tensor(block, dtype=torch.long, device=user_emb.device)] @ item_t
            if exclude is not None:
                sub = exclude[block]
                rows = np.repeat(np.arange(len(block)), np.diff(sub.indptr))
                scores[torch.as_tensor(rows, device=scores.device),
                       torch.as_tensor(sub.indices, dtype=torch.long, device=scores.device)] = -torch.inf
            out[start:start + len(block)] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return out


def hit_matrix(topk: np.ndarray, users: np.ndarray, heldout: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, K): is the item at each rank a held-out item of that user."""
    n_items = heldout.shape[1]
    coo = heldout.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col.astype(np.int64))
    query = users.astype(np.int64)[:, None] * n_items + topk
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, len(keys) - 1) if len(keys) else pos
    return (keys[pos] == query) if len(keys) else np.zeros_like(topk, dtype=bool)


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean of each metric @K over the rows of ``hits`` (users with >= 1 held-out item)."""
    out: dict[str, float] = {}
    n_relevant = n_relevant.astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    for k in ks:
        h = hits[:, :k].astype(np.float64)
        kk = h.shape[1]
        n_hits = h.sum(1)
        dcg = (h * discounts[:kk]).sum(1)
        ideal_n = np.minimum(n_relevant, k).astype(np.int64)
        idcg = np.cumsum(discounts)[np.maximum(ideal_n, 1) - 1] if kk else np.ones_like(n_relevant)
        first = np.where(n_hits > 0, h.argmax(1) + 1, 0)
        prec_at = np.cumsum(h, 1) / np.arange(1, kk + 1)
        out[f"recall@{k}"] = float(np.mean(n_hits / n_relevant))
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
        out[f"precision@{k}"] = float(np.mean(n_hits / k))
        out[f"hit@{k}"] = float(np.mean(n_hits > 0))
        out[f"mrr@{k}"] = float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)))
        out[f"map@{k}"] = float(np.mean((prec_at * h).sum(1) / np.minimum(n_relevant, k)))
    return out


def evaluate_embeddings(user_emb: torch.Tensor, item_emb: torch.Tensor, heldout: sp.csr_matrix,
                        exclude: sp.csr_matrix | None, ks: Sequence[int] = (10, 20, 50),
                        batch_users: int = 1024) -> EvalResult:
    """Full-ranking metrics of scoring-ready embeddings against one held-out split."""
    n_rel = np.diff(heldout.indptr)
    users = np.flatnonzero(n_rel > 0)
    if len(users) == 0:
        return EvalResult({f"{m}@{k}": float("nan") for k in ks for m in METRICS}, 0, users,
                          np.zeros((0, max(ks)), np.int64))
    topk = score_topk(user_emb, item_emb, users, exclude, max(ks), batch_users)
    hits = hit_matrix(topk, users, heldout)
    return EvalResult(ranking_metrics(hits, n_rel[users], ks), len(users), users, topk)
