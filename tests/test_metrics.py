"""Every evaluation metric against a slow, obvious per-user Python reference.

The reference ranks with a stable sort on (-score), which is exactly the
tie-break ``score_topk`` promises (equal scores: lower item index first), so
the cases below may and do contain many ties.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.eval.groups import head_mask, popularity_groups
from adaptau_cli.eval.metrics import evaluate_embeddings, hit_matrix, split_masks
from adaptau_cli.eval.popularity import bias_metrics, gini, group_view
from adaptau_cli.eval.topk import block_size, score_topk
from adaptau_cli.workflows.evaluate import evaluate_dataset

# ---------------------------------------------------------------------------
# slow references
# ---------------------------------------------------------------------------

def ref_rank(scores_row: np.ndarray, excluded: set[int], k: int) -> list[int]:
    s = scores_row.astype(np.float64).copy()
    for i in excluded:
        s[i] = -np.inf
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


def ref_user_metrics(top: list[int], rel: set[int], k: int) -> dict[str, float]:
    top = top[:k]
    hits = [1.0 if i in rel else 0.0 for i in top]
    n_hits = sum(hits)
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(rel), k)))
    first = next((r + 1 for r, h in enumerate(hits) if h), None)
    ap, seen = 0.0, 0
    for r, h in enumerate(hits):
        if h:
            seen += 1
            ap += seen / (r + 1)
    return {"recall": n_hits / len(rel), "ndcg": dcg / idcg, "precision": n_hits / k,
            "hit": float(n_hits > 0), "mrr": 1.0 / first if first else 0.0,
            "map": ap / min(len(rel), k)}


def ref_evaluate(U, I, heldout, exclude, ks):
    scores = (U @ I.T).numpy()
    per_k = {k: [] for k in ks}
    lists = {}
    for u in range(heldout.shape[0]):
        rel = set(heldout[u].indices.tolist())
        if not rel:
            continue
        top = ref_rank(scores[u], set(exclude[u].indices.tolist()), max(ks))
        lists[u] = top
        for k in ks:
            per_k[k].append(ref_user_metrics(top, rel, k))
    out = {}
    for k in ks:
        for m in per_k[k][0]:
            out[f"{m}@{k}"] = float(np.mean([d[m] for d in per_k[k]]))
    return out, lists


def random_case(seed: int, n_users=50, n_items=40, dim=4, levels=3, train_p=0.15, test_p=0.25):
    """Integer-valued embeddings with few levels: many exactly tied scores."""
    rng = np.random.default_rng(seed)
    U = torch.tensor(rng.integers(-levels, levels + 1, (n_users, dim)), dtype=torch.float32)
    I = torch.tensor(rng.integers(-levels, levels + 1, (n_items, dim)), dtype=torch.float32)
    train = sp.csr_matrix((rng.random((n_users, n_items)) < train_p).astype(np.float32))
    test_dense = (rng.random((n_users, n_items)) < test_p) & ~(train.toarray() > 0)
    test_dense[rng.random(n_users) < 0.2] = False          # some users have no held-out item
    test_dense[0, :] = ~(train[0].toarray().ravel() > 0)   # user 0: more held-out items than K
    test = sp.csr_matrix(test_dense.astype(np.float32))
    return U, I, train, test


# ---------------------------------------------------------------------------
# ranking metrics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_every_metric_matches_reference_with_ties(seed):
    U, I, train, test = random_case(seed)
    ks = (1, 5, 10, 20)
    res = evaluate_embeddings(U, I, test, train, ks=ks, batch_users=7)
    ref, lists = ref_evaluate(U, I, test, train, ks)
    assert set(res.metrics) == set(ref)
    for key, value in ref.items():
        assert res.metrics[key] == pytest.approx(value, abs=1e-12), key
    assert res.n_users == len(lists)
    assert res.n_users < test.shape[0]                      # users without held-out items skipped
    for row, u in enumerate(res.users):
        assert res.topk[row].tolist() == lists[u]          # identical lists, ties included


@pytest.mark.parametrize("levels", [1, 3, None])
def test_every_metric_matches_reference_on_a_larger_catalogue(levels):
    """n_items >= 256 takes the chunked selection path; levels=1 makes ties everywhere."""
    if levels is None:
        U, I, train, test = random_case(21, n_users=40, n_items=700, dim=8, test_p=0.03)
        U, I = torch.randn_like(U), torch.randn_like(I)
    else:
        U, I, train, test = random_case(20 + levels, n_users=40, n_items=700, dim=3, levels=levels, test_p=0.03)
    ks = (1, 10, 30)
    res = evaluate_embeddings(U, I, test, train, ks=ks, batch_users=16)
    ref, lists = ref_evaluate(U, I, test, train, ks)
    for key, value in ref.items():
        assert res.metrics[key] == pytest.approx(value, abs=1e-12), key
    for row, u in enumerate(res.users):
        assert res.topk[row].tolist() == lists[u]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,k", [(300, 1), (300, 30), (1000, 10), (3043, 50)])
def test_topk_selection_equals_stable_sort(dtype, n, k):
    from adaptau_cli.eval.topk import _topk_lowest_index

    g = torch.Generator().manual_seed(n + k)
    rows = [torch.randn(n, generator=g),                                    # distinct scores
            torch.randint(0, 4, (n,), generator=g).to(torch.float32),      # 4 distinct values
            torch.zeros(n),                                                 # all tied
            torch.full((n,), -torch.inf),                                   # all masked
            torch.where(torch.rand(n, generator=g) < 0.99, -torch.inf, torch.randn(n, generator=g)),
            torch.randn(n, generator=g).round(decimals=1)]                  # ties near the cut
    rows.append(-rows[0] * 0.0)                                             # -0.0 and +0.0 are equal
    scores = torch.stack(rows).to(dtype)
    vals, idx = _topk_lowest_index(scores, k)
    for r in range(scores.shape[0]):
        ref = np.argsort(-scores[r].numpy(), kind="stable")[:k]
        assert idx[r].tolist() == ref.tolist(), r
        assert vals[r].tolist() == scores[r, ref].tolist()


@pytest.mark.parametrize("n,k", [(300, 1), (300, 5), (1000, 10)])
def test_topk_selection_with_a_tie_at_the_cut_across_chunks(n, k):
    """Distinct scores except the k-th one, tied with a far lower-ranked item elsewhere in the row.

    The chunked path must notice that the tied item's chunk may have been left out.
    """
    from adaptau_cli.eval.topk import _topk_lowest_index

    rng = np.random.default_rng(n + k)
    rows = []
    for _ in range(100):
        v = rng.permutation(n).astype(np.float32)
        order = np.argsort(-v, kind="stable")
        v[rng.choice(order[k + 5:])] = v[order[k - 1]]
        rows.append(v)
    scores = torch.tensor(np.stack(rows))
    _, idx = _topk_lowest_index(scores, k)
    for r in range(len(rows)):
        assert idx[r].tolist() == np.argsort(-rows[r], kind="stable")[:k].tolist()


def test_user_with_more_heldout_than_k_can_reach_recall_below_one_but_ndcg_one():
    # one user, 10 held-out items, perfect ranking, K = 5
    n_items = 20
    U = torch.ones(1, 1)
    I = torch.arange(n_items, 0, -1, dtype=torch.float32)[:, None]   # item 0 scores highest
    test = sp.csr_matrix((np.ones(10), (np.zeros(10), np.arange(10))), shape=(1, n_items))
    res = evaluate_embeddings(U, I, test, None, ks=(5,))
    assert res.metrics["recall@5"] == pytest.approx(0.5)
    assert res.metrics["ndcg@5"] == pytest.approx(1.0)
    assert res.metrics["precision@5"] == pytest.approx(1.0)
    assert res.metrics["map@5"] == pytest.approx(1.0)
    assert res.metrics["mrr@5"] == pytest.approx(1.0)


def test_no_heldout_users_gives_nan_and_zero_users():
    U, I = torch.randn(3, 2), torch.randn(4, 2)
    res = evaluate_embeddings(U, I, sp.csr_matrix((3, 4)), None, ks=(2,))
    assert res.n_users == 0
    assert math.isnan(res.metrics["recall@2"])


def test_training_items_never_in_topk():
    U, I, train, test = random_case(11, n_users=30, n_items=25)
    users = np.arange(30)
    top = score_topk(U, I, users, train, 10, batch_users=4)
    for u in users:
        assert not set(top[u].tolist()) & set(train[u].indices.tolist())


def test_tie_break_is_lower_index_and_block_size_does_not_matter():
    U = torch.ones(3, 1)
    I = torch.tensor([[1.0], [2.0], [2.0], [1.0], [2.0], [0.0], [2.0]])
    exclude = sp.csr_matrix(([1.0], ([1], [2])), shape=(3, 7))
    a = score_topk(U, I, np.arange(3), exclude, 3, batch_users=1)
    b = score_topk(U, I, np.arange(3), exclude, 3, batch_users=3, max_block_bytes=8)
    assert a.tolist() == [[1, 2, 4], [1, 4, 6], [1, 2, 4]]
    assert (a == b).all()


def test_block_size_does_not_change_the_lists_on_the_chunked_path():
    # integer-valued embeddings: exact scores whatever the matmul blocking, many ties
    U, I, train, test = random_case(8, n_users=50, n_items=600, dim=4, levels=2)
    users = np.arange(50)
    ref = score_topk(U, I, users, train, 40, batch_users=50)
    for bs in (1, 7, 32):
        assert (score_topk(U, I, users, train, 40, batch_users=bs) == ref).all()


def test_block_size_respects_memory_budget():
    assert block_size(1_000_000, 1024, 256 * 2**20) == 64
    assert block_size(1_000_000, 1024, 128 * 2**20) == 33          # 33 x 1M float32 <= 128 MiB
    assert block_size(3000, 1024, 256 * 2**20) == 349               # ~1M scores: stays in cache
    assert block_size(3000, 100, 256 * 2**20) == 100                # --batch-users is the upper bound
    assert block_size(10**9, 1024, 1) == 1
    assert block_size(100, 10, None) == 10


def test_hit_matrix_against_loop():
    rng = np.random.default_rng(3)
    held = sp.csr_matrix((rng.random((8, 15)) < 0.3).astype(np.float32))
    users = np.array([0, 2, 3, 7])
    topk = rng.integers(0, 15, (4, 6))
    h = hit_matrix(topk, users, held)
    for r, u in enumerate(users):
        for c in range(6):
            assert h[r, c] == (held[u, topk[r, c]] > 0)


def test_hit_matrix_over_several_blocks_of_a_wide_catalogue():
    rng = np.random.default_rng(4)
    n_users, n_items = 400, 100_000                      # > 4 MiB of booleans: several blocks
    rows, cols = rng.integers(0, n_users, 8000), rng.integers(0, n_items, 8000)
    held = sp.csr_matrix((np.ones(8000), (rows, cols)), shape=(n_users, n_items))
    held.sum_duplicates()
    held.data[:] = 1
    users = np.sort(rng.choice(n_users, 300, replace=False))
    topk = rng.integers(0, n_items, (300, 10))
    topk[:, 0] = [held[u].indices[0] if held[u].nnz else 0 for u in users]   # plenty of hits
    h = hit_matrix(topk, users, held)
    coo = held.tocoo()
    pairs = set(zip(coo.row.tolist(), coo.col.tolist()))
    expected = np.array([[(int(u), int(i)) in pairs for i in row] for u, row in zip(users, topk)])
    assert (h == expected).all()
    assert h[:, 0].sum() > 200


# ---------------------------------------------------------------------------
# popularity view and bias metrics
# ---------------------------------------------------------------------------

def test_group_view_against_reference():
    U, I, train, test = random_case(5, n_users=40, n_items=30)
    res = evaluate_embeddings(U, I, test, train, ks=(10,))
    pop = np.asarray(train.sum(0)).ravel().astype(np.int64)
    groups = popularity_groups(pop, 4, "mass")
    hits = hit_matrix(res.topk, res.users, test)
    n_rel = np.diff(test.indptr)[res.users]
    view = group_view(res.topk, hits, n_rel, groups, 4, 10)
    # reference: per user, per group
    contrib = np.zeros(4)
    hit_counts = np.zeros(4)
    slots = np.zeros(4)
    for row, u in enumerate(res.users):
        rel = set(test[u].indices.tolist())
        for i in res.topk[row, :10]:
            slots[groups[i]] += 1
            if i in rel:
                hit_counts[groups[i]] += 1
                contrib[groups[i]] += 1.0 / len(rel)
    contrib /= len(res.users)
    assert np.allclose(view["recall_contribution"], contrib)
    assert np.allclose(view["hit_share"], hit_counts / hit_counts.sum())
    assert np.allclose(view["exposure_share"], slots / slots.sum())
    assert sum(view["recall_contribution"]) == pytest.approx(res.metrics["recall@10"])


def ref_gini(x):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if x.sum() == 0:
        return 0.0
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean()))


@pytest.mark.parametrize("seed", range(4))
def test_gini_matches_mean_absolute_difference(seed):
    x = np.random.default_rng(seed).integers(0, 20, 37)
    assert gini(x) == pytest.approx(ref_gini(x))


def test_gini_extremes():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(9), 5.0]) == pytest.approx(0.9)
    assert gini(np.zeros(4)) == 0.0


def test_bias_metrics_against_reference():
    rng = np.random.default_rng(9)
    n_items = 50
    pop = rng.zipf(1.5, n_items).clip(max=500)
    tail = ~head_mask(pop, 0.2)
    topk = np.stack([rng.choice(n_items, 10, replace=False) for _ in range(25)])
    got = bias_metrics(topk, pop, tail, 5)
    arp = np.mean([np.mean([pop[i] for i in row[:5]]) for row in topk])
    aplt = np.mean([np.mean([tail[i] for i in row[:5]]) for row in topk])
    recommended = {int(i) for row in topk for i in row[:5]}
    counts = [sum(int(i == j) for row in topk for i in row[:5]) for j in range(n_items)]
    assert got["arp@5"] == pytest.approx(arp)
    assert got["aplt@5"] == pytest.approx(aplt)
    assert got["coverage@5"] == pytest.approx(len(recommended) / n_items)
    assert got["gini@5"] == pytest.approx(ref_gini(counts))


# ---------------------------------------------------------------------------
# a dataset, masks of the splits
# ---------------------------------------------------------------------------

def test_split_masks_test_masks_train_and_valid(tiny_dataset):
    heldout, exclude = split_masks(tiny_dataset, "test")
    both = (tiny_dataset.csr("train") + tiny_dataset.csr("valid")).toarray() > 0
    assert ((exclude.toarray() > 0) == both).all()
    heldout, exclude = split_masks(tiny_dataset, "valid")
    assert ((exclude.toarray() > 0) == (tiny_dataset.csr("train").toarray() > 0)).all()
    assert heldout.nnz == len(tiny_dataset.split("valid"))


def test_evaluate_dataset_masks_valid_items_on_test(tiny_dataset):
    torch.manual_seed(0)
    U, I = torch.randn(tiny_dataset.n_users, 8), torch.randn(tiny_dataset.n_items, 8)
    ev = evaluate_dataset(tiny_dataset, U, I, EvaluateConfig(split="test", ks=(5, 10), groups=3))
    train, valid = tiny_dataset.csr("train"), tiny_dataset.csr("valid")
    for row, u in enumerate(ev.users):
        seen = set(train[u].indices.tolist()) | set(valid[u].indices.tolist())
        assert not seen & set(ev.topk[row].tolist())
    assert set(ev.metrics) >= {"recall@5", "ndcg@10", "mrr@10", "map@5"}
    assert set(ev.bias) == {f"{m}@{k}" for m in ("arp", "aplt", "coverage", "gini") for k in (5, 10)}
    assert len(ev.groups["10"]["recall_contribution"]) == 3
    assert sum(ev.groups["10"]["recall_contribution"]) == pytest.approx(ev.metrics["recall@10"])
    assert ev.n_users == tiny_dataset.n_users
    d = ev.to_dict()
    assert "topk" not in d and d["ks"] == [5, 10]


def test_evaluate_dataset_rejects_missing_valid_split_and_bad_options():
    ds = PreparedDataset.from_arrays((np.array([0, 1]), np.array([0, 1])), (np.array([0]), np.array([1])))
    U, I = torch.randn(2, 2), torch.randn(2, 2)
    with pytest.raises(UserError, match="no valid interactions"):
        evaluate_dataset(ds, U, I, EvaluateConfig(split="valid"))
    with pytest.raises(UserError, match="grouping"):
        evaluate_dataset(ds, U, I, EvaluateConfig(grouping="weird"))
    with pytest.raises(UserError, match="embeddings are"):
        evaluate_dataset(ds, torch.randn(3, 2), I, EvaluateConfig())
