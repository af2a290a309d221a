"""Render a dataset with K worker processes into one HDF5 file, resumable after a crash.

How K workers make ONE file, and why. The N frames are cut into shards of consecutive frames. Each
worker process owns one GL context (created inside the worker: the pool uses the 'spawn' start
method, because forking after a GL context exists hangs) and renders whole shards. A worker writes
its shard to ``OUT.parts/shard_NNNNN.<pid>.tmp`` (same layout as the final file, compressed in the
worker, so compression runs in parallel and no frame is pickled between processes), syncs it, and
renames it atomically to ``shard_NNNNN.h5``. A shard file therefore either does not exist or is
complete: a SIGKILL at any moment leaves at worst a ``.tmp`` file, which resume deletes. As each
shard appears, the parent copies it into ``OUT.tmp`` as compressed chunk bytes (no decode, no
re-encode: about 1 ms a frame at 256x256); when all are in, it syncs ``OUT.tmp`` and renames it to
``OUT``. A kill at any point leaves the shards in place, so resume rebuilds ``OUT.tmp`` from them.
The user gets one self-contained file that plain h5py reads, with no virtual-dataset source paths
to keep valid; the price is one copy of the compressed data, made while the workers render.

With ``backend="ray"`` the shards are rendered by Ray actors, through the same shard function and
with the same protocol (:mod:`colonsim.run.raybackend`).

``OUT.parts/manifest.json`` records the config, seed, frame count, mesh source and shard size; a
resume with different ones is refused (the shard layout, the manifest checks and the merge live in
:mod:`colonsim.data.shards`). Frame i is ``FrameRenderer.render(i, seed)``, a pure function
of (config, seed, i), so the shard layout and the worker count never change a frame.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Sequence

from colonsim.config import check_seed, to_json
from colonsim.data import h5io, outputs, shards
from colonsim.data.shards import MANIFEST, ShardMerger, parts_dir, shard_range
from colonsim.errors import ColonSimError, InputError
from colonsim.run import interrupt
from colonsim.run.shard import (
    PROCEDURAL,
    Job,
    build_renderer,
    load_colons,
    mesh_source,
    rebuild_error,
    render_shard_file,
)

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
MIN_COMPRESSION = 0.25        # a frame's compressed bytes are at least this fraction of its raw bytes
SMALL_BYTES_PER_FRAME = 300   # pose, intrinsics, params, done and chunk index, per frame


# ----------------------------------------------------------------------------- workers

_WORKER: dict = {}


def _init_worker(job: Job, counter, lp_threads: int | None, parent_pid: int) -> None:
    # Ctrl-C is the parent's to handle (it goes to the whole process group): the parent stops the
    # workers itself, with no traceback from each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit.register(_end_worker)   # registered first, so it runs last
    if lp_threads and "LP_NUM_THREADS" not in os.environ:
        os.environ["LP_NUM_THREADS"] = str(lp_threads)  # llvmpipe threads: one core per worker
    if lp_threads:
        import cv2
        cv2.setNumThreads(lp_threads)   # the sensor model's filters: no more threads than cores
    _WORKER.update(job=job, counter=counter, renderer=None, overlap=not lp_threads)
    # The parent's pid comes as an argument: os.getppid() here would already be 1 had the parent
    # been killed while this worker was starting.
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    # The heavy imports (trimesh, scipy, PyOpenGL, pyrender: about 1.5 s) now, while the parent
    # builds the meshes, rather than after the first task arrives. Nothing here creates a GL
    # context. A failure is left to the first task, which reports it as one clean error.
    try:
        from colonsim.render.backend import import_pyrender
        import_pyrender()
        import trimesh  # noqa: F401

        from colonsim.render import scene, sensor, trajectory  # noqa: F401
        sensor.warm_up()   # numba's first call (about 0.5 s), also before the first task
        trajectory.warm_up()
    except Exception:  # noqa: BLE001
        pass


def _end_worker() -> None:
    """A worker's last exit handler (after the GL context's): end the process here. The teardown
    of its interpreter (the finalizers of numba, llvmlite, pyrender and the rest) took 0.6 s after
    the last shard, with the parent waiting for it; by now every shard file is closed and every
    result sent."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def _exit_with_parent(ppid: int) -> None:
    """A worker whose parent was killed would wait for tasks forever: end it. A resumed run redoes
    the shard it was rendering (its temporary file has its own name, so the two never collide)."""
    while os.getppid() == ppid:
        time.sleep(0.2)
    os._exit(1)


