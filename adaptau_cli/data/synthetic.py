"""The built-in sample: a seeded, long-tailed interaction log a model can learn from.

Why it looks like this: the Adap-τ paper's story is about popularity. Popular
items get larger embedding norms under an unnormalized model, and a temperature
on normalized embeddings changes how hard the loss pushes on them. To see that
on a laptop we need (1) a Zipf-like item popularity, so there is a head and a
long tail, and (2) real latent structure (user and item taste vectors), so a
model that learns beats a popularity ranking and the temperature matters.

Generation: every user and item gets a unit taste vector drawn around one of a
few "communities"; an item's base popularity is Zipf over a random ranking of
the items; a user's activity is log-normal. A user picks their items without
replacement with probability proportional to
``exp(affinity * <user, item> + log popularity)`` (Gumbel top-k), and gets
increasing timestamps so temporal splits work too. Everything is driven by one
``numpy.random.default_rng(seed)``; scores are rounded before sampling so that
tiny floating-point differences between machines do not change the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from adaptau_cli.data.readers import RawData, Table

GENERATOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    n_users: int
    n_items: int
    mean_activity: float            # average interactions per user
    dim: int = 16
    communities: int = 12
    community_spread: float = 0.5   # noise around the community centre (higher = weaker clusters)
    zipf_exponent: float = 1.3      # item popularity ~ 1 / rank^exponent
    affinity: float = 10.0          # weight of taste vs. popularity in the choice
    activity_sigma: float = 0.7     # log-normal spread of user activity
    min_activity: int = 5
    start_time: int = 1_600_000_000
    sampler: str = "exact"          # exact: Gumbel top-k over every item | communities: at any scale
    explore: float = 0.2            # communities: share of picks from another community than the user's

    def fingerprint(self) -> str:
        """Stands in for the input file sha256 of a real source."""
        fields = dataclasses.asdict(self)
        if self.sampler == "exact":       # fields added with the scalable sampler: old samples keep their hash
            fields.pop("sampler"), fields.pop("explore")
        payload = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


# The registry's samples. `synthetic` trains MF for ~25 epochs in about a minute on 2 cores;
# `synthetic-amazon-book` has the paper's largest dataset's shape (52,643 users x 91,599 items,
# 2,984,108 interactions: 2.38 M train pairs under an 80/20 split) for scale benchmarks.
SPECS: dict[str, SyntheticSpec] = {
    "synthetic": SyntheticSpec(n_users=2500, n_items=1500, mean_activity=50.0),
    "synthetic-tiny": SyntheticSpec(n_users=300, n_items=200, mean_activity=20.0, communities=6,
                                    min_activity=4),
    "synthetic-amazon-book": SyntheticSpec(n_users=52_643, n_items=91_599, mean_activity=2_984_108 / 52_643,
                                           communities=64, zipf_exponent=0.9, min_activity=10,
                                           sampler="communities"),
}


def _tastes(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user taste vectors, item taste vectors, item communities, user communities): ``rng``'s first draws."""
    centres = _unit(rng.standard_normal((spec.communities, spec.dim)))
    user_comm = rng.integers(0, spec.communities, spec.n_users)
    item_comm = rng.integers(0, spec.communities, spec.n_items)
    users = _unit(centres[user_comm] + spec.community_spread * rng.standard_normal((spec.n_users, spec.dim)))
    items = _unit(centres[item_comm] + spec.community_spread * rng.standard_normal((spec.n_items, spec.dim)))
    return users, items, item_comm, user_comm


def generate(spec: SyntheticSpec, seed: int = 2023) -> Table:
    """Draw the interaction log (user, item, timestamp) for ``spec``; same seed, same table."""
    rng = np.random.default_rng(seed)
    users, items, item_comm, user_comm = _tastes(spec, rng)

    popularity_rank = rng.permutation(spec.n_items) + 1
    log_pop = -spec.zipf_exponent * np.log(popularity_rank.astype(np.float64))

    raw = rng.lognormal(mean=0.0, sigma=spec.activity_sigma, size=spec.n_users)
    activity = np.round(raw / raw.mean() * spec.mean_activity).astype(np.int64)
    activity = np.clip(activity, spec.min_activity, spec.n_items // 2)
    if spec.sampler == "communities":
        user_idx, item_idx = _community_picks(spec, rng, activity, user_comm, item_comm, log_pop)
        activity = np.bincount(user_idx, minlength=spec.n_users)
        return _with_timestamps(spec, rng, user_idx, item_idx, activity)

    scores = spec.affinity * (users @ items.T) + log_pop[None, :]
    scores = np.round(scores, 6)                       # machine-independent before sampling
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=scores.shape)))
    keys = scores + gumbel
    order = np.argsort(-keys, axis=1, kind="stable")

    cols = np.arange(spec.n_items)[None, :]
    chosen = cols < activity[:, None]                  # the first activity[u] picks of each row
    user_idx = np.repeat(np.arange(spec.n_users), activity)
    item_idx = order[chosen]
    return _with_timestamps(spec, rng, user_idx, item_idx, activity)


