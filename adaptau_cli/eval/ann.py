"""Approximate (and exact) top-K over a FAISS index of the items, training items still excluded.

FAISS is an optional dependency (``pip install 'adaptau[faiss]'``): it is
imported only here and only when an index is built or searched, so the rest of
the package never needs it. Three kinds of index, all by inner product (the
scoring embeddings already carry the model's normalization, so inner product is
the model's score, cosine for a normalized model):

    exact   IndexFlatIP     every item scored; the reference the others are measured against
    hnsw    IndexHNSWFlat   a navigable small-world graph; ``ef_search`` trades speed for recall
    ivf     IndexIVFFlat    k-means lists (``nlist`` from the catalogue size); ``nprobe`` lists scanned

An index knows nothing about what a user has already seen, so ``search_unseen``
over-fetches ``k + (the user's excluded items)`` candidates, drops the excluded
ones (and the ``-1`` labels FAISS returns when it found fewer), and falls back
to exact scoring (``score_topk``) for any user whose filtered list is still
shorter than ``k`` (or than the user's unseen items, if fewer): a user's list
is never short because the index is approximate.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.eval.topk import score_topk

INDEX_KINDS = ("exact", "hnsw", "ivf")
FAISS_HINT = "pip install 'adaptau[faiss]'"
DEFAULT_HNSW_M = 32            # graph degree: FAISS's usual 16-64; 32 keeps recall high at 64 dims
DEFAULT_EF_CONSTRUCTION = 40   # FAISS's default build breadth
DEFAULT_EF_SEARCH = 128        # query breadth, raised to the candidates fetched (64: recall@20 0.93 at 100k items)
MIN_POINTS_PER_LIST = 39       # FAISS warns below 39 training points per k-means centroid
SEARCH_BATCH = 256             # users searched at once (sorted by how many candidates they need)


def load_faiss() -> ModuleType:
    """The ``faiss`` module, or a one-line UserError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise UserError("FAISS is not installed: an index needs the optional faiss-cpu package",
                        hint=FAISS_HINT) from None
    return faiss