def _render_shard(s: int, payload: str) -> tuple[str, str] | None:
    """Render shard ``s`` into its file; returns None, or (error class name, message) for bad input
    (ColonSimError subclasses do not all survive pickling, so they travel as text). ``payload`` is
    the file of what the parent built once for all workers, read by a worker's first task (so that
    workers start while the parent builds it): the meshes, the pose sampler's geometry of each
    (:func:`colonsim.render.trajectory.geometry`) and the renderer's GL-free mesh parts
    (:func:`colonsim.render.scene.prepare`, or None)."""
    try:
        if _WORKER["renderer"] is None:
            with open(payload, "rb") as fh:
                colons, geoms, prepared = pickle.load(fh)
            from colonsim.render import trajectory
            for colon, geom in zip(colons, geoms):
                trajectory.prime(colon, geom)
            _WORKER["colons"], _WORKER["prepared"] = colons, prepared
        _render_shard_file(s, _WORKER["colons"], _WORKER["prepared"])
    except ColonSimError as e:
        return type(e).__name__, str(e)
    return None


def _render_shard_file(s: int, colons: tuple, prepared: list | None = None) -> None:
    job: Job = _WORKER["job"]
    if _WORKER["renderer"] is None:
        _WORKER["renderer"] = build_renderer(job, colons, prepared)

    def count() -> None:
        with _WORKER["counter"].get_lock():
            _WORKER["counter"].value += 1
    render_shard_file(job, _WORKER["renderer"], s, job.parts, count, overlap=_WORKER["overlap"])


# ----------------------------------------------------------------------------- the whole run


def render_dataset(cfg, out: str | Path, n_frames: int, *, seed: int = 0, workers: int | None = 1,
                   mesh: str | Path = PROCEDURAL, resume: bool = False, overwrite: bool = False,
                   progress: bool = True, renderer: str = Job.renderer, backend: str = "local",
                   address: str | None = None) -> dict[str, Any]:
    """Render frames 0..n_frames-1 of (cfg, seed) into the HDF5 file ``out`` (see the module doc).

    Args:
        cfg: the SimConfig. mesh: a mesh file, or "procedural" (cfg.output.n_meshes colons).
        workers: number of render processes (Ray actors with ``backend="ray"``), each with its own
            GL context; None: 1 locally, one per CPU of the Ray cluster.
        resume: finish an interrupted run of the same settings; overwrite: start afresh.
        renderer: "module:class" of the frame renderer, built in each worker as cls(cfg, colons).
        backend: "local" (spawned processes) or "ray" (actors on the Ray cluster at ``address``,
            default: the running one, or a new local one; see :mod:`colonsim.run.raybackend`).
    Returns a dict: path, frames, rendered (frames rendered by this call), size_px, file_bytes,
    wall_s, fps (rendered frames per second of wall time), workers, backend, and the wall time's parts:
    setup_s (meshes), render_s (worker start-up and rendering), merge_s (joining the shards).
    """
    t0 = time.perf_counter()
    interrupt.check()   # a Ctrl-C swallowed during the imports (some libraries catch everything)
    if n_frames < 1:
        raise InputError(f"--frames must be at least 1, got {n_frames}")
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise InputError("--address needs --backend ray")
    if backend == "ray":  # connect first: a missing ray or a bad address leaves nothing behind
        from colonsim.run import raybackend
        cluster_cpus = raybackend.connect(address)
        workers = cluster_cpus if workers is None else workers
    workers = 1 if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    check_seed(seed)
    if cfg.output.flow and cfg.trajectory.sequence_length < 2:
        log.warning("output.flow with trajectory.sequence_length 1: no frame has a next frame in its "
                    "sequence, so flow_valid is 0 everywhere; render sequences with --sequence-length L")
    out = outputs.check_target(out, overwrite=True)   # empty, in a missing folder, or a folder
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    with outputs.lock(out, what="--out"):   # a second render into the same file is refused
        return _render_locked(cfg, out, n_frames, seed, workers, mesh, resume, overwrite, progress,
                              renderer, backend, t0)


def optional_bytes_per_px(cfg) -> int:
    """Raw bytes a pixel of the optional outputs takes: normals 6 (3 x float16), flow 8 (2 x float32)
    with occlusion and flow_valid 1 each."""
    return (6 if getattr(cfg.output, "normals", False) else 0) + (10 if getattr(cfg.output, "flow", False) else 0)


def check_disk_space(cfg, n_frames: int, folder: Path) -> None:
    """Refuse a render whose output cannot fit on the disk of ``folder``. The estimate is a lower
    bound: a frame compresses to no less than a quarter of its raw bytes (rgb, depth, mask, and the
    optional outputs that are on, :func:`optional_bytes_per_px`; 8x8 to
    256x256 frames of the shipped styles took 0.6-1.6 times), and the shards and the merged file
    coexist until the merge ends, so the peak is twice the file."""
    px = cfg.output.size_px ** 2
    raw = px * (3 + (2 if cfg.output.depth_dtype == "float16" else 4) + 1 + optional_bytes_per_px(cfg))
    need = 2 * n_frames * (raw * MIN_COMPRESSION + SMALL_BYTES_PER_FRAME)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise InputError(f"--frames {n_frames} of {cfg.output.size_px}x{cfg.output.size_px} needs at least "
                         f"{_bytes(need)} on {folder} ({_bytes(need / 2 / n_frames)} a frame at least, twice "
                         f"while the shards are merged) but {_bytes(free)} is free; render fewer frames, "
                         "smaller ones, or onto a larger disk")


