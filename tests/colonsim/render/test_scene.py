"""FrameRenderer: exact z-depth through every lens model, determinism, frame contents."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from colonsim.anatomy.centerline import Centerline
from colonsim.anatomy.colon import Colon, generate_colon
from colonsim.errors import InputError
from colonsim.render.scene import Frame, FrameRenderer
from colonsim.simconfig import load_sim_config
from tests.colonsim.raycast import ray_hit

R_MM = 10.0


def _tube(radius=R_MM, length=2000.0, sections=256, rings=100) -> Colon:
    """An open straight tube along -z from z = 0, normals inward, as a Colon."""
    th = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    z = np.linspace(0.0, -length, rings)
    v = np.stack([np.tile(radius * np.cos(th), rings), np.tile(radius * np.sin(th), rings),
                  np.repeat(z, sections)], axis=1)
    i, j = np.meshgrid(np.arange(rings - 1), np.arange(sections), indexing="ij")
    a, b = i * sections + j, i * sections + (j + 1) % sections
    c, d = a + sections, b + sections
    f = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    line = Centerline.from_points(np.stack([np.zeros(20), np.zeros(20), np.linspace(0, -length, 20)], 1))
    return Colon(mesh=trimesh.Trimesh(v, f, process=False), centerline=line, uv=None, name="tube")


@pytest.mark.parametrize("model,fov,size", [("pinhole", 100.0, 64), ("fisheye", 140.0, 96),
                                            ("omnidir", 120.0, 96), ("fisheye", 170.0, 96)])
def test_depth_on_the_axis_of_a_cylinder_is_the_analytic_z_depth(model, fov, size):
    cfg = load_sim_config(overrides=[f"lens.model={model}", f"lens.fov_deg={fov}", "lens.mask=round",
                                     f"output.size_px={size}", "lens.zfar_mm=3000"])
    r = FrameRenderer(cfg, [_tube()])
    rng = np.random.default_rng(0)
    from colonsim.render import light, tissue
    pose = np.eye(4)
    pose[2, 3] = -100.0                       # on the axis, 100 mm into the tube, looking down it
    _, depth = r.render_linear(0, pose, tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng))
    rays, _ = r.lens.pixel_to_ray(r.lens.pixel_grid())
    sin = np.hypot(rays[:, 0], rays[:, 1])
    z_true = (R_MM * -rays[:, 2] / np.maximum(sin, 1e-12)).reshape(depth.shape)
    # Compare where the wall is < 150 mm away: farther, a pixel spans a large depth range near
    # the vanishing point, and at theta > 90 deg (the 170 deg lens) the z-depth is not defined.
    check = (r.mask > 0) & (z_true < 150.0) & (z_true > 0.5)
    assert check.sum() > 0.5 * r.mask.sum()
    assert (depth[check] > 0).all()
    assert np.abs(depth[check] / z_true[check] - 1).max() < 0.005
    assert (depth[r.mask == 0] == 0).all()
    r.close()


@pytest.fixture(scope="module")
def colon():
    cfg = load_sim_config(overrides=["anatomy.triangles=20000"])
    return generate_colon(cfg.anatomy, 1000)


def test_frames_are_pure_functions_of_seed_and_index(colon):
    cfg = load_sim_config("realistic", overrides=["output.size_px=48"])
    r = FrameRenderer(cfg, [colon, colon])
    a1, b, a2 = r.render(3, 11), r.render(8, 11), r.render(3, 11)
    assert np.array_equal(a1.rgb, a2.rgb) and np.array_equal(a1.depth, a2.depth)
    assert a1.params == a2.params and np.array_equal(a1.pose, a2.pose)
    assert not np.array_equal(a1.rgb, b.rgb)
    assert list(a1.params) == list(b.params)                     # same keys, same order
    assert a1.params["mesh_id"] == 1.0 and b.params["mesh_id"] == 0.0
    other = r.render(3, 12)
    assert not np.array_equal(other.rgb, a1.rgb)
    r.close()


@pytest.mark.parametrize("fov", [120.0, 170.0])   # one view; five cube faces (read back at once)
def test_pipelined_submit_and_collect_give_the_frames_of_render(colon, fov):
    """Frame i + 1 drawn into the other framebuffer before frame i is read back (as a render
    worker does): each frame still equals render(i), whichever slot it went through, with the
    read-back kept or not."""
    cfg = load_sim_config("realistic", overrides=["output.size_px=48", f"lens.fov_deg={fov}"])
    r = FrameRenderer(cfg, [colon])
    reference = [r.render(i, 5) for i in range(5)]
    got = []
    nxt = r.submit(0, 5, slot=0)
    for i in range(5):
        cur = nxt
        if i + 1 < 5:
            nxt = r.submit(i + 1, 5, slot=(i + 1) % 2)
        got.append(r.finish(r.collect(cur, keep=i % 2 == 0)))
    for a, b in zip(reference, got):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and a.params == b.params
    assert not np.array_equal(got[0].rgb, got[1].rgb)
    # kept read-backs stay valid after both slots have been drawn again
    kept = [r.collect(r.submit(i, 5, slot=i % 2)) for i in range(2)]
    r.render(4, 5)
    r.submit(3, 5, slot=1)
    assert all(np.array_equal(r.finish(k).rgb, reference[i].rgb) for i, k in enumerate(kept))
    r.close()


def test_parts_prepared_in_another_process_give_the_same_frames(colon, tmp_path):
    """A render worker builds its renderer from mesh parts that the parent prepared and pickled:
    the frames are those of a renderer that built them itself."""
    import pickle

    from colonsim.render.scene import prepare
    cfg = load_sim_config("realistic", overrides=["output.size_px=48"])
    other = generate_colon(load_sim_config(overrides=["anatomy.triangles=20000"]).anatomy, 3)
    parts = pickle.loads(pickle.dumps(prepare(cfg, [colon, other])))
    assert [len(p.faces) for p in parts] == [len(colon.mesh.faces), len(other.mesh.faces)]
    assert not np.array_equal(parts[0].texture, parts[1].texture)   # per-mesh texture
    own = FrameRenderer(cfg, [colon, other])
    shipped = FrameRenderer(cfg, [colon, other], prepared=parts)
    for i in (0, 1, 7):
        a, b = own.render(i, 2), shipped.render(i, 2)
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    with pytest.raises(InputError, match="prepared parts for 2 colons"):
        FrameRenderer(cfg, [colon], prepared=parts)


def test_frame_fields_follow_the_contract(colon):
    cfg = load_sim_config("clean", overrides=["output.size_px=48"])
    r = FrameRenderer(cfg, [colon])
    f = r.render(0, 1)
    assert isinstance(f, Frame)
    assert f.rgb.shape == (48, 48, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (48, 48) and f.depth.dtype == np.float32
    assert f.mask.shape == (48, 48) and f.mask.dtype == np.uint8
    assert f.pose.shape == (4, 4) and f.pose.dtype == np.float32
    assert f.intrinsics.shape == (3, 3) and f.intrinsics.dtype == np.float32
    assert (f.depth[f.mask == 0] == 0).all() and (f.rgb[f.mask == 0] == 0).all()
    inside = f.mask > 0
    assert (f.depth[inside] > 0).mean() > 0.5 and f.depth[inside].max() < cfg.lens.zfar_mm
    assert f.rgb[inside].mean() > 20                              # lit, not black
    assert all(isinstance(v, float) for v in f.params.values())
    for key in ("mesh_id", "tissue_specular", "light_mu", "sensor_exposure_ev"):
        assert key in f.params
    r.close()


def test_a_camera_looking_at_the_end_of_the_colon_sees_wall_not_a_hole():
    cfg = load_sim_config("clean", None, ["output.size_px=64", "anatomy.segments=[sigmoid]",
                                          "anatomy.max_length_mm=200", "anatomy.triangles=20000"])
    colon = generate_colon(cfg.anatomy, 4)
    r = FrameRenderer(cfg, [colon])
    from colonsim.render import light, tissue
    rng = np.random.default_rng(0)
    line = colon.centerline
    for end, sign in ((-1, 1.0), (0, -1.0)):       # look out of each end, 20 mm before it
        k = int(np.argmin(np.abs(line.arclength_mm() - (line.arclength_mm()[end] - sign * 20.0))))
        fwd = sign * line.tangents[k]
        up = np.cross(fwd, [1.0, 0, 0] if abs(fwd[0]) < 0.9 else [0, 1.0, 0])
        up /= np.linalg.norm(up)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = np.cross(up, -fwd), up, -fwd, line.points_mm[k]
        _, depth = r.render_linear(0, pose, tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng))
        inside = r.mask > 0
        assert (depth[inside] > 0).all()
        assert depth[inside].max() < 20.0 + 0.5 * line.radius_mm.max() + 5.0   # the cap, not beyond


@pytest.mark.parametrize("shape", ["dome", "sphere"])
def test_a_polyp_view_renders_the_polyp_apex_at_its_exact_depth(shape):
    """Polyps are geometry: where a polyp view's apex projects, the depth is where the ray through
    that pixel first meets the mesh (the polyp's own triangles, or a fold in front of it)."""
    cfg = load_sim_config("clean", None, [
        "output.size_px=96", "lens.model=pinhole", "lens.fov_deg=90", "lens.mask=round", "lens.render_scale=1",
        "anatomy.segments=[sigmoid]", "anatomy.max_length_mm=300", "anatomy.triangles=20000",
        "anatomy.polyps_per_m=20", "trajectory.polyp_view_probability=1", f"anatomy.polyp_shape={shape}"])
    colon = generate_colon(cfg.anatomy, 5)
    r = FrameRenderer(cfg, [colon])
    k = r.intrinsics
    tri_world = colon.mesh.triangles
    checked = on_polyp = 0
    for i in range(12):
        frame = r.render(i, seed=0)
        world_to_cam = np.linalg.inv(frame.pose.astype(np.float64))
        tri = tri_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        for apex, normal, radius in zip(colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6]):
            x, y, z = (world_to_cam @ np.append(apex, 1.0))[:3]
            to_camera = frame.pose[:3, 3] - apex
            if not 5.0 < -z < 31.0 or normal @ to_camera < np.cos(np.radians(60)) * np.linalg.norm(to_camera):
                continue   # too near or far, or seen from the side (its apex near the silhouette)
            u, v = k[0, 0] * x / -z + k[0, 2], k[1, 2] - k[1, 1] * y / -z   # pixel centres at integers
            col, row = int(round(u)), int(round(v))
            if not (8 <= col < 88 and 8 <= row < 88) or frame.mask[row, col] == 0:
                continue
            ray = np.array([(col - k[0, 2]) / k[0, 0], -(row - k[1, 2]) / k[1, 1], -1.0])
            t = ray_hit(tri, np.zeros(3), ray)            # z-depth: the ray's z component is -1
            d = frame.depth[row, col]
            assert d == pytest.approx(t, rel=1e-3)        # float32 depth, float64 reference
            checked += 1
            on_polyp += bool(abs(t - (-z)) < 0.3 * radius)   # the hit is the polyp's top, not a fold
    r.close()
    assert checked >= 8 and on_polyp >= 0.8 * checked
