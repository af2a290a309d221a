"""``colonsim adapt train | apply | match | pick | score``: argument parsing and one library call each."""
from __future__ import annotations

import argparse

from colonsim.commands.common import add_config_args, add_json_arg


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser("adapt", help="reverse domain adaptation: refine real frames to look synthetic")
    sub = p.add_subparsers(dest="adapt_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: p.error("choose an action: train, apply, match, pick or score"))

    t = sub.add_parser("train", help="train a refiner adversarially (SimGAN schedule)")
    t.add_argument("--real", required=True, metavar="DIR|VIDEO|DATA.h5", help="real frames")
    t.add_argument("--synthetic", required=True, metavar="DATA.h5", help="synthetic ColonSim HDF5")
    t.add_argument("--out", required=True, metavar="RUN/", help="run folder")
    t.add_argument("--steps", type=int, metavar="N", help="adversarial steps in all (overrides schedule.steps)")
    t.add_argument("--size", type=int, metavar="PX", help="side of the square training crops (overrides data.size_px)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt with its "
                   "config.yaml; only --steps and schedule.time_limit_min may change")
    t.add_argument("--nproc", type=int, default=1, metavar="K",
                   help="data-parallel processes on this machine (gloo on CPU, nccl on CUDA); data.batch_size "
                   "stays the global batch. For several machines use torchrun --nproc_per_node K --nnodes ...")
    add_config_args(t)
    add_json_arg(t)
    t.set_defaults(func=_train)

    a = sub.add_parser("apply", help="refine a folder, video or HDF5 at full resolution")
    a.add_argument("--model", required=True, metavar="RUN/model.pt")
    a.add_argument("--input", required=True, metavar="DIR|VIDEO|DATA.h5")
    a.add_argument("--out", required=True, metavar="DIR/|OUT.h5")
    a.add_argument("--batch-size", type=int, default=16, metavar="N")
    a.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5, or the frames of the "
                   "same names in a non-empty DIR/ (its other files stay)")
    add_json_arg(a)
    a.set_defaults(func=_apply)

    m = sub.add_parser("match", help="training-free reference: inpaint highlights, then give frames a "
                       "synthetic set's defocus, tone distribution and colour")
    m.add_argument("--synthetic", required=True, metavar="DATA.h5", help="synthetic ColonSim HDF5 to match")
    m.add_argument("--input", required=True, metavar="DIR|VIDEO|DATA.h5")
    m.add_argument("--out", required=True, metavar="DIR/|OUT.h5")
    m.add_argument("--frames", type=int, default=400, metavar="N", help="synthetic frames to fit (evenly spaced)")
    m.add_argument("--blur-frac", type=float, default=None, metavar="F",
                   help="defocus sigma as a fraction of the image circle's height (default: the renders' "
                   "sensor.defocus_sigma_px over their height)")
    m.add_argument("--seed", type=int, default=0, help="seed of each frame's draw of a synthetic tone distribution")
    m.add_argument("--only", default="highlights,defocus,tones,colour", metavar="STEPS",
                   help="apply only these of the match's steps, comma-separated (default all: "
                   "highlights,defocus,tones,colour)")
    m.add_argument("--highlight-level", type=int, default=170, metavar="L",
                   help="8-bit level that all three channels of a specular highlight reach (default 170)")
    m.add_argument("--highlight-max-frac", type=float, default=0.01, metavar="F",
                   help="largest highlight, as a fraction of the image circle; larger bright patches are "
                   "taken for overexposed wall and kept (default 0.01; 1 inpaints every bright patch)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5 or non-empty DIR/")
    add_json_arg(m)
    m.set_defaults(func=_match)

    k = sub.add_parser("pick", help="keep from a pool of renders the views whose layout is nearest the real "
                       "frames' (a synthetic set that shows what the real frames show)")
    k.add_argument("--real", required=True, metavar="DIR|VIDEO|DATA.h5",
                   help="real frames to pick by (not the frames held out for scoring)")
    k.add_argument("--pool", required=True, metavar="POOL.h5", help="ColonSim HDF5 to pick from")
    k.add_argument("--out", required=True, metavar="OUT.h5")
    k.add_argument("--frames", required=True, type=int, metavar="N", help="frames to keep")
    k.add_argument("--seed", type=int, default=0, help="seed of the real frames' turns")
    k.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    add_json_arg(k)
    k.set_defaults(func=_pick)

    s = sub.add_parser("score", help="real-vs-synthetic classifier accuracy on raw and refined frames")
    s.add_argument("--real", required=True, metavar="DIR|VIDEO|DATA.h5", help="held-out real frames")
    s.add_argument("--refined", required=True, metavar="DIR|DATA.h5|RUN/model.pt",
                   help="their refined versions, or the refiner to make them")
    s.add_argument("--synthetic", required=True, metavar="DATA.h5")
    s.add_argument("--size", type=int, default=64, metavar="PX", help="classifier input side")
    s.add_argument("--train-steps", type=int, default=300, metavar="N", help="the classifier's training updates")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="train the classifier with N seeds (seed, seed+1, ...) and report the mean accuracies; "
                   "odd seeds train on the other half of the frames and test on the first")
    s.add_argument("--floor", action="store_true",
                   help="also report acc_structure: the accuracy on the frames' layout alone (grey, low-passed, "
                   "normalized per frame), about as low as a structure-keeping refiner can bring acc_refined")
    s.add_argument("--floor-sigma", type=float, default=None, metavar="PX",
                   help="the structure's low-pass sigma at the classifier's size (default 0.9: the self-regularization's)")
    s.add_argument("--cues", action="store_true",
                   help="also report which properties separate each set from the synthetic one: the accuracy on "
                   "views that keep the layout and one more cue (brightness, colour, texture)")
    s.add_argument("--examples", default=None, metavar="GRID.png",
                   help="write a picture of the refined real and the synthetic frames the classifier called most "
                   "real and most synthetic (each with its name and mean test logit)")
    add_json_arg(s)
    s.set_defaults(func=_score)


