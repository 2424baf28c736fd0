"""Ranking metrics @K over full rankings: one function per metric, one registry.

Metric definitions (binary relevance, averaged over users with held-out items):
recall@K = hits / |held-out|; precision@K = hits / K; NDCG@K = DCG / IDCG with the
ideal DCG over min(|held-out|, K) relevant items; hit@K = 1 if any hit; MRR@K =
1 / rank of the first hit (0 if none); MAP@K = sum_k P@k * rel_k / min(|held-out|, K).
One implementation serves training's validation and ``adaptau evaluate``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.eval.topk import DEFAULT_MAX_BLOCK_BYTES, score_topk


@dataclasses.dataclass
class Ranked:
    """What every metric of one cut-off K reads: per-user running sums over the first K ranks.

    Arrays are per user (rows of ``hits``); ``k`` is the cut-off, ``kk`` = min(k,
    list length). Computed once for the largest K by ``ranking_metrics``.
    """

    k: int
    kk: int
    n_relevant: np.ndarray       # |held-out| per user (float64)
    hits: np.ndarray             # hits in the top K
    dcg: np.ndarray              # DCG@K
    idcg: np.ndarray             # ideal DCG over min(|held-out|, K)
    ap: np.ndarray               # Σ_k P@k·rel_k over the top K
    first: np.ndarray            # rank of the first hit (list length + 1 if none)


MetricFn = Callable[[Ranked], np.ndarray]
_REGISTRY: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn(ranked) -> per-user values``; its mean over users is reported as ``name@K``.

    Training's history, ``adaptau evaluate`` and every report (Markdown, CSV,
    JSON, terminal) list the registered metrics, in registration order.
    """
    def add(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = fn
        return fn
    return add


def metric_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


@register_metric("recall")
def recall(r: Ranked) -> np.ndarray:
    return r.hits / r.n_relevant


@register_metric("ndcg")
def ndcg(r: Ranked) -> np.ndarray:
    return r.dcg / r.idcg


@register_metric("precision")
def precision(r: Ranked) -> np.ndarray:
    return r.hits / r.k


@register_metric("hit")
def hit(r: Ranked) -> np.ndarray:
    return r.hits > 0


@register_metric("mrr")
def mrr(r: Ranked) -> np.ndarray:
    return np.where(r.first <= r.kk, 1.0 / r.first, 0.0)


@register_metric("map")
def average_precision(r: Ranked) -> np.ndarray:
    return r.ap / np.minimum(r.n_relevant, r.k)


METRICS = metric_names()     # the built-in ones (``metric_names()`` also lists those registered later)


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]        # "recall@20" -> value
    n_users: int                     # users with held-out items that were counted
    users: np.ndarray                # those users
    topk: np.ndarray                 # (n_users, max K) item indices, best first


def hit_matrix(topk: np.ndarray, users: np.ndarray, heldout: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, K): is the item at each rank a held-out item of that user.

    Looked up in a dense boolean slice of the held-out matrix, a block of users
    at a time (at most 4 MiB of booleans, reused, so it stays in cache whatever
    the catalogue size).
    """
    n_items = heldout.shape[1]
    users = np.asarray(users, dtype=np.int64)
    out = np.zeros(topk.shape, dtype=bool)
    if topk.size == 0 or heldout.nnz == 0:
        return out
    bs = max(1, min(len(users), 2**22 // max(n_items, 1)))
    dense = np.zeros((bs, n_items), dtype=bool)    # reused: set, read, then cleared cell by cell
    for start in range(0, len(users), bs):
        sub = heldout[users[start:start + bs]]
        rows = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
        dense[rows, sub.indices] = True
        out[start:start + bs] = np.take_along_axis(dense[:sub.shape[0]], topk[start:start + bs], 1)
        dense[rows, sub.indices] = False
    return out


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean of each registered metric @K over the rows of ``hits`` (users with >= 1 held-out item)."""
    return {key: float(np.mean(values)) for key, values in per_user_metrics(hits, n_relevant, ks).items()}


