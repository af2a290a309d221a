"""The experiment's pictures and report: image grids, qualitative panel, loss curves, the HTML page."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from colonsim import config as cfgmod

from . import report
from .compose import refiner_artifact, refiner_transform
from .config import ExperimentConfig

TABLE_KEYS = ("abs_rel", "rmse_mm", "delta1", "sq_rel", "rmse_log", "delta2", "l1_mm", "median_rel")


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    # Small frames are enlarged (nearest neighbour, so pixels stay honest) to keep labels legible.
    k = max(1, int(np.ceil(160 / img.shape[0])))
    out = np.ascontiguousarray(np.repeat(np.repeat(img, k, axis=0), k, axis=1))
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _error_map(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, cap: float = 0.5) -> np.ndarray:
    """|pred - gt| / gt as an inferno colour map, 0 (black) to ``cap`` (yellow)."""
    import matplotlib

    err = np.zeros_like(gt)
    err[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    rgb = (matplotlib.colormaps["inferno"](np.clip(err / cap, 0, 1))[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def frame_grid(test_h5: Path, depth_model: Path, refiner: Path, n: int, max_depth_mm: float) -> bytes:
    """Rows of: input, adapted, depth (raw), depth (adapted), ground truth, error (raw), error (adapted)."""
    from colonsim.data.dataset import FrameDataset
    from depth.networks import load_model
    from depth.predict import colorize, predict_depth

    ds = FrameDataset(test_h5)
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    frames = [ds.read(int(i)) for i in idx]
    rgb = np.stack([f["rgb"] for f in frames])
    gt = np.stack([f["depth"] for f in frames])
    mask = np.stack([np.broadcast_to(f["mask"], f["depth"].shape) for f in frames])
    model, _ = load_model(depth_model)
    adapted = refiner_transform(refiner)(rgb, mask)
    d_raw = predict_depth(model, rgb)
    d_ada = predict_depth(model, adapted)
    rows = []
    for k in range(len(idx)):
        valid = (mask[k] > 0) & (gt[k] > 0) & (gt[k] <= max_depth_mm)
        cmax = float(np.percentile(gt[k][valid], 98)) if valid.any() else max_depth_mm
        tiles = [_label(rgb[k], "input"), _label(adapted[k], "adapted"),
                 _label(colorize(d_raw[k], mask[k], cmax), "depth raw"),
                 _label(colorize(d_ada[k], mask[k], cmax), "depth adapted"),
                 _label(colorize(gt[k], mask[k], cmax), "ground truth"),
                 _label(_error_map(d_raw[k], gt[k], valid), "error raw"),
                 _label(_error_map(d_ada[k], gt[k], valid), "error adapted")]
        rows.append(np.concatenate(tiles, axis=1))
    return report.array_png(np.concatenate(rows, axis=0))


def qualitative_grid(folder: Path, depth_model: Path, refiner: Path, n: int, size_px: int) -> bytes:
    """Real frames without depth: input, adapted, depth from raw, depth from adapted."""
    import cv2

    from colonsim.data import realdata
    from depth.networks import load_model
    from depth.predict import colorize, predict_depth

    files = realdata.list_images(folder)
    pick = [files[i] for i in np.linspace(0, len(files) - 1, min(n, len(files))).astype(int)]
    rgb = np.stack([cv2.resize(realdata.read_image(p), (size_px * 2, size_px * 2), interpolation=cv2.INTER_AREA)
                    for p in pick])
    mask = np.stack([realdata.detect_border_mask(f) for f in rgb])
    model, _ = load_model(depth_model)
    adapted = refiner_transform(refiner)(rgb, mask)
    d_raw, d_ada = predict_depth(model, rgb), predict_depth(model, adapted)
    rows = [np.concatenate([_label(rgb[k], "real"), _label(adapted[k], "adapted"),
                            _label(colorize(d_raw[k], mask[k]), "depth raw"),
                            _label(colorize(d_ada[k], mask[k]), "depth adapted")], axis=1)
            for k in range(len(pick))]
    return report.array_png(np.concatenate(rows, axis=0))


def _png_if(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _verdict(results: dict) -> str:
    h = results["headline"]
    cls = "ok" if h["claim_met"] else "note"
    sep = "do not overlap" if h["intervals_separated"] else "overlap"
    if h["claim_met"]:
        msg = (f"Adapted frames give abs_rel {h['adapted_abs_rel']:.3f} against {h['raw_abs_rel']:.3f} raw "
               f"({h['ratio']:.2f}x), and the 95% intervals {sep}: the paper's claim is reproduced on this run.")
    else:
        msg = (f"Adapted frames give abs_rel {h['adapted_abs_rel']:.3f} against {h['raw_abs_rel']:.3f} raw "
               f"({h['ratio']:.2f}x; the target is at most 0.8x with separated intervals), and the 95% intervals "
               f"{sep}: the paper's claim is NOT reproduced on this run.")
    return f"<p class='{cls}'>{html.escape(msg)}</p>"


def _matched_ratio(t: dict) -> str:
    if "matched_over_raw_abs_rel" not in t:
        return ""
    r = t["matched_over_raw_abs_rel"]
    out = (f"<p>matched (adapt match, no training) / raw abs_rel = {r[0]:.3f} (paired bootstrap 95% interval "
           f"[{r[1]:.3f}, {r[2]:.3f}]).</p>")
    if "inpainted_over_raw_abs_rel" in t:
        r = t["inpainted_over_raw_abs_rel"]
        out += (f"<p>highlights inpainted (adapt match --steps highlights, no training) / raw abs_rel = "
                f"{r[0]:.3f} (paired bootstrap 95% interval [{r[1]:.3f}, {r[2]:.3f}]).</p>")
    return out


def write_report(run: Path, cfg: ExperimentConfig, results: dict, paths: dict, per_image: dict) -> Path:
    """Write ``run/report.html`` (self-contained) from the run folder's models and results."""
    sections = [("Result", _verdict(results))]
    for tname, t in results["tests"].items():
        rows = {"raw (depth trained on clean, realistic input)": t["raw"],
                "adapted (reverse refiner, then the same depth network)": t["adapted"]}
        if tname == "test_real":
            for bname, b in results["baselines"].items():
                rows[bname.replace("_", " ")] = b
        ratio = t["adapted_over_raw_abs_rel"]
        sections.append((f"Metrics on {tname} (align={cfg.eval.align}, cap {cfg.eval.max_depth_mm:g} mm)",
                         report.metrics_table(rows, TABLE_KEYS) +
                         f"<p>adapted / raw abs_rel = {ratio[0]:.3f} (paired bootstrap 95% interval "
                         f"[{ratio[1]:.3f}, {ratio[2]:.3f}]). Intervals in brackets: 95% bootstrap over images.</p>"
                         + _matched_ratio(t)))
    grid = frame_grid(paths["test_real"], run / "depth_clean" / "model.pt", refiner_artifact(run / "adapt_reverse"),
                      cfg.eval.panel_frames, cfg.eval.max_depth_mm)
    (run / "grid.png").write_bytes(grid)
    sections.append(("Frames of the test set", report.image_html(
        grid, "input, adapted, depth from raw, depth from adapted, ground truth, relative error raw and adapted "
              "(black 0, yellow >= 50%)")))
    if cfg.qualitative_folder and Path(cfg.qualitative_folder).is_dir():
        q = qualitative_grid(Path(cfg.qualitative_folder), run / "depth_clean" / "model.pt",
                             refiner_artifact(run / "adapt_reverse"), cfg.eval.panel_frames, cfg.size_px)
        (run / "qualitative.png").write_bytes(q)
        sections.append(("Real frames without depth (qualitative)", report.image_html(q, str(cfg.qualitative_folder))))
    curves = []
    for name in ("depth_clean", "adapt_reverse", "depth_realistic", "adapt_forward", "depth_forward"):
        png = _png_if(run / name / "loss_curve.png")
        if png:
            curves.append(report.image_html(png, name))
    sections.append(("Loss curves", "".join(curves) or "<p>no loss curves found</p>"))
    sections.append(("Config", report.config_html(cfgmod.to_dict(cfg))))
    sections.append(("All numbers", f"<pre>{html.escape(json.dumps({k: v for k, v in results.items() if k != 'config'}, indent=1, default=float))}</pre>"))
    return report.write_report(run / "report.html", f"ColonSim experiment: {cfg.name}", sections)
