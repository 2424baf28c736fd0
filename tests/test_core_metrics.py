"""The shared ranking core against a slow per-user reference (the evaluation issue extends this)."""

import math

import numpy as np
import scipy.sparse as sp
import torch

from adaptau_cli.eval.groups import popularity_groups
from adaptau_cli.eval.metrics import evaluate_embeddings


def _reference(user_emb, item_emb, heldout, exclude, k):
    rec, ndcg = [], []
    for u in range(heldout.shape[0]):
        rel = set(heldout[u].indices.tolist())
        if not rel:
            continue
        scores = (user_emb[u] @ item_emb.T).numpy().astype(np.float64)
        scores[exclude[u].indices] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        hits = [1.0 if i in rel else 0.0 for i in top]
        rec.append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        ndcg.append(dcg / idcg)
    return np.mean(rec), np.mean(ndcg)


def test_recall_ndcg_match_reference():
    torch.manual_seed(0)
    U, I = torch.randn(60, 8, dtype=torch.float64), torch.randn(120, 8, dtype=torch.float64)
    tr = sp.random(60, 120, 0.1, format="csr", random_state=1)
    tr.data[:] = 1
    te = sp.random(60, 120, 0.08, format="csr", random_state=2)
    te.data[:] = 1
    te = (te - te.multiply(tr)).tocsr()
    te.eliminate_zeros()
    res = evaluate_embeddings(U, I, te, tr, ks=(5, 20))
    for k in (5, 20):
        r, n = _reference(U, I, te, tr, k)
        assert abs(res.metrics[f"recall@{k}"] - r) < 1e-9
        assert abs(res.metrics[f"ndcg@{k}"] - n) < 1e-9
    assert res.n_users == int((np.diff(te.indptr) > 0).sum())


def test_groups_partition_with_equal_mass():
    pop = np.random.default_rng(0).zipf(1.3, 5000) % 3000
    g = popularity_groups(pop, 10, "mass")
    assert set(np.unique(g)) == set(range(10))
    mass = np.bincount(g, weights=pop, minlength=10)
    assert mass.max() - mass.min() <= pop.max() + 1e-9
    order_ok = all(pop[g == a].max() <= pop[g == a + 1].min() for a in range(9))
    assert order_ok
