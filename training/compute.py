"""Where and how a trainer computes: the device, torch's CPU threads, autocast, channels-last.

Every trainer's config has a ``compute`` section of this shape (:class:`training.config.ComputeConfig`;
a trainer may subclass it to add a field of its own, as depth/ adds ``amp_cuda``)::

    compute:
      device: auto          # "auto" (CUDA when available), "cpu" or "cuda"
      threads: 0            # torch CPU threads; 0 = torch's default
      bf16: false           # bfloat16 autocast of the network passes (CPU or CUDA)
      channels_last: false  # channels-last (NHWC) memory format for the convolutions

Use: ``device = pick_device(cfg.compute.device)``; ``set_threads(cfg.compute.threads)``;
``with autocast(device, cfg.compute.bf16): y = model(x)``; ``channels_last(model_or_batch, on)``.
"""
from __future__ import annotations

import contextlib
from typing import TypeVar

import torch

from colonsim.errors import InputError

from .config import DEVICES, ComputeConfig

__all__ = ["ComputeConfig", "DEVICES", "autocast", "channels_last", "pick_device", "set_threads"]


def pick_device(name: str) -> torch.device:
    """The torch device of a ``compute.device`` setting; InputError for "cuda" without CUDA."""
    if name not in DEVICES:
        raise InputError(f"compute.device is {name!r}; expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("compute.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def set_threads(threads: int) -> None:
    """torch's intra-op CPU threads; 0 leaves torch's default (one per core) unchanged."""
    if threads:
        torch.set_num_threads(int(threads))


def autocast(device: torch.device, bf16: bool, fp16_cuda: bool = False):
    """The autocast context of a network pass: float16 on CUDA when ``fp16_cuda`` (it needs a
    ``torch.amp.GradScaler`` for training), else bfloat16 when ``bf16``, else none."""
    if device.type == "cuda" and fp16_cuda:
        return torch.autocast("cuda", dtype=torch.float16)
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


T = TypeVar("T", torch.nn.Module, torch.Tensor)


def channels_last(x: T, on: bool) -> T:
    """A module or a 4-D batch in channels-last memory format when ``on``, else ``x`` unchanged."""
    if not on:
        return x
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last)
