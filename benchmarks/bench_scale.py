"""Amazon-Book scale on one machine: a training step against its GEMM floor, a full-ranking pass against its
score product, peak memory, 1 vs 2 processes, and a Gowalla-size validation pass.

    .venv/bin/python benchmarks/bench_scale.py --threads 1 [--home DIR] [--steps 60] [--warmup 5] [--grouped]
        [--skip-cli] [--skip-ddp] [--skip-eval] [--ddp-steps 30] [--json out.json]

Data: ``synthetic-amazon-book`` (the paper's largest dataset's shape, 52,643 users x ~91.6k items, ~2.39 M
training pairs), prepared through ``adaptau_cli.data.prepare.prepare_dataset`` into ``--home`` (a temporary
store by default). Setup: MF, Adap-τ (per-user τ_u, so the τ = 1 losses are tracked), 1024 shared negatives,
batch 2048, dim 64, L2 1e-5, fused Adam.

What is measured (one process; peak RSS, ru_maxrss, is printed at the end of each phase and only grows):
* ``train``: ``--steps`` steps of the real loop's step (``engine.trainer``'s batches, ``AdapTauLoss``,
  ``l2_penalty``, the temperature controller's 1/τ_u and L_u, Adam — and, per ``--optimizers``, the same
  step under ``--optimizer sparse-adam``: sparse row gathers and ``RowwiseAdam``), after ``--warmup`` steps, interleaved
  in rounds of 5 with the floors below so that machine load hits all alike; medians, extrapolated to the
  epoch's batches (not a full epoch: the output says so). Floors, same shapes, same process:
    - GEMM floor: (B×d)·(d×M) scores and their two gradient products (B×M)·(M×d), (M×B)·(B×d);
    - + gather/scatter: also the index_select of the B users, B positives and M negatives from the
      full tables and its backward (index_add into zeroed dense table gradients, what autograd does);
    - Adam alone: the fused Adam update of both full tables (dense gradients: every row, every step).
  The τ0 statistics (``score_stats`` over the whole tables, once per epoch) are timed once.
* ``eval``: one full-ranking pass over every validation user (training items masked, @10/20/50) with
  ``evaluate_embeddings`` — as shipped (the bfloat16 screen where the CPU has native bfloat16) and through
  the full float32 product (``ADAPTAU_SCREEN=0``) — against the float32 score product alone.
* ``gowalla``: the same at Gowalla's shape (29,858 × 40,981), random unit embeddings, 27 masked training
  items and one held-out item per user.
* ``cli``: ``adaptau train synthetic-amazon-book --epochs 1 --negatives shared --tau-mode adap-tau`` as a
  child process under ``/usr/bin/time`` (its %M: peak RSS of the whole run: load, τ0 statistics, epoch,
  3 evaluations).
* ``ddp``: ``benchmarks/scale_worker.py`` under ``python -m torch.distributed.run --standalone`` with 1 and
  with 2 processes (``--threads`` split between the ranks, at least 1 each): per global step, and the
  dense all-reduce alone.
Figures are wall-clock on whatever else runs on the machine: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_train import peak_rss_mb, timed  # noqa: E402  (the training benchmark's helpers)

B, M, DIM = 2048, 1024, 64
DATASET = "synthetic-amazon-book"
GOWALLA = (29_858, 40_981)




def load(home: str):
    from adaptau_cli.base.settings import PreprocessConfig
    from adaptau_cli.data.prepare import prepare_dataset

    return prepare_dataset(PreprocessConfig(dataset=DATASET, home=home), quiet=True)


def train_config(negatives: str = "shared", threads: int = 1, optimizer: str = "adam"):
    from adaptau_cli.base.settings import TrainConfig

    return TrainConfig(negatives=negatives, batch_size=B, num_negatives=M, dim=DIM, device="cpu",
                       tau_mode="adap-tau", threads=threads, optimizer=optimizer)


class EngineStep:
    """One step of ``engine.trainer._train_epoch`` (same calls, same order), on the next batch of the real
    sampler; with a world of several ranks, each takes its shard and DDP (``trained``) averages gradients."""

    def __init__(self, ds, cfg, world=None, trained=None, seed: int = 0):
        from adaptau_cli.engine import distributed as dist
        from adaptau_cli.engine.backbone import scoring_embeddings
        from adaptau_cli.engine.optimizers import make_optimizer
        from adaptau_cli.engine.trainer import _Batches
        from adaptau_cli.method.losses import AdapTauLoss
        from adaptau_cli.method.rivals import make_criterion
        from adaptau_cli.method.temperature import TemperatureController
        from adaptau_cli.models import build_model

        self.cfg, self.world = cfg, world or dist.SINGLE
        torch.manual_seed(seed)
        self.model = build_model("mf", ds.n_users, ds.n_items, cfg.dim)
        self.trained = self.model if trained is None else trained(self.model)
        self.criterion = make_criterion(cfg.parts().loss, ds.item_popularity, AdapTauLoss)
        self.optimizer = make_optimizer(self.model, cfg.lr, self.criterion.parameters(), cfg.optimizer)
        self.temps = TemperatureController(cfg.parts().temperature, ds.n_users, ds.n_items, ds.train.users,
                                           ds.train.items, "cpu")
        u, i, _ = scoring_embeddings(self.model, cfg.norm)
        t = time.perf_counter()
        self.temps.open_epoch(1, u, i)
        self.tau0_stats_seconds = time.perf_counter() - t
        self.temps.close_epoch(1)         # a second epoch: per-user τ_u from L_u, as after the first epoch
        self.temps.open_epoch(2, u, i)
        self.batches = _Batches(cfg, ds, "cpu")
        self.gen = torch.Generator().manual_seed(seed)
        self.neg_l2_weight = cfg.num_negatives / ds.n_items
        self._it = iter(())

    def next_batch(self):
        try:
            return next(self._it)
        except StopIteration:
            self._it = self.batches(self.gen)
            return next(self._it)

    def __call__(self, sync: bool = True, zero: bool = True, step: bool = True) -> None:
        """One step; ``sync=False``: backward under DDP's ``no_sync``; ``zero=False``: add to the gradients
        already there; ``step=False``: no Adam step (gradient accumulation)."""
        from adaptau_cli.engine.trainer import _average_undistributed, _batch_objective, _global_value, _shard

        cfg, world = self.cfg, self.world
        users, pos, negs = self.next_batch()
        bounds, share = None, 1.0
        if world.active:
            users, pos, negs, bounds, share = _shard(users, pos, negs, cfg.negatives, world)
        ctx = self.trained.no_sync() if not sync else _nullcontext()
        with ctx:
            res = _batch_objective(self.model, self.trained(), self.criterion, self.temps, cfg, (users, pos, negs),
                                   bounds, True, self.neg_l2_weight)
            if world.active:
                res.loss = res.loss * share
                if sync:
                    _global_value(res.loss, world)
            else:
                float(res.loss.detach())
            if zero:
                self.optimizer.zero_grad(set_to_none=True)
            res.loss.backward()
        if sync:
            _average_undistributed(self.model, self.criterion, cfg, world)
        if step:
            self.optimizer.step()
        self.temps.observe(users, res.row_loss_tau1)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def floors(n_users: int, n_items: int, groups: int = 1, seed: int = 0) -> dict:
    """Closures timing what any step of this shape must do: the 3 GEMMs, the gather/scatter, Adam.

    ``groups`` > 1: grouped negatives, row slice g of the batch against its own block of M (the same
    B·M scores, G·M gathered rows).
    """
    from adaptau_cli.method.losses import group_bounds

    g = torch.Generator().manual_seed(seed)
    bounds = group_bounds(B, groups)
    a = torch.randn(B, DIM, generator=g, requires_grad=True)
    b = torch.randn(groups, M, DIM, generator=g, requires_grad=True)
    grad = torch.randn(B, M, generator=g)
    ut = torch.randn(n_users, DIM, generator=g, requires_grad=True)
    it = torch.randn(n_items, DIM, generator=g, requires_grad=True)
    ui = torch.randint(0, n_users, (B,), generator=g)
    pi = torch.randint(0, n_items, (B,), generator=g)
    ni = torch.randint(0, n_items, (groups * M,), generator=g)
    opt = torch.optim.Adam([ut, it], lr=1e-3, fused=True)
    ut.grad, it.grad = torch.zeros_like(ut), torch.zeros_like(it)

    def scores(u, n):
        return torch.cat([u[s:e] @ n[k].t() for k, (s, e) in enumerate(bounds)])

    def gemm():
        a.grad = b.grad = None
        scores(a, b).backward(grad)

    def gemm_gather():
        ut.grad = it.grad = None
        u, p, n = ut.index_select(0, ui), it.index_select(0, pi), it.index_select(0, ni).view(groups, M, DIM)
        torch.autograd.backward([scores(u, n), (u * p).sum(1)], [grad, torch.ones(B)])

    def adam():
        opt.step()

    return {"gemm": gemm, "gemm_gather": gemm_gather, "adam": adam}


def phase_train(ds, args, negatives: str, optimizer: str = "adam") -> dict:
    cfg = train_config(negatives, args.threads, optimizer)
    step = EngineStep(ds, cfg)
    fl = floors(ds.n_users, ds.n_items, cfg.negative_groups if negatives == "grouped" else 1)
    for _ in range(args.warmup):
        step()
        for f in fl.values():
            f()
    times: dict[str, list[float]] = {"step": [], **{k: [] for k in fl}}
    for _ in range(-(-args.steps // 5)):          # interleaved rounds of 5
        times["step"] += timed(step, 5)
        for k, f in fl.items():
            times[k] += timed(f, 5)
    med = {k: float(np.median(v)) for k, v in times.items()}
    batches = step.batches.count
    out = {"negatives": negatives, "optimizer": optimizer, "steps_timed": len(times["step"]), "warmup_steps": args.warmup,
           "batches_per_epoch": batches, "pairs": step.batches.n_pairs,
           "step_ms": 1e3 * med["step"], "step_ms_mean": 1e3 * float(np.mean(times["step"])),
           "epoch_seconds_extrapolated": med["step"] * batches, "pairs_per_second": B / med["step"],
           "tau0_stats_seconds": step.tau0_stats_seconds, "peak_rss_mb": peak_rss_mb()}
    for k in fl:
        out[f"{k}_ms"] = 1e3 * med[k]
        out[f"ratio_step_to_{k}"] = med["step"] / med[k]
    floor_all = med["gemm_gather"] + med["adam"]
    out["gemm_gather_adam_ms"] = 1e3 * floor_all
    out["ratio_step_to_gemm_gather_adam"] = med["step"] / floor_all
    out["floor_epoch_seconds"] = med["gemm"] * batches
    return out


def score_product(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray) -> float:
    """Seconds of the score products alone, in the blocks ``score_topk`` uses for float32 (any dtype given)."""
    from adaptau_cli.eval.topk import block_size

    bs = block_size(item_emb.shape[0], 1024)
    item_t = item_emb.t()
    t = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(users), bs):
            scores = user_emb[torch.as_tensor(users[s:s + bs])] @ item_t
            del scores
    return time.perf_counter() - t


def eval_vs_product(u: torch.Tensor, it: torch.Tensor, heldout: sp.csr_matrix, exclude: sp.csr_matrix,
                    repeats: int) -> dict:
    from adaptau_cli.eval.metrics import evaluate_embeddings
    from adaptau_cli.eval.topk import block_size

    from adaptau_cli.eval.screen import screen_enabled

    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    ev, ex, pr, bf = [], [], [], []
    for _ in range(repeats):                        # alternated: default (screened where it applies), full product
        t = time.perf_counter()
        res = evaluate_embeddings(u, it, heldout, exclude, (10, 20, 50))
        ev.append(time.perf_counter() - t)
        os.environ["ADAPTAU_SCREEN"] = "0"
        try:
            t = time.perf_counter()
            full = evaluate_embeddings(u, it, heldout, exclude, (10, 20, 50))
            ex.append(time.perf_counter() - t)
        finally:
            del os.environ["ADAPTAU_SCREEN"]
        pr.append(score_product(u, it, users))
        bf.append(score_product(u.bfloat16(), it.bfloat16(), users))   # what the screen's product costs
    e, f, p = min(ev), min(ex), min(pr)
    return {"users": len(users), "items": it.shape[0], "block_users": block_size(it.shape[0], 1024),
            "screened": screen_enabled(u, it, 50), "eval_seconds": e, "users_per_second": len(users) / e,
            "full_product_eval_seconds": f, "speedup_over_full_product_eval": f / e,
            "product_seconds": p, "ratio_eval_to_product": e / p, "ratio_full_eval_to_product": f / p,
            "bf16_product_seconds": min(bf),
            "repeats": repeats, "recall@20": res.metrics["recall@20"],
            "recall@20_full_product": full.metrics["recall@20"], "peak_rss_mb": peak_rss_mb()}


def phase_eval(ds, args) -> dict:
    from adaptau_cli.engine.backbone import scoring_embeddings
    from adaptau_cli.eval.metrics import split_masks
    from adaptau_cli.models import build_model

    torch.manual_seed(0)
    u, it, _ = scoring_embeddings(build_model("mf", ds.n_users, ds.n_items, DIM), "both")
    heldout, exclude = split_masks(ds, "valid")
    return eval_vs_product(u, it, heldout, exclude, args.eval_repeats)


def gowalla_inputs(seed: int = 0, train_per_user: int = 27):
    n, m = GOWALLA
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(n, DIM, generator=g), dim=1)
    it = torch.nn.functional.normalize(torch.randn(m, DIM, generator=g), dim=1)
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), train_per_user)
    exclude = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, rng.integers(0, m, len(rows)))), shape=(n, m))
    exclude.sum_duplicates()
    exclude.data[:] = 1.0
    held = rng.integers(0, m, n)
    clash = np.asarray(exclude[np.arange(n), held]).ravel() > 0
    held[clash] = (held[clash] + 1) % m            # rarely: a held-out item that is also a training item
    heldout = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), held)), shape=(n, m))
    return u, it, heldout, exclude


def phase_gowalla(args) -> dict:
    return eval_vs_product(*gowalla_inputs(), repeats=args.eval_repeats)


def phase_cli(args, home: str, optimizer: str = "adam") -> dict:
    """A whole one-epoch ``adaptau train`` run as a child; its peak RSS from ``/usr/bin/time`` (else ``wait4``)."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-run-") as out:
        cmd = [sys.executable, "-m", "adaptau_cli", "train", DATASET, "--home", home, "--epochs", "1",
               "--negatives", "shared", "--num-negatives", str(M), "--batch-size", str(B), "--dim", str(DIM),
               "--tau-mode", "adap-tau", "--optimizer", optimizer, "--threads", str(args.threads), "--device",
               "cpu", "--quiet", "--out", str(Path(out) / "run")]
        # Why /usr/bin/time: a child started straight from this (1 GB) process and read with wait4 reports
        # this process's peak (Linux keeps the pre-exec memory's high-water mark in ru_maxrss, and
        # subprocess execs from a vfork of this process); time's own child is forked from a small process.
        rss_file = Path(out) / "maxrss.txt"
        timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if Path("/usr/bin/time").is_file() else []
        t = time.perf_counter()
        with open(Path(out) / "stderr.txt", "w+b") as errfile:
            proc = subprocess.Popen(timer + cmd, stdout=subprocess.DEVNULL, stderr=errfile)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
            errfile.seek(0)
            err = errfile.read().decode(errors="replace")
        report = Path(out) / "run" / "report.json"
        rep = json.loads(report.read_text()) if report.is_file() else {}
        peak = (int(rss_file.read_text().split()[-1]) if timer and rss_file.is_file() else usage.ru_maxrss) / 1024.0
    if proc.returncode:
        return {"error": err[-2000:], "command": " ".join(cmd)}
    return {"command": "adaptau train " + " ".join(cmd[4:-2]) + " --out RUN", "wall_seconds": wall,
            "train_seconds": rep.get("train_seconds"), "eval_seconds": rep.get("eval_seconds"),
            "peak_rss_mb": peak,
            "peak_rss_from": "/usr/bin/time %M" if timer else "wait4 (includes this process's peak)"}


