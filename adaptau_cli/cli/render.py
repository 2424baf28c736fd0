"""The rich tables the commands draw on stderr (``--json`` prints the payloads on stdout instead).

Every piece of text that comes from the user or their data (names, paths, ids,
run labels, notes quoting them) goes through ``plain``: rich would read square
brackets as markup and drop them, and control characters would reach the terminal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from adaptau_cli.base.console import err_console, plain

# ---------------------------------------------------------------------------
# preprocess, datasets
# ---------------------------------------------------------------------------


def preprocess_payload(result) -> dict[str, Any]:
    """The JSON of ``adaptau preprocess``: where the dataset is and what it holds."""
    m = result.dataset.manifest
    return {"name": m.get("name"), "path": str(result.path), "reused": result.reused,
            "seconds": round(result.seconds, 3), "n_users": m.get("n_users"), "n_items": m.get("n_items"),
            "content_hash": m.get("content_hash"), "source": m.get("source"), "options": m.get("options"),
            "cleaning": m.get("cleaning"), "stats": m.get("stats")}


def render_preprocess(p: dict) -> None:
    how = "reused" if p["reused"] else f"built in {p['seconds']:.2f} s"
    opts = p.get("options") or {}
    table = Table(title=f"{plain(p['name'])}: {p['n_users']:,} users x {p['n_items']:,} items, "
                        f"split {plain(opts.get('split'))}", caption=how, title_justify="left",
                  caption_justify="left")
    for col in ("split", "users", "items", "interactions", "density", "popularity Gini"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name in ("train", "valid", "test", "all"):
        s = (p.get("stats") or {}).get(name, {})
        table.add_row(name, f"{s.get('users', 0):,}", f"{s.get('items', 0):,}", f"{s.get('interactions', 0):,}",
                      f"{s.get('density', 0):.5f}", f"{s.get('gini', 0):.3f}")
    err_console.print(table)
    cleaning = p.get("cleaning") or {}
    removed = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in cleaning.items()
                        if k in ("duplicates_removed", "kcore_removed", "split_dropped") and v)
    if removed:
        err_console.print(f"cleaning: {removed}", highlight=False)
    err_console.print(f"store: {plain(p['path'])}", highlight=False, soft_wrap=True)


def render_datasets(p: dict) -> None:
    reg = Table(title="Registry", title_justify="left")
    for col in ("name", "size", "downloaded", "prepared"):
        reg.add_column(col, overflow="fold")
    for e in p["registry"]:
        reg.add_row(plain(e["name"]), plain(e.get("stats") or ""), "built-in" if e["kind"] == "synthetic" else
                    ("yes" if e["downloaded"] else "no"), plain(e["prepared"]))
    err_console.print(reg)
    prepared = Table(title=f"Prepared in {plain(p['root'])}", title_justify="left")
    for col in ("name", "split", "users", "items", "train", "valid", "test", "folder"):
        prepared.add_column(col, justify="right" if col in ("users", "items", "train", "valid", "test") else "left",
                            overflow="fold")
    for d in p["prepared"]:
        inter = d.get("interactions") or {}
        prepared.add_row(plain(d["name"] or "?"), plain(d.get("split")), f"{d.get('n_users') or 0:,}",
                         f"{d.get('n_items') or 0:,}", *(f"{inter.get(k) or 0:,}" for k in ("train", "valid", "test")),
                         plain(Path(d["path"]).name))
    err_console.print(prepared)
    if not p["prepared"]:
        err_console.print("nothing prepared yet: try `adaptau preprocess synthetic`", highlight=False)


# ---------------------------------------------------------------------------
# train, estimate-tau
# ---------------------------------------------------------------------------


def train_payload(result) -> dict[str, Any]:
    """The JSON of ``adaptau train``: the run's report without the settings it repeats."""
    return {k: v for k, v in result.report.items() if k not in ("train_config", "data_config")}


