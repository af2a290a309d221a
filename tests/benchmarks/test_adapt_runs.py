"""benchmarks/adapt_runs.py and adapt_quality.py as scripts: the summary over several runs, and
the one-line refusals before any work."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "adapt_runs.py"


@pytest.fixture(scope="module")
def adapt_runs():
    """The summary's library module (the script prints it)."""
    from adapt.eval import runs

    return runs


def _run(tmp_path: Path, name: str, **scores) -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "results.json").write_text(json.dumps({"adversarial_steps": 100, **scores}))
    return work


def test_mean_and_standard_error(tmp_path, adapt_runs):
    a = _run(tmp_path, "a", acc_raw=1.0, acc_refined=0.60, acc_matched=0.62)
    b = _run(tmp_path, "b", acc_raw=0.98, acc_refined=0.70, acc_matched=0.64)
    s = adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(b)])
    assert s["n"] == 2
    assert s["mean"]["acc_refined"] == pytest.approx(0.65)
    assert s["mean"]["acc_raw"] == pytest.approx(0.99)
    # two runs 0.1 apart: sample sd 0.1/sqrt(2), standard error 0.05
    assert s["sem"]["acc_refined"] == pytest.approx(0.05)
    assert s["sem"]["acc_matched"] == pytest.approx(0.02 / math.sqrt(2) / math.sqrt(2))
    # a score that one run lacks is not averaged over the others
    assert "acc_structure" not in s["mean"]
    t = adapt_runs.table(s)
    assert t.splitlines()[-1].startswith("| mean of 2 |") and "**0.650** ± 0.050" in t


def test_refined_against_matched_is_paired_by_run(tmp_path, adapt_runs):
    """Two seeds whose luck moves both scores together: the paired difference has a small standard
    error though each score's own spread is large."""
    a = _run(tmp_path, "a", acc_refined=0.62, acc_matched=0.61)
    b = _run(tmp_path, "b", acc_refined=0.70, acc_matched=0.68)
    c = _run(tmp_path, "c", acc_refined=0.66)   # no match score: no difference, and none averaged
    s = adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(b)])
    assert s["mean"]["refined_minus_matched"] == pytest.approx(0.015)
    assert s["sem"]["refined_minus_matched"] == pytest.approx(0.005)
    assert s["sem"]["acc_refined"] == pytest.approx(0.04)
    rows = adapt_runs.table(s).splitlines()
    assert "+0.010" in rows[2] and "+0.020" in rows[3] and "**+0.015** ± 0.005" in rows[-1]
    assert "refined_minus_matched" not in adapt_runs.load(c)
    # a run whose refiner was given part of the match: what the refiner did on its own, paired too
    d = _run(tmp_path, "d", acc_refined=0.60, acc_matched=0.58, acc_input=0.85)
    assert adapt_runs.load(d)["refined_minus_input"] == pytest.approx(-0.25)
    assert "refined_minus_input" not in adapt_runs.load(a)
    assert "-0.250" in adapt_runs.table(adapt_runs.summarize([adapt_runs.load(d)]))
    assert "refined_minus_matched" not in adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(c)])["mean"]


def test_cli_prints_json_and_rejects_bad_folders(tmp_path):
    a = _run(tmp_path, "a", acc_raw=0.99, acc_refined=0.66)
    ok = subprocess.run([sys.executable, str(SCRIPT), str(a), "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["mean"]["acc_refined"] == pytest.approx(0.66)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    for bad in (tmp_path / "missing", tmp_path / "bad"):
        r = subprocess.run([sys.executable, str(SCRIPT), str(a), str(bad)], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr


def test_adapt_quality_refuses_missing_renders_or_real_frames_in_one_line(tmp_path, synthetic_h5, real_dir):
    r = subprocess.run([sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
                        "--train-synthetic", str(tmp_path / "none.h5"), "--real", str(real_dir),
                        "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "none.h5" in r.stderr
    assert not (tmp_path / "w" / "real_train").exists()   # nothing was split, matched or trained
    r = subprocess.run([sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
                        "--real", str(tmp_path / "no_frames"), "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no_frames" in r.stderr


def test_adapt_quality_refuses_a_pick_or_fold_it_cannot_make_in_one_line(tmp_path, synthetic_h5, real_dir):
    base = [sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
            "--real", str(real_dir), "--block", "1", "--minutes", "0.01"]
    cases = ((["--pick", "9"], "which has 8"), (["--pick", "0"], "cannot keep 0"),
             (["--pick-train", "4"], "--pick-train needs --train-synthetic"), (["--fold", "4"], "--fold 4: choose 0..3"))
    for i, (extra, words) in enumerate(cases):
        work = tmp_path / f"w{i}"
        r = subprocess.run([*base, *extra, "--work", str(work)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
        assert not (work / "run").exists() and not list(work.glob("*picked.h5"))   # nothing trained or kept


def test_adapt_quality_refuses_a_wrong_config_key_or_match_step_in_one_line_before_any_work(tmp_path, synthetic_h5, real_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("refiner: {widht: 16}\n")
    base = [sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
            "--real", str(real_dir), "--block", "1", "--minutes", "0.01"]
    cases = ((["--config", str(bad)], "refiner.widht"), (["--set", "refiner.width=wide"], "refiner.width"),
             (["--config", str(tmp_path / "none.yaml")], "none.yaml"),
             (["--match-steps", "highlights"], "--match-steps needs --match"),
             (["--match", "--match-steps", "highlights,blur"], "--match-steps must be one or more of"),
             (["--select"], "not a finished run"), (["--control", "10"], "not a finished run"))
    for i, (extra, words) in enumerate(cases):
        work = tmp_path / f"w{i}"
        r = subprocess.run([*base, *extra, "--work", str(work)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
        assert not work.exists()   # nothing split, matched or trained
