"""Summarize the ML-1M reproduction runs written by examples/reproduce_ml1m.sh.

usage: python examples/summarize_ml1m.py runs/ml1m

Reads every ``<protocol>-<model>-<row>[-<tau>]/report.json`` under the folder and writes
``summary.md`` / ``summary.json`` (the results table beside the published numbers, the
τ-sensitivity data) and ``tau_sensitivity.png`` (relative Recall@20 vs fixed τ, with the
τ0 that Adap-τ0 settled on marked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PUBLISHED = {  # ../shared/datasets/README.md: Recall@20, NDCG@20
    ("mf", "nonorm"): (0.2721, 0.2525), ("mf", "fixed"): (0.2789, 0.2624),
    ("mf", "adaptau0"): (0.2792, 0.2638), ("mf", "adaptau"): (0.2815, 0.2673),
    ("lightgcn", "nonorm"): (0.2576, 0.2427), ("lightgcn", "fixed"): (0.2767, 0.2575),
    ("lightgcn", "adaptau0"): (0.2744, 0.2571), ("lightgcn", "adaptau"): (0.2787, 0.2615),
}
PROTOCOL_ALIASES = {"pub": "published", "val": "honest"}
ROWS = (("nonorm", "no normalization"), ("fixed", "fixed τ (grid search)"),
        ("adaptau0", "Adap-τ0"), ("adaptau", "Adap-τ"))


def load_reports(folder: Path) -> dict[tuple[str, str, str, float | None], dict]:
    out = {}
    for path in sorted(folder.glob("*/report.json")):
        parts = path.parent.name.split("-")
        if len(parts) < 3:
            continue
        protocol, model, row = PROTOCOL_ALIASES.get(parts[0], parts[0]), parts[1], parts[2]
        if row == "fixed" and len(parts) == 4:
            tau = float(parts[3])
        elif len(parts) == 3:
            tau = None
        else:  # a variant (e.g. adaptau-w10): reported by hand, not in the table
            continue
        out[(protocol, model, row, tau)] = json.loads(path.read_text())
    return out


def pick(reports, protocol, model, row):
    """The report of a row; for fixed τ, the τ with the best selection-split value."""
    cands = {k: v for k, v in reports.items() if k[:3] == (protocol, model, row)}
    if not cands:
        return None, None
    key = max(cands, key=lambda k: cands[k]["best_value"])
    return key[3], cands[key]


def summarize(folder: Path) -> dict:
    reports = load_reports(folder)
    table, curves = [], {}
    for protocol in ("published", "honest"):
        for model in ("mf", "lightgcn"):
            for row, label in ROWS:
                tau, rep = pick(reports, protocol, model, row)
                if rep is None:
                    continue
                test = rep["test_metrics"]
                table.append(dict(protocol=protocol, model=model, row=row, label=label, tau=tau,
                                  recall20=test.get("recall@20"), ndcg20=test.get("ndcg@20"),
                                  published=PUBLISHED[(model, row)], best_epoch=rep["best_epoch"],
                                  epochs=rep["epochs_run"], tau0_final=rep.get("tau0_final"),
                                  stop=("time limit" if rep.get("time_limited") else
                                        "early stop" if rep.get("stopped_early") else "max epochs"),
                                  minutes=(rep["train_seconds"] + rep["eval_seconds"]) / 60))
            fixed = sorted((k[3], v) for k, v in reports.items()
                           if k[:3] == (protocol, model, "fixed") and k[3] is not None)
            if fixed:
                best = max(v["best_value"] for _, v in fixed)
                curves[f"{protocol}-{model}"] = [
                    dict(tau=t, selection_recall20=v["best_value"], relative=v["best_value"] / best,
                         test_recall20=v["test_metrics"].get("recall@20")) for t, v in fixed]
    return dict(table=table, curves=curves)


def to_markdown(summary: dict) -> str:
    lines = ["| protocol | backbone | strategy | τ | Recall@20 | NDCG@20 | published R@20 / N@20 "
             "| best epoch / run (ended by) | wall (min) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["table"]:
        proto = "published (test-selected)" if r["protocol"] == "published" else "honest (valid-selected)"
        tau = f"{r['tau']:g}" if r["tau"] is not None else (
            f"→ {r['tau0_final']:.3f}" if r["row"] in ("adaptau0", "adaptau") and r["tau0_final"] else "—")
        lines.append(f"| {proto} | {r['model']} | {r['label']} | {tau} | {r['recall20']:.4f} | "
                     f"{r['ndcg20']:.4f} | {r['published'][0]:.4f} / {r['published'][1]:.4f} | "
                     f"{r['best_epoch']} / {r['epochs']} ({r['stop']}) | {r['minutes']:.1f} |")
    for name, curve in summary["curves"].items():
        lines += ["", f"τ sensitivity ({name}): " + ", ".join(
            f"τ={c['tau']:g}: {c['relative']:.3f}" for c in curve)]
    return "\n".join(lines) + "\n"


def plot_sensitivity(summary: dict, folder: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, curve in summary["curves"].items():
        if len(curve) < 2:  # a single τ is not a curve (e.g. the published protocol reuses the honest grid's τ)
            continue
        ax.plot([c["tau"] for c in curve], [c["relative"] for c in curve], marker="o", label=name)
    for r in summary["table"]:
        if r["row"] == "adaptau0" and r["tau0_final"]:
            ax.axvline(r["tau0_final"], ls="--", lw=1, color="grey")
            ax.annotate(f"τ0 {r['protocol']} {r['model']}", (r["tau0_final"], 0.5), rotation=90,
                        fontsize=7, color="grey", xycoords=("data", "axes fraction"))
    ax.set_xlabel("fixed temperature τ")
    ax.set_ylabel("Recall@20 relative to the best τ")
    ax.set_title("ML-1M: sensitivity to τ (Adap-τ0's τ0 dashed)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "tau_sensitivity.png")


def main(argv: list[str]) -> None:
    folder = Path(argv[1] if len(argv) > 1 else "runs/ml1m")
    summary = summarize(folder)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "summary.md").write_text(to_markdown(summary))
    if summary["curves"]:
        plot_sensitivity(summary, folder)
    print(to_markdown(summary))


if __name__ == "__main__":
    main(sys.argv)
