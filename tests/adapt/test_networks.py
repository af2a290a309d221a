"""Shapes and starting behaviour of the refiner and the patch discriminator."""
import torch

from adapt.networks import PatchDiscriminator, Refiner


def test_refiner_keeps_any_resolution_and_range():
    x = torch.rand(2, 3, 37, 51) * 2 - 1
    for output in ("residual", "tanh"):
        y = Refiner(width=8, blocks=2, output=output)(x)
        assert y.shape == x.shape
        assert y.min() >= -1 and y.max() <= 1


def test_residual_refiner_starts_as_identity():
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    assert torch.equal(Refiner(width=8, blocks=1, output="residual")(x), x)


def test_patch_discriminator_gives_one_logit_per_patch():
    for layers in (1, 2, 3):
        d = PatchDiscriminator(width=4, layers=layers, spectral_norm=True)
        out = d(torch.zeros(3, 3, 64, 48))
        assert out.shape == (3, 1, 64 // 2 ** layers, 48 // 2 ** layers)
        assert d.receptive_field_px > 2 ** layers


def test_discriminator_is_local():
    """Changing one corner must leave the logits of far-away patches unchanged."""
    d = PatchDiscriminator(width=4, layers=2, spectral_norm=False)
    x = torch.zeros(1, 3, 64, 64)
    a = d(x)
    x[..., :4, :4] = 1.0
    b = d(x)
    far = d.receptive_field_px // d.stride + 2
    assert torch.equal(a[..., far:, far:], b[..., far:, far:])
    assert not torch.equal(a[..., :1, :1], b[..., :1, :1])
