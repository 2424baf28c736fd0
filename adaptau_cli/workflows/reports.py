"""Writers for evaluation results: Markdown, CSV and JSON files (atomic) and terminal tables.

Several runs evaluated with the same settings form one side-by-side table: one
row per metric, one column per run. The CSV keeps that wide shape but adds
``section``, ``metric``, ``k`` and ``group`` columns so it pivots cleanly in
pandas or a spreadsheet; the JSON holds everything, per run.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import write_json, write_text
from adaptau_cli.eval.metrics import metric_names
from adaptau_cli.eval.popularity import BIAS_METRICS
from adaptau_cli.workflows.evaluate import SplitEvaluation

REPORT_SUFFIXES = (".md", ".csv", ".json")
BIAS_NAMES = {"arp": "ARP (mean training popularity of recommended items)",
              "aplt": "APLT (share of long-tail items)",
              "coverage": "item coverage (share of catalogue recommended)",
              "gini": "Gini of exposure (0 = even)"}
GROUP_MEASURES = ("recall_contribution", "hit_share", "exposure_share")


def main_k(ks: Sequence[int]) -> int:
    """The cut-off the per-group tables show: 20 (the paper's) when evaluated, else the middle one."""
    ks = sorted(ks)
    return 20 if 20 in ks else ks[len(ks) // 2]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def table_rows(evals: Sequence[SplitEvaluation]) -> list[dict[str, Any]]:
    """Every number of the comparison as rows: section, metric, k, group, then one value per run."""
    if not evals:
        return []
    ks = evals[0].ks
    rows: list[dict[str, Any]] = []

    def add(section, metric, k, group, values):
        rows.append({"section": section, "metric": metric, "k": k, "group": group,
                     **{ev.label: val for ev, val in zip(evals, values)}})

    add("accuracy", "users", "", "", [ev.n_users for ev in evals])
    for k in ks:
        for m in metric_names():
            add("accuracy", m, k, "", [ev.metrics.get(f"{m}@{k}", float("nan")) for ev in evals])
    for k in ks:
        for m in BIAS_METRICS:
            add("bias", m, k, "", [ev.bias.get(f"{m}@{k}", float("nan")) for ev in evals])
    for k in ks:
        for measure in GROUP_MEASURES:
            for g in range(evals[0].n_groups):
                add("groups", measure, k, g,
                    [ev.groups.get(str(k), {}).get(measure, [float("nan")] * (g + 1))[g]
                     if g < ev.n_groups else float("nan") for ev in evals])
    return rows


def evaluation_csv(evals: Sequence[SplitEvaluation]) -> str:
    rows = table_rows(evals)
    buf = io.StringIO()
    fields = ["section", "metric", "k", "group"] + [ev.label for ev in evals]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def evaluation_payload(evals: Sequence[SplitEvaluation]) -> dict[str, Any]:
    """The JSON document of ``adaptau evaluate --json`` / ``--out report.json``."""
    return {
        "split": evals[0].split if evals else None,
        "ks": list(evals[0].ks) if evals else [],
        "runs": [ev.to_dict() for ev in evals],
        "definitions": definitions(evals[0]) if evals else {},
    }


def definitions(ev: SplitEvaluation) -> dict[str, str]:
    return {
        "metrics": "binary relevance, averaged over users with held-out items; NDCG's ideal DCG over "
                   "min(|held-out|, K) items; MAP@K = sum_k P@k*rel_k / min(|held-out|, K)",
        "masking": "training items masked" + ("; validation items masked too" if ev.split == "test" else ""),
        "groups": f"{ev.n_groups} groups by training popularity, "
                  f"{'equal interaction mass' if ev.grouping == 'mass' else 'equal item count'}; "
                  "g0 = least popular",
        "recall_contribution": "mean over users of (hits in the group / |held-out|); sums to recall@K",
        "long_tail": f"items outside the head, the fewest most popular items holding "
                     f"{ev.head_share:.0%} of training interactions ({ev.tail_items} of {ev.n_items} items)",
    }


def evaluation_markdown(evals: Sequence[SplitEvaluation]) -> str:
    if not evals:
        return "# Evaluation\n\n(no runs)\n"
    first = evals[0]
    labels = [ev.label for ev in evals]
    head = "| metric | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    lines = [f"# Evaluation on the {first.split} split", ""]
    metrics_def = definitions(first)["metrics"]
    lines.append(f"Full ranking over all {first.n_items} items; {definitions(first)['masking']}. "
                 f"{metrics_def[0].upper() + metrics_def[1:]}.")
    lines += ["", "## Accuracy", "", head.rstrip("\n")]
    lines.append("| users counted | " + " | ".join(str(ev.n_users) for ev in evals) + " |")
    for k in first.ks:
        for m in metric_names():
            lines.append(f"| {m}@{k} | " + " | ".join(_fmt(ev.metrics.get(f'{m}@{k}', float('nan')))
                                                    for ev in evals) + " |")
    lines += ["", "## Popularity bias of the top-K lists", "",
              f"Long tail = {definitions(first)['long_tail']}.", "", head.rstrip("\n")]
    for k in first.ks:
        for m in BIAS_METRICS:
            lines.append(f"| {m}@{k} | " + " | ".join(_fmt(ev.bias.get(f'{m}@{k}', float('nan')))
                                                    for ev in evals) + " |")
    k = main_k(first.ks)
    gi = first.group_info
    lines += ["", f"## Per popularity group @{k}", "", f"{definitions(first)['groups']}. "
              f"Recall contribution: {definitions(first)['recall_contribution']}.", ""]
    for measure in GROUP_MEASURES:
        lines += [f"### {measure.replace('_', ' ')}", "",
                  "| group | items | train interactions | " + " | ".join(labels) + " |",
                  "|---|---|---|" + "---|" * len(labels)]
        for g in range(first.n_groups):
            vals = [ev.groups[str(k)][measure][g] if g < ev.n_groups else float("nan") for ev in evals]
            lines.append(f"| g{g} | {gi['items'][g]} | {gi['interactions'][g]} | "
                         + " | ".join(_fmt(v) for v in vals) + " |")
        lines.append("")
    lines += ["## Runs", ""]
    for ev in evals:
        inf = ev.info
        if inf:
            lines.append(f"- **{ev.label}**: {inf.get('model')} backbone, norm {inf.get('norm')}, "
                         f"tau mode {inf.get('tau_mode')}, epoch {inf.get('epoch')} "
                         f"(selected on {inf.get('selection')}), checkpoint `{inf.get('checkpoint')}`"
                         + (f". Note: {inf['note']}" if inf.get("note") else ""))
        else:
            lines.append(f"- **{ev.label}**")
    return "\n".join(lines) + "\n"


def write_evaluation_report(evals: Sequence[SplitEvaluation], path: str | Path) -> Path:
    """Write the comparison as .md, .csv or .json (by suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise UserError(f"cannot write a report to {path.name!r}: unknown suffix",
                        hint="use report.md, report.csv or report.json")
    if suffix == ".md":
        return write_text(path, evaluation_markdown(evals))
    if suffix == ".csv":
        return write_text(path, evaluation_csv(evals))
    return write_json(path, evaluation_payload(evals))


# ---------------------------------------------------------------------------
# Terminal tables (stderr)
# ---------------------------------------------------------------------------

def render_evaluation(evals: Sequence[SplitEvaluation], console=None) -> None:
    """Side-by-side rich tables: accuracy, bias, and the per-group recall contribution."""
    from rich.table import Table

    from adaptau_cli.base.console import err_console

    console = console or err_console
    if not evals:
        return
    first = evals[0]
    console.print(f"[bold]{first.split} split[/]: full ranking over {first.n_items} items, "
                  f"{definitions(first)['masking']}", highlight=False)
    acc = Table()
    acc.add_column("metric")
    for ev in evals:
        acc.add_column(ev.label, justify="right")
    acc.add_row("users", *[str(ev.n_users) for ev in evals])
    for k in first.ks:
        for m in metric_names():
            acc.add_row(f"{m}@{k}", *[_fmt(ev.metrics.get(f"{m}@{k}", float("nan"))) for ev in evals])
    for k in first.ks:
        for m in BIAS_METRICS:
            acc.add_row(f"{m}@{k}", *[_fmt(ev.bias.get(f"{m}@{k}", float("nan"))) for ev in evals],
                        style="dim" if k != main_k(first.ks) else None)
    console.print(acc)
    k = main_k(first.ks)
    console.print(f"[bold]recall@{k} contribution per popularity group[/] "
                  f"({'equal interaction mass' if first.grouping == 'mass' else 'equal item count'}, "
                  "g0 = least popular; the groups sum to recall)", highlight=False)
    grp = Table()
    grp.add_column("group")
    grp.add_column("items", justify="right")
    for ev in evals:
        grp.add_column(ev.label, justify="right")
    for g in range(first.n_groups):
        grp.add_row(f"g{g}", str(first.group_info["items"][g]),
                    *[_fmt(ev.groups[str(k)]["recall_contribution"][g]) if g < ev.n_groups else "-"
                      for ev in evals])
    console.print(grp)
    console.print(f"long tail = {definitions(first)['long_tail']}", highlight=False)
    for ev in evals:
        if ev.info.get("note"):
            console.print(f"[yellow]note[/] {ev.label}: {ev.info['note']}", highlight=False)
