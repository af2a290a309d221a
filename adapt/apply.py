"""Apply a trained refiner at full resolution (the refiner is fully convolutional).

A folder or video of frames becomes a folder of refined frames with the same names and sizes;
a ColonSim HDF5 becomes a copy whose ``rgb`` is refined and whose every other dataset and attribute
is unchanged (one attribute, ``refined_by``, is added). Outside the image circle stays black.

An existing output (a file, or a non-empty folder) is refused unless ``overwrite``. Outputs follow
ColonSim's rule (:func:`colonsim.staged_output`): everything is checked first, the output is written
beside the old one in a hidden staging folder, and moved into place only once complete, so that an
interrupted run never leaves a half-refined output that looks valid. Into an existing folder
(``overwrite``) only the refined frames are moved: files that the command did not write stay.
"""
from __future__ import annotations

import json
import logging
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

from colonsim import open_checked, staged_output
from colonsim.data import realdata, schema
from colonsim.errors import CheckpointError, InputError
from training.checkpoint import TRAINING_STATE, build_model

from .checkpoint import load_refiner_checkpoint
from .data import encode_image, is_hdf5, mask_tensor, to_tensor, to_uint8
from .networks import Refiner

log = logging.getLogger(__name__)

#: Pixels per forward pass; bounds the memory of full-resolution batches (about 1 GB at width 64).
MAX_BATCH_PIXELS = 1 << 20
#: The arguments a refiner checkpoint rebuilds its :class:`adapt.networks.Refiner` with.
REFINER_ARGS = ("width", "blocks", "output", "frame_knots")
#: HDF5 root attribute added to a refined copy: JSON of the refiner's path, direction and steps.
ATTR_REFINED_BY = "refined_by"
#: The smallest frame side that a refiner (3x3 reflect-padded convolutions) and the border detection take.
MIN_FRAME_PX = 8


def check_batch_size(batch_size: int, flag: str = "--batch-size") -> int:
    """InputError unless ``batch_size`` is a whole number of frames, at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"{flag} must be a whole number of frames, at least 1; got {batch_size!r}")
    return int(batch_size)


def check_frame_size(h: int, w: int, name: str) -> None:
    """InputError for a frame too small to refine (see :data:`MIN_FRAME_PX`)."""
    if min(h, w) < MIN_FRAME_PX:
        raise InputError(f"{name} is {w}x{h} pixels; frames must be at least {MIN_FRAME_PX}x{MIN_FRAME_PX}")


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
    batch_size = check_batch_size(batch_size, "batch_size")
    n, h, w = rgb.shape[:3]
    check_frame_size(h, w, "a frame")
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

    ``overwrite`` replaces an existing OUT.h5, or the frames of the same names in an existing folder
    (other files there stay); without it an existing OUT.h5 or non-empty folder is an InputError. The
    output appears (by rename) only once every frame is written. The summary counts the truncated
    JPEGs read (``truncated``; each is refined as decoded, its missing part grey).
    """
    batch_size = check_batch_size(batch_size)
    if str(out).strip() == "":
        raise InputError("--out is empty; give a folder name, or a .h5 file name for an HDF5 input")
    src, dst = Path(input), Path(out)
    h5_input = check_paths(src, dst, overwrite, keep=[Path(model_path)])
    model, meta = load_refiner(model_path)
    t0 = time.monotonic()
    truncated = len(realdata.truncated_images())
    if h5_input:
        by = {"refiner": str(model_path), "direction": meta.get("direction"), "steps": meta.get("steps")}
        n = write_h5(lambda idx, rgb, mask: refine_images(model, rgb, mask, batch_size), by, src, dst, batch_size,
                     overwrite=overwrite)
    else:
        def refine(name: str, rgb: np.ndarray) -> np.ndarray:
            check_frame_size(*rgb.shape[:2], f"frame {name}")
            return refine_images(model, rgb[None])[0]
        n = write_frames(refine, src, dst, overwrite=overwrite)
    return {"frames": n, "input": str(src), "out": str(dst), "direction": meta.get("direction"),
            "steps": meta.get("steps"), "seconds": round(time.monotonic() - t0, 1),
            "truncated": len(realdata.truncated_images()) - truncated}


def check_paths(src: Path, dst: Path, overwrite: bool, keep: list[Path]) -> bool:
    """Check an input and its output path before any work; returns whether the input is HDF5.

    InputError for a missing input, an output that is the input or one of ``keep`` (other files the
    run reads), the wrong kind of output path, or an existing output without ``overwrite``.
    """
    if not src.exists():
        raise InputError(f"input not found: {src}; expected a folder of images, a video, or a ColonSim .h5")
    if dst.resolve() == src.resolve():
        raise InputError(f"--out {dst} is the input itself; choose another path")
    for path in keep:
        if dst.resolve() == path.resolve():
            raise InputError(f"--out {dst} is {path}, which this command reads; choose another path")
    h5_input = is_hdf5(src)
    _check_out(src, dst, h5_input, overwrite)
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


def write_frames(transform, src: Path, dst: Path, desc: str = "adapt apply", *, overwrite: bool = False) -> int:
    """Each frame of a folder or video -> dst/NAME, as ``transform(name, rgb)`` (same name and size;
    JPEG quality 95). Frames are written into a staging folder beside ``dst`` and moved into it once
    all are written (:func:`colonsim.staged_output`); files in ``dst`` of other names stay."""
    frames = realdata.iter_frames(src)
    first = next(frames)  # validates the source (empty folder, unreadable video) before mkdir
    dst.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with staged_output(dst, overwrite=overwrite, directory=True) as tmp:
        # disable=None: no bar when stderr is not a terminal, so that an error stays one line there
        for name, rgb in tqdm(_chain(first, frames), desc=desc, unit="frame", disable=None):
            out = transform(name, rgb)
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if Path(name).suffix.lower() in (".jpg", ".jpeg") else []
            (tmp / name).write_bytes(encode_image(name, out, params))
            n += 1
    return n


def _chain(first, rest):
    yield first
    yield from rest


def write_h5(transform, by: dict, src: Path, dst: Path, batch_size: int, desc: str = "adapt apply", *,
             overwrite: bool = False) -> int:
    """Copy src beside dst (a staging folder), replace the rgb of every complete frame there by
    ``transform(indices, rgb, mask)`` (mask None, (H, W) or (N, H, W)), record ``by`` as the root
    attribute ``refined_by``, then move it onto dst (:func:`colonsim.staged_output`)."""
    with open_checked(src) as f:  # DatasetError for a corrupt or foreign file
        h, w = f[schema.RGB].shape[1:3]
    check_frame_size(h, w, f"the frames of {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with staged_output(dst, overwrite=overwrite) as tmp:
        shutil.copyfile(src, tmp)
        n = _transform_h5_in_place(transform, by, tmp, batch_size, desc)
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
