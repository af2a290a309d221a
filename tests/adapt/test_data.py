"""Frame sources and random crops: sizes, black border, determinism, bad inputs."""
import h5py
import numpy as np
import pytest

from adapt.data import CropSampler, FolderFrames, H5Frames, open_frames, random_crop
from colonsim.data import schema
from colonsim.errors import DatasetError, InputError


def test_random_crop_is_square_black_outside_and_seeded(real_dir, tiny_cfg):
    frames = open_frames(real_dir, short_side_px=256)
    assert isinstance(frames, FolderFrames) and len(frames) == 6
    rgb, mask = frames.get(0)
    a = random_crop(rgb, mask, np.random.default_rng(5), 24, (0.5, 1.0))
    b = random_crop(rgb, mask, np.random.default_rng(5), 24, (0.5, 1.0))
    assert a[0].shape == (24, 24, 3) and a[1].shape == (24, 24)
    assert np.array_equal(a[0], b[0])
    assert (a[0][a[1] == 0] == 0).all()


def test_sampler_batches_in_network_range(synthetic_h5, tiny_cfg):
    frames = open_frames(synthetic_h5)
    assert isinstance(frames, H5Frames) and len(frames) == 8
    x, m = CropSampler(frames, tiny_cfg.data, np.random.default_rng(0)).next_batch()
    assert x.shape == (2, 3, 24, 24) and m.shape == (2, 1, 24, 24)
    assert x.min() >= -1 and x.max() <= 1
    assert (x.permute(1, 0, 2, 3)[:, m[:, 0] == 0] == -1).all()


def test_h5_frames_cache_within_budget_and_equal_to_the_file(synthetic_h5):
    with h5py.File(synthetic_h5, "r") as f:
        rgb, mask = f[schema.RGB][()], f[schema.MASK][()]
    if mask.ndim == 2:  # one mask for every frame
        mask = np.broadcast_to(mask, rgb.shape[:3])
    frame_bytes = rgb[0].nbytes + mask[0].nbytes
    frames = H5Frames(synthetic_h5, cache_mb=3.5 * frame_bytes / 2**20)  # room for three frames
    for _ in range(2):
        for i in (5, 0, 7, 2, 5):
            r, m = frames.get(i)
            assert np.array_equal(r, rgb[i]) and np.array_equal(m, (mask[i] > 0).astype(np.uint8))
    assert sorted(frames._cache) == [0, 5, 7] and frames.cached_bytes == 3 * frame_bytes
    assert frames.get(5)[0] is frames.get(5)[0]  # served from memory
    with pytest.raises(ValueError):
        frames.get(5)[0][0, 0, 0] = 1  # a cached frame cannot be changed by a caller
    uncached = H5Frames(synthetic_h5, cache_mb=0)
    assert uncached.get(5)[0] is not uncached.get(5)[0] and uncached.cached_bytes == 0


def test_h5_without_rgb_is_refused(tmp_path):
    p = tmp_path / "norgb.h5"
    with h5py.File(p, "w") as f:
        f.attrs[schema.ATTR_SOFTWARE] = schema.SOFTWARE
        f.create_dataset(schema.DEPTH, data=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(DatasetError, match="no 'rgb'"):
        open_frames(p)


def test_missing_source(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_frames(tmp_path / "nothing")
