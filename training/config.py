"""The ``compute`` config section that every trainer shares (no torch import: configs load fast)."""
from __future__ import annotations

from dataclasses import dataclass

from colonsim.config import check_choice, check_range

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ComputeConfig:
    device: str           # "auto" (CUDA when available), "cpu" or "cuda"
    threads: int          # torch CPU threads; 0 = torch's default
    bf16: bool            # bfloat16 autocast of the network passes (CPU or CUDA)
    channels_last: bool   # channels-last (NHWC) memory format for the convolutions

    def __post_init__(self):
        check_choice("device", self.device, DEVICES)
        check_range("threads", self.threads, 0, 256)
