"""Metrics in one place: a metric registered once appears in the evaluation and in every report format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adaptau_cli.eval import metrics as M
from adaptau_cli.workflows.evaluate import evaluate_dataset
from adaptau_cli.workflows.reports import evaluation_csv, evaluation_markdown, evaluation_payload


@pytest.fixture
def dcg_metric():
    M.register_metric("dcg")(lambda r: r.dcg)          # raw DCG@K: a metric the package does not ship
    yield
    M._REGISTRY.pop("dcg")


def test_a_registered_metric_reaches_the_evaluation_and_every_report(tiny_dataset, dcg_metric):
    g = torch.Generator().manual_seed(0)
    users = torch.randn(tiny_dataset.n_users, 8, generator=g)
    items = torch.randn(tiny_dataset.n_items, 8, generator=g)
    ev = evaluate_dataset(tiny_dataset, users, items)
    assert "dcg" in M.metric_names() and M.metric_names()[:len(M.METRICS)] == M.METRICS
    # the reference: DCG@10 by hand from the evaluation's own top-10 lists
    heldout = tiny_dataset.csr("test")
    want = np.mean([sum(1 / np.log2(r + 2) for r, item in enumerate(ev.topk[row, :10])
                        if heldout[u, item]) for row, u in enumerate(ev.users)])
    assert ev.metrics["dcg@10"] == pytest.approx(want, rel=1e-12)
    assert "| dcg@10 |" in evaluation_markdown([ev])
    assert any(line.split(",")[1] == "dcg" for line in evaluation_csv([ev]).splitlines()[1:])
    assert "dcg@10" in json.dumps(evaluation_payload([ev]))


def test_the_builtin_metrics_are_registered_in_their_order():
    assert M.METRICS == ("recall", "ndcg", "precision", "hit", "mrr", "map")