def render_train(p: dict) -> None:
    out = plain(p["run_dir"])
    table = Table(title=f"{out}: best epoch {p['best_epoch']} of {p['epochs_run']} "
                        f"(selected on {plain(p['selection'])})")
    table.add_column("split")
    ks = sorted({int(k.split("@")[1]) for k in (p["test_metrics"] or p["valid_metrics"] or {})})
    for k in ks:
        table.add_column(f"recall@{k}", justify="right")
        table.add_column(f"ndcg@{k}", justify="right")
    for name, metrics in (("valid", p["valid_metrics"]), ("test", p["test_metrics"])):
        if metrics:
            label = name + (" (published protocol)" if name == "test" and p["selection"] != "valid" else "")
            table.add_row(label, *[f"{metrics[f'{m}@{k}']:.4f}" for k in ks for m in ("recall", "ndcg")])
    err_console.print(table)
    err_console.print(f"tau0 {p['tau0_final']:.4f}  positive in denominator: "
                      f"{'yes' if p['positive_in_denominator'] else 'no'}  run: {out}", highlight=False)


def render_estimate(e: dict) -> None:
    table = Table(title=f"tau0 of {plain(e['dataset'])}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [("n' (users above the quantile)", e["n_users_filtered"]), ("m (items)", e["n_items"]),
            ("|D'| (their training pairs)", e["n_pairs_filtered"]),
            ("log(n'm / 2|D'|)", f"{e['log_term']:.4f}"),
            (f"prior tau0 (gap {e['warmup_gap']:g})", f"{e['prior_tau0']:.4f}"),
            ("prior w0 = 1/tau0", f"{e['prior_w0']:.4f}")]
    if e["checkpoint"]:
        rows += [("checkpoint", f"{plain(e['checkpoint'])} (epoch {e['epoch']})"),
                 ("mu+ (positive pairs)", f"{e['mu_pos']:.6f}"), ("mu (all pairs)", f"{e['mu']:.6f}"),
                 ("sigma+^2", f"{e['var_pos']:.6f}"), ("sigma^2", f"{e['var']:.6f}"),
                 ("tau0 full", f"{e['tau0_full']:.4f}"), ("w0 full", f"{e['w0_full']:.4f}"),
                 ("tau0 simplified", f"{e['tau0_simplified']:.4f}"),
                 ("w0 simplified", f"{e['w0_simplified']:.4f}"),
                 ("tau0 training would use", f"{e['tau0_used']:.4f}")]
        if e["guard_reason"]:
            rows.append(("guard", plain(e["guard_reason"])))
        if e.get("warmup_ended_after") is not None:
            rows.append(("warm-up ended", f"after epoch {e['warmup_ended_after']}: {plain(e['warmup_reason'] or '')}"))
        elif e.get("epoch") is not None:
            rows.append(("warm-up", "still on the prior at this checkpoint"))
    for what, value in rows:
        table.add_row(what, str(value))
    err_console.print(table)


# ---------------------------------------------------------------------------
# evaluate, analyze-magnitude, recommend
# ---------------------------------------------------------------------------


def render_evaluation(evals: Sequence) -> None:
    """``reports.render_evaluation`` on copies whose run labels and notes are made plain."""
    from adaptau_cli.workflows.reports import render_evaluation as draw

    def safe(ev):
        info = {**ev.info, "note": plain(ev.info["note"])} if ev.info.get("note") else ev.info
        return dataclasses.replace(ev, label=plain(ev.label), info=info)

    draw([safe(ev) for ev in evals])


def magnitude_payload(results, out: Path, written: dict, skipped: list[str]) -> dict[str, Any]:
    """The JSON of ``adaptau analyze-magnitude``: where the plots are, and the summary per run."""
    from adaptau_cli.workflows.magnitude import summary_rows

    return {"out": str(out), "plots": {p: str(f) for p, f in written.items()}, "skipped": skipped,
            "summary": summary_rows(results), "notes": {r.label: r.notes for r in results if r.notes}}


def _arrow(a, b) -> str:
    return "-" if a is None else f"{a:.3f} → {b:.3f}"


