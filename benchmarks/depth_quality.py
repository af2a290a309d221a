"""Depth quality benchmark: train the depth network at 128x128 on clean-style synthetic frames for a
fixed time budget on the CPU, then measure abs_rel on held-out frames rendered from other
procedural meshes and seeds. The companion paper (Mahmood, Chen, Durr 2017) reports a relative
error of 0.152 on synthetic frames; the target here is <= 0.15.

It also reports training images/s, and the data loader's images/s on its own, which must be at
least 5x the training step's, so that the loader never limits training.

    python benchmarks/depth_quality.py                      # ~20 min training, renders its data
    python benchmarks/depth_quality.py --minutes 2 --train-frames 400 --test-frames 64
    python benchmarks/depth_quality.py --train A.h5 --train B.h5 --test C.h5
    python benchmarks/depth_quality.py --speed-only         # bf16 x channels-last step speed at 128x128
    python benchmarks/depth_quality.py --speed-only --device cuda --batch 32   # fp16 AMP x channels-last on a GPU

Prints one comparable line per measurement (``depth_quality: key=value ...``) and writes
``results.json`` in the work folder.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def render(out: Path, frames: int, seed: int, size: int, workers: int) -> Path:
    """A clean-style procedural dataset through the `colonsim render` command (skipped if present)."""
    if out.is_file():
        return out
    cmd = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--frames", str(frames),
           "--size", str(size), "--seed", str(seed), "--style", "clean", "--mesh", "procedural",
           "--workers", str(workers)]
    print("rendering:", " ".join(cmd[1:]), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return out


class _StepBench:
    """One training step of the default network on random frames (forward, loss, backward, AdamW).
    ``lowp`` is bfloat16 autocast on the CPU and float16 autocast with a gradient scaler on CUDA,
    as the trainer does (``compute.bf16`` / ``compute.amp_cuda``)."""

    def __init__(self, size: int, batch: int, lowp: bool, channels_last: bool, device: str = "cpu"):
        import torch

        from depth import networks
        from depth.config import load_depth_config

        flag = str(lowp).lower()
        self.cfg = load_depth_config(overrides=[f"data.size_px={size}", f"compute.bf16={flag}",
                                                f"compute.amp_cuda={flag}",
                                                f"compute.channels_last={str(channels_last).lower()}",
                                                f"compute.device={device}"])
        self.device = torch.device(device)
        g = torch.Generator().manual_seed(0)
        self.model = networks.build_model(networks.model_args_from_config(self.cfg)).to(self.device)
        self.rgb = torch.rand(batch, 3, size, size, generator=g).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.rgb = self.rgb.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.gt = (10 + 90 * torch.rand(batch, 1, size, size, generator=g)).to(self.device)
        self.mask = torch.ones_like(self.gt)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and lowp)

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self) -> float:
        from depth.losses import depth_losses
        from depth.train import autocast_for

        self._sync()
        t0 = time.perf_counter()
        with autocast_for(self.device, self.cfg):
            pred = self.model(self.rgb)
        loss = depth_losses(pred.float(), self.gt, self.mask, self.cfg.loss)["total"]
        self.opt.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self._sync()
        return time.perf_counter() - t0


def step_speed_grid(size: int, batch: int, rounds: int, device: str = "cpu") -> dict[str, float]:
    """Training images/s for low-precision autocast x channels-last (bfloat16 on the CPU, float16
    with a gradient scaler on CUDA). The four settings take turns, one step each per round, and the
    median step time counts: on a shared machine, load changes over time and would otherwise favour
    whichever setting ran in a quiet moment."""
    import numpy as np

    lowp = "bf16" if device == "cpu" else "fp16"
    benches = {(p, cl): _StepBench(size, batch, p, cl, device) for p in (False, True) for cl in (False, True)}
    times: dict = {k: [] for k in benches}
    for r in range(rounds + 2):
        for k, b in benches.items():
            t = b.step()
            if r >= 2:  # rounds 0 and 1 warm up (CUDA picks its kernels in the first steps)
                times[k].append(t)
    return {f"{lowp}={k[0]},channels_last={k[1]}": batch / float(np.median(v)) for k, v in times.items()}


def loader_speed(paths: list[Path], size: int, batch: int, workers: int, batches: int) -> float:
    """Images/s of the training data loader alone (read, resize, collate, augment)."""
    from torch.utils.data import DataLoader

    from depth.config import load_depth_config
    from depth.data import ResizedFrames, StepBatchSampler, collate_frames

    ds = ResizedFrames(paths, size, augment=load_depth_config().data, seed=0)
    loader = DataLoader(ds, batch_sampler=StepBatchSampler(len(ds), batch, 0, 0, batches), num_workers=workers,
                        collate_fn=collate_frames, multiprocessing_context="spawn" if workers else None)
    n, t0 = 0, time.perf_counter()
    for b in loader:
        n += len(b["index"])
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget (default 20)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--train", action="append", type=Path, help="training HDF5 (default: rendered)")
    ap.add_argument("--test", action="append", type=Path, help="held-out HDF5 (default: rendered)")
    ap.add_argument("--train-frames", type=int, default=4000, help="frames to render for training")
    ap.add_argument("--test-frames", type=int, default=200, help="frames to render for the held-out set")
    ap.add_argument("--train-seeds", default="1,2,3,4", help="render seeds (meshes) of the training set")
    ap.add_argument("--test-seeds", default="101,102", help="render seeds (meshes) of the held-out set")
    ap.add_argument("--render-workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_depth")
    ap.add_argument("--speed-only", action="store_true", help="only the step speed grid (bf16 x channels-last)")
    ap.add_argument("--speed-steps", type=int, default=10, help="timed rounds of the speed grid")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="device of the step speed grid (--speed-only); the 20-minute run is on the CPU")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="depth config override")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    results: dict = {"threads": a.threads, "size": a.size, "batch": a.batch, "torch": torch.__version__,
                     "device": a.device}
    if a.device == "cuda":
        if not torch.cuda.is_available():
            print("depth_quality: --device cuda, but torch sees no CUDA device", file=sys.stderr)
            return 2
        if not a.speed_only:
            print("depth_quality: --device cuda is for --speed-only", file=sys.stderr)
            return 2
        results["gpu"] = torch.cuda.get_device_name(0)

    grid = step_speed_grid(a.size, a.batch, a.speed_steps, a.device)
    for k, ips in grid.items():
        print(f"depth_quality: step_speed device={a.device} size={a.size} batch={a.batch} threads={a.threads} {k} "
              f"images_per_s={ips:.1f}", flush=True)
    results["step_speed_images_per_s"] = grid
    if a.speed_only:
        print(json.dumps(results, indent=1))
        return 0

    from depth.config import load_depth_config
    from depth.evaluate import evaluate
    from depth.train import train_depth

    a.work.mkdir(parents=True, exist_ok=True)
    train_seeds = [int(s) for s in a.train_seeds.split(",")]
    test_seeds = [int(s) for s in a.test_seeds.split(",")]
    train = a.train or [render(a.work / f"train_s{s}.h5", a.train_frames // len(train_seeds), s, a.size,
                               a.render_workers) for s in train_seeds]
    test = a.test or [render(a.work / f"test_s{s}.h5", a.test_frames // len(test_seeds), s, a.size,
                             a.render_workers) for s in test_seeds]

    loader_ips = loader_speed(train, a.size, a.batch, 0, 50)
    best = max(grid.values())
    results.update(loader_images_per_s=loader_ips, loader_over_step=loader_ips / best)
    print(f"depth_quality: loader images_per_s={loader_ips:.1f} step images_per_s={best:.1f} "
          f"ratio={loader_ips / best:.1f} (must be >= 5)", flush=True)

    # The step count that fills the budget sets the cosine schedule; the time budget is a safety stop.
    steps = max(int(a.minutes * 60 * best / a.batch), 10)
    cfg = load_depth_config(overrides=[f"data.size_px={a.size}", f"train.batch={a.batch}", f"train.steps={steps}",
                                       f"train.time_limit_min={a.minutes}", "compute.device=cpu",
                                       f"train.val_every={max(steps // 10, 1)}",
                                       f"train.checkpoint_every={max(steps // 4, 1)}", *a.overrides])
    run = a.work / f"run_{time.strftime('%Y%m%d_%H%M%S')}"
    t0 = time.perf_counter()
    summary = train_depth(cfg, train, run)
    minutes = (time.perf_counter() - t0) / 60
    results.update(train_steps=summary["steps"], train_minutes=minutes, train_images_per_s=summary["images_per_s"],
                   best_val_abs_rel=summary["best_val_abs_rel"], run=str(run))
    for align in ("none", "median"):
        per_file = [evaluate(run / "model.pt", t, align=align) for t in test]
        n = sum(r["n"] for r in per_file)
        abs_rel = sum(r["metrics"]["abs_rel"] * r["n"] for r in per_file) / n
        results[f"heldout_abs_rel_{align}"] = abs_rel
        results["heldout_frames"] = n
    print(f"depth_quality: heldout abs_rel={results['heldout_abs_rel_none']:.4f} "
          f"(median-aligned {results['heldout_abs_rel_median']:.4f}, paper 0.152, target <= 0.15) "
          f"frames={results['heldout_frames']} train_images_per_s={summary['images_per_s']:.1f} "
          f"steps={summary['steps']} minutes={minutes:.1f}", flush=True)
    (a.work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    from common import run

    run(main)
