"""Tissue textures synthesized from a bank of real mucosa patches (``tissue.texture_bank``).

A texture bank (``colonsim textures``, :mod:`colonsim.tune.textures`) holds small patches of real
frames with the scope's shading divided out: albedo-like colour relative to its frame's mean, and
fine structure (vessels, pits, mucus). This module reads a bank and synthesizes from it the
per-mesh tileable texture that :mod:`colonsim.render.scene` maps triplanarly onto the colon wall,
in place of :func:`colonsim.render.tissue.make_texture`.

Synthesis is by-example noise with the histogram-preserving blending of Heitz and Neyret (2018,
"High-Performance By-Example Noise using a Histogram-Preserving Blending Operator", HPG): the
bank's colours are decorrelated (PCA) and each component is mapped to a standard normal through
its own quantile function (stored in the bank). Splats of random patches, each with a random
rotation, scale and mirror, are placed on a jittered grid on the torus (so the tile wraps), each
weighted by a smooth window; at a pixel the Gaussianized patches are combined as
``sum(w_i g_i) / sqrt(sum(w_i^2))``, which keeps mean 0 and variance 1 wherever patches overlap
(a plain average would wash the contrast out between splat centres), then mapped back through the
inverse transforms. The result has the bank's colour histogram everywhere, without seams.

Encoding of the texture (n, n, 4) uint8 (``u_bank = 1`` in ``shaders/mesh.frag``): rgb = the
albedo relative to the tile's mean colour, halved (0.5 = the mean; the shader multiplies the
frame's base albedo by ``2 rgb``, so the per-frame albedo ranges still set the overall colour);
a = fine bumps, the band-passed log luminance mapped from [-1, 1]. Everything is a pure function of
the bank's content and the rng (seeded from ``texture_seed`` and the mesh id).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colonsim.errors import InputError

#: ``kind`` attribute of a texture bank file, and the format version this module reads.
BANK_KIND = "colonsim.texture_bank"
BANK_VERSION = 1
#: Stored patch value = round(albedo relative to its frame's mean colour * PATCH_SCALE), uint8.
PATCH_SCALE = 128.0
#: Points of each colour component's quantile function stored in the bank.
QUANTILES = 1025

#: Splat footprint diameter as a fraction of the tile side, drawn per splat from this range (with
#: period_mm 20-40 mm a tile of 512 px holds a real patch of 48 px at about 1.6-2.3x).
SPLAT_FRAC = (0.14, 0.20)
#: Grid spacing of the splats, as a fraction of the smallest footprint radius (< 1: overlap).
GRID_SPACING = 0.7
#: Jitter of each splat's centre around its grid point, as a fraction of the grid spacing.
GRID_JITTER = 0.15
#: Gaussian sigma of the high-pass that makes the bump channel, as a fraction of the tile side.
BUMP_SIGMA_FRAC = 0.01
#: ... and of the blur that takes pixel noise out of it (a band-pass).
BUMP_FINE_SIGMA_FRAC = 0.002


@dataclass(frozen=True)
class Bank:
    """A texture bank read into memory (see :func:`load_bank`)."""
    patches: np.ndarray     # (N, p, p, 3) uint8: albedo relative to the frame mean * PATCH_SCALE
    pca_mean: np.ndarray    # (3,) float64: mean colour of every patch pixel (relative albedo)
    pca_axes: np.ndarray    # (3, 3) float64: rows = principal axes of the colours
    quantiles: np.ndarray   # (3, QUANTILES) float64: quantile function of each PCA component
    path: str


_CACHE: dict = {}
_LOCK = threading.Lock()


def load_bank(path: str | Path) -> Bank:
    """Read a texture bank file (cached per process by path, size and modification time).

    Raises InputError for a missing file, a file that is not a ColonSim texture bank, or a bank of
    another format version."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"texture bank not found: {p} (tissue.texture_bank); build one with "
                         "'colonsim textures --real DIR --out BANK.h5'")
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    import h5py

    try:
        with h5py.File(p, "r") as f:
            kind = f.attrs.get("kind")
            if kind != BANK_KIND:
                raise InputError(f"{p} is not a ColonSim texture bank (tissue.texture_bank); "
                                 "build one with 'colonsim textures --real DIR --out BANK.h5'")
            version = int(f.attrs.get("version", -1))
            if version != BANK_VERSION:
                raise InputError(f"texture bank {p} has format version {version}; this ColonSim reads "
                                 f"version {BANK_VERSION}: build it again with 'colonsim textures'")
            bank = Bank(patches=f["patches"][...], pca_mean=f["pca_mean"][...].astype(np.float64),
                        pca_axes=f["pca_axes"][...].astype(np.float64),
                        quantiles=f["quantiles"][...].astype(np.float64), path=str(p))
    except OSError as e:
        raise InputError(f"cannot read texture bank {p}: {e}") from None
    except KeyError as e:
        raise InputError(f"texture bank {p} lacks {e}; build it again with 'colonsim textures'") from None
    if bank.patches.ndim != 4 or bank.patches.shape[-1] != 3 or len(bank.patches) == 0:
        raise InputError(f"texture bank {p} holds no patches of shape (N, p, p, 3)")
    with _LOCK:
        _CACHE.clear()   # one bank per process at a time
        _CACHE[key] = bank
    return bank