def magnitude_table(rows: list[dict], k: int) -> Table:
    table = Table()
    table.add_column("measure")
    for row in rows:
        table.add_column(plain(row["run"]), justify="right")
    table.add_row("norm / tau mode", *[f"{plain(r['norm'])} / {plain(r['tau_mode'])}" for r in rows])
    table.add_row("epochs in history", *[str(r["epochs"]) for r in rows])
    table.add_row("mean item norm, g0 (first → last epoch)",
                  *[_arrow(r["norm_least_popular_first"], r["norm_least_popular_last"]) for r in rows])
    table.add_row("mean item norm, top group",
                  *[_arrow(r["norm_most_popular_first"], r["norm_most_popular_last"]) for r in rows])
    table.add_row("mean positive score", *[_arrow(r["pos_score_first"], r["pos_score_last"]) for r in rows])
    table.add_row(f"recall@{k}", *[f"{r[f'recall@{k}']:.4f}" for r in rows])
    table.add_row("  from g0 / top group", *[f"{r[f'recall@{k}_least_popular']:.4f} / "
                                               f"{r[f'recall@{k}_most_popular']:.4f}" for r in rows])
    table.add_row("Spearman ρ(norm, popularity)", *[f"{r['spearman_norm_popularity']:.3f}" for r in rows])
    return table


def render_magnitude(p: dict, k: int) -> None:
    err_console.print("[bold]item-embedding magnitude vs popularity[/] (g0 = least popular group)",
                      highlight=False)
    err_console.print(magnitude_table(p["summary"], k))
    for label, notes in p["notes"].items():
        for note in notes:
            err_console.print(f"[yellow]note[/] {plain(label)}: {plain(note)}", highlight=False)
    for line in p["skipped"]:
        err_console.print(f"[yellow]note[/] {plain(line)}", highlight=False)
    for panel, path in p["plots"].items():
        err_console.print(f"({panel}) {plain(path)}", highlight=False, soft_wrap=True)


def render_recommendations(recs, k: int) -> None:
    table = Table(title=f"top-{k} for {recs.frame['user'].nunique()} user(s) ({plain(recs.label)})",
                  title_justify="left")
    for col in ("user", "rank", "item", "score"):
        table.add_column(col, justify="left" if col == "user" else "right")
    shown = recs.frame.head(200)
    for row in shown.itertuples(index=False):
        table.add_row(plain(row.user), str(row.rank), plain(row.item), f"{row.score:.4f}")
    err_console.print(table)
    if len(recs.frame) > len(shown):
        err_console.print(f"... {len(recs.frame) - len(shown)} more rows (use --out or --json)")


# ---------------------------------------------------------------------------
# quickstart
# ---------------------------------------------------------------------------


def render_quickstart(r: dict) -> None:
    names = list(r["runs"])
    err_console.print(f"[bold]{plain(r['dataset'])}[/]: test split, MF without normalization vs Adap-τ",
                      highlight=False)
    table = Table()
    table.add_column("metric")
    for n in names:
        table.add_column(plain(n), justify="right")
    for m in ("recall@20", "ndcg@20", "aplt@20", "coverage@20"):
        table.add_row(m, *[f"{r['metrics'][n][m]:.4f}" for n in names])
    table.add_row("item norm, top / bottom group", *[f"{r['norm_ratio'][n]:.2f}" for n in names])
    table.add_row("Spearman ρ(item norm, popularity)", *[f"{r['spearman'][n]:.3f}" for n in names])
    err_console.print(table)
    err_console.print(f"done in {r['seconds']:.0f} s. Outputs in [bold]{plain(r['out'])}[/]:", highlight=False)
    for n, d in r["runs"].items():
        err_console.print(f"  run {plain(n)}: {plain(d)}", highlight=False, soft_wrap=True)
    err_console.print(f"  side-by-side evaluation: {plain(r['reports']['md'])} (also .json, .csv)", highlight=False,
                      soft_wrap=True)
    err_console.print(f"  Figure 1 plots: {plain(Path(r['out']) / 'plots')}/ "
                      f"({', '.join(plain(Path(p).name) for p in r['plots'].values())})", highlight=False,
                      soft_wrap=True)
