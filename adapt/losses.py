"""Losses of the refiner and the discriminator, all restricted to the inside of the image circle.

Images are (N, 3, H, W) float in [-1, 1]; masks are (N, 1, H, W) float, 1 inside the circle.
Discriminator logits are (N, 1, h, w), one per patch; a patch weight map of the same shape says
which patches lie wholly inside the circle (see :func:`patch_weights`), so that the border shape,
which differs between real scopes and the renderer's lens, never tells the domains apart.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import SELF_REG_SPACES


def patch_weights(mask: torch.Tensor, logits_hw: tuple[int, int], receptive_field_px: int) -> torch.Tensor:
    """(N, 1, h, w) float: 1 for the patches whose receptive field lies inside ``mask``, else 0.

    Args:
        mask: (N, 1, H, W) float, 1 inside the image circle.
        logits_hw: (h, w) of the discriminator's output.
        receptive_field_px: side of the input patch that one logit sees.
    """
    k = receptive_field_px | 1  # odd, so that the pooling window is centred
    outside = F.max_pool2d(1.0 - mask, kernel_size=k, stride=1, padding=k // 2)
    inside = 1.0 - F.adaptive_max_pool2d(outside, logits_hw)
    return inside


def _wmean(x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return x.mean()
    w = w.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


def adversarial(logits: torch.Tensor, is_target: bool, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-patch least-squares adversarial loss (Mao et al. 2017), (logit - label)^2, towards label 1
    (``is_target``, the domain the refiner aims at) or 0; weighted mean over the patches."""
    label = torch.full_like(logits, 1.0 if is_target else 0.0)
    return _wmean((logits.float() - label) ** 2, weights)


#: The logit above which a patch is called "target domain" (half-way between the labels).
DECISION_THRESHOLD = 0.5


def accuracy(logits: torch.Tensor, is_target: bool, weights: torch.Tensor | None = None) -> float:
    """Fraction of (weighted) patches the discriminator labels correctly."""
    called_target = (logits.float() > DECISION_THRESHOLD).float()
    correct = called_target if is_target else 1.0 - called_target
    return float(_wmean(correct, weights))


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), replicate padding; the kernel spans +-3 sigma."""
    r = max(1, int(math.ceil(3 * sigma_px)))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")  # replicate works for any image size, unlike reflect
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def structure_features(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Fixed features that keep the shading and drop colour and texture: (N, 3, H, W) = the blurred
    grey level and its x/y gradients (central differences), scaled to similar ranges."""
    grey = gaussian_blur(x.mean(dim=1, keepdim=True), sigma_px)
    gx = F.pad(grey[..., :, 2:] - grey[..., :, :-2], (1, 1, 0, 0), mode="replicate")
    gy = F.pad(grey[..., 2:, :] - grey[..., :-2, :], (0, 0, 1, 1), mode="replicate")
    return torch.cat([grey, 2.0 * sigma_px * gx, 2.0 * sigma_px * gy], dim=1)


STRUCTURE_SCALE = 0.25  # a standardized grey level of 1 (one standard deviation) counts as 0.25


def standardize(grey: torch.Tensor, weights: torch.Tensor | None, eps: float = 0.02) -> torch.Tensor:
    """(N, 1, H, W) grey levels shifted and scaled to mean 0 and standard deviation
    :data:`STRUCTURE_SCALE` per frame, weighted by ``weights`` (a flat frame stays flat: ``eps``
    keeps its tiny deviations tiny)."""
    w = torch.ones_like(grey) if weights is None else weights.expand_as(grey)
    n = w.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
    m = (grey * w).sum(dim=(1, 2, 3), keepdim=True) / n
    sd = (((grey - m) ** 2 * w).sum(dim=(1, 2, 3), keepdim=True) / n).sqrt()
    return (grey - m) / (sd + eps) * STRUCTURE_SCALE


#: Gaussian sigma of the blurred self-regularization spaces, px at ``data.size_px``.
SELF_REG_SIGMA_PX = 2.0


def self_regularization(refined: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None,
                        space: str, sigma_px: float = SELF_REG_SIGMA_PX) -> torch.Tensor:
    """Mean L1 between the refined frame and its input inside the mask, in the chosen space.

    ``pixel``: on the [-1, 1] pixels (SimGAN); ``features``: on :func:`structure_features` (shading
    kept, colour and texture free: the domains differ most in those); ``structure``: on the
    grey level blurred by ``sigma_px`` and standardized per frame (:func:`standardize`): brightness
    and contrast are free too, and only the layout of light and dark is kept, the same view as the
    score's structure floor (:func:`adapt.eval.score.structure_view`). The mask is eroded by the
    blur radius for the blurred spaces, so that the black border does not leak into them.
    """
    refined, source = refined.float(), source.float()
    w = mask
    if mask is not None and space != "pixel":
        k = 2 * int(math.ceil(2 * sigma_px)) + 1
        w = 1.0 - F.max_pool2d(1.0 - mask, kernel_size=k, stride=1, padding=k // 2)
    if space == "pixel":
        a, b = refined, source
    elif space == "features":
        a, b = structure_features(refined, sigma_px), structure_features(source, sigma_px)
    elif space == "structure":
        a, b = (standardize(gaussian_blur(v.mean(dim=1, keepdim=True), sigma_px), w) for v in (refined, source))
    else:
        raise ValueError(f"self-regularization space {space!r}; expected {', '.join(SELF_REG_SPACES)}")
    return _wmean((a - b).abs(), w)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` inside the mask."""
    return _wmean(x.float(), mask)


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean |a - b| inside the mask (all channels)."""
    return _wmean((a.float() - b.float()).abs(), mask)
