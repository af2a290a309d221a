import numpy as np

from colonsim import config as cfgmod
from depth.config import load_depth_config
from depth.data import ResizedFrames, StepBatchSampler, augment_frame, split_indices


def test_augmentation_moves_rgb_depth_and_mask_together_and_keeps_brightness():
    cfg = load_depth_config().data
    rng = np.random.default_rng(0)
    depth = rng.uniform(5, 100, (16, 16)).astype(np.float32)
    mask = (depth > 30).astype(np.uint8)
    rgb = np.stack([depth / 200, depth / 400, depth / 800], -1).astype(np.float32)
    seen = set()
    for s in range(40):
        r, d, m = augment_frame(rgb, depth, mask, cfg, np.random.default_rng([0, s, 0]))
        np.testing.assert_array_equal(m, (d > 30).astype(np.uint8))
        # colour balance changes each channel a little, but the channels stay tied to the same depth
        assert np.allclose(r[..., 0] / d, r[..., 0].flat[0] / d.flat[0], rtol=1e-5)
        assert abs(r.mean() - rgb.mean()) < 0.05 * rgb.mean()  # no global brightness change by default
        seen.add(d.tobytes())
    assert len(seen) == 8  # the 8 flips and rotations of a square


def test_step_batches_are_a_pure_function_of_the_step():
    full = list(StepBatchSampler(10, 4, seed=3, start_step=0, end_step=7))
    resumed = list(StepBatchSampler(10, 4, seed=3, start_step=4, end_step=7))
    assert full[4:] == resumed
    assert [k[1] for k in full[5]] == [5, 5, 5, 5]
    epoch0 = sorted(i for b in full[:2] for i, _, _ in b)
    assert len(set(epoch0)) == 8  # no frame twice within an epoch


def test_val_split_is_a_contiguous_tail_per_file():
    train, val = split_indices([10, 5], 0.2)
    assert val.tolist() == [8, 9, 14]
    assert sorted(train.tolist() + val.tolist()) == list(range(15))


def test_frames_are_resized_and_augmented_deterministically(tiny_h5):
    cfg = cfgmod.replace(load_depth_config(), ["data.size_px=16"]).data
    ds = ResizedFrames([tiny_h5], 16, augment=cfg, seed=1)
    a, b, plain = ds[(3, 7, 1)], ds[(3, 7, 1)], ds[3]
    assert a["rgb"].shape == (3, 16, 16) and a["depth"].shape == (1, 16, 16)
    assert all((a[k] == b[k]).all() for k in ("rgb", "depth", "mask"))
    assert plain["rgb"].max() <= 1.0 and plain["depth"].max() > 0
