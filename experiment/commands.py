"""`colonsim experiment` and `colonsim demo`."""
from __future__ import annotations

from pathlib import Path

from colonsim.commands.common import add_config_args, add_json_arg


def _summary(results: dict, out: Path) -> tuple[str, dict]:
    h = results["headline"]
    line = (f"report: {out / 'report.html'} | abs_rel raw {h['raw_abs_rel']:.3f} -> adapted "
            f"{h['adapted_abs_rel']:.3f} ({h['ratio']:.2f}x, intervals "
            f"{'separated' if h['intervals_separated'] else 'overlap'}; claim "
            f"{'met' if h['claim_met'] else 'not met'}) in {results['wall_s'] / 60:.1f} min")
    return line, {"report": str(out / "report.html"), "results": str(out / "results.json"), **h}


def _experiment(args) -> tuple[str, dict]:
    from experiment.pipeline import load_experiment_config, run_experiment

    cfg = load_experiment_config(args.config, args.overrides)
    return _summary(run_experiment(cfg, args.out), Path(args.out))


def _demo(args) -> tuple[str, dict]:
    from experiment.pipeline import load_experiment_config, run_experiment

    cfg = load_experiment_config(args.config, args.overrides, preset="quick" if args.quick else "demo")
    return _summary(run_experiment(cfg, args.out), Path(args.out))


def add_parsers(sub) -> None:
    p = sub.add_parser("experiment", help="the paper's experiment: raw vs adapted depth, with baselines and a report")
    p.add_argument("--out", required=True, metavar="RUN/", help="run folder (stages are cached; rerun to resume)")
    add_config_args(p)
    add_json_arg(p)
    p.set_defaults(func=_experiment)

    p = sub.add_parser("demo", help="the whole pipeline at small scale with a built-in config, and a report")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="the smallest config (2.8 min on 2 CPU cores, measured)")
    add_config_args(p)
    add_json_arg(p)
    p.set_defaults(func=_demo)