def default_nlist(n_items: int) -> int:
    """IVF lists: about sqrt(n) (FAISS's rule of thumb), but never fewer than 39 items per list to train on."""
    return max(1, min(int(round(math.sqrt(n_items))), n_items // MIN_POINTS_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: 1/32 of them but at least 8 (FAISS's own default of 1 loses much recall)."""
    return min(nlist, max(8, nlist // 32))


@dataclasses.dataclass(frozen=True)
class IndexParams:
    """How an item index is built and searched; recorded in export.json and reapplied on opening."""

    kind: str
    metric: str = "inner_product"
    nlist: int | None = None             # ivf
    nprobe: int | None = None            # ivf, query time
    hnsw_m: int | None = None            # hnsw
    ef_construction: int | None = None   # hnsw, build time
    ef_search: int | None = None         # hnsw, query time
    seed: int = 0                        # ivf: k-means initialisation and training sample

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IndexParams":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def check_index_flags(kind: str, nprobe: int | None = None, ef_search: int | None = None,
                      hnsw_m: int | None = None) -> None:
    """UserError for an unknown kind, a flag of another kind, or a value below 1 (before any work)."""
    if kind not in INDEX_KINDS:
        raise UserError(f"unknown index {kind!r} (expected {', '.join(INDEX_KINDS)})")
    if nprobe is not None and kind != "ivf":
        raise UserError("--nprobe applies to --index ivf only")
    if (ef_search is not None or hnsw_m is not None) and kind != "hnsw":
        raise UserError("--ef-search and --hnsw-m apply to --index hnsw only")
    for name, value in (("--nprobe", nprobe), ("--ef-search", ef_search), ("--hnsw-m", hnsw_m)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")


def index_params(kind: str, n_items: int, nprobe: int | None = None, ef_search: int | None = None,
                 hnsw_m: int | None = None) -> IndexParams:
    """Checked parameters of an index of ``kind`` over ``n_items`` items (defaults filled in)."""
    check_index_flags(kind, nprobe, ef_search, hnsw_m)
    if kind == "hnsw":
        return IndexParams(kind, hnsw_m=hnsw_m or DEFAULT_HNSW_M, ef_construction=DEFAULT_EF_CONSTRUCTION,
                           ef_search=ef_search or DEFAULT_EF_SEARCH)
    if kind == "ivf":
        nlist = default_nlist(n_items)
        return IndexParams(kind, nlist=nlist, nprobe=min(nprobe or default_nprobe(nlist), nlist))
    return IndexParams(kind)


def faiss_class(params: IndexParams) -> str:
    """The FAISS class name of an index kind, recorded in export.json so a server knows what it loads."""
    return {"exact": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}[params.kind]


def build_index(items: np.ndarray, params: IndexParams):
    """A FAISS index of the item rows (label = row number), ready to search with ``params``."""
    faiss = load_faiss()
    items = np.ascontiguousarray(items, dtype=np.float32)
    dim = items.shape[1]
    if params.kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, params.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = params.seed
        index.train(_training_sample(items, params))
    index.add(items)
    configure(index, params)
    return index


def _training_sample(items: np.ndarray, params: IndexParams) -> np.ndarray:
    """At most 64 points per list for k-means: the lists are as good, the training is seconds, not minutes."""
    n_sample = min(len(items), 64 * params.nlist)
    if n_sample == len(items):
        return items
    rows = np.sort(np.random.default_rng(params.seed).choice(len(items), n_sample, replace=False))
    return items[rows]


def configure(index, params: IndexParams) -> None:
    """Apply the query-time parameters (an index read back from disk gets them from export.json)."""
    faiss = load_faiss()
    if params.kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = params.nprobe
    elif params.kind == "hnsw":
        index.hnsw.efSearch = params.ef_search


def write_index(index, path) -> None:
    """FAISS's own file format: ``faiss.read_index`` in any language binding loads it."""
    faiss = load_faiss()
    faiss.write_index(index, str(path))


def read_index(path, params: IndexParams):
    """The index saved at ``path``, configured with ``params``."""
    faiss = load_faiss()
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise UserError(f"cannot read the index {path}: {str(exc).strip().splitlines()[-1][:160]}") from None
    configure(index, params)
    return index


def search(index, queries: np.ndarray, k: int, params: IndexParams) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of the top ``k`` items per query; HNSW's query breadth is raised to ``k`` when smaller."""
    if params.kind == "hnsw":
        index.hnsw.efSearch = max(params.ef_search, k)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


@dataclasses.dataclass
class UnseenTopK:
    """``score_topk``'s answer (items, scores with -inf = none) plus how many users fell back to exact scoring."""

    top: np.ndarray
    scores: np.ndarray
    fallback_users: int = 0


def search_unseen(index, params: IndexParams, user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                  exclude: sp.csr_matrix, k: int, batch_users: int = SEARCH_BATCH) -> UnseenTopK:
    """Top-``k`` items per user from the index, ``exclude`` rows never returned; shapes as ``score_topk``.

    Users are searched in batches sorted by their number of excluded items, each
    batch over-fetching ``k +`` its largest count, so that one heavy user does not
    make every query fetch thousands. Candidates are ranked by score, equal
    scores by the lower item index (as ``score_topk``).
    """
    n_items = int(item_emb.shape[0])
    k = min(k, n_items)
    users = np.asarray(users, dtype=np.int64)
    exclude = sp.csr_matrix(exclude)
    n_excluded = np.diff(exclude.indptr)[users]
    queries = user_emb.detach().float().cpu().numpy()
    top = np.zeros((len(users), k), dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    order = np.argsort(n_excluded, kind="stable")
    for start in range(0, len(order), max(1, batch_users)):
        rows = order[start:start + batch_users]
        fetch = min(n_items, k + int(n_excluded[rows].max()))
        dist, labels = search(index, queries[users[rows]], fetch, params)
        top[rows], scores[rows] = _filter_candidates(dist, labels, exclude[users[rows]], k)
    wanted = np.minimum(k, n_items - n_excluded)
    short = np.flatnonzero(np.isfinite(scores).sum(1) < wanted)
    if len(short):
        top[short], scores[short] = score_topk(user_emb, item_emb, users[short], exclude, k, return_scores=True)
    return UnseenTopK(top, scores, int(len(short)))


def _filter_candidates(dist: np.ndarray, labels: np.ndarray, excluded: sp.csr_matrix,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop excluded and missing (-1) candidates, rank the rest (score desc, index asc), keep ``k`` per row.

    ``labels`` has at least ``k`` columns (the caller fetches ``k`` or more); a row
    left with fewer than ``k`` candidates is padded with -inf scores.
    """
    n_rows = labels.shape[0]
    n_cols = excluded.shape[1]
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(excluded.indptr))
    banned = row_of * n_cols + excluded.indices.astype(np.int64)
    keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_cols + labels
    bad = (labels < 0) | np.isin(keys, banned)
    dist = np.where(bad, -np.inf, dist).astype(np.float32)
    tie = np.where(bad, np.iinfo(np.int64).max, labels)
    order = np.lexsort((tie, -dist), axis=1)[:, :k]
    top, vals = np.take_along_axis(labels, order, 1), np.take_along_axis(dist, order, 1)
    return np.where(np.isfinite(vals), top, 0), vals


__all__ = ["DEFAULT_EF_SEARCH", "DEFAULT_HNSW_M", "FAISS_HINT", "INDEX_KINDS", "IndexParams", "UnseenTopK",
           "build_index", "check_index_flags", "configure", "default_nlist", "default_nprobe", "faiss_class",
           "index_params", "load_faiss", "read_index", "search", "search_unseen", "write_index"]
