"""Training data: ColonSim HDF5 frames resized to the training size, the train/val split, a
deterministic batch order, and augmentations that keep the shading cue.

Every random choice is a pure function of (seed, step): the frames of step s and their
augmentation are the same whether a run goes straight through or is resumed at any step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from colonsim import open_checked
from colonsim.data import schema
from colonsim.data.dataset import FrameDataset
from colonsim.errors import DatasetError


def check_depth(depth: np.ndarray, where: str) -> np.ndarray:
    """DatasetError naming ``where`` (file and frame) for a depth map with NaN or infinite values: in a
    ColonSim file no depth is 0, so these are damage, which would train to NaN and evaluate to NaN."""
    if not np.isfinite(depth).all():
        bad = int(np.count_nonzero(~np.isfinite(depth)))
        raise DatasetError(f"{where}: depth holds {bad} NaN or infinite values (no depth is 0 in a ColonSim "
                           "file); re-render it or fix the file")
    return depth


#: Frames of each file whose depth :func:`check_depth_sample` reads before a run starts.
DEPTH_SAMPLE_FRAMES = 16


def check_depth_sample(path: str | Path, n: int = DEPTH_SAMPLE_FRAMES) -> None:
    """:func:`check_depth` on ``n`` evenly spaced frames of a file (the first and the last among them):
    a file whose depth is damaged throughout is refused before a run folder is made, at the cost of
    reading ``n`` frames; every frame is checked again as training reads it."""
    ds = FrameDataset(path, fields=(schema.DEPTH,))
    try:
        for i in np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)):
            check_depth(ds.read(int(i))[schema.DEPTH], f"{path} frame {ds.row(int(i))[1]}")
    finally:
        ds.close()


def resize_frame(rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None, size_px: int):
    """Resize one frame to (size_px, size_px): rgb (H, W, 3) uint8 by area averaging (or bilinear
    when enlarging); depth (H, W) float32 mm and mask (H, W) uint8 by nearest neighbour, so that no
    depth is invented across an occlusion edge or the border of the field mask."""
    h, w = rgb.shape[:2]
    if (h, w) == (size_px, size_px):
        return rgb, depth, mask
    interp = cv2.INTER_AREA if size_px < min(h, w) else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (size_px, size_px), interpolation=interp)
    if depth is not None:
        depth = cv2.resize(depth, (size_px, size_px), interpolation=cv2.INTER_NEAREST)
    if mask is not None:
        mask = cv2.resize(mask, (size_px, size_px), interpolation=cv2.INTER_NEAREST)
    return rgb, depth, mask


class ResizedFrames(Dataset):
    """Frames of ColonSim HDF5 files at size_px x size_px, augmented when keyed by a training step.

    ``ds[i]`` gives frame i as it is; ``ds[(i, step, slot)]`` (what :class:`StepBatchSampler`
    yields) gives it augmented with draws from ``np.random.default_rng([seed, step, slot])``, so the
    augmentation is a pure function of the step, wherever the loader runs. Items: ``rgb`` (3, S, S)
    float32 [0, 1], ``depth`` (1, S, S) float32 mm (0 = invalid), ``mask`` (1, S, S) float32,
    ``index`` (int). All the work is numpy: tiny torch ops in a busy process cost far more than they do.
    """

    def __init__(self, paths: Sequence[str | Path], size_px: int, indices: Sequence[int] | None = None,
                 augment=None, seed: int = 0):
        self.frames = FrameDataset(paths, indices=indices)
        self.size_px, self.augment, self.seed = size_px, augment, seed

    def __len__(self) -> int:
        return len(self.frames)

    def _where(self, i: int) -> str:
        path, row = self.frames.row(i)[:2]
        return f"{path} frame {row}"

    def __getitem__(self, key: int | tuple[int, int, int]) -> dict[str, torch.Tensor]:
        i = key[0] if isinstance(key, tuple) else key
        a = self.frames.read(i)
        check_depth(a[schema.DEPTH], self._where(i))
        rgb, depth, mask = resize_frame(a[schema.RGB], a[schema.DEPTH], a[schema.MASK], self.size_px)
        rgb = rgb.astype(np.float32) * np.float32(1 / 255)
        if isinstance(key, tuple) and self.augment is not None:
            rgb, depth, mask = augment_frame(rgb, depth, mask, self.augment,
                                             np.random.default_rng([self.seed, key[1], key[2]]))
        return {
            schema.RGB: torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            schema.DEPTH: torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None],
            schema.MASK: torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "index": torch.tensor(int(i)),
        }


def collate_frames(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items into a batch with numpy: torch.stack runs on the intra-op thread pool, which on a
    busy CPU made it 20x slower than the copy itself (measured at 128x128, batch 8, 2 threads)."""
    return {k: torch.from_numpy(np.stack([it[k].numpy() for it in items])) for k in items[0]}


