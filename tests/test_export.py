"""export: the serving files reproduce `recommend`, the FAISS indexes serve it, refusals are one line.

One short run (2 epochs of MF Adap-τ on the synthetic-tiny sample) is trained
per module; every check goes through the real console entry point where a
user would. Only the tests that build or read an index need faiss.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from cli_helpers import run_cli

from adaptau_cli.base.settings import TrainConfig
from adaptau_cli.engine.runs import load_run
from adaptau_cli.engine.trainer import train
from adaptau_cli.workflows.export import read_vectors, write_vectors

K = 10
TOL = 1e-5


@pytest.fixture(scope="module")
def run_dir(sample, tmp_path_factory):
    data_cfg, ds = sample
    out = tmp_path_factory.mktemp("export_run") / "run"
    settings = TrainConfig(epochs=2, batch_size=256, num_negatives=64, lr=0.01, warmup_epochs=1, device="cpu",
                           threads=1, ks=(10, 20), seed=7, negatives="shared", warmup_patience=0)  # as quick()
    train(settings, data_cfg, ds, out)
    return out


@pytest.fixture(scope="module")
def users_file(sample, tmp_path_factory):
    """Every user of the sample, one id per line."""
    _, ds = sample
    path = tmp_path_factory.mktemp("users") / "users.txt"
    path.write_text("\n".join(str(u) for u in ds.user_ids) + "\n")
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def cli_json(args: list[str]) -> dict:
    code, out, err = run_cli([*args, "--json"])
    assert code == 0, err
    return json.loads(out)


def recommend_json(run_dir, users_file, k=K, index=None) -> dict:
    extra = ["--index", str(index)] if index is not None else []
    data = cli_json(["recommend", str(run_dir), "--users", str(users_file), "--k", str(k), "--device", "cpu",
                     *extra])
    return {u["user"]: (u["items"], np.asarray(u["scores"])) for u in data["users"]} | {"_index": data.get("index")}


def export(run_dir, out, *extra) -> dict:
    return cli_json(["export", str(run_dir), "--out", str(out), "--device", "cpu", "--quiet", *extra])


def assert_same_ranking(got_items, got_scores, want_items, want_scores, next_score=-np.inf):
    """Same scores rank by rank; the same item wherever that score is not tied (within TOL) with a neighbour's."""
    assert len(got_items) == len(want_items)
    np.testing.assert_allclose(got_scores, want_scores, atol=TOL, rtol=0)
    padded = np.concatenate([[np.inf], want_scores, [next_score]])
    for r, (a, b) in enumerate(zip(got_items, want_items)):
        tied = padded[r] - padded[r + 1] <= TOL or padded[r + 1] - padded[r + 2] <= TOL
        assert tied or a == b, (r, got_items, want_items)


# ---------------------------------------------------------------------------
# the files
# ---------------------------------------------------------------------------

def test_export_writes_the_scoring_vectors_ids_exclusions_and_identity(sample, run_dir, tmp_path):
    _, ds = sample
    manifest = export(run_dir, tmp_path / "exp")
    run = load_run(run_dir)
    users, items = (t.numpy() for t in run.scoring_embeddings(ds))
    for name, ids, vectors in (("users", ds.user_ids, users), ("items", ds.item_ids, items)):
        schema = pq.read_schema(tmp_path / "exp" / f"{name}.parquet")
        vector = schema.field("vector").type
        assert schema.names == ["id", "vector"] and pa.types.is_fixed_size_list(vector)
        assert vector.list_size == 64 and vector.value_type == pa.float32()
        got_ids, got = read_vectors(tmp_path / "exp" / f"{name}.parquet")
        assert got_ids.tolist() == ids.tolist()
        np.testing.assert_array_equal(got, vectors)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)     # norm both: unit vectors
    train_items = pq.read_table(tmp_path / "exp" / "train_items.parquet").to_pydict()
    csr = ds.csr("train")
    assert train_items["id"] == ds.user_ids.tolist()
    assert [sorted(r) for r in train_items["item_rows"]] == [csr[u].indices.tolist() for u in range(ds.n_users)]
    assert train_items["items"] == [ds.item_ids[r].tolist() for r in train_items["item_rows"]]
    on_disk = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert on_disk == manifest
    assert manifest["run"]["run_dir"] == str(run_dir.resolve()) and manifest["run"]["epoch"] == run.epoch
    assert len(manifest["run"]["checkpoint_sha256"]) == 64 and len(manifest["run"]["settings_sha256"]) == 64
    assert manifest["dataset"]["content_hash"] == ds.fingerprint
    assert manifest["adaptau_version"] and manifest["index"] is None
    assert manifest["score"]["rule"] == "inner_product" and manifest["score"]["equals"] == "cosine(e_u, e_i)"


