"""Shapes and starting behaviour of the refiner and the patch discriminator."""
import pytest
import torch

from adapt.networks import PatchDiscriminator, Refiner, colour_curve, grey


def test_refiner_keeps_any_resolution_and_range():
    x = torch.rand(2, 3, 37, 51) * 2 - 1
    for output in ("residual", "colour_curve"):
        y = Refiner(width=8, blocks=2, output=output)(x)
        assert y.shape == x.shape
        assert y.min() >= -1 and y.max() <= 1


def test_residual_refiner_starts_as_identity():
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    assert torch.equal(Refiner(width=8, blocks=1, output="residual")(x), x)


def test_patch_discriminator_gives_one_logit_per_patch():
    for layers in (1, 2, 3):
        d = PatchDiscriminator(width=4, layers=layers)
        out = d(torch.zeros(3, 3, 64, 48))
        assert out.shape == (3, 1, 64 // 2 ** layers, 48 // 2 ** layers)
        assert d.receptive_field_px > 2 ** layers


def test_discriminator_is_local():
    """Changing one corner must leave the logits of far-away patches unchanged."""
    d = PatchDiscriminator(width=4, layers=2).eval()   # eval: spectral norm's power iteration stays still
    x = torch.zeros(1, 3, 64, 64)
    a = d(x)
    x[..., :4, :4] = 1.0
    b = d(x)
    far = d.receptive_field_px // d.stride + 2
    assert torch.equal(a[..., far:, far:], b[..., far:, far:])
    assert not torch.equal(a[..., :1, :1], b[..., :1, :1])


def _pink(g: torch.Tensor) -> torch.Tensor:
    """A target colour at 8-bit grey levels g, like the clean renders': red above the grey level,
    green and blue below it, and the mean of the three still g; (..., 3)."""
    d = 0.3 * g * (255 - g) / 255
    return torch.stack([g + d, g - d / 2, g - d / 2], -1)


def test_colour_curve_refiner_changes_grey_only_and_takes_the_curves_colour():
    x = torch.rand(2, 3, 19, 23) * 2 - 1
    model = Refiner(width=8, blocks=1, output="colour_curve")
    model.set_curve(_pink(torch.arange(256.0)))
    curve = model.curve
    # untrained: each pixel keeps its grey level and takes the curve's colour there
    y = model(x)
    assert torch.allclose(y, colour_curve(grey(x), curve), atol=1e-6)
    want = _pink((grey(x) + 1)[:, 0] * 127.5).permute(0, 3, 1, 2) / 127.5 - 1
    assert torch.allclose(y, want, atol=1e-3)
    # trained or not, every output pixel lies on the curve at its own grey level...
    torch.nn.init.normal_(model.tail.weight, std=0.5)
    y = model(x)
    assert torch.allclose(y, colour_curve(grey(y), curve), atol=1e-4)
    assert not torch.allclose(grey(y), grey(x), atol=0.05)              # (the grey level did change)
    # ...and the grey level it chose is differentiable
    y.sum().backward()
    assert model.tail.weight.grad.abs().sum() > 0 and model.head[0].weight.grad.abs().sum() > 0
    # the curve is saved and restored with the weights
    other = Refiner(width=8, blocks=1, output="colour_curve")
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.curve, curve) and torch.equal(other(x), y)
    with pytest.raises(ValueError, match="shape"):
        model.set_curve(torch.zeros(255, 3))


def test_frame_knots_refiner_sets_one_tone_curve_per_frame():
    """With refiner.frame_knots the refiner starts as the colour curve of the input's grey, and
    once trained it moves each frame by one function of the grey level: two pixels of a frame with
    the same input level come out the same, frames of other content get other curves, the pixels
    outside the image circle do not enter the curve, and a loss on the output trains it."""
    from adapt.networks import frame_curve

    torch.manual_seed(5)
    x = torch.rand(2, 3, 24, 24) * 1.6 - 0.8
    x[1, :, :12] = -0.6                                  # other content in the second frame
    r = Refiner(width=8, blocks=1, output="colour_curve", frame_knots=8)
    assert r.args["frame_knots"] == 8 and "frame_knots" not in Refiner(width=8, blocks=1, output="colour_curve").args
    with torch.no_grad():
        assert torch.equal(r(x), colour_curve(grey(x), r.curve))    # the identity until trained
    torch.nn.init.normal_(r.tail.weight, std=0.5)
    # two pixels of frame 0 with one grey level and different colours and neighbours
    x[0, :, 3, 3] = torch.tensor([0.3, -0.1, 0.1])
    x[0, :, 20, 17] = torch.tensor([-0.1, 0.2, 0.2])
    with torch.no_grad():
        g = grey(r(x))
        assert abs(float(g[0, 0, 3, 3] - g[0, 0, 20, 17])) < 1e-5
        assert (g - grey(colour_curve(grey(x), r.curve))).abs().max() > 0.01   # it changes the tones
        # the change as a function of the level differs between the frames
        d0 = grey(r(x[:1])) - grey(colour_curve(grey(x[:1]), r.curve))
        probe = x[:1].clone()
        probe[0, :, 12:] = x[1, :, 12:]
        probe[0, :, :12] = x[1, :, :12]
        assert torch.equal(grey(r(probe)), grey(r(x[1:])))
        assert (grey(r(x[1:2])) - grey(r(x[:1]))).abs().max() > 0
        # the border: outside pixels beyond the features' reach (3 px) change nothing inside
        mask = torch.ones(1, 1, 24, 24)
        mask[..., :, :6] = 0
        other = x[:1].clone()
        other[..., :, :3] = 0.9
        assert torch.equal(r(x[:1], mask)[..., 6:], r(other, mask)[..., 6:])
        assert not torch.equal(r(x[:1])[..., 6:], r(other)[..., 6:])
    assert d0.abs().max() > 0
    # frame_curve itself: knots at the evenly spaced levels, linear in between, clamped
    g0 = torch.tensor([-1.0, 0.0, 0.5, 1.0]).reshape(1, 1, 1, 4)
    out = frame_curve(g0, torch.tensor([[0.2, -0.4, 0.6]]))
    assert torch.allclose(out.flatten(), torch.tensor([-0.8, -0.4, 0.6, 1.0]))
    # trained to darken the frame by 0.2 grey levels, it learns it
    r = Refiner(width=8, blocks=1, output="colour_curve", frame_knots=8)
    opt = torch.optim.Adam(r.parameters(), lr=0.02)
    target = grey(colour_curve(grey(x) - 0.2, r.curve))
    losses = []
    for _ in range(60):
        loss = (grey(r(x)) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    for bad in ({"output": "residual"}, {"output": "colour_curve", "frame_knots": 1}):
        with pytest.raises(ValueError, match="frame_knots"):
            Refiner(width=8, blocks=1, **{"frame_knots": 8, **bad})
