"""adapt/'s checkpoints, in :mod:`training.checkpoint`'s format (read with ``weights_only=True``).

RUN/model.pt and RUN/snapshots/step_NNNNNN.pt hold a refiner (kind :data:`REFINER_KIND`): its
``model_args``, its weights (the moving average of them with ``optim.ema_decay``), the run's
config, and ``direction`` and ``steps`` (adversarial steps). RUN/last.pt is of the same kind, with
the refiner's trained weights and the training state that ``--resume`` needs. refiner.pt files of
earlier versions (no ``format_version``, weights under ``state_dict``) are still read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colonsim.errors import CheckpointError
from training.checkpoint import load_checkpoint
from training.checkpoint import save_checkpoint as save_training_checkpoint

#: The refiner (RUN/model.pt, snapshots, and RUN/last.pt with the training state).
REFINER_KIND = "colonsim.refiner"
#: This layout's version; refiner.pt files of earlier versions had none.
FORMAT_VERSION = 2
WHAT = "an adapt refiner (RUN/model.pt)"


def save_refiner(path: str | Path, model: nn.Module, cfg: Any, adversarial_steps: int, **extra: Any) -> Path:
    """Write a refiner checkpoint (atomically): ``model``'s arguments and weights, the run's config,
    its direction and adversarial steps, and ``extra`` (the training state, in last.pt)."""
    return save_training_checkpoint(path, kind=REFINER_KIND, format_version=FORMAT_VERSION, model_args=model.args,
                                    model=model, config=cfg, direction=cfg.direction,
                                    steps=int(adversarial_steps), value_range=[-1.0, 1.0], **extra)


def load_refiner_checkpoint(path: str | Path) -> dict[str, Any]:
    """A refiner checkpoint as a dict with ``model_args`` and ``model`` (the weights); one-line
    CheckpointError naming the file for anything else."""
    try:
        return load_checkpoint(path, REFINER_KIND, FORMAT_VERSION, WHAT)
    except CheckpointError:
        legacy = _legacy_refiner(Path(path))
        if legacy is None:
            raise
        return legacy


def _legacy_refiner(path: Path) -> dict[str, Any] | None:
    """A refiner.pt of an earlier version (kind colonsim.refiner, no format_version, weights under
    ``state_dict``) in this version's keys; None for any other file."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - whatever it is, load_checkpoint's message stands
        return None
    if not (isinstance(ck, dict) and ck.get("kind") == REFINER_KIND and "format_version" not in ck
            and isinstance(ck.get("state_dict"), dict)):
        return None
    out = {k: v for k, v in ck.items() if k != "state_dict"}
    return {**out, "model": ck["state_dict"], "format_version": 1, "config": ck.get("config", {})}


def run_model(run_dir: str | Path) -> Path:
    """The refiner a run folder holds: RUN/model.pt, or the RUN/refiner.pt of runs of earlier versions."""
    run = Path(run_dir)
    return run / "refiner.pt" if not (run / "model.pt").exists() and (run / "refiner.pt").exists() else run / "model.pt"


def run_snapshots(run_dir: str | Path) -> list[Path]:
    """A run folder's snapshots, oldest first: snapshots/step_NNNNNN.pt (refiner_NNNNNN.pt in runs of
    earlier versions)."""
    snaps = Path(run_dir) / "snapshots"
    return sorted(snaps.glob("step_*.pt")) + sorted(snaps.glob("refiner_*.pt"))


def save_checkpoint(obj: dict, path: str | Path) -> None:
    """torch.save ``obj`` to a temporary file, then rename: the writer of the refiner.pt files of
    earlier versions (``{"kind", "model_args", "state_dict", ...}``), which :func:`load_refiner_checkpoint`
    still reads. New files are written by :func:`save_refiner`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
