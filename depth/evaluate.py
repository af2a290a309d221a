"""Evaluation of a depth network against ground truth (``colonsim depth eval``).

The data is a ColonSim HDF5 file (rgb, depth, mask), a folder in one of the dataset layouts that
``colonsim export`` writes (SimCol3D, C3VD, PNG + .npy; read by
:class:`colonsim.data.export.LayoutReader`, its depth encoding by the layout or ``--depth-scale``),
or a folder of real frames whose ground truth follows the folder contract (:mod:`depth.gt`). The
field mask is the folder's ``mask.npy`` when it has one, else the detected image circle
(:func:`colonsim.data.realdata.detect_border_mask`).

A frame transform, when given, changes every frame before the depth network sees it. It is any
callable ``transform(rgb, mask) -> rgb`` on a batch: rgb (N, H, W, 3) uint8, mask (N, H, W) uint8
(1 inside the image circle) -> (N, H, W, 3) uint8. The paper's reverse domain adaptation is one: a
refiner that makes real frames look synthetic (experiment/ composes adapt/'s refiner with this
evaluation; depth/ knows nothing of adapt/).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from colonsim.data import schema
from colonsim.errors import InputError

from .metrics import ALIGN_MODES, aggregate, compute_metrics
from .networks import load_model
from .predict import predict_depth

log = logging.getLogger(__name__)
HDF5_SUFFIXES = (".h5", ".hdf5")

#: rgb (N, H, W, 3) uint8, mask (N, H, W) uint8 -> rgb (N, H, W, 3) uint8 (see the module doc)
FrameTransform = Callable[[np.ndarray, np.ndarray], np.ndarray]


def iter_hdf5(path: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, rgb (H, W, 3) uint8, depth (H, W) float32 mm, mask (H, W) uint8) of each complete frame;
    the name is its row in the file, six digits."""
    from colonsim.data.dataset import FrameDataset

    from .data import check_depth

    ds = FrameDataset(path)
    try:
        for i in range(len(ds)):
            a = ds.read(i)
            check_depth(a[schema.DEPTH], f"{path} frame {ds.row(i)[1]}")   # NaN would make every metric NaN
            yield f"{ds.row(i)[1]:06d}", a[schema.RGB], a[schema.DEPTH], a[schema.MASK]
    finally:
        ds.close()


def iter_layout(path: Path, depth_scale: float | None, kind: str) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The same for a SimCol3D, C3VD or PNG + .npy folder (``kind``); frames without a depth file
    are skipped."""
    from colonsim.data.export import LayoutReader
    from colonsim.data.realdata import detect_border_mask

    from .data import check_depth

    lay = LayoutReader(path, kind, mm_per_unit=depth_scale)
    log.info("depth eval: %s is a %s folder (%d frames)", path, lay.kind, len(lay))
    found = 0
    for k, name in enumerate(lay.names):
        if not lay.has_depth(k):
            continue
        rgb, depth = lay.rgb(k), lay.depth(k)
        if depth.shape != rgb.shape[:2]:
            raise InputError(f"depth of {name} is {depth.shape[1]}x{depth.shape[0]} but the frame is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}; they must have the same size")
        check_depth(depth, f"{path} {name}")
        mask = lay.mask[k] if lay.mask is not None and lay.mask.shape[1:] == depth.shape else detect_border_mask(rgb)
        found += 1
        yield name, rgb, depth, mask
    if not found:
        raise InputError(f"none of the {len(lay)} frames of the {lay.kind} folder {path} has a depth file")
    if found < len(lay):
        log.warning("depth eval: %d of %d frames have no depth file and were skipped", len(lay) - found, len(lay))


def iter_folder(path: Path, depth_scale: float | None) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The same for a folder of images with ground-truth depth files; images without one are skipped.
    A folder in a dataset layout (SimCol3D, C3VD, PNG + .npy) is read by :func:`iter_layout`."""
    from colonsim.data.export import find_layout
    from colonsim.data.realdata import detect_border_mask, list_images, read_image

    from .gt import read_depth_for

    kind = find_layout(path)
    if kind is not None:
        yield from iter_layout(path, depth_scale, kind)
        return

    found = 0
    images = list_images(path)
    for p in images:
        rgb = read_image(p)
        depth = read_depth_for(p, rgb.shape[:2], depth_scale)
        if depth is None:
            continue
        found += 1
        yield p.name, rgb, depth, detect_border_mask(rgb)
    if not found:
        raise InputError(f"none of the {len(images)} images in {path} has a ground-truth depth file "
                         "(NAME.npy, or a 16-bit PNG/TIFF beside it or in a sibling depth/ folder)")
    if found < len(images):
        log.warning("depth eval: %d of %d images have no ground truth and were skipped",
                    len(images) - found, len(images))


def evaluate(model_path: str | Path, data: str | Path, *, transform: FrameTransform | None = None,
             align: str = "none", max_depth_mm: float = 200.0, depth_scale: float | None = None) -> dict[str, Any]:
    """Metrics of a depth network on a dataset.

    Args:
        model_path: a depth checkpoint (RUN/model.pt).
        data: a ColonSim HDF5 file, a SimCol3D / C3VD / PNG + .npy folder, or a folder of images with
            ground-truth depth.
        transform: a frame transform applied to every frame first (see the module doc), or None.
        align: per-image scale alignment, "none", "median" or "lsq" (see depth.metrics).
        max_depth_mm: ground truth beyond this depth is ignored.
        depth_scale: mm per unit of 16-bit ground-truth files (folders only; a SimCol3D or C3VD
            folder has its own, which this replaces).
    Returns {"n": frames, "align": align, "metrics": means of depth.metrics.METRIC_KEYS,
    "per_image": [{"name": ..., metrics...}, ...]}.
    """
    if align not in ALIGN_MODES:
        raise InputError(f"unknown --align {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    data = Path(data)
    if data.is_dir():
        frames = iter_folder(data, depth_scale)
    elif data.suffix.lower() in HDF5_SUFFIXES or data.is_file():
        frames = iter_hdf5(data)
    else:
        raise InputError(f"evaluation data not found: {data}; expected DATA.h5 or a folder of images")
    model, _ = load_model(model_path)
    per_image = []
    for name, rgb, gt, mask in frames:
        if transform is not None:  # a batch of one: the frames of a folder differ in size
            rgb = transform(rgb[None], mask[None])[0]
        pred = predict_depth(model, rgb)
        per_image.append({"name": name, **compute_metrics(pred, gt, mask, align=align, max_depth_mm=max_depth_mm)})
    return {"n": len(per_image), "align": align, "metrics": aggregate(per_image), "per_image": per_image}
