"""`colonsim adapt ...`: bad inputs give exit status 2 and one line on stderr."""
import h5py
import numpy as np
import cv2
import pytest

import cli
from colonsim import schema


def _run(capsys, args):
    rc = cli.main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def _bad_real(tmp_path, kind):
    d = tmp_path / "real"
    d.mkdir()
    if kind == "empty":
        return d
    if kind == "unreadable":
        (d / "1.png").write_bytes(b"\x89PNG broken")
    elif kind == "grayscale":
        cv2.imwrite(str(d / "1.png"), np.full((16, 16), 100, np.uint8))
    elif kind == "16bit":
        cv2.imwrite(str(d / "1.png"), np.full((16, 16, 3), 30000, np.uint16))
    elif kind == "video":
        v = tmp_path / "clip.mp4"
        v.write_bytes(b"\x00\x01 not a video" * 10)
        return v
    return d


@pytest.mark.parametrize("kind,words", [("empty", "no images"), ("unreadable", "cannot read"),
                                        ("grayscale", "grayscale"), ("16bit", "16-bit"),
                                        ("video", "cannot open video")])
def test_train_bad_real_input(tmp_path, capsys, synthetic_h5, kind, words):
    real = _bad_real(tmp_path, kind)
    rc, err = _run(capsys, ["adapt", "train", "--real", str(real), "--synthetic", str(synthetic_h5),
                            "--out", str(tmp_path / "run"), "--steps", "1"])
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("colonsim: error:") and words in err[0]


def test_train_synthetic_without_rgb(tmp_path, capsys, real_dir):
    p = tmp_path / "norgb.h5"
    with h5py.File(p, "w") as f:
        f.attrs[schema.ATTR_SOFTWARE] = schema.SOFTWARE
        f.create_dataset(schema.DEPTH, data=np.zeros((2, 8, 8), np.float32))
        f.create_dataset(schema.DONE, data=np.ones(2, np.uint8))
    rc, err = _run(capsys, ["adapt", "train", "--real", str(real_dir), "--synthetic", str(p),
                            "--out", str(tmp_path / "run")])
    assert rc == 2 and len(err) == 1 and "no 'rgb'" in err[0], err


def test_bad_config_key_and_bad_model(tmp_path, capsys, real_dir, synthetic_h5):
    rc, err = _run(capsys, ["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5),
                            "--out", str(tmp_path / "run"), "--set", "losses.adv=wgan"])
    assert rc == 2 and len(err) == 1 and "losses.adv" in err[0], err
    model = tmp_path / "model.pt"
    model.write_bytes(b"junk")
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(model), "--input", str(real_dir),
                            "--out", str(tmp_path / "out")])
    assert rc == 2 and len(err) == 1 and "checkpoint" in err[0], err


def test_apply_bad_input(tmp_path, capsys, synthetic_h5):
    from adapt.checkpoint import refiner_checkpoint, save_checkpoint
    from adapt.config import load_adapt_config
    from adapt.networks import Refiner

    model = tmp_path / "refiner.pt"
    save_checkpoint(refiner_checkpoint(Refiner(4, 1), load_adapt_config(), 0), model)
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(model), "--input", str(_bad_real(tmp_path, "empty")),
                            "--out", str(tmp_path / "out")])
    assert rc == 2 and len(err) == 1 and "no images" in err[0], err
    assert not (tmp_path / "out").exists()
