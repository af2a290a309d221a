"""A tiny network and config for the tests of training/."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from training import ComputeConfig


class TinyNet(nn.Module):
    """conv -> batch norm (buffers too) -> linear head, rebuilt from (width, classes)."""

    def __init__(self, width: int = 4, classes: int = 3):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean(dim=(2, 3)))


@dataclass(frozen=True)
class TinyTrain:
    steps: int
    lr: float
    time_limit_min: float
    checkpoint_every: int


@dataclass(frozen=True)
class TinyConfig:
    seed: int
    train: TinyTrain
    compute: ComputeConfig


@pytest.fixture
def tiny_cfg() -> TinyConfig:
    return TinyConfig(seed=3, train=TinyTrain(steps=10, lr=1e-3, time_limit_min=0.0, checkpoint_every=5),
                      compute=ComputeConfig(device="cpu", threads=0, bf16=False, channels_last=False))


@pytest.fixture
def trained_net() -> TinyNet:
    """A TinyNet after two optimizer steps, so weights, buffers and Adam state are all non-trivial."""
    torch.manual_seed(0)
    net = TinyNet(width=4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        loss = net(torch.randn(2, 3, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.opt = opt  # kept beside it for the tests of the training state
    return net
