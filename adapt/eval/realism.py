"""How real renders look: a real-versus-render classifier on held-out real frames.

The same small classifier as ``adapt score`` (:mod:`adapt.eval.classifier`), trained on one half of
each set and tested on the other, ``repeats`` seeds (odd seeds swap the halves). 0.5 means the
classifier cannot tell held-out real frames from renders; 1.0 means every frame gives its set away.
``acc_structure`` is the same test on the layout alone (grey level, low-passed, normalized:
:func:`adapt.eval.score.structure_view`): what the renders' views, not their look, give away.
``cues`` (:func:`adapt.eval.score.separating_cues`) adds one cue at a time to the layout
(brightness, colour, texture): what gives the renders away.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import open_frames, squares
from .classifier import train_and_test
from .score import check_repeats, check_size, separating_cues, structure_floor


def realism(real: str | Path, renders: str | Path, *, size_px: int = 64, steps: int = 300,
            batch_size: int = 32, max_frames: int = 400, repeats: int = 10, seed: int = 0,
            floor: bool = True, cues: bool = False) -> dict:
    """Balanced accuracy of real (a folder, video or HDF5) against renders (a ColonSim HDF5), up to
    ``max_frames`` of each, evenly spaced. Returns {"acc", "acc_seeds", "acc_structure" (when
    ``floor``), "cues" (when ``cues``), "n_real", "n_renders"}."""
    check_repeats(repeats)
    size_px = check_size(size_px)
    real_frames, render_frames = open_frames(real), open_frames(renders)
    real_idx = np.linspace(0, len(real_frames) - 1, min(len(real_frames), max_frames)).round().astype(int)
    rend_idx = np.linspace(0, len(render_frames) - 1, min(len(render_frames), max_frames)).round().astype(int)
    real_sq = squares(real_frames, real_idx, size_px)
    rend_sq = squares(render_frames, rend_idx, size_px)
    accs = [train_and_test(real_sq, rend_sq, steps, batch_size, s) for s in range(seed, seed + repeats)]
    out = {"acc": round(float(np.mean(accs)), 4), "acc_seeds": [round(a, 4) for a in accs],
           "n_real": int(len(real_idx)), "n_renders": int(len(rend_idx))}
    if floor:
        out["acc_structure"] = round(structure_floor(real_sq, rend_sq, steps, batch_size, seed), 4)
    if cues:
        out["cues"] = separating_cues(real_sq, rend_sq, steps, batch_size, seed)
    return out
