"""Apply a trained refiner at full resolution (the refiner is fully convolutional).

A folder or video of frames becomes a folder of refined frames with the same names and sizes;
a ColonSim HDF5 becomes a copy whose ``rgb`` is refined and whose every other dataset and attribute
is unchanged (one attribute, ``refined_by``, is added). Outside the image circle stays black.

An existing output (a file, or a non-empty folder) is refused unless ``overwrite``. The output is
written under a temporary name next to it (``OUT.tmp-PID``) and renamed into place only once
complete, so that an interrupted run never leaves a half-refined output that looks valid.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import h5py
import hdf5plugin  # noqa: F401  registers the blosc/zstd filters that rendered files use
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from colonsim import open_checked
from colonsim.data import realdata, schema
from colonsim.errors import CheckpointError, InputError
from training.checkpoint import TRAINING_STATE, build_model

from .checkpoint import load_refiner_checkpoint
from .data import is_hdf5, mask_tensor, to_tensor, to_uint8
from .networks import Refiner

log = logging.getLogger(__name__)

#: Pixels per forward pass; bounds the memory of full-resolution batches (about 1 GB at width 64).
MAX_BATCH_PIXELS = 1 << 20
#: The arguments a refiner checkpoint rebuilds its :class:`adapt.networks.Refiner` with.
REFINER_ARGS = ("width", "blocks", "output", "frame_knots")
#: HDF5 root attribute added to a refined copy: JSON of the refiner's path, direction and steps.
ATTR_REFINED_BY = "refined_by"


def load_refiner(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the refiner of a refiner checkpoint (RUN/model.pt, a snapshot, or the refiner.pt of
    earlier versions), in eval mode on the CPU.

    Returns (model, meta), where meta holds the checkpoint's other entries (model_args, direction,
    steps, config, software_version). CheckpointError for other kinds or pickle payloads.
    """
    ck = load_refiner_checkpoint(path)
    args = ck["model_args"]
    if args.get("tones") == "free":   # written by versions that had other tones
        args = {k: v for k, v in args.items() if k != "tones"}
    if not {"width", "blocks", "output"} <= set(args) <= {*REFINER_ARGS}:
        raise CheckpointError(f"{path} has no valid refiner arguments ({', '.join(REFINER_ARGS)}): {args!r}; "
                              "a refiner of a variant this version no longer has is read by the version that wrote it")
    model = build_model(path, {**ck, "model_args": args}, Refiner)
    model.eval()
    meta = {k: v for k, v in ck.items() if k not in TRAINING_STATE}
    return model, meta


