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

    def fingerprint(self) -> str:
        """Stands in for the input file sha256 of a real source."""
        payload = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


# The registry's two samples. `synthetic` trains MF for ~25 epochs in about a minute on 2 cores.
SPECS: dict[str, SyntheticSpec] = {
    "synthetic": SyntheticSpec(n_users=2500, n_items=1500, mean_activity=50.0),
    "synthetic-tiny": SyntheticSpec(n_users=300, n_items=200, mean_activity=20.0, communities=6,
                                    min_activity=4),
}


def _tastes(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user taste vectors, item taste vectors, item communities): the first draws of ``rng``."""
    centres = _unit(rng.standard_normal((spec.communities, spec.dim)))
    user_comm = rng.integers(0, spec.communities, spec.n_users)
    item_comm = rng.integers(0, spec.communities, spec.n_items)
    users = _unit(centres[user_comm] + spec.community_spread * rng.standard_normal((spec.n_users, spec.dim)))
    items = _unit(centres[item_comm] + spec.community_spread * rng.standard_normal((spec.n_items, spec.dim)))
    return users, items, item_comm


def generate(spec: SyntheticSpec, seed: int = 2023) -> Table:
    """Draw the interaction log (user, item, timestamp) for ``spec``; same seed, same table."""
    rng = np.random.default_rng(seed)
    users, items, _ = _tastes(spec, rng)

    popularity_rank = rng.permutation(spec.n_items) + 1
    log_pop = -spec.zipf_exponent * np.log(popularity_rank.astype(np.float64))

    raw = rng.lognormal(mean=0.0, sigma=spec.activity_sigma, size=spec.n_users)
    activity = np.round(raw / raw.mean() * spec.mean_activity).astype(np.int64)
    activity = np.clip(activity, spec.min_activity, spec.n_items // 2)

    scores = spec.affinity * (users @ items.T) + log_pop[None, :]
    scores = np.round(scores, 6)                       # machine-independent before sampling
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=scores.shape)))
    keys = scores + gumbel
    order = np.argsort(-keys, axis=1, kind="stable")

    cols = np.arange(spec.n_items)[None, :]
    chosen = cols < activity[:, None]                  # the first activity[u] picks of each row
    user_idx = np.repeat(np.arange(spec.n_users), activity)
    item_idx = order[chosen]

    # Increasing timestamps per user (about a day apart), users start at random times.
    start = spec.start_time + rng.integers(0, 365 * 86400, spec.n_users)
    gaps = rng.integers(600, 2 * 86400, item_idx.shape[0])
    first = np.ones(item_idx.shape[0], dtype=bool)
    first[1:] = user_idx[1:] != user_idx[:-1]
    seg = np.cumsum(first) - 1
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first] - gaps[first], activity)
    timestamps = start[seg] + offset
    return Table(user=user_idx.astype(np.int64), item=item_idx.astype(np.int64), rating=None,
                 timestamp=timestamps.astype(np.int64))


def item_features(name: str, item_ids: np.ndarray | None = None, seed: int = 2023, noise: float = 1.0) -> np.ndarray:
    """Side features of a sample's items (float32): one-hot community, then the taste vector plus noise.

    The features an item tower can use (``examples/custom_model.py``): informative
    but not the answer (Gaussian noise of scale ``noise`` on each taste
    coordinate). ``item_ids``: the original ids in the order wanted (a prepared
    dataset's ``item_ids``); default every generated item in id order.
    """
    spec = SPECS[name]
    _, items, item_comm = _tastes(spec, np.random.default_rng(seed))
    noisy = items + noise * np.random.default_rng([seed, 1]).standard_normal(items.shape)
    features = np.concatenate([np.eye(spec.communities)[item_comm], noisy], axis=1).astype(np.float32)
    return features if item_ids is None else features[np.asarray(item_ids, dtype=np.int64)]


def synthetic_raw(name: str, seed: int = 2023) -> RawData:
    """A registry sample as the same ``RawData`` a reader returns."""
    return RawData(parts={"all": generate(SPECS[name], seed)}, files={}, format="synthetic")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
