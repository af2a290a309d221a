"""The automatic fit: parameter mapping, a tiny end-to-end fit through the CLI, and bad input."""
from __future__ import annotations

import json
import socket

import cv2
import numpy as np
import pytest

import cli
from colonsim import config as cfgmod
from colonsim.simconfig import load_sim_config
from colonsim.tune import fit as tunemod


@pytest.fixture
def main(monkeypatch):
    if "colonsim.commands.tune" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "colonsim.commands.tune"))
    return cli.main


def _fake_real(folder, n=6, size=(80, 70)):
    """Frames with a black border, a reddish radial falloff and noise (what the fit reads)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    w, h = size
    v, u = np.mgrid[0:h, 0:w]
    r = np.hypot(u - (w - 1) / 2, v - (h - 1) / 2) / (h / 2)
    for i in range(n):
        base = (1 - 0.6 * r**2)[..., None] * [200, 110, 80] + rng.normal(0, 3, (h, w, 3))
        img = np.clip(base, 0, 255).astype(np.uint8) * (r <= 0.95)[..., None].astype(np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), img[..., ::-1])
    return folder


def test_apply_params_centres_ranges_and_keeps_their_spread():
    cfg = load_sim_config("realistic")
    lo, hi = cfg.light.mu
    out = tunemod.apply_params(cfg, {"light.mu": 4.0, "lens.vignetting": 0.5, "sensor.gamma": 2.5})
    assert np.mean(out.light.mu) == pytest.approx(4.0)
    assert out.light.mu[1] - out.light.mu[0] == pytest.approx(hi - lo)
    assert out.lens.vignetting == 0.5 and out.sensor.tone_curve == "gamma" and out.sensor.gamma == 2.5


def test_fit_config_scales_pixel_sized_values_to_the_analysis_size():
    cfg = load_sim_config("realistic")
    small = tunemod.fit_config(cfg, cfg.output.size_px // 4)
    assert small.output.size_px == cfg.output.size_px // 4
    np.testing.assert_allclose(small.sensor.defocus_sigma_px, np.array(cfg.sensor.defocus_sigma_px) / 4)


def test_tiny_fit_writes_a_config_that_render_loads(tmp_path, main, capsys):
    real = _fake_real(tmp_path / "real")
    out = tmp_path / "tuned.yaml"
    rc = main(["tune", "--real", str(real), "--budget", "3", "--frames", "2", "--size", "32", "--max-real", "3",
               "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) >= {"distance_before", "distance_after", "params"}
    assert r["trials"] == 3 and r["fit_distance_after"] <= r["fit_distance_before"]
    assert set(r["params"]) == {p.key for p in tunemod.SEARCH_SPACE}
    loaded = load_sim_config(path=out)            # what `colonsim render --config tuned.yaml` resolves
    assert np.mean(loaded.light.mu) == pytest.approx(r["params"]["light.mu"], abs=1e-4)
    assert loaded.lens.mask == "round"            # the field stop was fitted to the (round) real frames
    assert cv2.imread(r["png"]) is not None


@pytest.mark.parametrize("case", ["missing", "empty", "calibration"])
def test_bad_input_exits_2_with_one_line(tmp_path, main, capsys, case):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "calib.yaml"
    bad.write_text("model: fisheye\nK: [[100, 0, 50], [0, 100, 50], [0, 0, 1]]\nimage_size: [-5, 100]\nD: [0, 0, 0, 0]\n")
    args = {"missing": ["--real", str(tmp_path / "nope")], "empty": ["--real", str(tmp_path / "empty")],
            "calibration": ["--real", str(tmp_path / "empty"), "--camera", str(bad)]}[case]
    rc = main(["tune", *args, "--out", str(tmp_path / "t.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert {"missing": "not found", "empty": "no images", "calibration": "image size"}[case] in err[0]


def test_port_in_use_exits_2_with_one_line(tmp_path, main, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc = main(["tune", "--ui", "--port", str(port), "--out", str(tmp_path / "t.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(port) in err[0]


def test_saved_config_round_trips_through_the_loader(tmp_path):
    cfg = tunemod.apply_params(load_sim_config("realistic"), {"tissue.albedo_r": 0.5})
    p = tmp_path / "c.yaml"
    p.write_text(cfgmod.to_yaml(cfg))
    assert load_sim_config(path=p) == cfg
