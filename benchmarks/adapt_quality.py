"""Adaptation quality benchmark: train the reverse refiner (real -> synthetic; Mahmood, Chen, Durr
2017) for a fixed wall-time budget on CVC-ColonDB frames (Bernal et al. 2012), some held out, against
a clean-style synthetic HDF5, then score it on the held-out frames with a real-vs-synthetic classifier.

Targets (the issue): acc_raw >= 0.95 (the domains differ), acc_refined <= 0.65 (refined real frames
pass for synthetic), and a small self_reg_l1 (structure kept). Look at grid.png: folds and lumen
must still be where they were.

    python benchmarks/adapt_quality.py --synthetic clean.h5               # ~20 min of training
    python benchmarks/adapt_quality.py --config benchmarks/configs/adapt_refiner.yaml --match ...
                                              # the refiner of the results (README; RESULTS.md)
    python benchmarks/adapt_quality.py --minutes 1 --size 64 --set refiner.width=16   # a smoke run
    python benchmarks/adapt_quality.py        # renders its target first (configs/adapt_target.yaml)

Prints one comparable line (``adapt_quality: key=value ...``) and writes results.json, grid.png,
examples.png (``adapt score --examples``) and the run folder (run/) in the work folder.

``--diagnose`` trains nothing: it scores hand-made transforms of the held-out frames (colour replaced
by the synthetic frames' mean tint, grey levels matched to the synthetic histogram, highlights
inpainted, blurred, or a flat synthetic colour) with the same classifier, to show which differences a
refiner would have to remove.

Both modes also report ``acc_structure``, the structure floor of ``colonsim adapt score --floor``:
the same classifier on the frames' layout alone (grey, low-passed, brightness and contrast
normalized per frame), about as low as a refiner that keeps the layout can bring acc_refined
(see adapt/score.py).

Every training run also scores ``acc_matched``: the held-out frames after ``colonsim adapt match``
(the synthetic set's defocus, tone distribution and colour, no training), the reference a learned
refiner has to beat. ``--match`` trains the refiner on matched frames and refines the matched
held-out frames; the score still compares with the raw ones. ``--match-steps`` gives the refiner
only some of the match's steps (for example ``highlights,defocus``), so that it has to learn the
rest itself; ``acc_input`` then scores its input, and ``acc_matched`` stays the whole match.

``--train-synthetic`` gives the refiner other renders to train against than the ones that score
it (``--synthetic``): the match, the colour curve and the discriminators then see only those, so
that a discriminator that learned its renders one by one cannot help the refiner to the renders
of the score.

``--select`` (after a run with ``--set schedule.snapshot_every=N``) picks one of the run's
refiners by the training frames alone, against renders given by ``--select-synthetic``, and
scores each on the held-out frames (select.json): adversarial training moves back and forth, and
the last refiner of a time budget is one draw of where it stands. With ``--match`` the matched
frames are a candidate too, so that the answer is the match where no refiner beats it.

``--pick N`` (and ``--pick-train M``) treat ``--synthetic`` (and ``--train-synthetic``) as pools
of renders: the benchmark keeps N (M) of them by the layouts of its own training frames
(``colonsim adapt pick``; the held-out frames take no part), writes them into the work folder
(synthetic_picked.h5, train_synthetic_picked.h5) and goes on with those: a target that shows what
the real frames show, so that the score reads how the frames look more than what they show.
The held-out blocks (``--block``, 10 frames) come from the same videos as the training frames, so
the picked renders resemble the held-out frames' neighbours. Held out by whole videos (folds of
95 frames: ``--block 95 --fold K``, K = 0..3) picking is no reliable gain: better than renders kept at random
in two folds of four, worse in two (benchmarks/RESULTS.md).

``--control N`` (after a run) scores it again against N renders picked by the held-out frames'
own layouts, so that their coarse layouts (16x16 grey) match and the classifier has to read the
rest: finer structure, and how the frames look, the part a structure-keeping refiner may change
(control.json; see :func:`control_score`). The held-out frames choose only the renders of this
score, never what a refiner or a match trains on. Held out by whole videos, it lowers the match's
score by 0.036 and the structure floor by 0.020 on average (four folds; benchmarks/RESULTS.md).

``changed_frac`` (and ``delta_grey_heldout``) say what the refiner does to the held-out frames it
is scored on: the fraction of their pixels it moves by more than 2 grey levels (and the mean
move). Near 0 the refiner is the identity, and acc_refined measures its input; the run says so.
``delta_grey`` is the refiner's mean change to a training batch at its last logged step (8-bit
grey levels); ``delta_grey_ema`` (with ``optim.ema_decay``) is that of refiner.pt, the moving
average of its weights, which is what is scored. The training log has both at every step, so a
loss_curve.png whose ``_ema`` curve is still climbing shows an average behind its refiner.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# A pixel counts as changed by the refiner when its grey level moves by more than CHANGED_LEVELS
# (8-bit), and a refiner that changes fewer than IDENTITY_WARN_FRAC of them is (nearly) the
# identity: the training log's identity warning uses the same two thresholds.
from adapt.logbook import CHANGED_LEVELS, IDENTITY_WARN_FRAC  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "cvc-colondb"


TARGET = ROOT / "benchmarks" / "configs" / "adapt_target.yaml"


def refiner_config(path: Path | None, overrides: list[str], size: int, seed: int, threads: int, minutes: float):
    """The refiner's config: adapt's defaults, then this benchmark's (width 32 where SimGAN uses 64,
    sized for a CPU budget), then the user's file (``--config``), then the run's own settings
    (direction, seed, size, threads, a wall-time budget in place of a step count), then ``--set``.
    A wrong key or value raises ConfigError, before anything is split, matched or trained."""
    from adapt.config import DEFAULTS, AdaptConfig
    from colonsim.config import load

    return load(AdaptConfig, defaults=[DEFAULTS, {"refiner": {"width": 32}}], path=path, overrides=[
        "direction=reverse", f"seed={seed}", f"data.size_px={size}", f"data.cache_short_side_px={2 * size}",
        f"compute.threads={threads}", "compute.device=auto", "schedule.steps=1000000",
        f"schedule.time_limit_min={minutes}", *overrides])


def render_clean(out: Path, frames: int, size: int, seed: int) -> Path:
    """The clean-style target through `colonsim render --style clean --config` :data:`TARGET`
    (skipped if the file exists)."""
    if out.is_file():
        return out
    cmd = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--frames", str(frames),
           "--size", str(size), "--seed", str(seed), "--style", "clean", "--config", str(TARGET),
           "--workers", "2"]
    print("rendering:", " ".join(cmd[1:]), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return out


def split_real(real: Path, work: Path, holdout: float, block: int, fold: int | None = None
               ) -> tuple[Path, Path, int, int]:
    """Symlink folders train/ and heldout/: alternate blocks of ``block`` neighbouring frames, with
    about ``holdout`` of the blocks held out (neighbouring CVC frames come from the same video):
    block k is held out when k % round(1 / holdout) is ``fold`` (default the last of them)."""
    from colonsim.data.realdata import list_images

    files = list_images(real)
    every = max(2, round(1.0 / holdout))
    fold = every - 1 if fold is None else fold
    if not 0 <= fold < every:
        raise ValueError(f"--fold {fold}: choose 0..{every - 1} (one in {every} blocks is held out)")
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
    (a folder of the frames after `adapt match`) three columns: real, matched, matched and refined."""
    import cv2
    import numpy as np

    from adapt.apply import load_refiner, refine_images
    from colonsim.data.realdata import detect_border_mask, list_images, read_image

    model, _ = load_refiner(refiner)
    files = list_images(held)
    pick = [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]
    gap = lambda h: np.full((h, 4, 3), 255, np.uint8)  # noqa: E731
    tiles = []
    for p in pick:
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
    the matched ones with ``--match``), at full resolution as ``adapt apply`` runs it: the mean
    |refined - input| grey level inside the image circle, and the fraction of those pixels whose
    grey level moves by more than :data:`CHANGED_LEVELS`. A refiner stuck at the identity (the
    failure SimGAN's schedule has to watch for) shows as ``changed_frac`` near 0: its
    ``acc_refined`` then measures its input, not the refiner.

    The classifier sees only the largest square inside each circle (:func:`adapt.score.inscribed_box`).
    ``changed_frac_square`` is ``changed_frac`` there; ``shift_square`` and ``shift_rim`` are the
    mean signed grey-level change in that square and in the rest of the circle (means over the
    frames). A refiner that keeps each frame's levels (``tones: keep``) and moves levels between
    the two shows as shifts of opposite sign: it has hidden levels where the classifier does not
    look."""
    import numpy as np

    from adapt.apply import load_refiner, refine_images
    from adapt.score import inscribed_box
    from colonsim.data.realdata import detect_border_mask, list_images, read_image

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
    matched ones (``--match``), or the partly matched ones (``--match-steps``)."""
    if not result.get("match"):
        return work / "real_heldout"
    return work / ("input_heldout" if result.get("acc_input") is not None else "matched_heldout")


def remeasure(work: Path) -> int:
    """``--remeasure``: :func:`held_out_change` of a finished run's saved refiner, written into its
    results.json and printed; a folder without one is one line on stderr and exit 2."""
    path = work / "results.json"
    try:
        result = json.loads(path.read_text())
        inputs = heldout_input(work, result)
        refiner = work / "run" / "refiner.pt"
        if not inputs.is_dir() or not refiner.is_file():
            raise FileNotFoundError(f"{inputs} or {refiner} is missing")
    except (OSError, ValueError, AttributeError) as e:
        print(f"adapt_quality: {work} is not a finished run's --work folder ({e})", file=sys.stderr)
        return 2
    change = held_out_change(inputs, refiner)
    result.update(change)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    print("adapt_quality remeasure: " + " ".join(f"{k}={v}" for k, v in change.items()) + f" ({path})")
    return 0


def select_snapshot(work: Path, select_synthetic: Path | None, size_px: int, steps: int, repeats: int,
                    select_repeats: int, seed: int) -> int:
    """``--select``: pick one refiner of a finished run by the training frames alone, then score it.

    The candidates are the run's snapshots (``schedule.snapshot_every``) and its final refiner.pt.
    Each refines the run's training frames (matched first with ``--match``), and a classifier
    scores them against ``select_synthetic`` (renders that neither trained the refiner nor score
    it are best; default: the run's --train-synthetic) with ``select_repeats`` seeds: that is
    ``acc_select``, and the candidate with the lowest is picked. No held-out frame takes part in
    the choice. With ``--match``, the matched training frames are scored the same way
    (``acc_select_matched``) and are a candidate themselves ("match", no refiner; its held-out
    score is the run's ``acc_matched``): a refiner is picked only where it reads lower than the
    frames it was given, and otherwise the benchmark's answer is the match. Every refiner is then
    scored on the held-out frames as the run was (``acc_refined``, ``repeats`` seeds), so that the
    choice can be checked against what it was meant to find.
    Writes select.json in ``work``; a folder that is not a finished run with snapshots is one line
    on stderr and exit 2."""
    from adapt.apply import apply
    from adapt.score import score
    from colonsim.errors import ColonSimError

    try:
        result = json.loads((work / "results.json").read_text())
        train_in = work / ("matched_train" if result.get("match") else "real_train")
        held_in = heldout_input(work, result)
        candidates = sorted((work / "run" / "snapshots").glob("refiner_*.pt")) + [work / "run" / "refiner.pt"]
        synthetic = Path(result["synthetic"])
        chooser = Path(select_synthetic or result.get("train_synthetic") or synthetic)
        missing = [p for p in (train_in, held_in, *candidates, synthetic, chooser) if not p.exists()]
        if missing or len(candidates) < 2:
            raise FileNotFoundError(f"missing {missing[0]}" if missing else "no snapshots in run/snapshots "
                                    "(train with --set schedule.snapshot_every=N)")
    except (OSError, ValueError, KeyError, AttributeError) as e:
        print(f"adapt_quality: {work} is not a finished run's --work folder with snapshots ({e})", file=sys.stderr)
        return 2
    rows = []
    select_matched = None
    if result.get("match"):   # the reference on the same frames: the matched training frames, no refiner
        select_matched = round(score(work / "real_train", train_in, chooser, size_px=size_px, steps=steps,
                                     seed=seed, repeats=select_repeats)["acc_refined"], 4)
        print(f"adapt_quality select: match acc_select={select_matched:.3f}", flush=True)
    for c in candidates:
        name = "final" if c.name == "refiner.pt" else c.stem
        out = work / "select" / name
        try:
            steps_done = int(apply(c, train_in, out / "train", overwrite=True)["steps"])
        except ColonSimError as e:   # an unreadable snapshot: nothing written yet but its folder
            print(f"adapt_quality: {c}: {e}", file=sys.stderr)
            return 2
        v = score(work / "real_train", out / "train", chooser, size_px=size_px, steps=steps, seed=seed,
                  repeats=select_repeats)
        apply(c, held_in, out / "heldout", overwrite=True)
        h = score(work / "real_heldout", out / "heldout", synthetic, size_px=size_px, steps=steps, seed=seed,
                  repeats=repeats)
        rows.append({"candidate": name, "adv_steps": steps_done, "acc_select": round(v["acc_refined"], 4),
                     "acc_refined": round(h["acc_refined"], 4),
                     "acc_refined_seeds": h.get("acc_refined_seeds", [h["acc_refined"]])})
        print(f"adapt_quality select: {name} adv_steps={steps_done} acc_select={v['acc_refined']:.3f} "
              f"acc_refined={h['acc_refined']:.3f}", flush=True)
    final = rows[-1]
    ref = "acc_input" if result.get("acc_input") is not None else "acc_matched"   # the refiner's own input
    if select_matched is not None and result.get(ref) is not None:
        # the safeguard: the matched frames themselves are a candidate, first, so that a refiner is
        # picked only where it beats them on the training frames (a tie keeps the match)
        rows.insert(0, {"candidate": "match", "adv_steps": 0, "acc_select": select_matched,
                        "acc_refined": result[ref],
                        "acc_refined_seeds": result.get(ref + "_seeds", [result[ref]])})
    pick = min(rows, key=lambda r: r["acc_select"])   # the first of equals
    summary = {"select_synthetic": str(chooser), "select_repeats": select_repeats, "score_repeats": repeats,
               "candidates": rows, "selected": pick["candidate"], "acc_refined_selected": pick["acc_refined"],
               "acc_refined_final": final["acc_refined"], "acc_matched": result.get("acc_matched"),
               "acc_select_matched": select_matched}
    (work / "select.json").write_text(json.dumps(summary, indent=2))
    print(f"adapt_quality select: selected={pick['candidate']} acc_refined_selected={pick['acc_refined']:.3f} "
          f"acc_refined_final={final['acc_refined']:.3f} acc_matched={result.get('acc_matched')} "
          f"({work / 'select.json'})")
    return 0


def control_score(work: Path, pool: Path | None, n: int, size_px: int, steps: int, repeats: int, seed: int) -> int:
    """``--control N``: score a finished run again, against renders of its held-out frames' own
    layouts.

    The classifier of the run's score tells the held-out frames from the target renders by how
    they look and by what they show (the layout of lumen, folds and wall). A refiner that keeps
    structure may change only the first. Here ``n`` renders of ``pool`` (default: the pool the
    run picked its target from, else its target itself) are kept by the layouts of the held-out
    frames (``colonsim adapt pick --real real_heldout``), and the raw, matched and refined held-out
    frames are scored against those with the run's classifier settings. The coarse layout (16x16
    grey) is then about the same in both sets; finer structure is not, and ``acc_structure`` says
    how much of it still separates them. The held-out frames choose the renders of this score
    only: no training saw them. Writes control.json and
    synthetic_control.h5 in ``work``; a folder that is not a finished run, or a pool too small,
    is one line on stderr and exit 2."""
    from adapt.pick import pick
    from adapt.score import score
    from colonsim.errors import ColonSimError

    try:
        result = json.loads((work / "results.json").read_text())
        held = work / "real_heldout"
        refined = work / "refined_heldout" if result.get("match") else work / "run" / "refiner.pt"
        matched = work / "matched_heldout"
        picked = (result.get("picks") or {}).get("synthetic_picked.h5") or {}
        pool = Path(pool or picked.get("pool") or result["synthetic"])
        missing = [p for p in (held, refined, matched) if not p.exists()]
        if missing:
            raise FileNotFoundError(f"missing {missing[0]}")
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        print(f"adapt_quality: {work} is not a finished run's --work folder ({e})", file=sys.stderr)
        return 2
    if not pool.is_file():
        print(f"adapt_quality: the pool to pick the control renders from is not found: {pool} "
              "(give it with --synthetic)", file=sys.stderr)
        return 2
    target = work / "synthetic_control.h5"
    try:
        r = pick(held, pool, target, n, seed=seed, overwrite=True)
    except ColonSimError as e:
        print(f"adapt_quality: {e}", file=sys.stderr)
        return 2
    print(f"adapt_quality control: picked {n} of {r['pool_frames']} renders of {pool} by the layouts of "
          f"{r['real_frames']} held-out frames (median rank {r['median_rank']:g})", flush=True)
    m = score(held, matched, target, size_px=size_px, steps=steps, seed=seed, repeats=repeats)
    s = score(held, refined, target, size_px=size_px, steps=steps, seed=seed, floor=True, repeats=repeats)
    out = {"frames": n, "pool": str(pool), "picked_by": str(held), "median_rank": r["median_rank"],
           "score_repeats": repeats, "acc_raw": round(s["acc_raw"], 4), "acc_matched": round(m["acc_refined"], 4),
           "acc_refined": round(s["acc_refined"], 4), "acc_structure": round(s["acc_structure"], 4),
           "acc_matched_seeds": m.get("acc_refined_seeds", [m["acc_refined"]]),
           "acc_refined_seeds": s.get("acc_refined_seeds", [s["acc_refined"]]),
           "uncontrolled": {k: result.get(k) for k in ("acc_raw", "acc_matched", "acc_refined", "acc_structure")}}
    (work / "control.json").write_text(json.dumps(out, indent=2))
    print(f"adapt_quality control: acc_raw={out['acc_raw']:.3f} acc_matched={out['acc_matched']:.3f} "
          f"acc_refined={out['acc_refined']:.3f} acc_structure={out['acc_structure']:.3f} "
          f"({work / 'control.json'})")
    return 0


def diagnose(held: Path, synthetic: Path, work: Path, size_px: int, steps: int, seed: int) -> dict:
    """Score hand-made refinements of the held-out frames: {transform: score dict}."""
    import cv2
    import numpy as np

    from adapt.data import open_frames
    from adapt.score import score
    from colonsim.data.realdata import detect_border_mask, list_images, read_image

    syn = open_frames(synthetic)
    pix = np.concatenate([f[m > 0] for f, m in (syn.get(i) for i in range(0, len(syn), 4))]).astype(np.float32)
    tint = pix.mean(0) / pix.mean()  # the synthetic frames' colour: rgb = grey * tint, on average

    def no_highlights(x, m):
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        spots = cv2.dilate(((hsv[..., 2] > 200) & (hsv[..., 1] < 90)).astype(np.uint8) * m, np.ones((7, 7), np.uint8))
        return cv2.inpaint(x, spots, 5, cv2.INPAINT_TELEA)

    def tinted(x):
        return x.astype(np.float32).mean(-1, keepdims=True) * tint

    grey_syn = np.sort(pix.mean(-1))   # the synthetic frames' grey levels, sorted

    def grey_matched(x, m):
        """The grey level's histogram inside the image circle matched to the synthetic frames',
        times their tint: the synthetic brightness distribution on the real frame's layout."""
        g = x.astype(np.float32).mean(-1)
        inside = m > 0
        rank = np.argsort(np.argsort(g[inside], kind="stable"), kind="stable") / max(inside.sum() - 1, 1)
        g[inside] = grey_syn[np.round(rank * (len(grey_syn) - 1)).astype(int)]
        return g[..., None] * tint

    transforms = {
        "blur": lambda x, m: cv2.GaussianBlur(x, (0, 0), 4.0),
        "no_highlights": no_highlights,
        "tint": lambda x, m: tinted(x),
        "no_highlights_tint_blur": lambda x, m: cv2.GaussianBlur(tinted(no_highlights(x, m)), (0, 0), 4.0),
        "grey_matched_tint": grey_matched,
        "grey_matched_tint_blur": lambda x, m: cv2.GaussianBlur(grey_matched(no_highlights(x, m), m), (0, 0), 4.0),
        "flat_synthetic_colour": lambda x, m: np.broadcast_to(pix.mean(0), x.shape),
    }
    out = {"structure_floor": score(held, held, synthetic, size_px=size_px, steps=steps, seed=seed, floor=True)}
    print(f"adapt_quality diagnose: acc_raw={out['structure_floor']['acc_raw']:.3f} "
          f"acc_structure={out['structure_floor']['acc_structure']:.3f} (the structure floor)")
    for name, fn in transforms.items():
        folder = work / "diagnose" / name
        folder.mkdir(parents=True, exist_ok=True)
        for p in list_images(held):
            x = read_image(p)
            m = detect_border_mask(x)
            y = np.clip(np.asarray(fn(x, m), np.float32), 0, 255).round().astype(np.uint8) * m[..., None]
            # PNG bytes under the original name, so that score() pairs the frames by name, losslessly
            folder.joinpath(p.name).write_bytes(cv2.imencode(".png", y[..., ::-1])[1].tobytes())
        out[name] = score(held, folder, synthetic, size_px=size_px, steps=steps, seed=seed)
        print(f"adapt_quality diagnose: {name} acc_refined={out[name]['acc_refined']:.3f} "
              f"acc_raw={out[name]['acc_raw']:.3f} self_reg_l1={out[name]['self_reg_l1']:.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", type=Path, help="clean-style ColonSim HDF5 (rendered if omitted)")
    ap.add_argument("--train-synthetic", type=Path,
                    help="renders to train against (the match, the colour curve and the discriminators), "
                         "other than --synthetic, which then only scores: so that no render the "
                         "refiner trained against takes part in its score")
    ap.add_argument("--real", type=Path, default=REAL, help="folder of real frames (CVC-ColonDB)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt_quality", help="work folder")
    ap.add_argument("--minutes", type=float, default=20.0, help="training wall-time budget")
    ap.add_argument("--size", type=int, default=128, help="training crop side, px")
    ap.add_argument("--holdout", type=float, default=0.25, help="fraction of real frames held out")
    ap.add_argument("--block", type=int, default=10, help="neighbouring frames held out together")
    ap.add_argument("--fold", type=int, default=None,
                    help="which block of each round(1/holdout) is held out (default the last); with "
                         "--block 95, --fold 0..3 hold out CVC-ColonDB by whole videos, a quarter at a time")
    ap.add_argument("--synth-frames", type=int, default=400, help="frames to render when --synthetic is omitted")
    ap.add_argument("--synth-size", type=int, default=256, help="their size, px")
    ap.add_argument("--score-size", type=int, default=64, help="classifier input side, px")
    ap.add_argument("--score-steps", type=int, default=300, help="classifier training steps")
    ap.add_argument("--score-repeats", type=int, default=3,
                    help="classifier seeds; acc_raw and acc_refined are their mean (one varies by about +-0.05)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch and OpenCV CPU threads (scores repeat exactly only at the same count; "
                         "they differ by about 0.01 between counts)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=Path,
                    help="adapt config YAML for the refiner (e.g. benchmarks/configs/adapt_refiner.yaml); "
                         "--set overrides it")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="adapt config override (repeatable), e.g. --set refiner.width=32")
    ap.add_argument("--diagnose", action="store_true", help="score hand-made transforms instead of training")
    ap.add_argument("--match", action="store_true",
                    help="match the real frames to the synthetic set (colonsim adapt match) before the refiner: "
                    "train on the matched frames, refine the matched held-out frames")
    ap.add_argument("--match-steps", metavar="STEPS",
                    help="with --match: the steps of adapt match the refiner's input gets (comma-separated, "
                         "of highlights,defocus,tones,colour; default all four), so that the refiner has to "
                         "learn the rest; acc_matched stays the whole match, and acc_input scores the input")
    ap.add_argument("--remeasure", action="store_true",
                    help="no training: measure again what the saved refiner of --work does to its held-out "
                    "frames (changed_frac, changed_frac_square, shift_square, shift_rim) and update its results.json")
    ap.add_argument("--select", action="store_true",
                    help="no training: pick the snapshot of --work's run (schedule.snapshot_every) that scores "
                         "lowest on its training frames against --select-synthetic, and score every snapshot on "
                         "the held-out frames; writes select.json")
    ap.add_argument("--select-synthetic", type=Path,
                    help="renders for --select's choice (default: the run's --train-synthetic)")
    ap.add_argument("--select-repeats", type=int, default=4, help="classifier seeds for --select's choice")
    ap.add_argument("--pick", type=int, metavar="N",
                    help="keep N frames of --synthetic (a pool) by the layouts of the training frames "
                         "(colonsim adapt pick) and score against those")
    ap.add_argument("--pick-train", type=int, metavar="M",
                    help="keep M frames of --train-synthetic (a pool) the same way and train against those")
    ap.add_argument("--control", type=int, metavar="N",
                    help="train nothing: score the finished run in --work again against N renders of its "
                         "pool (or --synthetic) picked by the held-out frames' layouts (control.json); "
                         "--seed as the run's")
    ap.add_argument("--cues", action="store_true",
                    help="also score the views that keep the layout and one more cue (adapt score --cues)")
    args = ap.parse_args()
    if args.remeasure:
        sys.exit(remeasure(args.work))
    if not args.real.is_dir():
        print(f"adapt_quality: real frames not found: {args.real}", file=sys.stderr)
        sys.exit(2)
    from adapt.match import STEPS, check_steps
    from adapt.score import check_repeats
    from colonsim.errors import ColonSimError, InputError

    try:   # before the training, not 20 minutes later at the scoring
        if args.match_steps is not None and not args.match:
            raise InputError("--match-steps needs --match")
        try:
            input_steps = check_steps(args.match_steps) if args.match_steps is not None else STEPS
        except InputError as e:
            raise InputError(str(e).replace("--steps", "--match-steps", 1)) from None
        check_repeats(args.score_repeats, "--score-repeats")
        check_repeats(args.select_repeats, "--select-repeats")
        cfg = refiner_config(args.config, args.overrides, args.size, args.seed, args.threads, args.minutes)
    except ColonSimError as e:
        print(f"adapt_quality: {e}", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from adapt.score import score
    from adapt.train import train_refiner

    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)  # OpenCV takes every core by default: runs side by side would crowd
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.control is not None:
        sys.exit(control_score(args.work, args.synthetic, args.control, args.score_size, args.score_steps,
                               args.score_repeats, args.seed))
    if args.select:
        sys.exit(select_snapshot(args.work, args.select_synthetic, args.score_size, args.score_steps,
                                 args.score_repeats, args.select_repeats, args.seed))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    synthetic = args.synthetic or render_clean(work / "clean.h5", args.synth_frames, args.synth_size, args.seed)
    train_synthetic = args.train_synthetic or synthetic
    if not Path(train_synthetic).is_file():
        print(f"adapt_quality: --train-synthetic not found: {train_synthetic}", file=sys.stderr)
        sys.exit(2)
    if args.pick_train is not None and not args.train_synthetic:
        print("adapt_quality: --pick-train needs --train-synthetic (a pool to pick from)", file=sys.stderr)
        sys.exit(2)
    try:
        train_dir, held_dir, n_train, n_held = split_real(args.real, work, args.holdout, args.block, args.fold)
    except ValueError as e:
        print(f"adapt_quality: {e}", file=sys.stderr)
        sys.exit(2)
    picks = {}
    if args.pick is not None or args.pick_train is not None:
        from adapt.pick import pick

        try:
            for n, pool, name in ((args.pick, synthetic, "synthetic_picked.h5"),
                                  (args.pick_train, train_synthetic, "train_synthetic_picked.h5")):
                if n is not None:
                    r = pick(train_dir, pool, work / name, n, seed=args.seed, overwrite=True)
                    picks[name] = r
                    print(f"adapt_quality: picked {n} of {r['pool_frames']} renders of {pool} by the layouts "
                          f"of {r['real_frames']} training frames (median rank {r['median_rank']:g})", flush=True)
        except InputError as e:
            print(f"adapt_quality: {e}", file=sys.stderr)
            sys.exit(2)
        if args.pick is not None:
            synthetic = work / "synthetic_picked.h5"
        if args.pick_train is not None:
            train_synthetic = work / "train_synthetic_picked.h5"
        elif not args.train_synthetic:
            train_synthetic = synthetic
    if args.diagnose:
        result = diagnose(held_dir, synthetic, work, args.score_size, args.score_steps, args.seed)
        (work / "diagnose.json").write_text(json.dumps(result, indent=2))
        return
    from adapt.match import match

    # The training-free reference (adapt match) of every run: the held-out frames given the synthetic
    # set's defocus, tone distribution and colour, scored by the same classifier.
    matched_held = work / "matched_heldout"
    match(train_synthetic, held_dir, matched_held, seed=args.seed, overwrite=True)
    m = score(held_dir, matched_held, synthetic, size_px=args.score_size, steps=args.score_steps,
              seed=args.seed, repeats=args.score_repeats)
    print(f"adapt_quality: training-free match acc_refined={m['acc_refined']:.3f} "
          f"seeds={m.get('acc_refined_seeds', [m['acc_refined']])} self_reg_l1={m['self_reg_l1']:.4f}", flush=True)
    input_held, mi = matched_held, None   # the refiner's held-out input, and its score when not the match
    if args.match and input_steps != STEPS:
        input_held = work / "input_heldout"
        match(train_synthetic, held_dir, input_held, seed=args.seed, steps=input_steps, overwrite=True)
        mi = score(held_dir, input_held, synthetic, size_px=args.score_size, steps=args.score_steps,
                   seed=args.seed, repeats=args.score_repeats)
        print(f"adapt_quality: the refiner's input (adapt match --steps {','.join(input_steps)}) "
              f"acc_refined={mi['acc_refined']:.3f} seeds={mi.get('acc_refined_seeds', [mi['acc_refined']])}",
              flush=True)
    if args.match:
        train_dir = work / "matched_train"
        match(train_synthetic, work / "real_train", train_dir, seed=args.seed, steps=input_steps, overwrite=True)
    run = work / "run"
    t0 = time.monotonic()
    summary = train_refiner(cfg, train_dir, train_synthetic, run, resume=(run / "last.pt").exists())
    train_s = time.monotonic() - t0
    logging.info("trained %d adversarial steps in %.0f s; scoring", summary["steps"], train_s)
    t1 = time.monotonic()
    refined = run / "refiner.pt"
    if args.match:   # the refiner's input is the matched frame; the score compares with the raw one
        from adapt.apply import apply

        refined = work / "refined_heldout"
        apply(run / "refiner.pt", input_held, refined, overwrite=True)
    s = score(held_dir, refined, synthetic, size_px=args.score_size, steps=args.score_steps,
              seed=args.seed, floor=True, cues=args.cues, repeats=args.score_repeats,
              examples=work / "examples.png")
    score_s = time.monotonic() - t1
    change = held_out_change(input_held if args.match else held_dir, run / "refiner.pt")
    side_by_side(held_dir, run / "refiner.pt", work / "grid.png", 8, 2 * args.size,
                 input_held if args.match else None)
    result = {"minutes": args.minutes, "size_px": args.size, "adversarial_steps": summary["steps"],
              "schedule_steps": summary["schedule_steps"], "train_s": round(train_s, 1),
              "score_s": round(score_s, 1), "n_real_train": n_train, "n_real_heldout": n_held,
              "delta_grey": summary["losses"].get("refiner/delta_grey"),
              "delta_grey_ema": summary["losses"].get("refiner/delta_grey_ema"),
              "disc_acc": summary["disc_accuracy"],
              "config": str(args.config) if args.config else None, "config_overrides": args.overrides,
              "match": args.match, "match_steps": list(input_steps) if args.match else None,
              "synthetic": str(synthetic), "train_synthetic": str(train_synthetic),
              "torch_threads": args.threads, "picks": picks, **s,
              "acc_matched": m["acc_refined"], "acc_matched_seeds": m.get("acc_refined_seeds", [m["acc_refined"]]),
              "self_reg_l1_matched": m["self_reg_l1"], **change}
    if mi is not None:
        result.update({"acc_input": mi["acc_refined"],
                       "acc_input_seeds": mi.get("acc_refined_seeds", [mi["acc_refined"]])})
    (work / "results.json").write_text(json.dumps(result, indent=2))
    print(f"adapt_quality: minutes={args.minutes:g} size={args.size} adv_steps={summary['steps']} "
          f"match={args.match} acc_raw={s['acc_raw']:.3f} acc_refined={s['acc_refined']:.3f} "
          f"acc_matched={m['acc_refined']:.3f} "
          f"{'' if mi is None else 'acc_input=%.3f ' % mi['acc_refined']}acc_structure={s['acc_structure']:.3f} "
          f"self_reg_l1={s['self_reg_l1']:.4f} acc_refined_seeds={s.get('acc_refined_seeds', [s['acc_refined']])} "
          f"delta_grey={result['delta_grey']} "
          f"{'' if result['delta_grey_ema'] is None else 'delta_grey_ema=%s ' % result['delta_grey_ema']}"
          f"changed_frac={change['changed_frac']} "
          f"changed_frac_square={change['changed_frac_square']} shift_square={change['shift_square']} "
          f"shift_rim={change['shift_rim']} "
          f"train_s={train_s:.0f} grid={work / 'grid.png'}")
    colours_given = args.match and "colour" in input_steps   # else the colour curve recolours the input
    if change["changed_frac"] < IDENTITY_WARN_FRAC and not colours_given and cfg.refiner.output == "colour_curve":
        print(f"adapt_quality: the refiner moves {100 * change['changed_frac']:.2f} % of the held-out pixels "
              f"by more than {CHANGED_LEVELS:g} grey levels: its grey levels are (nearly) its input's, and "
              "acc_refined measures the input with the renders' colour at each grey level (the colour "
              "curve), not a learned change")
    elif change["changed_frac"] < IDENTITY_WARN_FRAC:
        print(f"adapt_quality: the refiner moves {100 * change['changed_frac']:.2f} % of the held-out pixels "
              f"by more than {CHANGED_LEVELS:g} grey levels: it is (nearly) the identity, and acc_refined "
              f"measures its input ({'the raw frames' if not args.match else 'the match' if mi is None else 'acc_input'}), "
              "not the refiner")
    print(f"adapt_quality: the frames the classifier calls most real and most synthetic: {s['examples']}")
    for view in s.get("cues_raw", {}):
        print(f"adapt_quality: cue view={view} acc_raw={s['cues_raw'][view]:.3f} "
              f"acc_refined={s['cues_refined'][view]:.3f}")


if __name__ == "__main__":
    main()
