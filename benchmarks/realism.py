"""How real do renders look? A real-versus-render classifier on held-out CVC-ColonDB videos.

    python benchmarks/realism.py [--folds 0 1 2 3] [--styles realistic photoreal] [--frames 400] [--size 256]

CVC-ColonDB (Bernal et al. 2012) holds 15 videos in 379 frames; ``--block 95`` splits it into four
folds of whole videos, as ``adapt_quality.py --block 95 --fold K`` does. For each fold K the
held-out quarter is the test set; the other three quarters are the only frames that anything is
built from: the texture bank of ``photoreal`` (``colonsim textures``) and its tuned light, sensor,
tissue and view settings (``colonsim tune``, ``--tune-budget`` trials). Each style renders
``--frames`` frames at ``--size`` px (``realistic`` once, since nothing in it depends on the fold),
and :func:`adapt.eval.realism.realism` reports the classifier's balanced accuracy of held-out real
frames against the renders over ten classifier seeds (0.5: indistinguishable), and the same on
the layout alone (``acc_structure``). Prints one table row per (fold, style) and writes
``results.json`` in ``--work``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "cvc-colondb"
STYLES = ("realistic", "photoreal")


def render(style: str, out: Path, frames: int, size: int, seed: int, workers: int, overrides: list[str],
           config: Path | None = None) -> float:
    from colonsim import load_sim_config, render_dataset

    if out.exists():
        return 0.0
    cfg = load_sim_config(style, config, overrides=[*overrides, f"output.size_px={size}"])
    t0 = time.perf_counter()
    render_dataset(cfg, out, frames, seed=seed, workers=workers, progress=False)
    return time.perf_counter() - t0


def tune_fold(fold: Path, train: Path, overrides: list[str], budget: int, seed: int) -> tuple[Path, dict]:
    """Tune ``photoreal`` (with ``overrides``) to the fold's training frames; the tuned config and the
    tuner's distances (its own held-out part of the training frames, and the real-vs-real floor)."""
    from colonsim import load_sim_config
    from colonsim.tune.fit import tune

    out = fold / "tuned.yaml"
    result = fold / "tune.json"
    if not result.exists():
        r = tune(load_sim_config("photoreal", overrides=overrides), train, out, budget=budget, size_px=64,
                 seed=seed, progress=False)
        result.write_text(json.dumps(r))
    r = json.loads(result.read_text())
    return out, {"tune_distance_before": r["distance_before"], "tune_distance_after": r["distance_after"],
                 "tune_floor": r["distance_real_fit_vs_holdout"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL, help="folder of real frames (CVC-ColonDB)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "realism", help="work folder")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    ap.add_argument("--frames", type=int, default=400, help="renders per style (and fold)")
    ap.add_argument("--size", type=int, default=256, help="render side, px")
    ap.add_argument("--repeats", type=int, default=10, help="classifier seeds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="render seed")
    ap.add_argument("--tune-budget", type=int, default=100, help="photoreal: tuner trials per fold (0: no tuning)")
    ap.add_argument("--cues", action="store_true", help="also the classifier on one cue at a time")
    ap.add_argument("--no-bank", action="store_true",
                    help="photoreal without a texture bank (the procedural texture): what the bank adds")
    args = ap.parse_args()

    from adapt.eval.protocol import split_real
    from adapt.eval.realism import realism
    from colonsim.data.realdata import list_images

    list_images(args.real)   # a missing or empty folder: one line before any work or output
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.machine()}, {os.cpu_count()} cpus; {args.frames} renders at {args.size} px per style; "
          f"classifier: {args.repeats} seeds", flush=True)
    print("| fold | held-out real | style | real vs render | layout alone |", flush=True)
    print("|---|---|---|---|---|", flush=True)
    rows = []
    for k in args.folds:
        fold = args.work / f"fold{k}"
        train, held, n_train, n_held = split_real(args.real, fold, 0.25, 95, k)
        for style in args.styles:
            overrides, tuned, tuning = [], None, {}
            if style == "photoreal" and not args.no_bank:
                from colonsim.tune.textures import build_bank

                bank = fold / "bank.h5"
                if not bank.exists():
                    build_bank(train, bank)
                overrides = [f"tissue.texture_bank={bank}"]
            if style == "photoreal" and args.tune_budget > 0:
                tuned, tuning = tune_fold(fold, train, overrides, args.tune_budget, args.seed)
            name = style + ("" if args.no_bank or style != "photoreal" else "_bank") + ("_tuned" if tuned else "")
            out = (fold if tuned or "_bank" in name else args.work) / f"{name}.h5"
            render(style, out, args.frames, args.size, args.seed, args.workers, overrides, tuned)
            r = realism(held, out, repeats=args.repeats, cues=args.cues)
            rows.append({"fold": k, "style": name, "n_train": n_train, **tuning, **r})
            cues = "  " + json.dumps(r["cues"]) if args.cues else ""
            print(f"| {k} | {n_held} | {name} | {r['acc']:.3f} | {r['acc_structure']:.3f} |{cues}", flush=True)
    for name in dict.fromkeys(r["style"] for r in rows):
        accs = [r["acc"] for r in rows if r["style"] == name]
        floors = [r["acc_structure"] for r in rows if r["style"] == name]
        print(f"| mean | | {name} | {sum(accs) / len(accs):.3f} | {sum(floors) / len(floors):.3f} |")
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from common import run

    run(main)
