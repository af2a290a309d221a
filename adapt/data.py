"""Frames of one domain, and random crops of them resized to a common size.

A source is a folder of images or a video (the real-data folder contract, :mod:`colonsim.data.realdata`;
the black border outside the scope's image circle is detected per frame), or a ColonSim HDF5 file
(its ``rgb`` and ``mask``). Inside the networks, images are (N, 3, H, W) float32 in [-1, 1] and
masks (N, 1, H, W) float32 in {0, 1}; pixels outside the mask are -1 (black).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hdf5plugin  # noqa: F401  registers the blosc/zstd filters that rendered files use
import numpy as np
import torch

from colonsim import FrameDataset, open_checked
from colonsim.config import Range, sample
from colonsim.data import realdata, schema
from colonsim.errors import DatasetError, InputError

from .config import DataConfig


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    if rgb.ndim == 3:
        rgb = rgb[None]
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Float in [-1, 1] -> its 8-bit grey levels 0..255 (clipped, rounded), still as floats."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 (rounded, clipped)."""
    return _levels(x.detach().float()).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (H, W) uint8 -> (N, 1, H, W) float32."""
    if mask.ndim == 2:
        mask = mask[None]
    return torch.from_numpy(np.array(mask, dtype=np.float32))[:, None]  # a copy: inputs may be read-only views


def inscribed_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the largest axis-aligned square inside the image circle (``mask`` (H, W),
    non-zero inside), the part of a frame that ``adapt score``'s classifier sees."""
    padded = np.pad(mask.astype(np.uint8), 1)  # the image edge counts as border
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    half = max(1, int(dist[cy, cx] / np.sqrt(2.0)))
    return max(0, cy - half), cy + half, max(0, cx - half), cx + half


def inscribed_square(rgb: np.ndarray, mask: np.ndarray, size_px: int) -> np.ndarray:
    """The largest axis-aligned square inside the image circle, resized: (S, S, 3) uint8."""
    y0, y1, x0, x1 = inscribed_box(mask)
    return cv2.resize(rgb[y0:y1, x0:x1], (size_px, size_px), interpolation=cv2.INTER_AREA)


def squares(frames, idx, size_px: int) -> np.ndarray:
    """(len(idx), S, S, 3) uint8: :func:`inscribed_square` of the frames ``idx`` of ``frames`` (any
    object with ``get(i) -> (rgb, mask)``)."""
    return np.stack([inscribed_square(*frames.get(int(i)), size_px) for i in idx])


def encode_image(name: str | Path, rgb: np.ndarray, params: list[int] | None = None) -> bytes:
    """(H, W, 3) uint8 RGB -> the bytes of an image file in the format of ``name``'s suffix. Written
    by bytes (``path.write_bytes``) rather than cv2.imwrite, which takes a C string and crashed on a
    file name that is not UTF-8."""
    ok, buf = cv2.imencode(Path(name).suffix or ".png", np.ascontiguousarray(rgb[..., ::-1]), params or [])
    if not ok:
        raise InputError(f"cannot encode {name} as an image")
    return buf.tobytes()


