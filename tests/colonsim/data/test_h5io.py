"""HDF5 writer, validator and reader: bit-exact round trips, chunk copy, and damaged files."""
from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from colonsim.data import h5io, schema
from colonsim.errors import DatasetError

H, W = 24, 32


def make_frame(i: int) -> SimpleNamespace:
    """A frame of random content whose values depend only on i."""
    rng = np.random.default_rng(i)
    depth = rng.uniform(2, 120, (H, W)).astype(np.float32)
    depth[:3] = 0
    return SimpleNamespace(rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8), depth=depth,
                           mask=(rng.random((H, W)) > 0.2).astype(np.uint8),
                           pose=rng.normal(size=(4, 4)).astype(np.float32),
                           intrinsics=rng.normal(size=(3, 3)).astype(np.float32),
                           params={"light_power": float(rng.random()), "mesh_id": int(i % 3)})


def create(path, n, compression="blosc-lz4", depth_dtype="float32", offset=None):
    return h5io.create(path, n, H, W, depth_dtype=depth_dtype, compression=compression,
                       compression_level=5, config_json=json.dumps({"style": "clean"}),
                       camera_json="{}", seed=7, mesh_json='"procedural"',
                       param_dtypes=h5io.param_dtypes(make_frame(0).params), frame_offset=offset)


def write(path, n, **kw):
    w = h5io.FrameWriter(create(path, n, **kw))
    for i in range(n):
        w.write(i, make_frame(i))
    w.close()


@pytest.mark.parametrize("compression", ["blosc-lz4", "zstd", "gzip", "lzf", "none"])
def test_round_trip_is_bit_exact(tmp_path, compression):
    path = tmp_path / "a.h5"
    write(path, 5, compression=compression)
    report = h5io.validate(path)
    assert report["ok"], report["errors"]
    assert report["n_done"] == 5 and report["complete"] is True
    with h5io.open_file(path) as f:
        assert f[schema.RGB].chunks == (1, H, W, 3)
        assert f[schema.PARAMS]["mesh_id"].dtype == np.int32
        for i in range(5):
            want, got = make_frame(i), h5io.read_frame(f, i)
            assert np.array_equal(got[schema.RGB], want.rgb)
            assert np.array_equal(got[schema.DEPTH], want.depth)
            assert np.array_equal(got[schema.MASK], want.mask)
            assert np.array_equal(got[schema.POSE], want.pose)
            assert got[schema.PARAMS]["mesh_id"] == want.params["mesh_id"]
            assert got[schema.PARAMS]["light_power"] == np.float32(want.params["light_power"])


def test_copy_frames_moves_compressed_chunks_exactly(tmp_path):
    write(tmp_path / "s0.h5", 3)
    w = h5io.FrameWriter(create(tmp_path / "s1.h5", 2, offset=3))
    for j in range(2):
        w.write(j, make_frame(3 + j))
    w.close()
    with create(tmp_path / "all.h5", 5) as dst:
        for name, start in (("s0.h5", 0), ("s1.h5", 3)):
            with h5io.open_file(tmp_path / name) as src:
                h5io.copy_frames(src, dst, start)
        h5io.finish(dst)
    assert h5io.validate(tmp_path / "all.h5")["ok"]
    with h5io.open_file(tmp_path / "all.h5") as f:
        for i in range(5):
            assert np.array_equal(f[schema.DEPTH][i], make_frame(i).depth)
            assert np.array_equal(f[schema.RGB][i], make_frame(i).rgb)


def test_incomplete_file_fails_validation(tmp_path):
    path = tmp_path / "part.h5"
    w = h5io.FrameWriter(create(path, 4))
    w.write(0, make_frame(0))
    w.close()
    report = h5io.validate(path)
    assert not report["ok"] and report["n_done"] == 1
    assert "incomplete: 1 of 4" in report["errors"][0]


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "a.h5"
    write(path, 4)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        h5io.validate(cut)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        h5io.validate(garbage)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["rgb"] = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(DatasetError, match="not a ColonSim dataset"):
        h5io.validate(foreign)


def test_wrong_shape_and_dtype_are_reported(tmp_path):
    path = tmp_path / "a.h5"
    write(path, 3)
    with h5py.File(path, "a") as f:
        del f[schema.POSE]
        f[schema.POSE] = np.zeros((3, 4, 4), np.float64)
        f.attrs[schema.ATTR_N_FRAMES] = 3
    report = h5io.validate(path)
    assert not report["ok"] and any("'pose' has dtype float64" in e for e in report["errors"])


def test_frames_written_after_the_last_flush_stay_not_done(tmp_path):
    path = tmp_path / "crash.h5"
    w = h5io.FrameWriter(create(path, 4))
    for i in range(3):
        w.write(i, make_frame(i))
        if i == 1:
            w.flush()
    w.f.close()  # as if the process died here: frame 2's data may be there, but it is not done
    with h5io.open_file(path) as f:
        assert f[schema.DONE][()].tolist() == [1, 1, 0, 0]
        assert np.array_equal(f[schema.POSE][1], make_frame(1).pose)
        assert not f.attrs[schema.ATTR_COMPLETE]


def test_background_sync_during_writes_keeps_every_frame(tmp_path):
    # fdatasync runs in a thread while frames are still being written; one sync at a time, and
    # the file closes (after wait) with every frame intact.
    p = tmp_path / "f.h5"
    w = h5io.FrameWriter(create(p, 12))
    sync = h5io.BackgroundSync(w.f)
    assert isinstance(sync.fd, int)
    for i in range(12):
        w.write(i, make_frame(i))
        sync.kick()
        first = sync.thread
        sync.kick()
        assert sync.thread is first or not first.is_alive()   # one sync at a time
    sync.wait()
    assert sync.thread is None
    w.close()
    with h5py.File(p, "r") as f:
        for i in range(12):
            assert np.array_equal(f[schema.RGB][i], make_frame(i).rgb)
            assert np.array_equal(f[schema.DEPTH][i], make_frame(i).depth)
        assert f[schema.DONE][()].all() and f.attrs[schema.ATTR_COMPLETE]
