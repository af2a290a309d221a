"""Light physics through the real GL pipeline: inverse-square falloff and the angular profile."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from colonsim.anatomy.centerline import Centerline
from colonsim.anatomy.colon import Colon
from colonsim.errors import ConfigError
from colonsim.render import light as lightmod
from colonsim.render.scene import FrameRenderer
from colonsim.simconfig import load_sim_config

SIZE = 48
MATTE = ["tissue.albedo_r=1", "tissue.albedo_g=1", "tissue.albedo_b=1", "tissue.mottling=0",
         "tissue.vessel_contrast=0", "tissue.grain=0", "tissue.specular=0", "tissue.fold_contrast=0",
         "tissue.bump=0", "lens.vignetting=0", "lens.mask=none"]


def _plane_colon(half_mm=400.0) -> Colon:
    """A square plane z = 0, normal +z, split into a grid (the camera looks at it along -z)."""
    n = 8
    xs = np.linspace(-half_mm, half_mm, n + 1)
    v = np.array([[x, y, 0.0] for y in xs for x in xs])
    f = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            f += [[a, b, d], [a, d, c]]
    mesh = trimesh.Trimesh(v, np.array(f), process=False)
    line = Centerline.from_points(np.array([[0.0, 0.0, 100.0], [0.0, 0.0, 0.0]]))
    return Colon(mesh=mesh, centerline=line, uv=None, name="plane")


def _white_matte() -> dict:
    """Per-frame tissue parameters of white, matte, untextured tissue."""
    tissue = {k: 0.0 for k in ("tissue_mottling", "tissue_vessel_contrast", "tissue_grain",
                               "tissue_specular", "tissue_fold_contrast", "tissue_bump",
                               "tissue_subsurface")}
    tissue.update(tissue_albedo_r=1.0, tissue_albedo_g=1.0, tissue_albedo_b=1.0,
                  tissue_period_mm=20.0, tissue_roughness=0.2)
    return tissue


def _render(renderer, d_mm, mu, offset=0.0):
    cfg = renderer.cfg
    light = {"light_offset_mm": offset, "light_angle0_deg": 0.0, "light_intensity": 0.5,
             "light_mu": mu, "light_ambient": 0.0, "light_ambient_tint": 0.0}
    pose = np.eye(4)
    pose[2, 3] = d_mm
    rgb, depth = renderer.render_linear(0, pose, _white_matte(), light)
    return rgb[..., 1].astype(np.float64), depth, cfg, light


@pytest.fixture(scope="module")
def renderer():
    cfg = load_sim_config(overrides=MATTE + ["lens.model=pinhole", "lens.fov_deg=90", f"output.size_px={SIZE}",
                                             "light.n_guides=1"])
    r = FrameRenderer(cfg, [_plane_colon()])
    yield r
    r.close()


def test_radiance_falls_off_with_the_inverse_square_of_distance(renderer):
    near, _, _, _ = _render(renderer, 20.0, 2.8)
    far, _, _, _ = _render(renderer, 40.0, 2.8)
    c = slice(SIZE // 2 - 2, SIZE // 2 + 2)
    ratio = near[c, c].mean() / far[c, c].mean()
    assert abs(ratio / 4.0 - 1) < 0.03
    # and the on-axis value is the configured intensity scaled by (ref / d)^2
    assert near[c, c].mean() == pytest.approx(0.5 * (30.0 / 20.0) ** 2, rel=0.02)


@pytest.mark.parametrize("mu", [0.0, 2.8, 6.0])
def test_angular_profile_matches_the_configured_one(renderer, mu):
    img, depth, cfg, light = _render(renderer, 25.0, mu)
    rays, _ = renderer.lens.pixel_to_ray(renderer.lens.pixel_grid())
    t = depth.ravel() / -rays[:, 2]
    pts = rays * t[:, None]                                       # camera frame, mm
    normals = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
    want = lightmod.irradiance(pts, normals, cfg.light, light).reshape(img.shape)
    np.testing.assert_allclose(img, want, rtol=0.02)
    # the corner/centre ratio isolates the profile: cos^3 geometry times exp(-mu (1 - cos))
    cos = -rays[0, 2]
    assert img[0, 0] / img[SIZE // 2, SIZE // 2] == pytest.approx(cos**3 * np.exp(-mu * (1 - cos)), rel=0.03)


@pytest.mark.parametrize("falloff", [0.0, 40.0])
def test_stray_light_is_uniform_or_falls_off_with_distance_from_the_tip(falloff):
    cfg = load_sim_config(overrides=MATTE + ["lens.model=pinhole", "lens.fov_deg=90", f"output.size_px={SIZE}",
                                             "light.n_guides=1", f"light.ambient_falloff_mm={falloff}"])
    r = FrameRenderer(cfg, [_plane_colon()])
    try:
        tissue = _white_matte()
        light = {"light_offset_mm": 0.0, "light_angle0_deg": 0.0, "light_intensity": 0.0,
                 "light_mu": 0.0, "light_ambient": 0.2, "light_ambient_tint": 0.0}                     # stray light only
        got = {}
        for d in (20.0, 80.0):
            pose = np.eye(4)
            pose[2, 3] = d
            rgb, depth = r.render_linear(0, pose, tissue, light)
            rays, _ = r.lens.pixel_to_ray(r.lens.pixel_grid())
            dist = (depth.ravel() / -rays[:, 2]) * np.linalg.norm(rays, axis=1)     # to the tip, mm
            want = lightmod.ambient(dist, cfg.light, light).reshape(depth.shape)
            np.testing.assert_allclose(rgb[..., 1], want, rtol=0.01)
            got[d] = rgb[SIZE // 2, SIZE // 2, 1]
    finally:
        r.close()
    if falloff == 0:
        assert got[20.0] == pytest.approx(0.2, rel=0.01) and got[80.0] == pytest.approx(0.2, rel=0.01)
    else:   # 1 / (1 + (d / 40)^2): 0.8 of the stray light at 20 mm, 0.2 at 80 mm
        assert got[20.0] == pytest.approx(0.2 * 0.8, rel=0.01) and got[80.0] == pytest.approx(0.2 * 0.2, rel=0.01)


def test_guides_sit_on_a_ring_at_the_configured_offset():
    cfg = load_sim_config(overrides=["light.n_guides=3", "light.offset_mm=3.5"]).light
    rng = np.random.default_rng(0)
    pos = lightmod.guide_positions(cfg, lightmod.sample_params(cfg, rng))
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 3.5)
    np.testing.assert_allclose(pos[:, 2], 0.0)
    ang = np.sort(np.degrees(np.arctan2(pos[:, 1], pos[:, 0])) % 360)
    np.testing.assert_allclose(np.diff(ang), 120.0)


def test_offset_guides_shade_like_the_reference_model(renderer):
    cfg = load_sim_config(overrides=MATTE + ["lens.model=pinhole", "lens.fov_deg=90", f"output.size_px={SIZE}",
                                             "light.n_guides=1", "light.offset_mm=4"])
    img, depth, _, light = _render(renderer, 10.0, 2.8, offset=4.0)
    rays, _ = renderer.lens.pixel_to_ray(renderer.lens.pixel_grid())
    pts = rays * (depth.ravel() / -rays[:, 2])[:, None]
    want = lightmod.irradiance(pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), cfg.light, light)
    np.testing.assert_allclose(img.ravel(), want, rtol=0.02)


@pytest.mark.parametrize("override,key", [("light.n_guides=4", "light.n_guides"),
                                          ("light.mu=-1", "light.mu"),
                                          ("light.ambient_falloff_mm=-5", "light.ambient_falloff_mm")])
def test_bad_light_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=[override])
    assert e.value.key == key


def test_subsurface_wrap_matches_the_reference_and_lights_grazing_surfaces(renderer):
    """tissue.subsurface w: the shader's diffuse term is max(0, (n.l + w) / (1 + w)), as
    colonsim.render.light.irradiance computes it; with an off-axis light the plane gets brighter
    where light arrives at a slant, and w = 0 is Lambert."""
    pose = np.eye(4)
    pose[2, 3] = 15.0
    light = {"light_offset_mm": 12.0, "light_angle0_deg": 0.0, "light_intensity": 0.5,
             "light_mu": 0.0, "light_ambient": 0.0, "light_ambient_tint": 0.0}
    rays, _ = renderer.lens.pixel_to_ray(renderer.lens.pixel_grid())
    normals = None
    got = {}
    for w in (0.0, 0.5):
        tissue = {**_white_matte(), "tissue_subsurface": w}
        rgb, depth = renderer.render_linear(0, pose, tissue, light)
        img = rgb[..., 1].astype(np.float64)
        pts = rays * (depth.ravel() / -rays[:, 2])[:, None]
        normals = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
        want = lightmod.irradiance(pts, normals, renderer.cfg.light, light, wrap=w).reshape(img.shape)
        np.testing.assert_allclose(img, want, rtol=0.02)
        got[w] = img
    assert (got[0.5] > got[0.0] * 1.05).mean() > 0.5   # slanted light: the wrap adds light


def test_tinted_stray_light_takes_the_mucosa_colour_at_the_same_luminance(renderer):
    """light.ambient_tint: stray light that bounced off tissue of albedo a is coloured a / Y(a), so the
    tissue's stray-light radiance goes from a (white light) to a^2 / Y(a): redder, same luminance
    of the light; white tissue is unchanged."""
    pose = np.eye(4)
    pose[2, 3] = 20.0
    albedo = np.array([0.8, 0.3, 0.1])
    tissue = {**_white_matte(), "tissue_albedo_r": albedo[0], "tissue_albedo_g": albedo[1],
              "tissue_albedo_b": albedo[2]}
    lum = float(np.dot(albedo, [0.2126, 0.7152, 0.0722]))
    c = slice(SIZE // 2 - 2, SIZE // 2 + 2)
    for tint in (0.0, 1.0, 0.5):
        light = {"light_offset_mm": 0.0, "light_angle0_deg": 0.0, "light_intensity": 0.0,
                 "light_mu": 0.0, "light_ambient": 0.2, "light_ambient_tint": tint}
        rgb, _ = renderer.render_linear(0, pose, tissue, light)
        want = 0.2 * albedo * ((1 - tint) + tint * albedo / lum)
        np.testing.assert_allclose(rgb[c, c].reshape(-1, 3).mean(0), want, rtol=0.01)
        white, _ = renderer.render_linear(0, pose, _white_matte(), light)
        np.testing.assert_allclose(white[c, c], 0.2, rtol=0.01)
