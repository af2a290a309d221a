
import pytest
import torch

from colonsim.errors import CheckpointError
from depth import networks


def _small():
    args = dict(base_width=8, levels=3, max_width=32, convs_per_level=1, norm="group",
                min_depth_mm=0.5, max_depth_mm=400.0, size_px=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = networks.build_model(args)
        torch.nn.init.normal_(model.head.weight, std=0.5)
    return model, args


def test_any_input_size_gives_positive_bounded_depth_of_the_same_size():
    model, _ = _small()
    for h, w in [(32, 32), (37, 50), (9, 17)]:
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        y = model(x)
        assert y.shape == (2, 1, h, w) and y.dtype == torch.float32
        assert (y >= 0.5).all() and (y <= 400.0).all()


def test_zero_head_starts_at_the_geometric_middle_of_the_range():
    model = networks.build_model(dict(base_width=8, levels=2, max_width=16, min_depth_mm=1.0, max_depth_mm=100.0))
    y = model(torch.rand(1, 3, 16, 16))
    assert torch.allclose(y, torch.full_like(y, 10.0))


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model, args = _small()
    networks.save_checkpoint(tmp_path / "m.pt", model, args, config={}, step=7)
    loaded, meta = networks.load_model(tmp_path / "m.pt")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded(x))
    assert meta["step"] == 7 and meta["model_args"] == args and meta["kind"] == networks.KIND
    assert loaded.size_px == 32


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path):
    model, args = _small()
    torch.save({"kind": "colonsim.refiner", "format_version": 1, "model_args": {}, "model": {}}, tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="colonsim.refiner"):
        networks.load_model(tmp_path / "r.pt")

    class Payload:  # any pickled object, as a malicious file would carry
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"kind": networks.KIND, "evil": Payload()}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="pickled Python object"):
        networks.load_model(tmp_path / "p.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        networks.load_model(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        networks.load_model(tmp_path / "missing.pt")
