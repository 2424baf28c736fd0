"""Evaluation reports: side-by-side Markdown, pivotable CSV, complete JSON, atomic, by suffix."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from analysis_fakes import FakeRun, long_tail_dataset
from rich.console import Console

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.workflows.evaluate import evaluate_dataset
from adaptau_cli.workflows.reports import (
    evaluation_csv,
    evaluation_markdown,
    main_k,
    render_evaluation,
    write_evaluation_report,
)


@pytest.fixture(scope="module")
def evals():
    ds = long_tail_dataset()
    cfg = EvaluateConfig(ks=(10, 20), groups=4)
    out = []
    for name, grow, norm in (("nonorm", True, "none"), ("adaptau", False, "both")):
        run = FakeRun(ds, name, growing=grow, norm=norm)
        out.append(evaluate_dataset(ds, *run.scoring_embeddings(ds), cfg, label=name,
                                    info={"model": "mf", "norm": norm, "tau_mode": "x", "epoch": 3,
                                          "selection": "valid", "checkpoint": "c.pt"}))
    return out


def test_markdown_is_side_by_side(evals):
    md = evaluation_markdown(evals)
    assert "| metric | nonorm | adaptau |" in md
    for ev in evals:
        assert f"{ev.metrics['recall@20']:.4f}" in md
        assert f"{ev.bias['aplt@20']:.4f}" in md
    assert "| users counted | " in md
    assert md.count("| g3 |") == 3                      # one row per group in each of the 3 group tables
    assert "holding 20% of training interactions" in md
    assert "validation items masked too" in md


def test_csv_pivots_back_to_every_number(evals):
    frame = pd.read_csv(io.StringIO(evaluation_csv(evals)), dtype={"k": str, "group": str})
    assert list(frame.columns) == ["section", "metric", "k", "group", "nonorm", "adaptau"]
    acc = frame[(frame.section == "accuracy") & (frame.metric == "ndcg") & (frame.k == "20")]
    assert acc["adaptau"].item() == pytest.approx(evals[1].metrics["ndcg@20"], abs=0)
    grp = frame[(frame.section == "groups") & (frame.metric == "recall_contribution") & (frame.k == "10")]
    assert grp["nonorm"].tolist() == pytest.approx(evals[0].groups["10"]["recall_contribution"])
    assert grp["nonorm"].sum() == pytest.approx(evals[0].metrics["recall@10"])


def test_write_by_suffix_and_reject_unknown(evals, tmp_path):
    for suffix in (".md", ".csv", ".json"):
        path = write_evaluation_report(evals, tmp_path / "sub" / f"report{suffix}")
        assert path.is_file() and path.stat().st_size > 100
    data = json.loads((tmp_path / "sub" / "report.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["nonorm", "adaptau"]
    assert data["runs"][0]["metrics"]["recall@20"] == pytest.approx(evals[0].metrics["recall@20"])
    assert "long_tail" in data["definitions"]
    with pytest.raises(UserError, match="unknown suffix"):
        write_evaluation_report(evals, tmp_path / "report.html")


def test_terminal_tables_name_every_run(evals):
    buf = io.StringIO()
    render_evaluation(evals, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "nonorm" in text and "adaptau" in text and "recall@20" in text and "g3" in text


def test_main_k():
    assert main_k((10, 20, 50)) == 20
    assert main_k((5, 10, 100)) == 10
