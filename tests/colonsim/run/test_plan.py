"""``colonsim plan``: a measured calibration extrapolated to N frames, consistent with a real render."""
from __future__ import annotations

import json
import math

import pytest

import cli

SMALL = ["--size", "32", "--quiet", "--set", "anatomy.path=straight", "--set", "anatomy.max_length_mm=200",
         "--set", "anatomy.triangles=20000", "--set", "tissue.texture_px=64", "--set", "output.shard_frames=4"]


@pytest.fixture(autouse=True)
def plan_command(monkeypatch):
    if "colonsim.commands.plan" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(cli.COMMAND_MODULES) + ("colonsim.commands.plan",))


def test_plan_extrapolates_the_calibration_and_matches_a_real_render(tmp_path, capsys):
    capsys.readouterr()
    n = 10_000_000
    argv = ["plan", "--frames", str(n), "--workers", "2", "--calibration-frames", "4", "--json",
            *[a for a in SMALL if a != "--quiet"]]
    assert cli.main(argv) == 0
    p = json.loads(capsys.readouterr().out)
    node = p["nodes"][0]
    assert node["workers"] == 2 and node["fps"] > 0 and node["calibration_frames"] == 4
    assert p["shards"] == math.ceil(n / 4) and p["shard_frames"] == 4
    assert p["storage_bytes"] == pytest.approx(n * p["bytes_per_frame"], rel=1e-4)
    assert p["peak_storage_bytes"] == pytest.approx(2 * p["storage_bytes"], rel=1e-6)
    assert p["render_hours"] == pytest.approx(n / (2 * node["fps"]) / 3600, rel=1e-6)
    assert p["node_hours"] == pytest.approx(p["render_hours"], rel=1e-6)  # one node
    # The bytes per frame of the plan are those of a real rendered file of the same config (the
    # file adds a fixed overhead: attributes with the config, the small per-frame datasets).
    out = tmp_path / "d.h5"
    assert cli.main(["render", "--out", str(out), "--frames", "16", *SMALL]) == 0
    per_frame = out.stat().st_size / 16
    assert 0.5 * per_frame < p["bytes_per_frame"] < 1.5 * per_frame, (p["bytes_per_frame"], per_frame)


def test_plan_bad_input_is_one_line_exit_2(capsys):
    capsys.readouterr()
    assert cli.main(["plan", "--frames", "0", "--size", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frames" in err[0]
