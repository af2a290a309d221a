"""Light guides at the scope tip: positions, inverse-square falloff and angular emission.

A colonoscope carries 1-3 light guides a few millimetres from the lens. Each guide is a point
source whose radiant intensity falls off with the angle ``theta`` from the optical axis as
``exp(-mu * (1 - cos theta))``: the spot-light model that Batlle, Montiel, Tardos (2022,
"Photometric single-view dense 3D reconstruction in endoscopy", IROS; arXiv 2204.09083) calibrate
for a colonoscope and use for photometric depth. The default mu = 2.8 gives a beam whose intensity
halves about 40 degrees off axis. The shading itself is done in the GLSL shader
(``colonsim/render/shaders/mesh.frag``); this module holds the config, the per-frame sampling, and the
same model in numpy (:func:`irradiance`), which the tests use as the reference.

Units: positions in mm in the camera frame (OpenGL axes: x right, y up, the scope looks along -z).
``intensity`` is the linear radiance of a white Lambertian surface (albedo 1) facing the light on
its axis at ``ref_distance_mm``, summed over all guides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colonsim.config import Range, check_range, sample

MAX_GUIDES = 3


@dataclass(frozen=True)
class LightConfig:
    n_guides: int                 # light guides at the tip, 1..3
    offset_mm: Range              # distance of each guide from the lens centre, mm
    angle0_deg: Range             # angle of the first guide around the lens (0 = +x), degrees
    intensity: Range              # radiance of white Lambertian tissue on-axis at ref_distance_mm (linear)
    ref_distance_mm: float        # reference distance of ``intensity``, mm
    mu: Range                     # angular emission exp(-mu (1 - cos theta)); 0 = isotropic
    ambient: Range                # ambient radiance added to every surface (stray light), linear
    ambient_falloff_mm: float = 0.0   # stray light / (1 + (d / this)^2) at distance d from the tip; 0 = uniform
    ambient_tint: Range = 0.0     # stray light's colour: 0 white, 1 the mucosa's own (light that bounced off it)

    def __post_init__(self):
        check_range("n_guides", self.n_guides, 1, MAX_GUIDES)
        check_range("offset_mm", self.offset_mm, 0.0, 10.0)
        check_range("angle0_deg", self.angle0_deg, -360.0, 360.0)
        check_range("intensity", self.intensity, 0.0, 1e6)
        check_range("ref_distance_mm", self.ref_distance_mm, 0.0, 1e4, lo_open=True)
        check_range("mu", self.mu, 0.0, 50.0)
        check_range("ambient", self.ambient, 0.0, 10.0)
        check_range("ambient_falloff_mm", self.ambient_falloff_mm, 0.0, 1e4)
        check_range("ambient_tint", self.ambient_tint, 0.0, 1.0)


def sample_params(cfg: LightConfig, rng: np.random.Generator) -> dict[str, float]:
    """Draw one frame's light parameters (fixed keys and draw order)."""
    return {
        "light_offset_mm": sample(rng, cfg.offset_mm),
        "light_angle0_deg": sample(rng, cfg.angle0_deg),
        "light_intensity": sample(rng, cfg.intensity),
        "light_mu": sample(rng, cfg.mu),
        "light_ambient": sample(rng, cfg.ambient),
        "light_ambient_tint": sample(rng, cfg.ambient_tint),   # drawn last: older draws stay the same
    }


def guide_positions(cfg: LightConfig, params: dict[str, float]) -> np.ndarray:
    """(n_guides, 3) float64 guide positions in the camera frame, mm, evenly spaced on a ring."""
    n = cfg.n_guides
    a = np.deg2rad(params["light_angle0_deg"]) + 2.0 * math.pi * np.arange(n) / n
    r = params["light_offset_mm"]
    return np.stack([r * np.cos(a), r * np.sin(a), np.zeros(n)], axis=1)


def per_guide_scale(cfg: LightConfig, params: dict[str, float]) -> float:
    """Radiance scale of one guide: intensity * ref^2 / n (so that L = albedo * scale * g / d^2)."""
    return params["light_intensity"] * cfg.ref_distance_mm ** 2 / cfg.n_guides


def ambient(distance_mm: np.ndarray, cfg: LightConfig, params: dict[str, float]) -> np.ndarray:
    """Stray-light radiance of white tissue at ``distance_mm`` from the scope tip (the shader's
    ambient term). Uniform when ``ambient_falloff_mm`` is 0. Otherwise it falls off as
    ``1 / (1 + (d / ambient_falloff_mm)^2)``: light scattered by the lit wall near the tip reaches
    the far lumen little, so the lumen goes dark as in real colonoscopy.

    ``ambient_tint`` colours it (the shader's term for tissue of albedo a): stray light has bounced
    off the mucosa, so it carries the mucosa's colour, ``mix(1, a / Y(a), tint)`` with Y the
    luminance; the far lumen, lit mostly by it, turns the deep red of real frames. White tissue is
    unchanged."""
    d = np.asarray(distance_mm, np.float64)
    if cfg.ambient_falloff_mm <= 0:
        return np.full(d.shape, params["light_ambient"])
    return params["light_ambient"] / (1.0 + (d / cfg.ambient_falloff_mm) ** 2)


def irradiance(points_cam: np.ndarray, normals_cam: np.ndarray, cfg: LightConfig,
               params: dict[str, float], wrap: float = 0.0) -> np.ndarray:
    """Reference model of the diffuse shading (what the shader computes without specular/ambient).

    points_cam: (N, 3) float surface points, camera frame, mm; normals_cam: (N, 3) unit normals;
    wrap: the tissue's subsurface wrap w, the cosine term becomes max(0, (cos + w) / (1 + w)).
    Returns (N,) float64: radiance of white Lambertian tissue (albedo 1), linear.
    """
    out = np.zeros(len(points_cam))
    scale = per_guide_scale(cfg, params)
    for g in guide_positions(cfg, params):
        v = g[None, :] - points_cam              # surface -> light
        d2 = np.einsum("ij,ij->i", v, v)
        ln = v / np.sqrt(d2)[:, None]
        cos_emit = ln[:, 2]                      # light->surface is -ln; the guide axis is -z
        prof = np.exp(-params["light_mu"] * (1.0 - cos_emit))
        cos_inc = np.clip((np.einsum("ij,ij->i", ln, normals_cam) + wrap) / (1.0 + wrap), 0.0, None)
        out += scale * prof * cos_inc / d2
    return out
