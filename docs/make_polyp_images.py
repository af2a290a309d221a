"""Draws docs/img/polyp_views.png: clean-style frames 0-7 of seed 0 with polyps
(`anatomy.polyps_per_m=8`, `trajectory.polyp_view_probability=0.8`; top) and their depth (bottom,
near blue to far red, each frame scaled to its own 1st-99th percentile).
Run from the repository root: python docs/make_polyp_images.py"""
from pathlib import Path

import cv2
import numpy as np

from colonsim.render.scene import FrameRenderer
from colonsim.run.shard import load_colons, mesh_source
from colonsim.simconfig import load_sim_config

ROOT = Path(__file__).resolve().parents[1]
TILE, SEED, N = 160, 0, 8

cfg = load_sim_config("clean", None, [f"output.size_px={TILE}", "anatomy.polyps_per_m=8",
                                      "trajectory.polyp_view_probability=0.8"])
r = FrameRenderer(cfg, load_colons(cfg, mesh_source(cfg, "procedural", SEED)))
frames = [r.render(i, SEED) for i in range(N)]
r.close()
top = np.concatenate([f.rgb for f in frames], axis=1)
tiles = []
for f in frames:
    d = np.asarray(f.depth, np.float64)
    ok = np.isfinite(d) & (d > 0)
    lo, hi = np.percentile(d[ok], [1, 99])
    u8 = np.round(255 * np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)).astype(np.uint8)
    tile = cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    tile[~ok] = 0
    tiles.append(tile)
out = ROOT / "docs" / "img" / "polyp_views.png"
cv2.imwrite(str(out), cv2.cvtColor(np.concatenate([top, np.concatenate(tiles, axis=1)], axis=0),
                                   cv2.COLOR_RGB2BGR))
print(out)
