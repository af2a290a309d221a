"""Colon mesh files: export (PLY/OBJ/GLB plus ``MESH.centerline.npz``) and import (any trimesh format,
legacy VTK POLYDATA ASCII, or a folder of parts joined into one)."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh

from colonsim.anatomy.centerline import SEGMENT_NAMES, Centerline
from colonsim.anatomy.colon import Colon, generate_colon, load_anatomy_config
from colonsim.anatomy.measure import estimate_centerline, slice_radii
from colonsim.config import check_seed, to_dict
from colonsim.data import outputs
from colonsim.errors import InputError, MeshError

log = logging.getLogger(__name__)

EXPORT_FORMATS = (".ply", ".obj", ".glb")
IMPORT_FORMATS = (".ply", ".obj", ".stl", ".glb", ".gltf", ".off", ".vtk")


def centerline_path(mesh_path: str | Path) -> Path:
    """``colon.ply`` -> ``colon.centerline.npz``: the centreline file written beside a mesh."""
    p = Path(mesh_path)
    return p.with_name(p.stem + ".centerline.npz")


def save_colon(colon: Colon, path: str | Path) -> Path:
    """Write the mesh (.ply/.obj/.glb, chosen by suffix) and its centreline beside it. The npz holds
    points_mm, tangents, radius_mm, segment (+ segment_names) and, for procedural colons, the per-vertex
    uv (V, 2) float32. Returns the centreline path."""
    p = Path(path)
    if p.suffix.lower() not in EXPORT_FORMATS:
        raise InputError(f"cannot write mesh format {p.suffix or '(none)'} for {p}; use one of "
                         f"{', '.join(EXPORT_FORMATS)}")
    if not p.parent.is_dir():
        raise InputError(f"output folder does not exist: {p.parent}")
    mesh = trimesh.Trimesh(vertices=colon.mesh.vertices, faces=colon.mesh.faces, process=False)
    data = mesh.export(file_type=p.suffix.lower()[1:])
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    cpath = centerline_path(p)
    c = colon.centerline
    extra = {} if colon.uv is None else {"vertex_uv": colon.uv}
    with open(cpath, "wb") as f:
        np.savez(f, points_mm=c.points_mm, tangents=c.tangents, radius_mm=c.radius_mm, segment=c.segment,
                 segment_names=np.array(SEGMENT_NAMES), **extra)
    return cpath


def write_procedural_colon(out: str | Path, seed: int = 0, config: str | Path | None = None,
                           overrides: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Generate a colon from the anatomy config (defaults, ``config`` YAML, ``anatomy.*`` overrides)
    and write it with its centreline. An existing mesh or centreline is replaced only with
    ``overwrite``, and only once both new files are complete (:mod:`colonsim.data.outputs`).
    Returns a summary: paths, triangles, length, radius, seconds."""
    p = outputs.check_target(out, overwrite=overwrite, companions=[centerline_path(Path(out or "x"))])
    if p.suffix.lower() not in EXPORT_FORMATS:  # checked before the work, not after
        raise InputError(f"cannot write mesh format {p.suffix or '(none)'} for {p}; use one of "
                         f"{', '.join(EXPORT_FORMATS)}")
    check_seed(seed)
    cfg = load_anatomy_config(config, overrides)
    start = time.perf_counter()
    colon = generate_colon(cfg, seed)
    cpath = centerline_path(p)
    with outputs.staged(p, overwrite=overwrite, companions=[cpath]) as tmp:
        save_colon(colon, tmp)
    radius = colon.centerline.radius_mm
    return {"mesh": str(p), "centerline": str(cpath), "seed": int(seed),
            "triangles": int(len(colon.mesh.faces)), "vertices": int(len(colon.mesh.vertices)),
            "length_mm": round(float(colon.centerline.arclength_mm()[-1]), 1),
            "radius_mm": {f"p{q}": round(float(np.percentile(radius, q)), 2) for q in (10, 50, 90)},
            "seconds": round(time.perf_counter() - start, 3), "config": to_dict(cfg)}


