"""Data-parallel training shared by every trainer (PyTorch DistributedDataParallel).

A training function runs the same way under ``torchrun --nproc_per_node K`` (which sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) and under :func:`launch`, which spawns K
processes with those variables itself (``--nproc K`` of the CLI). Each process calls
:func:`setup`: the gloo backend on the CPU, nccl on CUDA, one GPU per local rank.

The global batch stays the same whatever K is: every rank draws the same global batch (the batch
order is a pure function of (seed, step)) and takes its own contiguous part (:func:`my_part`), and
DDP averages the gradients; so K processes follow the path of one, up to float rounding.
Rank 0 alone writes the run folder (training.rundir).
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch.nn.parallel import DistributedDataParallel

from colonsim import errors
from colonsim.errors import ColonSimError, InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """Where this process stands in a data-parallel run (rank 0 of world 1 when not distributed)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    """The rank and world size that torchrun (or :func:`launch`) put in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_type: str) -> Dist:
    """Join the process group of a torchrun/launch run (no-op for a single process): gloo on the
    CPU, nccl on CUDA (and select this local rank's GPU)."""

    d = from_env()
    if not d.enabled or dist.is_initialized():
        return d
    if device_type == "cuda":
        torch.cuda.set_device(d.local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=d.rank, world_size=d.world)
    return d


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(global_batch: int, world: int, field: str) -> int:
    """The per-rank batch; the global batch must split evenly, so that every rank's loss weighs the same."""
    if global_batch % world:
        raise InputError(f"{field}={global_batch} must be a multiple of the number of processes ({world}) "
                         "so that the global batch splits evenly; change one of them")
    return global_batch // world


def my_part(items: Sequence[Any], d: Dist) -> list:
    """This rank's contiguous part of a global batch of ``len(items)`` (a multiple of the world size)."""
    n = len(items) // d.world
    return list(items[d.rank * n:(d.rank + 1) * n])


def mean_over_ranks(values: dict[str, float], d: Dist, flag: bool = False) -> tuple[dict[str, float], bool]:
    """The mean of each scalar over the ranks, and whether ``flag`` is true on any rank (one
    all-reduce; e.g. a time budget that rank 0 has reached, so that every rank stops together)."""
    if not d.enabled:
        return values, flag

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys] + [float(flag)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t = t.cpu()
    out = {k: float(t[i]) / d.world for i, k in enumerate(keys)}
    return out, bool(t[-1] > 0)


def barrier(d: Dist) -> None:
    if d.enabled:
            dist.barrier()


def wrap(model, d: Dist, device):
    """``model`` in DistributedDataParallel (BatchNorm layers made synchronous), or as it is."""
    if not d.enabled:
        return model

    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[d.local_rank] if device.type == "cuda" else None)


# ----------------------------------------------------------------------------- --nproc K


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, nproc: int, port: int, fn: Callable, args: tuple, kwargs: dict, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if "OMP_NUM_THREADS" not in os.environ:  # as torchrun does: K processes share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    try:
        out = fn(*args, **kwargs)
    except ColonSimError as e:
        results.put((rank, "error", type(e).__name__, str(e)))
        raise SystemExit(2) from None
    if rank == 0:
        results.put((rank, "ok", out, None))


def launch(fn: Callable, nproc: int, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` spawned processes on this machine, as torchrun would
    (fn calls :func:`setup`); returns rank 0's result. A ColonSimError in any rank is raised here."""

    if nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {nproc}")
    ctx = tmp.get_context("spawn")
    results = ctx.SimpleQueue()
    failure = None
    try:
        tmp.spawn(_child, args=(nproc, _free_port(), fn, args, kwargs, results), nprocs=nproc, join=True)
    except Exception as e:  # noqa: BLE001  a rank failed: report its ColonSimError if it had one
        failure = e
    got = []
    while not results.empty():
        got.append(results.get())
    for rank, kind, a, b in sorted(got, key=lambda r: r[1] != "error"):
        if kind == "error":
            cls = getattr(errors, a, ColonSimError)
            raise (cls("", b) if cls is errors.ConfigError else cls(b))
        return a
    raise ColonSimError(f"data-parallel run failed: {str(failure).strip().splitlines()[-1] if failure else 'no result'}")


def gather_batch(x, d: Dist):
    """The global batch (concatenated in rank order) of each rank's part ``x`` (N/K, ...), on every rank."""
    if not d.enabled:
        return x

    parts = [torch.empty_like(x) for _ in range(d.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def average_gradients(module, d: Dist) -> None:
    """Replace each gradient of ``module`` by its mean over the ranks (one all-reduce of all of them):
    the arithmetic of DistributedDataParallel, for training steps that DDP's reducer does not fit."""
    if not d.enabled:
        return

    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world
    k = 0
    for g in grads:
        g.copy_(flat[k:k + g.numel()].view_as(g))
        k += g.numel()


def share(weight_sum: float, d: Dist) -> float:
    """``world * weight_sum / (sum over ranks)``: the factor that turns a rank's weighted-mean loss
    (sum(x w) / sum(w) over its part of the batch) into its share of the global batch's weighted
    mean, so that the averaged gradients equal one process's however the weights fall on the ranks.
    1 for a single process."""
    if not d.enabled:
        return 1.0

    t = torch.tensor([float(weight_sum)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return d.world * max(float(weight_sum), 1.0) / max(float(t), 1.0)


def from_main(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run summary, so every rank returns the same one)."""
    if not d.enabled:
        return obj

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
