"""The ``tune`` subcommand: fit the scope to real frames, or serve the interactive tuner (``--ui``)."""
from __future__ import annotations

import logging

from colonsim.commands.common import add_config_args, add_json_arg

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("tune", help="fit light, sensor and tissue to real frames, or tune them by hand (--ui)",
                       description="Search the light, sensor and tissue parameters so that rendered frames "
                       "match the statistics of real frames (radial brightness, Lab colour, highlights, noise, "
                       "sharpness; docs/tuning.md), and write a config that 'colonsim render --config' takes. "
                       "With --ui, serve a local page with sliders and a live preview instead.")
    p.add_argument("--real", metavar="DIR", help="folder of real frames (required without --ui)")
    p.add_argument("--out", default="tuned.yaml", metavar="TUNED.yaml", help="tuned config (default tuned.yaml)")
    p.add_argument("--budget", type=int, default=100, metavar="N", help="trials of the search (default 100)")
    p.add_argument("--frames", type=int, default=24, metavar="K", help="rendered frames per trial (default 24)")
    p.add_argument("--size", type=int, default=96, metavar="PX", help="analysis size, px (default 96)")
    p.add_argument("--holdout", type=float, default=0.5, metavar="F",
                   help="fraction of the real frames held out from the fit, the last ones (default 0.5)")
    p.add_argument("--max-real", type=int, default=48, metavar="M", help="real frames used per split (default 48)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop the search after S seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the search and of the rendered frames")
    p.add_argument("--style", default="realistic", metavar="NAME", help="starting style preset (default realistic)")
    p.add_argument("--camera", metavar="CALIB", help="OpenCV or Scaramuzza calibration file (docs/tuning.md)")
    p.add_argument("--mask", metavar="MASK.png", help="image-circle mask of the real frames (default: estimated)")
    p.add_argument("--png", metavar="FIG.png", help="before/after figure (default: beside --out)")
    p.add_argument("--ui", action="store_true", help="serve the interactive tuner instead of fitting")
    p.add_argument("--host", default="127.0.0.1", help="--ui: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="--ui: port (default 8765; 0 = any free port)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p)
    add_json_arg(p)
    p.set_defaults(func=_tune)


def load_config(args):
    """The starting config: style, --config, --set, then --mask and --camera."""
    from colonsim.commands.render import apply_scope
    from colonsim.simconfig import load_sim_config

    return apply_scope(load_sim_config(args.style, args.config, args.overrides), args.camera, args.mask)


def _tune(args):
    from colonsim.errors import InputError

    cfg = load_config(args)
    if args.ui:
        from colonsim.tune.web import serve
        r = serve(cfg, real=args.real, out=args.out, host=args.host, port=args.port,
                  on_ready=lambda url: log.info("tuner at %s (Ctrl-C to stop)", url))
        return f"tuner stopped after {r['renders']} renders; saved {r['saves']} config(s)", r
    if not args.real:
        raise InputError("tune needs --real DIR (a folder of real frames), or --ui for the interactive tuner")
    from colonsim.tune.fit import tune
    r = tune(cfg, args.real, args.out, budget=args.budget, frames=args.frames, size_px=args.size,
             holdout=args.holdout, max_real=args.max_real, seed=args.seed, fit_mask=not args.mask,
             timeout_s=args.timeout, png=args.png, progress=not args.quiet)
    line = (f"{r['out']}: distance on {r['n_holdout']} held-out frames {r['distance_before']:.3f} -> "
            f"{r['distance_after']:.3f} after {r['trials']} trials in {r['wall_s']:.0f} s; figure {r['png']}")
    return line, r
