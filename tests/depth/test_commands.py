"""The depth commands through cli.main: results, and one stderr line with exit code 2 for bad input."""
import json

import cv2
import numpy as np
import pytest
import torch

import cli
from depth import networks


def _run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse rejects a flag by exiting
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colonsim: error:"), err
    for w in words:
        assert w in lines[0], lines[0]


def test_train_eval_json(capsys, tiny_h5, tiny_val_h5, tmp_path):
    code, out, _ = _run(capsys, "depth", "train", "--data", str(tiny_h5), "--out", str(tmp_path / "run"),
                        "--steps", "2", "--size", "32", "--set", "model.base_width=8", "--set", "model.levels=2",
                        "--set", "train.batch=4", "--set", "compute.device=cpu", "--json")
    assert code == 0 and json.loads(out)["steps"] == 2
    code, out, _ = _run(capsys, "depth", "eval", "--model", str(tmp_path / "run" / "model.pt"),
                        "--data", str(tiny_val_h5), "--align", "median", "--json")
    r = json.loads(out)
    assert code == 0 and r["n"] == 8 and r["align"] == "median"
    assert {"abs_rel", "sq_rel", "rmse_mm", "rmse_log", "delta1", "delta2", "delta3", "l1_mm",
            "median_rel"} <= set(r["metrics"])


def test_resume_through_the_cli_keeps_the_runs_config(capsys, tiny_h5, tmp_path):
    run = str(tmp_path / "run")
    small = ["--set", "model.base_width=8", "--set", "model.levels=2", "--set", "train.batch=4",
             "--set", "compute.device=cpu", "--size", "32"]
    code, _, err = _run(capsys, "depth", "train", "--data", str(tiny_h5), "--out", run, "--steps", "1", *small)
    assert code == 0, err
    # --resume alone continues with the run's config.yaml, not the defaults (base_width 16, 128 px)
    code, out, err = _run(capsys, "depth", "train", "--out", run, "--resume", "--steps", "2", "--json")
    assert code == 0 and json.loads(out)["steps"] == 2, err
    assert json.loads(out)["config"]["model"]["base_width"] == 8
    code, _, err = _run(capsys, "depth", "train", "--out", run, "--resume", "--set", "train.lr=0.1")
    _assert_one_line_error(code, err, "train.lr", "--resume")
    code, _, err = _run(capsys, "depth", "train", "--data", str(tiny_h5), "--out", run, *small)
    _assert_one_line_error(code, err, "already holds a run", "--resume", "--out")


def test_eval_has_no_refiner_without_the_composition(capsys):
    """depth/ alone knows no refiner: the flag comes from experiment.compose, which cli registers."""
    import argparse

    from depth import commands

    parser = argparse.ArgumentParser()
    commands.add_parsers(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["depth", "eval", "--model", "m.pt", "--data", "d.h5", "--refiner", "r.pt"])
    capsys.readouterr()


def test_checkpoint_of_another_package_is_refused(capsys, tiny_val_h5, tmp_path):
    torch.save({"kind": "colonsim.refiner", "model": {}}, tmp_path / "refiner.pt")
    code, _, err = _run(capsys, "depth", "eval", "--model", str(tmp_path / "refiner.pt"), "--data", str(tiny_val_h5))
    _assert_one_line_error(code, err, "colonsim.refiner")


def test_checkpoint_with_a_pickle_payload_is_refused(capsys, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"kind": networks.KIND, "model": Payload()}, tmp_path / "evil.pt")
    code, out, err = _run(capsys, "depth", "export", "--model", str(tmp_path / "evil.pt"),
                          "--out", str(tmp_path / "x.pt"))
    _assert_one_line_error(code, err, "pickled Python object", "evil.pt")
    assert "payload ran" not in out


def test_folder_without_images(capsys, tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames here")
    code, _, err = _run(capsys, "depth", "predict", "--model", str(tiny_model), "--input", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "out"))
    _assert_one_line_error(code, err, "no images")
    code, _, err = _run(capsys, "depth", "eval", "--model", str(tiny_model), "--data", str(tmp_path / "empty"))
    _assert_one_line_error(code, err, "no images")


def test_ground_truth_of_a_mismatched_size(capsys, tiny_model, tmp_path):
    cv2.imwrite(str(tmp_path / "f.png"), np.full((32, 40, 3), 120, np.uint8))
    cv2.imwrite(str(tmp_path / "f_depth.png"), np.full((16, 20), 1000, np.uint16))
    code, _, err = _run(capsys, "depth", "eval", "--model", str(tiny_model), "--data", str(tmp_path),
                        "--depth-scale", "simcol3d")
    _assert_one_line_error(code, err, "same size", "f_depth.png")


@pytest.mark.parametrize("argv, words", [
    (["--align", "mean"], ["invalid choice"]),
    (["--depth-scale", "furlongs"], ["depth-scale"]),
])
def test_bad_flags(capsys, tiny_model, tiny_val_h5, argv, words):
    code, _, err = _run(capsys, "depth", "eval", "--model", str(tiny_model), "--data", str(tiny_val_h5), *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert all(w in err for w in words)


def test_bad_config_key_names_it(capsys, tiny_h5, tmp_path):
    code, _, err = _run(capsys, "depth", "train", "--data", str(tiny_h5), "--out", str(tmp_path / "r"),
                        "--set", "train.bogus=1")
    _assert_one_line_error(code, err, "train.bogus")


def test_train_on_missing_or_corrupt_data_leaves_no_run_folder(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 64)
    for data, words in ((tmp_path / "missing.h5", ["missing.h5", "not found", "expected a ColonSim HDF5"]),
                        (corrupt, ["corrupt.h5", "not a readable HDF5", "expected a ColonSim HDF5"])):
        p = subprocess.run([sys.executable, "cli.py", "depth", "train", "--data", str(data),
                            "--out", str(tmp_path / "dr")], cwd=root, capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
        err = [line for line in p.stderr.splitlines() if line.strip()]
        _assert_one_line_error(p.returncode, p.stderr, *words)
        assert len(err) == 1 and "Traceback" not in p.stderr
        assert not (tmp_path / "dr").exists()


def test_random_bytes_are_not_called_a_pickle_payload(capsys, tmp_path):
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 512, np.uint8).tobytes())
    code, _, err = _run(capsys, "depth", "export", "--model", str(tmp_path / "noise.pt"),
                        "--out", str(tmp_path / "x.pt"))
    _assert_one_line_error(code, err, "not a readable checkpoint", "corrupt")
    assert not (tmp_path / "x.pt").exists()