def phase_ddp(args, home: str) -> dict:
    out = {}
    for nproc in (1, 2):   # --threads 2: 1 process x 2 threads against 2 x 1 (the same cores)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               str(HERE / "scale_worker.py"), "--home", home, "--steps", str(args.ddp_steps),
               "--warmup", str(args.warmup), "--threads", str(max(1, args.threads // nproc))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        out[f"nproc{nproc}"] = json.loads(lines[-1]) if proc.returncode == 0 and lines else \
            {"error": (proc.stderr or proc.stdout)[-3000:]}
    return out


def report_train(r: dict) -> None:
    groups = " (G = 16)" if r["negatives"] == "grouped" else ""
    print(f"  train, {r['negatives']} negatives{groups}, {r.get('optimizer', 'adam')}: {r['step_ms']:.1f} ms/step (median of {r['steps_timed']} "
          f"after {r['warmup_steps']} warm-up; mean {r['step_ms_mean']:.1f}) -> {r['epoch_seconds_extrapolated']:.1f} "
          f"s/epoch EXTRAPOLATED to {r['batches_per_epoch']} batches ({r['pairs']:,} pairs), "
          f"{r['pairs_per_second']:,.0f} pairs/s")
    print(f"    GEMM floor (3 products: scores + 2 gradients) {r['gemm_ms']:.2f} ms = {r['floor_epoch_seconds']:.1f} "
          f"s/epoch -> step/floor {r['ratio_step_to_gemm']:.2f}x (target <= 1.5x)")
    print(f"    + embedding gather/scatter into dense table grads {r['gemm_gather_ms']:.2f} ms -> "
          f"{r['ratio_step_to_gemm_gather']:.2f}x; Adam on the full tables alone {r['adam_ms']:.2f} ms; "
          f"GEMM+gather+Adam {r['gemm_gather_adam_ms']:.2f} ms -> {r['ratio_step_to_gemm_gather_adam']:.2f}x")
    print(f"    tau0 statistics (score_stats, whole tables, once per epoch) {r['tau0_stats_seconds']:.2f} s; "
          f"peak RSS {r['peak_rss_mb']:.0f} MB")


def report_eval(name: str, r: dict) -> None:
    how = "bfloat16 screen" if r.get("screened") else "full product"
    print(f"  {name}: {r['users']:,} users x {r['items']:,} items: full ranking ({how}) "
          f"{r['eval_seconds']:.2f} s ({r['users_per_second']:,.0f} users/s); through the float32 product "
          f"({r['block_users']} users/block) {r['full_product_eval_seconds']:.2f} s -> "
          f"{r['speedup_over_full_product_eval']:.2f}x faster; score product alone {r['product_seconds']:.2f} s "
          f"(in bfloat16 {r['bf16_product_seconds']:.2f} s) -> "
          f"{r['ratio_eval_to_product']:.2f}x (full product path {r['ratio_full_eval_to_product']:.2f}x; target <= 2x; "
          f"best of {r['repeats']}); recall@20 {r['recall@20']:.6f} / {r['recall@20_full_product']:.6f}; "
          f"peak RSS {r['peak_rss_mb']:.0f} MB")


def report_ddp(d: dict) -> None:
    for key, r in d.items():
        if "error" in r:
            print(f"  ddp {key}: FAILED\n{r['error']}")
            continue
        print(f"  {key} ({r['world']} process(es) x {r['threads']} thread(s)), per global step of {B} rows, median "
              f"of {r['steps']}; peak RSS rank 0 {r['peak_rss_mb']:.0f} MB:")
        for name, v in r["variants"].items():
            extra = f" -> {v['ms'] * r['batches'] / 1e3:.1f} s/epoch extrapolated" if "ms" in v else ""
            print(f"    {name:24s} " + (f"{v['ms']:.1f} ms{extra}" if "ms" in v else v.get("error", "")) +
                  (f"  ({v['note']})" if v.get("note") else ""))
        if "allreduce_ms" in r:
            print(f"    dense all-reduce alone of {r['allreduce_mb']:.1f} MB ((users + items) x {DIM} float32): "
                  f"{r['allreduce_ms']:.1f} ms; a scalar all-reduce {r['scalar_allreduce_ms']:.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="dataset store (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--ddp-steps", type=int, default=30)
    ap.add_argument("--eval-repeats", type=int, default=1)
    ap.add_argument("--grouped", action="store_true", help="also time the default grouped negatives (G = 16)")
    ap.add_argument("--optimizers", default="adam,sparse-adam",
                    help="the optimizers whose step is timed (sparse-adam: lazy row-wise Adam, sparse gradients)")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--only-gowalla", action="store_true", help="the Gowalla-size validation pass alone")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                     "loadavg_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(f"bench_scale: {DATASET}, MF Adap-tau, batch {B}, M = {M}, dim {DIM}, {args.threads} thread(s), "
          f"load average {results['loadavg_start'][0]:.2f} at the start, {results['date']}")
    if args.only_gowalla:
        results["gowalla"] = phase_gowalla(args)
        report_eval("Gowalla-size validation pass", results["gowalla"])
    else:
        home = args.home or tempfile.mkdtemp(prefix="bench-scale-home-")
        t = time.perf_counter()
        ds = load(home)
        results["prepare"] = {"seconds": time.perf_counter() - t, "users": ds.n_users, "items": ds.n_items,
                              "train": len(ds.train), "valid": len(ds.split("valid")), "peak_rss_mb": peak_rss_mb()}
        p = results["prepare"]
        print(f"  dataset: {p['users']:,} users x {p['items']:,} items, {p['train']:,} train / {p['valid']:,} valid "
              f"pairs; prepared or loaded in {p['seconds']:.1f} s; peak RSS {p['peak_rss_mb']:.0f} MB")
        for neg in ("shared",) + (("grouped",) if args.grouped else ()):
            for opt in args.optimizers.split(","):
                key = f"train_{neg}" + ("" if opt == "adam" else f"_{opt}")
                results[key] = phase_train(ds, args, neg, opt)
                report_train(results[key])
        if not args.skip_eval:
            results["eval"] = phase_eval(ds, args)
            report_eval("evaluation (valid split)", results["eval"])
            results["gowalla"] = phase_gowalla(args)
            report_eval("Gowalla-size validation pass", results["gowalla"])
        del ds
        if not args.skip_cli:
            for opt in args.optimizers.split(","):
                key = "cli" + ("" if opt == "adam" else f"_{opt}")
                results[key] = c = phase_cli(args, home, opt)
                if "error" in c:
                    print(f"  cli run FAILED: {c['command']}\n{c['error']}")
                else:
                    print(f"  whole run `{c['command']}`: {c['wall_seconds']:.0f} s wall ({c['train_seconds']:.0f} s "
                          f"training, {c['eval_seconds']:.0f} s evaluation); peak RSS {c['peak_rss_mb']:.0f} MB")
        if not args.skip_ddp:
            results["ddp"] = phase_ddp(args, home)
            report_ddp(results["ddp"])
    results["loadavg_end"] = os.getloadavg()
    print(f"  load average at the end {results['loadavg_end'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
