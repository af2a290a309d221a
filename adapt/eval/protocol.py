"""The adaptation benchmark's protocol (``benchmarks/adapt_quality.py`` drives it).

Real frames are split into training and held-out blocks of neighbouring frames (:func:`split_real`).
The held-out frames are matched to the synthetic set (``adapt match``, the training-free reference),
a refiner is trained on the training frames (raw, matched, or given only some of the match's steps),
and both are scored on the held-out frames by ``adapt score``'s classifier (:func:`run`).
:func:`held_out_change` says what the refiner did to the held-out frames it was scored on: near no
change, ``acc_refined`` measures its input. The work folder holds real_train/, real_heldout/,
matched_heldout/ (and input_heldout/, matched_train/ where used), run/ (the refiner's run folder,
whose model.pt is scored),
refined_heldout/, results.json, grid.png and examples.png. :mod:`adapt.eval.select` picks among a
finished run's snapshots and scores it against renders of the held-out frames' own layouts.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from colonsim import detect_border_mask, list_images, read_image
from colonsim.config import load
from colonsim.errors import InputError

from ..apply import apply, load_refiner, refine_images
from ..checkpoint import run_model
from ..config import DEFAULTS, AdaptConfig
from ..data import inscribed_box
from ..logbook import CHANGED_LEVELS
from ..train import train_refiner
from .match import STEPS, match
from .pick import pick
from .score import score

log = logging.getLogger(__name__)

#: The benchmark's refiner width where SimGAN uses 64, sized for a CPU budget.
BENCHMARK_WIDTH = 32


def benchmark_config(path: Path | None, overrides: list[str], size: int, seed: int, threads: int,
                     minutes: float) -> AdaptConfig:
    """The refiner's config: adapt's defaults, then the benchmark's (width :data:`BENCHMARK_WIDTH`),
    then the user's file, then the run's own settings (direction, seed, size, threads, a wall-time
    budget in place of a step count), then ``overrides``. A wrong key or value raises ConfigError,
    before anything is split, matched or trained."""
    return load(AdaptConfig, defaults=[DEFAULTS, {"refiner": {"width": BENCHMARK_WIDTH}}], path=path, overrides=[
        "direction=reverse", f"seed={seed}", f"data.size_px={size}", f"data.cache_short_side_px={2 * size}",
        f"compute.threads={threads}", "compute.device=auto", "schedule.steps=1000000",
        f"schedule.time_limit_min={minutes}", *overrides])


def split_real(real: Path, work: Path, holdout: float, block: int, fold: int | None = None
               ) -> tuple[Path, Path, int, int]:
    """Symlink folders real_train/ and real_heldout/ in ``work``: alternate blocks of ``block``
    neighbouring frames (neighbouring CVC-ColonDB frames come from the same video), about
    ``holdout`` of the blocks held out: block k is held out when k % round(1 / holdout) is ``fold``
    (default the last of them). Returns (train, held-out, their frame counts)."""
    files = list_images(real)
    every = max(2, round(1.0 / holdout))
    fold = every - 1 if fold is None else fold
    if not 0 <= fold < every:
        raise InputError(f"--fold {fold}: choose 0..{every - 1} (one in {every} blocks is held out)")
    train, held = work / "real_train", work / "real_heldout"
    for d in (train, held):
        d.mkdir(parents=True, exist_ok=True)
        for p in d.iterdir():
            p.unlink()
    n_held = 0
    for i, p in enumerate(files):
        is_held = (i // block) % every == fold
        n_held += is_held
        (held if is_held else train).joinpath(p.name).symlink_to(p.resolve())
    return train, held, len(files) - n_held, n_held


def side_by_side(held: Path, refiner: Path, out: Path, n: int, short_side_px: int,
                 matched: Path | None = None) -> None:
    """grid.png: (held-out real frame, refined) at ``short_side_px``, two per row; with ``matched``
    (a folder of the frames after ``adapt match``) three columns: real, matched, matched and refined."""
    model, _ = load_refiner(refiner)
    files = list_images(held)
    chosen = [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]
    gap = lambda h: np.full((h, 4, 3), 255, np.uint8)  # noqa: E731
    tiles = []
    for p in chosen:
        rgb = read_image(p)
        s = short_side_px / min(rgb.shape[:2])
        size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = detect_border_mask(rgb)
        cols = [rgb]
        if matched is not None:
            cols.append(cv2.resize(read_image(matched / p.name), size, interpolation=cv2.INTER_AREA) * mask[..., None])
        cols.append(refine_images(model, cols[-1][None], mask)[0])
        tiles.append(np.concatenate([c for col in cols for c in (col, gap(rgb.shape[0]))][:-1], axis=1))
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0] + 8), (0, w - t.shape[1] + 8), (0, 0))) for t in tiles]
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, len(tiles), 2)]
    cv2.imwrite(str(out), np.concatenate(rows, axis=0)[..., ::-1])


def held_out_change(inputs: Path, refiner: Path) -> dict:
    """What the refiner does to the held-out frames it is scored on (``inputs``: the raw frames, or
    the matched ones), at full resolution as ``adapt apply`` runs it: the mean |refined - input|
    grey level inside the image circle (``delta_grey_heldout``), and the fraction of those pixels
    whose grey level moves by more than :data:`adapt.logbook.CHANGED_LEVELS` (``changed_frac``). A
    refiner stuck at the identity shows as ``changed_frac`` near 0: its ``acc_refined`` then
    measures its input, not the refiner.

    The classifier sees only the largest square inside each circle (:func:`adapt.data.inscribed_box`).
    ``changed_frac_square`` is ``changed_frac`` there; ``shift_square`` and ``shift_rim`` are the
    mean signed grey-level change in that square and in the rest of the circle (means over the
    frames): a refiner that moves levels from one to the other shows as shifts of opposite sign."""
    model, _ = load_refiner(refiner)
    total = moved = moved_sq = total_sq = 0
    diff_sum = 0.0
    shift_sq, shift_rim = [], []
    for p in list_images(inputs):
        rgb = read_image(p)
        mask = detect_border_mask(rgb)
        out = refine_images(model, rgb[None], mask)[0]
        inside = mask > 0
        signed = out.astype(np.float32).mean(-1) - rgb.astype(np.float32).mean(-1)
        d = np.abs(signed[inside])
        total += d.size
        moved += int((d > CHANGED_LEVELS).sum())
        diff_sum += float(d.sum())
        y0, y1, x0, x1 = inscribed_box(mask)
        square = np.zeros_like(inside)
        square[y0:y1, x0:x1] = True
        square &= inside
        rim = inside & ~square
        total_sq += int(square.sum())
        moved_sq += int((np.abs(signed[square]) > CHANGED_LEVELS).sum())
        shift_sq.append(float(signed[square].mean()))
        if rim.any():
            shift_rim.append(float(signed[rim].mean()))
    return {"delta_grey_heldout": round(diff_sum / max(total, 1), 3),
            "changed_frac": round(moved / max(total, 1), 4),
            "changed_frac_square": round(moved_sq / max(total_sq, 1), 4),
            "shift_square": round(float(np.mean(shift_sq)), 3) if shift_sq else 0.0,
            "shift_rim": round(float(np.mean(shift_rim)), 3) if shift_rim else 0.0}


def heldout_input(work: Path, result: dict) -> Path:
    """The folder of held-out frames a finished run's refiner was applied to: the raw frames, the
    matched ones (``match``), or the partly matched ones (``match_steps``)."""
    if not result.get("match"):
        return work / "real_heldout"
    return work / ("input_heldout" if result.get("acc_input") is not None else "matched_heldout")


def read_results(work: Path) -> dict:
    """A finished run's results.json; InputError naming ``work`` when there is none."""
    try:
        return json.loads((work / "results.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{work} is not a finished run's --work folder ({e})") from None


def remeasure(work: Path) -> dict:
    """:func:`held_out_change` of a finished run's saved refiner, written into its results.json;
    returns the change."""
    result = read_results(work)
    inputs, refiner = heldout_input(work, result), run_model(work / "run")
    if not inputs.is_dir() or not refiner.is_file():
        raise InputError(f"{work} is not a finished run's --work folder ({inputs} or {refiner} is missing)")
    change = held_out_change(inputs, refiner)
    result.update(change)
    tmp = work / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, work / "results.json")
    return change


