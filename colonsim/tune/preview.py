"""A contact sheet for tuning by eye: each rendered frame's RGB beside its colour-mapped depth.

Without a sweep, one row of ``n_frames`` frames. With ``sweep=("light.mu", [1, 2.8, 5])``, one row per
value, labelled with ``key = value``; every row renders the same frame indices with the same seed, so
only the swept parameter changes along a column. All depth tiles share one colour scale (turbo, mm),
drawn with its tick labels at the right; pixels without depth are black.

Frames are rendered in one spawned worker process, so that no GL context is ever created in the
caller's process (a later fork of it, e.g. by a DataLoader, would hang).
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from colonsim import config as cfgmod
from colonsim.config import check_seed
from colonsim.data import outputs
from colonsim.errors import ColonSimError, ConfigError, InputError
from colonsim.run import interrupt

GAP_PX = 8          # between frame pairs and between rows
MARGIN_PX = 8       # around the sheet
LABEL_PX = 20       # height of the text strip above each row
BAR_W_PX = 16       # width of the depth colour bar
BAR_TEXT_PX = 64    # room for the colour bar's tick labels
BG = 255            # background grey level


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of a sheet of ``rows`` x ``cols`` frame pairs of ``size`` px tiles."""
    rows: int
    cols: int
    size: int

    @property
    def width(self) -> int:
        grid = self.cols * 2 * self.size + (self.cols - 1) * GAP_PX
        return MARGIN_PX + grid + GAP_PX + BAR_W_PX + BAR_TEXT_PX

    @property
    def height(self) -> int:
        return 2 * MARGIN_PX + self.rows * (LABEL_PX + self.size) + (self.rows - 1) * GAP_PX

    def rgb_origin(self, r: int, c: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of the RGB tile of row r, column c."""
        return (MARGIN_PX + r * (LABEL_PX + self.size + GAP_PX) + LABEL_PX,
                MARGIN_PX + c * (2 * self.size + GAP_PX))

    def depth_origin(self, r: int, c: int) -> tuple[int, int]:
        y, x = self.rgb_origin(r, c)
        return y, x + self.size

    def bar_box(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the colour bar."""
        x0 = MARGIN_PX + self.cols * 2 * self.size + (self.cols - 1) * GAP_PX + GAP_PX
        return MARGIN_PX + LABEL_PX, self.height - MARGIN_PX, x0, x0 + BAR_W_PX


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``"light.mu=1,2.8,5"`` -> ("light.mu", [1, 2.8, 5]); values are YAML, commas inside [] kept."""
    if "=" not in text:
        raise ConfigError("sweep", f"expected key=v1,v2,..., got {text!r}")
    key, raw = text.split("=", 1)
    items, depth, cur = [], 0, ""
    for ch in raw:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    items = [s.strip() for s in items if s.strip()]
    if not key.strip() or not items:
        raise ConfigError("sweep", f"expected key=v1,v2,..., got {text!r}")
    return key.strip(), [cfgmod.parse_set(f"{key}={s}")[1] for s in items]


def _render_rows(cfgs: Sequence, colons: Sequence, n_frames: int, seed: int) -> list | tuple[str, str]:
    """In the worker: [(rgb (n, H, W, 3) uint8, depth (n, H, W) float32 mm)] per row, or
    (error class name, message) for bad input."""
    try:
        return _render_rows_unchecked(cfgs, colons, n_frames, seed)
    except ColonSimError as e:
        return type(e).__name__, str(e)


def _render_rows_unchecked(cfgs: Sequence, colons: Sequence, n_frames: int, seed: int) -> list:
    from colonsim.render.scene import FrameRenderer
    rows = []
    for cfg, col in zip(cfgs, colons):
        r = FrameRenderer(cfg, col)
        try:
            frames = [r.render(i, seed) for i in range(n_frames)]
        finally:
            r.close()
        rows.append((np.stack([f.rgb for f in frames]), np.stack([f.depth for f in frames])))
    return rows


def _colormap(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(..., H, W) float mm -> (..., H, W, 3) uint8 RGB on the turbo map; 0 (no depth) is black."""
    import cv2
    t = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    u8 = (t * 255).astype(np.uint8)
    flat = u8.reshape(-1, u8.shape[-1])
    rgb = cv2.applyColorMap(flat, cv2.COLORMAP_TURBO)[..., ::-1].reshape(depth.shape + (3,))
    rgb[depth <= 0] = 0
    return rgb


def draw_sheet(rows: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[str]) -> tuple[np.ndarray, tuple]:
    """Compose the sheet: (height, width, 3) uint8 RGB, and the depth range (lo, hi) mm of the bar."""
    import cv2
    n, size = rows[0][0].shape[0], rows[0][0].shape[1]
    lay = Layout(len(rows), n, size)
    img = np.full((lay.height, lay.width, 3), BG, np.uint8)
    valid = np.concatenate([d[d > 0] for _, d in rows])
    lo, hi = (float(np.percentile(valid, 1)), float(np.percentile(valid, 99))) if valid.size else (0.0, 1.0)
    hi = max(hi, lo + 1e-3)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for r, ((rgb, depth), label) in enumerate(zip(rows, labels)):
        cmap = _colormap(depth, lo, hi)
        for c in range(n):
            y, x = lay.rgb_origin(r, c)
            img[y:y + size, x:x + size] = rgb[c]
            y, x = lay.depth_origin(r, c)
            img[y:y + size, x:x + size] = cmap[c]
        y, x = lay.rgb_origin(r, 0)
        cv2.putText(img, label, (x, y - 6), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    y0, y1, x0, x1 = lay.bar_box()
    ramp = np.linspace(hi, lo, y1 - y0)[:, None].repeat(x1 - x0, 1)
    img[y0:y1, x0:x1] = _colormap(ramp, lo, hi)
    cv2.putText(img, "mm", (x0, y0 - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for t in np.linspace(0, 1, 5):
        y = int(round(y0 + t * (y1 - y0 - 1)))
        cv2.line(img, (x1, y), (x1 + 3, y), (0, 0, 0), 1)
        cv2.putText(img, f"{hi - t * (hi - lo):.0f}", (x1 + 5, min(y + 4, lay.height - 2)), font, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return img, (lo, hi)


def preview(cfg, out: str | Path, *, n_frames: int = 4, sweep: str | None = None, seed: int = 0,
            mesh: str | Path = "procedural", overwrite: bool = False) -> dict[str, Any]:
    """Render a contact sheet PNG (see the module doc); an existing ``out`` is replaced only with
    ``overwrite``. Returns path, rows, cols, width, height, depth_min_mm, depth_max_mm."""
    import cv2

    from colonsim.run.shard import load_colons, mesh_source, rebuild_error

    out = outputs.check_target(out, overwrite=overwrite)
    if n_frames < 1:
        raise InputError(f"--frames must be at least 1, got {n_frames}")
    if out.suffix.lower() != ".png":
        raise InputError(f"preview output must be a .png file, got {out}")
    check_seed(seed)
    if sweep:
        key, values = parse_sweep(sweep)
        cfgs = [cfgmod.replace(cfg, [f"{key}={_yaml_value(v)}"]) for v in values]
        labels = [f"{key} = {_yaml_value(v)}" for v in values]
    else:
        cfgs, labels = [cfg], [f"style: {cfg.style}, seed {seed}"]
    colons, cache = [], {}
    for c in cfgs:  # meshes are rebuilt only when the sweep changes the anatomy
        src = mesh_source(c, mesh, seed)
        k = cfgmod.to_json(c.anatomy) if src["kind"] == "procedural" else src["sha256"]
        if k not in cache:
            cache[k] = load_colons(c, src)
        colons.append(cache[k])
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with interrupt.children_ignore_sigint():   # Ctrl-C is this process's: no worker traceback
            fut = pool.submit(_render_rows, cfgs, colons, n_frames, seed)
        try:
            rows = fut.result()
        except BaseException:
            interrupt.stop_pool(pool)
            raise
    if isinstance(rows, tuple):
        raise rebuild_error(*rows)
    img, (lo, hi) = draw_sheet(rows, labels)
    with outputs.staged(out, overwrite=overwrite) as tmp:
        ok, png = cv2.imencode(".png", img[..., ::-1])
        if not ok:
            raise InputError(f"cannot encode {out} as PNG")
        tmp.write_bytes(png.tobytes())   # by bytes: any file name, whatever its encoding
    return {"path": str(out), "rows": len(rows), "cols": n_frames, "width": img.shape[1],
            "height": img.shape[0], "depth_min_mm": round(lo, 2), "depth_max_mm": round(hi, 2)}


def _yaml_value(v: Any) -> str:
    import json
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else str(v)
