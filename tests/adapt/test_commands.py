"""`colonsim adapt ...`: bad inputs give exit status 2 and one line on stderr."""
import cv2
import h5py
import numpy as np
import pytest

import cli
from colonsim.data import schema


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
    elif kind == "16bit":   # a 16-bit depth map (16-bit colour frames are converted, as SimCol3D's)
        cv2.imwrite(str(d / "1.png"), np.full((16, 16), 30000, np.uint16))
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
                            "--out", str(tmp_path / "run"), "--set", "losses.self_reg_space=wgan"])
    assert rc == 2 and len(err) == 1 and "losses.self_reg_space" in err[0], err
    model = tmp_path / "model.pt"
    model.write_bytes(b"junk")
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(model), "--input", str(real_dir),
                            "--out", str(tmp_path / "out")])
    assert rc == 2 and len(err) == 1 and "checkpoint" in err[0], err


def test_apply_bad_input(tmp_path, capsys, synthetic_h5):
    from adapt.checkpoint import save_refiner
    from adapt.config import load_adapt_config
    from adapt.networks import Refiner

    model = tmp_path / "refiner.pt"
    save_refiner(model, Refiner(4, 1), load_adapt_config(), 0)
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(model), "--input", str(_bad_real(tmp_path, "empty")),
                            "--out", str(tmp_path / "out")])
    assert rc == 2 and len(err) == 1 and "no images" in err[0], err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- through a real process: stderr is
# exactly one line (no traceback, no ffmpeg log), and nothing already written is lost.
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv):
    """Run cli.py in a fresh process; (exit code, non-empty stderr lines)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "cli.py", *map(str, argv)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, [line for line in p.stderr.splitlines() if line.strip()]


def _assert_one_line(rc, err, *words):
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("colonsim: error:") and "Traceback" not in err[0], err
    assert "\x1b" not in err[0]
    for w in words:
        assert w in err[0], err[0]


@pytest.fixture
def refiner_pt(tmp_path):
    from adapt.checkpoint import save_refiner
    from adapt.config import load_adapt_config
    from adapt.networks import Refiner

    path = tmp_path / "refiner.pt"
    save_refiner(path, Refiner(4, 1), load_adapt_config(), 0)
    return path


def test_apply_corrupt_h5_and_unopenable_video_are_one_line(tmp_path, refiner_pt):
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 64)
    rc, err = _cli("adapt", "apply", "--model", refiner_pt, "--input", bad, "--out", tmp_path / "o.h5")
    _assert_one_line(rc, err, str(bad), "HDF5")
    assert not (tmp_path / "o.h5").exists()
    video = _bad_real(tmp_path, "video")  # not a video: OpenCV's ffmpeg would log "moov atom not found"
    rc, err = _cli("adapt", "apply", "--model", refiner_pt, "--input", video, "--out", tmp_path / "o")
    _assert_one_line(rc, err, "cannot open video")
    assert not (tmp_path / "o").exists()


def test_apply_refuses_an_existing_output_unless_overwrite(tmp_path, refiner_pt, synthetic_h5, real_dir):
    out = tmp_path / "refined.h5"
    out.write_bytes(b"an earlier result")
    rc, err = _cli("adapt", "apply", "--model", refiner_pt, "--input", synthetic_h5, "--out", out)
    _assert_one_line(rc, err, "--overwrite")
    assert out.read_bytes() == b"an earlier result"
    folder = tmp_path / "refined"
    folder.mkdir()
    (folder / "keep.png").write_bytes(b"earlier frame")
    rc, err = _cli("adapt", "apply", "--model", refiner_pt, "--input", real_dir, "--out", folder)
    _assert_one_line(rc, err, "not empty", "--overwrite")
    assert (folder / "keep.png").read_bytes() == b"earlier frame"
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []
    # --overwrite replaces both (library call: the flag is passed through as overwrite=True)
    from adapt.apply import apply
    apply(refiner_pt, synthetic_h5, out, overwrite=True)
    with h5py.File(out, "r") as f:
        assert f[schema.RGB].shape[0] == 8
    apply(refiner_pt, real_dir, folder, overwrite=True)
    # the refined frames replace those of the same names; a file it did not write stays (issue 43)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in real_dir.iterdir()), "keep.png"])
    assert (folder / "keep.png").read_bytes() == b"earlier frame"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no staging folder left


def test_apply_failing_part_way_leaves_no_output(tmp_path, capsys, refiner_pt, real_dir, synthetic_h5):
    # Folder: the third frame is unreadable, after two refined frames were written.
    (real_dir / "3.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is accepted, and stays empty after the failure
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(refiner_pt), "--input", str(real_dir),
                            "--out", str(out)])
    assert rc == 2 and len(err) == 1 and "3.png" in err[0], err
    assert list(out.iterdir()) == []
    # HDF5: a per-frame mask that does not fit the frames fails after the copy was made.
    bad = tmp_path / "badmask.h5"
    with h5py.File(synthetic_h5, "r") as a, h5py.File(bad, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for name in (schema.RGB, schema.DONE):
            b.create_dataset(name, data=a[name][()])
        b.create_dataset(schema.MASK, data=np.ones((8, 40, 41), np.uint8))
    rc, err = _run(capsys, ["adapt", "apply", "--model", str(refiner_pt), "--input", str(bad),
                            "--out", str(tmp_path / "o.h5")])
    assert rc == 2 and len(err) == 1 and "mask" in err[0], err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("o.h5")] == []
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_pickle_checkpoint_message_is_short(tmp_path, real_dir):
    evil = tmp_path / "evil.pt"
    import torch
    torch.save({"kind": "colonsim.refiner", "payload": np.random.default_rng(0)}, evil)
    rc, err = _cli("adapt", "apply", "--model", evil, "--input", real_dir, "--out", tmp_path / "o")
    _assert_one_line(rc, err, "pickled Python object", "could run code")
    assert len(err[0]) < 250 + len(str(evil)) and "WeightsUnpickler" not in err[0], err[0]


def test_train_size_sets_the_crop_side(tmp_path, capsys, real_dir, synthetic_h5):
    """`adapt train --size PX` trains on PX-px crops (data.size_px, recorded in the run's config);
    a size the config refuses is one line naming the key."""
    import yaml

    small = ["--set", "refiner.width=4", "--set", "refiner.blocks=1", "--set", "discriminator.width=4",
             "--set", "discriminator.layers=2", "--set", "data.batch_size=2", "--set", "history.size=4",
             "--set", "schedule.pretrain_refiner_steps=1", "--set", "schedule.pretrain_disc_steps=1",
             "--set", "compute.device=cpu", "--set", "compute.threads=1"]
    base = ["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5), "--steps", "1", "--json"]
    rc, err = _run(capsys, base + ["--out", str(tmp_path / "run"), "--size", "20", *small])
    assert rc == 0, err
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["data"]["size_px"] == 20
    from PIL import Image

    grid = sorted((tmp_path / "run").glob("samples_*.png"))[-1]
    assert Image.open(grid).size[1] == 4 * 20          # four rows of 20-px crops
    rc, err = _run(capsys, base + ["--out", str(tmp_path / "bad"), "--size", "4", *small])
    assert rc == 2 and len(err) == 1 and "size_px" in err[0], err