def is_hdf5(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and (p.suffix.lower() in (".h5", ".hdf5") or h5py.is_hdf5(p))


class FolderFrames:
    """Real frames of a folder or video, kept in memory, resized to a short side of ``short_side_px``
    (never enlarged), each with its detected border mask. ``get(i)`` -> (rgb (H, W, 3) uint8,
    mask (H, W) uint8)."""

    def __init__(self, source: str | Path, short_side_px: int):
        self.source = Path(source)
        self.names: list[str] = []
        self.frames: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for name, rgb in realdata.iter_frames(self.source):
            scale = short_side_px / min(rgb.shape[:2])
            if scale < 1.0:
                size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            mask = realdata.detect_border_mask(rgb)  # after resizing: several times faster
            self.names.append(name)
            self.frames.append(rgb)
            self.masks.append(mask)

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.frames[i], self.masks[i]


# Decoded synthetic frames kept in memory, MiB: a training run draws the same few thousand frames
# again and again, and a file chunked across frames (gzip, (50, 32, 32, 1) chunks) decodes in 44 ms
# a frame against 0.65 ms for ColonSim's own one-frame chunks (benchmarks/RESULTS.md).
H5_CACHE_MB = 2048


class H5Frames:
    """Frames of a ColonSim HDF5 file, read on demand. ``get(i)`` -> (rgb (H, W, 3) uint8,
    mask (H, W) uint8; all ones when the file has no mask). Frames once read stay in memory while
    they fit in ``cache_mb`` (the first ones read; 0 keeps none); a cached frame is read-only."""

    def __init__(self, path: str | Path, cache_mb: float = H5_CACHE_MB):
        self.source = Path(path)
        with open_checked(self.source) as f:  # the header check every reader makes (schema_version ...)
            if schema.RGB not in f:
                raise DatasetError(f"{self.source} has no '{schema.RGB}' dataset; adapt needs RGB frames")
            has_mask = schema.MASK in f
        fields = (schema.RGB, schema.MASK) if has_mask else (schema.RGB,)
        self.dataset = FrameDataset(self.source, fields=fields)
        self.cache_bytes = int(cache_mb * 2**20)
        self.cached_bytes = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        a = self.dataset.read(i)
        rgb = a[schema.RGB]
        mask = a.get(schema.MASK)
        if mask is None:
            mask = np.ones(rgb.shape[:2], np.uint8)
        out = rgb, (mask > 0).astype(np.uint8)
        size = rgb.nbytes + out[1].nbytes
        if self.cached_bytes + size <= self.cache_bytes:
            for x in out:
                x.flags.writeable = False
            self._cache[i] = out
            self.cached_bytes += size
        return out


def open_frames(source: str | Path, short_side_px: int = 256) -> FolderFrames | H5Frames:
    """A frame source: an HDF5 file (by content or .h5/.hdf5), else a folder of images or a video."""
    p = Path(source)
    if not p.exists():
        raise InputError(f"frames not found: {p}; expected a folder of images, a video, or a ColonSim .h5")
    if p.is_file() and p.suffix.lower() in (".h5", ".hdf5") and not h5py.is_hdf5(p):
        raise DatasetError(f"{p} is not a readable HDF5 file")
    if is_hdf5(p):
        return H5Frames(p)
    return FolderFrames(p, short_side_px)


def random_crop(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size_px: int,
                crop: Range) -> tuple[np.ndarray, np.ndarray]:
    """A random square crop inside the bounding box of the image circle, resized to ``size_px``.

    The crop side is ``sample(rng, crop)`` times the box's short side; a random horizontal flip
    follows. Every call draws four numbers from ``rng``. Returns rgb (S, S, 3) uint8, black outside
    the mask, and mask (S, S) uint8.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        ys, xs = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(2, int(round(sample(rng, crop) * min(y1 - y0, x1 - x0))))
    top = y0 + int(rng.integers(0, (y1 - y0) - side + 1))
    left = x0 + int(rng.integers(0, (x1 - x0) - side + 1))
    flip = rng.random() < 0.5
    r = rgb[top:top + side, left:left + side]
    m = mask[top:top + side, left:left + side]
    interp = cv2.INTER_AREA if side > size_px else cv2.INTER_LINEAR
    r = cv2.resize(r, (size_px, size_px), interpolation=interp)
    m = cv2.resize(m, (size_px, size_px), interpolation=cv2.INTER_NEAREST)
    if flip:
        r, m = r[:, ::-1], m[:, ::-1]
    r = r * m[..., None]
    return np.ascontiguousarray(r), np.ascontiguousarray(m)


class CropSampler:
    """Batches of random crops of one domain: ``next_batch()`` -> (x (B, 3, S, S) in [-1, 1],
    mask (B, 1, S, S)), on the CPU.

    With ``part=(rank, world)`` (data-parallel training) it returns rank's contiguous B/world of the
    global batch: every rank draws the whole batch from the same generator, so the ranks' parts
    together are the batch that one process would use, and their generators stay in step.
    """

    def __init__(self, frames: FolderFrames | H5Frames, cfg: DataConfig, rng: np.random.Generator,
                 part: tuple[int, int] = (0, 1)):
        if len(frames) == 0:
            raise InputError(f"no frames in {frames.source}")
        self.frames, self.cfg, self.rng, self.part = frames, cfg, rng, part

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        rgbs, masks = [], []
        rank, world = self.part
        n = self.cfg.batch_size // world
        for j, i in enumerate(self.rng.integers(0, len(self.frames), size=self.cfg.batch_size)):
            rgb, mask = self.frames.get(int(i))
            r, m = random_crop(rgb, mask, self.rng, self.cfg.size_px, self.cfg.crop)  # draws, even if not kept
            if rank * n <= j < (rank + 1) * n:
                rgbs.append(r)
                masks.append(m)
        return to_tensor(np.stack(rgbs)), mask_tensor(np.stack(masks))
