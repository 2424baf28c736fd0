"""The parquet store: exact statistics on real data, reuse, determinism, atomicity, loading."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig
from adaptau_cli.data import store
from adaptau_cli.data.prepare import list_datasets, prepare, prepare_dataset
from adaptau_cli.data.synthetic import SPECS, generate


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_ml1m_given_split_exact_stats_and_reuse(shared_datasets):
    cfg = PreprocessConfig(source=str(shared_datasets / "ml-1m"))
    first = prepare(cfg)
    ds = first.dataset
    assert not first.reused
    assert (ds.n_users, ds.n_items) == (6_022, 3_043)
    assert len(ds.splits["train"]) == 796_244 and len(ds.splits["test"]) == 99_455
    assert len(ds.splits["valid"]) == 0
    m = ds.manifest
    assert m["options"]["split"] == "given" and m["source"]["format"] == "lightgcn"
    assert {i["role"]: i["sha256"] for i in m["source"]["inputs"]} == {
        "train": "31fe589506162c76c90e87ddd017642f73655a3f959bd70deec8dda142608f4e",
        "test": "c8b4f275ea29fdb5560f0d9014d85a3865743f3089dca0259c79fee30dcdbdcd"}
    assert m["stats"]["train"]["interactions"] == 796_244 and m["stats"]["test"]["users"] == 6_022
    assert m["stats"]["train"]["density"] == pytest.approx(796_244 / (6_022 * 3_043), rel=1e-6)
    # ids were already dense and 0-based: the map is the identity
    assert np.array_equal(ds.user_ids, np.arange(6_022)) and np.array_equal(ds.item_ids, np.arange(3_043))

    again = prepare(cfg)
    assert again.reused and again.path == first.path
    loaded = again.dataset
    assert loaded.fingerprint == ds.fingerprint == m["content_hash"]
    csr = loaded.csr("train")
    assert csr.shape == (6_022, 3_043) and csr.nnz == 796_244


def test_ml100k_inter_counts_and_valid_carving(shared_datasets):
    ds = prepare_dataset(PreprocessConfig(source=str(shared_datasets / "ml-100k" / "ml-100k.inter")))
    assert (ds.n_users, ds.n_items) == (943, 1_682)
    assert sum(len(s) for s in ds.splits.values()) == 100_000
    assert ds.manifest["options"]["split"] == "random"
    assert ds.splits["train"].timestamps is not None


def test_ml1m_valid_ratio_carves_from_train(shared_datasets):
    ds = prepare_dataset(PreprocessConfig(source=str(shared_datasets / "ml-1m"), valid_ratio=0.1))
    assert len(ds.splits["test"]) == 99_455
    assert len(ds.splits["train"]) + len(ds.splits["valid"]) == 796_244
    assert abs(len(ds.splits["valid"]) / 796_244 - 0.1) < 0.005


def make_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["user,item,rating,timestamp"]
    for u in range(60):
        for i in rng.choice(40, 8, replace=False):
            lines.append(f"user{u},item{i},{rng.integers(1, 6)},{rng.integers(1000, 2000)}")
    f = tmp_path / "log.csv"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_same_inputs_same_folder_and_bytes(tmp_path):
    src = make_csv(tmp_path)
    cfg = dict(source=str(src), split="temporal-user", min_rating=2.0)
    a = prepare(PreprocessConfig(**cfg, home=str(tmp_path / "h1")))
    b = prepare(PreprocessConfig(**cfg, home=str(tmp_path / "h2")))
    assert a.path.name == b.path.name
    assert folder_bytes(a.path) == folder_bytes(b.path)
    forced = prepare(PreprocessConfig(**cfg, home=str(tmp_path / "h1")), force=True)
    assert not forced.reused and forced.path == a.path
    assert folder_bytes(forced.path) == folder_bytes(b.path)
    # a different option is a different folder
    c = prepare(PreprocessConfig(**cfg, home=str(tmp_path / "h1"), seed=7, user_core=2))
    assert c.path != a.path


def test_store_files_schema_and_string_ids_round_trip(tmp_path):
    src = make_csv(tmp_path)
    built = prepare(PreprocessConfig(source=str(src))).dataset
    folder = built.path
    assert sorted(p.name for p in folder.iterdir()) == [
        "items.parquet", "manifest.json", "test.parquet", "train.parquet", "users.parquet", "valid.parquet"]
    train = pq.read_table(folder / "train.parquet")
    assert [str(f.type) for f in train.schema] == ["int32", "int32", "int64"]
    users = pq.read_table(folder / "users.parquet").to_pydict()
    assert users["id"][:2] == ["user0", "user1"] and users["index"][:2] == [0, 1]
    assert sum(users["train_interactions"]) == len(built.splits["train"])
    items = pq.read_table(folder / "items.parquet").to_pydict()
    assert items["popularity"] == np.bincount(built.splits["train"].items, minlength=built.n_items).tolist()
    loaded = store.load_dataset(folder)
    assert loaded.user_ids.tolist() == built.user_ids.tolist()
    assert loaded.item_ids.tolist() == built.item_ids.tolist()
    for name in ("train", "valid", "test"):
        assert np.array_equal(loaded.splits[name].users, built.splits[name].users)
        assert np.array_equal(loaded.splits[name].items, built.splits[name].items)
        assert np.array_equal(loaded.splits[name].timestamps, built.splits[name].timestamps)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["options"]["source"] == str(src.resolve())
    assert manifest["id_types"] == {"user": "str", "item": "str"}
    assert set(manifest["stats"]) == {"train", "valid", "test", "all"}
    assert store.load_dataset(folder / "manifest.json").fingerprint == loaded.fingerprint


def test_failed_build_leaves_nothing(tmp_path, monkeypatch, adaptau_home):
    src = make_csv(tmp_path)
    real = store.write_dataset_files

    def crash(folder, *args, **kwargs):
        real(folder, *args, **kwargs)
        raise KeyboardInterrupt  # e.g. Ctrl-C after the files are written, before the rename

    monkeypatch.setattr(store, "write_dataset_files", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(PreprocessConfig(source=str(src)))
    assert list((adaptau_home / "datasets").iterdir()) == []
    monkeypatch.setattr(store, "write_dataset_files", real)
    assert not prepare(PreprocessConfig(source=str(src))).reused


def test_bad_data_leaves_nothing(tmp_path, adaptau_home):
    f = tmp_path / "bad.txt"
    f.write_text("0 1 2\n1 x\n")
    with pytest.raises(UserError):
        prepare(PreprocessConfig(source=str(f)))
    assert not (adaptau_home / "datasets").exists() or list((adaptau_home / "datasets").iterdir()) == []


def test_store_root_resolution(monkeypatch, tmp_path):
    assert store.store_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("ADAPTAU_HOME", str(tmp_path / "env"))
    assert store.store_root() == tmp_path / "env"
    monkeypatch.delenv("ADAPTAU_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert store.store_root() == tmp_path / "xdg" / "adaptau"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert store.store_root() == tmp_path / "home" / ".cache" / "adaptau"


def test_load_dataset_rejects_non_stores(tmp_path):
    with pytest.raises(UserError, match="not found"):
        store.load_dataset(tmp_path / "nope")
    with pytest.raises(UserError, match="no manifest.json"):
        store.load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"store_version": store.STORE_VERSION, "n_users": 1}))
    with pytest.raises(UserError, match="damaged"):
        store.load_dataset(tmp_path)


def test_synthetic_samples_are_seeded_and_long_tailed():
    a, b = generate(SPECS["synthetic-tiny"]), generate(SPECS["synthetic-tiny"])
    assert np.array_equal(a.user, b.user) and np.array_equal(a.item, b.item)
    assert np.array_equal(a.timestamp, b.timestamp)
    other = generate(SPECS["synthetic-tiny"], seed=1)
    assert not np.array_equal(a.item, other.item)
    ds = prepare_dataset(PreprocessConfig(dataset="synthetic-tiny"))
    assert 250 <= ds.n_users <= 300 and 150 <= ds.n_items <= 200
    assert len(ds.splits["valid"]) > 0 and len(ds.splits["test"]) > 0
    pop = np.sort(ds.item_popularity)[::-1]
    assert pop[: len(pop) // 10].sum() > 0.25 * pop.sum()            # head of 10% items holds >25%
    assert ds.manifest["stats"]["train"]["gini"] > 0.3
    # per-user timestamps increase, so temporal splits are meaningful
    t = generate(SPECS["synthetic-tiny"])
    same_user = t.user[1:] == t.user[:-1]
    assert (np.diff(t.timestamp)[same_user] > 0).all()


def test_synthetic_size_fits_the_quickstart():
    spec = SPECS["synthetic"]
    assert 2_000 <= spec.n_users <= 3_000 and 1_000 <= spec.n_items <= 2_000
    assert 100_000 <= spec.n_users * spec.mean_activity <= 150_000


def test_list_datasets_shows_registry_and_cache(tmp_path):
    prepare_dataset(PreprocessConfig(dataset="synthetic-tiny"))
    listing = list_datasets()
    names = [e["name"] for e in listing["registry"]]
    assert {"ml-100k", "ml-1m", "gowalla", "yelp2018", "amazon-book", "synthetic", "synthetic-tiny"} <= set(names)
    assert [p["name"] for p in listing["prepared"]] == ["synthetic-tiny"]
    tiny = next(e for e in listing["registry"] if e["name"] == "synthetic-tiny")
    assert tiny["prepared"] == 1


def test_build_atomically_keeps_a_concurrent_result_unless_replacing(tmp_path):
    final = tmp_path / "datasets" / "x-123"

    def writer(text):
        def write(folder):
            (folder / "manifest.json").write_text(text)
        return write

    store.build_atomically(final, writer("first"))
    store.build_atomically(final, writer("second"), replace=False)
    assert (final / "manifest.json").read_text() == "first"
    store.build_atomically(final, writer("third"), replace=True)
    assert (final / "manifest.json").read_text() == "third"
    assert [p.name for p in final.parent.iterdir()] == ["x-123"]          # no temp or old folders left


def test_loaded_arrays_are_writable_and_typed(tmp_path):
    src = make_csv(tmp_path)
    folder = prepare(PreprocessConfig(source=str(src))).path
    ds = store.load_dataset(folder)
    for s in ds.splits.values():
        assert s.users.dtype == np.int32 and s.items.dtype == np.int32 and s.timestamps.dtype == np.int64
        assert s.users.flags.writeable and s.items.flags.writeable
