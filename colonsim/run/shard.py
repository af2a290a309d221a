"""The unit of work that every render backend shares: a job, its meshes, and one shard rendered
into its own file. The local pool (:mod:`colonsim.run.generate`) and the Ray actors
(:mod:`colonsim.run.raybackend`) both render through :func:`render_shard_file`, so a shard's bytes
do not depend on the backend.
"""
from __future__ import annotations

import hashlib
import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from colonsim import errors
from colonsim.anatomy.colon import generate_colon
from colonsim.anatomy.meshio import load_colon
from colonsim.data import h5io, schema
from colonsim.data.shards import shard_path, shard_range
from colonsim.errors import ColonSimError, ConfigError, InputError

PROCEDURAL = "procedural"
SYNC_FRAMES = 16   # a render worker starts writing its shard to disk every this many frames


@dataclass(frozen=True)
class Job:
    """Everything a worker needs but the meshes; pickled once per worker."""
    cfg: Any                 # SimConfig
    seed: int                # dataset seed
    n_frames: int
    shard_frames: int
    parts: str               # the shard folder
    attrs: dict              # keyword arguments of h5io.create shared by every shard and the final file
    renderer: str = "colonsim.render.scene:FrameRenderer"  # "module:class" built in each worker as cls(cfg, colons)




