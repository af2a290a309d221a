"""Frame sources and random crops: sizes, black border, determinism, bad inputs."""
import h5py
import numpy as np
import pytest

from adapt.data import CropSampler, FolderFrames, H5Frames, open_frames, random_crop
from colonsim import schema
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
