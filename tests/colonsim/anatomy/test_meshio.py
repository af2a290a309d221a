"""Mesh export and import: round trips, the CT reference (VTK parts, voxel scale), bad files."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from colonsim.anatomy.centerline import Centerline
from colonsim.anatomy.colon import generate_colon, load_anatomy_config
from colonsim.anatomy.measure import local_wall_distance, measure_colon
from colonsim.anatomy.meshio import centerline_path, load_colon, parse_scale, save_colon
from colonsim.errors import ColonSimError, InputError, MeshError

CT = Path(__file__).resolve().parents[4] / "shared" / "data" / "meshes" / "gca-edin-00020"
CT_VOXEL_MM = (0.808594, 0.808594, 0.7)
needs_ct = pytest.mark.skipif(not CT.is_dir(), reason=f"CT reference mesh not found at {CT}")


def small_colon(seed=0, *extra):
    cfg = load_anatomy_config(overrides=["anatomy.segments=[sigmoid]", "anatomy.max_length_mm=200",
                                         "anatomy.triangles=20000", *extra])
    return generate_colon(cfg, seed)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_export_import_round_trip_keeps_geometry_centreline_and_uv(tmp_path, suffix):
    colon = small_colon(1)
    path = tmp_path / f"colon{suffix}"
    save_colon(colon, path)
    back = load_colon(path)
    assert np.array_equal(back.mesh.faces, colon.mesh.faces)
    assert np.allclose(back.mesh.vertices, colon.mesh.vertices, atol=1e-4)
    assert np.array_equal(back.centerline.points_mm, colon.centerline.points_mm)
    assert np.array_equal(back.centerline.segment, colon.centerline.segment)
    assert np.array_equal(back.uv, colon.uv)


def test_scale_multiplies_mesh_and_centreline(tmp_path):
    colon = small_colon(2)
    save_colon(colon, tmp_path / "c.ply")
    line_file = tmp_path / "line.txt"
    np.savetxt(line_file, colon.centerline.points_mm / 2.0)  # a centreline in the file's units
    centerline_path(tmp_path / "c.ply").unlink()
    half = load_colon(tmp_path / "c.ply", scale=[0.5, 0.5, 0.5], centerline=line_file)
    assert np.allclose(half.mesh.vertices, colon.mesh.vertices * 0.5, atol=1e-4)
    assert np.allclose(half.centerline.points_mm, colon.centerline.points_mm / 4.0)
    assert np.allclose(parse_scale("0.8,0.8,0.7"), [0.8, 0.8, 0.7])


def test_computed_centreline_stays_inside_the_lumen_near_the_true_one(tmp_path):
    colon = small_colon(5, "anatomy.max_length_mm=250", "anatomy.triangles=30000")
    save_colon(colon, tmp_path / "c.ply")
    centerline_path(tmp_path / "c.ply").unlink()
    found = load_colon(tmp_path / "c.ply")
    off, _ = cKDTree(colon.centerline.points_mm).query(found.centerline.points_mm)
    # The procedural tube is capped with shallow cones; the found line runs into them, where the
    # true line has ended: compare away from the two ends.
    s = found.centerline.arclength_mm()
    inner = (s > 1.5 * colon.centerline.radius_mm.max()) & (s < s[-1] - 1.5 * colon.centerline.radius_mm.max())
    assert inner.mean() > 0.6 and off[inner].max() < 5.0
    assert found.centerline.arclength_mm()[-1] > 0.85 * colon.centerline.arclength_mm()[-1]
    assert local_wall_distance(found, found.centerline.points_mm[inner]).min() > 0.5 * colon.centerline.radius_mm.min()


@needs_ct
def test_ct_reference_imports_at_voxel_scale_and_measures_like_ct():
    colon = load_colon(CT, scale=",".join(map(str, CT_VOXEL_MM)), centerline=CT / "Paths_large_intestine_path.jsn")
    assert colon.mesh.body_count == 1 and len(colon.mesh.faces) > 90_000  # 10 parts joined into one
    centres = colon.mesh.triangles_center  # the CT surface faces outward; the importer turns it inward
    _, i = cKDTree(colon.centerline.points_mm).query(centres)
    assert np.mean(np.einsum("ij,ij->i", colon.mesh.face_normals, colon.centerline.points_mm[i] - centres) > 0) > 0.8
    extent = colon.mesh.bounds[1] - colon.mesh.bounds[0]
    assert np.allclose(extent, [333.1, 268.8, 445.8], atol=1.0)  # mm: the voxel extent times the voxel size
    m = measure_colon(colon, step_mm=2.0)
    assert m["length_mm"] == pytest.approx(2389.9, abs=1.0)
    r = m["radius_mm"]
    # Slices seeing only the wall around the centre: p5 14.4, p50 22.6, p95 31.2 mm (docs/anatomy.md
    # explains why the 21.0/28.6/40.7, which include other loops cut by the plane, are higher)
    assert r["p5"] == pytest.approx(14.4, abs=1.0)
    assert r["p50"] == pytest.approx(22.6, abs=1.0)
    assert r["p95"] == pytest.approx(31.2, abs=1.5)
    assert 15 < m["fold_spacing_mm"] < 40


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("make, error", [
    (lambda d: d / "missing.ply", InputError),
    (lambda d: _write(d / "empty.ply", ""), MeshError),
    (lambda d: (d / "garbage.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\n\x00\x01garbage") and d / "garbage.ply", MeshError),
    (lambda d: _write(d / "nan.obj", "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"), MeshError),
    (lambda d: _write(d / "points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), MeshError),
    (lambda d: _write(d / "quad.vtk", "# vtk DataFile Version 1.0\nx\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
                      "0 0 0 1 0 0 1 1 0 0 1 0\nPOLYGONS 1 5\n4 0 1 2 3\n"), MeshError),
    (lambda d: _write(d / "short.vtk", "# vtk DataFile Version 1.0\nx\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n0 0"), MeshError),
    (lambda d: _write(d / "colon.xyz", "1 2 3\n"), InputError),
    (lambda d: d, InputError),  # a folder without mesh files
])
def test_bad_mesh_files_raise_colonsim_errors(tmp_path, make, error):
    (tmp_path / "sub").mkdir()
    path = make(tmp_path / "sub")
    with pytest.raises(error):
        load_colon(path)


@pytest.mark.parametrize("name, text", [
    ("two.json", json.dumps({"points": [[1, 2], [3, 4]]})),
    ("flat.json", json.dumps({"points": [1, 2, 3]})),
    ("nopoints.json", json.dumps({"tangents": [[1, 2, 3]]})),
    ("one.txt", "1 2 3\n"),
    ("bad.txt", "1 2 x\n4 5 6\n"),
])
def test_centreline_files_of_the_wrong_shape_raise_input_error(tmp_path, name, text):
    with pytest.raises(InputError):
        Centerline.load(_write(tmp_path / name, text))
    colon = small_colon(0)
    save_colon(colon, tmp_path / "c.ply")
    with pytest.raises(ColonSimError):
        load_colon(tmp_path / "c.ply", centerline=tmp_path / name)


def test_bad_scale_raises_input_error():
    for bad in ("0", "-1", "1,2", "a", "nan"):
        with pytest.raises(InputError):
            parse_scale(bad)


QUAD_VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32)


def _quad_obj(d: Path) -> Path:
    return _write(d / "quad.obj", "".join(f"v {x} {y} {z}\n" for x, y, z in QUAD_VERTICES)
                  + "f 1 2 3 4\nf 1 2 5\nf 2 3 5\n")


def _quad_ply(d: Path, binary: bool) -> Path:
    header = (f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\nelement vertex 5\n"
              "property float x\nproperty float y\nproperty float z\nelement face 2\n"
              "property list uchar int vertex_indices\nend_header\n")
    p = d / f"quad_{'bin' if binary else 'ascii'}.ply"
    if binary:  # all quads (trimesh reads binary lists of one length only)
        faces = np.array([(4, (0, 1, 2, 3)), (4, (0, 1, 4, 3))], dtype=[("n", "u1"), ("i", "<i4", (4,))])
        p.write_bytes(header.encode() + QUAD_VERTICES.astype("<f4").tobytes() + faces.tobytes())
    else:
        p.write_text(header + "".join(f"{x} {y} {z}\n" for x, y, z in QUAD_VERTICES) + "4 0 1 2 3\n3 0 1 4\n")
    return p


@pytest.mark.parametrize("make, n", [
    (_quad_obj, 1),
    (lambda d: _quad_ply(d, binary=False), 1),
    (lambda d: _quad_ply(d, binary=True), 2),
    (lambda d: _write(d / "quad.off", "OFF\n5 2 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in QUAD_VERTICES)
                      + "4 0 1 2 3\n3 0 1 4\n"), 1),
], ids=["obj", "ply-ascii", "ply-binary", "off"])
def test_quads_are_refused_not_silently_triangulated(tmp_path, make, n):
    """trimesh splits quads into triangles on load; the importer counts them and refuses the file."""
    with pytest.raises(MeshError, match=f"has {n} non-triangular faces"):
        load_colon(make(tmp_path))


def test_triangle_files_of_every_format_pass_the_polygon_check(tmp_path):
    import trimesh

    from colonsim.anatomy.meshio import _read_file
    tri = trimesh.creation.cylinder(radius=20, height=200, sections=24)
    for suffix in (".obj", ".ply", ".off", ".stl"):
        tri.export(tmp_path / f"t{suffix}")
        assert len(_read_file(tmp_path / f"t{suffix}").faces) == len(tri.faces), suffix