def test_vectors_keep_string_ids(tmp_path):
    ids = np.array(["u-1", "ü/2", "3"], dtype=object)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_vectors(tmp_path / "v.parquet", ids, vectors)
    got_ids, got = read_vectors(tmp_path / "v.parquet")
    assert got_ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(got, vectors)


def test_the_exported_vectors_reproduce_recommend(sample, run_dir, users_file, tmp_path):
    """Scoring the parquet files by hand, training items dropped, gives `adaptau recommend`'s top-K."""
    export(run_dir, tmp_path / "exp")
    user_ids, users = read_vectors(tmp_path / "exp" / "users.parquet")
    item_ids, items = read_vectors(tmp_path / "exp" / "items.parquet")
    seen = pq.read_table(tmp_path / "exp" / "train_items.parquet").column("item_rows").to_pylist()
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    recs = recommend_json(run_dir, users_file)
    for u, uid in enumerate(user_ids.tolist()):
        row = scores[u].copy()
        row[seen[u]] = -np.inf
        order = np.argsort(-row, kind="stable")
        got_items, got_scores = recs[uid]
        assert_same_ranking(got_items, got_scores, item_ids[order[:K]].tolist(), row[order[:K]], row[order[K]])


# ---------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------

def test_a_folder_holding_an_export_is_refused_unless_forced(run_dir, tmp_path):
    export(run_dir, tmp_path / "exp")
    before = (tmp_path / "exp" / "export.json").read_text()
    code, out, err = run_cli(["export", str(run_dir), "--out", str(tmp_path / "exp")])
    assert code == 2 and out == ""
    assert "already holds an export" in one_error_line(err) and "--force" in err
    assert (tmp_path / "exp" / "export.json").read_text() == before
    assert export(run_dir, tmp_path / "exp", "--force")["run"]["epoch"] == json.loads(before)["run"]["epoch"]


def test_a_bad_run_is_one_line_and_exit_2(tmp_path):
    code, out, err = run_cli(["export", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "exp")])
    assert code == 2 and out == ""
    assert "run not found" in one_error_line(err)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "exp")])
    assert code == 2 and "holds no checkpoint" in one_error_line(err)
    assert not (tmp_path / "exp").exists()


def test_index_flags_of_another_kind_are_refused(run_dir, tmp_path):
    code, _, err = run_cli(["export", str(run_dir), "--out", str(tmp_path / "exp"), "--index", "hnsw",
                            "--nprobe", "4"])
    assert code == 2 and "--nprobe applies to --index ivf only" in one_error_line(err)
    code, _, err = run_cli(["export", str(run_dir), "--out", str(tmp_path / "exp"), "--index", "annoy"])
    assert code == 2 and "unknown index 'annoy'" in one_error_line(err)


def test_a_missing_faiss_gives_the_install_hint(run_dir, users_file, tmp_path, monkeypatch):
    export(run_dir, tmp_path / "plain")
    monkeypatch.setitem(sys.modules, "faiss", None)          # `import faiss` now raises ImportError
    code, out, err = run_cli(["export", str(run_dir), "--out", str(tmp_path / "exp"), "--index", "hnsw"])
    assert code == 2 and out == ""
    assert "pip install 'adaptau[faiss]'" in one_error_line(err)
    assert not (tmp_path / "exp").exists()
    code, _, err = run_cli(["recommend", str(run_dir), "--users", "1", "--index", str(tmp_path / "plain")])
    assert code == 2 and "pip install 'adaptau[faiss]'" in one_error_line(err)


# ---------------------------------------------------------------------------
# the FAISS indexes
# ---------------------------------------------------------------------------

