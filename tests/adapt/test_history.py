"""The history buffer's semantics (SimGAN: half of each discriminator batch from the history)."""
import numpy as np
import torch

from adapt.history import HistoryBuffer


def _batch(start, b=4):
    """(b, 1, 2, 2) tensors whose value is their serial number."""
    return torch.arange(start, start + b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, 2, 2).clone()


def test_mix_returns_input_until_history_is_filled_then_half_history():
    buf = HistoryBuffer(size=6, rng=np.random.default_rng(0), fraction=0.5)
    first = _batch(0)
    assert torch.equal(buf.mix(first), first)  # empty history: all current
    assert len(buf) == 4
    out = buf.mix(_batch(100))
    assert out.shape == (4, 1, 2, 2)
    vals = out[:, 0, 0, 0].tolist()
    assert vals[:2] == [100.0, 101.0]  # the first half is the current batch
    assert set(vals[2:]) <= {0.0, 1.0, 2.0, 3.0} and len(set(vals[2:])) == 2  # distinct old items
    assert len(buf) == 6  # capped at size
    for k in range(20):
        buf.mix(_batch(1000 + 10 * k))
    assert len(buf) == 6


def test_mix_detaches_and_size_zero_is_off():
    x = _batch(0).requires_grad_(True)
    assert not HistoryBuffer(4, np.random.default_rng(0)).mix(x).requires_grad
    off = HistoryBuffer(0, np.random.default_rng(0))
    for _ in range(3):
        assert torch.equal(off.mix(_batch(5)), _batch(5))
    assert len(off) == 0


def test_own_rng_and_state_round_trip():
    a = HistoryBuffer(5, np.random.default_rng(3))
    for k in range(4):
        a.mix(_batch(10 * k))
    b = HistoryBuffer(5, np.random.default_rng(99))
    b.load_state_dict(a.state_dict())
    np.random.seed(0)  # global state must not matter
    for k in range(5):
        assert torch.equal(a.mix(_batch(500 + k)), b.mix(_batch(500 + k)))