def _train(args: argparse.Namespace):
    from .config import load_adapt_config
    from .train import train_refiner

    overrides = list(args.overrides) + ([f"data.size_px={args.size}"] if args.size is not None else [])
    if args.resume:  # the run's own config.yaml, then the user's file and --set (training.rundir)
        from training.rundir import resume_config

        from .config import AdaptConfig
        cfg = resume_config(args.out, AdaptConfig, args.config, overrides)
    else:
        cfg = load_adapt_config(args.config, overrides)
    r = train_refiner(cfg, args.real, args.synthetic, args.out, resume=args.resume, steps=args.steps,
                      nproc=args.nproc)
    acc, losses = r["disc_accuracy"], r["losses"]
    parts = [f"trained {cfg.direction} refiner: {r['steps']} adversarial steps"]
    if "refiner/delta_grey" in losses:   # absent when no refiner update was logged (never "nan")
        parts.append(f"mean |refined-input| {losses['refiner/delta_grey']:.2f} grey levels")
    if "refiner/changed_frac" in losses:
        parts.append(f"{100 * losses['refiner/changed_frac']:.1f} % of pixels changed")
    if r.get("fresh_acc_pool") is not None:
        parts.append(f"fresh critics' accuracy {r['fresh_acc_pool']:.2f} (last round, on its own frames)")
    elif "acc_target" in acc and "acc_refined" in acc:
        parts.append(f"disc acc target {acc['acc_target']:.2f} refined {acc['acc_refined']:.2f}")
    return ", ".join(parts) + f"; model: {r['model']}", r


def _apply(args: argparse.Namespace):
    from .apply import apply

    r = apply(args.model, args.input, args.out, batch_size=args.batch_size, overwrite=args.overwrite)
    truncated = f"; {r['truncated']} truncated" if r.get("truncated") else ""
    return f"refined {r['frames']} frames into {r['out']} ({r['seconds']} s{truncated})", r


def _match(args: argparse.Namespace):
    from .eval.match import match

    r = match(args.synthetic, args.input, args.out, frames=args.frames, blur_frac=args.blur_frac, seed=args.seed,
              steps=args.only, highlight_level=args.highlight_level,
              highlight_max_frac=args.highlight_max_frac, overwrite=args.overwrite)
    return (f"matched {r['frames']} frames ({','.join(r['steps'])}) to {r['synthetic']} ({r['frames_fitted']} frames fitted, "
            f"defocus {r['blur_frac']:.4f} of the circle's height) into {r['out']} ({r['seconds']} s)"), r


def _pick(args: argparse.Namespace):
    from .eval.pick import pick

    r = pick(args.real, args.pool, args.out, args.frames, seed=args.seed, overwrite=args.overwrite)
    return (f"picked {r['frames']} of {r['pool_frames']} renders of {r['pool']} by the layouts of "
            f"{r['real_frames']} real frames into {r['out']} (median rank {r['median_rank']:g}, "
            f"largest {r['max_rank']}; {r['seconds']} s)"), r


def _score(args: argparse.Namespace):
    from .eval.score import FLOOR_SIGMA_PX, score

    sigma = FLOOR_SIGMA_PX if args.floor_sigma is None else args.floor_sigma
    r = score(args.real, args.refined, args.synthetic, size_px=args.size, steps=args.train_steps, seed=args.seed,
              floor=args.floor or args.floor_sigma is not None, floor_sigma_px=sigma, cues=args.cues,
              repeats=args.repeats, examples=args.examples)
    line = (f"classifier accuracy raw {r['acc_raw']:.3f}, refined {r['acc_refined']:.3f} "
            f"(0.5 = indistinguishable{f'; mean of {args.repeats} seeds' if args.repeats > 1 else ''}); "
            f"self-reg L1 {r['self_reg_l1']:.4f}")
    if "acc_structure" in r:
        line += f"; structure floor {r['acc_structure']:.3f}"
    if "examples" in r:
        line += f"; examples in {r['examples']}"
    if "cues_raw" in r:
        line += "\n" + "\n".join(f"  {view:12s} raw {r['cues_raw'][view]:.3f}  refined {r['cues_refined'][view]:.3f}"
                                  for view in r["cues_raw"])
    return line, r