def test_the_exact_index_gives_the_recommend_top_k(sample, run_dir, users_file, tmp_path):
    pytest.importorskip("faiss")
    manifest = export(run_dir, tmp_path / "exp", "--index", "exact")
    assert manifest["index"]["faiss_class"] == "IndexFlatIP" and manifest["index"]["n_items"] == sample[1].n_items
    want, got = recommend_json(run_dir, users_file), recommend_json(run_dir, users_file, index=tmp_path / "exp")
    assert got.pop("_index")["fallback_users"] == 0 and want.pop("_index") is None
    assert got.keys() == want.keys()
    for uid in want:
        assert_same_ranking(*got[uid], *want[uid])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_return_valid_unseen_items_with_high_recall(sample, run_dir, users_file, tmp_path,
                                                                       kind):
    pytest.importorskip("faiss")
    _, ds = sample
    manifest = export(run_dir, tmp_path / "exp", "--index", kind)
    assert manifest["index"]["kind"] == kind
    assert manifest["index"]["faiss_class"] == {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}[kind]
    assert ("nlist" in manifest["index"]) == (kind == "ivf") and ("hnsw_m" in manifest["index"]) == (kind == "hnsw")
    want = recommend_json(run_dir, users_file, k=20)
    got = recommend_json(run_dir, users_file, k=20, index=tmp_path / "exp")
    got.pop("_index"), want.pop("_index")
    csr = ds.csr("train")
    recall = []
    for u, uid in enumerate(ds.user_ids.tolist()):
        items, scores = got[uid]
        assert len(items) == 20 and len(set(items)) == 20 and np.all(np.diff(scores) <= TOL)
        assert set(items) <= set(ds.item_ids.tolist()) and not set(items) & set(ds.item_ids[csr[u].indices])
        recall.append(len(set(items) & set(want[uid][0])) / 20)
    assert np.mean(recall) >= 0.95


def test_a_user_left_short_by_the_index_is_scored_exactly(sample, run_dir):
    """IVF with one list probed cannot find k + seen candidates: those users fall back to exact scoring."""
    pytest.importorskip("faiss")
    from adaptau_cli.eval.ann import build_index, index_params, search_unseen
    from adaptau_cli.eval.topk import score_topk

    _, ds = sample
    users, items = load_run(run_dir).scoring_embeddings(ds)
    params = index_params("ivf", ds.n_items, nprobe=1)
    index = build_index(items.numpy(), params)
    all_users = np.arange(ds.n_users)
    found = search_unseen(index, params, users, items, all_users, ds.csr("train"), 20)
    assert found.fallback_users > 0
    exact_top, exact_scores = score_topk(users, items, all_users, ds.csr("train"), 20, return_scores=True)
    assert (np.isfinite(found.scores).sum(1) == 20).all()    # nobody is left with fewer than k items
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found.top, exact_top)])
    assert recall > 0.5
    for u in all_users:
        assert not set(found.top[u].tolist()) & set(ds.csr("train")[u].indices.tolist())


def test_recommend_refuses_an_index_of_another_checkpoint_or_none(run_dir, tmp_path):
    pytest.importorskip("faiss")
    export(run_dir, tmp_path / "plain")
    code, _, err = run_cli(["recommend", str(run_dir), "--users", "1", "--index", str(tmp_path / "plain")])
    assert code == 2 and "holds an export without an index" in one_error_line(err)
    export(run_dir, tmp_path / "exp", "--index", "exact")
    path = tmp_path / "exp" / "export.json"
    manifest = json.loads(path.read_text())
    manifest["run"]["checkpoint_sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    code, _, err = run_cli(["recommend", str(run_dir), "--users", "1", "--index", str(tmp_path / "exp")])
    assert code == 2 and "exported from another checkpoint" in one_error_line(err)
    code, _, err = run_cli(["recommend", str(run_dir), "--users", "1", "--index", str(tmp_path / "nowhere")])
    assert code == 2 and "holds no export" in one_error_line(err)


def test_re_exporting_without_an_index_removes_the_stale_one(run_dir, tmp_path):
    pytest.importorskip("faiss")
    export(run_dir, tmp_path / "exp", "--index", "hnsw")
    assert (tmp_path / "exp" / "items.faiss").is_file()
    assert export(run_dir, tmp_path / "exp", "--force")["index"] is None
    assert not (tmp_path / "exp" / "items.faiss").exists()
    assert not [p.name for p in (tmp_path / "exp").iterdir() if p.name.endswith(".tmp")]


def test_scores_are_the_model_inner_product(sample, run_dir, tmp_path):
    """The exported rule holds: dot(users.vector, items.vector) is the score the run ranks by."""
    _, ds = sample
    export(run_dir, tmp_path / "exp")
    _, users = read_vectors(tmp_path / "exp" / "users.parquet")
    _, items = read_vectors(tmp_path / "exp" / "items.parquet")
    u, i = load_run(run_dir).scoring_embeddings(ds)
    torch.testing.assert_close(torch.from_numpy(users @ items.T), u @ i.T, atol=TOL, rtol=0)
