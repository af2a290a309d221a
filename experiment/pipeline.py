"""The paper's experiment end to end, every stage cached and resumable.

Stages (each writes into the run folder and records ``stages/<name>.json`` with a hash of its
inputs; a stage whose record matches is skipped, one whose inputs changed is redone):

1. render ``train_clean.h5`` (clean style, procedural colons) and the other synthetic sets:
   ``real_like.h5`` (realistic style, other seeds; the refiner's "real" domain, depth unused),
   ``test_real.h5`` (realistic style, held-out seeds, with depth), ``train_realistic.h5`` (upper bound),
   and ``test_ct.h5`` from the CT colon when configured and present;
2. train depth on the clean set (``depth_clean/``);
3. train the reverse refiner, real-like -> clean (``adapt_reverse/``);
4. evaluate depth on the test set, raw and adapted, with bootstrap confidence intervals;
5. baselines: depth trained on realistic-style data (upper bound), the forward direction
   (clean refined to look realistic, then depth trained on it), and the training-free reference
   (the test frames through ``adapt match`` to the clean set, ``test_matched.h5``, and through its
   highlight inpainting alone, ``test_inpainted.h5``);
6. a qualitative panel on real frames without depth, and ``report.html`` + ``results.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from colonsim import config as cfgmod

from .compose import refiner_artifact, refiner_transform
from .config import ExperimentConfig, RenderSet

log = logging.getLogger(__name__)

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse_mm", "rmse_log", "delta1", "delta2", "delta3", "l1_mm", "median_rel")


def load_experiment_config(path: str | Path | None = None, overrides=(), preset: str | None = None) -> ExperimentConfig:
    """The experiment config: a preset from ``assets/experiments`` (``full`` unless named), then the
    user's file (which may give only the keys it changes), then ``--set``."""
    defaults = [cfgmod.assets_path("experiments", f"{preset or 'full'}.yaml")]
    return cfgmod.load(ExperimentConfig, defaults, path, overrides)


def _key(inputs: dict, path=str) -> str:
    """The hash of a stage's inputs; ``path`` writes each Path in them."""
    def default(o):
        return path(o) if isinstance(o, Path) else str(o)
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=default).encode()).hexdigest()


class Stages:
    """Runs named stages once; a stage is redone only when its inputs (a JSON-able dict) change.

    A Path among the inputs that lies inside the run folder counts by its place in the folder, so a
    moved run folder keeps its cache; records of earlier versions, keyed by the path as given, still
    count.
    """

    def __init__(self, run: Path):
        self.root = run
        self.dir = run / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _in_run(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else str(p)

    def run(self, name: str, inputs: dict, fn: Callable[[bool], Any]) -> Any:
        key = _key(inputs, self._in_run)
        rec = self.dir / f"{name}.json"
        started = self.dir / f"{name}.started"
        if rec.exists() and json.loads(rec.read_text()).get("key") in (key, _key(inputs)):
            log.info("stage %s: cached", name)
            return json.loads(rec.read_text()).get("result")
        # An interrupted stage with the same inputs resumes; anything else starts afresh.
        changed = not (started.exists() and started.read_text() == key)
        if changed and rec.exists():
            log.info("stage %s: inputs changed, redoing it", name)
        rec.unlink(missing_ok=True)
        started.write_text(key)
        t0 = time.perf_counter()
        log.info("stage %s: running", name)
        result = fn(changed)
        tmp = rec.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "inputs": inputs, "result": result,
                                   "wall_s": time.perf_counter() - t0}, default=str))
        tmp.replace(rec)
        return result


def _render(cfg: ExperimentConfig, rs: RenderSet, out: Path, redo: bool, mesh: str = "procedural",
            frames: int | None = None) -> dict:
    from colonsim.run.generate import render_dataset
    from colonsim.simconfig import load_sim_config

    sim = load_sim_config(rs.style, None, [f"output.size_px={cfg.size_px}", *rs.sim_set])
    return render_dataset(sim, out, frames or rs.frames, seed=rs.seed, workers=cfg.workers, mesh=mesh,
                          resume=not redo, overwrite=redo, progress=True)


def _train_depth(cfg: ExperimentConfig, data: list[Path], out: Path, redo: bool) -> dict:
    from depth.config import load_depth_config
    from depth.train import train_depth

    dcfg = load_depth_config(None, [f"data.size_px={cfg.size_px}", *cfg.depth.config_set])
    if redo:
        _clear(out)
    return train_depth(dcfg, data, out, resume=(out / "last.pt").exists(), steps=cfg.depth.steps)


def _train_refiner(cfg: ExperimentConfig, direction: str, real: Path, synthetic: Path, out: Path,
                   redo: bool) -> dict:
    from adapt.config import load_adapt_config
    from adapt.train import train_refiner

    acfg = load_adapt_config(None, [f"direction={direction}", f"data.size_px={cfg.size_px}", *cfg.adapt.config_set])
    if redo:
        _clear(out)
    return train_refiner(acfg, real, synthetic, out, resume=(out / "last.pt").exists(), steps=cfg.adapt.steps)