def _seeds(r: dict) -> list[float]:
    return r.get("acc_refined_seeds", [r["acc_refined"]])


def run(work: Path, cfg: AdaptConfig, held: Path, synthetic: Path, train_synthetic: Path, *,
        match_input: bool, input_steps: tuple[str, ...] = STEPS, score_size: int = 64, score_steps: int = 300,
        score_repeats: int = 3, seed: int = 0, cues: bool = False, grid_px: int = 256,
        report: Callable[[str], None] = log.info) -> dict:
    """Match, train, refine and score one run in ``work`` (after :func:`split_real`); returns its
    results (also written to results.json).

    The training-free reference: the held-out frames matched to ``train_synthetic`` and scored
    against ``synthetic`` (``acc_matched``). With ``match_input`` the refiner trains on the training
    frames matched the same way, with only ``input_steps`` of the match's steps (``acc_input``
    scores that input where it is not the whole match), and refines the held-out frames so matched;
    else it trains on and refines the raw frames. ``report`` gets one line per intermediate score.
    """
    matched_held = work / "matched_heldout"
    match(train_synthetic, held, matched_held, seed=seed, overwrite=True)
    m = score(held, matched_held, synthetic, size_px=score_size, steps=score_steps, seed=seed, repeats=score_repeats)
    report(f"training-free match acc_refined={m['acc_refined']:.3f} seeds={_seeds(m)} "
           f"self_reg_l1={m['self_reg_l1']:.4f}")
    input_held, mi = matched_held, None   # the refiner's held-out input, and its score when not the match
    if match_input and input_steps != STEPS:
        input_held = work / "input_heldout"
        match(train_synthetic, held, input_held, seed=seed, steps=input_steps, overwrite=True)
        mi = score(held, input_held, synthetic, size_px=score_size, steps=score_steps, seed=seed,
                   repeats=score_repeats)
        report(f"the refiner's input (adapt match --only {','.join(input_steps)}) "
               f"acc_refined={mi['acc_refined']:.3f} seeds={_seeds(mi)}")
    train_dir = work / "real_train"
    if match_input:
        train_dir = work / "matched_train"
        match(train_synthetic, work / "real_train", train_dir, seed=seed, steps=input_steps, overwrite=True)
    run_dir = work / "run"
    t0 = time.monotonic()
    summary = train_refiner(cfg, train_dir, train_synthetic, run_dir, resume=(run_dir / "last.pt").exists())
    train_s = time.monotonic() - t0
    log.info("trained %d adversarial steps in %.0f s; scoring", summary["steps"], train_s)
    t1 = time.monotonic()
    model = refined = run_model(run_dir)
    if match_input:   # the refiner's input is the matched frame; the score compares with the raw one
        refined = work / "refined_heldout"
        apply(model, input_held, refined, overwrite=True)
    s = score(held, refined, synthetic, size_px=score_size, steps=score_steps, seed=seed, floor=True, cues=cues,
              repeats=score_repeats, examples=work / "examples.png")
    score_s = time.monotonic() - t1
    change = held_out_change(input_held if match_input else held, model)
    side_by_side(held, model, work / "grid.png", 8, grid_px, input_held if match_input else None)
    result = {"size_px": cfg.data.size_px, "adversarial_steps": summary["steps"],
              "schedule_steps": summary["schedule_steps"], "train_s": round(train_s, 1),
              "score_s": round(score_s, 1),
              "delta_grey": summary["losses"].get("refiner/delta_grey"),
              "delta_grey_ema": summary["losses"].get("refiner/delta_grey_ema"),
              "disc_acc": summary["disc_accuracy"],
              "match": match_input, "match_steps": list(input_steps) if match_input else None,
              "synthetic": str(synthetic), "train_synthetic": str(train_synthetic), **s,
              "acc_matched": m["acc_refined"], "acc_matched_seeds": _seeds(m),
              "self_reg_l1_matched": m["self_reg_l1"], **change}
    if mi is not None:
        result.update({"acc_input": mi["acc_refined"], "acc_input_seeds": _seeds(mi)})
    return result


def pick_targets(train_dir: Path, work: Path, seed: int, picks: list[tuple[int | None, Path, str]],
                 report: Callable[[str], None] = log.info) -> dict:
    """``adapt pick`` for each (n, pool, name) with an n: ``n`` renders of ``pool`` kept by the
    layouts of the training frames into ``work/name``. Returns {name: pick summary}."""
    out = {}
    for n, pool, name in picks:
        if n is None:
            continue
        r = pick(train_dir, pool, work / name, n, seed=seed, overwrite=True)
        out[name] = r
        report(f"picked {n} of {r['pool_frames']} renders of {pool} by the layouts "
               f"of {r['real_frames']} training frames (median rank {r['median_rank']:g})")
    return out
