"""End-to-end ``colonsim render`` into HDF5 beside a bare render loop, for K = 1 and 2 workers.

End-to-end: the ``colonsim render`` command in a subprocess (256x256, ``realistic`` style, a
procedural colon of 100k triangles): frames / wall time of the whole process (interpreter start,
imports, config, meshes, worker start-up, rendering, sensor model, compression, shard files,
merge). The command's own timing, which starts after its imports and config, is printed beside it.

Bare: K spawned processes that each build the same renderer (same mesh, camera, shaders and render
size) and then only rasterize and read back the frames' camera views in a loop, discarding them: no
lens remap, no sensor model, no HDF5. Its frames/s is counted from the first to the last frame of
the timed loop (start-up excluded), so the ratio end-to-end / bare charges the pipeline for
everything it adds, start-up included.

Frame loop: the same K processes calling ``FrameRenderer.render`` (remap and sensor model included)
and discarding the frames. end-to-end / frame loop is what generation itself costs (HDF5 writing
and compression, shards, merge, worker start-up); frame loop / bare is what the optics and sensor
model cost.

Per frame and start-up: a second, shorter end-to-end run (``--short-frames``) gives the time a frame
adds to a run (the slope of run time against frame count: rendering, sensor model, HDF5 and merge)
and the fixed start-up (the intercept: interpreter, imports, meshes, worker and GL start-up), which
a long run spreads over its frames. The bare loop's rate leaves its own start-up out, so the
per-frame rate is the like-for-like comparison with it; the whole-process rate is what a run of
``--frames`` frames gives.

Repeats (``--repeats R``): this machine's speed drifts by 10-20% from minute to minute, so each
measurement is made R times, interleaved (bare, frame loop, short run, long run, then again), and
each line gives every value and, in brackets, the median; a ratio is taken within each round (so
that both of its terms saw the same moment of the machine) and its median is printed.

Prints lines per K and the ratios. Usage:
    python benchmarks/render_throughput.py [--frames 1000] [--short-frames 200] [--bare-frames 300]
                                           [--workers 1 2] [--size 256] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STYLE = "realistic"
SEED = 0


def _overrides(size: int) -> list[str]:
    return [f"output.size_px={size}", "anatomy.triangles=100000"]


def _bare_worker(size: int, n: int, first: int, step: int, lp_threads: int | None,
                 full: bool, barrier=None) -> tuple[int, float, float]:
    """Render frames first, first+step, ...: n of them, views only (or whole frames if ``full``);
    returns (n, t_start, t_end). With a barrier, the timed loops of all workers start together:
    their start-up (meshes, context, shaders) takes seconds and differs between workers, which on
    a fast GPU would otherwise weigh more than the loop itself."""
    if lp_threads and "LP_NUM_THREADS" not in os.environ:
        os.environ["LP_NUM_THREADS"] = str(lp_threads)
    import numpy as np

    from colonsim.render import light as lightmod
    from colonsim.render import tissue as tissuemod
    from colonsim.render.scene import FrameRenderer
    from colonsim.render.trajectory import pose_for_frame
    from colonsim.run.shard import load_colons, mesh_source
    from colonsim.simconfig import load_sim_config

    cfg = load_sim_config(STYLE, None, _overrides(size))
    colons = load_colons(cfg, mesh_source(cfg, "procedural", SEED))
    r = FrameRenderer(cfg, colons)
    jobs = []
    for k in range(min(n, 64)):  # a cycle of real frame poses and their uniforms
        i = first + k * step
        rng = np.random.default_rng(i)
        pose, _ = pose_for_frame(colons[i % len(colons)], cfg.trajectory, SEED, i)
        u = r._uniforms(np.asarray(pose, np.float64), tissuemod.sample_params(cfg.tissue, rng),
                        lightmod.sample_params(cfg.light, rng))
        jobs.append((i % len(colons), np.asarray(pose, np.float64), u))
    view_poses = []
    for mesh_id, pose, u in jobs:
        views = []
        for view in r.remap.views:
            vpose = pose.copy()
            vpose[:3, :3] = pose[:3, :3] @ view.rotation
            views.append((view.size_px, vpose))
        view_poses.append((mesh_id, views, u))

    def one(k):
        if full:
            r.render(first + k * step, SEED)
            return
        mesh_id, views, u = view_poses[k % len(view_poses)]
        for j, mesh in enumerate(r.meshes):
            mesh.is_visible = j == mesh_id
        for s, vpose in views:
            r.scene.set_pose(r.camera_node, vpose)
            u["u_cam_fwd"] = (-vpose[:3, 2]).astype(np.float32)
            r.gl.render(r.scene, s, s, u)

    for k in range(3):  # warm-up: shader compile, texture upload
        one(k)
    if barrier is not None:
        barrier.wait()
    t0 = time.time()
    for k in range(n):
        one(k)
    return n, t0, time.time()


def bare(size: int, workers: int, n_total: int, full: bool = False) -> float:
    ctx = mp.get_context("spawn")
    lp = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    per = n_total // workers
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        barrier = manager.Barrier(workers)
        res = list(pool.map(_bare_worker, [size] * workers, [per] * workers, range(workers),
                            [workers] * workers, [lp] * workers, [full] * workers, [barrier] * workers))
    frames = sum(r[0] for r in res)
    return frames / (max(r[2] for r in res) - min(r[1] for r in res))


def end_to_end(size: int, workers: int, n: int, tmp: Path) -> dict:
    out = tmp / f"bench_k{workers}.h5"
    cmd = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--frames", str(n),
           "--workers", str(workers), "--style", STYLE, "--seed", str(SEED), "--overwrite", "--quiet",
           "--json"] + [a for o in _overrides(size) for a in ("--set", o)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    outer = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"render failed: {proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout)
    # The command's own wall_s starts after the interpreter, the imports and the config; end to
    # end here is the whole process, as a user waits for it.
    result["command_fps"], result["process_s"] = result["fps"], outer
    result["fps"] = result["frames"] / outer
    out.unlink()
    return result


def one_round(args, k: int, tmp: Path) -> dict:
    """One bare loop, frame loop, short and long end-to-end run with K workers."""
    b = bare(args.size, k, args.bare_frames)
    fl = bare(args.size, k, args.bare_frames, full=True)
    n_short = args.short_frames if args.short_frames else max(128, args.frames // 5)
    short = end_to_end(args.size, k, n_short, tmp) if 0 < n_short < args.frames else None
    e = end_to_end(args.size, k, args.frames, tmp)
    r = {"bare": b, "loop": fl, "e2e": e, "short": short}
    if short is not None:
        # T(n) = start-up + n / rate: two runs give the per-frame rate (HDF5, shards and merge
        # included) and the fixed start-up (interpreter, imports, meshes, workers, GL).
        r["rate"] = (e["frames"] - short["frames"]) / (e["process_s"] - short["process_s"])
        r["startup"] = short["process_s"] - short["frames"] / r["rate"]
    return r


def _vals(xs: list[float], fmt: str = ".1f") -> str:
    """'a / b / c [median]'."""
    return " / ".join(f"{x:{fmt}}" for x in xs) + f" [{statistics.median(xs):{fmt}}]"


def print_round(k: int, r: dict) -> None:
    """The lines of one round (see :func:`one_round`)."""
    b, fl, e, short = r["bare"], r["loop"], r["e2e"], r["short"]
    print(f"K={k}: bare {b:.1f} | frame loop {fl:.1f} | end-to-end {e['fps']:.1f} frames/s "
          f"({e['frames']} frames in {e['process_s']:.1f} s, of which the command timed {e['wall_s']:.1f} s "
          f"({e['command_fps']:.1f} frames/s): meshes {e['setup_s']:.1f} s, worker start-up "
          f"and rendering {e['render_s']:.1f} s, merge tail {e['merge_s']:.2f} s) | end-to-end/bare "
          f"{e['fps'] / b:.2f}, end-to-end/frame loop {e['fps'] / fl:.2f}, frame loop/bare {fl / b:.2f} | "
          f"{e['file_bytes'] / e['frames'] / 1e3:.0f} kB/frame", flush=True)
    if short is not None:
        print(f"K={k}: per frame, end to end {r['rate']:.1f} frames/s (runs of {short['frames']} and "
              f"{e['frames']} frames: {short['process_s']:.1f} s and {e['process_s']:.1f} s), fixed "
              f"start-up {r['startup']:.1f} s | per-frame end-to-end/bare {r['rate'] / b:.2f}; "
              f"a 20,000-frame run would average {20000 / (r['startup'] + 20000 / r['rate']):.1f} "
              "frames/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="frames of each end-to-end run")
    ap.add_argument("--short-frames", type=int, default=0,
                    help="frames of a second, shorter end-to-end run (default: a fifth of --frames, at least "
                         "128); the two give the per-frame rate and the fixed start-up (0: skip it)")
    ap.add_argument("--bare-frames", type=int, default=300, help="frames of each bare loop (all workers)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds per K; medians are printed")
    args = ap.parse_args()
    if args.repeats < 1:
        print(f"render_throughput: --repeats must be at least 1, got {args.repeats}", file=sys.stderr)
        sys.exit(2)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"GL {os.environ.get('COLONSIM_GL') or 'auto'}; {args.size}x{args.size}, style {STYLE}, 100k triangles")
    best = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.workers:
            rounds = []
            for _ in range(args.repeats):   # each round is printed as soon as it is measured
                rounds.append(one_round(args, k, Path(tmp)))
                print_round(k, rounds[-1])
            e2e = [r["e2e"]["fps"] for r in rounds]
            best = max(best, statistics.median(e2e))
            if len(rounds) > 1:
                print(f"K={k}, {len(rounds)} rounds: bare {_vals([r['bare'] for r in rounds])} | frame loop "
                      f"{_vals([r['loop'] for r in rounds])} | end-to-end {_vals(e2e)} frames/s | end-to-end/bare "
                      f"{_vals([r['e2e']['fps'] / r['bare'] for r in rounds], '.2f')}", flush=True)
                if rounds[0]["short"] is not None:
                    print(f"K={k}, {len(rounds)} rounds: per frame, end to end {_vals([r['rate'] for r in rounds])} "
                          f"frames/s | per-frame end-to-end/bare {_vals([r['rate'] / r['bare'] for r in rounds], '.2f')}"
                          f" | start-up {_vals([r['startup'] for r in rounds])} s", flush=True)
    what = "median " if args.repeats > 1 else ""
    print(f"best {what}end-to-end: {best:.1f} frames/s (goal >= 55 at 256x256; ratio goal >= 0.7)")


if __name__ == "__main__":
    from common import run

    run(main)
