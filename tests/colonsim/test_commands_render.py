"""The render, inspect and preview commands: summaries, and one-line errors with exit status 2."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import trimesh

import cli
from colonsim.generate import MANIFEST, parts_dir

N = 4
SMALL = ["--size", "32", "--seed", "3", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "tissue.texture_px=64"]


def run_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting bad input: exit 2 and exactly one line on stderr, which is returned."""
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith(("INFO", "DEBUG"))]
    assert len(err) == 1, err
    assert err[0].startswith("colonsim: error:")
    return err[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "data.h5"
    assert cli.main(["render", "--out", str(out), "--frames", str(N), *SMALL]) == 0
    return out


def test_render_summary_and_inspect(finished, capsys):
    assert cli.main(["inspect", str(finished), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["n_frames"] == N and report["height"] == 32
    assert report["fields"]["rgb"]["compression"] == "blosc"
    assert "mesh_id" in report["params"] and report["depth_min_mm"] > 0
    assert cli.main(["inspect", str(finished)]) == 0
    assert capsys.readouterr().out.startswith(f"{finished}: ok, {N} frames 32x32")


def test_bad_render_input_is_one_line_exit_2(finished, tmp_path, capsys):
    base = ["render", "--frames", str(N), *SMALL]
    assert "exists" in run_error(capsys, [*base, "--out", str(finished)])
    assert "frames" in run_error(capsys, ["render", "--out", str(tmp_path / "a.h5"), "--frames", "0"])
    assert "unknown style" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--style", "nope"])
    assert "lens.fov_deg" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--set", "lens.fov_deg=0"])
    narrow = tmp_path / "straw.ply"
    trimesh.creation.cylinder(radius=1.5, height=200, sections=24).export(narrow)
    assert "mesh" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--mesh", str(narrow)])
    assert not (tmp_path / "a.h5").exists() and not parts_dir(tmp_path / "a.h5").exists()


def test_resume_refuses_other_settings_and_foreign_or_corrupt_files(finished, tmp_path, capsys):
    base = ["render", "--out", str(finished), "--frames", str(N), *SMALL, "--resume"]
    assert "seed" in run_error(capsys, [*base, "--seed", "4"])
    assert "light.mu" in run_error(capsys, [*base, "--set", "light.mu=1.5"])
    assert "n_frames" in run_error(capsys, ["render", "--out", str(finished), "--frames", "5", *SMALL, "--resume"])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["rgb"] = np.zeros((1, 2, 2, 3), np.uint8)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(500))
    data = finished.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    for bad in (foreign, garbage, cut):
        args = ["render", "--out", str(bad), "--frames", str(N), *SMALL, "--resume"]
        assert "ColonSim" in run_error(capsys, args) or "HDF5" in run_error(capsys, args)
        assert "error" in run_error(capsys, ["inspect", str(bad)])
    stray = tmp_path / "stray.h5"
    parts_dir(stray).mkdir()
    (parts_dir(stray) / MANIFEST).write_text("{not json")
    assert "render in progress" in run_error(capsys, ["render", "--out", str(stray), "--frames", str(N),
                                                      *SMALL, "--resume"])
    assert "not finished" in run_error(capsys, ["inspect", str(stray)])