def colour_model(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (3,), PCA axes (3, 3) as rows, quantiles (3, QUANTILES)) of (M, 3) float colours: the
    Gaussianization that :func:`synthesize` blends in (deterministic: eigenvector signs fixed)."""
    x = np.asarray(pixels, np.float64)
    mean = x.mean(axis=0)
    cov = np.cov((x - mean).T)
    vals, vecs = np.linalg.eigh(cov)
    axes = vecs[:, ::-1].T.copy()
    for k in range(3):   # sign: the largest coordinate of each axis is positive
        if axes[k, np.argmax(np.abs(axes[k]))] < 0:
            axes[k] = -axes[k]
    comp = (x - mean) @ axes.T
    q = np.quantile(comp, _probs(), axis=0).T   # the extreme pixels (a dark speck) left out
    return mean, axes, np.ascontiguousarray(q)


def _probs(n: int = QUANTILES) -> np.ndarray:
    """The probabilities of the stored quantiles: (k + 0.5) / n, inside (0, 1)."""
    return (np.arange(n) + 0.5) / n


def _to_gauss(comp: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Values of one PCA component -> standard normal, through its quantile function ``q``."""
    from scipy.special import ndtri

    return ndtri(np.interp(comp, q, _probs(len(q))))


def _from_gauss(g: np.ndarray, q: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return np.interp(ndtr(g), _probs(len(q)), q)


def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``img`` (p, p, c) sampled at float coordinates (clamped to the image)."""
    p = img.shape[0]
    y = np.clip(y, 0.0, p - 1.0)
    x = np.clip(x, 0.0, p - 1.0)
    y0 = np.minimum(np.floor(y).astype(np.int64), p - 2)
    x0 = np.minimum(np.floor(x).astype(np.int64), p - 2)
    fy = (y - y0)[..., None]
    fx = (x - x0)[..., None]
    return ((img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx) * (1 - fy)
            + (img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx) * fy)


def synthesize(bank: Bank, n: int, rng: np.random.Generator) -> np.ndarray:
    """A tileable (n, n, 3) float64 field of relative albedo with the bank's colour histogram
    (see the module docstring). A pure function of the bank and the rng's state."""
    p = bank.patches.shape[1]
    r_min = 0.5 * SPLAT_FRAC[0] * n
    m = max(2, int(np.ceil(n / (GRID_SPACING * r_min))))   # grid points per side; spacing divides n
    spacing = n / m
    n_splats = m * m
    # Every draw up front, in a fixed order.
    centres = (np.stack(np.meshgrid(np.arange(m), np.arange(m), indexing="ij"), -1).reshape(-1, 2) + 0.5) * spacing
    centres = centres + rng.uniform(-GRID_JITTER, GRID_JITTER, (n_splats, 2)) * spacing
    which = rng.integers(0, len(bank.patches), n_splats)
    angle = rng.uniform(0.0, 2.0 * np.pi, n_splats)
    diam = rng.uniform(SPLAT_FRAC[0], SPLAT_FRAC[1], n_splats) * n
    mirror = rng.integers(0, 2, n_splats)

    acc = np.zeros((n, n, 3))
    w2 = np.zeros((n, n))
    r_patch = 0.5 * (p - 1) - 1.0   # the largest disc that any rotation keeps inside the patch
    used, slot = np.unique(which, return_inverse=True)   # each patch Gaussianized once
    comp = (bank.patches[used].reshape(-1, 3).astype(np.float64) / PATCH_SCALE - bank.pca_mean) @ bank.pca_axes.T
    gaussed = np.stack([_to_gauss(comp[:, c], bank.quantiles[c]) for c in range(3)], -1).reshape(len(used), p, p, 3)
    for k in range(n_splats):
        gauss = gaussed[slot[k]]
        if mirror[k]:
            gauss = gauss[:, ::-1]
        radius = 0.5 * diam[k]
        cy, cx = centres[k]
        y0, x0 = int(np.floor(cy - radius)), int(np.floor(cx - radius))
        size = int(np.ceil(2 * radius)) + 2
        dy = (y0 + np.arange(size) + 0.5 - cy)[:, None]
        dx = (x0 + np.arange(size) + 0.5 - cx)[None, :]
        r = np.hypot(dy, dx) / radius
        w = np.where(r < 1.0, np.cos(0.5 * np.pi * np.minimum(r, 1.0)) ** 2, 0.0)
        c, s = np.cos(angle[k]), np.sin(angle[k])
        scale = r_patch / radius
        py = 0.5 * (p - 1) + scale * (c * dy - s * dx)
        px = 0.5 * (p - 1) + scale * (s * dy + c * dx)
        val = _bilinear(gauss, py, px)
        rows = (y0 + np.arange(size)) % n
        cols = (x0 + np.arange(size)) % n
        ix = np.ix_(rows, cols)
        acc[ix] += w[..., None] * val
        w2[ix] += w * w
    g = acc / np.sqrt(np.maximum(w2, 1e-12))[..., None]
    comp = np.stack([_from_gauss(g[..., c], bank.quantiles[c]) for c in range(3)], -1)
    return comp @ bank.pca_axes + bank.pca_mean


def _blur_wrapped(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an (n, n) tile on the torus (in the Fourier domain)."""
    n = x.shape[0]
    f = np.fft.fftfreq(n)
    g = np.exp(-2.0 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    return np.real(np.fft.ifft2(np.fft.fft2(x) * g))


def encode(albedo: np.ndarray) -> np.ndarray:
    """(n, n, 3) relative albedo -> the (n, n, 4) uint8 texture of the module docstring."""
    n = albedo.shape[0]
    rel = albedo / np.maximum(albedo.reshape(-1, 3).mean(axis=0), 1e-6)
    lum = np.log(np.maximum(rel @ np.array([0.2126, 0.7152, 0.0722]), 1e-3))
    # A band: pixel noise (JPEG, sensor) out, the shape of pits and folds of the mucosa kept.
    hp = _blur_wrapped(lum, BUMP_FINE_SIGMA_FRAC * n) - _blur_wrapped(lum, max(1.0, BUMP_SIGMA_FRAC * n))
    bump = np.tanh(hp / (2.0 * hp.std() + 1e-9))
    tex = np.concatenate([0.5 * rel, (0.5 + 0.5 * bump)[..., None]], axis=-1)
    return np.round(np.clip(tex, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_texture(path: str | Path, n: int, rng: np.random.Generator) -> np.ndarray:
    """The per-mesh (n, n, 4) uint8 bank texture (see the module docstring)."""
    return encode(synthesize(load_bank(path), n, rng))
