"""The losses: patch weights exclude the border; one discriminator step lowers its loss."""
import torch

from adapt import losses
from adapt.networks import PatchDiscriminator


def test_patch_weights_exclude_border_patches():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    w = losses.patch_weights(mask, (8, 8), receptive_field_px=7)
    assert w[0, 0, 0, 0] == 0 and w[0, 0, 4, 4] == 1
    assert w[0, 0, 2, 2] == 0  # a patch straddling the mask edge
    assert w.sum() > 0


def test_adversarial_lsgan_values_and_weights():
    logits = torch.tensor([[[[1.0, 0.0]]]])
    assert losses.adversarial(logits, True).item() == 0.5
    w = torch.tensor([[[[1.0, 0.0]]]])
    assert losses.adversarial(logits, True, w).item() == 0.0
    assert losses.accuracy(logits, True, w) == 1.0


def test_features_self_reg_ignores_fine_texture_but_not_shading():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 3, 48, 48)
    checker = (torch.arange(48)[:, None] + torch.arange(48)[None]) % 2 * 0.4 - 0.2
    textured = x + checker
    shaded = x + 0.2
    mask = torch.ones(1, 1, 48, 48)
    for space in ("features",):
        t = losses.self_regularization(textured, x, mask, space, sigma_px=2.0).item()
        s = losses.self_regularization(shaded, x, mask, space, sigma_px=2.0).item()
        assert t < 0.1 * s, space
    assert losses.self_regularization(textured, x, mask, "pixel").item() > 0.19
    assert losses.self_regularization(x + torch.rand(1, 3, 48, 48, generator=g), x, mask * 0, "pixel") == 0


def test_one_discriminator_step_lowers_its_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    d = PatchDiscriminator(width=8, layers=2)
    g = torch.Generator().manual_seed(1)
    target = torch.rand(4, 3, 32, 32, generator=g) * 0.5 + 0.5
    refined = torch.rand(4, 3, 32, 32, generator=g) * 0.5 - 1.0
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def loss_fn():
        return 0.5 * (losses.adversarial(d(target), True) + losses.adversarial(d(refined), False))

    for kind in ("lsgan",):
        before = loss_fn()
        opt.zero_grad()
        before.backward()
        opt.step()
        with torch.no_grad():
            after = loss_fn()
        assert after.item() < before.item(), kind


def test_features_self_reg_lets_colour_change_but_not_shading():
    x = torch.zeros(1, 3, 32, 32)
    mask = torch.ones(1, 1, 32, 32)
    recoloured = x + torch.tensor([0.2, 0.0, -0.2]).view(1, 3, 1, 1)  # same grey level
    ramp = torch.linspace(-0.3, 0.3, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    assert losses.self_regularization(recoloured, x, mask, "features").item() < 1e-6
    assert losses.self_regularization(x + ramp, x, mask, "features").item() > 0.05
    assert losses.self_regularization(recoloured, x, mask, "pixel").item() > 0.1


def test_structure_self_reg_frees_brightness_and_contrast_but_keeps_the_layout():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    shading = (0.5 * torch.exp(-((xx - 0.3) ** 2 + yy ** 2) / 0.2) - 0.2).expand(2, 3, 48, 48)  # a lit fold
    x = shading + 0.02 * torch.randn(2, 3, 48, 48, generator=g)
    mask = torch.ones(2, 1, 48, 48)
    mask[..., :6, :] = 0.0                                              # a border: ignored
    exposure = (0.5 * x - 0.3) * mask + (mask - 1.0)                    # darker, half the contrast
    tinted = x * torch.tensor([1.3, 1.0, 0.7]).view(1, 3, 1, 1)         # colour (and grey) scaled
    moved = torch.roll(x, 12, dims=-1)                                  # the fold moved
    flat = torch.zeros_like(x)
    sr = losses.self_regularization
    assert sr(exposure, x, mask, "structure").item() < 0.03
    assert sr(tinted, x, mask, "structure").item() < 0.03
    assert sr(exposure, x, mask, "features").item() > 0.08              # features keep brightness
    assert sr(moved, x, mask, "structure").item() > 0.1
    assert sr(flat, x, mask, "structure").item() > 0.1                  # erasing the layout costs
    # The flat frame stays flat: standardizing does not blow its noise up to full contrast.
    assert losses.standardize(torch.full((1, 1, 8, 8), 0.3) + 1e-4 * torch.randn(1, 1, 8, 8), None).abs().max() < 0.01
    assert losses.standardize(x.mean(1, keepdim=True), None).std().item() > 0.2      # a real layout: full scale
