"""The ``plan`` subcommand: argument parsing and one library call."""
from __future__ import annotations

from colonsim.commands.common import add_config_args, add_json_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("plan", help="storage, shards and render time of an N-frame dataset, from a measured "
                       "calibration run", description="Render a few frames of the config here (or on every "
                       "node of a Ray cluster with --address) and extrapolate storage, shard count and "
                       "render time of --frames frames.")
    p.add_argument("--frames", required=True, type=int, metavar="N", help="frames of the planned dataset")
    p.add_argument("--size", type=int, metavar="PX", help="image size (alias of --set output.size_px=PX)")
    p.add_argument("--style", metavar="NAME", help="style preset from assets/styles")
    p.add_argument("--mesh", default="procedural", metavar="MESH|procedural")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, metavar="K", help="render processes per node (default: its CPUs)")
    p.add_argument("--calibration-frames", type=int, default=8, metavar="M",
                   help="frames timed per probe, after one warm-up frame (default 8)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="probe this machine (local, default), or every node of the Ray cluster (ray: at "
                   "--address, else RAY_ADDRESS, else a new local one), as 'render --backend' renders")
    p.add_argument("--address", metavar="ADDR", help="with --backend ray: the Ray cluster to probe")
    add_config_args(p)
    add_json_arg(p)
    p.set_defaults(func=_plan)


def _plan(args):
    from colonsim.errors import InputError
    from colonsim.run.plan import describe, plan_dataset

    if args.address is not None and args.backend != "ray":
        raise InputError("--address needs --backend ray")   # as in render
    from colonsim.simconfig import load_sim_config

    overrides = list(args.overrides) + ([f"output.size_px={args.size}"] if args.size is not None else [])
    cfg = load_sim_config(args.style, args.config, overrides)
    r = plan_dataset(cfg, args.frames, workers=args.workers, calibration_frames=args.calibration_frames,
                     seed=args.seed, mesh=args.mesh, address=args.address, use_ray=args.backend == "ray")
    return describe(r), r
