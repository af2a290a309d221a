"""The ``textures`` subcommand: build a texture bank from real frames (argument parsing, one library call)."""
from __future__ import annotations

from colonsim.commands.common import add_json_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("textures", help="build a bank of mucosa texture patches from real frames",
                       description="Cut small patches of mucosa out of real frames, with the border masked, "
                       "specular highlights inpainted and the scope's shading divided out, into a texture bank "
                       "that 'colonsim render --set tissue.texture_bank=BANK.h5' maps onto the colon wall.")
    p.add_argument("--real", required=True, metavar="DIR", help="folder of real frames, or a video file")
    p.add_argument("--out", default="bank.h5", metavar="BANK.h5", help="texture bank file (default bank.h5)")
    p.add_argument("--only", metavar="NAMES.txt",
                   help="use only the frames named in this file (one file name a line), e.g. a training split")
    p.add_argument("--max-frames", type=int, metavar="N", help="use only the first N frames (natural order)")
    p.add_argument("--patch", type=int, default=48, metavar="PX",
                   help="patch side, px; at most an eighth of a frame's shorter side (default 48)")
    p.add_argument("--per-frame", type=int, default=16, metavar="K", help="patches per frame (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patch positions (default 0)")
    add_json_arg(p)
    p.set_defaults(func=_textures)


def _textures(args):
    from colonsim.errors import InputError
    from colonsim.tune.textures import BankConfig, build_bank, read_names

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    cfg = BankConfig(patch_px=args.patch, patches_per_frame=args.per_frame, seed=args.seed)
    only = read_names(args.only) if args.only else None
    r = build_bank(args.real, args.out, cfg, only=only, max_frames=args.max_frames)
    line = (f"{r['out']}: {r['n_patches']} patches of {r['patch_px']} px from {r['n_frames']} of "
            f"{r['n_frames_read']} frames, {r['bytes'] / 1e6:.1f} MB")
    return line, r
