"""After a benchmark run (:func:`adapt.eval.protocol.run`): pick one of its refiners by the training
frames alone (:func:`select_snapshot`), and score it against renders of the held-out frames' own
layouts (:func:`control_score`).

Adversarial training moves back and forth, and the last refiner of a time budget is one draw of
where it stands; ``schedule.snapshot_every`` keeps the refiner along the way, and the choice among
them looks at no held-out frame.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from colonsim.errors import InputError

from ..apply import apply
from ..checkpoint import run_model, run_snapshots
from .pick import pick
from .protocol import heldout_input, read_results
from .score import score

log = logging.getLogger(__name__)


def select_snapshot(work: Path, select_synthetic: Path | None, size_px: int, steps: int, repeats: int,
                    select_repeats: int, seed: int, report: Callable[[str], None] = log.info) -> dict:
    """Pick one refiner of a finished run by the training frames alone, then score every candidate.

    The candidates are the run's snapshots and its final model.pt. Each refines the run's training
    frames (matched first where the run matched them), and a classifier scores them against
    ``select_synthetic`` (renders that neither trained the refiner nor score it are best; default:
    the run's training renders) with ``select_repeats`` seeds: that is ``acc_select``, and the
    candidate with the lowest is picked. Where the run matched its frames, the matched training
    frames are scored the same way (``acc_select_matched``) and are a candidate themselves
    ("match", no refiner; its held-out score is the run's ``acc_matched``, or ``acc_input``), first,
    so that a refiner is picked only where it reads lower than the frames it was given. Every
    refiner is then scored on the held-out frames as the run was (``acc_refined``, ``repeats``
    seeds), so that the choice can be checked. Writes and returns select.json's content.
    """
    result = read_results(work)
    train_in = work / ("matched_train" if result.get("match") else "real_train")
    held_in = heldout_input(work, result)
    final = run_model(work / "run")
    candidates = run_snapshots(work / "run") + [final]
    try:
        synthetic = Path(result["synthetic"])
        chooser = Path(select_synthetic or result.get("train_synthetic") or synthetic)
    except (KeyError, TypeError) as e:
        raise InputError(f"{work} is not a finished run's --work folder with snapshots ({e})") from None
    missing = [p for p in (train_in, held_in, *candidates, synthetic, chooser) if not p.exists()]
    if missing or len(candidates) < 2:
        why = f"missing {missing[0]}" if missing else "no snapshots in run/snapshots (train with --set schedule.snapshot_every=N)"
        raise InputError(f"{work} is not a finished run's --work folder with snapshots ({why})")
    rows = []
    select_matched = None
    if result.get("match"):   # the reference on the same frames: the matched training frames, no refiner
        select_matched = round(score(work / "real_train", train_in, chooser, size_px=size_px, steps=steps,
                                     seed=seed, repeats=select_repeats)["acc_refined"], 4)
        report(f"match acc_select={select_matched:.3f}")
    for c in candidates:
        name = "final" if c == final else c.stem
        out = work / "select" / name
        steps_done = int(apply(c, train_in, out / "train", overwrite=True)["steps"])
        v = score(work / "real_train", out / "train", chooser, size_px=size_px, steps=steps, seed=seed,
                  repeats=select_repeats)
        apply(c, held_in, out / "heldout", overwrite=True)
        h = score(work / "real_heldout", out / "heldout", synthetic, size_px=size_px, steps=steps, seed=seed,
                  repeats=repeats)
        rows.append({"candidate": name, "adv_steps": steps_done, "acc_select": round(v["acc_refined"], 4),
                     "acc_refined": round(h["acc_refined"], 4),
                     "acc_refined_seeds": h.get("acc_refined_seeds", [h["acc_refined"]])})
        report(f"{name} adv_steps={steps_done} acc_select={v['acc_refined']:.3f} acc_refined={h['acc_refined']:.3f}")
    last = rows[-1]
    ref = "acc_input" if result.get("acc_input") is not None else "acc_matched"   # the refiner's own input
    if select_matched is not None and result.get(ref) is not None:
        rows.insert(0, {"candidate": "match", "adv_steps": 0, "acc_select": select_matched,
                        "acc_refined": result[ref], "acc_refined_seeds": result.get(ref + "_seeds", [result[ref]])})
    chosen = min(rows, key=lambda r: r["acc_select"])   # the first of equals
    summary = {"select_synthetic": str(chooser), "select_repeats": select_repeats, "score_repeats": repeats,
               "candidates": rows, "selected": chosen["candidate"], "acc_refined_selected": chosen["acc_refined"],
               "acc_refined_final": last["acc_refined"], "acc_matched": result.get("acc_matched"),
               "acc_select_matched": select_matched}
    (work / "select.json").write_text(json.dumps(summary, indent=2))
    return summary


def control_score(work: Path, pool: Path | None, n: int, size_px: int, steps: int, repeats: int, seed: int,
                  report: Callable[[str], None] = log.info) -> dict:
    """Score a finished run again, against renders of its held-out frames' own layouts.

    The classifier of the run's score tells the held-out frames from the target renders by how
    they look and by what they show (the layout of lumen, folds and wall). A refiner that keeps
    structure may change only the first. Here ``n`` renders of ``pool`` (default: the pool the
    run picked its target from, else its target itself) are kept by the layouts of the held-out
    frames (``adapt pick --real real_heldout``), and the raw, matched and refined held-out frames
    are scored against those with the run's classifier settings. The held-out frames choose the
    renders of this score only: no training saw them. Writes synthetic_control.h5 and control.json
    in ``work``, and returns control.json's content.
    """
    result = read_results(work)
    held = work / "real_heldout"
    refined = work / "refined_heldout" if result.get("match") else run_model(work / "run")
    matched = work / "matched_heldout"
    picked = (result.get("picks") or {}).get("synthetic_picked.h5") or {}
    try:
        pool = Path(pool or picked.get("pool") or result["synthetic"])
    except (KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{work} is not a finished run's --work folder ({e})") from None
    missing = [p for p in (held, refined, matched) if not p.exists()]
    if missing:
        raise InputError(f"{work} is not a finished run's --work folder (missing {missing[0]})")
    if not pool.is_file():
        raise InputError(f"the pool to pick the control renders from is not found: {pool} (give it with --synthetic)")
    target = work / "synthetic_control.h5"
    r = pick(held, pool, target, n, seed=seed, overwrite=True)
    report(f"picked {n} of {r['pool_frames']} renders of {pool} by the layouts of {r['real_frames']} held-out "
           f"frames (median rank {r['median_rank']:g})")
    m = score(held, matched, target, size_px=size_px, steps=steps, seed=seed, repeats=repeats)
    s = score(held, refined, target, size_px=size_px, steps=steps, seed=seed, floor=True, repeats=repeats)
    out = {"frames": n, "pool": str(pool), "picked_by": str(held), "median_rank": r["median_rank"],
           "score_repeats": repeats, "acc_raw": round(s["acc_raw"], 4), "acc_matched": round(m["acc_refined"], 4),
           "acc_refined": round(s["acc_refined"], 4), "acc_structure": round(s["acc_structure"], 4),
           "acc_matched_seeds": m.get("acc_refined_seeds", [m["acc_refined"]]),
           "acc_refined_seeds": s.get("acc_refined_seeds", [s["acc_refined"]]),
           "uncontrolled": {k: result.get(k) for k in ("acc_raw", "acc_matched", "acc_refined", "acc_structure")}}
    (work / "control.json").write_text(json.dumps(out, indent=2))
    return out
