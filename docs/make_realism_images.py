"""Draws docs/img/photoreal_fold{K}.jpg from a `benchmarks/realism.py` work folder: for each fold,
8 held-out real CVC-ColonDB frames (Bernal et al. 2012; top row, evenly spaced over the held-out
videos, centre-cropped to a square) above 8 random `photoreal` renders of that fold (bottom row:
its bank and tuned config, built from the other videos), all at the same size.

Run from the repository root: python docs/make_realism_images.py [WORK] (default runs/realism)."""
import sys
from pathlib import Path

import cv2
import h5py
import hdf5plugin  # noqa: F401  (the renders' compression filters)
import numpy as np

from colonsim.data.realdata import list_images, read_image

ROOT = Path(__file__).resolve().parents[1]
TILE, N = 128, 8


def square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)


work = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "realism"
for fold in sorted(work.glob("fold*")):
    renders = sorted(fold.glob("photoreal*.h5"))
    if not renders:
        continue
    files = list_images(fold / "real_heldout")
    real = [square(read_image(files[i])) for i in np.linspace(0, len(files) - 1, N).round().astype(int)]
    with h5py.File(renders[-1], "r") as f:
        pick = np.sort(np.random.default_rng(0).choice(len(f["rgb"]), N, replace=False))
        rend = [square(f["rgb"][int(i)]) for i in pick]
    grid = np.concatenate([np.concatenate(real, 1), np.concatenate(rend, 1)], 0)
    out = ROOT / "docs" / "img" / f"photoreal_{fold.name}.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(out)
