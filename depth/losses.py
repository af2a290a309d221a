"""Training losses, masked by the field mask and valid depth. All take (N, 1, H, W) tensors:
``pred`` depth mm (> 0), ``gt`` depth mm (0 = invalid), ``mask`` 1 inside the image circle.

- ``silog``: the scale-invariant log loss of Eigen, Puhrsch, Fergus (NIPS 2014), per image:
  ``mean(d^2) - lambda * mean(d)^2`` with ``d = log pred - log gt`` over valid pixels.
- ``l1_log``: mean ``|d|`` over valid pixels (anchors the absolute scale that silog leaves free).
- ``grad``: multi-scale gradient matching (Li & Snavely, MegaDepth, CVPR 2018): the L1 norm of the
  x and y differences of ``d`` between neighbouring valid pixels, at ``grad_scales`` scales, each
  half the resolution of the one before. It is zero for any prediction equal to gt times a constant.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-6


def valid_mask(gt: torch.Tensor, mask: torch.Tensor, max_depth_mm: float) -> torch.Tensor:
    """(N, 1, H, W) bool: inside the field mask, with a surface, not beyond ``max_depth_mm``."""
    return (mask > 0.5) & (gt > 0) & (gt <= max_depth_mm)


def _log_diff(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    d = torch.log(pred.float().clamp_min(_EPS)) - torch.log(gt.float().clamp_min(_EPS))
    return torch.where(valid, d, torch.zeros_like(d))


def silog_loss(d: torch.Tensor, valid: torch.Tensor, lam: float) -> torch.Tensor:
    """Mean over images of ``mean(d^2) - lam * mean(d)^2``; images without valid pixels count 0."""
    n = valid.flatten(1).sum(1).float()
    s1 = d.flatten(1).sum(1) / n.clamp_min(1)
    s2 = (d ** 2).flatten(1).sum(1) / n.clamp_min(1)
    return (s2 - lam * s1 ** 2).clamp_min(0).mean()


def l1_log_loss(d: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return d.abs().sum() / valid.sum().clamp_min(1)


def gradient_loss(d: torch.Tensor, valid: torch.Tensor, scales: int) -> torch.Tensor:
    """Sum over scales of the mean L1 gradient of the log-depth error between valid neighbours."""
    total = d.new_zeros(())
    v = valid.float()
    for k in range(scales):
        if k:
            # Average d over valid pixels of each 2x2 cell; a cell is valid if any pixel is.
            vs = F.avg_pool2d(v, 2)
            d = F.avg_pool2d(d * v, 2) / vs.clamp_min(_EPS)
            v = (vs > 0).float()
        if min(d.shape[-2:]) < 2:
            break
        vx = v[..., :, 1:] * v[..., :, :-1]
        vy = v[..., 1:, :] * v[..., :-1, :]
        gx = (d[..., :, 1:] - d[..., :, :-1]).abs() * vx
        gy = (d[..., 1:, :] - d[..., :-1, :]).abs() * vy
        total = total + (gx.sum() + gy.sum()) / (vx.sum() + vy.sum()).clamp_min(1)
    return total


def depth_losses(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, cfg) -> dict[str, torch.Tensor]:
    """The weighted terms and their sum ("total"), given a LossConfig ``cfg``."""
    valid = valid_mask(gt, mask, cfg.max_depth_mm)
    d = _log_diff(pred, gt, valid)
    terms = {}
    if cfg.silog:
        terms["silog"] = silog_loss(d, valid, cfg.silog_lambda)
    if cfg.l1_log:
        terms["l1_log"] = l1_log_loss(d, valid)
    if cfg.grad:
        terms["grad"] = gradient_loss(d, valid, cfg.grad_scales)
    weights = {"silog": cfg.silog, "l1_log": cfg.l1_log, "grad": cfg.grad}
    terms["total"] = sum(weights[k] * v for k, v in terms.items())
    return terms