def _clear(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def _evaluate(model: Path, data: Path, refiner: Path | None, cfg: ExperimentConfig) -> dict:
    """depth eval of ``data``, each frame through the ``refiner`` first when one is given."""
    from depth.evaluate import evaluate

    transform = None if refiner is None else refiner_transform(refiner)
    return evaluate(model, data, transform=transform, align=cfg.eval.align, max_depth_mm=cfg.eval.max_depth_mm)


def run_experiment(cfg: ExperimentConfig, out: str | Path) -> dict:
    """Run (or finish) the experiment in ``out``; returns the results dict written to results.json."""
    from . import panels, stats

    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(cfgmod.to_yaml(cfg))
    st = Stages(run)
    c = cfgmod.to_dict(cfg)
    t0 = time.perf_counter()

    sets = {"train_clean": cfg.train, "real_like": cfg.real_like, "test_real": cfg.test}
    if cfg.baselines:
        sets["train_realistic"] = cfg.train_realistic
    paths = {name: run / f"{name}.h5" for name in sets}
    for name, rs in sets.items():
        st.run(f"render_{name}", {"set": cfgmod.to_dict(rs), "size": cfg.size_px},
               lambda redo, rs=rs, name=name: _render(cfg, rs, paths[name], redo))
    tests = {"test_real": paths["test_real"]}
    ct = Path(cfg.ct_mesh) if cfg.ct_mesh else None
    if ct is not None and cfg.ct_frames > 0:
        if ct.exists():
            paths["test_ct"] = run / "test_ct.h5"
            ct_ply = run / "ct_colon.ply"
            st.run("import_ct", {"mesh": str(ct), "scale": cfg.ct_scale, "centerline": cfg.ct_centerline},
                   lambda redo: _import_ct(ct, cfg, ct_ply))
            st.run("render_test_ct", {"set": cfgmod.to_dict(cfg.test), "mesh": str(ct), "n": cfg.ct_frames,
                                      "size": cfg.size_px, "scale": cfg.ct_scale, "centerline": cfg.ct_centerline},
                   lambda redo: _render(cfg, cfg.test, paths["test_ct"], redo, mesh=str(ct_ply),
                                        frames=cfg.ct_frames))
            tests["test_ct"] = paths["test_ct"]
        else:
            log.warning("CT mesh %s not found: the test set has procedural colons only", ct)

    depth_clean = run / "depth_clean"
    st.run("depth_clean", {"train": c["train"], "depth": c["depth"], "size": cfg.size_px},
           lambda redo: _train_depth(cfg, [paths["train_clean"]], depth_clean, redo))
    real_domain = Path(cfg.real_folder) if cfg.real_folder else paths["real_like"]
    rev = run / "adapt_reverse"
    st.run("adapt_reverse", {"real": real_domain, "real_like": c["real_like"], "train": c["train"],
                             "adapt": c["adapt"], "size": cfg.size_px},
           lambda redo: _train_refiner(cfg, "reverse", real_domain, paths["train_clean"], rev, redo))

    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"config": c, "tests": {}}
    per_image: dict[str, dict] = {}
    for tname, tpath in tests.items():
        raw = _evaluate(depth_clean / "model.pt", tpath, None, cfg)
        ada = _evaluate(depth_clean / "model.pt", tpath, refiner_artifact(rev), cfg)
        per_image[tname] = {"raw": raw["per_image"], "adapted": ada["per_image"]}
        results["tests"][tname] = {
            "raw": stats.summarize(raw["per_image"], METRIC_KEYS, rng, n_boot=cfg.eval.bootstrap),
            "adapted": stats.summarize(ada["per_image"], METRIC_KEYS, rng, n_boot=cfg.eval.bootstrap),
            "adapted_over_raw_abs_rel": stats.paired_bootstrap_ratio(
                [m["abs_rel"] for m in raw["per_image"]], [m["abs_rel"] for m in ada["per_image"]], rng,
                n_boot=cfg.eval.bootstrap),
        }
    results["raw"] = results["tests"]["test_real"]["raw"]
    results["adapted"] = results["tests"]["test_real"]["adapted"]
    results["baselines"] = {}
    if cfg.baselines:
        depth_real = run / "depth_realistic"
        st.run("depth_realistic", {"train": c["train_realistic"], "depth": c["depth"], "size": cfg.size_px},
               lambda redo: _train_depth(cfg, [paths["train_realistic"]], depth_real, redo))
        ub = _evaluate(depth_real / "model.pt", paths["test_real"], None, cfg)
        results["baselines"]["upper_bound_trained_on_realistic"] = stats.summarize(
            ub["per_image"], METRIC_KEYS, rng, n_boot=cfg.eval.bootstrap)
        fwd = run / "adapt_forward"
        st.run("adapt_forward", {"real": real_domain, "real_like": c["real_like"], "train": c["train"],
                                 "adapt": c["adapt"],
                                 "size": cfg.size_px},
               lambda redo: _train_refiner(cfg, "forward", real_domain, paths["train_clean"], fwd, redo))
        paths["train_forward"] = run / "train_forward.h5"
        st.run("apply_forward", {"real": real_domain, "real_like": c["real_like"], "adapt": c["adapt"],
                                 "train": c["train"], "size": cfg.size_px},
               lambda redo: _apply(refiner_artifact(fwd), paths["train_clean"], paths["train_forward"]))
        depth_fwd = run / "depth_forward"
        st.run("depth_forward", {"real": real_domain, "real_like": c["real_like"], "train": c["train"],
                                 "adapt": c["adapt"], "depth": c["depth"], "size": cfg.size_px},
               lambda redo: _train_depth(cfg, [paths["train_forward"]], depth_fwd, redo))
        fw = _evaluate(depth_fwd / "model.pt", paths["test_real"], None, cfg)
        results["baselines"]["forward_simgan_trained_on_refined_clean"] = stats.summarize(
            fw["per_image"], METRIC_KEYS, rng, n_boot=cfg.eval.bootstrap)
        # The training-free reference (adapt match): the test frames with their highlights inpainted
        # and the clean set's defocus, tone distribution and colour, then its first step alone (the
        # highlights inpainted, nothing else), read by the same depth network as raw and adapted.
        # The stages rerun when the match's steps change.
        from adapt.eval.match import HIGHLIGHT_LEVEL, HIGHLIGHT_MAX_FRAC
        from adapt.eval.match import STEPS as MATCH_STEPS
        raw_abs_rel = [m["abs_rel"] for m in per_image["test_real"]["raw"]]
        for stage, name, baseline, ratio, steps in (
                ("match_test_real", "test_matched", "matched_training_free", "matched_over_raw_abs_rel",
                 MATCH_STEPS),
                ("inpaint_test_real", "test_inpainted", "highlights_inpainted_training_free",
                 "inpainted_over_raw_abs_rel", ("highlights",))):
            out = paths[name] = run / f"{name}.h5"
            st.run(stage, {"train": c["train"], "test": c["test"], "size": cfg.size_px, "steps": list(steps),
                           "highlight_level": HIGHLIGHT_LEVEL, "highlight_max_frac": HIGHLIGHT_MAX_FRAC},
                   lambda redo, out=out, steps=steps: _match(paths["train_clean"], paths["test_real"], out, steps))
            ev = _evaluate(depth_clean / "model.pt", out, None, cfg)
            results["baselines"][baseline] = stats.summarize(ev["per_image"], METRIC_KEYS, rng,
                                                             n_boot=cfg.eval.bootstrap)
            results["tests"]["test_real"][ratio] = stats.paired_bootstrap_ratio(
                raw_abs_rel, [m["abs_rel"] for m in ev["per_image"]], rng, n_boot=cfg.eval.bootstrap)

    results["wall_s"] = time.perf_counter() - t0
    results["headline"] = _headline(results)
    (run / "results.json").write_text(json.dumps(results, indent=2, default=float))
    panels.write_report(run, cfg, results, paths, per_image)
    return results


