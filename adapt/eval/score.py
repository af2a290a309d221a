"""How well adaptation works: a small real-versus-synthetic classifier (a classifier two-sample test).

Two classifiers of the same shape and seed are trained, each on one half of the frames and tested
on the other half: one tells raw real frames from synthetic ones (``acc_raw``, near 1 when the
domains differ), one tells refined real frames from synthetic ones (``acc_refined``; the refiner
works when it falls towards 0.5). Accuracies are balanced (the mean of the two classes' accuracies).
Both see only a square inside each frame's image circle, so the border's shape (octagonal for the
real scope, round for the renderer) cannot give the domain away. ``self_reg_l1`` is the mean
|refined - raw| inside the image circle, intensities in [0, 1].

The structure floor (``floor=True``, ``acc_structure``): the same test on what a refiner that
keeps structure must keep, and nothing else: each square's grey level, low-passed (Gaussian,
``floor_sigma_px`` at the classifier's size), with its mean and contrast normalized per frame.
Colour, texture, noise, highlights, brightness and contrast are all gone; the layout of light and
dark (the lumen, the folds, a polyp's outline) remains. A refiner with self-regularization keeps
that layout, so by this classifier its ``acc_refined`` is not expected much below
``acc_structure``: where the floor is high, the two sets differ in what the frames show, and only
other synthetic (or real) frames can close that gap. ``adapt match`` (no training), which keeps
the layout and imposes the synthetic defocus, tones and colour, comes down to 0.79 on 90 held-out
CVC-ColonDB frames against a floor of 0.85 (ten classifier seeds; benchmarks/RESULTS.md). The
floor is the mean over three seeds.

Before testing, every BatchNorm's statistics are set from the final weights on the training
frames (:func:`adapt.eval.classifier.recalibrate_batchnorm`): with the running averages that
training leaves, the test logits shift together and a classifier that separates the sets could
score 0.5.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch import nn

from colonsim.errors import InputError

from ..apply import load_refiner, refine_images
from ..data import FolderFrames, open_frames, squares
from .classifier import fit_and_test, train_and_test

# The self-regularization's low-pass is 2 px on 128-px training crops whose side is 0.4-0.9 of the
# image circle's box: c/64 of the box side for a crop of c, about 1/100 in the middle (c = 0.65). The
# score's squares span about 0.72 of the box at 64 px, which makes that 0.9 px (0.55-1.25 px).
FLOOR_SIGMA_PX = 0.9
FLOOR_SEEDS = 3


def _standardized(x: np.ndarray) -> np.ndarray:
    """(N, S, S, C) float32 shifted and scaled to mean 128 and standard deviation 40 per frame and
    channel (a flat frame stays flat); uint8."""
    m, sd = x.mean((1, 2), keepdims=True), x.std((1, 2), keepdims=True)
    return np.clip((x - m) / (sd + 1.0) * 40.0 + 128.0, 0, 255).round().astype(np.uint8)


def blurred(x: np.ndarray, sigma_px: float) -> np.ndarray:
    """(N, S, S[, C]) float32, each image blurred by a Gaussian of ``sigma_px`` (0: unchanged)."""
    return np.stack([cv2.GaussianBlur(q, (0, 0), sigma_px) for q in x]).reshape(x.shape) if sigma_px > 0 else x


def structure_view(squares: np.ndarray, sigma_px: float = FLOOR_SIGMA_PX) -> np.ndarray:
    """What structure-keeping leaves of (N, S, S, 3) uint8 squares: the grey level, low-passed by a
    Gaussian of ``sigma_px``, shifted and scaled to mean 128 and standard deviation 40 per frame
    (a flat frame stays flat); (N, S, S, 3) uint8 with three equal channels."""
    grey = blurred(squares.astype(np.float32).mean(-1, keepdims=True), sigma_px)
    return np.repeat(_standardized(grey), 3, -1)


def structure_floor(real_sq: np.ndarray, synth_sq: np.ndarray, steps: int, batch_size: int, seed: int,
                    sigma_px: float = FLOOR_SIGMA_PX) -> float:
    """The classifier's balanced accuracy on the structure views of real and synthetic squares,
    averaged over seeds ``seed .. seed + FLOOR_SEEDS - 1``."""
    r, s = structure_view(real_sq, sigma_px), structure_view(synth_sq, sigma_px)
    return float(np.mean([train_and_test(r, s, steps, batch_size, seed + k) for k in range(FLOOR_SEEDS)]))


def cue_views(squares: np.ndarray, sigma_px: float = FLOOR_SIGMA_PX) -> dict[str, np.ndarray]:
    """Views of (N, S, S, 3) uint8 squares that each keep the layout and one more cue, in the order
    a refiner has to deal with them:

    - ``layout``: :func:`structure_view` (grey, low-passed, brightness and contrast normalized);
    - ``+brightness``: grey and low-passed, each frame's brightness and contrast kept;
    - ``+colour``: low-passed colour, each channel normalized (the colour's layout, not its level);
    - ``+texture``: grey, normalized, not low-passed (vessels, highlights, noise kept);
    - ``everything``: the squares themselves."""
    soft = blurred(squares.astype(np.float32), sigma_px)
    grey = soft.mean(-1, keepdims=True)
    return {"layout": structure_view(squares, sigma_px),
            "+brightness": np.repeat(np.clip(grey, 0, 255).round().astype(np.uint8), 3, -1),
            "+colour": _standardized(soft),
            "+texture": structure_view(squares, 0.0),
            "everything": squares}


def separating_cues(real_sq: np.ndarray, synth_sq: np.ndarray, steps: int, batch_size: int, seed: int,
                    sigma_px: float = FLOOR_SIGMA_PX) -> dict[str, float]:
    """The classifier's balanced accuracy on each of :func:`cue_views` of the two sets (mean over
    ``FLOOR_SEEDS`` seeds): which properties tell the sets apart, beyond the layout that a
    structure-keeping refiner must keep."""
    rv, sv = cue_views(real_sq, sigma_px), cue_views(synth_sq, sigma_px)
    return {k: round(float(np.mean([train_and_test(rv[k], sv[k], steps, batch_size, seed + j)
                                    for j in range(FLOOR_SEEDS)])), 4) for k in rv}


def _refined_frames(real, refined) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The refined version of each real frame (cache resolution), from a model or from files."""
    if isinstance(refined, nn.Module) or Path(refined).suffix == ".pt":
        model = refined if isinstance(refined, nn.Module) else load_refiner(refined)[0]
        out = [refine_images(model, real.get(i)[0][None], real.get(i)[1])[0] for i in range(len(real))]
        return out, [real.get(i)[1] for i in range(len(real))]
    other = open_frames(refined)
    if len(other) != len(real):
        raise InputError(f"{refined} holds {len(other)} frames but the real source holds {len(real)}; "
                         "give the refined versions of exactly the real frames")
    if isinstance(real, FolderFrames) and isinstance(other, FolderFrames) and other.names != real.names:
        raise InputError(f"the frame names in {refined} differ from those of the real frames")
    frames = []
    for i in range(len(real)):
        r = other.get(i)[0]
        shape = real.get(i)[0].shape
        frames.append(r if r.shape == shape else cv2.resize(r, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))
    return frames, [real.get(i)[1] for i in range(len(real))]


