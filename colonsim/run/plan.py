"""Dataset size planning (``colonsim plan``): storage, shards and render time of an N-frame dataset,
from a short calibration run measured here (and on each node of a Ray cluster, when given).

The calibration renders a few frames of the real config through the same code path as a render
worker (:func:`colonsim.run.shard.render_shard_file`: render, compress, write, sync, rename) after
one warm-up frame, so the rate is a worker's steady rate: start-up (meshes, GL context, shader
compilation) is paid once per worker, and is reported apart. It also times the driver's chunk copy
of that shard into the final file (:class:`colonsim.data.shards.ShardMerger`), which runs alongside
the workers and bounds the rate one output file can take.

Assumptions, stated in the result: K workers of one node render K times as fast as one (true while
K is at most the node's cores and, on a GPU node, while the GPU is not saturated; check with
``benchmarks/render_throughput.py`` or ``benchmarks/ray_throughput.py``); bytes per frame of the
calibration frames hold for the dataset (the compressed size varies a few percent with content).
"""
from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from colonsim.data.shards import ShardMerger
from colonsim.errors import InputError
from colonsim.run import generate, shard


def _data_bytes(path: Path) -> int:
    """Bytes that a file's datasets hold (compressed chunks), without the file's fixed overhead
    (attributes with the config, the b-tree and header of every dataset): what each frame adds. A
    calibration shard holds few frames, so the whole file's size would overstate the per-frame cost."""
    import h5py

    sizes = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: sizes.append(obj.id.get_storage_size()) if isinstance(obj, h5py.Dataset) else None)
    return int(sum(sizes))


def measure_worker(cfg, *, n_frames: int, calibration_frames: int, seed: int = 0,
                   mesh: str | Path = shard.PROCEDURAL, lp_threads: int | None = None) -> dict[str, Any]:
    """One render worker's rates on this machine. Returns fps (frames/s, steady), bytes_per_frame
    (compressed, in the shard file), startup_s (meshes, GL, first frame) and merge_s_per_frame."""
    if lp_threads and "LP_NUM_THREADS" not in os.environ:
        os.environ["LP_NUM_THREADS"] = str(lp_threads)  # as the render pool gives each worker
    k = calibration_frames
    source = shard.mesh_source(cfg, mesh, seed)
    attrs = generate.file_attrs(cfg, seed, source)
    with tempfile.TemporaryDirectory(prefix="colonsim-plan-") as d:
        t0 = time.perf_counter()
        job = shard.Job(cfg=cfg, seed=seed, n_frames=max(n_frames, 2 * k), shard_frames=k, parts=d, attrs=attrs)
        renderer = shard.build_renderer(job, shard.load_colons(cfg, source))
        renderer.render(0, seed)  # warm-up: shader compilation, texture upload
        startup_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        shard_file = shard.render_shard_file(job, renderer, 1, d, lambda: None)  # frames k .. 2k-1
        render_s = time.perf_counter() - t1
        nbytes = _data_bytes(shard_file)
        merger = ShardMerger(Path(d), Path(d) / "merged.h5", 2 * k, k, attrs)
        merger.add(1)  # creates the file: once per dataset, so not timed
        t2 = time.perf_counter()
        merger.add(1)
        merge_s = time.perf_counter() - t2
        merger.abort()
    return {"fps": k / render_s, "bytes_per_frame": nbytes / k, "startup_s": startup_s,
            "merge_s_per_frame": merge_s / k, "calibration_frames": k}


def _probe_cluster(cfg, n_frames: int, calibration_frames: int, seed: int, mesh, address: str | None) -> list[dict]:
    """:func:`measure_worker` run once on every node of the Ray cluster (one actor pinned to each)."""
    from colonsim.run import raybackend

    ray = raybackend.import_ray()
    raybackend.connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
    probe = ray.remote(num_cpus=1)(measure_worker)
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
        cfg, n_frames=n_frames, calibration_frames=calibration_frames, seed=seed, mesh=mesh, lp_threads=1)
        for n in nodes]
    out = []
    for n, r in zip(nodes, ray.get(refs)):
        out.append({"node": n.get("NodeManagerAddress", n["NodeID"][:8]), "cpus": int(n["Resources"]["CPU"]),
                    "gpus": int(n["Resources"].get("GPU", 0)), **r})
    return out