def mesh_source(cfg, mesh: str | Path, seed: int) -> dict:
    """A JSON-able description of the meshes, recorded in the file and checked on resume."""
    if str(mesh) == PROCEDURAL:
        seeds = [seed + cfg.output.mesh_seed_offset + k for k in range(cfg.output.n_meshes)]
        return {"kind": PROCEDURAL, "seeds": seeds}
    p = Path(mesh)
    if not p.is_file():
        raise InputError(f"mesh file not found: {p} (give a mesh file or 'procedural')")
    return {"kind": "file", "path": str(p.resolve()), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def load_colons(cfg, source: dict) -> tuple:
    if source["kind"] == PROCEDURAL:
        return tuple(generate_colon(cfg.anatomy, s) for s in source["seeds"])
    return (load_colon(source["path"]),)


def build_renderer(job: Job, colons: tuple, prepared: list | None = None):
    """The frame renderer named by ``job.renderer``, with its own GL context (one per process);
    ``prepared`` goes to a renderer that accepts it (see :func:`colonsim.render.scene.prepare`)."""
    module, name = job.renderer.split(":")
    cls = getattr(importlib.import_module(module), name)
    if prepared is not None and getattr(cls, "accepts_prepared", False):
        return cls(job.cfg, colons, prepared=prepared)
    return cls(job.cfg, colons)


def render_shard_file(job: Job, renderer, s: int, folder: str | Path, on_frame: Callable[[], None],
                      overlap: bool = False) -> Path:
    """Render shard ``s`` into ``folder/shard_NNNNN.h5`` through a temporary file of this process
    that is synced and atomically renamed (so the shard either exists complete or not at all);
    ``on_frame()`` is called after each frame. Every backend (local pool, Ray actors) renders
    through this function, so a shard's bytes do not depend on the backend.

    The optional outputs of ``output.normals``, ``output.flow`` and ``output.polyp_mask`` are made here, after the frame
    (its rgb and depth are the same bytes with or without them): normals by a second render pass
    in the GL thread (:func:`colonsim.render.flow.render_normals`), the polyp mask likewise
    (:meth:`colonsim.render.scene.FrameRenderer.draw_polyp_mask`); flow by holding each frame back
    until the next one is rendered (:func:`colonsim.render.flow.flow_to_next`). The last frame of
    a shard whose sequence goes on renders that next frame once more for its depth and pose."""
    frames = shard_range(s, job.shard_frames, job.n_frames)
    tmp = Path(folder) / f"shard_{s:05d}.{os.getpid()}.tmp"
    writer = sync = None
    extras = job.cfg.output.extra_outputs()
    want_normals, want_flow = job.cfg.output.normals, job.cfg.output.flow
    want_polyps = getattr(job.cfg.output, "polyp_mask", False)
    seq_len = job.cfg.trajectory.sequence_length
    held: list = []   # with flow: the frame waiting for its next one, (j, i, frame, extras)
    geo = None
    if extras and not hasattr(renderer, "remap"):
        raise ConfigError("output", "output.normals, output.flow and output.polyp_mask need the built-in renderer, "
                          f"not {job.renderer}")
    if want_normals or want_flow:
        from colonsim.render import flow as flowmod

    def same_sequence(i: int) -> bool:   # frame i + 1 exists and continues frame i's sequence
        return i + 1 < job.n_frames and (i + 1) // seq_len == i // seq_len

    def store(j: int, frame, extra: dict) -> None:
        nonlocal writer, sync
        if writer is None:
            writer = h5io.FrameWriter(h5io.create(
                tmp, len(frames), frame.rgb.shape[0], frame.rgb.shape[1], frame_offset=frames.start,
                param_dtypes=h5io.param_dtypes(frame.params), chunk_cache=False, **job.attrs))
            sync = h5io.BackgroundSync(writer.f)
        writer.write(j, frame, extra)
        if j % SYNC_FRAMES == SYNC_FRAMES - 1:
            sync.kick()   # so that the shard's closing fsync does not stall this worker
        on_frame()

    def with_flow(frame, extra: dict, nxt) -> dict:
        nonlocal geo
        if geo is None:
            geo = flowmod.FlowGeometry.of(renderer.lens)
        fl, occ, valid = flowmod.flow_to_next(geo, frame.depth, frame.pose,
                                              None if nxt is None else nxt.depth, None if nxt is None else nxt.pose)
        return {**extra, schema.FLOW: fl, schema.OCCLUSION: occ, schema.FLOW_VALID: valid}

    def write(j: int, frame, normals=None, polyps=None) -> None:
        if isinstance(normals, list):   # the views of the normals pass, drawn in the GL thread
            normals = flowmod.finish_normals(renderer, normals)
        extra = {} if normals is None else {schema.NORMALS: normals.astype(np.float16)}
        if want_polyps:   # the views of the polyp mask pass (None: a colon without polyps)
            extra[schema.POLYP_MASK] = renderer.finish_polyp_mask(polyps)
        if not want_flow:
            store(j, frame, extra)
            return
        i = frames[j]
        if held:
            hj, hi, hframe, hextra = held.pop()
            store(hj, hframe, with_flow(hframe, hextra, frame if same_sequence(hi) else None))
        held.append((j, i, frame, extra))

    def normals_of(pose, params, slot: int = 0):
        return flowmod.render_normals(renderer, pose, int(params["mesh_id"]), slot=slot) if want_normals else None

    def polyps_of(pose, params, slot: int = 0):   # the GL half of the polyp mask
        return renderer.draw_polyp_mask(pose, int(params["mesh_id"]), slot=slot) if want_polyps else None

    # With a core to spare (one local worker), frame j's remap, sensor model and write run in a
    # second thread, and frame j + 1 is drawn into the other framebuffer before frame j is read
    # back, so that the CPU rasterizer works on one frame while this thread samples and draws the
    # next (GL stays in the thread that owns the context; the heavy calls of both release the
    # GIL). With a worker per core, both cost more than they give (four busy threads on two cores:
    # 1000-frame runs with two workers took 24.3 / 24.3 / 22.4 s pipelined against 22.4 / 23.4 /
    # 22.9 s without). Frames are written in order either way.
    pipelined = overlap and hasattr(renderer, "submit")
    post = ThreadPoolExecutor(1, thread_name_prefix="colonsim-post") if pipelined else None
    try:
        inflight: list = []
        nxt = renderer.submit(frames[0], job.seed, slot=0) if pipelined and len(frames) else None
        for j, i in enumerate(frames):
            if not pipelined:
                if want_polyps:   # the mask from the colour pass's own (float64) pose, drawn after its read-back
                    pending = renderer.begin(i, job.seed, keep=False)
                    frame = renderer.finish(pending)
                    polyps = polyps_of(pending.pose, frame.params)
                else:
                    frame, polyps = renderer.render(i, job.seed), None
                write(j, frame, normals_of(frame.pose, frame.params), polyps)
                continue
            cur = nxt
            if j + 1 < len(frames):
                nxt = renderer.submit(frames[j + 1], job.seed, slot=(j + 1) % 2)
            pending = renderer.collect(cur)
            # GL in this thread, the remap in the other; from the pose as stored (float32), as in
            # the unpipelined path, so that the normals do not depend on the worker count
            normals = (flowmod.draw_normals(renderer, pending.pose.astype(np.float32), int(pending.params["mesh_id"]),
                                            slot=j % 2) if want_normals else None)
            polyps = polyps_of(pending.pose, pending.params, slot=j % 2)   # the colour pass's pose
            inflight.append(post.submit(lambda j=j, p=pending, n=normals, m=polyps: write(j, renderer.finish(p), n, m)))
            if len(inflight) > 1:
                inflight.pop(0).result()
        for fut in inflight:
            fut.result()
        if held:   # the shard's last frame: its next frame (if its sequence goes on) is in the next shard
            hj, hi, hframe, hextra = held.pop()
            nxt_frame = renderer.render(hi + 1, job.seed) if same_sequence(hi) else None
            store(hj, hframe, with_flow(hframe, hextra, nxt_frame))
        sync.wait()
        writer.close()
        writer = None
        final = shard_path(folder, s)
        os.replace(tmp, final)
        h5io.fsync_dir(folder)
        return final
    finally:
        if post is not None:
            post.shutdown(wait=True, cancel_futures=True)
        if sync is not None:
            sync.wait()
        if writer is not None:
            writer.f.close()
        tmp.unlink(missing_ok=True)


def rebuild_error(name: str, message: str) -> ColonSimError:
    cls = getattr(errors, name, ColonSimError)
    if cls is ConfigError:
        return ConfigError("", message)
    return cls(message) if isinstance(cls, type) and issubclass(cls, ColonSimError) else ColonSimError(message)
