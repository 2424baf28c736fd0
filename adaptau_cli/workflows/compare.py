"""``adaptau compare``: is the difference between methods real, or one seed's luck?

A method is a name and either its run directories (one per seed) or a training
config (TOML, as ``adaptau train --config`` takes) trained here once per seed
into ``OUT/runs/<method>-seed<k>``: a finished run is reused, an interrupted
one resumed, so a rerun costs only the evaluation. Every run is ranked on the
test split; each test user's metric is averaged over a method's seeds, and
every pair of methods is compared on those per-user values (the users are the
pairs) with a Wilcoxon signed-rank test and a paired t-test, their effect
sizes, and Holm-adjusted p-values across the pairs of each metric
(``eval.significance``). The seeds' spread is shown as mean ± sd of each
seed's metric. All runs must share one dataset: a pair is only a pair when it
is the same user with the same held-out items.

Outputs (atomic): ``OUT/compare.md``, ``compare.csv``, ``compare.json`` and
``OUT/plots/compare_<metric>@<k>.png`` (the per-user distribution of each method).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from adaptau_cli.base.console import info
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import ensure_dir, write_json, write_text
from adaptau_cli.base.settings import EvaluateConfig, PreprocessConfig, TrainConfig, build
from adaptau_cli.eval.metrics import metric_names
from adaptau_cli.eval.significance import holm, mean_sd, paired_t, wilcoxon
from adaptau_cli.workflows.training import run_state

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")   # a method name is part of its runs' folder names
DEFAULT_METRICS = ("recall", "ndcg")
DEFAULT_KS = (20,)
ALPHA = 0.05                                                   # the level the Markdown's "differs" column reads
CSV_FIELDS = ("section", "metric", "method", "method_b", "seeds", "n_users", "mean", "sd", "mean_diff",
              "wilcoxon_statistic", "wilcoxon_p", "wilcoxon_p_holm", "rank_biserial", "t_statistic", "t_p",
              "t_p_holm", "cohen_dz", "note")


# ---------------------------------------------------------------------------
# What to compare
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One method: its run directories (one per seed), or a training config to train for each seed."""

    name: str
    runs: tuple[Path, ...] = ()
    config: Path | None = None


@dataclasses.dataclass(frozen=True)
class CompareSettings:
    """What ``compare`` measures and how the configs' runs are trained (overrides: None = the file's value)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    ks: tuple[int, ...] = DEFAULT_KS
    seeds: tuple[int, ...] = ()                 # training seeds of the methods given as a config
    device: str = "auto"                        # where runs are evaluated (and trained, unless a config says)
    data_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)   # source, mirror, home
    train_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # epochs, threads, device

    @property
    def keys(self) -> list[str]:
        """The metric columns, ``recall@20`` style, cut-off by cut-off."""
        return [f"{m}@{k}" for k in self.ks for m in self.metrics]


def parse_method(text: str) -> MethodSpec:
    """``NAME=RUN,RUN,...`` or ``NAME=CONFIG.toml`` as a MethodSpec; UserError for anything else."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not sep or not name or not parts:
        raise UserError(f"--method expects NAME=RUN_DIR,RUN_DIR,... or NAME=CONFIG.toml, got {text!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"method name {name!r}: use letters, digits, '.', '_', '+' or '-' (it names run folders)")
    if len(parts) == 1 and parts[0].lower().endswith(".toml"):
        config = Path(parts[0])
        if not config.is_file():
            raise UserError(f"method {name}: config file {config} not found")
        return MethodSpec(name, config=config)
    runs = tuple(Path(p) for p in parts)
    for run in runs:
        if not run.exists():
            raise UserError(f"method {name}: run {run} not found", hint="give run directories or checkpoints (.pt)")
    if len(set(runs)) < len(runs):
        raise UserError(f"method {name} lists the same run twice")
    return MethodSpec(name, runs=runs)


def check_request(methods: Sequence[MethodSpec], settings: CompareSettings) -> None:
    """Refuse, in one line, a comparison that cannot be made: before any training or evaluation."""
    if len(methods) < 2:
        raise UserError(f"compare needs at least 2 methods, got {len(methods)}",
                        hint="repeat --method NAME=RUNS_OR_CONFIG")
    names = [m.name for m in methods]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"method name used twice: {', '.join(twice)}")
    unknown = [m for m in settings.metrics if m not in metric_names()]
    if unknown or not settings.metrics:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'}",
                        hint=f"choose from {', '.join(metric_names())}")
    if not settings.ks or min(settings.ks) < 1:
        raise UserError(f"--k needs positive cut-offs such as 20, got {settings.ks!r}")
    if len(set(settings.seeds)) < len(settings.seeds):
        raise UserError(f"--seeds lists a seed twice: {','.join(map(str, settings.seeds))}")
    configs = [m.name for m in methods if m.config is not None]
    if configs and not settings.seeds:
        raise UserError(f"method {configs[0]} is a training config: give the seeds to train, e.g. --seeds 1,2,3")
    if settings.seeds and not configs:
        raise UserError("--seeds trains the methods given as a config (NAME=FILE.toml); every method here is runs")
    counts = {m.name: len(m.runs) if m.config is None else len(settings.seeds) for m in methods}
    if len(set(counts.values())) > 1:
        raise UserError("every method needs the same number of seeds: "
                        + ", ".join(f"{n} has {c}" for n, c in counts.items()))


