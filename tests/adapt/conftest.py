"""Fixtures of tests/adapt: a tiny ColonSim HDF5 written with h5py, and a tiny folder of "real"
frames with a black octagonal border. The two domains differ in colour and texture on purpose."""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from adapt.config import load_adapt_config
from colonsim.data import schema
from tests.conftest import write_frames_h5


def octagon_mask(h: int, w: int, margin: int = 2) -> np.ndarray:
    """(h, w) uint8, 1 inside an octagon centred in the frame."""
    mask = np.zeros((h, w), np.uint8)
    r = min(h, w) / 2 - margin
    ang = np.deg2rad(22.5 + 45 * np.arange(8))
    pts = np.stack([w / 2 + r * np.cos(ang), h / 2 + r * np.sin(ang)], 1).round().astype(np.int32)
    cv2.fillConvexPoly(mask, pts, 1)
    return mask


def synthetic_frames(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth shaded "tubes": rgb (n, s, s, 3) uint8, depth (n, s, s) float32 mm, mask (s, s) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    mask = (xx ** 2 + yy ** 2 < 0.47 ** 2).astype(np.uint8)
    rgb = np.zeros((n, size, size, 3), np.uint8)
    depth = np.zeros((n, size, size), np.float32)
    for i in range(n):
        cx, cy = rng.uniform(-0.15, 0.15, 2)
        r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        d = 5.0 + 60.0 * np.exp(-8.0 * r)
        shade = np.clip(1.2 * (5.0 / d) ** 0.5, 0, 1)
        rgb[i] = (shade[..., None] * np.array([230, 150, 140]) * mask[..., None]).astype(np.uint8)
        depth[i] = d * mask
    return rgb, depth, mask


def write_h5(path: Path, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None) -> Path:
    """A ColonSim HDF5 (schema version 1) with every frame marked done, written through ColonSim's
    own writer (tests/conftest.py ``write_frames_h5``). Without depth or mask it is a file that lacks
    that dataset, written by hand as another tool might write it."""
    n, h, w = rgb.shape[:3]
    if depth is not None and mask is not None:
        return write_frames_h5(path, rgb, depth.astype(np.float32), mask, seed=7, depth_dtype="float16",
                               params={"light_power": np.linspace(1, 2, n).astype(np.float32)})
    with h5py.File(path, "w") as f:
        f.attrs[schema.ATTR_SOFTWARE] = schema.SOFTWARE
        f.attrs[schema.ATTR_SCHEMA_VERSION] = schema.SCHEMA_VERSION
        f.attrs[schema.ATTR_UNITS] = schema.UNITS
        f.attrs[schema.ATTR_SEED] = 7
        f.create_dataset(schema.RGB, data=rgb, chunks=(1, h, w, 3), compression="gzip")
        if depth is not None:
            f.create_dataset(schema.DEPTH, data=depth.astype(np.float16), chunks=(1, h, w))
        if mask is not None:
            f.create_dataset(schema.MASK, data=mask)
        pose = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
        f.create_dataset(schema.POSE, data=pose)
        k = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float32)
        f.create_dataset(schema.INTRINSICS, data=np.tile(k, (n, 1, 1)))
        f.create_dataset(f"{schema.PARAMS}/light_power", data=np.linspace(1, 2, n).astype(np.float32))
        f.create_dataset(schema.DONE, data=np.ones(n, np.uint8))
    return path


@pytest.fixture
def synthetic_h5(tmp_path) -> Path:
    rgb, depth, mask = synthetic_frames(8, 40, seed=1)
    return write_h5(tmp_path / "synth.h5", rgb, depth, mask)


def real_frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, h, w, 3) uint8: noisy orange texture with a dark blob, black outside an octagon."""
    rng = np.random.default_rng(seed)
    mask = octagon_mask(h, w)
    out = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        base = np.array([200, 110, 40], np.float32) * rng.uniform(0.7, 1.0)
        tex = rng.normal(0, 25, (h, w, 1)).astype(np.float32)
        img = np.clip(base + tex, 0, 255)
        cv2.circle(img, (int(rng.integers(w // 3, 2 * w // 3)), h // 2), h // 6, (25, 18, 15), -1)
        out[i] = (img * mask[..., None]).astype(np.uint8)
    return out


@pytest.fixture
def real_dir(tmp_path) -> Path:
    d = tmp_path / "real"
    d.mkdir()
    for i, rgb in enumerate(real_frames(6, 36, 44, seed=2)):
        cv2.imwrite(str(d / f"{i + 1}.png"), rgb[..., ::-1])
    return d


@pytest.fixture
def tiny_cfg():
    """A config small enough for a test: 24 px crops, 2 frames a batch, a few steps of each phase."""
    return load_adapt_config(overrides=[
        "refiner.width=8", "refiner.blocks=1", "discriminator.width=8", "discriminator.layers=2",
        "data.size_px=24", "data.batch_size=2", "data.crop=[0.6, 1.0]", "history.size=8",
        "schedule.pretrain_refiner_steps=2", "schedule.pretrain_disc_steps=2", "schedule.steps=3",
        "schedule.log_every=1", "schedule.checkpoint_every=2",
        "compute.threads=1", "compute.device=cpu"])
