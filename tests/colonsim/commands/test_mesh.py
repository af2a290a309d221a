"""``colonsim mesh``: writing and measuring from the command line; bad input exits 2 with one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cli

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["--set", "anatomy.segments=[transverse]", "--set", "anatomy.max_length_mm=150",
         "--set", "anatomy.triangles=20000"]


def test_mesh_writes_the_mesh_and_its_centreline_then_measures_it(tmp_path, capsys):
    out = tmp_path / "colon.ply"
    assert cli.main(["mesh", "--out", str(out), "--seed", "3", *SMALL]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: 20,") and "150 mm centreline" in line
    with np.load(tmp_path / "colon.centerline.npz") as z:
        assert z["points_mm"].shape[1] == 3 and len(z["segment"]) == len(z["points_mm"])
        assert np.all(z["radius_mm"] > 10)
    assert cli.main(["mesh", "--measure", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert abs(result["triangles"] - 20_000) <= 500
    assert result["length_mm"] == pytest.approx(150.0, abs=1.0)
    assert set(result["radius_mm"]) >= {"p10", "p50", "p90"} and "fold_spacing_mm" in result


def test_config_file_sets_anatomy_keys(tmp_path, capsys):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("anatomy:\n  segments: [caecum]\n  max_length_mm: 60\n  triangles: 20000\n")
    assert cli.main(["mesh", "--out", str(tmp_path / "c.obj"), "--config", str(cfg), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["length_mm"] == pytest.approx(60.0, abs=1.0)
    assert result["config"]["segments"] == ["caecum"]


def _bad_centreline(tmp_path):
    p = tmp_path / "line.json"
    p.write_text(json.dumps({"points": [[0, 0], [1, 1]]}))
    return p


def _ply(tmp_path):
    cli.main(["mesh", "--out", str(tmp_path / "ok.ply"), *SMALL])
    return tmp_path / "ok.ply"


@pytest.mark.parametrize("args, needle", [
    (lambda d: ["mesh", "--out", str(d / "c.ply"), "--set", "anatomy.no_such=1"], "anatomy.no_such"),
    (lambda d: ["mesh", "--out", str(d / "c.ply"), "--set", "anatomy.triangles=1000"], "anatomy.triangles"),
    (lambda d: ["mesh", "--out", str(d / "c.stl")], ".stl"),
    (lambda d: ["mesh", "--measure", str(d / "missing.ply")], "not found"),
    (lambda d: ["mesh", "--measure", str(d / "empty.obj")], "no triangles"),
    (lambda d: ["mesh", "--measure", str(_ply(d)), "--centerline", str(_bad_centreline(d))], "(M, 3)"),
    (lambda d: ["mesh", "--measure", str(d / "empty.obj"), "--scale", "0"], "scale"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    (tmp_path / "empty.obj").write_text("# nothing\n")
    argv = args(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_subprocess_bad_set_key_one_stderr_line_no_traceback(tmp_path):
    run = subprocess.run([sys.executable, "cli.py", "mesh", "--out", str(tmp_path / "c.ply"),
                          "--set", "anatomy.radius_mm.rectum=500"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "anatomy.radius_mm.rectum" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "c.ply").exists()
