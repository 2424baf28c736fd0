"""The built-in pipeline: the paper's whole story on the built-in sample, in one call.

    preprocess synthetic -> estimate-tau -> train a no-norm MF (inner product,
    no temperature) and an Adap-τ MF (cosine, per-user adaptive temperature)
    -> evaluate both side by side -> analyze-magnitude (Figure 1 plots)

Everything lands in one folder (default ``adaptau-quickstart/``):
``runs/<dataset>-mf-nonorm/`` and ``runs/<dataset>-mf-adaptau/`` (ordinary run
directories), ``report.md`` / ``report.json`` / ``report.csv`` (the side-by-side
evaluation), ``magnitude.json`` and ``plots/*.png``. Running it again reuses
finished runs and resumes interrupted ones, so it is cheap to repeat.

``small=True`` uses ``synthetic-tiny`` and a few epochs: seconds instead of
minutes, for tests and a first look.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

from adaptau_cli.base.console import info, plain
from adaptau_cli.base.files import ensure_dir
from adaptau_cli.base.settings import EvaluateConfig, PreprocessConfig, TrainConfig
from adaptau_cli.engine import checkpoint

# (dataset, shared training settings) of each variant; both runs use the same budget
FULL = ("synthetic", dict(epochs=20, warmup_epochs=5))
SMALL = ("synthetic-tiny", dict(epochs=3, batch_size=256, num_negatives=32, lr=0.01, warmup_epochs=1,
                                ks=(10, 20)))
# no-norm with L2 1e-4 (as the ML-1M no-norm row): with 1e-5 the rarest items, pushed away as
# uniform negatives and never pulled back, outgrow the popular ones (docs/results.md)
RUNS = (("mf-nonorm", dict(norm="none", tau_mode="none", l2=1e-4)),
        ("mf-adaptau", dict(norm="both", tau_mode="adap-tau")))


@dataclasses.dataclass
class QuickstartResult:
    out: Path
    dataset: str
    dataset_path: str | None
    tau: dict[str, Any]
    runs: dict[str, str]                       # name -> run directory
    reused: list[str]
    metrics: dict[str, dict[str, float]]       # run name -> test metrics
    spearman: dict[str, float]                 # run name -> rho(norm, popularity)
    norm_ratio: dict[str, float]               # run name -> mean item norm, most / least popular group
    reports: dict[str, str]                    # md / json / csv -> path
    plots: dict[str, str]                      # panel -> png path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


def _train_or_reuse(train_cfg: TrainConfig, data_cfg: PreprocessConfig, dataset, run_dir: Path,
                    quiet: bool) -> bool:
    """Train into ``run_dir``; a finished run is reused, an interrupted one resumed. True if reused."""
    from adaptau_cli.engine.trainer import train

    if (run_dir / "report.json").is_file() and (run_dir / checkpoint.BEST).is_file():
        return True
    resume = (run_dir / checkpoint.LAST).is_file()
    train(train_cfg, data_cfg, dataset, run_dir, resume=resume, quiet=quiet)
    return False


def run_quickstart(out: str | Path = "adaptau-quickstart", small: bool = False, quiet: bool = False,
                   threads: int | None = None, say: Callable[[str], None] | None = None) -> QuickstartResult:
    """Run the whole pipeline into ``out`` and return where everything is."""
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.workflows.estimate import estimate_tau
    from adaptau_cli.workflows.evaluate import evaluate_runs
    from adaptau_cli.workflows.magnitude import analyze_runs, write_magnitude_json
    from adaptau_cli.workflows.plots import write_magnitude_plots
    from adaptau_cli.workflows.reports import write_evaluation_report

    say = say or (lambda msg: info(msg, quiet))
    t0 = time.perf_counter()
    out = ensure_dir(out, "quick-start folder")          # before any work: not after two steps
    name, common = SMALL if small else FULL
    steps = 5

    say(f"[bold]1/{steps}[/] preprocess: built-in sample [cyan]{name}[/]")
    data_cfg = PreprocessConfig(dataset=name)
    dataset = prepare_dataset(data_cfg, quiet=True)
    say(f"      {dataset.n_users} users, {dataset.n_items} items, "
        f"{len(dataset.train)}/{len(dataset.split('valid'))}/{len(dataset.split('test'))} "
        f"train/valid/test interactions" + (f" (store: {plain(dataset.path)})" if dataset.path else ""))

    base = TrainConfig(**common, threads=threads)
    est = estimate_tau(dataset, base)
    say(f"[bold]2/{steps}[/] estimate-tau: warm-up prior tau0 = {est.prior_tau0:.3f} (w0 = {est.prior_w0:.2f}; "
        f"log term {est.log_term:.3f} over n'={est.n_users_filtered}, m={est.n_items}, |D'|={est.n_pairs_filtered})")

    runs: dict[str, Path] = {}
    reused: list[str] = []
    for i, (run_name, settings) in enumerate(RUNS):
        cfg = dataclasses.replace(base, **settings)
        run_dir = out / "runs" / f"{name}-{run_name}"
        say(f"[bold]3/{steps}[/] train {run_name} ({i + 1}/{len(RUNS)}): MF, --norm {cfg.norm} --tau-mode "
            f"{cfg.tau_mode}, {cfg.epochs} epochs -> {plain(run_dir)}")
        if _train_or_reuse(cfg, data_cfg, dataset, run_dir, quiet):
            reused.append(run_name)
            say("      (finished run found: reused)")
        runs[run_name] = run_dir

    say(f"[bold]4/{steps}[/] evaluate both side by side on the test split")
    eval_cfg = EvaluateConfig(split="test", ks=common.get("ks", (10, 20, 50)))
    evals = evaluate_runs(list(runs.values()), eval_cfg)
    reports = {}
    for suffix in ("md", "json", "csv"):
        reports[suffix] = str(write_evaluation_report(evals, out / f"report.{suffix}"))

    say(f"[bold]5/{steps}[/] analyze-magnitude: Figure 1 for both runs")
    results = analyze_runs(list(runs.values()), dataclasses.replace(eval_cfg, ks=(20,)), k=20)
    written, _ = write_magnitude_plots(results, out / "plots")
    write_magnitude_json(results, out)

    return QuickstartResult(
        out=out, dataset=name, dataset_path=str(dataset.path) if dataset.path else None,
        tau=est.to_dict(), runs={k: str(v) for k, v in runs.items()}, reused=reused,
        metrics={ev.label.removeprefix(f"{name}-"): {**ev.metrics, **ev.bias} for ev in evals},
        spearman={r.label.removeprefix(f"{name}-"): r.spearman for r in results},
        norm_ratio={r.label.removeprefix(f"{name}-"): r.checkpoint_group_norms[-1] / r.checkpoint_group_norms[0]
                    for r in results},
        reports=reports, plots={k: str(v) for k, v in written.items()},
        seconds=time.perf_counter() - t0)
