"""Tissue appearance: mucosa colour and its variation, vessel texture, wet specular, fold colour.

The look of a frame is split in two. What is fixed for a mesh is computed once, in numpy, from a
seeded rng: a tileable texture (vessel network, low-frequency colour mottling, fine grain) and a
per-vertex fold factor (signed mean curvature). What varies per frame is a handful of scalars
(:func:`sample_params`) that the shader combines with them: base albedo, how strong the vessels and
mottling are, the texture scale, the wet specular lobe, and the colour shift on folds. Every
per-frame scalar is a :data:`~colonsim.config.Range`, so styles can randomize any of them.

The texture is mapped triplanarly in world coordinates (mm), so it needs no UVs and does not
stretch on folds; ``period_mm`` is the size of one tile. With ``texture_bank`` set, the tile is
synthesized from real mucosa patches instead (:mod:`colonsim.render.texbank`), and the shader takes
the albedo's variation from it in place of the vessel, mottling and grain terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colonsim.config import Range, check_range, sample
from colonsim.errors import ConfigError


@dataclass(frozen=True)
class TissueConfig:
    albedo_r: Range             # mucosa base albedo, red channel, linear [0, 1]
    albedo_g: Range             # mucosa base albedo, green channel, linear [0, 1]
    albedo_b: Range             # mucosa base albedo, blue channel, linear [0, 1]
    mottling: Range             # amplitude of low-frequency albedo variation, fraction (0 = uniform)
    vessel_contrast: Range      # how much vessels darken and redden the albedo, 0..1
    grain: Range                # amplitude of fine texture grain, fraction
    period_mm: Range            # size of one texture tile on the wall, mm
    specular: Range             # wet specular strength (0 = matte)
    roughness: Range            # GGX roughness of the wet film, 0.02 (mirror-like) .. 1
    fold_contrast: Range        # colour shift on fold ridges (+) and in valleys (-), fraction
    bump: Range                 # normal jitter of the wet surface (scatters small highlights), 0..1
    subsurface: Range           # light scattered under the surface: wrap of the diffuse term, 0 (Lambert) .. 1
    texture_px: int             # side of the square texture generated per mesh, pixels
    texture_seed: int           # seed of the per-mesh texture (combined with the mesh id)
    # A texture bank of real mucosa patches (colonsim textures; colonsim.render.texbank): the per-mesh
    # texture is synthesized from it instead of the procedural one; None: procedural.
    texture_bank: str | None = None

    def __post_init__(self):
        for k in ("albedo_r", "albedo_g", "albedo_b", "vessel_contrast"):
            check_range(k, getattr(self, k), 0.0, 1.0)
        check_range("mottling", self.mottling, 0.0, 1.0)
        check_range("grain", self.grain, 0.0, 1.0)
        check_range("period_mm", self.period_mm, 0.0, 1e4, lo_open=True)
        check_range("specular", self.specular, 0.0, 100.0)
        check_range("roughness", self.roughness, 0.02, 1.0)
        check_range("fold_contrast", self.fold_contrast, -1.0, 1.0)
        check_range("bump", self.bump, 0.0, 1.0)
        check_range("subsurface", self.subsurface, 0.0, 1.0)
        check_range("texture_px", self.texture_px, 16, 4096)
        check_range("texture_seed", self.texture_seed, 0, 2**31 - 1)
        if self.texture_bank is not None and not self.texture_bank.strip():
            raise ConfigError("texture_bank", "expected the path of a texture bank file, or null")


PARAM_KEYS = ("tissue_albedo_r", "tissue_albedo_g", "tissue_albedo_b", "tissue_mottling",
              "tissue_vessel_contrast", "tissue_grain", "tissue_period_mm", "tissue_specular",
              "tissue_roughness", "tissue_fold_contrast", "tissue_bump", "tissue_subsurface")


def sample_params(cfg: TissueConfig, rng: np.random.Generator) -> dict[str, float]:
    """Draw one frame's tissue parameters (fixed keys, fixed draw order)."""
    fields = (cfg.albedo_r, cfg.albedo_g, cfg.albedo_b, cfg.mottling, cfg.vessel_contrast, cfg.grain,
              cfg.period_mm, cfg.specular, cfg.roughness, cfg.fold_contrast, cfg.bump, cfg.subsurface)
    return {k: sample(rng, r) for k, r in zip(PARAM_KEYS, fields)}