def _bytes(n: float) -> str:
    for unit, k in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n:.0f} B"


def _render_locked(cfg, out: Path, n_frames: int, seed: int, workers: int, mesh, resume: bool,
                   overwrite: bool, progress: bool, renderer: str, backend: str, t0: float) -> dict[str, Any]:
    parts = parts_dir(out)
    if (out.exists() or parts.exists()) and not (resume or overwrite):
        what = out if out.exists() else parts
        raise InputError(f"{what} exists; pass --resume to finish it or --overwrite to replace it")
    # Everything that can be checked is checked before anything is written or removed: an
    # --overwrite with bad input leaves the old file as it was (it is replaced only by the rename
    # of a complete new file, in ShardMerger.close).
    source = mesh_source(cfg, mesh, seed)
    interrupt.check()
    shard_frames = max(1, min(cfg.output.shard_frames, math.ceil(n_frames / (4 * workers))))
    manifest = shards.manifest(cfg, seed, n_frames, source, shard_frames)
    if out.exists() and not overwrite:  # resume of a finished run: check it, clean up, render nothing
        shards.check_final(out, manifest)
        shutil.rmtree(parts, ignore_errors=True)
        return _result(out, n_frames, 0, cfg, time.perf_counter() - t0, workers, {}, backend)
    fresh = overwrite or not parts.exists()
    if fresh:
        check_disk_space(cfg, n_frames, out.parent)
    if overwrite:   # the shards of an earlier render of this file, which --overwrite starts afresh
        shutil.rmtree(parts, ignore_errors=True)
    for stale in parts.parent.glob(f"{parts.name}.*.tmp"):  # left by a kill during the step below
        shutil.rmtree(stale, ignore_errors=True)
    if fresh:  # the folder appears with its manifest, or not at all
        staging = parts.with_name(f"{parts.name}.{os.getpid()}.tmp")
        staging.mkdir()
        shards.write_json_atomic(staging / MANIFEST, manifest)
        os.replace(staging, parts)
        h5io.fsync_dir(parts.parent)
    else:
        old = shards.read_manifest(parts)
        shards.check_same(old, manifest, out)
        shard_frames = int(old["shard_frames"])
    n_shards = math.ceil(n_frames / shard_frames)
    if workers > n_shards:
        log.warning("--workers %d capped at %d, the number of shards", workers, n_shards)
        workers = n_shards
    done = shards.done_shards(parts, n_shards, seed)   # one scan of the folder
    todo = [s for s in range(n_shards) if s not in done]
    if not fresh:
        log.info("resuming %s: %d of %d shards were done", out, n_shards - len(todo), n_shards)
    job = Job(cfg=cfg, seed=seed, n_frames=n_frames, shard_frames=shard_frames, parts=str(parts),
              attrs=file_attrs(cfg, seed, source), renderer=renderer)
    n_todo = sum(len(shard_range(s, shard_frames, n_frames)) for s in todo)
    times = {"setup_s": 0.0, "render_s": 0.0}
    merger = ShardMerger(parts, out, n_frames, shard_frames, job.attrs)
    try:
        if todo:
            if backend == "local":
                run = _run_pool
            else:
                from colonsim.run import raybackend
                run = raybackend.run_actors
            run(job, lambda: load_colons(cfg, source), todo, min(workers, len(todo)), n_todo,
                progress, merger.add, times)
            times["render_s"] = time.perf_counter() - t0 - times["setup_s"]
        merger.close()
    except BaseException as e:
        merger.abort()
        if isinstance(e, ColonSimError) and fresh and not any(parts.glob("shard_*.h5")):
            shutil.rmtree(parts, ignore_errors=True)  # bad input: leave nothing that needs --overwrite
        raise
    shutil.rmtree(parts, ignore_errors=True)
    return _result(out, n_frames, n_todo, cfg, time.perf_counter() - t0, workers, times, backend)


def file_attrs(cfg, seed: int, source: dict) -> dict:
    o = cfg.output
    return dict(depth_dtype=o.depth_dtype, compression=o.compression, compression_level=o.compression_level,
                checksum=o.checksum, extras=o.extra_outputs(),
                config_json=to_json(cfg), camera_json=to_json(cfg.lens), seed=seed,
                mesh_json=json.dumps(source, sort_keys=True))


