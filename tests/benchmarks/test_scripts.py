"""Every script under benchmarks/ starts (its imports and arguments are not broken), the cheap ones
print their numbers at a tiny size, and bad input ends in one line with exit status 2."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "common.py")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=BENCH.parent, env=env)


def test_every_script_is_tested_here():
    """A new benchmark script is added to this list, so that its --help runs in CI."""
    assert len(SCRIPTS) >= 13 and "render_throughput.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    r = _run(str(BENCH / script), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and script in r.stdout


@pytest.mark.parametrize("args, pattern", [
    (["mesh_generation.py", "--triangles", "20000", "--repeats", "1"],
     r"generate_colon triangles=20,\d{3} length_mm=\d+ best_s=\d+\.\d+"),
    (["trajectory_speed.py", "--frames", "5"], r"\d+\.\d+ ms CPU/pose independent"),
    (["sensor_speed.py", "--frames", "2", "--size", "64"], r"ms CPU/frame fused \d+\.\d+ \| numpy \d+\.\d+"),
])
def test_cheap_scripts_print_their_numbers(args, pattern):
    r = _run(str(BENCH / args[0]), *args[1:])
    assert r.returncode == 0, r.stderr
    assert re.search(pattern, r.stdout), r.stdout


def test_bad_input_is_one_line_and_exit_2():
    r = _run(str(BENCH / "mesh_generation.py"), "--triangles", "5000", "--repeats", "1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "mesh_generation.py: error: config key 'anatomy.triangles': value 5000 is out of range; "
        "allowed [20000, 500000]"]
