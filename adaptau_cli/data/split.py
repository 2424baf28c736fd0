"""Cleaning and splitting: explicit -> implicit, dedupe, k-core, dense ids, train/valid/test.

Everything here is vectorized numpy on integer codes, and pure: the same input
arrays and options always give the same output arrays (the seed drives every
random choice), which is what makes the store folder reproducible byte for byte.

The order of operations, and why:

1. ``--min-rating`` keeps interactions with ``rating >= min_rating`` (explicit -> implicit).
2. Duplicate (user, item) pairs are removed, keeping the earliest timestamp
   (or the first occurrence, train before valid before test, without timestamps).
3. Iterative k-core (``--user-core``, ``--item-core``) runs to a fixed point:
   removing a user can push an item below its threshold and back again, so a
   single pass is not enough.
4. The split (see ``SPLIT_METHODS``) assigns each interaction to train, valid, test.
5. Ids are remapped to dense indices ``0..n-1`` in the sorted order of the
   original ids (so 0-based integer ids that are already dense keep their value).

Users with too few interactions for a per-user split (random, temporal-user,
leave-one-out) always keep at least one training interaction: the held-out
counts are rounded per user, valid is given up first and then test. A user's
first held-out interaction goes to test, the next ones are shared out by the
ratios, so as users get more interactions they get a test item first, then a
valid item (under 0.8,0.1,0.1: 1-2 interactions train-only, 3-7 train + test,
8+ all three; ``min_interactions_for_test`` computes the threshold). Train-only
users help training but are not evaluated; their count is recorded
(``SplitResult.train_only_users``). A temporal-global cut can leave late users
with nothing in train: their held-out interactions are dropped (counted in the
manifest), as they are cold-start users no embedding model can score. A *given*
split that leaves a user with held-out interactions but nothing in train is an
error.

Cold items: a valid or test interaction whose item has no training interaction
cannot be learned, only guessed. ``finalize`` counts them per split
(``SplitResult.cold``); with ``drop_cold`` it removes them (and items left with
no interaction at all leave the catalogue).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.data.dataset import Interactions
from adaptau_cli.data.readers import RawData
from adaptau_cli.data.stats import gini

SPLIT_METHODS = ("auto", "given", "random", "temporal-global", "temporal-user", "loo-last", "loo-random")
TRAIN, VALID, TEST, DROPPED = 0, 1, 2, -1
PART_CODE = {"train": TRAIN, "valid": VALID, "test": TEST, "all": TRAIN}


@dataclasses.dataclass
class Pool:
    """All interactions after cleaning, as integer codes into the sorted original ids."""

    users: np.ndarray               # int64 codes into user_ids
    items: np.ndarray               # int64 codes into item_ids
    part: np.ndarray                # int8 given part (TRAIN/VALID/TEST); TRAIN for a single file
    timestamps: np.ndarray | None
    user_ids: np.ndarray            # sorted original ids (int64 or str objects)
    item_ids: np.ndarray
    counts: dict[str, int]          # rows after each cleaning step


@dataclasses.dataclass
class SplitResult:
    """Dense-indexed splits plus the id maps and what was removed on the way."""

    splits: dict[str, Interactions]
    user_ids: np.ndarray            # dense index -> original id
    item_ids: np.ndarray
    counts: dict[str, int]
    # valid/test interactions (and distinct items) whose item is not in train; "dropped": removed or kept
    cold: dict = dataclasses.field(default_factory=dict)
    train_only_users: int = 0       # users with no valid and no test interaction (not evaluated)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

def parse_ratios(ratios) -> tuple[float, float, float]:
    """``(train, valid, test)`` shares from 2 or 3 numbers (or a '0.8,0.1,0.1' string) summing to 1."""
    if isinstance(ratios, str):
        try:
            ratios = [float(x) for x in ratios.replace(" ", "").split(",") if x]
        except ValueError:
            raise UserError(f"--split ratios must be numbers like 0.8,0.1,0.1, got {ratios!r}") from None
    values = [float(x) for x in ratios]
    if len(values) == 2:
        values = [values[0], 0.0, values[1]]
    if len(values) != 3:
        raise UserError(f"split ratios need 2 or 3 numbers (train,valid,test), got {len(values)}",
                        hint="for example --split 0.8,0.1,0.1")
    if any((not math.isfinite(v)) or v < 0 for v in values):
        raise UserError(f"split ratios must be non-negative, got {values}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise UserError(f"split ratios must sum to 1, got {values} (sum {sum(values):g})",
                        hint="for example --split 0.8,0.1,0.1")
    if values[0] <= 0 or values[2] <= 0:
        raise UserError(f"split ratios need a positive train and test share, got {values}")
    return values[0], values[1], values[2]


def resolve_split(method: str, given_split: bool, has_valid_file: bool, valid_ratio: float) -> str:
    """``auto`` means keep a given split, else random per user; reject contradictions."""
    method = (method or "auto").lower()
    if method not in SPLIT_METHODS:
        raise UserError(f"unknown split {method!r}",
                        hint=f"use one of {', '.join(SPLIT_METHODS)} or ratios like 0.8,0.1,0.1")
    if method == "auto":
        method = "given" if given_split else "random"
    if not (0.0 <= valid_ratio < 1.0):
        raise UserError(f"--valid-ratio must be in [0, 1), got {valid_ratio}")
    if method == "given":
        if not given_split:
            raise UserError("--split given needs a source with its own split (train and test files)",
                            hint="use --split random (or 0.8,0.1,0.1), temporal-user, loo-last ...")
        if valid_ratio > 0 and has_valid_file:
            raise UserError("--valid-ratio contradicts the source's own valid file",
                            hint="drop --valid-ratio, or remove the valid file")
    elif valid_ratio > 0:
        raise UserError(f"--valid-ratio only applies to a given train/test split, not to --split {method}",
                        hint="set the validation share in the ratios instead, e.g. --split 0.8,0.1,0.1")
    return method


# ---------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------

def factorize_sorted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the sorted unique ids (hash-based factorize, then re-rank: O(n) + O(k log k))."""
    import pandas as pd  # imported here: loading a prepared store never needs pandas

    codes, uniques = pd.factorize(ids, sort=False)
    uniques = np.asarray(uniques)
    try:
        order = np.argsort(uniques, kind="stable")
    except TypeError:  # mixed types (e.g. ints and strings in one parquet column): compare as text
        uniques = uniques.astype(str).astype(object)
        order = np.argsort(uniques, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return rank[codes].astype(np.int64), uniques[order]


def build_pool(raw: RawData, min_rating: float | None, user_core: int = 0, item_core: int = 0) -> Pool:
    """Concatenate the source's parts and clean them (steps 1-3 of the module docstring)."""
    roles = list(raw.parts)
    tables = [raw.parts[r] for r in roles]
    counts = {"rows_read": raw.rows}
    users = _concat([t.user for t in tables])
    items = _concat([t.item for t in tables])
    part = np.concatenate([np.full(len(t), PART_CODE[r], np.int8) for r, t in zip(roles, tables)])
    ts = np.concatenate([t.timestamp for t in tables]) if raw.has_timestamp else None

    if min_rating is not None:
        if not raw.has_rating:
            raise UserError("--min-rating was given but the source has no rating column",
                            hint="drop --min-rating, or name the column with --rating-col")
        rating = np.concatenate([t.rating for t in tables])
        keep = rating >= float(min_rating)
        users, items, part = users[keep], items[keep], part[keep]
        ts = ts[keep] if ts is not None else None
        counts["after_min_rating"] = int(keep.sum())
        if not keep.any():
            raise DataError(f"no interactions have rating >= {min_rating:g} ({raw.rows} rows read)",
                            hint="lower --min-rating")

    ucode, user_ids = factorize_sorted(users)
    icode, item_ids = factorize_sorted(items)

    keep = dedupe_mask(ucode, icode, len(item_ids), ts)
    counts["duplicates_removed"] = int((~keep).sum())
    ucode, icode, part = ucode[keep], icode[keep], part[keep]
    ts = ts[keep] if ts is not None else None

    if user_core > 1 or item_core > 1:
        keep = kcore_mask(ucode, icode, user_core, item_core, len(user_ids), len(item_ids))
        counts["kcore_removed"] = int((~keep).sum())
        ucode, icode, part = ucode[keep], icode[keep], part[keep]
        ts = ts[keep] if ts is not None else None
    counts["after_cleaning"] = int(ucode.shape[0])
    if ucode.shape[0] == 0:
        if raw.rows == 0:
            where = ", ".join(str(f) for f in raw.files.values()) or "the source"
            raise DataError(f"{where}: no user-item pairs to read (0 interactions)",
                            hint="check that the file holds interactions (and --format / --sep, if given)")
        pairs = counts.get("after_min_rating", raw.rows) - counts["duplicates_removed"]
        raise DataError(f"no interactions left after k-core filtering (--user-core {user_core}, "
                        f"--item-core {item_core}): none of the {pairs} distinct user-item pairs survives",
                        hint="lower --user-core / --item-core")
    return Pool(users=ucode, items=icode, part=part, timestamps=ts, user_ids=user_ids, item_ids=item_ids,
                counts=counts)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if all(a.dtype.kind in "iu" for a in arrays):
        return np.concatenate(arrays).astype(np.int64, copy=False)
    # Ids of one source are either all integers or strings; a mix (int file + str file) compares as text.
    if any(a.dtype.kind in "iu" for a in arrays):
        arrays = [a.astype(str).astype(object) for a in arrays]
    return np.concatenate(arrays)


def dedupe_mask(users: np.ndarray, items: np.ndarray, n_items: int, timestamps: np.ndarray | None) -> np.ndarray:
    """Keep one row per (user, item): the earliest timestamp, ties and no-timestamp -> first row."""
    key = users * np.int64(max(n_items, 1)) + items
    n = key.shape[0]
    if timestamps is None:
        _, first = np.unique(key, return_index=True)   # index of the first occurrence
    else:
        order = np.lexsort((np.arange(n), timestamps, key))
        k = key[order]
        start = np.ones(n, dtype=bool)
        start[1:] = k[1:] != k[:-1]
        first = order[start]
    keep = np.zeros(n, dtype=bool)
    keep[first] = True
    return keep


def kcore_mask(users: np.ndarray, items: np.ndarray, user_core: int, item_core: int,
               n_users: int | None = None, n_items: int | None = None) -> np.ndarray:
    """Rows surviving iterative k-core: every kept user has >= user_core and item >= item_core rows."""
    n_users = int(users.max(initial=-1)) + 1 if n_users is None else n_users
    n_items = int(items.max(initial=-1)) + 1 if n_items is None else n_items
    keep = np.ones(users.shape[0], dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=n_users)
        ic = np.bincount(items[keep], minlength=n_items)
        drop = keep & ((uc[users] < user_core) | (ic[items] < item_core))
        if not drop.any():
            return keep
        keep &= ~drop


# ---------------------------------------------------------------------------
# Splits: each returns an int8 array of TRAIN/VALID/TEST/DROPPED per row
# ---------------------------------------------------------------------------

def _group_positions(users: np.ndarray, sort_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row: its position from the *end* of its user's order, and its user's row count.

    Rows are ordered by (user, sort_key, row index), so position 0 is the user's
    latest (or, with a random key, a random) interaction.
    """
    n = users.shape[0]
    order = np.lexsort((np.arange(n), sort_key, users))
    u = users[order]
    start = np.ones(n, dtype=bool)
    start[1:] = u[1:] != u[:-1]
    starts = np.flatnonzero(start)
    sizes = np.diff(np.append(starts, n))
    count_sorted = np.repeat(sizes, sizes)
    rank_sorted = np.arange(n) - np.repeat(starts, sizes)
    from_end = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    from_end[order] = count_sorted - 1 - rank_sorted
    count[order] = count_sorted
    return from_end, count


def _holdout_counts(count: np.ndarray, r_valid: float, r_test: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (n_test, n_valid) of its user: cumulative rounding, at least one train row kept.

    The held-out count is ``count * (r_valid + r_test)`` rounded; test takes its
    own rounded share but at least the first held-out interaction, valid the
    rest: valid is given up before test.
    """
    count = np.asarray(count, dtype=np.int64)
    n_held = np.floor(count * (r_test + r_valid) + 0.5).astype(np.int64)
    n_held = np.minimum(n_held, count - 1)           # keep >= 1 train interaction
    n_test = np.floor(count * r_test + 0.5).astype(np.int64)
    n_test = np.maximum(n_test, np.minimum(n_held, 1))   # anything held out: test first
    n_test = np.minimum(n_test, n_held)
    return n_test, n_held - n_test


def min_interactions_for_test(ratios: tuple[float, float, float]) -> int:
    """The fewest interactions a user needs to get a test item under a per-user ratio split."""
    r_held = float(ratios[1]) + float(ratios[2])
    if r_held <= 0:
        raise ValueError("no held-out share")
    count = max(2, math.floor(0.5 / r_held) - 1)
    while _holdout_counts(np.array([count]), float(ratios[1]), float(ratios[2]))[0][0] < 1:
        count += 1
    return count


def _assign_by_position(from_end: np.ndarray, n_test: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    which = np.full(from_end.shape[0], TRAIN, dtype=np.int8)
    which[from_end < n_test + n_valid] = VALID
    which[from_end < n_test] = TEST
    return which


def split_random(users: np.ndarray, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """Per user, a random ``ratios`` share of the interactions goes to valid and test."""
    key = np.random.default_rng(seed).permutation(users.shape[0])
    from_end, count = _group_positions(users, key)
    n_test, n_valid = _holdout_counts(count, ratios[1], ratios[2])
    return _assign_by_position(from_end, n_test, n_valid)


def split_temporal_user(users: np.ndarray, timestamps: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """Per user, the latest interactions go to test, the ones just before to valid."""
    from_end, count = _group_positions(users, timestamps)
    n_test, n_valid = _holdout_counts(count, ratios[1], ratios[2])
    return _assign_by_position(from_end, n_test, n_valid)


def split_temporal_global(users: np.ndarray, timestamps: np.ndarray,
                          ratios: tuple[float, float, float]) -> np.ndarray:
    """One global time cut: the latest share of all interactions is test, the share before it valid.

    Held-out interactions of users with nothing before the cut are DROPPED (cold-start users).
    """
    n = users.shape[0]
    order = np.lexsort((np.arange(n), timestamps))
    n_test = int(math.floor(n * ratios[2] + 0.5))
    n_held = int(math.floor(n * (ratios[1] + ratios[2]) + 0.5))
    n_held = min(n_held, n - 1)
    n_test = min(n_test, n_held)
    which_sorted = np.full(n, TRAIN, dtype=np.int8)
    which_sorted[n - n_held:] = VALID
    which_sorted[n - n_test:] = TEST
    which = np.empty(n, dtype=np.int8)
    which[order] = which_sorted
    has_train = np.zeros(int(users.max(initial=-1)) + 1, dtype=bool)
    has_train[users[which == TRAIN]] = True
    which[(which != TRAIN) & ~has_train[users]] = DROPPED
    return which


def split_leave_one_out(users: np.ndarray, key: np.ndarray, with_valid: bool) -> np.ndarray:
    """Per user, one interaction (the last by ``key``) to test and the one before it to valid.

    A user with 2 interactions gives up only test; with 1 interaction, nothing.
    """
    from_end, count = _group_positions(users, key)
    n_test = (count >= 2).astype(np.int64)
    n_valid = ((count >= 3) & with_valid).astype(np.int64)
    return _assign_by_position(from_end, n_test, n_valid)


def carve_valid(users: np.ndarray, part: np.ndarray, valid_ratio: float, seed: int) -> np.ndarray:
    """Move a seeded per-user ``valid_ratio`` share of the given train rows to valid."""
    which = part.astype(np.int8).copy()
    rows = np.flatnonzero(part == TRAIN)
    key = np.random.default_rng(seed).permutation(rows.shape[0])
    from_end, count = _group_positions(users[rows], key)
    n_valid = np.minimum(np.floor(count * valid_ratio + 0.5).astype(np.int64), count - 1)
    which[rows[from_end < n_valid]] = VALID
    return which


def assign_splits(pool: Pool, method: str, ratios: tuple[float, float, float], valid_ratio: float,
                  seed: int) -> np.ndarray:
    """Run the chosen split method on a cleaned pool (``method`` already resolved)."""
    users = pool.users
    if method == "given":
        if valid_ratio > 0:
            return carve_valid(users, pool.part, valid_ratio, seed)
        return pool.part.copy()
    if method == "random":
        return split_random(users, ratios, seed)
    if method == "loo-random":
        key = np.random.default_rng(seed).permutation(users.shape[0])
        return split_leave_one_out(users, key, ratios[1] > 0)
    if pool.timestamps is None:
        raise UserError(f"--split {method} needs timestamps, and the source has none",
                        hint="name the column with --time-col, or use --split random / loo-random")
    if method == "temporal-user":
        return split_temporal_user(users, pool.timestamps, ratios)
    if method == "temporal-global":
        return split_temporal_global(users, pool.timestamps, ratios)
    if method == "loo-last":
        return split_leave_one_out(users, pool.timestamps, ratios[1] > 0)
    raise UserError(f"unknown split {method!r}")  # pragma: no cover


# ---------------------------------------------------------------------------
# Dense remapping
# ---------------------------------------------------------------------------

def finalize(pool: Pool, which: np.ndarray, method: str, ratios: tuple[float, float, float] | None = None,
             drop_cold: bool = False) -> SplitResult:
    """Drop DROPPED rows, check every held-out user has train data, count (or drop) cold items,
    remap to dense int32 indices. ``ratios`` only words the error of an empty test set."""
    counts = dict(pool.counts)
    kept = which != DROPPED
    counts["split_dropped"] = int((~kept).sum())
    users, items, which = pool.users[kept], pool.items[kept], which[kept]
    ts = pool.timestamps[kept] if pool.timestamps is not None else None

    in_train = np.zeros(pool.user_ids.shape[0], dtype=bool)
    in_train[users[which == TRAIN]] = True
    orphan = ~in_train[users]
    if orphan.any():
        bad_users = np.unique(users[orphan])
        example = pool.user_ids[bad_users[0]]
        example = example.item() if isinstance(example, np.generic) else example
        raise DataError(f"the {method} split leaves {bad_users.shape[0]} user(s) with held-out interactions "
                        f"but nothing in train (e.g. user {example!r})",
                        hint="use --split random/temporal-user/loo-last, or fix the split files")

    seen = np.zeros(pool.item_ids.shape[0], dtype=bool)
    seen[items[which == TRAIN]] = True
    cold_rows = (which != TRAIN) & ~seen[items]
    cold: dict = {}
    for name, code in (("valid", VALID), ("test", TEST)):
        rows = cold_rows & (which == code)
        cold[name] = {"interactions": int(rows.sum()), "items": int(np.unique(items[rows]).shape[0])}
    cold["dropped"] = bool(drop_cold)
    had_test = bool((which == TEST).any())
    if drop_cold:
        counts["cold_dropped"] = int(cold_rows.sum())
        users, items, which = users[~cold_rows], items[~cold_rows], which[~cold_rows]
        ts = ts[~cold_rows] if ts is not None else None

    if not (which == TEST).any():
        raise DataError(f"the {method} split has an empty test set ({users.shape[0]} interactions)",
                        hint=_empty_test_hint(method, ratios, pool.users.shape[0], had_test and drop_cold))
    evaluated = np.zeros(pool.user_ids.shape[0], dtype=bool)
    evaluated[users[which != TRAIN]] = True
    used_u = np.unique(users)
    train_only = int((~evaluated[used_u]).sum())

    used_i = np.unique(items)
    umap = np.full(pool.user_ids.shape[0], -1, dtype=np.int64)
    imap = np.full(pool.item_ids.shape[0], -1, dtype=np.int64)
    umap[used_u] = np.arange(used_u.shape[0])
    imap[used_i] = np.arange(used_i.shape[0])
    if used_u.shape[0] > np.iinfo(np.int32).max or used_i.shape[0] > np.iinfo(np.int32).max:
        raise DataError("more than 2^31 users or items; this store keeps int32 indices")
    du = umap[users].astype(np.int32)
    di = imap[items].astype(np.int32)

    splits = {}
    for name, code in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        rows = np.flatnonzero(which == code)
        order = rows[np.lexsort((di[rows], du[rows]))]   # canonical order: by user, then item
        splits[name] = Interactions(users=du[order], items=di[order],
                                    timestamps=ts[order] if ts is not None else None)
    return SplitResult(splits=splits, user_ids=pool.user_ids[used_u], item_ids=pool.item_ids[used_i],
                       counts=counts, cold=cold, train_only_users=train_only)


def _empty_test_hint(method: str, ratios: tuple[float, float, float] | None, n_rows: int,
                     all_cold_dropped: bool) -> str:
    """How to get a test set, for the split that produced none."""
    if all_cold_dropped:
        return "every test item is missing from train, and --drop-cold removed them all; " \
               "rerun without --drop-cold, or fix the split files"
    if method == "given":
        return "the source's test file has no interaction left after cleaning; check that file " \
               "(and --min-rating / --user-core / --item-core, if given)"
    if method in ("loo-last", "loo-random"):
        return "every user has a single interaction, and leave-one-out needs 2 to hold one out; use more data"
    if ratios is None:
        return "use more data, or a split that holds out more"
    shares = ",".join(f"{r:g}" for r in ratios)
    if method == "temporal-global":
        if math.floor(n_rows * ratios[2] + 0.5) == 0:
            return f"the test share {ratios[2]:g} of {n_rows} interactions rounds to none; raise it or use more data"
        return "every test interaction belongs to a user with nothing before the time cut (dropped as cold-start); " \
               "use --split temporal-user or random"
    need = min_interactions_for_test(ratios)
    return (f"under the ratios {shares} a user needs at least {need} interactions to get a test item, and none "
            f"has that many; use more data, raise the held-out shares, or use --split loo-random")


def split_pool(pool: Pool, method: str, ratios: tuple[float, float, float], valid_ratio: float,
               seed: int, drop_cold: bool = False) -> SplitResult:
    """Assign and finalize in one call."""
    return finalize(pool, assign_splits(pool, method, ratios, valid_ratio, seed), method, ratios, drop_cold)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

def split_stats(split: Interactions, n_items: int) -> dict[str, float | int]:
    """Users, items, interactions, density (interactions / (users x items) of the split), item Gini."""
    users = int(np.unique(split.users).shape[0]) if len(split) else 0
    pop = np.bincount(split.items, minlength=n_items) if len(split) else np.zeros(n_items, np.int64)
    items = int((pop > 0).sum())
    inter = len(split)
    density = inter / (users * items) if users and items else 0.0
    return {"users": users, "items": items, "interactions": inter, "density": round(density, 8),
            "gini": round(gini(pop), 6)}