def augment_frame(rgb: np.ndarray, depth: np.ndarray, mask: np.ndarray, cfg, rng: np.random.Generator):
    """Augment one frame: rgb (S, S, 3) float32 [0, 1], depth (S, S) mm, mask (S, S).

    Geometric: flips and rotations by multiples of 90 degrees (square frames), applied alike to rgb,
    depth and mask; they move pixels without changing how brightness relates to distance. Photometric:
    a per-channel gain at constant mean (colour balance), and a global gain only if
    ``cfg.brightness_jitter`` > 0 (0 by default: brightness is a depth cue; see DataConfig).
    Every draw is taken whether or not it is used, so that switching one option off does not change
    the others.
    """
    u = rng.random(7)
    if cfg.flips and u[0] < 0.5:
        rgb, depth, mask = rgb[:, ::-1], depth[:, ::-1], mask[:, ::-1]
    if cfg.flips and u[1] < 0.5:
        rgb, depth, mask = rgb[::-1], depth[::-1], mask[::-1]
    k = int(u[2] * 4) % 4
    if cfg.rot90 and k and rgb.shape[0] == rgb.shape[1]:
        rgb, depth, mask = (np.rot90(x, k, axes=(0, 1)) for x in (rgb, depth, mask))
    gain = np.ones(3, np.float32)
    if cfg.color_balance_jitter > 0:
        g = 1.0 + cfg.color_balance_jitter * (2 * u[3:6] - 1)
        gain *= (g / g.mean()).astype(np.float32)
    if cfg.brightness_jitter > 0:
        gain *= np.float32(1.0 + cfg.brightness_jitter * (2 * u[6] - 1))
    if np.any(gain != 1):
        rgb = np.clip(rgb * gain, 0.0, 1.0)
    return rgb, depth, mask


def count_frames(paths: Sequence[str | Path]) -> list[int]:
    """Complete frames per file (raises DatasetError through FrameDataset for foreign files)."""
    return FrameDataset(paths).frames_per_file


def split_indices(counts: Sequence[int], val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Global (train, val) frame indices. The last ``val_fraction`` of each file's frames are held
    out as one contiguous block: neighbouring frames of a camera path are near copies, so a random
    frame split would leak the validation set into training."""
    train, val, start = [], [], 0
    for n in counts:
        n_val = int(round(n * val_fraction)) if val_fraction > 0 else 0
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        train.append(np.arange(start, start + n - n_val))
        val.append(np.arange(start + n - n_val, start + n))
        start += n
    return np.concatenate(train).astype(np.int64), np.concatenate(val).astype(np.int64)


def first_intrinsics(path: str | Path) -> list[float] | None:
    """Normalized pinhole intrinsics [fx/W, fy/H, cx/W, cy/H] of the first frame of a file, or None."""
    with open_checked(path) as f:   # the header check every reader makes (schema_version ...)
        if schema.INTRINSICS not in f:
            return None
        k = f[schema.INTRINSICS][0]
        h, w = f[schema.RGB].shape[1:3]
    return [float(k[0, 0] / w), float(k[1, 1] / h), float(k[0, 2] / w), float(k[1, 2] / h)]


class StepBatchSampler(Sampler):
    """Batches for steps ``start_step, start_step + 1, ...`` up to ``end_step``: lists of keys
    ``(index, step, slot)`` for :class:`ResizedFrames`.

    Epoch e is a permutation drawn by ``np.random.default_rng([seed, e])``; step s takes batch
    ``s % batches_per_epoch`` of epoch ``s // batches_per_epoch`` (the last partial batch dropped).
    """

    def __init__(self, n: int, batch: int, seed: int, start_step: int, end_step: int):
        if n < 1:
            raise DatasetError("no training frames left after the validation split")
        self.n, self.batch, self.seed = n, min(batch, n), seed
        self.start_step, self.end_step = start_step, end_step
        self.per_epoch = max(n // self.batch, 1)

    def __len__(self) -> int:
        return max(self.end_step - self.start_step, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        perm, epoch = None, -1
        for s in range(self.start_step, self.end_step):
            e, k = divmod(s, self.per_epoch)
            if e != epoch:
                perm, epoch = np.random.default_rng([self.seed, e]).permutation(self.n), e
            yield [(i, s, j) for j, i in enumerate(perm[k * self.batch:(k + 1) * self.batch].tolist())]


class PartBatchSampler(Sampler):
    """This rank's contiguous part of each global batch of another batch sampler (data-parallel
    training: K ranks together consume exactly the batches that one process would)."""

    def __init__(self, batches: Sampler, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list]:
        for batch in self.batches:
            n = len(batch) // self.world
            yield batch[self.rank * n:(self.rank + 1) * n]
