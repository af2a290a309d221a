"""``colonsim adapt pick``: keeping the renders whose layout is nearest the real frames'."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import cli
from adapt.data import open_frames
from adapt.eval.pick import POOL_INDEX, layouts, pick, pick_indices
from colonsim.data import h5io, schema

# A short straight tube at 48 px: enough frames with different views to pick from.
SMALL = ["--size", "48", "--seed", "3", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "tissue.texture_px=64", "--set", "trajectory.wall_view_probability=0.5"]


@pytest.fixture(scope="module")
def pool_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pick") / "pool.h5"
    assert cli.main(["render", "--out", str(out), "--frames", "20", *SMALL]) == 0
    return out


def _real_like(pool: Path, idx: list[int], folder: Path) -> Path:
    """Frames ``idx`` of the pool, darker and tinted as a real scope's might be, as PNGs."""
    folder.mkdir()
    with h5py.File(pool) as f:
        for i in idx:
            rgb = f[schema.RGB][i].astype(np.float32) * np.array([0.6, 0.45, 0.35])
            cv2.imwrite(str(folder / f"{i:03d}.png"), rgb.round().astype(np.uint8)[..., ::-1])
    return folder


def test_pick_indices_take_turns_each_taking_its_nearest_free_row():
    pool = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0], [50.0]])
    real = np.array([[0.2], [10.4]])
    keep, ranks = pick_indices(real, pool, 4, seed=0)
    assert sorted(keep[:2]) == [0, 3]               # first round: each its nearest
    assert sorted(keep.tolist()) == [0, 1, 3, 4]      # second round: each its next nearest
    assert ranks.tolist() == [0, 0, 1, 1]
    assert len(set(pick_indices(real, pool, 7, seed=1)[0].tolist())) == 7   # all, none twice
    # two real frames with the same nearest row: the second in turn takes its next
    keep, ranks = pick_indices(np.array([[0.1], [0.2]]), pool, 2, seed=0)
    assert sorted(keep.tolist()) == [0, 1] and sorted(ranks.tolist()) == [0, 1]
    # ten real frames alike: past their first sorted candidates (4 * (n // R + 1) + 16 = 420 each),
    # all taken by the others, each sorts its whole row and goes on with the nearest free one
    big = np.arange(2000, dtype=np.float64)[:, None]
    keep, ranks = pick_indices(np.zeros((10, 1)), big, 1000, seed=0)
    assert sorted(keep.tolist()) == list(range(1000)) and ranks.max() >= 900
    for n in (0, 8):
        with pytest.raises(Exception, match="cannot pick"):
            pick_indices(real, pool, n)


def test_layouts_keep_the_layout_and_drop_brightness_colour_and_size(pool_h5, tmp_path):
    frames = open_frames(pool_h5)
    base = layouts(frames)
    assert base.shape == (20, 256)
    assert np.allclose(base.mean(1), 0, atol=1e-4)

    class Changed:   # darker, tinted and twice the size: the same layout
        def __len__(self):
            return len(frames)

        def get(self, i):
            rgb, mask = frames.get(i)
            rgb = cv2.resize((rgb * np.array([0.5, 0.4, 0.3])).astype(np.uint8), None, fx=2, fy=2)
            return rgb, cv2.resize(mask, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)

    changed = layouts(Changed())
    d = ((changed[:, None] - base[None]) ** 2).sum(-1)
    assert (d.argmin(1) == np.arange(20)).all()        # each frame is still nearest itself
    assert np.median(np.diag(d)) < 0.1 * np.median(d)  # and much nearer than the others


def test_pick_keeps_the_frames_that_show_what_the_real_ones_show(pool_h5, tmp_path):
    real = _real_like(pool_h5, [2, 9, 15], tmp_path / "real")
    out = tmp_path / "picked.h5"
    r = pick(real, pool_h5, out, 3, seed=4)
    assert r["frames"] == 3 and r["pool_frames"] == 20 and r["real_frames"] == 3
    assert h5io.validate(out)["ok"]
    with h5py.File(out) as g, h5py.File(pool_h5) as f:
        idx = g[schema.PARAMS][POOL_INDEX][()]
        assert sorted(idx.tolist()) == [2, 9, 15]
        for j, i in enumerate(idx):
            np.testing.assert_array_equal(g[schema.RGB][j], f[schema.RGB][i])
            np.testing.assert_array_equal(g[schema.DEPTH][j], f[schema.DEPTH][i])
            np.testing.assert_array_equal(g[schema.POSE][j], f[schema.POSE][i])
            for k in f[schema.PARAMS]:
                assert g[schema.PARAMS][k][j] == f[schema.PARAMS][k][i]
        assert g.attrs[schema.ATTR_CONFIG] == f.attrs[schema.ATTR_CONFIG]
        assert g.attrs[schema.ATTR_COMPLETE]
        assert json.loads(g.attrs["picked_from"])["n_real"] == 3
    # more frames than real ones: the picks grow around the same views, none twice
    r = pick(real, pool_h5, tmp_path / "more.h5", 9, seed=4)
    with h5py.File(tmp_path / "more.h5") as g:
        idx = g[schema.PARAMS][POOL_INDEX][()]
    assert len(set(idx.tolist())) == 9 and {2, 9, 15} <= set(idx.tolist())


