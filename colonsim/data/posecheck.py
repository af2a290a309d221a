"""``colonsim inspect --check``: do the poses, depth and intrinsics of a sequence file agree?

On a sample of pairs of frames of one sequence (up to :data:`MAX_GAP` apart), each pixel's point (its depth through
the lens) is moved into the next frame by the poses, and compared with that frame's own rendered
depth where it lands (:func:`colonsim.render.flow.landing_error`: the distance in pixels to where
the next frame sees that depth). Where poses, depth and lens agree it is ~0; the median of a pair
must be at most :data:`MAX_MEDIAN_PX`. A pose stored in another convention (transposed,
world-to-camera, OpenCV axes) puts the point pixels away from where the next frame sees it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from colonsim.config import from_dict
from colonsim.data import h5read, schema
from colonsim.errors import DatasetError

MAX_MEDIAN_PX = 0.5   # a point seen in two frames lands where the poses say, within this (median)
N_PAIRS = 8           # pairs of frames of one sequence checked, spread over the file
MAX_GAP = 8           # the frames of a pair are this many apart (fewer in shorter sequences)
MIN_MEASURED = 0.2    # a pair counts if at least this fraction of its pixels can be measured


def check_poses(path: str | Path, n_pairs: int = N_PAIRS) -> dict[str, Any]:
    """Check a sequence file (see the module doc). Returns {pairs, median_px (per pair), worst_px,
    measured (fraction of pixels per pair), ok, errors}; a file of independent frames (sequence
    length 1) has nothing to check (pairs 0, ok True, and a note)."""
    from colonsim.render.flow import FlowGeometry, landing_error
    from colonsim.render.lens import Lens, LensConfig

    with h5read.open_checked(path) as f:
        attrs = h5read.read_attrs(f)
        cfg = attrs.get(schema.ATTR_CONFIG) or {}
        seq = int((cfg.get("trajectory") or {}).get("sequence_length", 1)) if isinstance(cfg, dict) else 1
        camera = attrs.get(schema.ATTR_CAMERA)
        if not isinstance(camera, dict):
            raise DatasetError(f"{path}: no lens model in the '{schema.ATTR_CAMERA}' attribute; cannot check poses")
        n, h, w = f[schema.RGB].shape[:3]
        done = f[schema.DONE][()] == 1 if schema.DONE in f else np.ones(n, bool)
        gap = min(seq - 1, MAX_GAP)   # the farther apart, the larger the error of a wrong pose
        starts = [i for i in range(n - gap) if (i + gap) // seq == i // seq and done[i] and done[i + gap]] \
            if gap > 0 else []
        if not starts:
            return {"pairs": 0, "median_px": [], "worst_px": None, "measured": [], "ok": True,
                    "errors": [], "note": "no two frames of one sequence (sequence_length 1)"}
        pick = [starts[k] for k in np.unique(np.linspace(0, len(starts) - 1, min(n_pairs, len(starts))).astype(int))]
        geo = FlowGeometry(Lens(from_dict(LensConfig, camera), w, h))
        medians, measured, errors = [], [], []
        for i in pick:
            j = i + gap
            e = landing_error(geo, f[schema.DEPTH][i], f[schema.POSE][i], f[schema.DEPTH][j], f[schema.POSE][j])
            have = np.isfinite(e)
            src = int(np.count_nonzero(f[schema.DEPTH][i] > 0))
            frac = float(have.sum() / max(src, 1))
            med = float(np.median(e[have])) if have.any() else float("inf")
            if frac < MIN_MEASURED:
                med = float("inf")   # most points land outside the next frame: the poses disagree
            medians.append(round(med, 4))
            measured.append(round(frac, 4))
            if med > MAX_MEDIAN_PX:
                errors.append(f"frames {i} and {j}: a point seen in both lands {med:.2f} px (median) from "
                              f"where the poses, depth and intrinsics say (at most {MAX_MEDIAN_PX} px; "
                              f"{frac:.0%} of the pixels measured); is the pose camera-to-world, mm, OpenGL axes?")
    return {"pairs": len(pick), "median_px": medians, "worst_px": max(medians), "measured": measured,
            "ok": not errors, "errors": errors}
