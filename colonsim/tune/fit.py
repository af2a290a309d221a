"""Fit the light, sensor and tissue parameters of the forward model to a folder of real frames.

The real frames are split in order (neighbouring frames of one video are alike, so a contiguous
split keeps the held-out frames honest): the first ``1 - holdout`` of them are fitted, the rest
only measure the result. Each trial of the search (Optuna's TPE sampler, Bergstra et al. 2011,
seeded) renders ``frames`` frames at ``size_px`` with the same poses (seed) every trial, and scores
the :mod:`colonsim.tune.framestats` distance between their statistics and those of the fitted real
frames. The first trial is the starting config, so the fit never ends worse than it on the fitted
frames. The result is measured on the held-out frames against a fresh set of rendered frames
(another seed), for the starting and the tuned config.

Each tuned value is the centre of its range: a field that the style draws per frame from
``[lo, hi]`` keeps its spread and is shifted to the tuned centre (narrowed where it would leave the
search bounds).
Pixel-sized values (blur, chromatic aberration) are searched in pixels of the output size of the
config and scaled to the analysis size while rendering.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colonsim import config as cfgmod
from colonsim.errors import ColonSimError, InputError
from colonsim.run import interrupt
from colonsim.tune import framestats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    key: str      # dotted config key
    lo: float     # search bounds (config units; px fields in output px)
    hi: float


SEARCH_SPACE = (
    Param("light.mu", 0.0, 8.0),                 # angular falloff of the light guides
    Param("light.offset_mm", 1.0, 8.0),          # light-guide offset from the lens
    Param("light.ambient", 0.0, 0.05),           # stray light
    Param("light.ambient_tint", 0.0, 1.0),       # its colour: white .. the mucosa's (the far lumen's red)
    Param("sensor.exposure_ev", -1.5, 1.5),      # exposure (after auto gain)
    Param("sensor.gamma", 1.4, 3.2),             # tone curve (the fit switches tone_curve to gamma)
    Param("sensor.tone_contrast", 0.0, 0.6),
    Param("sensor.wb_red_gain", 0.6, 1.6),       # white balance
    Param("sensor.wb_blue_gain", 0.6, 1.6),
    Param("lens.vignetting", 0.0, 0.9),
    Param("sensor.read_noise", 0.0, 0.02),       # noise
    Param("sensor.noise_gain", 0.0, 0.005),
    Param("sensor.defocus_sigma_px", 0.0, 4.0),  # blur, px at the output size
    Param("tissue.albedo_r", 0.2, 0.95),         # tissue base colour
    Param("tissue.albedo_g", 0.05, 0.6),
    Param("tissue.albedo_b", 0.02, 0.4),
    Param("tissue.specular", 0.0, 2.5),          # specularity
    Param("tissue.roughness", 0.04, 0.4),
    Param("trajectory.wall_view_probability", 0.0, 1.0),   # the view distribution (framestats' view part)
    Param("trajectory.lateral_offset_frac", 0.0, 0.9),
)
#: What the interactive tuner adds to the search space: camera geometry.
UI_SPACE = SEARCH_SPACE + (Param("lens.fov_deg", 60.0, 170.0),)
PX_FIELDS = ("sensor.defocus_sigma_px", "sensor.motion_blur_px", "sensor.chromatic_aberration_px",
             "sensor.halo_sigma_px", "sensor.edge_sigma_px")
#: Faster anatomy for the fit only (the written config keeps the user's anatomy).
FIT_ANATOMY = ("anatomy.max_length_mm=250", "anatomy.triangles=30000")


def _get(cfg, key: str):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _fmt(v) -> str:
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(f"{float(x):.6g}" for x in v) + "]"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def centre_of(cfg, p: Param) -> float:
    v = _get(cfg, p.key)
    return float(np.mean(v)) if isinstance(v, tuple) else float(v)


def apply_params(cfg, values: dict[str, float]):
    """``cfg`` with each searched field centred on ``values[key]`` (ranges keep their spread)."""
    bounds = {p.key: p for p in UI_SPACE}
    sets = []
    for key, c in values.items():
        old = _get(cfg, key)
        if isinstance(old, tuple):
            p = bounds[key]
            half = min((old[1] - old[0]) / 2.0, max(c - p.lo, 0.0), max(p.hi - c, 0.0))  # stay in bounds
            sets.append(f"{key}={_fmt((c - half, c + half))}")
        else:
            sets.append(f"{key}={_fmt(float(c))}")
    if "sensor.gamma" in values:
        sets.append("sensor.tone_curve=gamma")
    return cfgmod.replace(cfg, sets)


def fit_config(cfg, size_px: int):
    """The config that a trial renders: ``size_px`` frames, px fields scaled, a short colon."""
    k = size_px / cfg.output.size_px
    sets = [f"output.size_px={size_px}", *FIT_ANATOMY]
    for key in PX_FIELDS:
        v = _get(cfg, key)
        sets.append(f"{key}={_fmt(tuple(x * k for x in v) if isinstance(v, tuple) else v * k)}")
    return cfgmod.replace(cfg, sets)


def load_real(real: str | Path, holdout: float, max_frames: int) -> tuple[list, list]:
    """(fit, held-out) lists of (rgb (H, W, 3) uint8, mask (H, W) uint8) real frames."""
    from colonsim.data.realdata import detect_border_mask, list_images, read_image
    if not 0.0 < holdout < 1.0:
        raise InputError(f"--holdout must be between 0 and 1 (the held-out fraction), got {holdout}")
    paths = list_images(real)
    if len(paths) < 2:
        raise InputError(f"{real} holds {len(paths)} image; the fit needs at least 2 (fit + held out)")
    n_fit = min(max(1, int(round(len(paths) * (1 - holdout)))), len(paths) - 1)
    groups = []
    for part in (paths[:n_fit], paths[n_fit:]):
        step = max(1, len(part) // max_frames)
        frames = [read_image(p) for p in part[::step][:max_frames]]
        groups.append([(f, detect_border_mask(f)) for f in frames])
    return groups[0], groups[1]


# ----------------------------------------------------------------------------- the worker


class _Scorer:
    """Renders frames of configs in this process (it owns the GL context) and scores them."""

    def __init__(self, colons, size_px: int):
        self.colons, self.size_px = colons, size_px
        self._key, self._renderer = None, None

    def render(self, cfg, n: int, seed: int) -> list:
        from colonsim.render.scene import FrameRenderer
        fcfg = fit_config(cfg, self.size_px)
        key = cfgmod.to_json(fcfg.lens) + cfgmod.to_json(fcfg.tissue)
        if key != self._key:   # the lens maps and textures depend on these; light and sensor do not
            if self._renderer is not None:
                self._renderer.close()
            self._renderer, self._key = FrameRenderer(fcfg, self.colons), key
        self._renderer.set_config(fcfg)
        return [self._renderer.render(i, seed) for i in range(n)]

    def stats(self, cfg, n: int, seed: int) -> framestats.FrameStats:
        frames = self.render(cfg, n, seed)
        return framestats.set_stats([(f.rgb, f.mask) for f in frames], self.size_px)


def _search(cfg, colons, fit_stats, hold_stats, budget: int, frames: int, size_px: int, seed: int,
            timeout_s: float | None, progress: bool) -> dict:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scorer = _Scorer(colons, size_px)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(20, budget))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial({p.key: float(np.clip(centre_of(cfg, p), p.lo, p.hi)) for p in SEARCH_SPACE})

    def objective(trial):
        values = {p.key: trial.suggest_float(p.key, p.lo, p.hi) for p in SEARCH_SPACE}
        try:
            cand = apply_params(cfg, values)
        except ColonSimError as e:       # a combination the config rejects
            log.debug("trial %d rejected: %s", trial.number, e)
            return float("inf")
        return framestats.distance(scorer.stats(cand, frames, seed), fit_stats)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=budget, desc="tune", unit="trial")
    study.optimize(objective, n_trials=budget, timeout=timeout_s,
                   callbacks=[(lambda s, t: bar.update(1))] if bar else [])
    if bar:
        bar.close()
    best = apply_params(cfg, study.best_params)
    eval_seed, n_eval = seed + 1, 2 * frames
    before_stats, after_stats = scorer.stats(cfg, n_eval, eval_seed), scorer.stats(best, n_eval, eval_seed)
    show = {name: [f.rgb for f in scorer.render(c, 4, eval_seed)] for name, c in (("default", cfg), ("tuned", best))}
    return {"best_values": dict(study.best_params), "trials": len(study.trials),
            "fit_before": study.trials[0].value, "fit_after": study.best_value,
            "before": before_stats, "after": after_stats, "show": show,
            "distance_before": framestats.distance(before_stats, hold_stats),
            "distance_after": framestats.distance(after_stats, hold_stats),
            "parts_before": framestats.distance_parts(before_stats, hold_stats),
            "parts_after": framestats.distance_parts(after_stats, hold_stats)}


def _search_worker(*args) -> dict | tuple[str, str]:
    try:
        return _search(*args)
    except ColonSimError as e:
        return type(e).__name__, str(e)


# ----------------------------------------------------------------------------- the figure


def before_after_figure(path: Path, real: list, default: list, tuned: list, real_stats, before_stats,
                        after_stats, parts_before: dict, parts_after: dict) -> None:
    """PNG: rows of real, default and tuned frames ((H, W, 3) uint8 each), beside the radial
    brightness profiles and the parts of the distance before and after."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(real), len(default), len(tuned), 1)
    fig = plt.figure(figsize=(2.0 * cols + 5.0, 6.4), dpi=100)
    grid = fig.add_gridspec(3, cols + 2)
    for r, (name, imgs) in enumerate((("real (held out)", real), ("default", default), ("tuned", tuned))):
        for c, img in enumerate(imgs[:cols]):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name)
    ax = fig.add_subplot(grid[0:2, cols:])
    x = (np.arange(framestats.N_BINS) + 0.5) / framestats.N_BINS
    for name, st, style in (("real", real_stats, "k-"), ("default", before_stats, "r--"), ("tuned", after_stats, "b-")):
        ax.plot(x, st.profile, style, label=name)
    ax.set_xlabel("radius / image-circle radius"), ax.set_ylabel("mean L*"), ax.legend(fontsize=8)
    ax.set_title("radial brightness profile", fontsize=9)
    ax = fig.add_subplot(grid[2, cols:])
    names = list(parts_before)
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [parts_before[k] for k in names], 0.4, color="r", label="default")
    ax.bar(pos + 0.2, [parts_after[k] for k in names], 0.4, color="b", label="tuned")
    ax.set_xticks(pos, names, fontsize=7), ax.legend(fontsize=7)
    ax.set_title(f"distance {sum(parts_before.values()):.2f} -> {sum(parts_after.values()):.2f} (held out)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- public entry point


def tune(cfg, real: str | Path, out: str | Path, *, budget: int = 100, frames: int = 24, size_px: int = 96,
         holdout: float = 0.5, max_real: int = 48, seed: int = 0, fit_mask: bool = True,
         timeout_s: float | None = None, png: str | Path | None = None, progress: bool = True) -> dict:
    """Fit ``cfg`` to the real frames in ``real``; write the tuned config to ``out`` (YAML that
    ``colonsim render --config`` takes) and the before/after figure to ``png`` (default: beside
    ``out``). Returns distance_before/after (held-out frames), their parts, params, trials, wall_s."""
    from colonsim.run.shard import load_colons, mesh_source, rebuild_error
    from colonsim.tune.calibration import estimate_mask, fit_field_stop

    t0 = time.time()
    out = Path(out)
    if budget < 1:
        raise InputError(f"--budget must be at least 1 trial, got {budget}")
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise InputError(f"--out must be a .yaml file, got {out}")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist")
    png = Path(png) if png else out.with_suffix(".png")
    fit, hold = load_real(real, holdout, max_real)
    if fit_mask:
        stop = fit_field_stop(estimate_mask([f for f, _ in fit]) if len({f.shape for f, _ in fit}) == 1
                              else fit[0][1])
        cfg = cfgmod.replace(cfg, [f"lens.{k}={_fmt(stop[k])}" for k in ("mask", "circle_frac", "octagon_frac")])
    fit_stats = framestats.set_stats(fit, size_px)
    hold_stats = framestats.set_stats(hold, size_px)
    colons = load_colons(fit_config(cfg, size_px), mesh_source(cfg, "procedural", seed))
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with interrupt.children_ignore_sigint():   # Ctrl-C is this process's: no worker traceback
            fut = pool.submit(_search_worker, cfg, colons, fit_stats, hold_stats, budget, frames, size_px, seed,
                              timeout_s, progress)
        try:
            r = fut.result()
        except BaseException:
            interrupt.stop_pool(pool)   # the search would otherwise run on to its budget
            raise
    if isinstance(r, tuple):
        raise rebuild_error(*r)
    tuned = apply_params(cfg, r["best_values"])
    out.write_text("# colonsim tune: fitted to the real frames in " + str(real) + "\n" + cfgmod.to_yaml(tuned))
    shown = [f for f, _ in hold[::max(1, len(hold) // 4)][:4]]   # spread over the held-out videos
    before_after_figure(png, shown, r["show"]["default"], r["show"]["tuned"],
                        hold_stats, r["before"], r["after"], r["parts_before"], r["parts_after"])
    return {"distance_before": round(r["distance_before"], 4), "distance_after": round(r["distance_after"], 4),
            "parts_before": {k: round(v, 4) for k, v in r["parts_before"].items()},
            "parts_after": {k: round(v, 4) for k, v in r["parts_after"].items()},
            "fit_distance_before": round(r["fit_before"], 4), "fit_distance_after": round(r["fit_after"], 4),
            "params": {k: round(v, 5) for k, v in r["best_values"].items()},
            "distance_real_fit_vs_holdout": round(framestats.distance(fit_stats, hold_stats), 4),
            "trials": r["trials"], "n_fit": len(fit), "n_holdout": len(hold), "size_px": size_px,
            "out": str(out), "png": str(png), "wall_s": round(time.time() - t0, 1)}
