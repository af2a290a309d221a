"""The camera sensor and image pipeline: linear radiance in, the 8-bit sRGB frame out.

The stages run in physical order (:func:`apply`):

1. lateral chromatic aberration: red and blue magnified about the image centre by opposite amounts;
2. defocus blur (gaussian, or a disc of radius ``2 sigma``, which has the same standard deviation)
   and linear motion blur;
3. exposure: an auto gain that scales a luminance percentile inside the image circle to a target
   (clamped), times the exposure compensation ``2 ** exposure_ev`` and the near-wall overexposure
   ``2 ** overexposure_ev`` (see below);
4. white balance: per-channel gains;
5. specular halo (bloom): ``x += halo * GaussianBlur(max(x - 1, 0), halo_sigma_px)`` per channel, so
   that light above full scale (the sharp saturated cores of wet highlights) spreads into a soft
   halo around them, and nowhere else (:func:`add_halo`);
6. Poisson-Gaussian noise in the linear domain, ``var = noise_gain * signal + read_noise ** 2``,
   drawn with the heteroscedastic normal approximation of the Poisson part (Foi, Trimeche,
   Katkovnik, Egiazarian 2008, "Practical Poissonian-Gaussian noise modeling and fitting for
   single-image raw-data", IEEE TIP), which is accurate above a few photons and much faster to
   draw than Poisson counts; the normals come from a 16-bit inverse-CDF table;
7. tone curve: sRGB (IEC 61966-2-1) or a pure gamma, then an optional S-curve on the encoded
   values, rounded to 8 bits. The rounding is exact: the output is ``round(255 f(x))`` of the
   float64 curve ``f`` for every float32 input ``x`` (a threshold table, see :func:`encode`);
8. the scope processor's edge enhancement: an unsharp mask on the encoded 8-bit luma (JPEG's
   BT.601 weights), ``y + edge_enhance * (y - blur(y, edge_sigma_px))``, added to R, G and B alike so
   that the chroma is kept; the blur is normalized inside the image circle, so the black border
   puts no bright rim along its edge (:func:`edge_enhance`). Olympus and Pentax processors do this:
   it gives real frames their crisp vessel edges and thin bright rims along folds;
9. JPEG compression artefacts (OpenCV's encoder, 4:2:0 chroma);
10. the black border: zero outside the image circle.

Near-wall overexposure. A real scope's auto exposure lags the view: moving up to the wall, the
gain of the farther view is still applied for a few frames and the near wall, lit from a few mm
by the scope's own light, blows out. The sensor sees no depth (:func:`apply` gets radiance and the
image circle only), so the model is the honest simple one: a per-frame ``overexposure_ev`` on top
of the auto gain. With the light at the camera, radiance falls off with distance, so the extra gain
clips the nearest wall first; a range such as ``[0, 1.5]`` makes some frames clip near the light
and others not. It is kept apart from ``exposure_ev`` (the scope's set compensation) so that the
tuner and ``params/`` see the two separately. The px fields (``halo_sigma_px``, ``edge_sigma_px``)
are px at the output size, like ``defocus_sigma_px``.

With every effect off (:func:`identity_config`, or the ``clean`` style) :func:`apply` is exactly
:func:`encode` of the input, zero outside the mask.

Stages 3, 4, 6 and 7 (exposure, white balance, noise, tone curve) run as one compiled pass over the
frame where numba is installed (:mod:`colonsim.render._fused`), and as NumPy passes otherwise; the two give
bit-identical frames. A frame with a halo on runs stages 3-5 as NumPy passes first (the same float32
products) and hands the compiled pass unit gains; the edge enhancement runs after it. Every one of
the three effects is off by default (``halo: 0``, ``overexposure_ev: 0``, ``edge_enhance: 0``), and
off it leaves the frame bit-identical.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import sys
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from colonsim.config import Range, check_choice, check_range, sample
from colonsim.errors import ConfigError, InputError
from colonsim.render import kernels

#: Rec. 709 / sRGB luminance weights of linear R, G, B.
LUMA_RGB = (0.2126, 0.7152, 0.0722)

#: Keys that :func:`apply` writes into its ``extras`` dict.
EXTRAS_KEYS = ("sensor_auto_gain",)

#: Keys of :func:`sample_params` (one frame's drawn sensor values, recorded in the HDF5's
#: ``params/``), in order; the last four come from a stream of their own (see sample_params).
PARAM_KEYS = ("sensor_exposure_ev", "sensor_wb_red_gain", "sensor_wb_green_gain", "sensor_wb_blue_gain",
              "sensor_noise_gain", "sensor_read_noise", "sensor_defocus_sigma_px", "sensor_motion_blur_px",
              "sensor_motion_blur_angle_deg", "sensor_chromatic_aberration_px", "sensor_tone_contrast",
              "sensor_jpeg_quality", "sensor_overexposure_ev", "sensor_halo", "sensor_halo_sigma_px",
              "sensor_edge_enhance", "sensor_edge_sigma_px")


@dataclass(frozen=True)
class SensorConfig:
    exposure_ev: Range            # exposure compensation, EV: radiance x 2**ev, after the auto gain
    auto_gain: bool               # scale a luminance percentile inside the image circle to the target
    auto_gain_percentile: float   # that percentile, % (0, 100]
    auto_gain_target: float       # linear value the percentile is scaled to, (0, 1]
    auto_gain_min: float          # smallest auto gain
    auto_gain_max: float          # largest auto gain
    wb_red_gain: Range            # white-balance gain of the red channel
    wb_green_gain: Range          # white-balance gain of the green channel
    wb_blue_gain: Range           # white-balance gain of the blue channel
    noise_gain: Range             # shot noise: variance per unit linear signal (1 / full-scale photons)
    read_noise: Range             # read noise: standard deviation, linear units of full scale
    blur_kind: Literal["gaussian", "disc"]  # defocus kernel
    defocus_sigma_px: Range       # defocus kernel standard deviation, px (disc radius = 2 sigma)
    motion_blur_px: Range         # length of the linear motion-blur kernel, px (0 = off)
    motion_blur_angle_deg: Range  # motion direction in the image, degrees counter-clockwise from +x
    chromatic_aberration_px: Range  # red/blue displacement at the image half-width, px (0 = off)
    tone_curve: Literal["srgb", "gamma"]  # encoding of linear values
    gamma: float                  # exponent of the "gamma" curve: encoded = linear ** (1 / gamma)
    tone_contrast: Range          # S-curve strength on encoded values: 0 = none, 1 = smoothstep
    jpeg: bool                    # apply JPEG compression artefacts
    jpeg_quality: Range           # JPEG quality 1..100 (rounded to an integer)
    overexposure_ev: Range = (0.0, 0.0)  # near-wall overexposure: EV on top of the auto gain (0 = off)
    halo: Range = (0.0, 0.0)             # specular halo strength: blurred light above full scale added back
    halo_sigma_px: Range = (4.0, 4.0)    # halo blur standard deviation, px at the output size
    edge_enhance: Range = (0.0, 0.0)     # unsharp-mask gain k on the encoded luma (0 = off)
    edge_sigma_px: Range = (1.5, 1.5)    # unsharp-mask blur standard deviation, px at the output size

    def __post_init__(self):
        check_range("exposure_ev", self.exposure_ev, -10.0, 10.0)
        check_range("auto_gain_percentile", self.auto_gain_percentile, 0.0, 100.0, lo_open=True)
        check_range("auto_gain_target", self.auto_gain_target, 0.0, 1.0, lo_open=True)
        check_range("auto_gain_min", self.auto_gain_min, 0.0, 1e3, lo_open=True)
        check_range("auto_gain_max", self.auto_gain_max, 0.0, 1e3, lo_open=True)
        if self.auto_gain_max < self.auto_gain_min:
            raise ConfigError("auto_gain_max", f"value {self.auto_gain_max:g} is below "
                              f"auto_gain_min={self.auto_gain_min:g}; it must be at least that")
        for name in ("wb_red_gain", "wb_green_gain", "wb_blue_gain"):
            check_range(name, getattr(self, name), 0.0, 10.0, lo_open=True)
        check_range("noise_gain", self.noise_gain, 0.0, 1.0)
        check_range("read_noise", self.read_noise, 0.0, 1.0)
        check_choice("blur_kind", self.blur_kind, ("gaussian", "disc"))
        check_range("defocus_sigma_px", self.defocus_sigma_px, 0.0, 50.0)
        check_range("motion_blur_px", self.motion_blur_px, 0.0, 100.0)
        check_range("motion_blur_angle_deg", self.motion_blur_angle_deg, -360.0, 360.0)
        check_range("chromatic_aberration_px", self.chromatic_aberration_px, -20.0, 20.0)
        check_choice("tone_curve", self.tone_curve, ("srgb", "gamma"))
        check_range("gamma", self.gamma, 0.2, 5.0)
        check_range("tone_contrast", self.tone_contrast, 0.0, 1.0)
        check_range("jpeg_quality", self.jpeg_quality, 1.0, 100.0)
        check_range("overexposure_ev", self.overexposure_ev, 0.0, 6.0)
        check_range("halo", self.halo, 0.0, 10.0)
        check_range("halo_sigma_px", self.halo_sigma_px, 0.0, 50.0, lo_open=True)
        check_range("edge_enhance", self.edge_enhance, 0.0, 5.0)
        check_range("edge_sigma_px", self.edge_sigma_px, 0.0, 20.0, lo_open=True)


#: Field values that turn every effect off; as ``--set`` items: ``IDENTITY_SET``.
IDENTITY_FIELDS = {
    "exposure_ev": (0.0, 0.0), "auto_gain": False, "auto_gain_percentile": 95.0,
    "auto_gain_target": 0.7, "auto_gain_min": 1.0, "auto_gain_max": 1.0,
    "wb_red_gain": (1.0, 1.0), "wb_green_gain": (1.0, 1.0), "wb_blue_gain": (1.0, 1.0),
    "noise_gain": (0.0, 0.0), "read_noise": (0.0, 0.0), "blur_kind": "gaussian",
    "defocus_sigma_px": (0.0, 0.0), "motion_blur_px": (0.0, 0.0), "motion_blur_angle_deg": (0.0, 0.0),
    "chromatic_aberration_px": (0.0, 0.0), "tone_curve": "srgb", "gamma": 2.2,
    "tone_contrast": (0.0, 0.0), "jpeg": False, "jpeg_quality": (95.0, 95.0),
    "overexposure_ev": (0.0, 0.0), "halo": (0.0, 0.0), "halo_sigma_px": (4.0, 4.0),
    "edge_enhance": (0.0, 0.0), "edge_sigma_px": (1.5, 1.5),
}
IDENTITY_SET = [f"sensor.{k}={json.dumps(v)}" for k, v in IDENTITY_FIELDS.items()]  # JSON is YAML


def identity_config() -> SensorConfig:
    """A sensor with every effect off: :func:`apply` is then the plain sRGB encoding."""
    return SensorConfig(**IDENTITY_FIELDS)


_RANGE_FIELDS = ("exposure_ev", "wb_red_gain", "wb_green_gain", "wb_blue_gain", "noise_gain",
                 "read_noise", "defocus_sigma_px", "motion_blur_px", "motion_blur_angle_deg",
                 "chromatic_aberration_px", "tone_contrast", "jpeg_quality")
# Drawn from a stream of their own (_effects_rng), so that adding them left every older draw, and
# the noise drawn after them from ``rng``, as it was.
_EFFECT_FIELDS = ("overexposure_ev", "halo", "halo_sigma_px", "edge_enhance", "edge_sigma_px")


def _effects_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator that is a pure function of ``rng``'s state and draws nothing from it: the state
    jumped ahead by 2**127 steps (PCG64, Philox, MT19937), or one seeded by a copy's next value."""
    jumped = getattr(rng.bit_generator, "jumped", None)
    if jumped is not None:
        return np.random.Generator(jumped())
    return np.random.default_rng(int(copy.deepcopy(rng).integers(0, 2**63)))