def _band_noise(rng: np.random.Generator, n: int, f_lo: float, f_hi: float) -> np.ndarray:
    """(n, n) float32 tileable noise with spatial frequencies in [f_lo, f_hi] cycles per tile,
    zero mean, unit standard deviation (white noise filtered in the Fourier domain)."""
    white = rng.standard_normal((n, n))
    f = np.fft.fftfreq(n) * n
    fr = np.hypot(f[:, None], f[None, :])
    filt = ((fr >= f_lo) & (fr <= f_hi)).astype(np.float64) / np.maximum(fr, 1.0)
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * filt))
    return ((out - out.mean()) / (out.std() + 1e-12)).astype(np.float32)


def make_texture(cfg: TissueConfig, rng: np.random.Generator) -> np.ndarray:
    """The per-mesh tileable texture, (n, n, 4) uint8 with n = ``texture_px``.

    Channel 0: vessel density in [0, 1] (thin lines along zero crossings of band-limited noise,
    two scales, so that they branch and meander like submucosal vessels); channel 1: low-frequency
    mottling mapped from [-1, 1]; channel 2: fine grain mapped from [-1, 1]; channel 3: mid-scale
    bumps of the wet surface mapped from [-1, 1] (they tilt the normal under the specular lobe).
    """
    n = cfg.texture_px
    vessels = np.zeros((n, n), np.float32)
    for f_lo, f_hi, width, weight in ((3.0, 7.0, 0.14, 1.0), (8.0, 20.0, 0.12, 0.7)):
        b = _band_noise(rng, n, f_lo, f_hi)
        vessels = np.maximum(vessels, weight * np.exp(-(b / width) ** 2))
    # Fade vessels in and out along their length so that the network is not uniform.
    vessels *= np.clip(0.5 + 0.6 * _band_noise(rng, n, 1.0, 3.0), 0.0, 1.0)
    mottle = np.tanh(0.6 * _band_noise(rng, n, 1.0, 4.0))
    grain = np.tanh(0.5 * _band_noise(rng, n, 16.0, n / 4))
    bump = np.tanh(0.6 * _band_noise(rng, n, 6.0, 30.0))
    tex = np.stack([vessels, 0.5 + 0.5 * mottle, 0.5 + 0.5 * grain, 0.5 + 0.5 * bump], axis=-1)
    return np.round(np.clip(tex, 0.0, 1.0) * 255.0).astype(np.uint8)


def fold_factor(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray,
                scale_mm: float = 5.0) -> np.ndarray:
    """(V,) float32 in [-1, 1]: > 0 on fold ridges that stick into the lumen, < 0 in valleys.

    Mean curvature as the average over a vertex's edges of the normal curvature along each edge,
    ``kappa_ij = -2 (v_j - v_i) . n_i / |v_j - v_i|^2`` (1/mm, positive where the surface bulges
    toward the lumen; independent of edge lengths, unlike the umbrella operator), minus its median
    over the mesh (the tube's own curvature), times ``scale_mm``, squashed with tanh.
    vertices (V, 3) mm; faces (F, 3) int; normals (V, 3) unit, pointing into the lumen.
    """
    n = len(vertices)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    e.sort(axis=1)
    key = np.unique(e[:, 0] * n + e[:, 1])          # each undirected edge once
    e = np.stack([key // n, key % n], axis=1)
    acc = np.zeros(n)
    cnt = np.zeros(n)
    for a, b in ((e[:, 0], e[:, 1]), (e[:, 1], e[:, 0])):
        d = vertices[b] - vertices[a]
        k = -2.0 * np.einsum("ij,ij->i", d, normals[a]) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-12)
        acc += np.bincount(a, weights=k, minlength=n)
        cnt += np.bincount(a, minlength=n)
    kappa = acc / np.maximum(cnt, 1.0)
    return np.tanh(scale_mm * (kappa - np.median(kappa))).astype(np.float32)
