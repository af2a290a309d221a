"""Fixtures of tests/depth: tiny ColonSim HDF5 files of synthetic frames, written through ColonSim's
own writer (tests/conftest.py), so that the depth tests do not depend on the renderer.

The synthetic frames carry the real shading cue: a lit surface whose brightness falls as
(d_ref / depth)^2, times a per-frame albedo, so depth is learnable from one frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_frames_h5


def synthetic_frames(n: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """n frames: rgb (n, S, S, 3) uint8, depth (n, S, S) float32 mm (0 outside the circle), mask
    (S, S) uint8, intrinsics (n, 3, 3) float32."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    mask = (x ** 2 + y ** 2 <= 0.95 ** 2).astype(np.uint8)
    rgb = np.zeros((n, size, size, 3), np.uint8)
    depth = np.zeros((n, size, size), np.float32)
    for i in range(n):
        d0 = rng.uniform(15.0, 60.0)
        tx, ty = rng.uniform(-0.5, 0.5, 2)
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        lumen = rng.uniform(0.5, 2.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.15)
        d = d0 * (1.0 + tx * x + ty * y + lumen)
        albedo = np.array([0.9, 0.55, 0.45]) * rng.uniform(0.9, 1.1)
        shade = np.clip(albedo * (12.0 / d[..., None]) ** 2, 0.0, 1.0) ** (1 / 2.2)
        rgb[i] = np.round(255 * shade * mask[..., None]).astype(np.uint8)
        depth[i] = (d * mask).astype(np.float32)
    f = size / 2 / np.tan(np.radians(60))
    k = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]], np.float32)
    return {"rgb": rgb, "depth": depth, "mask": mask, "intrinsics": np.repeat(k[None], n, 0)}


def write_h5(path: Path, n: int = 24, size: int = 32, seed: int = 0) -> Path:
    """A complete schema-1 ColonSim file of synthetic frames, written by ColonSim's own writer."""
    fr = synthetic_frames(n, size, seed)
    return write_frames_h5(path, fr["rgb"], fr["depth"], fr["mask"], intrinsics=fr["intrinsics"], seed=seed)


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
    return write_h5(tmp_path_factory.mktemp("depth_data") / "train.h5", n=24, size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_val_h5(tmp_path_factory) -> Path:
    return write_h5(tmp_path_factory.mktemp("depth_val") / "val.h5", n=8, size=32, seed=1)


@pytest.fixture()
def tiny_cfg():
    """A small, fast config at 32x32."""
    from depth.config import load_depth_config
    return load_depth_config(overrides=[
        "model.base_width=8", "model.levels=3", "model.max_width=32", "data.size_px=32",
        "train.batch=4", "train.lr=0.003", "train.warmup_steps=2", "train.steps=6", "train.val_every=3",
        "train.checkpoint_every=3", "train.log_every=1", "compute.device=cpu", "train.val_fraction=0.25"])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained depth checkpoint at 32 px, saved through the public checkpoint writer."""
    import torch

    from depth import networks
    args = dict(base_width=8, levels=3, max_width=32, convs_per_level=1, norm="group",
                min_depth_mm=0.5, max_depth_mm=400.0, size_px=32)
    torch.manual_seed(0)
    model = networks.build_model(args)
    # A non-zero head so that the output varies with the input (the trainer starts it at zero).
    torch.nn.init.normal_(model.head.weight, std=0.5)
    path = tmp_path_factory.mktemp("depth_model") / "model.pt"
    return networks.save_checkpoint(path, model, args, config={}, intrinsics_norm=[0.29, 0.29, 0.5, 0.5])
