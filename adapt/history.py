"""The history buffer of refined frames (Shrivastava et al. 2017, section 2.3).

The discriminator sees, in each fake batch, a ``fraction`` of frames refined at earlier steps, so
that it does not forget old artifacts and the refiner cannot bring them back. The buffer draws
with its own ``np.random.Generator``; its state (frames and rng) round-trips through a checkpoint.
"""
from __future__ import annotations

import json

import numpy as np
import torch


class HistoryBuffer:
    """A fixed-size store of (C, H, W) tensors (typically refined RGB with its mask as a 4th channel).

    Args:
        size: the most items kept; 0 makes :meth:`mix` return its input unchanged.
        rng: the buffer's own generator (draws which items are returned and which are replaced).
        fraction: share of each :meth:`mix` batch taken from the history once it holds enough items.
    """

    def __init__(self, size: int, rng: np.random.Generator, fraction: float = 0.5):
        self.size = int(size)
        self.fraction = float(fraction)
        self.rng = rng
        self.items: torch.Tensor | None = None  # (n, C, H, W), n <= size, on the CPU
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def mix(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of the same shape: ``round(fraction * B)`` random history items (once the buffer
        holds that many) replace the last items of ``batch``; then ``batch`` is pushed.

        The returned tensor is detached: gradients never flow into old frames.
        """
        batch = batch.detach()
        b = batch.shape[0]
        k = int(round(self.fraction * b)) if self.size > 0 else 0
        out = batch
        if k > 0 and self.n >= k:
            idx = self.rng.choice(self.n, size=k, replace=False)
            old = self.items[torch.from_numpy(idx)].to(batch.device, batch.dtype)
            out = torch.cat([batch[: b - k], old], dim=0)
        self.push(batch)
        return out

    def push(self, batch: torch.Tensor) -> None:
        """Append until full, then overwrite random slots with the new items."""
        if self.size == 0:
            return
        batch = batch.detach().to("cpu", torch.float32)
        if self.items is None:
            self.items = torch.empty((self.size,) + tuple(batch.shape[1:]), dtype=torch.float32)
        if tuple(batch.shape[1:]) != tuple(self.items.shape[1:]):
            raise ValueError(f"history items are {tuple(self.items.shape[1:])}, got {tuple(batch.shape[1:])}")
        for item in batch:
            if self.n < self.size:
                self.items[self.n] = item
                self.n += 1
            else:
                self.items[int(self.rng.integers(self.size))] = item

    def state_dict(self) -> dict:
        """Frames and rng state, loadable with ``torch.load(weights_only=True)``."""
        items = self.items[: self.n].clone() if self.items is not None else torch.empty(0)
        return {"size": self.size, "fraction": self.fraction, "items": items,
                "rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.fraction = int(state["size"]), float(state["fraction"])
        items = state["items"]
        self.n = int(items.shape[0])
        self.items = None
        if self.n:
            self.items = torch.empty((self.size,) + tuple(items.shape[1:]), dtype=torch.float32)
            self.items[: self.n] = items
        self.rng.bit_generator.state = json.loads(state["rng"])
