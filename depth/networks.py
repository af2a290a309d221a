"""The depth network: a U-Net (Ronneberger, Fischer, Brox 2015) that predicts metric depth in mm.

Input: (N, 3, H, W) float32 RGB in [0, 1], any H and W (the input is padded to a multiple of
``stem_stride * 2**levels`` by edge replication and the output is cropped back). With
``stem_stride`` 2 the first convolution halves the resolution and the output logits are upsampled
bilinearly: a quarter of the cost at full resolution, for depth maps that are smooth at that scale.
Output: (N, 1, H, W) float32 depth in mm.

Parameterization: the last layer gives a logit ``t`` per pixel and the depth is
``exp(log(min_depth_mm) + sigmoid(t) * (log(max_depth_mm) - log(min_depth_mm)))``: a bounded log
depth. It is positive and finite by construction, and equal steps of ``t`` near 0 are equal relative
steps in depth, which suits a scene whose depth spans two orders of magnitude.

Checkpoints follow :mod:`training.checkpoint` with kind ``colonsim.depth``: ``model_args`` rebuilds
the network, ``model`` is its state dict, ``config`` the run's config, and last.pt adds the training
state (step, optimizer, history).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colonsim.errors import CheckpointError
from training import checkpoint

KIND = "colonsim.depth"
FORMAT_VERSION = 1
WHAT = "a depth model such as RUN/model.pt"


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    return nn.Identity()


def _block(cin: int, cout: int, n: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=norm == "none"),
                   _norm(norm, cout), nn.SiLU(inplace=True)]
    return nn.Sequential(*layers)


class DepthUNet(nn.Module):
    """U-Net depth regressor (see module doc for input, output and parameterization).

    Args:
        base_width: channels at full resolution; doubled at each level up to ``max_width``.
        levels: number of 2x downsamplings.
        max_width: channel cap.
        convs_per_level: 3x3 conv blocks per level.
        norm: "group", "batch" or "none".
        min_depth_mm, max_depth_mm: the range of the output, mm.
        size_px: the square frame size the network was trained at (used by predict, not forward).
        stem_stride: 1, or 2 to run the U-Net at half resolution (see module doc).
    """

    def __init__(self, base_width: int = 16, levels: int = 4, max_width: int = 128,
                 convs_per_level: int = 2, norm: str = "group", min_depth_mm: float = 0.5,
                 max_depth_mm: float = 400.0, size_px: int = 128, stem_stride: int = 1):
        super().__init__()
        self.levels = levels
        self.stem_stride = stem_stride
        self.size_px = size_px
        self.log_min = math.log(min_depth_mm)
        self.log_span = math.log(max_depth_mm) - self.log_min
        widths = [min(base_width * 2 ** i, max_width) for i in range(levels + 1)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1),
                                  _block(widths[0], widths[0], convs_per_level, norm))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1),
                          _block(widths[i + 1], widths[i + 1], convs_per_level - 1 or 1, norm))
            for i in range(levels))
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i], convs_per_level, norm) for i in range(levels))
        self.head = nn.Conv2d(widths[0], 1, 1)
        nn.init.zeros_(self.head.weight)  # start at the geometric middle of the range
        nn.init.zeros_(self.head.bias)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float RGB in [0, 1] -> (N, 1, H, W) float32 depth in mm."""
        h, w = rgb.shape[-2:]
        m = self.stem_stride * 2 ** self.levels
        ph, pw = (m - h % m) % m, (m - w % m) % m
        x = rgb * 2.0 - 1.0
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips[-1]
        for i in reversed(range(self.levels)):
            y = F.interpolate(y, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[i](torch.cat([y, skips[i]], dim=1))
        t = self.head(y)
        if self.stem_stride > 1:
            t = F.interpolate(t, scale_factor=self.stem_stride, mode="bilinear", align_corners=False)
        t = t[..., :h, :w].float()
        return torch.exp(self.log_min + torch.sigmoid(t) * self.log_span)


def model_args_from_config(cfg) -> dict[str, Any]:
    """The DepthUNet keyword arguments of a DepthConfig (stored in checkpoints)."""
    m = cfg.model
    return dict(base_width=m.base_width, levels=m.levels, max_width=m.max_width,
                convs_per_level=m.convs_per_level, norm=m.norm, min_depth_mm=m.min_depth_mm,
                max_depth_mm=m.max_depth_mm, size_px=cfg.data.size_px, stem_stride=m.stem_stride)


def build_model(model_args: dict[str, Any]) -> DepthUNet:
    """A DepthUNet from stored model arguments; CheckpointError when they do not fit this version."""
    try:
        return DepthUNet(**model_args)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint model arguments do not fit this version of depth/: {e}") from None


def save_checkpoint(path: str | Path, model: nn.Module, model_args: dict[str, Any], *, config: Any,
                    **extra: Any) -> Path:
    """Write a depth checkpoint atomically (training.checkpoint's format, kind ``colonsim.depth``)."""
    return checkpoint.save_checkpoint(path, kind=KIND, format_version=FORMAT_VERSION, model_args=model_args,
                                      model=model, config=config, **extra)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a depth checkpoint (weights only); one-line CheckpointError naming the file for
    a missing or corrupt file, a pickle payload, or a checkpoint of another kind (an adapt/ refiner)."""
    return checkpoint.load_checkpoint(path, KIND, FORMAT_VERSION, what=WHAT)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[DepthUNet, dict[str, Any]]:
    """Rebuild a trained depth network in eval mode. Returns (model, meta): meta is the checkpoint
    without the weights and optimizer state (model_args, config, step, ...)."""
    return checkpoint.load_model(path, KIND, FORMAT_VERSION, DepthUNet, device, what=WHAT)
