"""Render backend: platform choice, one GL context per process, the float framebuffer."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from colonsim.anatomy.centerline import Centerline
from colonsim.anatomy.colon import Colon
from colonsim.errors import RenderBackendError
from colonsim.render import backend
from colonsim.render.scene import FrameRenderer
from colonsim.simconfig import load_sim_config

FLAT = ["tissue.mottling=0", "tissue.vessel_contrast=0", "tissue.grain=0", "tissue.specular=0",
        "tissue.fold_contrast=0", "tissue.bump=0", "lens.model=pinhole", "lens.fov_deg=60",
        "lens.mask=none", "output.size_px=32", "light.n_guides=1", "light.offset_mm=0"]


def _plane() -> Colon:
    mesh = trimesh.Trimesh([[-500, -500, 0], [500, -500, 0], [500, 500, 0], [-500, 500, 0]],
                           [[0, 1, 2], [0, 2, 3]], process=False)
    return Colon(mesh=mesh, centerline=Centerline.from_points(np.array([[0, 0, 50.0], [0, 0, 0.0]])),
                 uv=None, name="plane")


def _params(intensity):
    light = {"light_offset_mm": 0.0, "light_angle0_deg": 0.0, "light_intensity": intensity,
             "light_mu": 0.0, "light_ambient": 0.0, "light_ambient_tint": 0.0}
    tissue = {"tissue_albedo_r": 1.0, "tissue_albedo_g": 0.5, "tissue_albedo_b": 0.25, "tissue_mottling": 0.0,
              "tissue_vessel_contrast": 0.0, "tissue_grain": 0.0, "tissue_period_mm": 20.0,
              "tissue_specular": 0.0, "tissue_roughness": 0.2, "tissue_fold_contrast": 0.0, "tissue_bump": 0.0,
              "tissue_subsurface": 0.0}
    return tissue, light


def test_one_gl_context_is_created_and_reused_by_every_renderer():
    from OpenGL import contextdata
    cfg = load_sim_config(overrides=FLAT)
    r1 = FrameRenderer(cfg, [_plane()])
    pose = np.eye(4)
    pose[2, 3] = 30.0
    r1.render_linear(0, pose, *_params(0.5))
    ctx = contextdata.getContext()
    r2 = FrameRenderer(cfg, [_plane()])
    r2.render_linear(0, pose, *_params(0.5))
    assert r1.gl is r2.gl is backend.get_renderer()
    assert contextdata.getContext() == ctx
    r1.close()
    r2.close()


def test_float_framebuffer_keeps_linear_radiance_above_one_and_below_one_255th():
    cfg = load_sim_config(overrides=FLAT)
    r = FrameRenderer(cfg, [_plane()])
    pose = np.eye(4)
    pose[2, 3] = 30.0                      # the reference distance: on-axis radiance = intensity * albedo
    bright, depth = r.render_linear(0, pose, *_params(40.0))
    dim, _ = r.render_linear(0, pose, *_params(0.001))
    c = (16, 16)
    assert bright[c][0] == pytest.approx(40.0, rel=0.01)           # not clamped to 1
    assert bright[c][2] == pytest.approx(10.0, rel=0.01)
    assert dim[c][0] == pytest.approx(0.001, rel=0.01)             # not quantized to 8 bits
    assert depth[c] == pytest.approx(30.0, rel=1e-5)              # exact depth, no 24-bit z-buffer
    r.close()


def test_platform_can_be_forced_and_bad_values_are_one_clear_error(monkeypatch):
    current = backend.get_renderer().platform_name
    assert current in backend.PLATFORMS
    monkeypatch.setenv("COLONSIM_GL", "vulkan")
    with pytest.raises(RenderBackendError, match="COLONSIM_GL"):
        backend.select_platform()
    other = "osmesa" if current == "egl" else "egl"
    monkeypatch.setenv("COLONSIM_GL", other)
    with pytest.raises(RenderBackendError, match="already imported"):
        backend.select_platform()                                   # PyOpenGL cannot switch platforms


_HEADLESS_CHILD = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from tests.colonsim.render.test_backend import FLAT, _plane, _params
from colonsim.render.scene import FrameRenderer
from colonsim.simconfig import load_sim_config
r = FrameRenderer(load_sim_config(overrides=FLAT), [_plane()])
pose = np.eye(4); pose[2, 3] = 30.0
rgb, depth = r.render_linear(0, pose, *_params(0.5))
import pyglet
print(pyglet.options["headless"], any(m.startswith("pyglet.libs.x11") for m in sys.modules),
      repr(float(rgb[16, 16, 0])), repr(float(depth[16, 16])))
"""


def _child(env_extra):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, **env_extra}
    env.pop("PYOPENGL_PLATFORM", None)
    return subprocess.run([sys.executable, "-c", _HEADLESS_CHILD.format(root=root)], capture_output=True,
                          text=True, env=env, cwd=root, timeout=120)


def test_without_x11_pyglet_goes_headless_and_frames_are_the_same():
    # A GPU server without libX11/libXrender: pyrender's viewer import would fail inside pyglet.
    # COLONSIM_PYGLET_HEADLESS=1 takes the path the backend takes there.
    if not backend.ctypes.util.find_library("EGL"):
        pytest.skip("needs libEGL")
    plain = _child({"COLONSIM_GL": "egl"})
    headless = _child({"COLONSIM_GL": "egl", "COLONSIM_PYGLET_HEADLESS": "1"})
    assert plain.returncode == 0, plain.stderr
    assert headless.returncode == 0, headless.stderr
    p, h = plain.stdout.split(), headless.stdout.split()
    assert h[:2] == ["True", "False"]            # headless pyglet, and no X11 module loaded
    assert p[0] == "False"
    assert h[2:] == p[2:]                        # the same radiance and depth, bit for bit
    assert float(h[2]) == pytest.approx(0.5, rel=0.01) and float(h[3]) == pytest.approx(30.0, rel=1e-3)


def test_without_x11_osmesa_is_one_clear_error():
    if not backend.ctypes.util.find_library("OSMesa"):
        pytest.skip("needs libOSMesa")
    r = _child({"COLONSIM_GL": "osmesa", "COLONSIM_PYGLET_HEADLESS": "1"})
    assert r.returncode != 0
    assert "RenderBackendError: pyrender needs the X11 client libraries" in r.stderr
    assert "libxrender1" in r.stderr and "COLONSIM_GL=egl" in r.stderr
