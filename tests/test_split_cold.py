"""Held-out items nobody trained on, users too small to test, and what the empty cases say.

Issue #15: a given split whose test or valid file names items that never occur
in train was evaluated without a word; users with 3-4 interactions got a valid
item but no test item (the README says valid is given up first); an empty file
was reported as "no interactions left after filtering", and the empty-test hint
said "users need at least 2 interactions" whatever the ratios.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli

from adaptau_cli.base.errors import DataError
from adaptau_cli.data import split as S
from adaptau_cli.data.readers import RawData, Table


def flat(text: str) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(text.split())


def lightgcn(tmp_path: Path, train: str, test: str, valid: str | None = None, name: str = "lg") -> Path:
    src = tmp_path / name
    src.mkdir()
    (src / "train.txt").write_text(train)
    (src / "test.txt").write_text(test)
    if valid is not None:
        (src / "valid.txt").write_text(valid)
    return src


# users 0-3 train on items 1-6; test names items 7, 8 (cold) and 1, 2 (seen); valid names 9 (cold) and 3
TRAIN = "0 1 2 3\n1 2 3 4\n2 4 5 6\n3 1 5 6\n"
TEST = "0 7 4\n1 8 1\n2 7\n3 2\n"
VALID = "0 9\n1 6\n"


def preprocess(*args: str) -> tuple[int, dict | None, str]:
    code, out, err = run_cli(["preprocess", *args, "--json"])
    return code, (json.loads(out) if code == 0 else None), err


def manifest_of(result: dict) -> dict:
    return json.loads((Path(result["path"]) / "manifest.json").read_text())


# ---------------------------------------------------------------- cold items

def test_cold_items_of_a_given_split_are_counted_and_warned_about(tmp_path):
    src = lightgcn(tmp_path, TRAIN, TEST, VALID)
    code, result, err = preprocess("--source", str(src))
    assert code == 0, err
    text = flat(err)
    assert "warning: 3 test interactions (2 items) and 1 valid interaction (1 item) of items never seen in " \
           "training; --drop-cold drops them" in text
    m = manifest_of(result)
    assert m["cold"] == {"test": {"interactions": 3, "items": 2}, "valid": {"interactions": 1, "items": 1},
                         "dropped": False}
    assert result["n_items"] == 9 and result["stats"]["test"]["interactions"] == 6
    # reusing the store warns again (the data has not changed) ...
    code, result2, err = preprocess("--source", str(src))
    assert code == 0 and result2["reused"] and "3 test interactions (2 items)" in flat(err)
    # ... but not with --quiet
    code, _, err = preprocess("--source", str(src), "--quiet")
    assert code == 0 and "warning" not in err


def test_no_warning_without_cold_items(tmp_path):
    src = lightgcn(tmp_path, TRAIN, "0 4\n1 1\n2 1\n3 2\n")
    code, result, err = preprocess("--source", str(src))
    assert code == 0 and "never seen in training" not in flat(err)
    assert manifest_of(result)["cold"]["test"] == {"interactions": 0, "items": 0}


def test_drop_cold_removes_them_and_their_items(tmp_path):
    src = lightgcn(tmp_path, TRAIN, TEST, VALID)
    code, kept, _ = preprocess("--source", str(src))
    assert code == 0
    config = tmp_path / "drop.toml"
    config.write_text("[dataset]\ndrop_cold = true\n")
    code, dropped, err = preprocess("--source", str(src), "--config", str(config))
    assert code == 0, err
    assert dropped["path"] != kept["path"]                                  # its own store entry
    assert "never seen in training" not in flat(err)
    assert "dropped 4 valid/test interactions whose item never occurs in training (--drop-cold)" in flat(err)
    m = manifest_of(dropped)
    assert m["cleaning"]["cold_dropped"] == 4 and m["cold"]["dropped"] is True
    assert m["cold"]["test"] == {"interactions": 3, "items": 2}            # what was found (and removed)
    assert m["options"]["drop_cold"] is True
    assert dropped["n_items"] == 6                                           # items 7, 8, 9 leave the catalogue
    assert dropped["stats"]["test"]["interactions"] == 3 and dropped["stats"]["valid"]["interactions"] == 1
    for key in ("users", "items", "interactions", "density"):                 # train is untouched
        assert dropped["stats"]["train"][key] == kept["stats"]["train"][key]
    items = pq.read_table(Path(dropped["path"]) / "items.parquet")
    assert items.column("id").to_pylist() == [1, 2, 3, 4, 5, 6]


def test_drop_cold_flag_on_the_command_line(tmp_path):
    code, out, _ = run_cli(["preprocess", "--help"])
    if "--drop-cold" not in out:
        pytest.skip("the --drop-cold flag is not wired into the CLI yet (adaptau_cli/cli/options.py)")
    src = lightgcn(tmp_path, TRAIN, TEST, VALID)
    code, result, err = preprocess("--source", str(src), "--drop-cold")
    assert code == 0, err
    assert manifest_of(result)["cleaning"]["cold_dropped"] == 4


def test_dropping_every_test_item_says_so(tmp_path):
    src = lightgcn(tmp_path, TRAIN, "0 7\n1 8\n")
    config = tmp_path / "drop.toml"
    config.write_text("[dataset]\ndrop_cold = true\n")
    code, _, err = preprocess("--source", str(src), "--config", str(config))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "empty test set" in err and "--drop-cold removed them all" in err


def test_finalize_counts_cold_rows_per_split_and_drops_them():
    raw = RawData(parts={"train": Table(np.array([0, 0, 1]), np.array([10, 11, 10])),
                         "valid": Table(np.array([1]), np.array([12])),
                         "test": Table(np.array([0, 1, 1]), np.array([12, 13, 11]))}, files={}, format="t")
    pool = S.build_pool(raw, None)
    which = S.assign_splits(pool, "given", (0.8, 0.1, 0.1), 0.0, 0)
    kept = S.finalize(pool, which, "given")
    assert kept.cold == {"valid": {"interactions": 1, "items": 1}, "test": {"interactions": 2, "items": 2},
                         "dropped": False}
    assert kept.n_items == 4 and "cold_dropped" not in kept.counts
    dropped = S.finalize(pool, which, "given", drop_cold=True)
    assert dropped.counts["cold_dropped"] == 3 and dropped.n_items == 2
    assert dropped.item_ids.tolist() == [10, 11]
    assert len(dropped.splits["valid"]) == 0 and len(dropped.splits["test"]) == 1
    assert dropped.train_only_users == 1                      # user 0 lost its only held-out item


# ---------------------------------------------------------------- small users: test first

def counts_per_user(result: S.SplitResult) -> dict[int, tuple[int, int, int]]:
    out = {}
    for u in range(result.n_users):
        out[int(result.user_ids[u])] = tuple(int((result.splits[s].users == u).sum())
                                             for s in ("train", "valid", "test"))
    return out


def pool_of_sizes(sizes: list[int]) -> S.Pool:
    users = np.repeat(np.arange(len(sizes)), sizes)
    items = np.concatenate([np.arange(n) for n in sizes])
    return S.build_pool(RawData(parts={"all": Table(users, items)}, files={}, format="t"), None)


def test_small_users_get_a_test_item_before_a_valid_item():
    sizes = list(range(1, 11))
    res = S.split_pool(pool_of_sizes(sizes), "random", (0.8, 0.1, 0.1), 0.0, seed=0)
    # (train, valid, test) per user size under the default ratios: README "valid is given up before test"
    want = {1: (1, 0, 0), 2: (2, 0, 0), 3: (2, 0, 1), 4: (3, 0, 1), 5: (4, 0, 1), 6: (5, 0, 1), 7: (6, 0, 1),
            8: (6, 1, 1), 9: (7, 1, 1), 10: (8, 1, 1)}
    got = counts_per_user(res)
    assert {sizes[u]: got[u] for u in got} == want
    assert res.train_only_users == 2


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (0.5, 0.45, 0.05), (0.9, 0.0, 0.1),
                                    (0.6, 0.3, 0.1), (0.98, 0.01, 0.01)])
def test_held_out_counts_serve_test_first_for_every_size(ratios):
    count = np.arange(1, 400)
    n_test, n_valid = S._holdout_counts(count, ratios[1], ratios[2])
    held = n_test + n_valid
    assert (held <= count - 1).all()
    assert ((held == 0) | (n_test >= 1)).all()                # anything held out: a test item first
    assert (np.diff(held) >= 0).all()                         # more interactions never hold out fewer
    need = S.min_interactions_for_test(ratios)
    assert int(count[np.flatnonzero(n_test >= 1)[0]]) == need
    brute = next(c for c in range(1, 10_000)
                 if min(int(np.floor(c * (ratios[1] + ratios[2]) + 0.5)), c - 1) >= 1)
    assert need == brute


def test_temporal_user_split_also_tests_small_users(tmp_path):
    lines = ["user,item,timestamp"]
    for u, n in enumerate([1, 2, 3, 4, 9]):
        lines += [f"u{u},i{k},{100 * u + k}" for k in range(n)]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    code, result, err = preprocess("--source", str(tmp_path / "log.csv"), "--split", "temporal-user")
    assert code == 0, err
    m = manifest_of(result)
    assert m["train_only_users"] == 2                          # the users with 1 and 2 interactions
    assert m["stats"]["test"]["users"] == 3 and m["stats"]["valid"]["users"] == 1
    assert m["stats"]["test"]["interactions"] == 3


# ---------------------------------------------------------------- what the empty cases say

def test_a_file_without_pairs_is_not_called_filtered(tmp_path):
    f = tmp_path / "users_only.txt"
    f.write_text("0\n1\n2\n")
    code, _, err = preprocess("--source", str(f), "--format", "lightgcn")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{f}: no user-item pairs to read" in err and "filter" not in err
    csv = tmp_path / "header.csv"
    csv.write_text("user,item\n")
    code, _, err = preprocess("--source", str(csv))
    assert code == 2 and "no user-item pairs to read" in err and "filter" not in err


def test_kcore_that_removes_everything_names_the_cores():
    with pytest.raises(DataError, match=r"after k-core filtering \(--user-core 5, --item-core 0\): none of the 2"):
        S.build_pool(RawData(parts={"all": Table(np.array([1, 2]), np.array([1, 2]))}, files={}, format="t"),
                     None, user_core=5)


def test_empty_test_hint_computes_the_size_a_user_needs(tmp_path):
    lines = ["user,item"] + [f"u{u},i{k}" for u in range(5) for k in range(2)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    code, _, err = preprocess("--source", str(tmp_path / "pairs.csv"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "empty test set" in err and "needs at least 3 interactions to get a test item" in err
    assert "at least 2" not in err
    lines = ["user,item"] + [f"u{u},i{k}" for u in range(5) for k in range(4)]
    (tmp_path / "four.csv").write_text("\n".join(lines) + "\n")
    code, _, err = preprocess("--source", str(tmp_path / "four.csv"), "--split", "0.9,0.1")
    assert code == 2 and "under the ratios 0.9,0,0.1 a user needs at least 5 interactions" in err
    code, _, err = preprocess("--source", str(tmp_path / "four.csv"), "--split", "0.8,0.2")
    assert code == 0, err                                     # 4 x 0.2 rounds to one test item each


def test_empty_test_hint_of_a_given_split_talks_about_the_test_file():
    # every test pair is also a train pair: deduplication (train first) leaves the test file empty
    raw = RawData(parts={"train": Table(np.array([0, 0, 1]), np.array([1, 2, 1])),
                         "test": Table(np.array([0, 1]), np.array([1, 1]))}, files={}, format="t")
    with pytest.raises(DataError) as err:
        S.split_pool(S.build_pool(raw, None), "given", (0.8, 0.1, 0.1), 0.0, 0)
    line = err.value.one_line()
    assert "empty test set" in line and "test file has no interaction left" in line and "at least" not in line
    raw = RawData(parts={"all": Table(np.array([0, 1, 2]), np.array([1, 1, 2]))}, files={}, format="t")
    with pytest.raises(DataError) as err:
        S.split_pool(S.build_pool(raw, None), "loo-random", (0.8, 0.1, 0.1), 0.0, 0)
    assert "single interaction, and leave-one-out needs 2" in err.value.one_line()