def plan_dataset(cfg, n_frames: int, *, workers: int | None = None, calibration_frames: int = 8, seed: int = 0,
                 mesh: str | Path = shard.PROCEDURAL, address: str | None = None,
                 use_ray: bool = False) -> dict[str, Any]:
    """Storage, shard count and render time of ``n_frames`` frames of ``cfg`` (see the module doc).

    Args:
        workers: render processes per node (default: the node's CPU count).
        calibration_frames: frames timed per probe, after one warm-up frame.
        address / use_ray: probe every node of this Ray cluster (``use_ray`` with no address: the
            running one, or a new local one) instead of this machine.
    Returns a dict (all sizes in bytes, times in seconds or hours) with the per-node probes.
    """
    if n_frames < 1:
        raise InputError(f"--frames must be at least 1, got {n_frames}")
    if calibration_frames < 1:
        raise InputError(f"--calibration-frames must be at least 1, got {calibration_frames}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if use_ray or address:
        nodes = _probe_cluster(cfg, n_frames, calibration_frames, seed, mesh, address)
    else:
        cpus = os.cpu_count() or 1
        k = workers or cpus
        r = measure_worker(cfg, n_frames=n_frames, calibration_frames=calibration_frames, seed=seed, mesh=mesh,
                           lp_threads=max(1, cpus // k))
        nodes = [{"node": platform.node(), "cpus": cpus, "gpus": 0, **r}]
    for n in nodes:
        n["workers"] = workers or n["cpus"]
        n["node_fps"] = n["fps"] * n["workers"]
    cluster_fps = sum(n["node_fps"] for n in nodes)
    bytes_per_frame = sum(n["bytes_per_frame"] for n in nodes) / len(nodes)
    merge_s = max(n["merge_s_per_frame"] for n in nodes)
    storage = bytes_per_frame * n_frames
    shard_frames = cfg.output.shard_frames
    render_s = n_frames / cluster_fps
    return {
        "frames": n_frames, "size_px": cfg.output.size_px, "compression": cfg.output.compression,
        "bytes_per_frame": round(bytes_per_frame, 1), "storage_bytes": round(storage),
        # the shards and the merged file coexist until the merge ends
        "peak_storage_bytes": round(2 * storage),
        "shard_frames": shard_frames, "shards": math.ceil(n_frames / shard_frames),
        "nodes": nodes, "cluster_fps": cluster_fps, "render_hours": render_s / 3600,
        "node_hours": render_s * len(nodes) / 3600,
        "merge_hours": n_frames * merge_s / 3600,
        "max_fps_per_output_file": 1.0 / merge_s if merge_s > 0 else float("inf"),
        "startup_s_per_worker": max(n["startup_s"] for n in nodes),
        "assumes": "linear scaling over the workers of a node; calibration frames' compressed size",
    }


def describe(p: dict[str, Any]) -> str:
    """The one-line summary of a plan."""
    nodes = p["nodes"]
    rate = " + ".join(f"{n['workers']} x {n['fps']:.2f}" for n in nodes)
    return (f"{p['frames']} frames of {p['size_px']}x{p['size_px']}: {_size(p['storage_bytes'])} "
            f"({p['bytes_per_frame'] / 1e3:.1f} kB/frame, peak {_size(p['peak_storage_bytes'])} while merging), "
            f"{p['shards']} shards of {p['shard_frames']}; {rate} frames/s = {p['cluster_fps']:.1f} frames/s on "
            f"{len(nodes)} node(s): {p['render_hours']:.1f} h, {p['node_hours']:.1f} node-hours; "
            f"one output file merges at most {p['max_fps_per_output_file']:.0f} frames/s")


def _size(n: float) -> str:
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n / 1e3:.1f} kB"
