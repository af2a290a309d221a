"""Draws docs/img/styles_grid.png: frames 0-3 of seed 7 in the clean style (top row) and the
realistic style (middle row, the same camera poses), above real CVC-ColonDB frames (Bernal et al.
2012; frames 40, 90, 230, 300, centre-cropped to a square; for comparison only).
Run from the repository root: python docs/make_style_images.py (needs ../shared/data)."""
from pathlib import Path

import cv2
import numpy as np

from colonsim.data.realdata import list_images, read_image
from colonsim.render.scene import FrameRenderer
from colonsim.run.shard import load_colons, mesh_source
from colonsim.simconfig import load_sim_config

ROOT = Path(__file__).resolve().parents[1]
CVC = ROOT.parent / "shared" / "data" / "real" / "cvc-colondb"
TILE, SEED = 160, 7

rows = []
for style in ("clean", "realistic"):
    cfg = load_sim_config(style, None, [f"output.size_px={TILE}"])
    r = FrameRenderer(cfg, load_colons(cfg, mesh_source(cfg, "procedural", SEED)))
    rows.append(np.concatenate([r.render(i, SEED).rgb for i in range(4)], axis=1))
    r.close()
files = list_images(CVC)
real = []
for i in (40, 90, 230, 300):
    rgb = read_image(files[i])
    h, w = rgb.shape[:2]
    s = min(h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    real.append(cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA))
rows.append(np.concatenate(real, axis=1))
out = ROOT / "docs" / "img" / "styles_grid.png"
cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
print(out)