def refine_images(model: nn.Module, rgb: np.ndarray, mask: np.ndarray | None = None,
                  batch_size: int = 16) -> np.ndarray:
    """Refine frames at their own resolution.

    Args:
        model: a refiner (see :func:`load_refiner`).
        rgb: (N, H, W, 3) uint8.
        mask: (H, W) or (N, H, W) uint8, 1 inside the image circle; None detects it per frame.
        batch_size: the most frames per forward pass (fewer for large frames).
    Returns (N, H, W, 3) uint8, black (0) outside the mask.
    """
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"refine_images needs (N, H, W, 3) uint8 frames, got {rgb.shape} {rgb.dtype}")
    n, h, w = rgb.shape[:3]
    if mask is None:
        mask = np.stack([realdata.detect_border_mask(f) for f in rgb])
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    if mask.shape[-2:] != (h, w) or mask.ndim not in (2, 3):
        raise InputError(f"mask of shape {mask.shape} does not fit frames of {h}x{w}")
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (n, h, w))
    device = next(model.parameters()).device
    step = max(1, min(batch_size, MAX_BATCH_PIXELS // (h * w)))
    out = np.empty_like(rgb)
    with torch.inference_mode():
        for i in range(0, n, step):
            x = to_tensor(rgb[i:i + step]).to(device)
            m = mask_tensor(mask[i:i + step]).to(device)
            y = model(x, m) * m + (m - 1.0)
            out[i:i + step] = to_uint8(y)
    return out


def apply(model_path: str | Path, input: str | Path, out: str | Path, *, batch_size: int = 16,
          overwrite: bool = False) -> dict:
    """Refine a folder, video or ColonSim HDF5 (see the module doc); returns a summary dict.

    ``overwrite`` replaces an existing output; without it an existing OUT.h5 or non-empty folder is an
    InputError. The output appears (by rename) only once every frame is written.
    """
    src, dst = Path(input), Path(out)
    h5_input = check_paths(src, dst, overwrite, keep=[Path(model_path)])
    model, meta = load_refiner(model_path)
    t0 = time.monotonic()
    if h5_input:
        by = {"refiner": str(model_path), "direction": meta.get("direction"), "steps": meta.get("steps")}
        n = write_h5(lambda idx, rgb, mask: refine_images(model, rgb, mask, batch_size), by, src, dst, batch_size)
    else:
        n = write_frames(lambda name, rgb: refine_images(model, rgb[None])[0], src, dst)
    return {"frames": n, "input": str(src), "out": str(dst), "direction": meta.get("direction"),
            "steps": meta.get("steps"), "seconds": round(time.monotonic() - t0, 1)}


def check_paths(src: Path, dst: Path, overwrite: bool, keep: list[Path]) -> bool:
    """Check an input and its output path before any work; returns whether the input is HDF5.

    InputError for a missing input, an output that is the input, the wrong kind of output path, an
    existing output without ``overwrite``, or an ``overwrite`` that would delete the input or one of
    ``keep`` (other files the run reads).
    """
    if not src.exists():
        raise InputError(f"input not found: {src}; expected a folder of images, a video, or a ColonSim .h5")
    if dst.resolve() == src.resolve():
        raise InputError(f"--out {dst} is the input itself; choose another path")
    h5_input = is_hdf5(src)
    _check_out(src, dst, h5_input, overwrite)
    if overwrite and dst.is_dir():
        for path in (src, *keep):
            if path.resolve().is_relative_to(dst.resolve()):
                raise InputError(f"--overwrite would delete {path}, which is inside --out {dst}; "
                                 "choose another --out")
    return h5_input


def _check_out(src: Path, dst: Path, h5_input: bool, overwrite: bool) -> None:
    """InputError if ``dst`` is the wrong kind of path for the input, or exists without ``overwrite``."""
    if h5_input:
        if dst.is_dir():
            raise InputError(f"input {src} is HDF5, so --out must be a .h5 file path, not the folder {dst}")
        if dst.exists() and not overwrite:
            raise InputError(f"{dst} exists; pass --overwrite to replace it, or choose another --out")
        return
    if dst.suffix.lower() in (".h5", ".hdf5"):
        raise InputError(f"input {src} is images or a video, so --out must be a folder, not {dst}")
    if dst.exists() and not dst.is_dir():
        raise InputError(f"--out {dst} is a file; expected a folder for the refined frames")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise InputError(f"output folder {dst} is not empty; pass --overwrite to replace it, "
                         "or choose another --out")


def temp_path(dst: Path) -> Path:
    """The temporary name, next to ``dst``, under which the output is written."""
    dst = dst.resolve()  # also for "." or "out/"
    return dst.with_name(f"{dst.name}.tmp-{os.getpid()}")


def write_frames(transform, src: Path, dst: Path, desc: str = "adapt apply") -> int:
    """Each frame of a folder or video -> dst/NAME, as ``transform(name, rgb)`` (same name and size;
    JPEG quality 95). Frames go into a temporary folder that replaces ``dst`` once all are written.
    """
    frames = realdata.iter_frames(src)
    first = next(frames)  # validates the source (empty folder, unreadable video) before mkdir
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dst)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        n = 0
        # disable=None: no bar when stderr is not a terminal, so that an error stays one line there
        for name, rgb in tqdm(_chain(first, frames), desc=desc, unit="frame", disable=None):
            out = transform(name, rgb)
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if Path(name).suffix.lower() in (".jpg", ".jpeg") else []
            if not cv2.imwrite(str(tmp / name), out[..., ::-1], params):
                raise InputError(f"cannot write {dst / name}")
            n += 1
        _replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dst``, replacing (after the rename) an existing ``dst``."""
    old = None
    if dst.exists():
        old = dst.resolve().with_name(f"{dst.resolve().name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _chain(first, rest):
    yield first
    yield from rest


def write_h5(transform, by: dict, src: Path, dst: Path, batch_size: int, desc: str = "adapt apply") -> int:
    """Copy src to a temporary file next to dst, replace the rgb of every complete frame there by
    ``transform(indices, rgb, mask)`` (mask None, (H, W) or (N, H, W)), record ``by`` as the root
    attribute ``refined_by``, then rename it to dst."""
    open_checked(src).close()  # DatasetError for a corrupt or foreign file
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dst)
    try:
        shutil.copyfile(src, tmp)
        n = _transform_h5_in_place(transform, by, tmp, batch_size, desc)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _transform_h5_in_place(transform, by: dict, path: Path, batch_size: int, desc: str) -> int:
    """Rewrite the rgb of every complete frame of the ColonSim HDF5 ``path``; returns their count."""
    with h5py.File(path, "r+") as f:
        rgb_ds = f[schema.RGB]
        done = f[schema.DONE][()] == 1 if schema.DONE in f else np.ones(rgb_ds.shape[0], bool)
        mask_ds = f[schema.MASK] if schema.MASK in f else None
        h, w = rgb_ds.shape[1:3]
        step = max(1, min(batch_size, MAX_BATCH_PIXELS // (h * w)))
        todo = np.flatnonzero(done)
        for i in tqdm(range(0, todo.size, step), desc=desc, unit="batch", disable=None):
            idx = todo[i:i + step]
            rgb = rgb_ds[idx]
            if mask_ds is None:
                mask = None
            elif mask_ds.ndim == 2:
                mask = mask_ds[()]
            else:
                mask = mask_ds[idx]
            rgb_ds[idx] = transform(idx, rgb, mask)
        f.attrs[ATTR_REFINED_BY] = json.dumps(by)
    return int(todo.size)