def parse_scale(text: str | float | Sequence[float] | None) -> np.ndarray:
    """(3,) float64 from one factor or sx,sy,sz (``"0.808594,0.808594,0.7"``); None means 1."""
    if text is None:
        return np.ones(3)
    try:
        vals = [float(v) for v in text.replace(",", " ").split()] if isinstance(text, str) else \
            list(np.atleast_1d(np.asarray(text, dtype=np.float64)))
    except ValueError:
        raise InputError(f"scale {text!r} is not a number or sx,sy,sz") from None
    if len(vals) not in (1, 3) or not all(np.isfinite(vals)) or min(vals) <= 0:
        raise InputError(f"scale {text!r} must be one positive factor or three (sx,sy,sz)")
    return np.asarray(vals * 3 if len(vals) == 1 else vals, dtype=np.float64)


def load_colon(path: str | Path, scale: str | float | Sequence[float] | None = None,
               centerline: str | Path | Centerline | None = None) -> Colon:
    """Read a colon surface: one mesh file or a folder whose mesh files are parts of one colon.

    ``scale`` multiplies the coordinates of the mesh and of the centreline (both in file units, e.g.
    CT voxels). The centreline comes from ``centerline``, else from ``MESH.centerline.npz`` beside the
    file, else it is computed inside the lumen. ``radius_mm`` is measured on the surface.
    """

    p = Path(path)
    factors = parse_scale(scale)
    mesh = _read_any(p)
    mesh.vertices = mesh.vertices * factors
    sidecar = centerline is None and p.is_file() and centerline_path(p).is_file()
    if sidecar:
        centerline = centerline_path(p)
    if centerline is None:
        line = estimate_centerline(mesh)
    else:
        line = centerline if isinstance(centerline, Centerline) else Centerline.load(centerline)
        if not np.all(factors == 1.0):
            line = line.scaled(factors)  # the radius becomes unknown, and is measured below
    mesh = orient_inward(mesh, line)
    if np.isnan(line.radius_mm).all():
        line = dataclasses.replace(line, radius_mm=slice_radii(mesh, line))
    uv = _sidecar_uv(centerline_path(p), len(mesh.vertices)) if sidecar and np.all(factors == 1.0) else None
    return Colon(mesh=mesh, centerline=line, uv=uv, name=p.stem if p.is_file() else p.name)


def orient_inward(mesh: trimesh.Trimesh, line: Centerline) -> trimesh.Trimesh:
    """The mesh with each connected part wound so that most normals face the centreline (inward),
    as the renderer culls back faces and the camera is inside. CT surfaces usually face outward."""
    from scipy.spatial import cKDTree

    centres = mesh.triangles_center
    _, nearest = cKDTree(line.points_mm).query(centres)
    inward = np.einsum("ij,ij->i", mesh.face_normals, line.points_mm[nearest] - centres) > 0
    part = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    flip = np.bincount(part, weights=~inward) > np.bincount(part, weights=inward)
    if not flip.any():
        return mesh
    faces = mesh.faces.copy()
    faces[flip[part]] = faces[flip[part]][:, ::-1]
    log.info("flipped %d of %d faces so that normals face the lumen", int(flip[part].sum()), len(faces))
    return trimesh.Trimesh(vertices=mesh.vertices, faces=faces, process=False)


def _sidecar_uv(path: Path, n_vertices: int) -> np.ndarray | None:
    with np.load(path, allow_pickle=False) as z:
        if "vertex_uv" in z and len(z["vertex_uv"]) == n_vertices:
            return np.asarray(z["vertex_uv"], np.float32)
    return None


def _read_any(p: Path) -> trimesh.Trimesh:
    if p.is_dir():
        parts = sorted(f for f in p.iterdir() if f.suffix.lower() in IMPORT_FORMATS)
        if not parts:
            raise InputError(f"folder {p} holds no mesh files ({', '.join(IMPORT_FORMATS)})")
        meshes = [_read_file(f) for f in parts]
        mesh = trimesh.util.concatenate(meshes)
        log.info("joined %d parts of %s: %d triangles", len(parts), p, len(mesh.faces))
    elif p.is_file():
        mesh = _read_file(p)
    else:
        raise InputError(f"mesh file not found: {p}")
    # parts share their boundary vertices; merging them joins the parts into one surface
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    _check(mesh, p)
    return mesh


def _read_file(f: Path) -> trimesh.Trimesh:
    if f.suffix.lower() == ".vtk":
        return read_vtk(f)
    if f.suffix.lower() not in IMPORT_FORMATS:
        raise InputError(f"unknown mesh format {f.suffix or '(none)'} for {f}; use one of "
                         f"{', '.join(IMPORT_FORMATS)}")
    if f.stat().st_size == 0:
        raise MeshError(f"mesh file {f} is empty")
    try:
        loaded = trimesh.load(f, force="mesh", process=False)
    except Exception as e:  # trimesh raises many kinds on corrupt files
        raise MeshError(f"mesh file {f} could not be read ({type(e).__name__}: {e})") from None
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(f"mesh file {f} holds no triangle mesh")
    n_poly = _count_polygons(f, loaded)
    if n_poly:
        raise MeshError(f"mesh {f} has {n_poly} non-triangular faces (quads/polygons); triangulate it first")
    _check(loaded, f)
    return loaded


