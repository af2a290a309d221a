"""Apply: same names and sizes, black border kept, HDF5 copies with only rgb changed; checkpoints
of other kinds and pickle payloads are refused."""
import h5py
import numpy as np
import pytest
import torch

from adapt.apply import apply, load_refiner, refine_images
from adapt.checkpoint import REFINER_KIND, save_checkpoint, save_refiner
from adapt.networks import Refiner
from colonsim.data import realdata, schema
from colonsim.errors import CheckpointError


@pytest.fixture
def shifting_refiner(tmp_path, tiny_cfg):
    """A refiner.pt whose model adds a constant colour shift (so that its effect is visible)."""
    model = Refiner(width=4, blocks=1)
    with torch.no_grad():
        model.tail.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    path = tmp_path / "refiner.pt"
    save_refiner(path, model, tiny_cfg, 0)
    return path


def test_refine_images_full_resolution_and_border(shifting_refiner):
    model, _ = load_refiner(shifting_refiner)
    rgb = np.full((3, 30, 41, 3), 120, np.uint8)
    mask = np.zeros((30, 41), np.uint8)
    mask[5:25, 5:35] = 1
    out = refine_images(model, rgb, mask, batch_size=2)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert (out[:, mask == 0] == 0).all()
    inside = out[:, mask == 1].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(inside, [120 + 0.3 * 127.5, 120 - 0.2 * 127.5, 120 + 0.1 * 127.5], atol=1.0)


def test_apply_folder_keeps_names_sizes_and_border(tmp_path, real_dir, shifting_refiner):
    r = apply(shifting_refiner, real_dir, tmp_path / "out")
    assert r["frames"] == 6
    src = realdata.list_images(real_dir)
    dst = realdata.list_images(tmp_path / "out")
    assert [p.name for p in dst] == [p.name for p in src]
    for a, b in zip(src, dst):
        raw, ref = realdata.read_image(a), realdata.read_image(b)
        assert raw.shape == ref.shape
        mask = realdata.detect_border_mask(raw)
        assert (ref[mask == 0] == 0).all()
        assert np.abs(ref[mask == 1].astype(int) - raw[mask == 1]).mean() > 10


def test_apply_h5_changes_only_rgb(tmp_path, synthetic_h5, shifting_refiner):
    out = tmp_path / "refined.h5"
    apply(shifting_refiner, synthetic_h5, out)
    with h5py.File(synthetic_h5, "r") as a, h5py.File(out, "r") as b:
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        assert names_a == names_b
        for name in names_a:
            if isinstance(a[name], h5py.Dataset) and name != schema.RGB:
                assert np.array_equal(a[name][()], b[name][()]), name
        for k, v in a.attrs.items():
            assert np.array_equal(b.attrs[k], v), k
        rgb = b[schema.RGB][()]
        mask = np.broadcast_to(a[schema.MASK][()], rgb.shape[:3])   # (H, W) or per frame (N, H, W)
        assert (rgb[mask == 0] == 0).all()
        assert not np.array_equal(a[schema.RGB][()], b[schema.RGB][()])


def test_load_refiner_refuses_other_kinds_and_pickles(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"kind": "colonsim.depth", "state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="'colonsim.depth' checkpoint; expected an adapt refiner"):
        load_refiner(other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"kind": "colonsim.refiner", "payload": np.random.default_rng(0)}, pickled)
    with pytest.raises(CheckpointError, match="pickled Python object"):
        load_refiner(pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_refiner(garbage)


def test_refiners_of_older_versions_load_and_removed_variants_are_refused(tmp_path, tiny_cfg):
    """A refiner.pt of an earlier version (no format_version, weights under "state_dict", its tones
    named "free") rebuilds the same refiner; one of a variant this version no longer has is refused
    in one line."""
    torch.manual_seed(0)
    model = Refiner(width=4, blocks=1, output="colour_curve")
    torch.nn.init.normal_(model.tail.weight, std=0.5)
    old = {"kind": REFINER_KIND, "model_args": {**model.args, "tones": "free"}, "state_dict": model.state_dict(),
           "direction": "reverse", "steps": 3}
    save_checkpoint(old, tmp_path / "refiner.pt")
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    loaded, meta = load_refiner(tmp_path / "refiner.pt")
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)) and meta["steps"] == 3
    for gone in ({"tones": "keep"}, {"smooth_px": 8}, {"rim_frac": 0.15}):
        save_checkpoint(dict(old, model_args={**old["model_args"], **gone}), tmp_path / "gone.pt")
        with pytest.raises(CheckpointError, match="no longer has"):
            load_refiner(tmp_path / "gone.pt")


def test_frame_knots_refiners_round_trip_through_model_pt(tmp_path, tiny_cfg):
    """A model.pt of a per-frame tone curve rebuilds the same refiner, knots and all, with the run's
    direction, steps and config; one whose weights do not fit its knots is refused."""
    torch.manual_seed(1)
    model = Refiner(width=4, blocks=1, output="colour_curve", frame_knots=6)
    torch.nn.init.normal_(model.tail.weight, std=0.5)
    save_refiner(tmp_path / "model.pt", model, tiny_cfg, 5)
    loaded, meta = load_refiner(tmp_path / "model.pt")
    assert meta["model_args"] == {"width": 4, "blocks": 1, "output": "colour_curve", "frame_knots": 6}
    assert meta["steps"] == 5 and meta["direction"] == "reverse" and meta["config"]["data"]["size_px"] == 24
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert loaded.frame_knots == 6 and torch.equal(loaded(x), model(x))
    ck = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save(dict(ck, model_args={**ck["model_args"], "frame_knots": 5}), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_refiner(tmp_path / "bad.pt")