def test_pick_from_an_interrupted_render_keeps_finished_frames_by_their_pool_index(pool_h5, tmp_path):
    """Unfinished frames (``done`` 0) are no candidates, and picks name the pool's own rows: frame
    3 is the third finished one when frame 0 is unfinished, and must still be written as frame 3."""
    pool = tmp_path / "interrupted.h5"
    pool.write_bytes(pool_h5.read_bytes())
    with h5py.File(pool, "r+") as f:
        f[schema.DONE][0] = 0
        f[schema.DONE][11] = 0
    real = _real_like(pool_h5, [0, 3, 9, 15], tmp_path / "real")   # frame 0's twin is unfinished
    r = pick(real, pool, tmp_path / "picked.h5", 4, seed=1)
    assert r["pool_frames"] == 18 and r["pool_rows"] == 20
    with h5py.File(tmp_path / "picked.h5") as g, h5py.File(pool_h5) as f:
        idx = g[schema.PARAMS][POOL_INDEX][()]
        assert {3, 9, 15} <= set(idx.tolist()) and not {0, 11} & set(idx.tolist())
        for j, i in enumerate(idx):
            np.testing.assert_array_equal(g[schema.RGB][j], f[schema.RGB][i])
            np.testing.assert_array_equal(g[schema.DEPTH][j], f[schema.DEPTH][i])
    with pytest.raises(Exception, match="which has 18 rendered of 20"):
        pick(real, pool, tmp_path / "all.h5", 20)


def _run(capsys, args):
    rc = cli.main(args)
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_pick_bad_inputs_are_one_line_and_exit_2(pool_h5, tmp_path, capsys):
    from ..conftest import synthetic_frames, write_h5

    real = _real_like(pool_h5, [1, 5], tmp_path / "real")
    rgb, _, mask = synthetic_frames(4, 40, seed=0)
    no_depth = write_h5(tmp_path / "no_depth.h5", rgb, None, mask)
    empty = tmp_path / "empty"
    empty.mkdir()
    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"not hdf5")
    cases = [
        (["--real", str(real), "--pool", str(tmp_path / "missing.h5"), "--frames", "2"], "not found"),
        (["--real", str(real), "--pool", str(not_h5), "--frames", "2"], "not"),
        (["--real", str(real), "--pool", str(real), "--frames", "2"], "not a ColonSim HDF5"),
        (["--real", str(empty), "--pool", str(pool_h5), "--frames", "2"], "no images"),
        (["--real", str(tmp_path / "nowhere"), "--pool", str(pool_h5), "--frames", "2"], "not found"),
        (["--real", str(real), "--pool", str(no_depth), "--frames", "2"], "no 'depth' dataset"),
        (["--real", str(real), "--pool", str(pool_h5), "--frames", "0"], "cannot keep 0"),
        (["--real", str(real), "--pool", str(pool_h5), "--frames", "21"], "which has 20"),
    ]
    for i, (args, words) in enumerate(cases):
        out = tmp_path / f"o{i}.h5"
        rc, err = _run(capsys, ["adapt", "pick", *args, "--out", str(out)])
        assert rc == 2 and len(err) == 1 and words in err[0], (args, err)
        assert not out.exists()
    kept = tmp_path / "kept.h5"
    kept.write_bytes(b"earlier work")
    rc, err = _run(capsys, ["adapt", "pick", "--real", str(real), "--pool", str(pool_h5), "--frames", "2",
                            "--out", str(kept)])
    assert rc == 2 and len(err) == 1 and "--overwrite" in err[0]
    assert kept.read_bytes() == b"earlier work"
    rc, _ = _run(capsys, ["adapt", "pick", "--real", str(real), "--pool", str(pool_h5), "--frames", "2",
                          "--out", str(kept), "--overwrite", "--json"])
    assert rc == 0 and h5io.validate(kept)["ok"]
    assert sorted(h5py.File(kept)[schema.PARAMS][POOL_INDEX][()].tolist()) == [1, 5]
