"""FrameDataset over files written by the HDF5 writer: exact tensors, partial files, fresh processes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from colonsim.data import h5io, schema
from colonsim.data.dataset import FrameDataset
from colonsim.errors import DatasetError

ROOT = Path(__file__).resolve().parents[3]
H, W = 16, 20


def make_frame(i: int) -> SimpleNamespace:
    """A frame of random content whose values depend only on i."""
    rng = np.random.default_rng(i)
    return SimpleNamespace(rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                           depth=rng.uniform(2, 120, (H, W)).astype(np.float32),
                           mask=(rng.random((H, W)) > 0.2).astype(np.uint8),
                           pose=np.eye(4, dtype=np.float32), intrinsics=np.eye(3, dtype=np.float32),
                           params={"light_power": float(rng.random())})


def create(path, n, compression="blosc-lz4", depth_dtype="float32"):
    return h5io.create(path, n, H, W, depth_dtype=depth_dtype, compression=compression,
                       compression_level=5, config_json=json.dumps({}), camera_json="{}", seed=1,
                       mesh_json="{}", param_dtypes={"light_power": "float32"})


def write(path, n, **kw):
    w = h5io.FrameWriter(create(path, n, **kw))
    for i in range(n):
        w.write(i, make_frame(i))
    w.close()


def test_items_are_the_written_frames_as_chw_tensors(tmp_path):
    path = tmp_path / "a.h5"
    write(path, 4)
    ds = FrameDataset(path)
    assert len(ds) == 4
    item = ds[2]
    want = make_frame(2)
    assert item[schema.RGB].shape == (3, H, W) and item[schema.RGB].dtype == torch.float32
    assert torch.equal(item[schema.RGB], torch.from_numpy(want.rgb).permute(2, 0, 1).float() / 255)
    assert torch.equal(item[schema.DEPTH], torch.from_numpy(want.depth)[None])
    assert torch.equal(item[schema.MASK], torch.from_numpy(want.mask.astype(np.float32))[None])
    assert int(item["index"]) == 2


def test_only_done_frames_are_served_and_files_concatenate(tmp_path):
    part = tmp_path / "part.h5"
    w = h5io.FrameWriter(create(part, 5))
    for i in (0, 3):
        w.write(i, make_frame(i))
    w.close()
    full = tmp_path / "full.h5"
    write(full, 2)
    ds = FrameDataset([part, full], fields=(schema.DEPTH,))
    assert len(ds) == 4
    depths = [ds.read(i)[schema.DEPTH] for i in range(4)]
    for got, i in zip(depths, (0, 3, 0, 1)):
        assert np.array_equal(got, make_frame(i).depth)
    assert len(FrameDataset([part, full], indices=[3, 1])) == 2


def test_float16_depth_reads_as_float32_mm(tmp_path):
    path = tmp_path / "h.h5"
    write(path, 1, depth_dtype="float16")
    d = FrameDataset(path).read(0)[schema.DEPTH]
    assert d.dtype == np.float32
    assert np.allclose(d, make_frame(0).depth, rtol=1e-3)


def test_a_fresh_process_reads_blosc_files_through_the_dataset_alone(tmp_path):
    path = tmp_path / "a.h5"
    write(path, 2, compression="blosc-lz4")
    code = ("import sys; from colonsim.data.dataset import FrameDataset; "
            "print(float(FrameDataset(sys.argv[1])[1]['depth'].sum()))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert float(out.stdout) == pytest.approx(float(make_frame(1).depth.sum()), rel=1e-6)


def test_foreign_file_is_refused(tmp_path):
    import h5py
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["rgb"] = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(DatasetError, match="not a ColonSim dataset"):
        FrameDataset(path)
