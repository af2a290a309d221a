"""Per-frame exposure statistics of frame sets: how much each set's brightness varies from frame to frame.

    python benchmarks/tone_stats.py SET [SET ...] [--frames 100] [--percentile 60]

Each SET is a folder of images, a video or a ColonSim HDF5 (what ``colonsim adapt score`` reads).
For up to ``--frames`` evenly spaced frames of each, the grey level (mean of the three channels,
8-bit) inside the image circle is summarized by its percentiles; the script prints, per set, the
mean and the standard deviation over frames of the ``--percentile`` level and of the 10th and 90th.
A ``clean`` render's auto gain scales one luminance percentile to a fixed target (``sensor.
auto_gain_percentile``, 60 in that style), so that level is the same in every render: a standard
deviation of 0 is what a real frame must reach to pass for one. ``--json`` prints one object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stats(path: str, frames: int, percentile: float) -> dict:
    import numpy as np

    from adapt.data import open_frames

    src = open_frames(path)
    idx = np.unique(np.linspace(0, len(src) - 1, min(len(src), frames)).round().astype(int))
    levels = []
    for i in idx:
        rgb, mask = src.get(int(i))
        g = rgb.astype(np.float32).mean(-1)[mask > 0]
        levels.append(np.percentile(g, [10.0, percentile, 90.0]))
    v = np.asarray(levels)
    return {"set": path, "frames": int(len(idx)),
            f"p{percentile:g}_mean": round(float(v[:, 1].mean()), 2), f"p{percentile:g}_sd": round(float(v[:, 1].std()), 2),
            "p10_mean": round(float(v[:, 0].mean()), 2), "p10_sd": round(float(v[:, 0].std()), 2),
            "p90_mean": round(float(v[:, 2].mean()), 2), "p90_sd": round(float(v[:, 2].std()), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", metavar="SET")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--percentile", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.frames < 1 or not 0.0 < args.percentile < 100.0:
        print("tone_stats: --frames must be at least 1 and --percentile between 0 and 100", file=sys.stderr)
        return 2
    import hdf5plugin  # noqa: F401  (compressed ColonSim HDF5)

    from colonsim.errors import ColonSimError

    try:
        rows = [stats(s, args.frames, args.percentile) for s in args.sets]
    except ColonSimError as e:
        print(f"tone_stats: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows))
        return 0
    p = f"p{args.percentile:g}"
    for r in rows:
        print(f"{r['set']}: {r['frames']} frames; grey {p} {r[p + '_mean']:.1f} (sd {r[p + '_sd']:.2f}), "
              f"p10 {r['p10_mean']:.1f} (sd {r['p10_sd']:.1f}), p90 {r['p90_mean']:.1f} (sd {r['p90_sd']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
