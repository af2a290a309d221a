"""Shapes and starting behaviour of the refiner and the patch discriminator."""
import numpy as np
import torch

import pytest

from adapt.networks import PatchDiscriminator, Refiner, colour_curve, grey


def test_refiner_keeps_any_resolution_and_range():
    x = torch.rand(2, 3, 37, 51) * 2 - 1
    for output in ("residual", "tanh", "colour_curve"):
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


def test_coarse_discriminators_see_pooled_frames_and_strictly_pooled_masks():
    from adapt.networks import CoarseDiscriminators

    assert len(CoarseDiscriminators(width=4, layers=2, spectral_norm=False, scales=1).nets) == 0
    d = CoarseDiscriminators(width=4, layers=2, spectral_norm=False, scales=3)
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    mask = torch.ones(2, 1, 64, 48)
    mask[..., 0, 0] = 0.0   # one pixel outside the image circle
    out = d(x, mask)
    assert [lg.shape for lg, _, _ in out] == [(2, 1, 8, 6), (2, 1, 4, 3)]   # 64/2/4, 64/4/4
    assert [m.shape for _, m, _ in out] == [(2, 1, 32, 24), (2, 1, 16, 12)]
    for _, m, _ in out:   # a pooled pixel with any part outside counts as outside
        assert m[..., 0, 0].eq(0).all() and m.sum() == m[0, 0].numel() * 2 - 2
    # scale 2 judges the 4x average-pooled frame with its own net: frames equal after pooling
    # look the same to it, whatever their fine detail
    noise = torch.rand(2, 3, 64, 48) - 0.5
    flat = torch.nn.functional.avg_pool2d(noise, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert torch.allclose(d(x, mask)[1][0], d(x + (noise - flat) * 0.5, mask)[1][0], atol=1e-5)
    assert not torch.allclose(d(x, mask)[0][0], d(x + (noise - flat) * 0.5, mask)[0][0], atol=1e-5)


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


def test_keep_tones_refiner_keeps_each_frames_grey_histogram_and_learns_the_order():
    from adapt.networks import keep_tones

    torch.manual_seed(0)
    x = torch.rand(2, 3, 17, 21) * 2 - 1
    x[1] = x[1] * 0.3 - 0.5                                            # frames with different tones
    with pytest.raises(ValueError, match="colour_curve"):
        Refiner(width=8, blocks=1, output="residual", tones="keep")
    model = Refiner(width=8, blocks=1, output="colour_curve", tones="keep")
    model.set_curve(_pink(torch.arange(256.0)))
    torch.nn.init.normal_(model.tail.weight, std=0.5)
    y = model(x)
    # each output frame has exactly its own input's grey levels, per frame, not the batch's
    g_in, g_out = grey(x).reshape(2, -1), grey(y).reshape(2, -1)
    levels = torch.sort(g_in, dim=1).values
    free = Refiner(width=8, blocks=1, output="colour_curve")
    free.load_state_dict(model.state_dict())
    g_free = grey(free(x)).reshape(2, -1)
    assert not torch.allclose(torch.sort(g_free, dim=1).values, levels, atol=0.05)   # free moves them
    assert torch.allclose(torch.sort(g_out, dim=1).values, levels, atol=2e-3)      # keep does not
    # ... in the order the refiner chose: the ranks of the input's grey plus the bounded change
    with torch.no_grad():
        d = grey(model.tail(model.body(model.head(x))))
        chosen = (grey(x) + torch.tanh(d - d.mean(dim=(2, 3), keepdim=True))).reshape(2, -1)
    assert torch.equal(torch.argsort(g_out, dim=1), torch.argsort(chosen, dim=1))
    assert not torch.equal(torch.argsort(g_out, dim=1), torch.argsort(g_in, dim=1))
    assert torch.allclose(y, colour_curve(grey(y), model.curve), atol=1e-4)         # still on the curve
    # the gradient reaches the weights straight through the exchange of levels
    y.sum().backward()
    assert model.tail.weight.grad.abs().sum() > 0
    g = torch.tensor([[[[0.3, -0.2, 0.9]]]], requires_grad=True)
    out = keep_tones(g, torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    assert torch.equal(out.detach(), torch.tensor([[[[0.5, 0.0, 1.0]]]]))
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(g.grad, torch.tensor([[[[1.0, 2.0, 3.0]]]]))


def test_keep_tones_refiner_is_not_pushed_into_saturation_by_a_loss_on_brightness():
    """The frame's histogram is fixed, so a loss that wants it brighter cannot be met. Its
    gradient must not drive the refiner's change to one sign everywhere: a tanh saturated there
    reorders nothing, passes no gradient, and leaves the refiner stuck at the identity."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, :3] = 0                                                    # a border, outside the circle
    model = Refiner(width=8, blocks=1, output="colour_curve", tones="keep")
    torch.nn.init.normal_(model.tail.weight, std=0.3)
    y0 = model(x, mask)
    with torch.no_grad():
        model.tail.bias += 5.0                                            # one change for every pixel
    assert torch.equal(model(x, mask), y0)                                # ... reorders nothing
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(20):                                                   # "brighter, everywhere"
        opt.zero_grad()
        (-model(x, mask)).mean().backward()
        opt.step()
    with torch.no_grad():
        d = grey(model.tail(model.body(model.head(x))))
        d = d - (d * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True)
        change = torch.tanh(d)[mask.expand_as(d) > 0]
    assert (change.abs() < 0.9).float().mean() > 0.9                      # not saturated
    assert (change > 0).any() and (change < 0).any()


def test_keep_tones_breaks_ties_by_the_inputs_order():
    """A flat patch of the refined grey (the refiner saturated it) keeps its input's structure,
    not the input's levels laid out in raster order."""
    from adapt.networks import keep_tones

    g_in = torch.linspace(-1, 1, 64).reshape(8, 8).T.reshape(1, 1, 8, 8)   # a vertical ramp
    g = torch.zeros(1, 1, 8, 8)                                             # all tied
    assert torch.equal(keep_tones(g, g_in), g_in)
    g[..., :4, :] = 0.5                                    # two flat halves: the top brighter
    out = keep_tones(g, g_in)
    assert (out[..., :4, :].min() > out[..., 4:, :].max())
    assert torch.allclose(torch.sort(out.flatten()).values, torch.sort(g_in.flatten()).values, atol=1e-6)
    assert (out[..., :4, 1:] > out[..., :4, :-1]).all() and (out[..., 4:, 1:] > out[..., 4:, :-1]).all()


def test_keep_tones_is_exact_for_any_size_of_the_refined_grey():
    """The straight-through output is the input's levels exactly, even where the refined grey is
    far outside [-1, 1] (g + (target - g) would round them away in float32)."""
    from adapt.networks import keep_tones

    g_in = torch.tensor([[[[0.1, -0.4, 0.7, 0.2]]]])
    g = torch.tensor([[[[3e8, -1e8, 2e8, 1e8]]]])
    assert torch.equal(keep_tones(g, g_in), torch.tensor([[[[0.7, -0.4, 0.2, 0.1]]]]))


def test_keep_tones_exchanges_levels_inside_the_image_circle_only():
    """With a mask, the black border keeps its levels and lends none to the inside: a refiner that
    darkens the inside below the border's output must not punch black holes into the frame."""
    from adapt.networks import keep_tones

    torch.manual_seed(1)
    g_in = torch.rand(2, 1, 12, 12) * 1.2 - 0.4                        # inside levels in [-0.4, 0.8]
    mask = torch.zeros(2, 1, 12, 12)
    mask[..., 2:10, 2:11] = 1.0
    g_in = torch.where(mask > 0, g_in, torch.full_like(g_in, -1.0))    # a black border
    g = g_in - 2.0 * mask                                               # inside pushed below the border
    inside = mask[:, 0] > 0
    for k in range(2):
        free = keep_tones(g, g_in)[k, 0][inside[k]]
        assert free.min() <= -1.0                                       # unmasked: black holes inside
        out = keep_tones(g, g_in, mask)
        got = out[k, 0][inside[k]]
        assert torch.allclose(torch.sort(got).values, torch.sort(g_in[k, 0][inside[k]]).values, atol=1e-6)
        assert torch.equal(out[k, 0][~inside[k]], g_in[k, 0][~inside[k]])
        assert torch.equal(torch.argsort(got), torch.argsort(g[k, 0][inside[k]]))
    model = Refiner(width=8, blocks=1, output="colour_curve", tones="keep")
    x = g_in.repeat(1, 3, 1, 1)
    assert torch.allclose(grey(model(x, mask)), g_in, atol=1e-5)       # untrained: the identity


def test_smooth_px_makes_the_refiners_change_smooth():
    """With refiner.smooth_px the change of grey level is the per-pixel change averaged over blocks
    and interpolated back: the same weights give the block-smoothed change, and a change that
    varies far less from pixel to pixel."""
    from adapt.networks import _smooth

    torch.manual_seed(3)
    x = torch.rand(2, 3, 40, 48) * 0.5 - 0.25                     # mid greys: nothing clamps
    rough = Refiner(width=8, blocks=1, output="colour_curve")
    torch.nn.init.normal_(rough.tail.weight, std=0.2)
    smooth = Refiner(width=8, blocks=1, output="colour_curve", smooth_px=8)
    smooth.load_state_dict(rough.state_dict())
    assert smooth.args["smooth_px"] == 8 and "smooth_px" not in rough.args
    with torch.no_grad():
        d_rough = grey(rough(x)) - grey(x)
        d_smooth = grey(smooth(x)) - grey(x)
    assert torch.allclose(d_smooth, _smooth(d_rough, None, 8), atol=1e-5)
    def step(d):   # mean change from one pixel to the next
        return (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., 1:] - d[..., :-1]).abs().mean()

    assert step(d_smooth) < 0.3 * step(d_rough)
    assert d_smooth.abs().mean() > 0.1 * d_rough.abs().mean()    # smoothed, not zeroed
    # inside a mask, the border's pixels do not enter the average; a block with none inside has
    # no change, and the change fades towards it
    mask = torch.ones(1, 1, 16, 32)
    mask[..., :, :8] = 0
    d = torch.where(mask > 0, torch.tensor(0.5), torch.tensor(-9.0))
    out = _smooth(d, mask, 8)
    assert torch.allclose(out[..., 12:], torch.tensor(0.5))
    assert (out >= 0).all() and (out <= 0.5 + 1e-6).all()
    with pytest.raises(ValueError, match="smooth_px"):
        Refiner(width=8, blocks=1, output="residual", smooth_px=4)


def test_global_discriminator_pools_only_the_features_inside_the_image_circle():
    """view circle: one logit per frame, from the features whose 16-px cell lies inside the circle:
    a change far outside the circle leaves the logit as it was, a change inside moves it, and a
    frame with no cell inside gets weight 0 and a finite logit."""
    from adapt.networks import GlobalDiscriminator

    torch.manual_seed(0)
    d = GlobalDiscriminator(width=4, layers=4, spectral_norm=True, view="circle").eval()   # eval: no power iteration between calls
    x = torch.rand(2, 3, 64, 128) * 2 - 1
    mask = torch.zeros(2, 1, 64, 128)
    mask[0, :, :, :64] = 1.0            # frame 0: the left half is inside; frame 1: nothing is
    logits, weights = d(x, mask)
    assert logits.shape == weights.shape == (2, 1, 1, 1)
    assert weights.flatten().tolist() == [1.0, 0.0] and torch.isfinite(logits).all()
    far = x.clone()
    far[0, :, :, 100:] = -far[0, :, :, 100:]   # beyond the receptive field (31 px) of any inside cell
    assert torch.equal(d(far, mask)[0][0], logits[0])
    near = x.clone()
    near[0, :, :, :32] = -near[0, :, :, :32]
    assert not torch.allclose(d(near, mask)[0][0], logits[0])


def _disc_frame(mask: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random frame black outside ``mask`` ((H, W) bool), and the mask, as the networks take them."""
    g = torch.Generator().manual_seed(seed)
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = torch.rand((1, 3) + mask.shape, generator=g) * 2 - 1
    return x * m + (m - 1), m


def test_global_discriminator_square_view_sees_neither_the_border_nor_the_rim():
    """view square (the default) judges the largest square inside the image circle, as adapt score's
    classifier does: the border's shape and the rim between the square and the border do not move
    the logit, the square does. The circle view's logit moves with the border's shape (why the
    square view exists: CVC-ColonDB's border is octagonal, the renders' round)."""
    from adapt.networks import GlobalDiscriminator, square_view
    from adapt.score import inscribed_box

    yy, xx = np.mgrid[:96, :96] - 47.5
    circle = np.hypot(yy, xx) < 44
    tabs = circle | ((np.abs(np.abs(yy) - 34) < 3) & (np.abs(np.abs(xx) - 34) < 3))   # bumps on the border
    assert (tabs & ~circle).sum() > 50 and inscribed_box(tabs) == inscribed_box(circle)
    y0, y1, x0, x1 = inscribed_box(circle)
    torch.manual_seed(0)
    square = GlobalDiscriminator(width=4, layers=4, spectral_norm=True).eval()
    assert square.view == "square"
    circle_view = GlobalDiscriminator(width=4, layers=4, spectral_norm=True, view="circle").eval()
    circle_view.load_state_dict(square.state_dict())
    x, m = _disc_frame(circle)
    xt, mt = _disc_frame(tabs)
    xt = torch.where(torch.from_numpy(circle)[None, None], x, xt)   # the same content inside the circle
    rim = x.clone()
    rim_px = torch.from_numpy(circle.copy())
    rim_px[y0:y1, x0:x1] = False
    rim[:, :, rim_px] = -rim[:, :, rim_px]
    inner = x.clone()
    inner[:, :, y0 + 10:y0 + 20, x0 + 10:x0 + 20] *= -1
    with torch.no_grad():
        logit, weight = square(x, m)
        assert weight.item() == 1.0 and logit.shape == (1, 1, 1, 1)
        assert torch.allclose(square(xt, mt)[0], logit, atol=1e-6)
        assert torch.allclose(square(rim, m)[0], logit, atol=1e-6)
        assert not torch.allclose(square(inner, m)[0], logit, atol=1e-4)
        assert not torch.allclose(circle_view(xt, mt)[0], circle_view(x, m)[0], atol=1e-4)
    sq = square_view(x, m, 96)
    assert sq.shape == (1, 3, 96, 96)
    ref = torch.nn.functional.interpolate(x[:, :, y0:y1, x0:x1], size=(96, 96), mode="bilinear", align_corners=False)
    assert torch.allclose(sq, ref)
    # a frame with nothing inside the circle weighs nothing and keeps a finite logit
    empty_logit, empty_w = square(torch.full((1, 3, 96, 96), -1.0), torch.zeros(1, 1, 96, 96))
    assert empty_w.item() == 0.0 and torch.isfinite(empty_logit).all()


def test_global_discriminator_learns_a_difference_of_whole_frames():
    """Frames made of the same bright and dark 16-px squares, in proportions 1:3 and 3:1: each square
    alone could come from either set, the frame cannot. A few steps on the fixed batch separate them."""
    from adapt import losses
    from adapt.networks import GlobalDiscriminator

    g = torch.Generator().manual_seed(0)

    def frames(n_bright: int) -> torch.Tensor:
        out = torch.full((8, 3, 64, 64), -0.6)
        for i in range(8):
            for cell in torch.randperm(16, generator=g)[:n_bright].tolist():
                r, c = divmod(cell, 4)
                out[i, :, 16 * r:16 * r + 16, 16 * c:16 * c + 16] = 0.6
        return out + 0.05 * torch.randn(out.shape, generator=g)

    a, b, mask = frames(4), frames(12), torch.ones(8, 1, 64, 64)
    torch.manual_seed(0)
    d = GlobalDiscriminator(width=8, layers=4, spectral_norm=True)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    for _ in range(60):
        (la, wa), (lb, wb) = d(a, mask), d(b, mask)
        loss = losses.adversarial(la, True, "lsgan", wa) + losses.adversarial(lb, False, "lsgan", wb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        (la, wa), (lb, wb) = d(a, mask), d(b, mask)
    assert losses.accuracy(la, True, "lsgan", wa) == 1.0 and losses.accuracy(lb, False, "lsgan", wb) == 1.0


def test_rim_frac_keeps_the_rim_and_the_inner_histogram():
    """With refiner.rim_frac the pixels near the circle's border keep their input's level, and the
    inner pixels exchange levels among themselves only: the inner histogram is the input's, so no
    level can be hidden in the rim (nor fetched from it)."""
    from adapt.networks import inner_mask

    # a disc of radius 30 in a 64 x 80 frame; rim 0.1 of its 61-px box: 6 px
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(80), indexing="ij")
    disc = (((yy - 32) ** 2 + (xx - 40) ** 2) <= 30 ** 2).float()[None, None]
    inner = inner_mask(disc, 0.1)
    assert inner.sum() < disc.sum() and (inner <= disc).all()
    # Chebyshev erosion by 6 px: the disc's top point (row 2) and everything within 6 rows of it go
    assert inner[0, 0, :9, 40].eq(0).all() and inner[0, 0, 9, 40] == 1 and inner[0, 0, 32, 40] == 1
    assert torch.equal(inner_mask(disc, 0.0), disc)
    # the image edge counts as outside: an all-ones mask loses a 4-px frame (0.1 of 40)
    full = inner_mask(torch.ones(1, 1, 40, 50), 0.1)
    assert full[0, 0, 4:-4, 4:-4].eq(1).all() and full[0, 0, :4].eq(0).all() and full[0, 0, :, -4:].eq(0).all()

    torch.manual_seed(5)
    x = torch.rand(2, 3, 64, 80) * 2 - 1
    mask = disc.repeat(2, 1, 1, 1)
    r = Refiner(width=8, blocks=1, output="colour_curve", tones="keep", rim_frac=0.1)
    torch.nn.init.normal_(r.tail.weight, std=1.0)
    with torch.no_grad():
        g_in, g_out = grey(x), grey(r(x, mask))
    m_in = inner_mask(mask, 0.1) > 0.5
    rim = (mask > 0.5) & ~m_in
    assert torch.allclose(g_out[rim], g_in[rim], atol=1e-6)                 # the rim as it was
    moved = (g_out - g_in).abs()[m_in]
    assert (moved > 0.05).float().mean() > 0.5                              # the inside was reordered
    for i in range(2):                                                      # with its own levels
        a, b = g_in[i][m_in[i]].sort().values, g_out[i][m_in[i]].sort().values
        assert torch.allclose(a, b, atol=1e-6)
    assert r.args["rim_frac"] == 0.1
    with pytest.raises(ValueError, match="rim_frac"):
        Refiner(width=8, blocks=1, output="colour_curve", tones="free", rim_frac=0.1)


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
    for bad in ({"output": "residual"}, {"output": "colour_curve", "tones": "keep"},
                {"output": "colour_curve", "smooth_px": 4}, {"output": "colour_curve", "frame_knots": 1}):
        with pytest.raises(ValueError, match="frame_knots"):
            Refiner(width=8, blocks=1, **{"frame_knots": 8, **bad})
