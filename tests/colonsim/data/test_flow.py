"""Optional outputs (output.flow, output.normals): flow that agrees with rgb, depth, pose and lens."""
from __future__ import annotations

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from colonsim.data import h5io, schema
from colonsim.render import flow as flowmod
from colonsim.render.scene import FrameRenderer
from colonsim.run.generate import render_dataset
from colonsim.simconfig import load_sim_config
from tests.colonsim.render.test_scene import _tube

# Colour that belongs to the surface, not to the camera: no light guides (their light moves with
# the tip), a uniform ambient light, no auto gain, no noise (clean style), and the fold shading of
# the vertex colours as the pattern (the tissue texture's mip level changes with the distance, so
# it is left out: with tissue.mottling=0.6 the 99th percentile was 9-16 levels).
STATIC_LIGHT = ["light.intensity=0.0", "light.ambient=0.25", "light.ambient_falloff_mm=0.0",
                "sensor.auto_gain=false", "tissue.mottling=0.0", "tissue.fold_contrast=1.0",
                "anatomy.triangles=20000"]
LENSES = {
    "pinhole": ["lens.model=pinhole", "lens.fov_deg=90.0", "lens.mask=round", "lens.circle_frac=1.5"],
    "fisheye": ["lens.render_scale=2.0"],   # the clean style's 120 deg fisheye, rendered finely
}


def _cfg(lens: str, *extra: str):
    return load_sim_config("clean", None, STATIC_LIGHT + LENSES[lens] + [
        "output.size_px=64", "trajectory.sequence_length=4", "output.flow=true", "output.normals=true",
        *extra])


@pytest.fixture(scope="module", params=sorted(LENSES))
def rendered(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "seq.h5"
    render_dataset(_cfg(request.param), out, 6, seed=5, workers=1, progress=False)
    with h5py.File(out, "r") as f:
        data = {k: f[k][()] for k in (schema.RGB, schema.DEPTH, schema.POSE, schema.FLOW, schema.OCCLUSION,
                                      schema.FLOW_VALID, schema.NORMALS)}
    return request.param, out, data


def test_warping_the_next_frame_by_the_flow_gives_the_frame(rendered):
    lens, out, d = rendered
    assert h5io.validate(out)["ok"]
    for t in range(5):
        if (t + 1) % 4 == 0 or t == 5:   # the last frame of a sequence has no flow
            assert not d[schema.FLOW_VALID][t].any() and not d[schema.FLOW][t].any()
            continue
        m = (d[schema.FLOW_VALID][t] > 0) & (d[schema.OCCLUSION][t] == 0)
        assert m.mean() > 0.3, (lens, t, m.mean())
        assert np.abs(d[schema.FLOW][t][m]).max() > 0.2   # the camera moves
        warped = flowmod.warp(d[schema.RGB][t + 1].astype(np.float32), d[schema.FLOW][t])
        err = np.abs(warped - d[schema.RGB][t]).max(axis=-1)[m]
        assert np.mean(err <= 2.0) >= 0.99, (lens, t, np.percentile(err, [50, 99, 100]))


def test_normals_are_unit_and_face_the_camera(rendered):
    lens, _, d = rendered
    n = d[schema.NORMALS].astype(np.float32)
    surface = d[schema.DEPTH] > 0
    assert np.allclose(np.linalg.norm(n[surface], axis=-1), 1.0, atol=2e-3)
    assert not n[~surface].any()
    # The camera looks along -z: a surface seen from the camera has a normal with z >= ~0 only when
    # seen head-on; every normal points back towards the camera (n . p < 0 for its point p).
    from colonsim.render.lens import Lens
    cfg = _cfg(lens)
    geo = flowmod.FlowGeometry(Lens(cfg.lens, 64, 64))
    p = geo.points(d[schema.DEPTH][0])
    assert np.mean(np.sum(n[0] * p, axis=-1)[surface[0]] < 0) > 0.99


def test_flow_is_zero_for_a_static_camera(rendered):
    lens, _, d = rendered
    from colonsim.render.lens import Lens
    geo = flowmod.FlowGeometry(Lens(_cfg(lens).lens, 64, 64))
    fl, occ, valid = flowmod.flow_to_next(geo, d[schema.DEPTH][0], d[schema.POSE][0], d[schema.DEPTH][0],
                                          d[schema.POSE][0])
    assert valid.sum() > 0.5 * valid.size
    assert np.abs(fl).max() < 1e-3
    inner = valid > 0
    assert not occ[inner].any()


def test_sideways_translation_gives_the_analytic_disparity():
    cfg = load_sim_config(overrides=["lens.model=pinhole", "lens.fov_deg=90.0", "lens.mask=none",
                                     "output.size_px=64", "lens.zfar_mm=3000"])
    r = FrameRenderer(cfg, [_tube()])
    from colonsim.render import light, tissue
    rng = np.random.default_rng(0)
    t, li = tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng)
    pose0 = np.eye(4)
    pose0[2, 3] = -100.0
    pose1 = pose0.copy()
    b = 1.5
    pose1[0, 3] += b                          # 1.5 mm to the camera's right
    _, d0 = r.render_linear(0, pose0, t, li)
    _, d1 = r.render_linear(0, pose1, t, li)
    r.close()
    geo = flowmod.FlowGeometry(r.lens)
    fl, occ, valid = flowmod.flow_to_next(geo, d0, pose0, d1, pose1)
    m = (valid > 0) & (d0 < 150)
    assert m.sum() > 0.3 * m.size
    f = r.lens.focal_px
    np.testing.assert_allclose(fl[..., 0][m], -f * b / d0[m], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fl[..., 1][m], 0.0, atol=1e-4)
    # The next frame sees the same wall wherever the target stays in the image (a tube has no
    # folds to hide behind), and not where it leaves the image.
    u = np.arange(64)[None, :] + fl[..., 0]
    inside = m & (u >= 0) & (u <= 63)
    assert occ[inside].mean() < 0.01
    assert occ[m & (u < -0.5)].all()


