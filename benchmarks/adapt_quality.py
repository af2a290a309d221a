"""Adaptation quality benchmark: train the reverse refiner (real -> synthetic; Mahmood, Chen, Durr
2017) for a fixed wall-time budget on CVC-ColonDB frames (Bernal et al. 2012), some held out, against
a clean-style synthetic HDF5, then score it on the held-out frames with a real-vs-synthetic classifier
(``colonsim adapt score``). The protocol is :mod:`adapt.eval.protocol` and :mod:`adapt.eval.select`;
this script only parses arguments and prints.

Aims: acc_raw >= 0.95 (the domains differ), acc_refined <= 0.65 (refined real frames pass for
synthetic), and a small self_reg_l1 (structure kept). Look at grid.png: folds and lumen must still
be where they were.

    python benchmarks/adapt_quality.py --synthetic clean.h5               # 20 min of training
    python benchmarks/adapt_quality.py --config benchmarks/configs/adapt_tones.yaml \\
        --match --match-steps highlights,defocus ...                      # the learned tones (docs/adaptation.md)
    python benchmarks/adapt_quality.py --minutes 1 --size 64 --set refiner.width=16   # a smoke run
    python benchmarks/adapt_quality.py        # renders its target first (configs/adapt_target.yaml)

Prints one comparable line (``adapt_quality: key=value ...``) and writes results.json, grid.png,
examples.png and the run folder (run/) in the work folder.

Every run scores ``acc_matched``: the held-out frames after ``colonsim adapt match`` (no training),
the reference a learned refiner has to beat. ``--match`` trains the refiner on matched frames and
refines the matched held-out frames; ``--match-steps`` gives it only some of the match's steps, so
that it has to learn the rest (``acc_input`` scores its input). ``--train-synthetic`` gives the
refiner other renders to train against than the ones that score it. ``--pick N`` / ``--pick-train
M`` keep that many renders of those pools by the training frames' layouts (``colonsim adapt pick``).
After a run, ``--select`` picks one of its snapshots by the training frames alone (select.json),
``--control N`` scores it against renders picked by the held-out frames' layouts (control.json),
and ``--remeasure`` measures again what its refiner changes on the held-out frames.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapt.eval.match import STEPS, check_steps  # noqa: E402
from adapt.eval.protocol import benchmark_config, pick_targets, remeasure, run, split_real  # noqa: E402
from adapt.eval.score import check_repeats  # noqa: E402
from adapt.eval.select import control_score, select_snapshot  # noqa: E402
from adapt.logbook import CHANGED_LEVELS, IDENTITY_WARN_FRAC  # noqa: E402
from colonsim.errors import ColonSimError, InputError  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "cvc-colondb"
TARGET = ROOT / "benchmarks" / "configs" / "adapt_target.yaml"


def say(line: str) -> None:
    print(f"adapt_quality: {line}", flush=True)


def render_clean(out: Path, frames: int, size: int, seed: int) -> Path:
    """The clean-style target through `colonsim render --style clean --config` :data:`TARGET`
    (skipped if the file exists)."""
    import subprocess

    if not out.is_file():
        cmd = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(out), "--frames", str(frames),
               "--size", str(size), "--seed", str(seed), "--style", "clean", "--config", str(TARGET),
               "--workers", "2"]
        print("rendering:", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", type=Path, help="clean-style ColonSim HDF5 (rendered if omitted)")
    ap.add_argument("--train-synthetic", type=Path,
                    help="renders to train against (the match, the colour curve and the discriminators), "
                         "other than --synthetic, which then only scores")
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
    ap.add_argument("--config", type=Path, help="adapt config YAML for the refiner; --set overrides it")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="adapt config override (repeatable), e.g. --set refiner.width=32")
    ap.add_argument("--match", action="store_true",
                    help="match the real frames to the synthetic set (colonsim adapt match) before the refiner")
    ap.add_argument("--match-steps", metavar="STEPS",
                    help="with --match: the steps of adapt match the refiner's input gets (comma-separated, "
                         "of highlights,defocus,tones,colour; default all four); acc_input scores that input")
    ap.add_argument("--remeasure", action="store_true",
                    help="no training: measure again what the saved refiner of --work changes on its held-out frames")
    ap.add_argument("--select", action="store_true",
                    help="no training: pick the snapshot of --work's run that scores lowest on its training "
                         "frames against --select-synthetic, and score every snapshot held out (select.json)")
    ap.add_argument("--select-synthetic", type=Path,
                    help="renders for --select's choice (default: the run's --train-synthetic)")
    ap.add_argument("--select-repeats", type=int, default=4, help="classifier seeds for --select's choice")
    ap.add_argument("--pick", type=int, metavar="N",
                    help="keep N frames of --synthetic (a pool) by the layouts of the training frames")
    ap.add_argument("--pick-train", type=int, metavar="M",
                    help="keep M frames of --train-synthetic (a pool) the same way and train against those")
    ap.add_argument("--control", type=int, metavar="N",
                    help="train nothing: score the finished run in --work again against N renders of its "
                         "pool (or --synthetic) picked by the held-out frames' layouts (control.json)")
    ap.add_argument("--cues", action="store_true", help="also score the cue views (adapt score --cues)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.remeasure:
            change = remeasure(args.work)
            print("adapt_quality remeasure: " + " ".join(f"{k}={v}" for k, v in change.items())
                  + f" ({args.work / 'results.json'})")
            return 0
        if not args.real.is_dir():
            raise InputError(f"real frames not found: {args.real}")
        # checked before the training, not 20 minutes later at the scoring
        if args.match_steps is not None and not args.match:
            raise InputError("--match-steps needs --match")
        input_steps = check_steps(args.match_steps, "--match-steps") if args.match_steps is not None else STEPS
        check_repeats(args.score_repeats, "--score-repeats")
        check_repeats(args.select_repeats, "--select-repeats")
        cfg = benchmark_config(args.config, args.overrides, args.size, args.seed, args.threads, args.minutes)
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        import cv2
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # OpenCV takes every core by default: runs side by side would crowd
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
        if args.control is not None:
            out = control_score(args.work, args.synthetic, args.control, args.score_size, args.score_steps,
                                args.score_repeats, args.seed,
                                report=lambda s: print(f"adapt_quality control: {s}", flush=True))
            print(f"adapt_quality control: acc_raw={out['acc_raw']:.3f} acc_matched={out['acc_matched']:.3f} "
                  f"acc_refined={out['acc_refined']:.3f} acc_structure={out['acc_structure']:.3f} "
                  f"({args.work / 'control.json'})")
            return 0
        if args.select:
            out = select_snapshot(args.work, args.select_synthetic, args.score_size, args.score_steps,
                                  args.score_repeats, args.select_repeats, args.seed,
                                  report=lambda s: print(f"adapt_quality select: {s}", flush=True))
            print(f"adapt_quality select: selected={out['selected']} "
                  f"acc_refined_selected={out['acc_refined_selected']:.3f} "
                  f"acc_refined_final={out['acc_refined_final']:.3f} acc_matched={out['acc_matched']} "
                  f"({args.work / 'select.json'})")
            return 0
        return train_and_score(args, cfg, input_steps)
    except ColonSimError as e:
        print(f"adapt_quality: {e}", file=sys.stderr)
        return 2


def train_and_score(args: argparse.Namespace, cfg, input_steps: tuple[str, ...]) -> int:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    synthetic = args.synthetic or render_clean(work / "clean.h5", args.synth_frames, args.synth_size, args.seed)
    train_synthetic = args.train_synthetic or synthetic
    if not Path(train_synthetic).is_file():
        raise InputError(f"--train-synthetic not found: {train_synthetic}")
    if args.pick_train is not None and not args.train_synthetic:
        raise InputError("--pick-train needs --train-synthetic (a pool to pick from)")
    train_dir, held_dir, n_train, n_held = split_real(args.real, work, args.holdout, args.block, args.fold)
    picks = pick_targets(train_dir, work, args.seed, [(args.pick, synthetic, "synthetic_picked.h5"),
                                                      (args.pick_train, train_synthetic, "train_synthetic_picked.h5")],
                         report=say)
    if args.pick is not None:
        synthetic = work / "synthetic_picked.h5"
    if args.pick_train is not None:
        train_synthetic = work / "train_synthetic_picked.h5"
    elif picks and not args.train_synthetic:
        train_synthetic = synthetic
    result = run(work, cfg, held_dir, synthetic, train_synthetic, match_input=args.match, input_steps=input_steps,
                 score_size=args.score_size, score_steps=args.score_steps, score_repeats=args.score_repeats,
                 seed=args.seed, cues=args.cues, grid_px=2 * args.size, report=say)
    result = {"minutes": args.minutes, **result, "n_real_train": n_train, "n_real_heldout": n_held,
              "config": str(args.config) if args.config else None, "config_overrides": args.overrides,
              "torch_threads": args.threads, "picks": picks}
    (work / "results.json").write_text(json.dumps(result, indent=2))
    r = result
    say(f"minutes={args.minutes:g} size={args.size} adv_steps={r['adversarial_steps']} "
        f"match={args.match} acc_raw={r['acc_raw']:.3f} acc_refined={r['acc_refined']:.3f} "
        f"acc_matched={r['acc_matched']:.3f} "
        f"{'' if r.get('acc_input') is None else 'acc_input=%.3f ' % r['acc_input']}"
        f"acc_structure={r['acc_structure']:.3f} self_reg_l1={r['self_reg_l1']:.4f} "
        f"acc_refined_seeds={r.get('acc_refined_seeds', [r['acc_refined']])} delta_grey={r['delta_grey']} "
        f"{'' if r['delta_grey_ema'] is None else 'delta_grey_ema=%s ' % r['delta_grey_ema']}"
        f"changed_frac={r['changed_frac']} changed_frac_square={r['changed_frac_square']} "
        f"shift_square={r['shift_square']} shift_rim={r['shift_rim']} "
        f"train_s={r['train_s']:.0f} grid={work / 'grid.png'}")
    if r["changed_frac"] < IDENTITY_WARN_FRAC:
        colours_given = args.match and "colour" in input_steps   # else the colour curve recolours the input
        moved = f"the refiner moves {100 * r['changed_frac']:.2f} % of the held-out pixels by more than " \
                f"{CHANGED_LEVELS:g} grey levels: "
        if not colours_given and cfg.refiner.output == "colour_curve":
            say(moved + "its grey levels are (nearly) its input's, and acc_refined measures the input with the "
                "renders' colour at each grey level (the colour curve), not a learned change")
        else:
            what = "the raw frames" if not args.match else "the match" if r.get("acc_input") is None else "acc_input"
            say(moved + f"it is (nearly) the identity, and acc_refined measures its input ({what}), not the refiner")
    say(f"the frames the classifier calls most real and most synthetic: {r['examples']}")
    for view in r.get("cues_raw", {}):
        say(f"cue view={view} acc_raw={r['cues_raw'][view]:.3f} acc_refined={r['cues_refined'][view]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
