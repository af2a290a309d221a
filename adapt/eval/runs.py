"""The summary over several runs of the adaptation benchmark (:func:`adapt.eval.protocol.run`): each
run's scores, their mean and standard error (``benchmarks/adapt_runs.py`` prints it).

One run's ``acc_refined`` is already the mean over its classifier seeds, but its seed also draws the
match's tone distributions, the refiner's start and the classifier seeds themselves, and runs that
differ only in their seed differ by more than their classifier seeds' spread suggests: report the
mean over a few seeds, with its standard error (the runs' standard deviation over the square root
of their number). ``refined_minus_matched`` is each run's acc_refined minus its acc_matched, the
paired comparison of the learned refiner with the match on the same draws; ``refined_minus_input``
is what the refiner did to its own input where it was given part of the match.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from colonsim.errors import InputError

#: The scores summarized, in the order printed.
KEYS = ("acc_raw", "acc_matched", "acc_input", "acc_refined", "refined_minus_matched", "refined_minus_input",
        "acc_structure", "self_reg_l1",
        "changed_frac", "changed_frac_square", "shift_square", "shift_rim")
#: Keys printed with a sign.
SIGNED = ("refined_minus_matched", "refined_minus_input", "shift_square", "shift_rim")


def load(work: Path) -> dict:
    """One run's results.json, with its folder; InputError with a one-line reason otherwise."""
    path = work / "results.json"
    if not path.is_file():
        raise InputError(f"{work}: no results.json (is it the --work folder of a finished adapt_quality.py run?)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or "acc_refined" not in data:
        raise InputError(f"{path}: has no acc_refined; not an adapt_quality.py result")
    out = {"work": str(work), **data}
    if all(isinstance(data.get(k), (int, float)) for k in ("acc_refined", "acc_matched")):
        out["refined_minus_matched"] = float(data["acc_refined"]) - float(data["acc_matched"])
    if all(isinstance(data.get(k), (int, float)) for k in ("acc_refined", "acc_input")):
        out["refined_minus_input"] = float(data["acc_refined"]) - float(data["acc_input"])
    return out


def summarize(runs: list[dict]) -> dict:
    """{"runs": [...], "mean": {key: mean}, "sem": {key: standard error}, "n": runs}; keys that some run
    lacks are left out of the mean."""
    mean, sem = {}, {}
    for k in KEYS:
        vals = [float(r[k]) for r in runs if isinstance(r.get(k), (int, float))]
        if len(vals) != len(runs) or not vals:
            continue
        mean[k] = round(statistics.mean(vals), 4)
        if len(vals) > 1:
            sem[k] = round(statistics.stdev(vals) / math.sqrt(len(vals)), 4)
    rows = [{"work": r["work"], "steps": r.get("adversarial_steps"), **{k: r.get(k) for k in KEYS}} for r in runs]
    return {"runs": rows, "mean": mean, "sem": sem, "n": len(runs)}


def table(summary: dict) -> str:
    """The summary as a Markdown table: one row per run, then the mean (± standard error)."""
    keys = [k for k in KEYS if k in summary["mean"]]
    fmt = lambda k, v: f"{float(v):+.3f}" if k in SIGNED else f"{float(v):.3f}"  # noqa: E731
    lines = ["| run | adversarial steps | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for r in summary["runs"]:
        cells = ["" if r.get(k) is None else fmt(k, r[k]) for k in keys]
        lines.append(f"| {r['work']} | {r['steps'] if r['steps'] is not None else ''} | " + " | ".join(cells) + " |")
    cells = [f"**{fmt(k, summary['mean'][k])}**" + (f" ± {summary['sem'][k]:.3f}" if k in summary["sem"] else "")
             for k in keys]
    lines.append(f"| mean of {summary['n']} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)
