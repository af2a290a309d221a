"""Draws docs/img/teaser.png: ColonSim renders (top row), their exact depth (middle row) and real
CVC-ColonDB frames (bottom row; Bernal et al. 2012, for comparison only), all at the same size.

Run from the repository root: python docs/make_teaser.py (needs ../shared/data; about 20 s on 2 cores).
It uses only the public API: colonsim.load_sim_config, render_dataset, open_file, read_frame,
list_images and read_image.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

import colonsim

ROOT = Path(__file__).resolve().parents[1]
CVC = ROOT.parent / "shared" / "data" / "real" / "cvc-colondb"
OUT = ROOT / "docs" / "img" / "teaser.png"
TILE = 192          # px, every tile
SEED = 3            # dataset seed of the renders
RENDERED = 24       # frames rendered, of which FRAMES are shown
FRAMES = (2, 6, 11, 20, 23)
REAL = (12, 95, 160, 233, 301)          # CVC-ColonDB frames, in natural file order
DEPTH_MM = (3.0, 150.0)                 # colour scale of the depth row, log-spaced
GAP = 4             # px between tiles
OVERRIDES = [f"output.size_px={TILE}", "anatomy.polyps_per_m=4",
             "trajectory.polyp_view_probability=0.3", "trajectory.wall_view_probability=0.3"]


def depth_colour(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 mm -> (H, W, 3) uint8 RGB, turbo on log depth (near red, far blue); black where
    there is no surface or outside the image circle."""
    lo, hi = np.log(DEPTH_MM[0]), np.log(DEPTH_MM[1])
    t = (np.log(np.clip(depth, *DEPTH_MM)) - lo) / (hi - lo)
    rgb = cv2.applyColorMap((255 * (1 - t)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(((depth > 0) & (mask > 0))[..., None], rgb, 0).astype(np.uint8)


def real_tile(path: Path) -> np.ndarray:
    """A real frame, centre-cropped to a square and resized to TILE."""
    rgb = colonsim.read_image(path)
    h, w = rgb.shape[:2]
    s = min(h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(tile, (0, 0), (tw + 8, th + 10), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def row(tiles: list[np.ndarray]) -> np.ndarray:
    out = np.full((TILE, len(tiles) * TILE + (len(tiles) - 1) * GAP, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        out[:, k * (TILE + GAP):k * (TILE + GAP) + TILE] = t
    return out


def main() -> None:
    cfg = colonsim.load_sim_config("realistic", overrides=OVERRIDES)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "teaser.h5"
        colonsim.render_dataset(cfg, path, RENDERED, seed=SEED, workers=2, progress=False)
        with colonsim.open_file(path) as f:
            frames = [colonsim.read_frame(f, i) for i in FRAMES]
    renders = [fr["rgb"] for fr in frames]
    depths = [depth_colour(fr["depth"], fr["mask"]) for fr in frames]
    files = colonsim.list_images(CVC)
    reals = [real_tile(files[i]) for i in REAL]
    renders[0] = label(renders[0], "ColonSim render")
    depths[0] = label(depths[0], f"depth {DEPTH_MM[0]:.0f}-{DEPTH_MM[1]:.0f} mm")
    reals[0] = label(reals[0], "real (CVC-ColonDB)")
    rows = [row(renders), row(depths), row(reals)]
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([rows[0], gap, rows[1], gap, rows[2]], axis=0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"{OUT}: {grid.shape[1]}x{grid.shape[0]} px")


if __name__ == "__main__":      # the render workers are spawned processes that import this file
    main()