def sample_params(cfg: SensorConfig, rng: np.random.Generator) -> dict[str, float]:
    """Draw one frame's sensor values: keys :data:`PARAM_KEYS` (``sensor_<field>`` for every Range
    field), in that fixed order.

    Every field consumes exactly one draw, whether or not it is randomized or used. The fields of
    the scope effects (overexposure, halo, edge enhancement) draw from :func:`_effects_rng`, not
    from ``rng``, so that ``rng`` ends where it did before they existed.
    """
    params = {f"sensor_{name}": sample(rng, getattr(cfg, name)) for name in _RANGE_FIELDS}
    params["sensor_jpeg_quality"] = float(round(params["sensor_jpeg_quality"]))
    effects = _effects_rng(rng)
    params.update({f"sensor_{name}": sample(effects, getattr(cfg, name)) for name in _EFFECT_FIELDS})
    return params


# ----------------------------------------------------------------------------- tone curve


def _srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def _srgb_inv(y: np.ndarray) -> np.ndarray:
    return np.where(y <= 0.04045, y / 12.92, np.power((np.maximum(y, 0.04045) + 0.055) / 1.055, 2.4))


def _s_curve(y: np.ndarray, c: float) -> np.ndarray:
    return (1.0 - c) * y + c * y * y * (3.0 - 2.0 * y)


