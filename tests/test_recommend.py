"""recommend: original ids in and out, training items never recommended, unknown users rejected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.workflows.recommend import (
    parse_user_spec,
    recommend_embeddings,
    user_index,
    write_recommendations,
)


@pytest.fixture
def named_dataset(tiny_dataset) -> PreparedDataset:
    """The tiny dataset with string user ids and sparse integer item ids, as raw data would have."""
    tiny_dataset.user_ids = np.array([f"user-{u * 3}" for u in range(tiny_dataset.n_users)], dtype=object)
    tiny_dataset.item_ids = np.arange(tiny_dataset.n_items) * 10 + 1000
    return tiny_dataset


@pytest.fixture
def embeddings(named_dataset):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(named_dataset.n_users, 6, generator=g),
            torch.randn(named_dataset.n_items, 6, generator=g))


def test_original_ids_in_and_out_and_training_items_excluded(named_dataset, embeddings):
    U, I = embeddings
    recs = recommend_embeddings(named_dataset, U, I, "user-3,user-30", k=5)
    f = recs.frame
    assert list(f.columns) == ["user", "rank", "item", "score"]
    assert f["user"].unique().tolist() == ["user-3", "user-30"]      # request order kept
    train = named_dataset.csr("train")
    for uid, uidx in (("user-3", 1), ("user-30", 10)):
        rows = f[f["user"] == uid]
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        items = ((rows["item"].to_numpy() - 1000) // 10).astype(int)
        assert set(rows["item"]) <= set(named_dataset.item_ids.tolist())
        assert not set(items.tolist()) & set(train[uidx].indices.tolist())
        # ranked by the model's score, best first, and they are the best unseen items
        scores = (U[uidx] @ I.T).numpy()
        scores[train[uidx].indices] = -np.inf
        assert items.tolist() == np.argsort(-scores, kind="stable")[:5].tolist()
        assert np.all(np.diff(rows["score"].to_numpy()) <= 0)


def test_exclude_seen_also_drops_valid_and_test_items(named_dataset, embeddings):
    U, I = embeddings
    f = recommend_embeddings(named_dataset, U, I, ["user-0"], k=10, exclude_seen=True).frame
    seen = set()
    for split in ("train", "valid", "test"):
        seen |= set(named_dataset.csr(split)[0].indices.tolist())
    items = set(((f["item"].to_numpy() - 1000) // 10).tolist())
    assert not items & seen


def test_user_with_fewer_unseen_items_than_k_gets_only_unseen_items(named_dataset, embeddings):
    U, I = embeddings
    n_unseen = named_dataset.n_items - named_dataset.csr("train")[0].nnz
    f = recommend_embeddings(named_dataset, U, I, "user-0", k=named_dataset.n_items).frame
    assert len(f) == n_unseen
    assert f["rank"].tolist() == list(range(1, n_unseen + 1))


def test_unknown_user_is_a_clear_error_or_skipped(named_dataset, embeddings):
    U, I = embeddings
    with pytest.raises(UserError, match="not in the dataset.*'nobody'"):
        recommend_embeddings(named_dataset, U, I, "user-3,nobody", k=3)
    recs = recommend_embeddings(named_dataset, U, I, "user-3,nobody", k=3, skip_unknown=True)
    assert recs.unknown == ["nobody"]
    assert recs.frame["user"].unique().tolist() == ["user-3"]
    recs = recommend_embeddings(named_dataset, U, I, "nobody", k=3, skip_unknown=True)
    assert len(recs.frame) == 0 and recs.to_dict()["users"] == []


def test_integer_ids_match_by_their_text(tiny_dataset):
    idx, known, unknown = user_index(tiny_dataset, ["3", "39", "40"], skip_unknown=True)
    assert idx.tolist() == [3, 39] and known == ["3", "39"] and unknown == ["40"]


def test_user_files(tmp_path):
    (tmp_path / "u.txt").write_text("# my users\n7\n\n9\n7\n")
    assert parse_user_spec(tmp_path / "u.txt") == ["7", "9"]
    pd.DataFrame({"x": [1, 2], "user_id": ["a", "b"]}).to_csv(tmp_path / "u.csv", index=False)
    assert parse_user_spec(str(tmp_path / "u.csv")) == ["a", "b"]
    pd.DataFrame({"uid": ["c"]}).to_parquet(tmp_path / "u.parquet")
    assert parse_user_spec(tmp_path / "u.parquet") == ["c"]
    with pytest.raises(UserError, match="users file not found"):
        parse_user_spec(str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match="no user ids"):
        parse_user_spec(" , ")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_written_files_keep_original_ids(named_dataset, embeddings, tmp_path, suffix):
    U, I = embeddings
    recs = recommend_embeddings(named_dataset, U, I, "user-3,user-6", k=4)
    path = write_recommendations(recs, tmp_path / f"recs{suffix}")
    if suffix == ".json":
        data = json.loads(path.read_text())
        assert [u["user"] for u in data["users"]] == ["user-3", "user-6"]
        assert data["users"][0]["items"] == recs.frame["item"].tolist()[:4]
    else:
        back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        assert back["user"].tolist() == recs.frame["user"].tolist()
        assert back["item"].astype(int).tolist() == recs.frame["item"].tolist()
    with pytest.raises(UserError, match="unknown suffix"):
        write_recommendations(recs, tmp_path / "recs.xlsx")
