"""``colonsim export``: write a ColonSim HDF5 file in the SimCol3D, C3VD or plain PNG + .npy layout."""
from __future__ import annotations

from colonsim.commands.common import add_json_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="write an HDF5 dataset as SimCol3D, C3VD or PNG + .npy files",
                       description="Write the frames, depth and poses of DATA.h5 into the folder DIR in the "
                       "layout of SimCol3D (FrameBuffer/Depth PNGs, 65280 = 200 mm), C3VD (colour PNG, 16-bit "
                       "TIFF depth, 65535 = 100 mm, pose.txt) or plain PNG + .npy; a README.txt in DIR states "
                       "its units, handedness and pose direction (docs/formats.md).")
    p.add_argument("path", metavar="DATA.h5")
    p.add_argument("--format", required=True, choices=("simcol3d", "c3vd", "png"), help="the layout to write")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (refused if it holds files, "
                   "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that holds files "
                   "(only the files of the export are replaced)")
    add_json_arg(p)
    p.set_defaults(func=_export)


def _export(args):
    from colonsim.data.export import export

    r = export(args.path, args.format, args.out, overwrite=args.overwrite)
    return f"{r['path']}: {r['frames']} frames in the {r['format']} layout, {r['files']} files", r
