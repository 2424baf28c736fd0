"""evaluate, analyze-magnitude, recommend and quickstart driven as a user would: CliRunner and subprocesses.

Two tiny runs (no-norm MF and Adap-τ MF on synthetic-tiny, 2 epochs) are trained
once per module with the real engine; every test then works on them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tomllib
import torch
from cli_helpers import run_cli  # noqa: E402

from adaptau_cli.base.settings import PreprocessConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
FAST = dict(epochs=2, batch_size=256, num_negatives=32, lr=0.01, warmup_epochs=1, threads=1, device="cpu",
            ks=(10, 20))


def run_sub(args: list[str], home: Path, cwd: Path | None = None, timeout: int = 300):
    env = {**os.environ, "ADAPTAU_HOME": str(home), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "adaptau_cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two trained tiny runs in a module-level store (never the user's cache)."""
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.trainer import train

    root = tmp_path_factory.mktemp("analysis_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTAU_HOME", str(root / "home"))
        data_cfg = PreprocessConfig(dataset="synthetic-tiny")
        dataset = prepare_dataset(data_cfg)
        out = {}
        for name, kw in (("nonorm", dict(norm="none", tau_mode="none")),
                         ("adaptau", dict(norm="both", tau_mode="adap-tau"))):
            out[name] = root / name
            train(TrainConfig(**FAST, **kw), data_cfg, dataset, out[name])
    return out


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------

def test_evaluate_side_by_side_json_matches_training_report(runs):
    code, out, err = run_cli(["evaluate", str(runs["nonorm"]), str(runs["adaptau"] / "checkpoint-best.pt"),
                              "--k", "10,20", "--groups", "4", "--json", "--quiet"])
    assert code == 0, err
    payload = json.loads(out)
    assert [r["label"] for r in payload["runs"]] == ["nonorm", "adaptau"]
    for r, name in zip(payload["runs"], ("nonorm", "adaptau")):
        report = json.loads((runs[name] / "report.json").read_text())
        # one evaluation implementation: the same number as training's final test evaluation
        assert r["metrics"]["recall@20"] == pytest.approx(report["test_metrics"]["recall@20"], abs=1e-12)
        assert r["split"] == "test" and r["n_users"] > 0
        assert len(r["groups"]["20"]["recall_contribution"]) == 4
        assert sum(r["groups"]["20"]["recall_contribution"]) == pytest.approx(r["metrics"]["recall@20"])
        assert set(r["bias"]) == {f"{m}@{k}" for m in ("arp", "aplt", "coverage", "gini") for k in (10, 20)}
        assert r["info"]["norm"] == ("none" if name == "nonorm" else "both")
    assert "holding 20%" in payload["definitions"]["long_tail"]


def test_evaluate_writes_reports_and_renders_tables(runs, tmp_path):
    for suffix in ("md", "csv", "json"):
        code, out, err = run_cli(["evaluate", str(runs["nonorm"]), str(runs["adaptau"]), "--split", "valid",
                                  "--k", "5,20", "--grouping", "count", "--out", str(tmp_path / f"r.{suffix}")])
        assert code == 0, err
        assert out == ""                                           # tables go to stderr
        assert "nonorm" in err and "adaptau" in err and "recall@20" in err
        assert "valid split" in err and "validation items masked" not in err
    md = (tmp_path / "r.md").read_text()
    assert "| metric | nonorm | adaptau |" in md and "# Evaluation on the valid split" in md
    frame = pd.read_csv(tmp_path / "r.csv")
    assert {"nonorm", "adaptau"} <= set(frame.columns)
    assert json.loads((tmp_path / "r.json").read_text())["split"] == "valid"


def test_evaluate_reads_an_evaluate_section_of_a_config_file(runs, tmp_path):
    cfg = tmp_path / "eval.toml"
    cfg.write_text('[evaluate]\nks = [7]\ngroups = 3\nsplit = "valid"\n')
    code, out, err = run_cli(["evaluate", str(runs["nonorm"]), "--config", str(cfg), "--json", "--quiet"])
    assert code == 0, err
    r = json.loads(out)["runs"][0]
    assert r["ks"] == [7] and r["n_groups"] == 3 and r["split"] == "valid"
    # a flag overrides the file
    code, out, err = run_cli(["evaluate", str(runs["nonorm"]), "--config", str(cfg), "--k", "3", "--json", "-q"])
    assert json.loads(out)["runs"][0]["ks"] == [3]


