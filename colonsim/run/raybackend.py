"""The Ray backend of :func:`colonsim.run.generate.render_dataset`: shards rendered by Ray actors.

Ray (Moritz et al. 2018, https://docs.ray.io) is an optional extra: ``pip install colonsim[ray]``.

Each actor is one process of the cluster that builds its own FrameRenderer, so its own GL context
(EGL on a GPU node, llvmpipe otherwise), once, and then renders whole shards through
:func:`colonsim.run.shard.render_shard_file`, the very function the local backend uses: a frame is
``FrameRenderer.render(i, seed)`` either way, so the dataset is bit-identical to a local run.

Where the shards go. The driver creates ``OUT.parts/`` with its manifest as for a local run. An
actor that sees that folder (a file system shared by the nodes: NFS, Lustre, a cloud file store, or
one machine) writes its shard there with the same protocol as a local worker: a temporary file of
its own pid, synced, atomically renamed. Nothing then passes through Ray's object store but the
meshes (put once) and shard numbers, and a dead worker or driver leaves complete shards or
``.tmp`` files, so ``--resume`` works exactly as it does locally. An actor on a node that cannot
see the folder renders the shard into a local temporary folder and returns the file's bytes (a
few MB per shard of 64 frames at 256 px); the driver writes them with the same atomic rename.
Actors are restarted, and their shard retried, if their process dies; if the driver dies, Ray
ends its actors, and a later ``--resume`` renders only the missing shards.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from colonsim.data import h5io
from colonsim.data.shards import MANIFEST, shard_path
from colonsim.errors import ColonSimError, InputError, RenderBackendError
from colonsim.run import interrupt, shard

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install colonsim[ray]"
IN_FLIGHT = 2  # shards queued per actor, so that none waits for the driver between shards


def import_ray():
    """The ``ray`` module, or a ColonSimError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RenderBackendError(f"--backend ray needs the ray package, which is not installed: "
                                 f"{INSTALL_HINT} (or pip install ray)") from None
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> int:
    """Connect to the Ray cluster at ``address`` (e.g. ``ray://head:10001`` or ``head:6379``), or, if
    None, to the one this process already joined, else the one in RAY_ADDRESS, else a new local one.
    Returns the number of CPUs of the cluster."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, **init_kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'} "
                             f"({first}); start one with 'ray start --head' or fix --address") from None
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def node_ids() -> list[str]:
    """Ids of the cluster's live nodes (for per-node calibration, :mod:`colonsim.run.plan`)."""
    ray = import_ray()
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


class FrameCounter:
    """Frames rendered across the cluster, for the driver's progress bar (a Ray actor)."""

    def __init__(self):
        self.n = 0

    def add(self, k: int) -> None:
        self.n += k

    def value(self) -> int:
        return self.n


class ShardActor:
    """One render process of the cluster (a Ray actor) with its own FrameRenderer and GL context."""

    def __init__(self, job, counter, lp_threads: int):
        # llvmpipe would start a thread per core of the node in each actor; one per CPU given to it
        os.environ.setdefault("LP_NUM_THREADS", str(lp_threads))
        self.job, self.counter, self.renderer = job, counter, None

    def render(self, s: int, colons: tuple) -> tuple | None:
        """Render shard ``s``: None when written to the shared parts folder, ("bytes", data) when
        rendered locally, or ("error", class name, message) for bad input."""
        try:
            if self.renderer is None:
                self.renderer = shard.build_renderer(self.job, colons)

            def on_frame() -> None:
                self.counter.add.remote(1)
            parts = Path(self.job.parts)
            if (parts / MANIFEST).is_file():
                shard.render_shard_file(self.job, self.renderer, s, parts, on_frame)
                return None
            with tempfile.TemporaryDirectory() as d:
                return ("bytes", shard.render_shard_file(self.job, self.renderer, s, d, on_frame).read_bytes())
        except ColonSimError as e:
            return ("error", type(e).__name__, str(e))

    def node_id(self) -> str:
        import ray
        return ray.get_runtime_context().get_node_id()


def _write_shard_bytes(parts: Path, s: int, data: bytes) -> None:
    tmp = parts / f"shard_{s:05d}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, shard_path(parts, s))
    h5io.fsync_dir(parts)


def actor_factory(ray, job, counter, cpus_per_actor: float = 1.0, **options: Any) -> Callable[[], Any]:
    """A function that starts one ShardActor. Ray does not restart them: the driver replaces a dead
    one and requeues its shards (a restarted actor would need its arguments kept in the store)."""
    cls = ray.remote(num_cpus=cpus_per_actor, **options)(ShardActor)
    lp = max(1, int(round(cpus_per_actor)))
    return lambda: cls.remote(job, counter, lp)


def run_actors(job, make_colons: Callable[[], tuple], todo: Sequence[int], workers: int, n_todo: int,
               progress: bool, on_shard: Callable[[int], None], times: dict) -> None:
    """Render the shards ``todo`` with ``workers`` actors on the connected cluster; ``on_shard(s)``
    is called in this process as each shard file appears (the interface of the local pool)."""
    from tqdm import tqdm


    ray = import_ray()
    counter = ray.remote(num_cpus=0)(FrameCounter).remote()
    new_actor = actor_factory(ray, job, counter)
    actors = [new_actor() for _ in range(workers)]  # they start (imports) while the meshes are built
    replaced = 0
    t0 = time.perf_counter()
    colons = ray.put(make_colons())
    times["setup_s"] = time.perf_counter() - t0
    bar = tqdm(total=n_todo, unit="frame", disable=not progress, desc=f"render (ray, {workers} actors)",
               smoothing=0.1, mininterval=0.5)
    queue, pending = list(todo)[::-1], {}
    load = {k: 0 for k in range(len(actors))}
    try:
        while queue or pending:
            interrupt.check()
            for k in sorted(load, key=load.get):
                while queue and load[k] < IN_FLIGHT:
                    s = queue.pop()
                    pending[actors[k].render.remote(s, colons)] = (s, k, actors[k])
                    load[k] += 1
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            bar.update(ray.get(counter.value.remote()) - bar.n)
            for ref in ready:
                s, k, actor = pending.pop(ref)
                load[k] -= 1
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as e:  # its process or node died: redo the shard
                    queue.append(s)
                    if actors[k] is actor:
                        replaced += 1
                        if replaced > 2 * workers:
                            raise RenderBackendError(f"Ray render actors keep dying ({replaced} so far; last: "
                                                     f"{str(e).splitlines()[0]}); see the Ray logs") from None
                        log.warning("render actor %d died; starting another and redoing shard %d", k, s)
                        actors[k] = new_actor()
                    continue
                if result is not None and result[0] == "error":
                    raise shard.rebuild_error(*result[1:])
                if result is not None:
                    _write_shard_bytes(Path(job.parts), s, result[1])
                on_shard(s)
        bar.update(n_todo - bar.n)
    finally:
        bar.close()
        for a in actors:  # also ends their pending shards, whose .tmp files a resume deletes
            ray.kill(a)
        ray.kill(counter)
