"""Bare render loop: K processes, each rendering the same colon from the same camera and discarding
the frames. This is the ceiling that the end-to-end ``colonsim render`` is compared against.

    python benchmarks/bare_render.py [--size 256] [--seconds 10] [--workers 1 2] [--style realistic]
                                     [--mode bare|frame] [--triangles 100000]

``bare``: the GL draw and the float read-back only (ColonSim's shader, one pinhole view at the output
size). ``frame``: ``FrameRenderer.render`` (trajectory, lens remap, sensor), without HDF5.
Prints one line per K: ``mode K=k size=s: F frames/s``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(args, barrier, out):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("LP_NUM_THREADS", "1")       # one llvmpipe thread per process
    import numpy as np

    from colonsim.anatomy.colon import generate_colon
    from colonsim.render.scene import FrameRenderer
    from colonsim.simconfig import load_sim_config

    over = [f"output.size_px={args.size}", f"anatomy.triangles={args.triangles}"]
    if args.mode == "bare":
        over += ["lens.model=pinhole", "lens.mask=none"]
    cfg = load_sim_config(args.style, overrides=over)
    colon = generate_colon(cfg.anatomy, 1000)
    fr = FrameRenderer(cfg, [colon])
    first = fr.render(0, 1)
    pose = first.pose.astype(np.float64)
    if args.mode == "bare":
        from colonsim.render import light, tissue
        rng = np.random.default_rng(0)
        uniforms = fr._uniforms(pose, tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng))
        uniforms["u_cam_fwd"] = (-pose[:3, 2]).astype(np.float32)
        fr.scene.set_pose(fr.camera_node, pose)
        step = lambda i: fr.gl.render(fr.scene, args.size, args.size, uniforms)  # noqa: E731
    else:
        step = lambda i: fr.render(i, 1)  # noqa: E731
    barrier.wait()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        step(n)
        n += 1
    out.put(n / (time.perf_counter() - t0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--style", default="realistic")
    p.add_argument("--mode", choices=("bare", "frame"), default="bare")
    p.add_argument("--triangles", type=int, default=100_000)
    args = p.parse_args()
    ctx = mp.get_context("spawn")      # a GL context does not survive fork
    for k in args.workers:
        barrier, out = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(args, barrier, out)) for _ in range(k)]
        for q in procs:
            q.start()
        rates = [out.get() for _ in procs]
        for q in procs:
            q.join()
        print(f"{args.mode} K={k} size={args.size} style={args.style}: {sum(rates):.1f} frames/s", flush=True)


if __name__ == "__main__":
    from common import run

    run(main)