def _reference_recall(user_emb: torch.Tensor, item_emb: torch.Tensor, dataset, k: int) -> float:
    """Slow, obvious recall@k on test: one user at a time, train and valid items masked, stable sort."""
    def by_user(*names):
        out: dict[int, set[int]] = {}
        for name in names:
            part = dataset.split(name)
            for u, i in zip(part.users.tolist(), part.items.tolist()):
                out.setdefault(u, set()).add(i)
        return out

    train, test = by_user("train", "valid"), by_user("test")
    values = []
    for u, relevant in test.items():
        scores = (item_emb.double() @ user_emb[u].double()).tolist()
        ranked = sorted((i for i in range(len(scores)) if i not in train.get(u, ())), key=lambda i: -scores[i])
        values.append(len(relevant & set(ranked[:k])) / len(relevant))
    return sum(values) / len(values)


def _run_and_dataset(run_dir: Path):
    """The loaded run and its dataset, reopened from the run's own settings in the fixture's store."""
    from adaptau_cli.engine.runs import load_run, open_run_dataset

    run = load_run(run_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTAU_HOME", str(run_dir.parent / "home"))
        return run, open_run_dataset(run)


def test_evaluate_score_raw_ranks_by_the_unnormalized_inner_product(runs):
    run, dataset = _run_and_dataset(runs["adaptau"])
    raw_u, raw_i = run.raw_embeddings(dataset)
    cos_u, cos_i = run.scoring_embeddings(dataset)
    assert not torch.allclose(raw_i.norm(dim=1), torch.ones(dataset.n_items))   # really un-normalized
    torch.testing.assert_close(torch.nn.functional.normalize(raw_i, dim=1), cos_i)
    results = {}
    for score in ("model", "raw"):
        code, out, err = run_cli(["evaluate", str(runs["adaptau"]), "--score", score, "--k", "20", "--json", "-q"])
        assert code == 0, err
        results[score] = json.loads(out)["runs"][0]
    assert results["raw"]["metrics"]["recall@20"] == pytest.approx(_reference_recall(raw_u, raw_i, dataset, 20))
    assert results["model"]["metrics"]["recall@20"] == pytest.approx(_reference_recall(cos_u, cos_i, dataset, 20))
    assert results["raw"]["metrics"] != results["model"]["metrics"]   # a different ranking, not a relabel
    assert results["raw"]["info"]["score"] == "raw" and "raw inner product" in results["raw"]["info"]["note"]
    assert results["model"]["info"]["score"] == "model" and "raw inner product" not in \
        results["model"]["info"].get("note", "")


def test_evaluate_score_raw_power_ranks_by_a_power_of_the_item_norm_times_the_cosine(runs):
    run, dataset = _run_and_dataset(runs["adaptau"])
    raw_u, raw_i = run.raw_embeddings(dataset)

    def reference(power: float) -> float:   # score(u, i) = ‖e_i‖^A · cos(e_u, e_i), written out
        n_u, n_i = raw_u.double().norm(dim=1), raw_i.double().norm(dim=1)
        cos = (raw_u.double() @ raw_i.double().T) / n_u[:, None] / n_i[None, :]
        return _reference_recall(torch.eye(len(raw_u), dtype=torch.float64), (cos * n_i[None, :] ** power).T,
                                 dataset, 20)

    results = {}
    for score in ("model", "raw", "raw^0", "raw^0.5", "raw^1"):
        code, out, err = run_cli(["evaluate", str(runs["adaptau"]), "--score", score, "--k", "20", "--json", "-q"])
        assert code == 0, err
        results[score] = json.loads(out)["runs"][0]
    assert results["raw^0.5"]["metrics"]["recall@20"] == pytest.approx(reference(0.5))
    assert results["raw^0.5"]["metrics"] not in (results["model"]["metrics"], results["raw"]["metrics"])
    assert results["raw^0"]["metrics"] == pytest.approx(results["model"]["metrics"])    # A = 0: the cosine
    assert results["raw^1"]["metrics"] == pytest.approx(results["raw"]["metrics"])      # A = 1: the raw product
    assert "‖e_i‖^0.5" in results["raw^0.5"]["info"]["note"] and results["raw^0.5"]["info"]["score"] == "raw^0.5"


@pytest.mark.parametrize("args,message", [
    (["evaluate", "no/such/run"], "run not found"),
    (["evaluate", "{run}", "--score", "cosine"], "unknown score"),
    (["evaluate", "{run}", "--score", "raw^-1"], "unknown score"),
    (["evaluate", "{run}", "--score", "raw^half"], "unknown score"),
    (["evaluate", "{run}", "--split", "train"], "unknown split"),
    (["evaluate", "{run}", "--k", "ten"], "--k expects"),
    (["evaluate", "{run}", "--grouping", "median"], "unknown grouping"),
    (["evaluate", "{run}", "--out", "{tmp}/report.html"], "unknown suffix"),
])
def test_evaluate_bad_input_is_one_line_exit_2(runs, tmp_path, args, message):
    args = [a.format(run=runs["nonorm"], tmp=tmp_path) for a in args]
    code, out, err = run_cli(args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3                     # one (possibly wrapped) line


# ---------------------------------------------------------------------------
# analyze-magnitude
# ---------------------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_analyze_magnitude_writes_four_pngs_into_the_run_dir(runs, tmp_path):
    run_a, run_b = tmp_path / "nonorm", tmp_path / "adaptau"
    shutil.copytree(runs["nonorm"], run_a)
    shutil.copytree(runs["adaptau"], run_b)
    code, out, err = run_cli(["analyze-magnitude", str(run_a), str(run_b)])
    assert code == 0, err
    plots = run_a / "plots"
    for name in ("norms_by_group.png", "positive_score.png", "group_recall.png", "norm_vs_popularity.png"):
        w, h = _png_size(plots / name)
        assert w > 400 and h > 300
    summary = json.loads((plots / "magnitude.json").read_text())["summary"]
    assert [s["run"] for s in summary] == ["nonorm", "adaptau"]
    flat = "".join(err.split())
    assert "Spearman" in flat and str(plots / "norm_vs_popularity.png").replace(" ", "") in flat


def test_analyze_magnitude_on_a_bare_checkpoint_gives_c_and_d_only(runs, tmp_path):
    ckpt = torch.load(runs["nonorm"] / "checkpoint-best.pt", map_location="cpu", weights_only=True)
    ckpt.pop("history", None)
    bare = tmp_path / "elsewhere" / "model.pt"
    bare.parent.mkdir()
    torch.save(ckpt, bare)
    code, out, err = run_cli(["analyze-magnitude", str(bare), "--out", str(tmp_path / "figs"), "--json", "-q"])
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload["plots"]) == {"c", "d"}
    assert len(payload["skipped"]) == 2
    assert any("no history.parquet" in n for n in payload["notes"]["model"])
    assert sorted(p.name for p in (tmp_path / "figs").glob("*.png")) == ["group_recall.png", "norm_vs_popularity.png"]
    # and said clearly on the terminal too
    code, out, err = run_cli(["analyze-magnitude", str(bare), "--out", str(tmp_path / "figs2")])
    assert code == 0 and "(a) skipped" in " ".join(err.split()) and "checkpoint alone" in " ".join(err.split())


# ---------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------

def test_recommend_original_ids_and_no_training_items(runs, tmp_path):
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.runs import load_run

    ds = prepare_dataset(load_run(runs["adaptau"]).data_config)
    users_file = tmp_path / "users.txt"
    wanted = [str(ds.user_ids[i]) for i in (0, 5, 17)]
    users_file.write_text("\n".join(wanted) + "\n")
    code, out, err = run_cli(["recommend", str(runs["adaptau"]), "--users", str(users_file), "--k", "7",
                              "--out", str(tmp_path / "recs.csv")])
    assert code == 0, err
    recs = pd.read_csv(tmp_path / "recs.csv", dtype={"user": str, "item": str})
    assert recs["user"].unique().tolist() == wanted and len(recs) == 21
    index_of = {str(v): i for i, v in enumerate(ds.item_ids)}
    train = ds.csr("train")
    for uid, grp in recs.groupby("user"):
        u = [str(x) for x in ds.user_ids].index(uid)
        items = {index_of[i] for i in grp["item"]}
        assert not items & set(train[u].indices.tolist())
    # JSON on stdout, parquet file
    code, out, err = run_cli(["recommend", str(runs["adaptau"]), "--users", wanted[0], "--k", "3", "--json"])
    assert code == 0 and json.loads(out)["users"][0]["user"] in (wanted[0], int(wanted[0]))
    code, out, err = run_cli(["recommend", str(runs["adaptau"]), "--users", ",".join(wanted), "-q",
                              "--out", str(tmp_path / "recs.parquet")])
    assert code == 0 and len(pd.read_parquet(tmp_path / "recs.parquet")) == 60


def test_recommend_unknown_user_is_rejected_or_skipped(runs):
    code, out, err = run_cli(["recommend", str(runs["adaptau"]), "--users", "0,not-a-user", "--k", "3"])
    assert code == 2 and "not-a-user" in err and "--skip-unknown" in err and "Traceback" not in err
    code, out, err = run_cli(["recommend", str(runs["adaptau"]), "--users", "0,not-a-user", "--k", "3",
                              "--skip-unknown", "--json"])
    assert code == 0
    payload = json.loads(out)
    assert payload["unknown"] == ["not-a-user"] and len(payload["users"]) == 1


# ---------------------------------------------------------------------------
# real subprocesses
# ---------------------------------------------------------------------------

def test_subprocess_evaluate_json_and_bad_input(runs, tmp_path):
    proc = run_sub(["evaluate", str(runs["nonorm"]), str(runs["adaptau"]), "--json", "--k", "20"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert len(payload["runs"]) == 2 and payload["runs"][1]["metrics"]["recall@20"] > 0
    bad = run_sub(["evaluate", str(tmp_path / "missing")], tmp_path)
    assert bad.returncode == 2 and "run not found" in bad.stderr and "Traceback" not in bad.stderr


def test_quickstart_small_end_to_end_in_a_subprocess(tmp_path):
    out = tmp_path / "qs"
    proc = run_sub(["quickstart", "--small", "--out", str(out), "--threads", "1"], tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = " ".join(proc.stderr.split())
    for step in ("1/5 preprocess", "2/5 estimate-tau", "3/5 train mf-nonorm", "3/5 train mf-adaptau",
                 "4/5 evaluate", "5/5 analyze-magnitude"):
        assert step in err
    assert str(out) in err and "report.md" in err                    # it says where the outputs are
    for name in ("synthetic-tiny-mf-nonorm", "synthetic-tiny-mf-adaptau"):
        run_dir = out / "runs" / name
        assert (run_dir / "checkpoint-best.pt").is_file() and (run_dir / "history.parquet").is_file()
    report = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in report["runs"]] == ["synthetic-tiny-mf-nonorm", "synthetic-tiny-mf-adaptau"]
    assert [r["info"]["norm"] for r in report["runs"]] == ["none", "both"]
    l2 = [tomllib.loads((out / "runs" / n / "config.toml").read_text())["train"]["l2"]
          for n in ("synthetic-tiny-mf-nonorm", "synthetic-tiny-mf-adaptau")]
    assert l2 == [1e-4, 1e-5]        # no-norm needs the stronger L2 for the popularity-norm ordering
    assert "| metric | synthetic-tiny-mf-nonorm | synthetic-tiny-mf-adaptau |" in (out / "report.md").read_text()
    for name in ("norms_by_group.png", "positive_score.png", "group_recall.png", "norm_vs_popularity.png"):
        assert _png_size(out / "plots" / name)[0] > 400
    # a second call reuses the finished runs; --json gives the machine-readable summary
    again = run_sub(["quickstart", "--small", "--out", str(out), "--json", "--quiet"], tmp_path / "home",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.strip() == ""                                # --quiet: nothing on stderr
    summary = json.loads(again.stdout)
    assert summary["reused"] == ["mf-nonorm", "mf-adaptau"]
    assert set(summary["metrics"]) == {"mf-nonorm", "mf-adaptau"}
    assert 0 < summary["metrics"]["mf-adaptau"]["recall@20"] <= 1
    assert summary["plots"]["a"].endswith("norms_by_group.png")
