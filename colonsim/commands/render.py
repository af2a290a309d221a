"""The ``render``, ``inspect`` and ``preview`` subcommands: argument parsing and one library call each."""
from __future__ import annotations

import argparse

from colonsim.commands.common import add_config_args, add_json_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("render", help="render frames with exact depth into an HDF5 dataset",
                       description="Render N frames of (config, seed) into one HDF5 file with K worker "
                       "processes. Frame i depends only on (config, seed, i). An interrupted run is "
                       "finished with --resume.")
    p.add_argument("--out", required=True, metavar="DATA.h5", help="output HDF5 file")
    p.add_argument("--frames", required=True, type=int, metavar="N", help="number of frames")
    _add_scene_args(p)
    p.add_argument("--workers", type=int, metavar="K",
                   help="render processes, or Ray actors (default 1; with --backend ray, one per cluster CPU)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes (default), or actors on a Ray cluster (pip install colonsim[ray])")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to use with --backend ray, e.g. ray://head:10001 "
                   "or head:6379 (default: RAY_ADDRESS, else a new local cluster); OUT must be on a file "
                   "system all nodes share, or shards travel back to this process")
    p.add_argument("--sequence-length", type=int, metavar="L",
                   help="smooth video sequences of L frames (alias of --set trajectory.sequence_length=L)")
    p.add_argument("--flow", action="store_true", help="also write flow, occlusion and flow_valid to the next "
                   "frame of each sequence (alias of --set output.flow=true; docs/formats.md)")
    p.add_argument("--normals", action="store_true", help="also write camera-frame unit normals "
                   "(alias of --set output.normals=true)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="finish an interrupted run of the same settings")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_arg(p)
    p.set_defaults(func=_render)

    p = sub.add_parser("inspect", help="validate an HDF5 dataset against the schema and summarize it")
    p.add_argument("path", metavar="DATA.h5")
    p.add_argument("--verify", action="store_true", help="also read every chunk of every dataset, checking "
                   "its checksum (files rendered with output.checksum) and its compression")
    p.add_argument("--check", action="store_true", help="also check that poses, depth and intrinsics agree on "
                   "a sample of frame pairs of a sequence: a point seen in both lands where the poses say, "
                   "within 0.5 px (catches a transposed or inverted pose)")
    add_json_arg(p)
    p.set_defaults(func=_inspect)

    p = sub.add_parser("preview", help="contact sheet of RGB beside colour-mapped depth",
                       description="Render a few frames and draw RGB beside depth; --sweep key=v1,v2,... "
                       "draws one labelled row per value.")
    p.add_argument("--out", required=True, metavar="GRID.png", help="output PNG")
    p.add_argument("--frames", type=int, default=4, metavar="N", help="frames per row (default 4)")
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", help="vary one config field, one row per value")
    p.add_argument("--overwrite", action="store_true", help="replace an existing GRID.png")
    _add_scene_args(p, default_size=160)
    add_json_arg(p)
    p.set_defaults(func=_preview)


def _add_scene_args(p: argparse.ArgumentParser, default_size: int | None = None) -> None:
    p.add_argument("--size", type=int, default=default_size, metavar="PX",
                   help="image size in pixels (alias of --set output.size_px=PX)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--style", metavar="NAME", help="style preset from assets/styles (e.g. clean, realistic)")
    p.add_argument("--mesh", default="procedural", metavar="MESH|procedural",
                   help="a colon mesh file, or 'procedural' (default)")
    add_scope_args(p)
    add_config_args(p)


def add_scope_args(p: argparse.ArgumentParser) -> None:
    """--camera and --mask: a real scope's calibration and image-circle mask (docs/tuning.md)."""
    p.add_argument("--camera", metavar="CALIB", help="render with a real scope's geometry: an OpenCV fisheye/"
                   "pinhole or Scaramuzza calibration file (YAML/JSON/FileStorage; docs/tuning.md)")
    p.add_argument("--mask", metavar="MASK.png", help="image-circle mask of the real frames (PNG, nonzero "
                   "inside), fitted by the lens's round or octagon field stop")


def apply_scope(cfg, camera: str | None = None, mask: str | None = None):
    """``cfg`` (a SimConfig) with its lens fitted to the mask PNG ``mask`` (field stop), then set
    to the calibration file ``camera`` (model, coefficients, intrinsics); unchanged without them.
    The result is the config that is stored in the output and checked on resume."""
    from colonsim import config as cfgmod
    from colonsim.tune import calibration

    lens = cfg.lens
    if mask:
        lens = calibration.apply_field_stop(lens, calibration.fit_field_stop(calibration.read_mask(mask)))
    if camera:
        lens = calibration.apply_calibration(lens, calibration.load_calibration(camera))
    if lens is cfg.lens:
        return cfg
    return cfgmod.from_dict(type(cfg), {**cfgmod.to_dict(cfg), "lens": cfgmod.to_dict(lens)})


def _load_config(args):
    from colonsim.simconfig import load_sim_config

    overrides = list(args.overrides)
    if args.size is not None:
        overrides.append(f"output.size_px={args.size}")
    if getattr(args, "sequence_length", None) is not None:
        overrides.append(f"trajectory.sequence_length={args.sequence_length}")
    for flag in ("flow", "normals"):
        if getattr(args, flag, False):
            overrides.append(f"output.{flag}=true")
    return apply_scope(load_sim_config(args.style, args.config, overrides), args.camera, args.mask)


def _render(args):
    from colonsim.run.generate import render_dataset

    r = render_dataset(_load_config(args), args.out, args.frames, seed=args.seed, workers=args.workers,
                       mesh=args.mesh, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                       backend=args.backend, address=args.address)
    line = (f"{r['path']}: {r['frames']} frames of {r['size_px']}x{r['size_px']}, "
            f"{r['file_bytes'] / 1e6:.1f} MB; rendered {r['rendered']} at {r['fps']:.1f} frames/s "
            f"with {r['workers']} {r['backend']} worker(s) in {r['wall_s']:.1f} s")
    return line, r


def _inspect(args):
    from colonsim.data.h5io import validate, verify
    from colonsim.errors import DatasetError

    r = validate(args.path)
    if not r["ok"]:
        more = f" (and {len(r['errors']) - 1} more)" if len(r["errors"]) > 1 else ""
        raise DatasetError(f"{args.path}: {r['errors'][0]}{more}")
    if args.verify:
        v = verify(args.path)
        if v["errors"]:
            more = f" (and {len(v['errors']) - 1} more chunk(s))" if len(v["errors"]) > 1 else ""
            raise DatasetError(f"{args.path}: {v['errors'][0]}{more}")
        r["verified_chunks"] = v["chunks"]
    if getattr(args, "check", False):
        from colonsim.data.posecheck import check_poses
        c = check_poses(args.path)
        if not c["ok"]:
            more = f" (and {len(c['errors']) - 1} more pair(s))" if len(c["errors"]) > 1 else ""
            raise DatasetError(f"{args.path}: pose check failed: {c['errors'][0]}{more}")
        r["pose_check"] = c
    fields = ", ".join(f"{k} {v['dtype']}" for k, v in r["fields"].items())
    sums = "checksums" if r["checksums"] else "no checksums"
    if args.verify:
        sums += f", {r['verified_chunks']} chunks verified" if r["checksums"] else \
            f", {r['verified_chunks']} chunks decoded (no checksums to verify)"
    line = (f"{r['path']}: ok, {r['n_frames']} frames {r['height']}x{r['width']}, style {r['style']}, "
            f"seed {r['seed']}, depth {_mm(r['depth_min_mm'])}-{_mm(r['depth_max_mm'])} mm, "
            f"{r['size_bytes'] / 1e6:.1f} MB; {fields}; {len(r['params'])} params; {sums}")
    if "pose_check" in r:
        c = r["pose_check"]
        line += (f"; poses agree with depth ({c['pairs']} pairs, worst median {c['worst_px']:.3f} px)"
                 if c["pairs"] else f"; pose check: {c['note']}")
    return line, r


def _mm(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _preview(args):
    from colonsim.tune.preview import preview

    r = preview(_load_config(args), args.out, n_frames=args.frames, sweep=args.sweep, seed=args.seed,
                mesh=args.mesh, overwrite=args.overwrite)
    line = (f"{r['path']}: {r['rows']} row(s) x {r['cols']} frames, {r['width']}x{r['height']} px, "
            f"depth scale {r['depth_min_mm']:.0f}-{r['depth_max_mm']:.0f} mm")
    return line, r