def _import_ct(ct: Path, cfg: ExperimentConfig, out: Path) -> dict:
    """The CT colon in mm with its centreline, saved as PLY + centreline npz for the renderer."""
    from colonsim.anatomy.meshio import load_colon, save_colon

    centerline = ct / cfg.ct_centerline if cfg.ct_centerline else None
    colon = load_colon(ct, scale=cfg.ct_scale, centerline=centerline)
    save_colon(colon, out)
    return {"mesh": str(out), "triangles": int(len(colon.mesh.faces))}


def _apply(model: Path, src: Path, dst: Path) -> dict:
    from adapt.apply import apply

    dst.unlink(missing_ok=True)
    return apply(model, src, dst)


def _match(synthetic: Path, src: Path, dst: Path, steps) -> dict:
    from adapt.eval.match import match

    dst.unlink(missing_ok=True)
    return match(synthetic, src, dst, steps=steps)


def _headline(results: dict) -> dict:
    raw, ada = results["raw"], results["adapted"]
    ratio = ada["abs_rel"] / max(raw["abs_rel"], 1e-12)
    separated = ada["abs_rel_ci"][1] < raw["abs_rel_ci"][0]
    return {"raw_abs_rel": raw["abs_rel"], "adapted_abs_rel": ada["abs_rel"], "ratio": ratio,
            "claim_met": bool(ratio <= 0.8 and separated), "intervals_separated": bool(separated)}
