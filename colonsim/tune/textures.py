"""A texture bank of real mucosa patches, with the scope's shading removed (``colonsim textures``).

Per frame of a real-frame folder (:mod:`colonsim.data.realdata`):

1. the black border outside the image circle is masked (:func:`~colonsim.data.realdata.detect_border_mask`);
2. specular highlights (small patches whose every channel is at least ``highlight_level``, as
   ``adapt match`` finds them) are grown by a pixel or two and inpainted (Telea);
3. the frame is linearized (sRGB), and the low-frequency shading, its luminance blurred with a
   large Gaussian (``blur_sigma_frac`` of the frame's shorter side, normalized over the valid
   pixels), is divided out of every channel: what remains keeps the colour ratios and the fine
   structure (vessels, pits, mucus), and is divided by its mean over the frame, so that a bank holds
   colour *relative to the frame's mucosa*;
4. dark regions (the lumen, where the division amplifies noise) and near-saturated ones
   (overexposed wall) are dropped, and square patches of ``patch_px`` (at most an eighth of the
   frame's shorter side: a patch carries texture, not a scene) are drawn at random among those
   lying wholly inside what is left, with flat shading (no fold edge or shadow that the large blur
   left behind) and a mean colour close to the frame's mucosa; each patch keeps only a fraction
   (``keep_tint``) of its own tint, so that what the bank carries is structure, not colour blotches.

The bank (HDF5) holds the patches (uint8, relative albedo times
:data:`colonsim.render.texbank.PATCH_SCALE`), each patch's frame and position, the colour model
that synthesis blends in, and its provenance: the source folder, the frame names, this module's
config and the format version. The same folder and config give the same bytes.
"""
from __future__ import annotations

import itertools
import json
import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from colonsim import __version__
from colonsim.data import realdata
from colonsim.errors import InputError
from colonsim.render import texbank

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankConfig:
    patch_px: int = 48                # patch side, px (at most an eighth of the frame's shorter side)
    patches_per_frame: int = 16       # patches drawn per frame (fewer where less is valid)
    blur_sigma_frac: float = 0.05     # shading blur sigma, fraction of the frame's shorter side
    highlight_level: int = 170        # 8-bit level that all three channels of a highlight reach
    highlight_max_frac: float = 0.01  # a bright patch larger than this fraction of the circle is not a highlight
    dark_level: float = 40.0          # drop where the shading (8-bit sRGB luminance) is darker
    bright_level: float = 235.0       # drop where the shading is brighter, or any channel >= 250
    border_margin_px: int = 4         # the image circle is eroded by this much
    max_structure: float = 0.12       # largest std of a patch's smoothed log luminance (residual shading)
    max_colour_shift: float = 0.3     # largest |log| of a patch's mean colour relative to its frame's
    keep_tint: float = 0.25           # fraction of a patch's own (log) mean colour shift that is kept
    seed: int = 0                     # seed of the patch positions (with each frame's name)

    def check(self) -> None:
        if not 8 <= self.patch_px <= 512:
            raise InputError(f"--patch must be 8 to 512 px, got {self.patch_px}")
        if not 1 <= self.patches_per_frame <= 10000:
            raise InputError(f"--per-frame must be 1 to 10000, got {self.patches_per_frame}")
        if not 0.0 < self.blur_sigma_frac <= 1.0:
            raise InputError(f"blur_sigma_frac must be in (0, 1], got {self.blur_sigma_frac}")


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


LUMA = np.array([0.2126, 0.7152, 0.0722])
_LINEAR = _srgb_to_linear(np.arange(256) / 255.0)   # 8-bit sRGB -> linear