# ---------------------------------------------------------------------------
# The runs of a config: trained, resumed or reused
# ---------------------------------------------------------------------------

def seed_run_dir(out: Path, method: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{method}-seed{seed}"


@dataclasses.dataclass(frozen=True)
class ConfigPlan:
    """A config method's settings and dataset, read and prepared once for all its seeds."""

    data_cfg: PreprocessConfig
    train_cfg: TrainConfig           # its seed is replaced per run
    dataset: Any                     # PreparedDataset


def plan_config(method: MethodSpec, settings: CompareSettings, quiet: bool) -> ConfigPlan:
    """The config's settings (with the command's overrides) and its dataset, as ``adaptau train`` would prepare it."""
    from adaptau_cli.workflows.training import dataset_for_training

    data_cfg = build(PreprocessConfig, method.config, "dataset", settings.data_overrides)
    train_cfg = build(TrainConfig, method.config, "train", settings.train_overrides)
    data_cfg, dataset = dataset_for_training(data_cfg, train_cfg, quiet)
    return ConfigPlan(data_cfg, train_cfg, dataset)


def config_runs(method: MethodSpec, plan: ConfigPlan, seeds: Sequence[int], out: Path,
                quiet: bool) -> list[dict[str, Any]]:
    """Train (or reuse, or resume) the config's run for every seed; ``{run_dir, seed, status}`` each.

    What ``workflows.training.train_run`` does, with the dataset prepared once for all seeds.
    """
    from adaptau_cli.engine.trainer import check_config, train

    entries = []
    for seed in seeds:
        train_cfg = check_config(dataclasses.replace(plan.train_cfg, seed=seed))
        run_dir = seed_run_dir(out, method.name, seed)
        state = run_state(run_dir, train_cfg, plan.dataset.fingerprint)
        if state == "finished":
            info("{name} seed {seed}: reusing the finished run {dir}", quiet, name=method.name, seed=seed, dir=run_dir)
        else:
            info("{name} seed {seed}: {what} {dir}", quiet, name=method.name, seed=seed, dir=run_dir,
                 what="resuming" if state == "interrupted" else "training")
            train(train_cfg, plan.data_cfg, plan.dataset, run_dir, resume=state == "interrupted", quiet=quiet)
        status = {"finished": "reused", "interrupted": "resumed", "new": "trained"}[state]
        entries.append({"run_dir": run_dir, "seed": seed, "status": status})
    return entries


# ---------------------------------------------------------------------------
# Per-user metrics of every run, one dataset
# ---------------------------------------------------------------------------

def check_one_dataset(fingerprints: Mapping[str, set[str]]) -> None:
    """UserError unless every method's runs (``{method: {fingerprint, ...}}``) share one dataset."""
    first: tuple[str, str] | None = None
    for name, fps in fingerprints.items():
        if len(fps) > 1:
            raise UserError(f"method {name}: its runs use different datasets ({', '.join(sorted(fps))})",
                            hint="a method's seeds must share one dataset")
        (fp,) = fps
        if first is None:
            first = (name, fp)
        elif fp != first[1]:
            raise UserError(f"methods {first[0]} and {name} use different datasets ({first[1]} and {fp})",
                            hint="paired tests need the same test users")


def load_runs(entries: Mapping[str, Sequence[Path]], device: str) -> dict[str, list[Any]]:
    """Load every method's runs (``LoadedRun`` each); UserError unless they were all trained on one dataset."""
    from adaptau_cli.base.runtime import resolve_device
    from adaptau_cli.engine.runs import load_run

    dev = resolve_device(device)
    loaded = {name: [load_run(p, device=dev) for p in paths] for name, paths in entries.items()}
    check_one_dataset({name: {r.dataset_fingerprint for r in runs} for name, runs in loaded.items()})
    return loaded


def per_user_values(loaded: Mapping[str, list[Any]], cfg: EvaluateConfig, quiet: bool
                    ) -> tuple[dict[str, list[Any]], dict[str, list[dict[str, np.ndarray]]], Any]:
    """Evaluate every run on the test split: (evaluations, per-user metrics, dataset), per method."""
    from adaptau_cli.engine.runs import open_run_dataset
    from adaptau_cli.workflows.evaluate import evaluate_run, user_metrics

    dataset = open_run_dataset(next(iter(loaded.values()))[0])
    evals: dict[str, list[Any]] = {}
    users: dict[str, list[dict[str, np.ndarray]]] = {}
    reference = None
    for name, runs in loaded.items():
        evals[name], users[name] = [], []
        for i, run in enumerate(runs):
            ev = evaluate_run(run, cfg, dataset, label=f"{name}#{i + 1}")
            if reference is None:
                reference = ev.users
            elif not np.array_equal(reference, ev.users):
                raise UserError(f"method {name}: run {run.run_dir or run.checkpoint_path} ranked other test users")
            evals[name].append(ev)
            users[name].append(user_metrics(ev, dataset))
            info("evaluated {name} ({run})", quiet, name=name, run=run.run_dir or run.checkpoint_path)
    return evals, users, dataset


# ---------------------------------------------------------------------------
# The statistics (pure)
# ---------------------------------------------------------------------------

def seed_average(per_run: Sequence[Mapping[str, np.ndarray]], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Each user's metric averaged over a method's seeds (the runs share the users, row for row)."""
    return {key: np.mean([values[key] for values in per_run], axis=0) for key in keys}


def pairwise_tests(user_values: Mapping[str, Mapping[str, np.ndarray]], keys: Sequence[str],
                   alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every pair (A, B) of methods, in the given order, for every metric: both tests on A − B per user.

    The Holm adjustment runs over the pairs of one metric, separately for each
    test: the family is "which pairs differ in this metric". ``differs`` reads
    the Holm-adjusted Wilcoxon p-value at ``alpha``.
    """
    rows: list[dict[str, Any]] = []
    for key in keys:
        block = [pair_row(a, b, key, user_values[a][key], user_values[b][key])
                 for a, b in itertools.combinations(list(user_values), 2)]
        for test in ("wilcoxon", "t_test"):
            for row, adjusted in zip(block, holm([r[test]["p"] for r in block])):
                row[test]["p_holm"] = float(adjusted)
        for row in block:
            row["differs"] = bool(row["wilcoxon"]["p_holm"] < alpha)
        rows += block
    return rows


def pair_row(a: str, b: str, key: str, values_a: np.ndarray, values_b: np.ndarray) -> dict[str, Any]:
    """The tests of one pair on one metric (without the Holm adjustment, which needs the whole family)."""
    w, t = wilcoxon(values_a, values_b), paired_t(values_a, values_b)
    return {"a": a, "b": b, "metric": key, "n_users": w.n, "mean_a": float(np.nanmean(values_a)),
            "mean_b": float(np.nanmean(values_b)), "mean_diff": w.mean_diff,
            "wilcoxon": {"statistic": w.statistic, "p": w.p_value, "rank_biserial": w.effect,
                         "n_nonzero": w.n_nonzero, "note": w.note},
            "t_test": {"statistic": t.statistic, "p": t.p_value, "cohen_dz": t.effect, "note": t.note}}


def seed_summary(evals: Sequence[Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Mean ± sd over seeds of each seed's metric (the run's own mean over test users)."""
    out = {}
    for key in keys:
        per_seed = [float(ev.metrics[key]) for ev in evals]
        mean, sd = mean_sd(per_seed)
        out[key] = {"mean": mean, "sd": sd, "per_seed": per_seed}
    return out


# ---------------------------------------------------------------------------
# The whole comparison
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class CompareResult:
    """Everything ``compare`` found; ``to_dict()`` is compare.json."""

    out: Path
    keys: list[str]
    dataset: dict[str, Any]
    methods: list[dict[str, Any]]          # name, source, config, seeds, runs, summary
    pairs: list[dict[str, Any]]
    user_values: dict[str, dict[str, np.ndarray]] = dataclasses.field(repr=False)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    alpha: float = ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "split": "test", "metrics": self.keys, "dataset": self.dataset,
                "methods": self.methods, "pairs": self.pairs, "alpha": self.alpha, "outputs": self.outputs,
                "definitions": DEFINITIONS}


DEFINITIONS = {
    "protocol": "test split, full ranking over all items, training and validation items masked; each test "
                "user's metric averaged over a method's seeds; the users are the pairs",
    "wilcoxon": "two-sided Wilcoxon signed-rank test on A - B (scipy.stats.wilcoxon, zero_method='wilcox': "
                "zero differences dropped; exact p for small samples without zeros or ties, else the normal "
                "approximation with tie correction); statistic = min(R+, R-)",
    "rank_biserial": "matched-pairs rank-biserial r = (R+ - R-) / (R+ + R-) over the non-zero differences; "
                     "> 0 favours A",
    "t_test": "two-sided paired t-test on A - B (scipy.stats.ttest_rel)",
    "cohen_dz": "mean(A - B) / sd(A - B), ddof = 1; > 0 favours A",
    "p_holm": "Holm step-down adjusted p-value over all pairs of one metric, per test",
    "summary": "mean and sample sd (ddof = 1) over seeds of each seed's mean over test users",
    "edge_cases": "all differences zero: p = 1, effect 0; fewer than 2 users: no test (NaN)",
}


def gather_runs(methods: Sequence[MethodSpec], settings: CompareSettings, out: Path,
                quiet: bool) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Any]]]:
    """Every method's runs, loaded: given ones as they are, configs trained, reused or resumed per seed.

    The datasets are checked before any training (hours on real data), then
    again on what was loaded: ``(entries {run_dir, seed, status}, LoadedRuns)`` per method.
    """
    given = load_runs({m.name: m.runs for m in methods if m.config is None}, settings.device)
    plans = {m.name: plan_config(m, settings, quiet) for m in methods if m.config is not None}
    check_one_dataset({m.name: {r.dataset_fingerprint for r in given[m.name]} if m.name in given
                       else {plans[m.name].dataset.fingerprint} for m in methods})
    entries = {m.name: config_runs(m, plans[m.name], settings.seeds, out, quiet) if m.name in plans else
               [{"run_dir": p, "seed": None, "status": "given"} for p in m.runs] for m in methods}
    trained = load_runs({n: [e["run_dir"] for e in entries[n]] for n in plans}, settings.device)
    loaded = {m.name: given[m.name] if m.name in given else trained[m.name] for m in methods}
    check_one_dataset({name: {r.dataset_fingerprint for r in runs} for name, runs in loaded.items()})
    return entries, loaded


def compare(methods: Sequence[MethodSpec], settings: CompareSettings, out: str | Path,
            quiet: bool = True) -> CompareResult:
    """Train or reuse every method's runs, evaluate them, test every pair, write the reports and plots.

    Every refusal (bad request, runs of several datasets) comes before any training.
    """
    check_request(methods, settings)
    out = ensure_dir(out, "output folder")
    if settings.train_overrides.get("threads"):
        import torch

        torch.set_num_threads(int(settings.train_overrides["threads"]))
    entries, loaded = gather_runs(methods, settings, out, quiet)
    cfg = EvaluateConfig(split="test", ks=tuple(sorted(set(settings.ks))), device=settings.device)
    evals, per_run, dataset = per_user_values(loaded, cfg, quiet)
    keys = settings.keys
    user_values = {name: seed_average(per_run[name], keys) for name in per_run}
    result = CompareResult(
        out=out, keys=keys, pairs=pairwise_tests(user_values, keys), user_values=user_values,
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "n_users": dataset.n_users,
                 "n_items": dataset.n_items, "test_users": int(len(evals[methods[0].name][0].users))},
        methods=[method_entry(m, entries[m.name], loaded[m.name], evals[m.name], keys) for m in methods])
    write_outputs(result)
    return result


def method_entry(method: MethodSpec, entries: Sequence[dict[str, Any]], runs: Sequence[Any],
                 evals: Sequence[Any], keys: Sequence[str]) -> dict[str, Any]:
    """One method in compare.json: where its runs came from, each run's metrics, the seeds' summary."""
    rows = [{"run_dir": str(run.run_dir) if run.run_dir is not None else None, "checkpoint": str(run.checkpoint_path),
             "seed": int(run.train_config.seed), "status": e["status"], "epoch": int(run.epoch),
             "metrics": {k: float(ev.metrics[k]) for k in keys}}
            for e, run, ev in zip(entries, runs, evals)]
    notes = sorted({ev.info["note"] for ev in evals if ev.info.get("note")})   # e.g. an epoch selected on test
    return {"name": method.name, "source": "config" if method.config is not None else "runs",
            "config": str(method.config) if method.config is not None else None,
            "seeds": [r["seed"] for r in rows], "runs": rows, "summary": seed_summary(evals, keys), "notes": notes}


# ---------------------------------------------------------------------------
# Writers: Markdown, CSV, JSON, plots
# ---------------------------------------------------------------------------

def fmt_value(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.4f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def fmt_diff(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:+.4f}"


def fmt_effect(v: float) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v:+.3f}" if math.isfinite(v) else ("+inf" if v > 0 else "-inf")


def compare_markdown(r: CompareResult) -> str:
    """compare.md: the seeds' mean ± sd per method, then every pair's tests."""
    names = [m["name"] for m in r.methods]
    n_pairs = len(names) * (len(names) - 1) // 2
    lines = [f"# Is the difference real? {' vs '.join(names)}", "",
             f"Test split of {r.dataset['name']} ({r.dataset['test_users']} users with test items, full ranking "
             f"over {r.dataset['n_items']} items, training and validation items masked). Each user's metric is "
             "averaged over a method's seeds; every pair of methods is compared on those per-user values with a "
             f"two-sided Wilcoxon signed-rank test and a paired t-test, p-values Holm-adjusted over the {n_pairs} "
             "pair(s) of each metric.", "",
             "## Per method: mean ± sd over seeds", "",
             "| method | seeds | " + " | ".join(r.keys) + " |", "|---|---|" + "---|" * len(r.keys)]
    for m in r.methods:
        cells = [f"{fmt_value(m['summary'][k]['mean'])} ± {fmt_value(m['summary'][k]['sd'])}" for k in r.keys]
        lines.append(f"| {m['name']} | {', '.join(map(str, m['seeds']))} | " + " | ".join(cells) + " |")
    lines += ["", "## Pairs: A − B over test users", "",
              "| A | B | metric | mean A − B | Wilcoxon p | Holm p | rank-biserial r | t-test p | Holm p "
              f"| Cohen's d_z | differs (Holm Wilcoxon p < {r.alpha:g}) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in r.pairs:
        w, t = p["wilcoxon"], p["t_test"]
        lines.append(f"| {p['a']} | {p['b']} | {p['metric']} | {fmt_diff(p['mean_diff'])} | {fmt_p(w['p'])} | "
                     f"{fmt_p(w['p_holm'])} | {fmt_effect(w['rank_biserial'])} | {fmt_p(t['p'])} | "
                     f"{fmt_p(t['p_holm'])} | {fmt_effect(t['cohen_dz'])} | {'yes' if p['differs'] else 'no'} |")
    lines += ["", "r and d_z > 0 favour A. A pair whose differences are all zero gets p = 1.", "", "## Runs", ""]
    for m in r.methods:
        for run in m["runs"]:
            lines.append(f"- **{m['name']}** seed {run['seed']}: `{run['run_dir'] or run['checkpoint']}`, "
                         f"epoch {run['epoch']} ({run['status']}); "
                         + ", ".join(f"{k} {fmt_value(run['metrics'][k])}" for k in r.keys))
        lines += [f"- **{m['name']}** note: {note}" for note in m["notes"]]
    return "\n".join(lines) + "\n"


def csv_rows(r: CompareResult) -> list[dict[str, Any]]:
    """compare.csv's rows: one per method and metric (section ``method``), one per pair and metric (``pair``)."""
    rows = []
    for m in r.methods:
        for k in r.keys:
            s = m["summary"][k]
            rows.append({"section": "method", "metric": k, "method": m["name"], "seeds": ";".join(map(str, m["seeds"])),
                         "n_users": r.dataset["test_users"], "mean": s["mean"], "sd": s["sd"]})
    for p in r.pairs:
        w, t = p["wilcoxon"], p["t_test"]
        rows.append({"section": "pair", "metric": p["metric"], "method": p["a"], "method_b": p["b"],
                     "n_users": p["n_users"], "mean_diff": p["mean_diff"], "wilcoxon_statistic": w["statistic"],
                     "wilcoxon_p": w["p"], "wilcoxon_p_holm": w["p_holm"], "rank_biserial": w["rank_biserial"],
                     "t_statistic": t["statistic"], "t_p": t["p"], "t_p_holm": t["p_holm"],
                     "cohen_dz": t["cohen_dz"], "note": "; ".join(n for n in (w["note"], t["note"]) if n)})
    return rows


def compare_csv(r: CompareResult) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(r):
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def plot_file(key: str) -> str:
    return f"compare_{key}.png"


def plot_distribution(r: CompareResult, key: str):
    """Box plot of each method's per-user metric (averaged over its seeds), the mean marked and written."""
    from matplotlib.figure import Figure

    from adaptau_cli.workflows.plots import DPI

    names = [m["name"] for m in r.methods]
    fig = Figure(figsize=(max(4.8, 1.2 * len(names) + 2.4), 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    data = [r.user_values[n][key] for n in names]
    ax.boxplot(data, showmeans=True, widths=0.5,
               meanprops={"marker": "D", "markerfacecolor": "tab:red", "markeredgecolor": "tab:red"})
    for i, values in enumerate(data, start=1):
        ax.annotate(f"mean {np.mean(values):.4f}", (i, np.mean(values)), xytext=(8, 0),
                    textcoords="offset points", fontsize=8, va="center", color="tab:red")
    n_seeds = len(r.methods[0]["seeds"])
    ax.set_xticks(range(1, len(names) + 1), labels=names)
    ax.set_ylabel(f"{key} per test user\n(mean over {n_seeds} seed{'s' if n_seeds != 1 else ''})")
    ax.set_title(f"{key} of the {r.dataset['test_users']} test users, per method", fontsize=11)
    ax.set_xlabel("box: quartiles, line: median, ◆: mean")
    ax.grid(axis="y", alpha=0.3)
    return fig


def write_outputs(r: CompareResult) -> None:
    """compare.md, compare.csv, compare.json and one plot per metric, each written atomically."""
    from adaptau_cli.workflows.plots import save_figure

    plots = {k: str(save_figure(plot_distribution(r, k), r.out / "plots" / plot_file(k))) for k in r.keys}
    r.outputs = {"md": str(r.out / "compare.md"), "csv": str(r.out / "compare.csv"),
                 "json": str(r.out / "compare.json"), "plots": plots}
    write_text(r.out / "compare.md", compare_markdown(r))
    write_text(r.out / "compare.csv", compare_csv(r))
    write_json(r.out / "compare.json", r.to_dict())
