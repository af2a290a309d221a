"""Synthetic crops per second for adapt training: ``CropSampler`` over an HDF5's frames, read from
the file each time (``cache_mb`` 0) and from memory once read (the default, ``H5_CACHE_MB``).

Prints one line per file and cache setting. Usage:
    python benchmarks/adapt_sampler.py A.h5 [B.h5 ...] [--batches 300]
Each line times ``--batches`` batches after one pass over the file's frames, so that the cached
setting is measured in its steady state (every frame in memory, when they fit).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--batches", type=int, default=300)
    args = ap.parse_args()

    import h5py
    import numpy as np
    import torch

    from adapt.config import load_adapt_config
    from adapt.data import H5_CACHE_MB, CropSampler, H5Frames, open_frames
    from colonsim.errors import DatasetError, InputError

    for path in args.data:  # every file checked before any is timed, as `adapt train` checks it
        try:
            if Path(path).is_dir() or not isinstance(open_frames(path), H5Frames):
                raise InputError(f"{path} is not an HDF5 file")
        except (InputError, DatasetError) as e:
            print(f"adapt_sampler: {e}", file=sys.stderr)
            sys.exit(2)
    torch.set_num_threads(1)
    cfg = load_adapt_config().data
    for path in args.data:
        with h5py.File(path, "r") as f:
            chunks, filt = f["rgb"].chunks, f["rgb"].compression
        for mb in (0, H5_CACHE_MB):
            frames = H5Frames(path, cache_mb=mb)
            t = time.perf_counter()
            for i in range(len(frames)):
                frames.get(i)
            first = len(frames) / (time.perf_counter() - t)
            sampler = CropSampler(frames, cfg, np.random.default_rng(0))
            t = time.perf_counter()
            for _ in range(args.batches):
                sampler.next_batch()
            rate = args.batches / (time.perf_counter() - t)
            print(f"{path}: rgb chunks {chunks}, compression {filt}, cache_mb={mb}: first pass "
                  f"{first:.0f} frames/s, then {rate:.1f} batches/s ({cfg.batch_size} crops of "
                  f"{cfg.size_px} px), {frames.cached_bytes / 2**20:.0f} MiB cached")


if __name__ == "__main__":
    from common import run

    run(main)
