"""The scalable ('communities') sampler: seeded, no repeated pair, every user's count, a long tail."""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.data import synthetic as S

SMALL = dataclasses.replace(S.SPECS["synthetic-amazon-book"], n_users=700, n_items=900, mean_activity=30.0,
                            communities=8)


def test_same_seed_same_table_other_seed_other_table():
    a, b, c = S.generate(SMALL, 1), S.generate(SMALL, 1), S.generate(SMALL, 2)
    assert np.array_equal(a.user, b.user) and np.array_equal(a.item, b.item)
    assert np.array_equal(a.timestamp, b.timestamp)
    assert not (len(a.item) == len(c.item) and np.array_equal(a.item, c.item))


@given(seed=st.integers(0, 2**16), users=st.integers(5, 300), items=st.integers(40, 400),
       activity=st.floats(3, 30), communities=st.integers(1, 12))
@settings(max_examples=40, deadline=None)
def test_pairs_are_distinct_counts_met_and_timestamps_increase(seed, users, items, activity, communities):
    spec = dataclasses.replace(SMALL, n_users=users, n_items=items, mean_activity=activity,
                               communities=communities, min_activity=3)
    t = S.generate(spec, seed)
    keys = t.user * items + t.item
    assert len(np.unique(keys)) == len(keys)                             # no repeated (user, item)
    assert t.user.min() >= 0 and t.user.max() < users and t.item.min() >= 0 and t.item.max() < items
    assert np.all(np.diff(t.user) >= 0)                                   # grouped by user
    same = np.diff(t.user) == 0
    assert np.all(np.diff(t.timestamp)[same] > 0)                        # increasing within a user
    counts = np.bincount(t.user, minlength=users)
    # every user reaches min_activity unless their community cannot supply it (8 rounds, explore 20%)
    assert (counts >= spec.min_activity).mean() > 0.95


def test_popularity_has_a_long_tail_and_communities_are_learnable():
    t = S.generate(SMALL, 3)
    pop = np.sort(np.bincount(t.item, minlength=SMALL.n_items))[::-1]
    assert pop[: SMALL.n_items // 10].sum() > 0.3 * pop.sum()            # the top 10% of items: > 30% of pairs
    _, _, item_comm, user_comm = S._tastes(SMALL, np.random.default_rng(3))
    own = item_comm[t.item] == user_comm[t.user]
    assert own.mean() > 0.7                                              # 1 - explore, plus chance


def test_the_exact_samples_keep_their_fingerprints():
    """Fields added for the scalable sampler must not change the existing samples' store keys."""
    spec = S.SPECS["synthetic-tiny"]
    legacy = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("sampler", "explore")}
    import hashlib
    import json
    payload = json.dumps({"version": S.GENERATOR_VERSION, **legacy}, sort_keys=True)
    assert spec.fingerprint() == hashlib.sha256(payload.encode()).hexdigest()