def _frame_names(frames, idx) -> list[str]:
    names = getattr(frames, "names", None)
    return [str(names[i]) if names else f"#{int(i)}" for i in idx]


def _mean_logits(n: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each frame's mean test logit over the classifier seeds that tested it (nan if none did)."""
    total, count = np.zeros(n), np.zeros(n)
    for idx, logits in parts:
        np.add.at(total, idx, logits)
        np.add.at(count, idx, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def examples_grid(groups: list[tuple[str, np.ndarray, list[str], np.ndarray]], per_row: int = 8,
                  tile_px: int = 96) -> np.ndarray:
    """A picture of what the classifier decided: for each group (title, squares (N, S, S, 3) uint8
    RGB, names, mean test logits), the ``per_row`` frames it called most real and the ``per_row``
    it called most synthetic, each tile labelled with its frame's name and logit. Frames no
    classifier tested are left out. Returns a BGR uint8 image."""
    font, rows = cv2.FONT_HERSHEY_SIMPLEX, []
    width = per_row * tile_px

    def strip(text: str) -> np.ndarray:
        bar = np.full((22, width, 3), 255, np.uint8)
        cv2.putText(bar, text, (4, 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return bar

    for title, crops, names, logits in groups:
        tested = np.flatnonzero(np.isfinite(logits))
        order = tested[np.argsort(-logits[tested], kind="stable")]
        k = min(per_row, order.size)
        for label, pick in (("called most real", order[:k]), ("called most synthetic", order[::-1][:k])):
            row = np.full((tile_px, width, 3), 255, np.uint8)
            for j, i in enumerate(pick):
                tile = cv2.resize(np.ascontiguousarray(crops[i][..., ::-1]), (tile_px, tile_px),
                                  interpolation=cv2.INTER_NEAREST)
                text = f"{names[i][:10]} {logits[i]:+.1f}"
                cv2.rectangle(tile, (0, tile_px - 14), (tile_px - 1, tile_px - 1), (0, 0, 0), -1)
                cv2.putText(tile, text, (2, tile_px - 4), font, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
                row[:, j * tile_px:(j + 1) * tile_px] = tile
            rows += [strip(f"{title}: {label} (logit > 0: real)"), row]
    return np.vstack(rows)


def check_examples_path(path: str | Path) -> Path:
    """InputError unless ``path`` is a .png or .jpg file in an existing folder."""
    p = Path(path)
    if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"--examples must name a .png or .jpg file, got {p}")
    if not p.parent.is_dir():
        raise InputError(f"--examples: folder {p.parent} does not exist")
    return p


class _ListFrames:
    def __init__(self, frames, masks):
        self.frames, self.masks = frames, masks

    def __len__(self):
        return len(self.frames)

    def get(self, i):
        return self.frames[i], self.masks[i]


def check_repeats(repeats: int, option: str = "--repeats") -> None:
    """InputError, naming ``option``, unless ``repeats`` (classifier seeds) is an integer from 1 to 100."""
    if not (isinstance(repeats, int) and 1 <= repeats <= 100):
        raise InputError(f"{option} must be an integer from 1 to 100, got {repeats}")


#: The smallest classifier input side: its training crops are at least 8 px (adapt.eval.classifier).
MIN_SIZE_PX, MAX_SIZE_PX = 8, 1024


def check_size(size_px: int, option: str = "--size") -> int:
    """InputError, naming ``option``, unless ``size_px`` is an integer side from MIN_SIZE_PX to MAX_SIZE_PX."""
    if isinstance(size_px, bool) or not isinstance(size_px, (int, np.integer)) \
            or not MIN_SIZE_PX <= size_px <= MAX_SIZE_PX:
        raise InputError(f"{option} must be an integer from {MIN_SIZE_PX} to {MAX_SIZE_PX} (pixels), got {size_px!r}")
    return int(size_px)


def score(real: str | Path, refined: str | Path | nn.Module, synthetic: str | Path, *, size_px: int = 64,
          steps: int = 300, batch_size: int = 32, max_frames: int = 400, seed: int = 0,
          floor: bool = False, floor_sigma_px: float = FLOOR_SIGMA_PX, cues: bool = False,
          repeats: int = 1, examples: str | Path | None = None) -> dict:
    """Score a refiner by a real-versus-synthetic classifier on frames it was not trained on.

    Args:
        real: held-out real frames (a folder, a video, or a ColonSim HDF5).
        refined: the refined versions of those frames (a folder with the same names, or an HDF5),
            or a refiner (a run's ``model.pt`` or a module) to refine them here.
        synthetic: a ColonSim HDF5 of synthetic frames (up to ``max_frames``, evenly spaced).
        size_px: side of the classifier's input squares; steps, batch_size: its training.
        floor: also measure the structure floor (see the module doc), with ``floor_sigma_px``.
        cues: also measure :func:`separating_cues` of the raw and of the refined frames.
        repeats: train the classifier with seeds ``seed .. seed + repeats - 1`` and report the mean
            accuracies (with 90 held-out frames one classifier's accuracy varies by about +-0.05);
            odd seeds swap the train and test halves, so that from two seeds on every frame is tested.
        examples: write a picture here (.png or .jpg, :func:`examples_grid`) of the refined real
            and the synthetic frames that the refined-versus-synthetic classifiers called most
            real and most synthetic, by each frame's mean test logit over the seeds.
    Returns {"acc_raw", "acc_refined", "self_reg_l1", "n_real", "n_synthetic"}, "acc_structure"
    when ``floor``, "cues_raw", "cues_refined" ({view: accuracy}) when ``cues``, and
    "acc_raw_seeds", "acc_refined_seeds" (one accuracy per classifier seed) when ``repeats > 1``.
    """
    check_repeats(repeats)
    size_px = check_size(size_px)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"--train-steps must be an integer, at least 1, got {steps!r}")
    if examples is not None:
        examples = check_examples_path(examples)
    if floor and not floor_sigma_px >= 0:
        raise InputError(f"--floor-sigma must be at least 0 px, got {floor_sigma_px}")
    real_frames = open_frames(real)
    synth_frames = open_frames(synthetic)
    ref_list, masks = _refined_frames(real_frames, refined)
    refined_frames = _ListFrames(ref_list, masks)
    n_real = min(len(real_frames), max_frames)
    real_idx = np.linspace(0, len(real_frames) - 1, n_real).round().astype(int)
    synth_idx = np.linspace(0, len(synth_frames) - 1, min(len(synth_frames), max_frames)).round().astype(int)
    raw_sq = squares(real_frames, real_idx, size_px)
    ref_sq = squares(refined_frames, real_idx, size_px)
    syn_sq = squares(synth_frames, synth_idx, size_px)
    diffs = [np.abs(ref_list[i].astype(np.float32) - real_frames.get(int(i))[0]).mean(-1)[masks[i] > 0].mean()
             for i in real_idx]
    seeds = range(seed, seed + repeats)
    acc_raw = [train_and_test(raw_sq, syn_sq, steps, batch_size, s) for s in seeds]
    fits = [fit_and_test(ref_sq, syn_sq, steps, batch_size, s) for s in seeds]
    acc_ref = [f[0] for f in fits]
    out = {"acc_raw": round(float(np.mean(acc_raw)), 4),
           "acc_refined": round(float(np.mean(acc_ref)), 4),
           "self_reg_l1": round(float(np.mean(diffs)) / 255.0, 5),
           "n_real": int(n_real), "n_synthetic": int(len(synth_idx))}
    if repeats > 1:
        out["acc_raw_seeds"] = [round(a, 4) for a in acc_raw]
        out["acc_refined_seeds"] = [round(a, 4) for a in acc_ref]
    if examples is not None:
        groups = [("real, refined", ref_sq, _frame_names(real_frames, real_idx),
                   _mean_logits(len(ref_sq), [f[1] for f in fits])),
                  ("synthetic", syn_sq, _frame_names(synth_frames, synth_idx),
                   _mean_logits(len(syn_sq), [f[2] for f in fits]))]
        ok, buf = cv2.imencode(examples.suffix, examples_grid(groups))
        if not ok:
            raise InputError(f"could not write {examples}")
        examples.write_bytes(buf.tobytes())   # by bytes: cv2.imwrite crashed on a name that is not UTF-8
        out["examples"] = str(examples)
    if floor:
        out["acc_structure"] = round(structure_floor(raw_sq, syn_sq, steps, batch_size, seed, floor_sigma_px), 4)
    if cues:
        out["cues_raw"] = separating_cues(raw_sq, syn_sq, steps, batch_size, seed, floor_sigma_px)
        out["cues_refined"] = separating_cues(ref_sq, syn_sq, steps, batch_size, seed, floor_sigma_px)
    return out
