"""Tissue textures from a texture bank: seamless tiles, renders that change shading only, and the
same frames for any number of workers."""
from __future__ import annotations

import h5py
import hdf5plugin  # noqa: F401  (the rgb dataset's compression filter)
import numpy as np
import pytest

import cli
from colonsim.render import texbank
from tests.colonsim.tune.test_textures import PATCH, write_folder

SMALL = ["--size", "32", "--seed", "3", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "tissue.texture_px=64"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    d = tmp_path_factory.mktemp("bank")
    out = d / "bank.h5"
    assert cli.main(["textures", "--real", str(write_folder(d / "real", n=3)), "--out", str(out), *PATCH]) == 0
    return out


def _line_steps(img: np.ndarray) -> np.ndarray:
    """Mean |step| of log albedo across each horizontal line of a tile wrapped once (row i to i + 1,
    the last line being the wrap), (n,)."""
    log = np.log(np.maximum(img, 1e-3))
    return np.abs(np.diff(np.concatenate([log, log[:1]]), axis=0)).max(-1).mean(axis=1)


def test_synthesized_tile_has_no_seams(bank):
    b = texbank.load_bank(bank)
    n = 128
    a = texbank.synthesize(b, n, np.random.default_rng(0))
    assert a.shape == (n, n, 3) and np.isfinite(a).all()
    # The bank's own contrast: the largest neighbour step of log albedo inside its patches.
    logp = np.log(np.maximum(b.patches / texbank.PATCH_SCALE, 1e-3))
    patch_max = max(np.abs(np.diff(logp, axis=1)).max(), np.abs(np.diff(logp, axis=2)).max())
    for tile in (a, a.transpose(1, 0, 2)):   # rows, then columns
        steps = _line_steps(tile)
        # Across the wrap (tile edge) as across any line inside it; splat edges fade out (no step
        # anywhere above the patches' own contrast).
        assert steps[-1] < 1.5 * np.median(steps[:-1])
        log = np.log(np.maximum(tile, 1e-3))
        assert np.abs(np.diff(np.concatenate([log, log[:1]]), axis=0)).max() <= patch_max
    # The same test sees a seam: patches pasted side by side, with no blending.
    p = b.patches.shape[1]
    k = n // p
    pasted = (b.patches[np.arange(k * k) % len(b.patches)] / texbank.PATCH_SCALE).reshape(k, k, p, p, 3).transpose(0, 2, 1, 3, 4)
    steps = _line_steps(pasted.reshape(k * p, k * p, 3))
    assert steps[p - 1::p].min() > 1.5 * np.median(np.delete(steps, np.s_[p - 1::p]))
    # The encoded texture: relative albedo around 0.5 (the mean), bumps in alpha.
    tex = texbank.encode(a)
    assert tex.dtype == np.uint8 and tex.shape == (n, n, 4)
    assert np.allclose(tex[..., :3].reshape(-1, 3).mean(axis=0), 127.5, atol=3)
    assert 100 < tex[..., 3].mean() < 155 and tex[..., 3].std() > 10


def test_synthesis_is_a_pure_function_of_the_rng(bank):
    b = texbank.load_bank(bank)
    t1 = texbank.make_texture(bank, 64, np.random.default_rng(5))
    assert np.array_equal(t1, texbank.make_texture(bank, 64, np.random.default_rng(5)))
    assert not np.array_equal(t1, texbank.make_texture(bank, 64, np.random.default_rng(6)))
    assert b is texbank.load_bank(bank)   # cached


def _read(path):
    with h5py.File(path) as f:
        return f["rgb"][...], f["depth"][...]


@pytest.fixture(scope="module")
def bank_render(bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "one.h5"
    argv = ["render", "--out", str(out), "--frames", "4", *SMALL, "--set", f"tissue.texture_bank={bank}"]
    assert cli.main([*argv, "--workers", "1"]) == 0
    return argv, _read(out)


def test_bank_changes_shading_not_depth(bank_render, tmp_path):
    plain = tmp_path / "plain.h5"
    assert cli.main(["render", "--out", str(plain), "--frames", "4", *SMALL, "--workers", "1"]) == 0
    rgb0, depth0 = _read(plain)
    rgb1, depth1 = bank_render[1]
    assert not np.array_equal(rgb0, rgb1)
    assert np.array_equal(depth0, depth1)                # the bank changes shading, never depth


def test_bank_render_same_for_1_and_2_workers(bank_render, tmp_path):
    argv, (rgb1, depth1) = bank_render
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(tmp_path / "two.h5")
    assert cli.main([*argv, "--workers", "2"]) == 0
    rgb2, depth2 = _read(tmp_path / "two.h5")
    assert np.array_equal(rgb1, rgb2) and np.array_equal(depth1, depth2)


def test_missing_bank_is_one_line_exit_2(tmp_path, capsys):
    capsys.readouterr()
    argv = ["render", "--out", str(tmp_path / "x.h5"), "--frames", "1", *SMALL,
            "--set", f"tissue.texture_bank={tmp_path / 'nope.h5'}"]
    assert cli.main(argv) == 2
    err = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith(("INFO", "DEBUG"))]
    assert len(err) == 1 and "texture bank not found" in err[0]