def per_user_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Each registered metric @K per row of ``hits`` (one user each): the values ``ranking_metrics`` averages.

    Paired significance tests between models (``adaptau compare``) need every
    user's value, not only the mean. Running sums over the ranks are computed
    once for the largest K; each K reads its column.
    """
    out: dict[str, np.ndarray] = {}
    n_relevant = n_relevant.astype(np.float64)
    width = hits.shape[1]
    h = hits.astype(np.float64)
    ranks = np.arange(1, width + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    cum_hits = np.cumsum(h, 1)
    cum_dcg = np.cumsum(h * discounts, 1)
    cum_ap = np.cumsum(cum_hits / ranks * h, 1)
    ideal = np.cumsum(discounts)
    any_hit = hits.any(1)
    first = np.where(any_hit, hits.argmax(1) + 1, width + 1)   # rank of the first hit
    zeros = np.zeros(hits.shape[0])
    for k in ks:
        kk = min(k, width)
        ideal_n = np.minimum(np.minimum(n_relevant, k), max(kk, 1)).astype(np.int64)
        ranked = Ranked(k=k, kk=kk, n_relevant=n_relevant,
                        hits=cum_hits[:, kk - 1] if kk else zeros, dcg=cum_dcg[:, kk - 1] if kk else zeros,
                        idcg=ideal[np.maximum(ideal_n, 1) - 1] if kk else np.ones_like(n_relevant),
                        ap=cum_ap[:, kk - 1] if kk else zeros, first=first)
        for name, fn in _REGISTRY.items():
            out[f"{name}@{k}"] = fn(ranked)
    return out


def evaluate_embeddings(user_emb: torch.Tensor, item_emb: torch.Tensor, heldout: sp.csr_matrix,
                        exclude: sp.csr_matrix | None, ks: Sequence[int] = (10, 20, 50),
                        batch_users: int = 1024,
                        max_block_bytes: int | None = DEFAULT_MAX_BLOCK_BYTES) -> EvalResult:
    """Full-ranking metrics of scoring-ready embeddings against one held-out split."""
    n_rel = np.diff(heldout.indptr)
    users = np.flatnonzero(n_rel > 0)
    if len(users) == 0:
        return EvalResult({f"{m}@{k}": float("nan") for k in ks for m in metric_names()}, 0, users,
                          np.zeros((0, max(ks)), np.int64))
    topk = score_topk(user_emb, item_emb, users, exclude, max(ks), batch_users, max_block_bytes)
    hits = hit_matrix(topk, users, heldout)
    return EvalResult(ranking_metrics(hits, n_rel[users], ks), len(users), users, topk)


def metric_sums(user_emb: torch.Tensor, item_emb: torch.Tensor, heldout: sp.csr_matrix,
                exclude: sp.csr_matrix | None, ks: Sequence[int], users: np.ndarray,
                batch_users: int = 1024) -> tuple[list[str], np.ndarray]:
    """(metric names, their per-user values summed over ``users``) — a part of an evaluation.

    Parts over disjoint sets of users add up to the whole (sums, never means:
    averaging per-part means weighs users unequally when the parts differ in
    size). ``users`` must each have a held-out item; the count is ``len(users)``.
    """
    names = [f"{m}@{k}" for k in ks for m in metric_names()]
    if len(users) == 0:
        return names, np.zeros(len(names))
    n_rel = np.diff(heldout.indptr)
    topk = score_topk(user_emb, item_emb, users, exclude, max(ks), batch_users, DEFAULT_MAX_BLOCK_BYTES)
    values = per_user_metrics(hit_matrix(topk, users, heldout), n_rel[users], ks)
    return names, np.array([values[n].sum(dtype=np.float64) for n in names])


def split_masks(dataset, split: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(held-out, exclude) for a split: valid masks train; test masks train and valid."""
    if split not in ("valid", "test"):
        raise UserError(f"unknown split {split!r} (expected 'valid' or 'test')")
    heldout = dataset.csr(split)
    if heldout.nnz == 0:
        raise UserError(f"dataset {dataset.name!r} has no {split} interactions to evaluate",
                        hint="use --split test, or prepare the dataset with a validation split"
                        if split == "valid" else None)
    exclude = dataset.csr("train")
    if split == "test" and dataset.csr("valid").nnz:
        exclude = (exclude + dataset.csr("valid")).tocsr()
        exclude.data[:] = 1.0
    return heldout, exclude
