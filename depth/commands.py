"""``colonsim depth train | eval | predict | export``: argument parsing, one library call each.

Heavy imports (torch) happen inside the handlers, so ``colonsim --help`` stays fast.

``depth eval`` takes frame transforms (:data:`depth.evaluate.FrameTransform`) from whoever registers
these commands: each :class:`TransformOption` becomes a flag of ``depth eval`` whose value builds a
transform, applied to every frame before the depth network. depth/ itself has none; experiment/
registers these commands with ``--refiner`` (adapt/'s refiner), so depth/ never imports adapt/.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from colonsim.commands.common import add_config_args, add_json_arg


@dataclass(frozen=True)
class TransformOption:
    """A flag of ``depth eval`` whose value builds a frame transform."""
    flag: str                          # e.g. "--refiner"
    metavar: str                       # e.g. "R.pt"
    help: str                          # the flag's help text
    build: Callable[[str], Any]        # the flag's value -> a depth.evaluate.FrameTransform

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _train(args) -> tuple[str, dict]:
    from colonsim import config as cfgmod

    from .config import load_depth_config
    from .train import train_depth

    overrides = list(args.overrides) + ([f"data.size_px={args.size}"] if args.size else [])
    if args.resume:  # the run's own config.yaml, then the user's file and --set (training.rundir)
        from training import resume_config

        from .config import DepthConfig
        cfg = resume_config(args.out, DepthConfig, args.config, overrides)
    else:
        cfg = load_depth_config(args.config, overrides)
    r = train_depth(cfg, args.data or [], args.out, val=args.val, resume=args.resume, steps=args.steps,
                    nproc=args.nproc)
    best = r["best_val_abs_rel"]
    r["config"] = cfgmod.to_dict(cfg)
    return (f"trained {r['steps']} steps at {r['images_per_s']:.1f} images/s; best val abs_rel "
            f"{'n/a' if best is None else f'{best:.4f}'}; model: {r['paths']['model.pt']}"), r


def _eval(args) -> tuple[str, dict]:
    from .evaluate import evaluate
    from .gt import parse_depth_scale

    transforms = [o.build(getattr(args, o.dest)) for o in args.transform_options if getattr(args, o.dest)]

    def transform(rgb, mask):  # the given transforms, in the order of their options
        for t in transforms:
            rgb = t(rgb, mask)
        return rgb
    r = evaluate(args.model, args.data, transform=transform if transforms else None, align=args.align,
                 max_depth_mm=args.max_depth_mm, depth_scale=parse_depth_scale(args.depth_scale))
    m = r["metrics"]
    line = (f"{r['n']} frames, align {r['align']}: abs_rel {m['abs_rel']:.4f}, rmse {m['rmse_mm']:.2f} mm, "
            f"delta1 {m['delta1']:.3f}, l1 {m['l1_mm']:.2f} mm, median_rel {m['median_rel']:.4f}")
    if not args.per_image:
        r = {k: v for k, v in r.items() if k != "per_image"}
    return line, r


def _predict(args) -> tuple[str, dict]:
    from .predict import predict_folder

    r = predict_folder(args.model, args.input, args.out, ply=args.ply, fov_deg=args.fov_deg,
                       overwrite=args.overwrite)
    truncated = f" ({r['truncated']} truncated)" if r.get("truncated") else ""
    return f"predicted depth for {r['n']} frames into {r['out_dir']}{truncated}", r


def _export(args) -> tuple[str, dict]:
    from .export import export_model

    r = export_model(args.model, args.out, overwrite=args.overwrite)
    return f"exported {r['format']} model to {r['out']} (input {r['input']})", r


def add_parsers(subparsers, transforms: Sequence[TransformOption] = ()) -> None:
    """Register ``colonsim depth ...``; ``transforms`` become flags of ``depth eval`` (module doc)."""
    p = subparsers.add_parser("depth", help="train, evaluate, run and export the depth network")
    sub = p.add_subparsers(dest="depth_command", metavar="ACTION", required=True, parser_class=type(p))

    t = sub.add_parser("train", help="train a depth network on ColonSim HDF5 data")
    t.add_argument("--data", action="append", metavar="DATA.h5", help="training data (repeatable)")
    t.add_argument("--out", required=True, metavar="RUN/", help="run folder")
    t.add_argument("--steps", type=int, help="total optimizer steps (overrides train.steps)")
    t.add_argument("--size", type=int, metavar="PX", help="training frame size (overrides data.size_px)")
    t.add_argument("--val", metavar="VAL.h5", help="validation data (default: a held-out fraction of --data)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt with "
                   "its config.yaml; only --steps and train.time_limit_min may change")
    t.add_argument("--nproc", type=int, default=1, metavar="K",
                   help="data-parallel processes on this machine (DDP; gloo on CPU, nccl on CUDA); train.batch "
                   "stays the global batch. For several machines use torchrun --nproc_per_node K --nnodes ...")
    add_config_args(t)
    add_json_arg(t)
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="metrics against ground-truth depth")
    e.add_argument("--model", required=True, metavar="RUN/model.pt")
    e.add_argument("--data", required=True, metavar="DATA.h5|DIR", help="ColonSim HDF5; a SimCol3D, C3VD or "
                   "PNG + .npy folder (colonsim export; detected by its file names); or a folder of images "
                   "with depth files (NAME.npy mm, or 16-bit PNG/TIFF with --depth-scale)")
    for o in transforms:
        e.add_argument(o.flag, metavar=o.metavar, help=o.help)
    e.add_argument("--align", choices=("none", "median", "lsq"), default="none", help="per-image scale alignment")
    e.add_argument("--max-depth-mm", type=float, default=200.0, help="ignore ground truth beyond this depth")
    e.add_argument("--depth-scale", metavar="MM_PER_UNIT", help="mm per unit of 16-bit depth files, "
                   "or simcol3d (200/65280) or c3vd (100/65535); a SimCol3D or C3VD folder needs none")
    e.add_argument("--per-image", action="store_true", help="include per-image metrics in the JSON")
    add_json_arg(e)
    e.set_defaults(func=_eval, transform_options=tuple(transforms))

    r = sub.add_parser("predict", help="depth of every frame of a folder or a video")
    r.add_argument("--model", required=True, metavar="RUN/model.pt")
    r.add_argument("--input", required=True, metavar="DIR|VIDEO", help="a folder of frames (in a SimCol3D "
                   "or C3VD folder only its colour frames; 16-bit and RGBA frames converted) or a video")
    r.add_argument("--out", required=True, metavar="DIR/")
    r.add_argument("--ply", action="store_true", help="also write a coloured point cloud per frame")
    r.add_argument("--fov-deg", type=float, help="horizontal field of view for the point cloud "
                   "(default: the training data's intrinsics)")
    r.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR/ (only the files of "
                   "the same names are replaced; its other files stay)")
    add_json_arg(r)
    r.set_defaults(func=_predict)

    x = sub.add_parser("export", help="export to TorchScript (.pt) or ONNX (.onnx)")
    x.add_argument("--model", required=True, metavar="RUN/model.pt")
    x.add_argument("--out", required=True, metavar="F.pt|F.onnx")
    x.add_argument("--overwrite", action="store_true", help="replace an existing F.pt or F.onnx (never the --model)")
    add_json_arg(x)
    x.set_defaults(func=_export)


__all__ = ["TransformOption", "add_parsers"]