def remove_shading(rgb: np.ndarray, valid: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(albedo (H, W, 3) float64 linear, shading (H, W) float64 linear luminance) of an (H, W, 3)
    uint8 sRGB frame: each channel divided by the luminance blurred with ``sigma_px`` over the
    ``valid`` pixels (H, W) bool (a normalized convolution, so that the border and the lumen do not
    darken the shading near them)."""
    lin = _LINEAR[rgb]
    lum = lin @ LUMA
    # The shading is smooth: blurred at a quarter of the resolution (a blur of sigma 25 px at full
    # size costs ten times more), then brought back with bilinear interpolation.
    h, w = lum.shape
    f = max(1, int(sigma_px // 8))
    small = (max(1, w // f), max(1, h // f))
    wt = cv2.resize(valid.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    lu = cv2.resize((lum * valid).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    s = sigma_px * small[0] / w
    num = cv2.GaussianBlur(lu, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(wt, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    shading = cv2.resize(num / np.maximum(den, 1e-6), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    return lin / np.maximum(shading, 1e-4)[..., None], shading


def _cmax(rgb: np.ndarray) -> np.ndarray:   # per-pixel max of the channels (faster than max(axis=2))
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _cmin(rgb: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _inpaint_highlights(rgb: np.ndarray, inside: np.ndarray, cfg: BankConfig) -> np.ndarray:
    hl = (_cmin(rgb) >= cfg.highlight_level) & inside
    if not hl.any():
        return rgb
    _, labels, stats, _ = cv2.connectedComponentsWithStats(hl.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= cfg.highlight_max_frac * inside.sum())
    hl = np.isin(labels, small[small > 0])
    if not hl.any():
        return rgb
    grow = max(1, round(min(rgb.shape[:2]) / 200))
    hl = cv2.dilate(hl.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))).astype(bool) & inside
    radius = max(3, round(min(rgb.shape[:2]) / 100))
    out = cv2.inpaint(np.ascontiguousarray(rgb), hl.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return np.where(hl[..., None], out, rgb)


def frame_patches(name: str, rgb: np.ndarray, cfg: BankConfig) -> tuple[np.ndarray, np.ndarray]:
    """(patches (k, p, p, 3) uint8, top-left corners (k, 2) int) of one frame (see the module
    docstring); k = 0 where no patch fits in the valid region."""
    h, w = rgb.shape[:2]
    p = cfg.patch_px
    empty = np.zeros((0, p, p, 3), np.uint8), np.zeros((0, 2), np.int32)
    if p > min(h, w) // 8:
        return empty
    inside = realdata.detect_border_mask(rgb).astype(bool)
    if cfg.border_margin_px > 0:
        k = 2 * cfg.border_margin_px + 1
        inside = cv2.erode(inside.astype(np.uint8), np.ones((k, k), np.uint8),
                           borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    saturated = (_cmax(rgb) >= 250) & inside
    clean = _inpaint_highlights(rgb, inside, cfg)
    saturated &= _cmax(clean) >= 250   # what inpainting left: overexposed wall
    albedo, shading = remove_shading(clean, inside, cfg.blur_sigma_frac * min(h, w))
    shade8 = 255.0 * np.where(shading <= 0.0031308, 12.92 * shading,
                              1.055 * np.maximum(shading, 0.0) ** (1 / 2.4) - 0.055)
    valid = inside & ~saturated & (shade8 >= cfg.dark_level) & (shade8 <= cfg.bright_level)
    if not valid.any():
        return empty
    mean = (albedo * valid[..., None]).reshape(-1, 3).sum(axis=0) / valid.sum()
    rel = albedo / np.maximum(mean, 1e-6)
    # Top-left corners whose p x p window is wholly valid (an integral image of the invalid
    # pixels), whose shading is flat (the log luminance smoothed at p / 12 varies by less than
    # max_structure: no fold edge or shadow that the large blur left) and whose mean colour is
    # within max_colour_shift (log) of the frame's mucosa in every channel (no stool, bleeding, dye).
    win = _window_sums((~valid).astype(np.float64), p)
    log_rel = np.log(np.maximum(rel, 1e-3))
    smooth = cv2.GaussianBlur((log_rel @ LUMA).astype(np.float32), (0, 0), p / 12.0).astype(np.float64)
    area = float(p * p)
    m1 = _window_sums(smooth, p) / area
    var = _window_sums(smooth * smooth, p) / area - m1 * m1
    shift = np.max(np.abs(np.stack([_window_sums(log_rel[..., c], p) for c in range(3)])) / area, axis=0)
    ok = (win < 0.5) & (var < cfg.max_structure ** 2) & (shift < cfg.max_colour_shift)
    stride = max(1, p // 2)
    ys, xs = np.nonzero(ok[::stride, ::stride])
    if len(ys) == 0:
        return empty
    corners = np.stack([ys * stride, xs * stride], -1)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, zlib.crc32(name.encode("utf-8", "surrogateescape"))]))
    pick = np.sort(rng.permutation(len(corners))[:cfg.patches_per_frame])
    corners = corners[pick]
    out = np.stack([rel[y:y + p, x:x + p] for y, x in corners])
    # Each patch's own tint is mostly pulled to the frame's mucosa (``keep_tint`` of its log mean
    # colour kept): splats of differently tinted patches would dot the wall with colour confetti.
    tint = np.log(np.maximum(out, 1e-3)).mean(axis=(1, 2), keepdims=True)
    out = out * np.exp(-(1.0 - cfg.keep_tint) * tint)
    return np.round(np.clip(out * texbank.PATCH_SCALE, 0, 255)).astype(np.uint8), corners.astype(np.int32)


def _window_sums(x: np.ndarray, p: int) -> np.ndarray:
    """(H - p + 1, W - p + 1): the sum of ``x`` (H, W) over each p x p window, by top-left corner."""
    c = np.pad(x.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return c[p:, p:] - c[:-p, p:] - c[p:, :-p] + c[:-p, :-p]


def read_names(path: str | Path) -> list[str]:
    """The frame names of an ``--only`` file: one file name per line; blank lines and ``#`` comments skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--only file not found: {p}; expected a text file of frame names, one a line")
    names = [line.split("#", 1)[0].strip() for line in p.read_text(encoding="utf-8").splitlines()]
    return [n for n in names if n]


def build_bank(real: str | Path, out: str | Path, cfg: BankConfig = BankConfig(),
               only: list[str] | None = None, max_frames: int | None = None) -> dict:
    """Build a texture bank of the frames in ``real``, a folder of images or a video (only the names
    in ``only``, if given; the first ``max_frames``) into ``out``. Returns a summary dict. Raises
    InputError for a source with no usable frame (none with a patch wholly inside its valid region)."""
    import h5py

    cfg.check()
    if Path(real).is_dir():
        files = realdata.list_images(real)
        if only is not None:
            wanted = set(only)
            missing = sorted(wanted - {f.name for f in files})
            if missing:
                raise InputError(f"--only names {len(missing)} frame(s) not in {real}, e.g. {missing[0]}")
            files = [f for f in files if f.name in wanted]
        if max_frames is not None:
            files = files[:max_frames]
        frames = ((f.name, realdata.read_image(f)) for f in files)
    else:   # a video (or one image): its frames are named frame_000012.png
        frames = realdata.iter_frames(real)
        if only is not None:
            wanted = set(only)
            frames = ((name, rgb) for name, rgb in frames if name in wanted)
        if max_frames is not None:
            frames = itertools.islice(frames, max_frames)
    names, patches, frame_of, corners = [], [], [], []
    n_read = 0
    for name, rgb in frames:
        n_read += 1
        pt, co = frame_patches(name, rgb, cfg)
        if len(pt) == 0:
            continue
        frame_of.append(np.full(len(pt), len(names), np.int32))
        names.append(name)
        patches.append(pt)
        corners.append(co)
    if not patches:
        raise InputError(f"no usable frames in {real}: none of its {n_read} frame(s) has a "
                         f"{cfg.patch_px} px patch of lit mucosa (frames of at least {8 * cfg.patch_px} px, "
                         "not dark, not overexposed)")
    patches = np.concatenate(patches)
    mean, axes, quantiles = texbank.colour_model(patches.reshape(-1, 3).astype(np.float64) / texbank.PATCH_SCALE)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with h5py.File(tmp, "w", libver=("v110", "v110"), track_order=False) as h:
        h.attrs["kind"] = texbank.BANK_KIND
        h.attrs["version"] = texbank.BANK_VERSION
        h.attrs["colonsim_version"] = __version__
        h.attrs["source"] = str(Path(real).resolve())
        h.attrs["config"] = json.dumps(asdict(cfg), sort_keys=True)
        h.attrs["only"] = json.dumps(sorted(only) if only is not None else None)
        h.attrs["n_frames_read"] = n_read
        h.attrs["patch_scale"] = texbank.PATCH_SCALE
        h.create_dataset("patches", data=patches, chunks=(min(64, len(patches)), *patches.shape[1:]),
                         compression="gzip", compression_opts=4, shuffle=True, track_times=False)
        h.create_dataset("frame_names", data=np.array(names, dtype=h5py.string_dtype()), track_times=False)
        h.create_dataset("frame_index", data=np.concatenate(frame_of), track_times=False)
        h.create_dataset("corner_yx", data=np.concatenate(corners), track_times=False)
        h.create_dataset("pca_mean", data=mean, track_times=False)
        h.create_dataset("pca_axes", data=axes, track_times=False)
        h.create_dataset("quantiles", data=quantiles, track_times=False)
    tmp.replace(out)
    return {"out": str(out), "n_patches": int(len(patches)), "n_frames": len(names), "n_frames_read": n_read,
            "patch_px": cfg.patch_px, "bytes": out.stat().st_size, "mean_rgb": [float(v) for v in mean]}