def _s_curve_inv(v: np.ndarray, c: float) -> np.ndarray:
    """Inverse of the monotone S-curve by safeguarded Newton steps (float64)."""
    y = v.copy()
    lo, hi = np.zeros_like(v), np.ones_like(v)
    for _ in range(60):
        f = _s_curve(y, c) - v
        if np.abs(f).max() < 1e-14:
            break
        lo = np.where(f < 0, y, lo)
        hi = np.where(f >= 0, y, hi)
        d = (1.0 - c) + c * 6.0 * y * (1.0 - y)
        step = y - f / np.maximum(d, 1e-12)
        y = np.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
    return y


def tone(x: np.ndarray, curve: str, gamma: float, contrast: float) -> np.ndarray:
    """The tone curve in float64: linear [0, 1] -> encoded [0, 1] (input clipped to [0, 1])."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    y = _srgb(x) if curve == "srgb" else np.power(x, 1.0 / gamma)
    return _s_curve(y, contrast) if contrast > 0 else y


# Cells of the threshold table: the bit pattern of a non-negative float32 shifted right by _SHIFT,
# so that each octave of x has 2**(23 - _SHIFT) cells (0.1 % wide) and no float-to-int conversion
# is needed; no curve here puts more than one 8-bit threshold in a cell of that width.
_SHIFT = 13
_CELLS = (int(np.float32(1.0).view(np.int32)) >> _SHIFT) + 1


# A randomized tone_contrast draws a new curve every frame, so the cache rarely hits: it is small,
# and building a table takes about 0.2 ms.
@functools.lru_cache(maxsize=8)
def _threshold_table(curve: str, gamma: float, contrast: float):
    """Tables for the exact 8-bit encoding: output(x) = number of thresholds <= x.

    thr[j - 1] is the smallest float32 x with round_half_up(255 tone(x)) >= j, j = 1..255.
    Cell k holds the float32 bit patterns k << _SHIFT .. (k + 1) << _SHIFT. The tables start at
    the cell ``lo`` of the first threshold (every x below it encodes to 0, and is looked up in cell
    ``lo``), so that they stay small enough for the cache (about 13k cells for sRGB): in cell
    ``lo + i``, ``base[i]`` thresholds lie below the cell, ``first[i]`` is the smallest one inside
    it (inf if none), and ``multi`` is None, or marks the cells holding more than one (none for the
    curves allowed by SensorConfig; kept for safety).
    Returns (thr, base, first, multi, lo).
    """
    v = (np.arange(1, 256) - 0.5) / 255.0
    y = _s_curve_inv(v, contrast) if contrast > 0 else v
    t = _srgb_inv(y) if curve == "srgb" else np.power(y, gamma)
    thr = t.astype(np.float32)
    f = lambda a: tone(a.astype(np.float64), curve, gamma, contrast)  # noqa: E731
    thr = np.where(f(thr) < v, np.nextafter(thr, np.float32(2)), thr)
    down = np.nextafter(thr, np.float32(-1))
    thr = np.where(f(down) >= v, down, thr).astype(np.float32)
    lo = int(thr[0].view(np.int32)) >> _SHIFT
    cell = (thr.view(np.int32) >> _SHIFT) - lo    # non-decreasing, as the curve is monotone
    n = _CELLS - lo
    # base[i] = j from the cell after threshold j's up to threshold j + 1's cell (inclusive)
    base = np.repeat(np.arange(256, dtype=np.uint8), np.diff(np.concatenate([[-1], cell, [n - 1]])))
    first = np.full(n, np.inf, dtype=np.float32)
    first[cell[::-1]] = thr[::-1]                # the smallest threshold of each cell wins
    multi = None
    if np.any(np.diff(cell) == 0):
        multi = np.bincount(cell, minlength=n) > 1
    return thr, base, first, multi, lo


def encode(linear: np.ndarray, curve: str = "srgb", gamma: float = 2.2, contrast: float = 0.0) -> np.ndarray:
    """Linear radiance -> 8-bit encoded values, exactly ``round_half_up(255 tone(x))``.

    linear: float32 array of any shape, linear units of full scale (clipped to [0, 1]).
    Returns a uint8 array of the same shape. About 0.6 ms for 256x256x3.
    """
    x = np.clip(np.asarray(linear, dtype=np.float32), np.float32(0.0), np.float32(1.0))
    thr, base, first, multi, lo = _threshold_table(curve, float(gamma), float(contrast))
    k = x.view(np.int32) >> _SHIFT
    np.maximum(k, lo, out=k)
    k -= lo
    out = np.take(base, k)
    out += x >= np.take(first, k)
    if multi is not None:
        sel = np.take(multi, k)
        if sel.any():
            out[sel] = np.searchsorted(thr, x[sel], side="right").astype(np.uint8)
    return out


def decode(encoded: np.ndarray, curve: str = "srgb", gamma: float = 2.2) -> np.ndarray:
    """8-bit encoded values (no S-curve) -> linear float32 in [0, 1]."""
    y = np.asarray(encoded, dtype=np.float64) / 255.0
    return (_srgb_inv(y) if curve == "srgb" else np.power(y, gamma)).astype(np.float32)


# ----------------------------------------------------------------------------- kernels


def disc_kernel(radius_px: float) -> np.ndarray:
    """(n, n) float32 anti-aliased disc of the given radius (8x8 supersampled), sum 1."""
    n = 2 * int(math.ceil(radius_px)) + 1
    s = (np.arange(n * 8) + 0.5) / 8.0 - n / 2.0
    inside = (s[:, None] ** 2 + s[None, :] ** 2) <= radius_px ** 2
    k = inside.reshape(n, 8, n, 8).mean(axis=(1, 3)).astype(np.float32)
    return k / k.sum()


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """(n, n) float32 line kernel of the given length and direction (bilinear splats), sum 1."""
    n = 2 * int(math.ceil(length_px / 2.0)) + 1
    m = max(2, int(math.ceil(length_px * 4)) + 1)
    t = np.linspace(-length_px / 2.0, length_px / 2.0, m)
    a = math.radians(angle_deg)
    xs = n // 2 + t * math.cos(a)
    ys = n // 2 - t * math.sin(a)  # image rows grow downwards
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    k = np.zeros((n + 1, n + 1), dtype=np.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    k = k[:n, :n].astype(np.float32)
    return k / k.sum()


# ----------------------------------------------------------------------------- the pipeline


def _magnify(channel: np.ndarray, scale: float) -> np.ndarray:
    """Magnify one (H, W) float32 channel by ``scale`` about the image centre (bilinear)."""
    h, w = channel.shape
    cx, cy, inv = (w - 1) / 2.0, (h - 1) / 2.0, 1.0 / scale
    m = np.float32([[inv, 0, cx * (1 - inv)], [0, inv, cy * (1 - inv)]])
    return cv2.warpAffine(channel, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def chromatic_aberration(img: np.ndarray, shift_px: float) -> np.ndarray:
    """Lateral CA on (H, W, 3) float32: red magnified, blue shrunk, by ``shift_px`` at half-width."""
    scale = shift_px / (img.shape[1] / 2.0)
    r, g, b = cv2.split(img)
    return cv2.merge((_magnify(r, 1.0 + scale), g, _magnify(b, 1.0 - scale)))


def blur(img: np.ndarray, cfg: SensorConfig, params: dict[str, float]) -> np.ndarray:
    """Defocus then motion blur of (H, W, 3) float32; mirrored borders, so the mean is kept."""
    sigma = params["sensor_defocus_sigma_px"]
    if sigma > 0:
        if cfg.blur_kind == "gaussian":
            img = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        else:
            img = cv2.filter2D(img, -1, disc_kernel(2.0 * sigma), borderType=cv2.BORDER_REFLECT)
    length = params["sensor_motion_blur_px"]
    if length > 0:
        img = cv2.filter2D(img, -1, motion_kernel(length, params["sensor_motion_blur_angle_deg"]),
                           borderType=cv2.BORDER_REFLECT)
    return img


def _percentile(vals: np.ndarray, q: float, compiled: bool = True) -> float:
    """np.percentile(vals, q) (linear interpolation) of a 1-D float32 array from its two order
    statistics: by the compiled radix select (:func:`colonsim.render._fused.order_pair`) where numba is
    installed and ``compiled``, else by a partial sort (10x faster than np.percentile on 50k
    values). The same value either way."""
    pos = q / 100.0 * (len(vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(vals) - 1)
    fused = kernels.compiled() if compiled and vals.dtype == np.float32 and vals.ndim == 1 else None
    pair = fused.order_pair(vals, lo) if fused is not None else None   # None: a NaN among them
    if pair is None:
        part = np.partition(vals, (lo, hi))
        a, b = part[lo], part[hi]
    else:
        a, b = np.float32(pair[0]), np.float32(pair[1])
    return float(a + (pos - lo) * (b - a))


def auto_gain(img: np.ndarray, mask: np.ndarray, cfg: SensorConfig) -> float:
    """The gain that brings the luminance percentile inside the mask to the target, clamped.

    img: (H, W, 3) float32 linear; mask: (H, W) uint8, nonzero inside the image circle.
    """
    if not cfg.auto_gain:
        return 1.0
    lum = cv2.transform(img, np.float32([LUMA_RGB]))
    vals = lum[mask != 0]
    if vals.size == 0:
        return 1.0
    p = _percentile(vals, cfg.auto_gain_percentile)
    gain = cfg.auto_gain_max if p <= 0 else cfg.auto_gain_target / p
    return float(min(max(gain, cfg.auto_gain_min), cfg.auto_gain_max))


@functools.lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    """(65536,) float32 standard-normal quantiles at the midpoints of 65536 equal-probability bins,
    scaled to unit variance: indexing it with uniform uint16 draws gives normal noise (tails cut at
    4.3 sigma) 3x faster than ``rng.standard_normal``."""
    from scipy.special import ndtri
    q = ndtri((np.arange(65536) + 0.5) / 65536)
    return (q / q.std()).astype(np.float32)


def uniform16(rng: np.random.Generator, n: int) -> np.ndarray:
    """``rng.integers(0, 65536, size=n, dtype=np.uint16)``, the same values and the same state after,
    4x faster where that is provable: NumPy draws full-range 16-bit integers as the 64-bit outputs of
    PCG64 split low half first, which ``random_raw`` gives directly, when no 32-bit half is left
    over in the generator and ``n`` is a multiple of 4 (a little-endian machine)."""
    bg = rng.bit_generator
    if n % 4 == 0 and sys.byteorder == "little" and type(bg) is np.random.PCG64 \
            and not bg.state["has_uint32"]:
        return bg.random_raw(n // 4).view(np.uint16)
    return rng.integers(0, 65536, size=n, dtype=np.uint16)


def add_noise(img: np.ndarray, gain: float, read: float, rng: np.random.Generator,
              inplace: bool = False) -> np.ndarray:
    """Poisson-Gaussian noise on (H, W, 3) float32 linear: var = gain * max(x, 0) + read ** 2.

    Returns a new array, or ``img`` itself with the noise added if ``inplace`` (same values).
    """
    sigma = np.maximum(img, np.float32(0.0))
    sigma *= np.float32(gain)
    sigma += np.float32(read * read)
    np.sqrt(sigma, out=sigma)
    noise = _normal_table()[uniform16(rng, img.size).reshape(img.shape)]
    noise *= sigma
    if inplace:
        img += noise
        return img
    noise += img
    return noise


def add_halo(img: np.ndarray, strength: float, sigma_px: float) -> np.ndarray:
    """The specular halo on (H, W, 3) float32 exposed linear values, in place:
    ``img += strength * GaussianBlur(max(img - 1, 0), sigma_px)`` per channel (mirrored borders).

    Only light above full scale spreads, so a frame with nothing above 1.0 is returned unchanged
    (bit for bit; the blur is skipped). The blur keeps the sum: the halo holds ``strength`` times the
    light clipped from the cores. It runs on the box around the saturated pixels, padded by the
    kernel's radius (zeros beyond them either way): the same sums, and cheap for the few small
    highlights of most frames. Returns ``img``.
    """
    if not img.max() > 1:
        return img
    excess = cv2.threshold(cv2.subtract(img, 1.0), 0.0, 0.0, cv2.THRESH_TOZERO)[1]
    h, w = img.shape[:2]
    flat = excess.reshape(h, w * 3)   # 2-D reductions: max over axes (0, 2) is 100x slower
    rows = np.flatnonzero(flat.max(axis=1) > 0)
    cols = np.flatnonzero(flat.max(axis=0).reshape(w, 3).max(axis=1) > 0)
    r = (int(round(sigma_px * 8 + 1)) | 1) // 2   # the radius of OpenCV's float32 kernel
    y0, y1 = max(rows[0] - r, 0), min(rows[-1] + r + 1, h)
    x0, x1 = max(cols[0] - r, 0), min(cols[-1] + r + 1, w)
    glow = cv2.GaussianBlur(np.ascontiguousarray(excess[y0:y1, x0:x1]), (0, 0), sigma_px,
                            borderType=cv2.BORDER_REFLECT)
    glow *= np.float32(strength)
    img[y0:y1, x0:x1] += glow
    return img


#: JPEG's (BT.601) luma weights of encoded R, G, B: what the edge enhancement sharpens.
LUMA_601 = (0.299, 0.587, 0.114)


def edge_enhance(rgb: np.ndarray, mask: np.ndarray, k: float, sigma_px: float) -> np.ndarray:
    """The processor's unsharp mask on (H, W, 3) uint8 encoded RGB: the luma detail
    ``k * (y - blur(y))`` added to each channel, rounded and clipped to 8 bits (a new array).

    The blur is normalized inside ``mask`` (``blur(y m) / blur(m)``), so the dark outside of the
    image circle is no edge; outside the mask nothing changes. A flat field is left as it is, and
    a step edge's contrast across it grows by a factor approaching ``1 + k`` as ``sigma_px`` grows
    (``1 + 0.62 k`` at 1 px).
    """
    f = rgb.astype(np.float32)
    y = cv2.transform(f, np.float32([LUMA_601]))
    m = (mask != 0).astype(np.float32)
    both = cv2.GaussianBlur(cv2.merge((y * m, m)), (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)
    local = both[..., 0] / np.maximum(both[..., 1], np.float32(1e-6))
    detail = y - local
    detail *= np.float32(k) * m
    f += detail[..., None]
    np.rint(f, out=f)
    np.clip(f, 0, 255, out=f)
    return f.astype(np.uint8)


def fused_kernel():
    """The compiled inner loop (:func:`colonsim.render._fused.expose_noise_encode`), or None without numba
    (the same stages then run as NumPy passes)."""
    fused = kernels.compiled()
    return None if fused is None else fused.expose_noise_encode


def _expose_noise_encode(img: np.ndarray, wb: np.ndarray, noise_gain: float, read: float, noisy: bool,
                         rng: np.random.Generator, curve: str, gamma: float, contrast: float
                         ) -> np.ndarray | None:
    """Stages 3, 4, 6 and 7 in one pass of :func:`colonsim.render._fused.expose_noise_encode`: the same float32
    operations, and the same noise draws, as ``encode(add_noise(img * wb))``. None (nothing drawn)
    for a curve whose table has cells with two thresholds (none that SensorConfig allows)."""
    _, base, first, multi, lo = _threshold_table(curve, float(gamma), float(contrast))
    if multi is not None:
        return None
    if noisy:
        uniform = uniform16(rng, img.size).reshape(-1, 3)
    else:
        uniform = np.zeros((0, 3), np.uint16)
    out = np.empty(img.shape, np.uint8)
    fused_kernel()(img.reshape(-1, 3), wb, np.float32(noise_gain), np.float32(read * read), uniform,
                   _normal_table(), base, first, lo, _SHIFT, out.reshape(-1, 3))
    return out


def warm_up() -> None:
    """Load (or compile, the first time on a machine) the compiled inner loop now, so that a render
    worker does it while its parent builds the meshes rather than in its first frame."""
    kernel = fused_kernel()
    if kernel is not None:
        kernel(np.zeros((1, 3), np.float32), np.ones(3, np.float32), np.float32(0.0), np.float32(0.0),
               np.zeros((1, 3), np.uint16), _normal_table(), np.zeros(1, np.uint8),
               np.full(1, np.inf, np.float32), 0, _SHIFT, np.empty((1, 3), np.uint8))
        kernels.compiled().order_pair(np.zeros(2, np.float32), 0)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode an (H, W, 3) uint8 RGB frame as JPEG at ``quality`` (1..100)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError("OpenCV could not JPEG-encode the frame; check that it is (H, W, 3) uint8")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def apply(linear_rgb: np.ndarray, mask: np.ndarray, params: dict[str, float], cfg: SensorConfig,
          rng: np.random.Generator, extras: dict | None = None, fused: bool = True) -> np.ndarray:
    """Run the sensor pipeline (module doc) on one frame.

    linear_rgb: (H, W, 3) float32 linear radiance (1.0 = full scale before gains).
    mask: (H, W) uint8, nonzero inside the image circle.
    params: from :func:`sample_params`; rng: draws the noise (nothing else).
    extras: if given, receives the values computed here rather than drawn, keys
    :data:`EXTRAS_KEYS` (``sensor_auto_gain``: the auto gain used, 1.0 when off), so that the
    caller can record them beside ``params``.
    fused: run stages 3, 4, 6 and 7 in one compiled pass (:mod:`colonsim.render._fused`) where numba is installed;
    False runs them as NumPy passes. The frames are bit-identical either way.
    Returns (H, W, 3) uint8 sRGB (or gamma-encoded), 0 outside the mask.
    """
    img = np.asarray(linear_rgb, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"sensor input must be (H, W, 3) linear RGB, got shape {img.shape}")
    mask = np.asarray(mask)
    if mask.shape != img.shape[:2]:
        raise InputError(f"sensor mask must be {img.shape[:2]}, got {mask.shape}")
    mask = mask.astype(np.uint8, copy=False)

    source = img
    ca = params["sensor_chromatic_aberration_px"]
    if ca != 0:
        img = chromatic_aberration(img, ca)
    img = blur(img, cfg, params)
    owned = img is not source   # a new array that the stages below may overwrite

    gain = auto_gain(img, mask, cfg)
    if extras is not None:
        extras["sensor_auto_gain"] = gain
    # EVs add; with overexposure_ev = 0 the sum is exposure_ev exactly, so the frame is unchanged
    scale = gain * 2.0 ** (params["sensor_exposure_ev"] + params.get("sensor_overexposure_ev", 0.0))
    wb = np.float32([params["sensor_wb_red_gain"], params["sensor_wb_green_gain"],
                     params["sensor_wb_blue_gain"]]) * np.float32(scale)
    halo = params.get("sensor_halo", 0.0)
    if halo > 0:   # stages 3-5 here (the same float32 products); the compiled pass gets unit gains
        img = np.multiply(img, wb, out=img if owned else None)
        owned = True
        wb = np.ones(3, np.float32)
        img = add_halo(img, halo, params["sensor_halo_sigma_px"])
    noise_gain, read = params["sensor_noise_gain"], params["sensor_read_noise"]
    noisy = noise_gain > 0 or read > 0
    contrast = params["sensor_tone_contrast"]
    out = None
    if fused and img.flags.c_contiguous and fused_kernel() is not None:
        out = _expose_noise_encode(img, wb, noise_gain, read, noisy, rng, cfg.tone_curve, cfg.gamma, contrast)
    if out is None:
        if np.any(wb != 1):
            img = np.multiply(img, wb, out=img if owned else None)
            owned = True
        if noisy:
            img = add_noise(img, noise_gain, read, rng, inplace=owned)
        out = encode(img, cfg.tone_curve, cfg.gamma, contrast)
    k = params.get("sensor_edge_enhance", 0.0)
    if k > 0:
        out = edge_enhance(out, mask, k, params["sensor_edge_sigma_px"])
    if cfg.jpeg:
        out = jpeg_roundtrip(out, int(params["sensor_jpeg_quality"]))
    return cv2.bitwise_and(out, out, mask=mask)