def test_a_file_without_the_optional_outputs_stays_valid_and_readable(tmp_path):
    cfg = load_sim_config(overrides=["output.size_px=16", "anatomy.triangles=20000"])
    out = tmp_path / "plain.h5"
    render_dataset(cfg, out, 2, seed=1, workers=1, progress=False)
    assert h5io.validate(out)["ok"]
    with h5io.open_checked(out) as f:
        assert h5io.read_frame(f, 0).keys() == {"rgb", "depth", "mask", "pose", "intrinsics", "params"}
        assert not any(name in f for name in schema.OPTIONAL_OUTPUTS)


@pytest.mark.parametrize("lens", [["lens.model=pinhole", "lens.fov_deg=100.0"],
                                  ["lens.model=fisheye", "lens.fov_deg=150.0", "lens.kb_coeffs=[0.05,-0.01,0.0,0.0]",
                                   "lens.mask=round"],
                                  ["lens.model=omnidir", "lens.fov_deg=140.0", "lens.mask=octagon"]])
def test_the_compiled_flow_loop_agrees_with_the_numpy_reference(lens):
    from colonsim.render.lens import Lens
    cfg = load_sim_config(overrides=lens)
    geo = flowmod.FlowGeometry(Lens(cfg.lens, 40, 40))
    rng = np.random.default_rng(1)
    d0 = np.where(geo.mask > 0, 15 + 10 * rng.random((40, 40)), 0).astype(np.float32)
    d1 = np.where(geo.mask > 0, 15 + 10 * rng.random((40, 40)), 0).astype(np.float32)
    d1[:5] = 0
    p0, p1 = np.eye(4), np.eye(4)
    from scipy.spatial.transform import Rotation
    p1[:3, :3] = Rotation.from_euler("xyz", [3, -4, 10], degrees=True).as_matrix()
    p1[:3, 3] = [0.8, -0.5, -2.0]
    a = flowmod.flow_to_next(geo, d0, p0, d1, p1, rel_tol=0.3)
    b = flowmod.flow_to_next(geo, d0, p0, d1, p1, rel_tol=0.3, compiled=False)
    assert a[2].sum() > 0.5 * (geo.mask > 0).sum() and 0 < a[1].sum() < a[2].sum()
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)
    assert (a[1] != b[1]).mean() < 0.002   # only where a depth comparison is a hair from the tolerance


def test_the_dataset_returns_the_optional_outputs_when_asked(rendered):
    from colonsim.data.dataset import FrameDataset
    _, out, d = rendered
    ds = FrameDataset(out, fields=("rgb", "flow", "occlusion", "flow_valid", "normals"))
    item = ds[1]
    assert item["flow"].shape == (2, 64, 64) and item["normals"].shape == (3, 64, 64)
    assert item["occlusion"].shape == (1, 64, 64) and item["flow_valid"].shape == (1, 64, 64)
    np.testing.assert_array_equal(item["flow"].numpy().transpose(1, 2, 0), d[schema.FLOW][1])
    ds.close()


def test_the_optional_outputs_do_not_depend_on_the_worker_count(tmp_path):
    """One worker renders pipelined, two do not; shards of 2 frames cut the sequences of 4, so the
    last frame of a shard takes its next frame's depth from a render of its own."""
    cfg = load_sim_config("realistic", None, ["output.size_px=32", "anatomy.triangles=20000",
                                              "trajectory.sequence_length=4", "output.flow=true",
                                              "output.normals=true", "output.polyp_mask=true",
                                              "anatomy.polyps_per_m=20", "trajectory.polyp_view_probability=0.5"])
    files = []
    for k in (1, 2):
        out = tmp_path / f"w{k}.h5"
        render_dataset(cfg, out, 8, seed=4, workers=k, progress=False)
        files.append(out)
    with h5py.File(files[0], "r") as a, h5py.File(files[1], "r") as b:
        for name in ("rgb", "depth", *schema.OPTIONAL_OUTPUTS):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        assert a["flow_valid"][()].reshape(8, -1).any(axis=1).tolist() == [True, True, True, False] * 2
