"""CPU time of camera pose sampling (colonsim/render/trajectory.py) on a 100k-triangle procedural colon.

    python benchmarks/trajectory_speed.py [--frames 300] [--root CHECKOUT]

``--root`` imports colonsim from another checkout (to compare before/after on the same machine).
Prints one line: the geometry build (once per colon and process), then ms CPU per pose for
independent frames (sequence_length 1, every pose checked against the mesh) and for sequences of 100.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    from colonsim.anatomy.colon import generate_colon
    from colonsim.render import trajectory
    from colonsim.simconfig import load_sim_config

    cfg = load_sim_config("realistic", overrides=["anatomy.triangles=100000"])
    colon = generate_colon(cfg.anatomy, 1)
    t = time.process_time()
    trajectory.pose_for_frame(colon, cfg.trajectory, 0, 0)
    build = time.process_time() - t
    per = {}
    for length in (1, 100):
        c = dataclasses.replace(cfg.trajectory, sequence_length=length)
        t = time.process_time()
        for i in range(args.frames):
            trajectory.pose_for_frame(colon, c, 1, i)
        per[length] = (time.process_time() - t) / args.frames * 1e3
    print(f"trajectory ({len(colon.mesh.faces)} triangles): geometry + first pose {build:.2f} s CPU; "
          f"{per[1]:.2f} ms CPU/pose independent, {per[100]:.2f} ms CPU/pose in sequences of 100")


if __name__ == "__main__":
    from common import run

    run(main)
