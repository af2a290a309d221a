"""Render throughput of the Ray backend with 1 and 2 (or more) actors, against the local backend, and
random-access read throughput of the result through FrameDataset with 0, 2 and 4 DataLoader workers.

Prints one line per measurement. Usage (a local Ray cluster is started unless --address is given):
    python benchmarks/ray_throughput.py [--frames 96] [--size 128] [--workers 1 2] [--reader-workers 0 2 4]
        [--address ADDR] [--style NAME] [--set key=value ...]
"wall" frames/s include actor start-up (imports, GL context, meshes); "render" frames/s are counted
from the first frame of the run to the last shard. Frames are also checked bit-identical across backends.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def render(cfg, out: Path, frames: int, backend: str, workers: int, address: str | None) -> dict:
    from colonsim.run.generate import render_dataset

    r = render_dataset(cfg, out, frames, seed=0, workers=workers, backend=backend,
                       address=address if backend == "ray" else None, progress=False)
    render_fps = frames / r["render_s"] if r["render_s"] else float("nan")
    print(f"render backend={backend} workers={workers}: {r['fps']:.1f} frames/s wall, {render_fps:.1f} frames/s "
          f"render ({frames} frames {cfg.output.size_px}x{cfg.output.size_px}, setup {r['setup_s']:.1f} s, "
          f"merge {r['merge_s']:.1f} s)", flush=True)
    return r


def same(a: Path, b: Path) -> bool:
    import numpy as np

    from colonsim.data import h5io, schema
    with h5io.open_file(a) as f, h5io.open_file(b) as g:
        return all(np.array_equal(f[k][()], g[k][()]) for k in (schema.RGB, schema.DEPTH, schema.POSE))


def read(paths: list[Path], workers: list[int], batch: int, epochs: int) -> None:
    import torch
    from torch.utils.data import DataLoader

    from colonsim.data.dataset import FrameDataset

    torch.set_num_threads(1)
    ds = FrameDataset(paths)
    for k in workers:
        loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=k, persistent_workers=k > 0,
                            generator=torch.Generator().manual_seed(0),
                            multiprocessing_context="spawn" if k else None)
        for _ in loader:  # warm-up: worker start-up, file open (once per worker), page cache
            break
        n, t0 = 0, time.perf_counter()
        for _ in range(epochs):
            for b in loader:
                n += len(b["index"])
        dt = time.perf_counter() - t0
        print(f"read loader_workers={k}: {n / dt:.0f} frames/s random access ({len(ds)} frames in "
              f"{len(paths)} files, batch {batch})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reader-workers", type=int, nargs="+", default=[0, 2, 4])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--address", help="Ray cluster address (default: a new local cluster)")
    ap.add_argument("--no-local", action="store_true", help="skip the local-backend reference")
    ap.add_argument("--style")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    import ray

    from colonsim.simconfig import load_sim_config

    cfg = load_sim_config(args.style, None, [*args.overrides, f"output.size_px={args.size}"])
    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="colonsim-bench-") as d:
        outs = []
        for k in args.workers:
            out = Path(d) / f"ray_{k}.h5"
            render(cfg, out, args.frames, "ray", k, args.address)
            outs.append(out)
            if not args.no_local:
                render(cfg, Path(d) / f"local_{k}.h5", args.frames, "local", k, None)
                print(f"bit-identical ray vs local (workers={k}): {same(out, Path(d) / f'local_{k}.h5')}")
        read(outs, args.reader_workers, args.batch, args.epochs)
    ray.shutdown()


if __name__ == "__main__":
    from common import run

    run(main)
