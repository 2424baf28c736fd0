"""Cleaning and splits against slow, obvious references."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.data import split as S
from adaptau_cli.data.readers import RawData, Table


def random_log(seed=0, n=3000, n_users=120, n_items=80, with_time=True):
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.6, n) % n_users
    items = rng.zipf(1.4, n) % n_items
    ts = rng.integers(0, 10_000, n) if with_time else None
    return users.astype(np.int64), items.astype(np.int64), ts


def raw_of(users, items, ts=None, rating=None):
    return RawData(parts={"all": Table(user=np.asarray(users), item=np.asarray(items),
                                       rating=None if rating is None else np.asarray(rating, float),
                                       timestamp=None if ts is None else np.asarray(ts))},
                   files={}, format="test")


# ---------------------------------------------------------------- k-core

def brute_force_kcore(pairs, uk, ik):
    """Remove one offending pair group at a time until nothing changes (slow, obviously right)."""
    pairs = list(pairs)
    changed = True
    while changed:
        changed = False
        uc = Counter(u for u, _ in pairs)
        ic = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if uc[u] >= uk and ic[i] >= ik]
        if len(kept) != len(pairs):
            pairs, changed = kept, True
    return pairs


@pytest.mark.parametrize("seed,uk,ik", [(0, 3, 3), (1, 5, 2), (2, 2, 8), (3, 10, 10), (4, 1, 4)])
def test_kcore_matches_brute_force_and_is_a_fixed_point(seed, uk, ik):
    users, items, _ = random_log(seed)
    keep = S.kcore_mask(users, items, uk, ik)
    got = sorted(zip(users[keep].tolist(), items[keep].tolist()))
    assert got == sorted(brute_force_kcore(zip(users.tolist(), items.tolist()), uk, ik))
    # fixed point: running it again removes nothing, and every survivor meets both thresholds
    again = S.kcore_mask(users[keep], items[keep], uk, ik)
    assert again.all()
    if keep.any():
        assert np.bincount(users[keep]).max() >= uk
        assert min(Counter(users[keep].tolist()).values()) >= uk
        assert min(Counter(items[keep].tolist()).values()) >= ik


def test_kcore_needs_more_than_one_pass():
    # item 9 has 2 users; user 2 has only item 9 -> removing user 2 drops item 9 below 2 -> user 1 falls below 2
    users = np.array([0, 0, 1, 1, 2, 0])
    items = np.array([1, 2, 9, 1, 9, 3])
    keep = S.kcore_mask(users, items, 2, 2)
    assert sorted(zip(users[keep].tolist(), items[keep].tolist())) == sorted(
        brute_force_kcore(zip(users.tolist(), items.tolist()), 2, 2))


# ---------------------------------------------------------------- dedupe, factorize, implicit

def test_dedupe_keeps_earliest_timestamp_or_first_row():
    users = np.array([0, 0, 1, 0, 1])
    items = np.array([5, 5, 5, 5, 6])
    ts = np.array([30, 10, 7, 10, 1])
    keep = S.dedupe_mask(users, items, 10, ts)
    assert keep.tolist() == [False, True, True, False, True]      # (0,5): ts 10 first at row 1
    keep = S.dedupe_mask(users, items, 10, None)
    assert keep.tolist() == [True, False, True, False, True]


def test_factorize_sorted_any_id_type():
    for ids in (np.array([30, 10, 20, 10]), np.array(["b", "a", "c", "a"], dtype=object)):
        codes, uniq = S.factorize_sorted(ids)
        assert list(uniq) == sorted(set(ids.tolist()))
        assert [uniq[c] for c in codes] == ids.tolist()


def test_min_rating_then_dedupe_then_kcore_counts():
    raw = raw_of([1, 1, 1, 2, 2, 3], [1, 1, 2, 1, 2, 1], ts=[5, 4, 3, 2, 1, 0], rating=[5, 4, 4, 5, 2, 5])
    pool = S.build_pool(raw, min_rating=4, user_core=2)
    assert pool.counts["after_min_rating"] == 5
    assert pool.counts["duplicates_removed"] == 1
    assert pool.user_ids[pool.users].tolist() == [1, 1]           # users 2 and 3 have 1 pair left
    assert pool.timestamps.tolist() == [4, 3]                     # the earlier (1,1) kept


def test_empty_after_filtering_and_min_rating_without_ratings():
    with pytest.raises(DataError, match="no interactions left"):
        S.build_pool(raw_of([1, 2], [1, 2]), None, user_core=5)
    with pytest.raises(DataError, match="rating >= 9"):
        S.build_pool(raw_of([1, 2], [1, 2], rating=[1, 2]), 9)
    with pytest.raises(UserError, match="no rating column"):
        S.build_pool(raw_of([1, 2], [1, 2]), 4)


# ---------------------------------------------------------------- splits

def split_of(method, seed=0, ratios=(0.8, 0.1, 0.1), with_time=True, n=3000):
    users, items, ts = random_log(seed, n=n, with_time=with_time)
    pool = S.build_pool(raw_of(users, items, ts), None)
    return pool, S.assign_splits(pool, method, ratios, 0.0, seed)


def check_partition(pool, which):
    assert set(np.unique(which).tolist()) <= {S.TRAIN, S.VALID, S.TEST, S.DROPPED}
    # every held-out user has train rows
    train_users = set(pool.users[which == S.TRAIN].tolist())
    assert set(pool.users[(which == S.VALID) | (which == S.TEST)].tolist()) <= train_users


@pytest.mark.parametrize("method", ["random", "temporal-user", "loo-last", "loo-random", "temporal-global"])
def test_split_is_a_disjoint_cover_and_keeps_train(method):
    pool, which = split_of(method)
    check_partition(pool, which)
    result = S.finalize(pool, which, method)
    total = sum(len(result.splits[s]) for s in ("train", "valid", "test"))
    assert total + result.counts["split_dropped"] == pool.users.shape[0]          # covers the input
    pairs = [set(zip(result.splits[s].users.tolist(), result.splits[s].items.tolist()))
             for s in ("train", "valid", "test")]
    assert sum(len(p) for p in pairs) == total                                     # no duplicate pairs
    assert not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])  # disjoint
    if method != "temporal-global":
        assert result.counts["split_dropped"] == 0


def test_random_split_per_user_counts_follow_ratios():
    pool, which = split_of("random", ratios=(0.7, 0.1, 0.2))
    per_user = defaultdict(Counter)
    for u, w in zip(pool.users.tolist(), which.tolist()):
        per_user[u][w] += 1
    for u, c in per_user.items():
        n = sum(c.values())
        n_held = min(int(np.floor(n * 0.3 + 0.5)), n - 1)
        # test is served first: the first held-out interaction is a test one (README: valid is given up first)
        n_test = min(max(int(np.floor(n * 0.2 + 0.5)), 1 if n_held else 0), n_held)
        assert c[S.TEST] == n_test and c[S.VALID] == n_held - n_test and c[S.TRAIN] >= 1
        if n_held:
            assert c[S.TEST] >= 1
    share = np.bincount(which, minlength=3) / which.shape[0]
    assert abs(share[S.TEST] - 0.2) < 0.03 and abs(share[S.VALID] - 0.1) < 0.03


def test_random_split_is_seeded():
    _, a = split_of("random", seed=0)
    users, items, ts = random_log(0)
    pool = S.build_pool(raw_of(users, items, ts), None)
    same = S.assign_splits(pool, "random", (0.8, 0.1, 0.1), 0.0, 0)
    other = S.assign_splits(pool, "random", (0.8, 0.1, 0.1), 0.0, 1)
    assert np.array_equal(a, same) and not np.array_equal(a, other)


def test_temporal_user_respects_time_per_user():
    pool, which = split_of("temporal-user")
    for u in np.unique(pool.users):
        rows = pool.users == u
        t, w = pool.timestamps[rows], which[rows]
        if (w == S.VALID).any():
            assert t[w == S.TRAIN].max() <= t[w == S.VALID].min()
        if (w == S.TEST).any():
            assert t[w != S.TEST].max() <= t[w == S.TEST].min()


def test_temporal_global_is_one_cut_and_drops_cold_users():
    pool, which = split_of("temporal-global", ratios=(0.6, 0.2, 0.2))
    ts = pool.timestamps
    assert ts[which == S.TRAIN].max() <= ts[which == S.VALID].min()
    assert ts[which == S.VALID].max() <= ts[which == S.TEST].min()
    # hand-made: user 9 only acts after the cut -> its held-out rows are dropped
    raw = raw_of([1, 1, 1, 2, 2, 9], [1, 2, 3, 1, 2, 3], ts=[1, 2, 9, 3, 4, 10])
    pool = S.build_pool(raw, None)
    which = S.assign_splits(pool, "temporal-global", (0.5, 0.0, 0.5), 0.0, 0)
    assert which.tolist() == [S.TRAIN, S.TRAIN, S.TEST, S.TRAIN, S.TEST, S.DROPPED]


def test_leave_one_out_last_takes_latest():
    pool, which = split_of("loo-last")
    for u in np.unique(pool.users):
        rows = np.flatnonzero(pool.users == u)
        n = rows.shape[0]
        w = which[rows]
        assert (w == S.TEST).sum() == (1 if n >= 2 else 0)
        assert (w == S.VALID).sum() == (1 if n >= 3 else 0)
        if n >= 2:
            assert pool.timestamps[rows][w == S.TEST][0] == pool.timestamps[rows].max()


def test_time_splits_need_timestamps():
    users, items, _ = random_log(0)
    pool = S.build_pool(raw_of(users, items), None)
    with pytest.raises(UserError, match="needs timestamps"):
        S.assign_splits(pool, "temporal-user", (0.8, 0.1, 0.1), 0.0, 0)


def test_given_split_valid_carving_is_seeded_per_user():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = np.concatenate([rng.choice(100, 20, replace=False) for _ in range(50)])
    part = np.where(np.arange(1000) % 20 < 16, "train", "test")
    raw = RawData(parts={"train": Table(users[part == "train"], items[part == "train"]),
                         "test": Table(users[part == "test"], items[part == "test"])}, files={}, format="t")
    pool = S.build_pool(raw, None)
    which = S.assign_splits(pool, "given", (0.8, 0.1, 0.1), 0.25, seed=3)
    assert np.array_equal(which, S.assign_splits(pool, "given", (0.8, 0.1, 0.1), 0.25, seed=3))
    assert not np.array_equal(which, S.assign_splits(pool, "given", (0.8, 0.1, 0.1), 0.25, seed=4))
    for u in range(50):
        w = which[pool.users == u]
        assert (w == S.VALID).sum() == 4 and (w == S.TRAIN).sum() == 12 and (w == S.TEST).sum() == 4
    assert (which[pool.part == S.TEST] == S.TEST).all()              # test untouched


def test_given_split_with_user_missing_from_train_fails():
    raw = RawData(parts={"train": Table(np.array([0, 0]), np.array([1, 2])),
                         "test": Table(np.array([0, 7]), np.array([3, 3]))}, files={}, format="t")
    pool = S.build_pool(raw, None)
    with pytest.raises(DataError, match="nothing in train.*user 7"):
        S.split_pool(pool, "given", (0.8, 0.1, 0.1), 0.0, 0)


def test_dense_remap_is_sorted_and_int32():
    raw = raw_of(["zed", "amy", "amy", "bob"], [30, 10, 20, 10], ts=None)
    res = S.split_pool(S.build_pool(raw, None), "loo-random", (0.8, 0.0, 0.2), 0.0, 0)
    assert res.user_ids.tolist() == ["amy", "bob", "zed"] and res.item_ids.tolist() == [10, 20, 30]
    for s in res.splits.values():
        assert s.users.dtype == np.int32 and s.items.dtype == np.int32


@pytest.mark.parametrize("text", ["0.8,0.2", "0.8,0.1,0.1", [0.6, 0.2, 0.2]])
def test_parse_ratios_ok(text):
    r = S.parse_ratios(text)
    assert len(r) == 3 and abs(sum(r) - 1) < 1e-9


@pytest.mark.parametrize("text,msg", [("0.8,0.3,0.1", "sum to 1"), ("0.8,x", "numbers"), ("1", "2 or 3"),
                                      ("1.2,-0.1,-0.1", "non-negative"), ("1,0,0", "positive train and test")])
def test_parse_ratios_rejects(text, msg):
    with pytest.raises(UserError, match=msg):
        S.parse_ratios(text)


def test_resolve_split_contradictions():
    assert S.resolve_split("auto", True, False, 0.0) == "given"
    assert S.resolve_split("auto", False, False, 0.0) == "random"
    with pytest.raises(UserError, match="needs a source with its own split"):
        S.resolve_split("given", False, False, 0.0)
    with pytest.raises(UserError, match="only applies to a given"):
        S.resolve_split("random", False, False, 0.1)
    with pytest.raises(UserError, match="contradicts"):
        S.resolve_split("given", True, True, 0.1)
    with pytest.raises(UserError, match="unknown split"):
        S.resolve_split("weekly", True, False, 0.0)


def test_gini_matches_mean_absolute_difference():
    rng = np.random.default_rng(1)
    for x in (rng.integers(0, 50, 30), np.ones(10), np.r_[np.zeros(9), 5.0]):
        x = x.astype(float)
        ref = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
        assert S.gini(x) == pytest.approx(ref)
