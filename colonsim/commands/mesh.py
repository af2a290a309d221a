"""``colonsim mesh``: write a procedural colon, or measure a colon mesh (procedural or imported)."""
from __future__ import annotations

from colonsim.commands.common import add_config_args, add_json_arg


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "mesh", help="make a procedural colon mesh, or measure one (--measure)",
        description="Write a procedural colon (--out MESH.ply|obj|glb, plus MESH.centerline.npz), or "
                    "measure a colon mesh (--measure MESH|FOLDER): centreline length, lumen radius "
                    "percentiles, triangles, fold spacing.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", metavar="MESH.(ply|obj|glb)", help="write a procedural colon here")
    what.add_argument("--measure", metavar="MESH", help="measure this mesh file, or a folder of its parts")
    p.add_argument("--seed", type=int, default=0, help="random seed of the procedural colon (default 0)")
    p.add_argument("--scale", metavar="S|SX,SY,SZ", help="with --measure: multiply coordinates (mesh and "
                   "centreline) by one factor or per axis, e.g. a CT voxel size 0.808594,0.808594,0.7")
    p.add_argument("--centerline", metavar="FILE", help="with --measure: centreline (npz, JSON with "
                   "'points', or text x y z per line), in the mesh file's units; default: "
                   "MESH.centerline.npz beside the mesh, else computed inside the lumen")
    p.add_argument("--overwrite", action="store_true", help="with --out: replace an existing mesh and its centreline")
    add_config_args(p)
    add_json_arg(p)
    p.set_defaults(func=_mesh)


def _mesh(args):
    from colonsim.errors import InputError

    if args.measure is not None:
        if args.config or args.overrides:
            raise InputError("--config/--set apply to generation (--out), not to --measure")
        from colonsim.anatomy.measure import measure_colon
        from colonsim.anatomy.meshio import load_colon

        r = measure_colon(load_colon(args.measure, scale=args.scale, centerline=args.centerline))
        rad = r["radius_mm"]
        fold = "n/a" if r["fold_spacing_mm"] is None else f"{r['fold_spacing_mm']:.1f} mm"
        return (f"{r['name']}: {r['triangles']:,} triangles, {r['length_mm']:,.0f} mm centreline, radius "
                f"p10/p50/p90 {rad['p10']:.1f}/{rad['p50']:.1f}/{rad['p90']:.1f} mm, fold spacing {fold}"), r
    if args.scale or args.centerline:
        raise InputError("--scale/--centerline apply to --measure, not to --out")
    from colonsim.anatomy.meshio import write_procedural_colon

    r = write_procedural_colon(args.out, seed=args.seed, config=args.config, overrides=args.overrides,
                               overwrite=args.overwrite)
    return (f"wrote {r['mesh']}: {r['triangles']:,} triangles, {r['length_mm']:,.0f} mm centreline, "
            f"radius p50 {r['radius_mm']['p50']:.1f} mm ({r['seconds']:.1f} s)"), r
