"""Data-parallel training on ``torch.distributed``: who this process is, and the few collectives training needs.

The engine does not manage processes: ``torchrun`` (or ``adaptau train --nproc N``,
which calls the same launcher) starts them and sets ``WORLD_SIZE`` / ``RANK`` /
``LOCAL_RANK`` / ``MASTER_ADDR``; ``init_world`` joins the group (``gloo`` on CPU,
``nccl`` on CUDA). What makes a run of N processes the same run as one process:

* every rank draws the same shuffle and the same negatives from the one seeded
  generator, then keeps its own contiguous slice of each global batch
  (``row_shard``): the batch size is the global batch, and a shared block is the
  same block on every rank;
* each rank's loss is scaled by its share of the global batch, so DDP's average of
  the gradients is the gradient of the one-process mean loss;
* the statistics Adap-τ reads are global: μ+ and μ from the (synchronized)
  embeddings, each user's epoch loss L_u summed and counted over ranks
  (``all_sum``), so τ0 and every τ_u agree on every rank and with one process;
* evaluation is sharded by users and combined from summed per-user values,
  never from per-rank means (uneven shards would weigh users unequally);
* rank 0 alone writes (checkpoints, history, reports) and talks; decisions that
  could differ between ranks (the time limit) are agreed with ``any_flag``.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place in the process group (``size == 1``: an ordinary run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


def world_from_env() -> World:
    """The world torchrun describes in the environment (one process when it says nothing)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return SINGLE
    return World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def is_worker() -> bool:
    """True in a process other than rank 0 of a torchrun group (it stays quiet)."""
    return world_from_env().rank != 0


def init_world(device: str) -> World:
    """Join the process group torchrun set up (once per process); the backend follows ``device``."""
    world = world_from_env()
    if world.active and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(world.local_rank)
        store = _attempt_store(world)
        if store is None:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=store, rank=world.rank, world_size=world.size)
        atexit.register(_leave)
    return world


def _attempt_store(world: World):
    """torchrun's own key-value store, under a prefix of this attempt (None: plain ``env://``).

    Why: after torchrun restarts a failed group (``--max-restarts``), the new ranks
    met the dead attempt's gloo addresses in the shared store and failed to connect
    (torch 2.13, measured: every restart after a worker died mid-collective). One
    prefix per attempt gives each attempt its own keys.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None
    base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size, is_master=False,
                         timeout=datetime.timedelta(minutes=10))
    return dist.PrefixStore(f"/adaptau/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", base)


def _leave() -> None:
    """Leave the group before the interpreter exits (gloo aborts the process otherwise), all ranks together.

    The barrier first: a rank that tore its connections down while a peer
    still had traffic in flight with it died of gloo's ``terminate called
    without an active exception`` now and then (once in the killed-worker test
    under load, in two of three 2-process benchmark runs). It is bounded, so a rank whose peers
    already died (torchrun then stops the group anyway) does not hang here.
    """
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:                   # peers gone: nothing left to wait for
        pass
    dist.destroy_process_group()


def rank_device(device: str, world: World) -> str:
    """CUDA ranks each take their local GPU; CPU ranks share the CPU."""
    if world.active and device.startswith("cuda"):
        return f"cuda:{world.local_rank}"
    return device


def restarted() -> bool:
    """Whether torchrun restarted the group after a failure (``--max-restarts``): then the run resumes."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def row_shard(rows: int, world: World) -> tuple[int, int]:
    """This rank's contiguous slice ``[start, end)`` of a batch of ``rows`` (near-equal; may be empty)."""
    return rows * world.rank // world.size, rows * (world.rank + 1) // world.size


def all_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (nothing to do in a one-process run)."""
    if world.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_flag(flag: bool, world: World) -> bool:
    """True on every rank when it is true on any (so that all ranks take the same branch)."""
    if not world.active:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def average_gradients(params, world: World) -> None:
    """What DDP does to a gradient — sum over the ranks, divide by their number — for parameters DDP does not hold.

    Two kinds: a loss's own parameters (learned-τ's log τ: the criterion is not
    inside DDP), and the embedding tables under ``--optimizer sparse-adam``,
    whose sparse gradients DDP refuses for a plain ``nn.Parameter`` (it expects
    them only from ``nn.Embedding(sparse=True)`` modules); a sparse gradient is
    summed by ``_sparse_all_sum`` (only the touched rows travel). Every rank
    calls the same collectives in the same order: a parameter without a
    gradient on this rank (an empty shard) joins with zeros.
    """
    if not world.active:
        return
    for p in params:
        g = p.grad
        if g is not None and g.is_sparse:
            p.grad = _sparse_all_sum(g, world) / world.size
            continue
        if g is None:
            g = p.grad = torch.zeros_like(p)
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        p.grad = g / world.size


def _sparse_all_sum(grad: torch.Tensor, world: World) -> torch.Tensor:
    """The sum over the ranks of a sparse (COO) gradient, the same tensor on every rank.

    Each rank's coalesced rows are all-gathered with plain dense collectives
    (padded to the largest count, at least one row: gloo refuses empty
    buffers) and put side by side in rank order; the optimizer's ``coalesce``
    then adds the rows that several ranks touched. Why not ``all_reduce`` on
    the sparse tensor: gloo's sparse all-reduce aborted a rank at exit now and
    then on this machine (about one run in five, under load); dense
    all-gathers are the collectives every other step already uses. Built and
    tested on gloo only (the counts live on the CPU): sparse-adam is refused on
    several GPUs until someone with GPUs runs it.
    """
    grad = grad.coalesce()
    rows, values = grad.indices(), grad.values()
    count = torch.tensor([rows.shape[1]], dtype=torch.int64)
    counts = [torch.zeros_like(count) for _ in range(world.size)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    width = max(1, max(counts))
    padded_rows = rows.new_zeros(rows.shape[0], width)
    padded_rows[:, :rows.shape[1]] = rows
    padded_values = values.new_zeros((width, *values.shape[1:]))
    padded_values[:values.shape[0]] = values
    all_rows = [torch.empty_like(padded_rows) for _ in range(world.size)]
    all_values = [torch.empty_like(padded_values) for _ in range(world.size)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_values, padded_values)
    return torch.sparse_coo_tensor(torch.cat([r[:, :c] for r, c in zip(all_rows, counts)], 1),
                                   torch.cat([v[:c] for v, c in zip(all_values, counts)]), grad.shape,
                                   check_invariants=False)   # built from valid rows: skip the check (and its warning)


def broadcast_parameters(model: torch.nn.Module, world: World) -> None:
    """Start every rank from rank 0's weights (what DDP's constructor does) when DDP does not wrap the model."""
    if world.active:
        for p in model.parameters():
            dist.broadcast(p.data, src=0)


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The module the training step calls: DDP over ``model`` when there are several ranks.

    ``broadcast_buffers=False``: a backbone's buffers (LightGCN's graph) are built
    identically on every rank from the same data; parameters start equal because
    every rank seeds the same initialization (DDP also broadcasts rank 0's).
    """
    if not world.active:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    on_gpu = next(model.parameters()).is_cuda
    # torch 2.13 renamed the flag; both mean: do not re-broadcast buffers every forward
    sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False})
    return DistributedDataParallel(model, device_ids=[world.local_rank] if on_gpu else None, **sync)