def _count_polygons(f: Path, loaded: trimesh.Trimesh) -> int:
    """Faces of the file ``f`` with more than 3 vertices (trimesh splits them into triangles
    silently, which would hide a mesh exported with the wrong settings). OBJ: the vertex counts of
    the ``f`` lines; PLY: the face list lengths trimesh read; OFF: the face count in the header
    against the triangles loaded. Other formats (STL, glTF) hold triangles only."""
    suffix = f.suffix.lower()
    if suffix == ".obj":
        n = 0
        with open(f, "rb") as fh:
            for line in fh:
                if line.startswith(b"f ") or line.startswith(b"f\t"):
                    n += len(line.split(b"#", 1)[0].split()) > 4
        return n
    if suffix == ".ply":
        face = loaded.metadata.get("_ply_raw", {}).get("face")
        if not face:
            return 0
        data = face["data"]
        names = data.keys() if isinstance(data, dict) else (data.dtype.names or ())
        key = next((k for k in ("vertex_indices", "vertex_index") if k in names), None)
        if key is not None:
            col = data[key]
            if col.dtype.names:                      # binary: (count, indices) records
                counts = np.asarray(col[col.dtype.names[0]])
            elif col.dtype == object:                # ascii with lists of several lengths
                counts = np.array([len(x) for x in col])
            else:                                    # one length for all
                counts = np.full(len(col), col.shape[1] if col.ndim == 2 else 3)
            return int((counts > 3).sum())
        return max(len(loaded.faces) - int(face["length"]), 0)
    if suffix == ".off":
        words = [w for line in f.read_text(errors="replace").splitlines()
                 for w in line.split("#", 1)[0].split()]
        try:
            n_faces = int(words[2] if words[0].upper().endswith("OFF") else words[1])  # [OFF] nv nf ne
        except (IndexError, ValueError):
            return 0
        return max(len(loaded.faces) - n_faces, 0)
    return 0


def _check(mesh: trimesh.Trimesh, f: Path) -> None:
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise MeshError(f"mesh {f} has no triangles")
    if mesh.faces.ndim != 2 or mesh.faces.shape[1] != 3:
        raise MeshError(f"mesh {f} has faces that are not triangles; triangulate it first")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"mesh {f} has NaN or infinite vertex coordinates")


def read_vtk(f: Path) -> trimesh.Trimesh:
    """Legacy VTK POLYDATA ASCII (POINTS and POLYGONS of 3 vertices), e.g. the Gut Cell Atlas files."""
    try:
        tokens = f.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise MeshError(f"VTK file {f} could not be read ({e}); only ASCII legacy VTK is supported") from None
    header = [t.strip() for t in tokens[:4]]
    if len(header) < 4 or not header[0].startswith("# vtk") or header[2].upper() != "ASCII" or \
            "POLYDATA" not in header[3].upper():
        raise MeshError(f"{f} is not a legacy ASCII VTK POLYDATA file")
    words = " ".join(tokens[4:]).split()
    try:
        i = words.index("POINTS")
        n = int(words[i + 1])
        pts = np.asarray(words[i + 3: i + 3 + 3 * n], dtype=np.float64).reshape(n, 3)
        j = words.index("POLYGONS", i)
        m, size = int(words[j + 1]), int(words[j + 2])
        cells = np.asarray(words[j + 3: j + 3 + size], dtype=np.int64)
    except (ValueError, IndexError):
        raise MeshError(f"VTK file {f} is corrupt or cut short (POINTS/POLYGONS)") from None
    if len(cells) != size or size != 4 * m or not np.all(cells[::4] == 3):
        raise MeshError(f"VTK file {f} has polygons that are not triangles; triangulate it first")
    faces = cells.reshape(m, 4)[:, 1:]
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise MeshError(f"VTK file {f} has polygon indices outside its {n} points")
    mesh = trimesh.Trimesh(vertices=pts, faces=faces, process=False)
    _check(mesh, f)
    return mesh
