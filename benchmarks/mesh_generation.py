"""Procedural colon generation time at a few triangle budgets (the default whole colon, 1,740 mm).

    python benchmarks/mesh_generation.py [--triangles 100000 500000] [--repeats 3] [--measure]

Prints one line per budget: triangles, best and median wall time of generate_colon (and of
measure_colon with --measure). Single-threaded numpy (OMP_NUM_THREADS=1 is set before import).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from colonsim.anatomy.colon import generate_colon, load_anatomy_config  # noqa: E402
from colonsim.anatomy.measure import measure_colon  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triangles", type=int, nargs="+", default=[100_000, 500_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--measure", action="store_true", help="also time measure_colon (slices every 1 mm)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="anatomy.key=value")
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}")
    for n in args.triangles:
        cfg = load_anatomy_config(overrides=[f"anatomy.triangles={n}", *args.overrides])
        best, median, colon = timed(lambda: generate_colon(cfg, seed=0), args.repeats)
        length = colon.centerline.arclength_mm()[-1]
        line = (f"generate_colon triangles={len(colon.mesh.faces):,} length_mm={length:.0f} "
                f"best_s={best:.3f} median_s={median:.3f}")
        if args.measure:
            mbest, _, _ = timed(lambda: measure_colon(colon), 1)
            line += f" measure_s={mbest:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    from common import run

    run(main)
