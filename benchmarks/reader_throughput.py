"""Read throughput of a ColonSim HDF5 file through FrameDataset and a DataLoader.

Prints one line per worker count: frames/s and MB/s of decoded tensors. Usage:
    python benchmarks/reader_throughput.py DATA.h5 [--workers 0 2] [--batch 16] [--epochs 2]
Make DATA.h5 with e.g. ``colonsim render --out DATA.h5 --frames 500 --style realistic``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from colonsim.data.dataset import FrameDataset

    torch.set_num_threads(1)
    ds = FrameDataset(args.data)
    for k in args.workers:
        loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=k,
                            generator=torch.Generator().manual_seed(0), persistent_workers=k > 0)
        for _ in loader:  # warm-up epoch: worker start-up, file open, page cache
            break
        n, nbytes, t0 = 0, 0, time.perf_counter()
        for _ in range(args.epochs):
            for batch in loader:
                n += len(batch["index"])
                nbytes += sum(v.numel() * v.element_size() for v in batch.values())
        dt = time.perf_counter() - t0
        print(f"workers={k}: {n / dt:.0f} frames/s, {nbytes / dt / 1e6:.0f} MB/s of tensors "
              f"({len(ds)} frames {ds.read(0)['rgb'].shape[:2]}, batch {args.batch})", flush=True)


if __name__ == "__main__":
    from common import run

    run(main)