def _run_pool(job: Job, make_colons: Callable[[], tuple], todo: Sequence[int], workers: int, n_todo: int,
              progress: bool, on_shard: Callable[[int], None], times: dict) -> None:
    """Render the shards ``todo`` with ``workers`` spawned processes; ``on_shard(s)`` is called in
    this process as each shard file appears. The workers start (imports, GL) while this process
    builds the meshes; at most two shards per worker are in flight."""
    from tqdm import tqdm

    ctx = mp.get_context("spawn")  # never fork: a GL context or h5py handle must not be copied
    counter = ctx.Value("q", 0)
    lp_threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    payload = Path(job.parts) / f"meshes.{os.getpid()}.tmp"   # a resume deletes one left by a kill
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(job, counter, lp_threads, os.getpid()))
    bar = None
    pending: set = set()
    try:
        with interrupt.children_ignore_sigint():
            for _ in range(workers):
                pool.submit(int, 0)  # starts the workers now (the pool spawns them on demand)
        t0 = time.perf_counter()
        interrupt.check()
        colons = make_colons()
        interrupt.check()
        from colonsim.render import trajectory
        geoms = tuple(trajectory.geometry(c) for c in colons)   # while the workers import
        interrupt.check()
        prepared = None
        if job.renderer == Job.renderer:   # the renderer's GL-free parts, once for every worker
            from colonsim.render import scene
            prepared = scene.prepare(job.cfg, colons)
        times["setup_s"] = time.perf_counter() - t0
        interrupt.check()
        # The meshes reach the workers through a file, read once by each, and a task is a shard
        # number and that file's name: a few hundred bytes. A task of the meshes themselves (20 MB)
        # once blocked the pool's feeder thread, writing into the pipe of a worker that had died,
        # and with it the exit after a Ctrl-C.
        with open(payload, "wb") as fh:
            pickle.dump((tuple(_without_caches(c) for c in colons), geoms, prepared), fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        del colons, geoms, prepared
        queue = list(todo)[::-1]
        shard_of = {}
        # The bar appears with the first rendered frame: bad input (a mesh that cannot be read, or
        # that the camera does not fit inside) fails before it, as one clean line on stderr.
        while pending or queue:
            interrupt.check()
            while queue and len(pending) < 2 * workers:
                s = queue.pop()
                fut = pool.submit(_render_shard, s, str(payload))
                if not shard_of:
                    log.debug("first shard submitted, %.2f s after the pool started", time.perf_counter() - t0)
                shard_of[fut] = s
                pending.add(fut)
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if bar is None and counter.value > 0:
                bar = tqdm(total=n_todo, unit="frame", disable=not progress, desc="render",
                           smoothing=0.1, mininterval=0.5)
            if bar is not None:
                bar.update(counter.value - bar.n)
            for fut in finished:
                err = fut.result()
                if err is not None:
                    raise rebuild_error(*err)
                on_shard(shard_of[fut])
    except BaseException:
        # Ctrl-C or bad input: stop the workers now rather than after their shards (they ignore
        # SIGINT, so that a terminal's Ctrl-C to the whole process group reaches only this process
        # and prints no worker traceback). A shard cut short is a .tmp file, which resume deletes.
        for fut in pending:
            fut.cancel()
        interrupt.stop_pool(pool)
        raise
    finally:
        if bar is not None:
            bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
        payload.unlink(missing_ok=True)


def _without_caches(colon):
    """The colon with a mesh of the same vertices and faces but none of the properties trimesh has
    cached (triangles, normals, angles: 15 of the 20 MB that a 100k-triangle colon pickles to); a
    worker that needs them computes them again."""
    mesh = colon.mesh
    if not hasattr(mesh, "_cache") or not hasattr(mesh, "copy"):
        return colon
    light = mesh.copy(include_cache=False)
    return dataclasses.replace(colon, mesh=light) if dataclasses.is_dataclass(colon) else colon


def _result(out: Path, n_frames: int, rendered: int, cfg, wall_s: float, workers: int,
            times: dict, backend: str) -> dict[str, Any]:
    setup_s, render_s = times.get("setup_s", 0.0), times.get("render_s", 0.0)
    return {"path": str(out), "frames": n_frames, "rendered": rendered, "size_px": cfg.output.size_px,
            "file_bytes": out.stat().st_size, "wall_s": round(wall_s, 3),
            "fps": round(rendered / wall_s, 2) if wall_s > 0 else 0.0, "workers": workers, "backend": backend,
            "setup_s": round(setup_s, 3), "render_s": round(render_s, 3),
            "merge_s": round(max(wall_s - setup_s - render_s, 0.0), 3) if rendered else 0.0}
