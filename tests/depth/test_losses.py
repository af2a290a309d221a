import torch

from depth.config import load_depth_config
from depth.losses import depth_losses, gradient_loss, silog_loss, valid_mask


def _scene():
    g = torch.Generator().manual_seed(0)
    gt = 10 + 90 * torch.rand(2, 1, 16, 16, generator=g)
    gt[:, :, :2] = 0  # invalid rows
    mask = torch.ones_like(gt)
    mask[..., -3:] = 0
    return gt, mask


def test_scale_invariant_terms_vanish_for_a_scaled_prediction():
    gt, mask = _scene()
    valid = valid_mask(gt, mask, 200.0)
    d = torch.where(valid, torch.log(2.5 * gt.clamp_min(1e-6)) - torch.log(gt.clamp_min(1e-6)), torch.zeros_like(gt))
    assert silog_loss(d, valid, 1.0) < 1e-6  # float32 rounding of 0.84 - 0.84
    assert gradient_loss(d, valid, 4) < 1e-6
    assert silog_loss(d, valid, 0.0) > 0.8  # log(2.5)^2 = 0.84: the plain log MSE sees the scale


def test_losses_ignore_invalid_and_masked_pixels():
    cfg = load_depth_config().loss
    gt, mask = _scene()
    pred = gt.clone().clamp_min(1.0)
    clean = depth_losses(pred, gt, mask, cfg)["total"]
    pred[..., :2, :] = 500.0   # where gt is invalid
    pred[..., -3:] = 0.01      # outside the mask
    assert depth_losses(pred, gt, mask, cfg)["total"] == clean
    assert clean < 1e-6


def test_losses_grow_with_error_and_are_differentiable():
    cfg = load_depth_config().loss
    gt, mask = _scene()
    pred = (gt * torch.exp(0.3 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1)))).clamp_min(1)
    pred.requires_grad_(True)
    losses = depth_losses(pred, gt, mask, cfg)
    losses["total"].backward()
    assert losses["total"] > 0.05 and all(v >= 0 for v in losses.values())
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