def _with_timestamps(spec: SyntheticSpec, rng: np.random.Generator, user_idx: np.ndarray, item_idx: np.ndarray,
                     activity: np.ndarray) -> Table:
    """Increasing timestamps per user (about a day apart), users start at random times."""
    start = spec.start_time + rng.integers(0, 365 * 86400, spec.n_users)
    gaps = rng.integers(600, 2 * 86400, item_idx.shape[0])
    first = np.ones(item_idx.shape[0], dtype=bool)
    first[1:] = user_idx[1:] != user_idx[:-1]
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first] - gaps[first], activity[activity > 0])
    timestamps = start[user_idx] + offset
    return Table(user=user_idx.astype(np.int64), item=item_idx.astype(np.int64), rating=None,
                 timestamp=timestamps.astype(np.int64))


def _community_picks(spec: SyntheticSpec, rng: np.random.Generator, activity: np.ndarray, user_comm: np.ndarray,
                     item_comm: np.ndarray, log_pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) picks at any scale: each pick from the user's community (else, with
    probability ``explore``, a random one), an item of it by popularity; without repeats.

    The exact sampler scores every (user, item) pair — 4.8e9 at Amazon-Book's shape. This
    one costs O(picks · log m): rounds draw each user's shortfall twice over, keep the
    first new items in draw order, and stop when every user has their count (or after 8
    rounds; the few still short are left short). Users grouped by community, so the
    structure a model can learn is the community, the tail is the Zipf popularity.
    """
    order = np.argsort(item_comm, kind="stable")
    bounds = np.searchsorted(item_comm[order], np.arange(spec.communities + 1))
    weight = np.exp(log_pop[order] - log_pop.max())
    cum = np.cumsum(weight)
    base = np.concatenate([[0.0], cum])[bounds]           # cumulative weight at each community's start
    kept_u: list[np.ndarray] = []
    kept_i: list[np.ndarray] = []
    seen = np.zeros(0, dtype=np.int64)
    need = activity.copy()
    for _ in range(8):
        short = np.flatnonzero(need > 0)
        if len(short) == 0:
            break
        draws = np.repeat(short, 2 * need[short])
        comm = np.where(rng.random(len(draws)) < spec.explore, rng.integers(0, spec.communities, len(draws)),
                        user_comm[draws])
        comm = np.where(bounds[comm + 1] > bounds[comm], comm, user_comm[draws])   # an empty community
        lo, hi = base[comm], base[comm + 1]
        pos = np.searchsorted(cum, lo + rng.random(len(draws)) * (hi - lo), side="right")
        pos = np.clip(pos, bounds[comm], bounds[comm + 1] - 1)
        keys = draws * spec.n_items + order[pos]
        keys = keys[_first_copies(keys)]                   # draw order kept: the earliest copy of each pair
        if len(seen):
            at = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
            keys = keys[seen[at] != keys]
        u = keys // spec.n_items
        rank = np.arange(len(keys)) - np.searchsorted(u, u, side="left") if len(keys) else keys
        # keys are in draw order, and draws are grouped by user: rank = position within the user
        take = rank < need[u]
        keys = keys[take]
        kept_u.append(keys // spec.n_items)
        kept_i.append(keys % spec.n_items)
        seen = np.sort(np.concatenate([seen, keys]))
        need = need - np.bincount(keys // spec.n_items, minlength=spec.n_users)
    user_idx = np.concatenate(kept_u)
    item_idx = np.concatenate(kept_i)
    by_user = np.argsort(user_idx, kind="stable")
    return user_idx[by_user], item_idx[by_user]


def _first_copies(keys: np.ndarray) -> np.ndarray:
    """Positions of each distinct key's first occurrence, in order (a sort; numpy's hashed unique is slower)."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = ranked[1:] != ranked[:-1]
    return np.sort(order[first])


def item_features(name: str, item_ids: np.ndarray | None = None, seed: int = 2023, noise: float = 1.0) -> np.ndarray:
    """Side features of a sample's items (float32): one-hot community, then the taste vector plus noise.

    The features an item tower can use (``examples/custom_model.py``): informative
    but not the answer (Gaussian noise of scale ``noise`` on each taste
    coordinate). ``item_ids``: the original ids in the order wanted (a prepared
    dataset's ``item_ids``); default every generated item in id order.
    """
    spec = SPECS[name]
    _, items, item_comm, _ = _tastes(spec, np.random.default_rng(seed))
    noisy = items + noise * np.random.default_rng([seed, 1]).standard_normal(items.shape)
    features = np.concatenate([np.eye(spec.communities)[item_comm], noisy], axis=1).astype(np.float32)
    return features if item_ids is None else features[np.asarray(item_ids, dtype=np.int64)]


def synthetic_raw(name: str, seed: int = 2023) -> RawData:
    """A registry sample as the same ``RawData`` a reader returns."""
    return RawData(parts={"all": generate(SPECS[name], seed)}, files={}, format="synthetic")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
