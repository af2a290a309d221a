"""Checkpoint files of adapt/: plain dicts of tensors and JSON-able values, read with
``torch.load(weights_only=True)`` only, and tagged with a ``kind`` so that foreign files are refused."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from colonsim import __version__
from colonsim.config import to_dict
from colonsim.errors import CheckpointError

#: The refiner alone, for ``adapt apply`` (and ``depth eval --refiner``).
REFINER_KIND = "colonsim.refiner"
#: Everything needed to resume training (models, optimizers, history, rng states).
TRAIN_STATE_KIND = "colonsim.adapt_train_state"


def save_checkpoint(obj: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename, so that a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint dict of the given ``kind``; CheckpointError for anything else."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message is long and carries terminal escapes; say it in one plain line.
        what = {REFINER_KIND: "refiner", TRAIN_STATE_KIND: "adapt training-state"}.get(kind, repr(kind))
        raise CheckpointError(f"{p} is not a ColonSim {what} checkpoint: it needs unpickling of arbitrary "
                              "objects (refused for safety), or it is corrupt") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways (struct, zip, EOF)
        raise CheckpointError(f"{p} is not a readable torch checkpoint ({type(e).__name__}); "
                              f"expected a '{kind}' checkpoint") from None
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        found = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{p} is a {found!r} checkpoint; expected kind '{kind}'")
    return obj


def refiner_checkpoint(model: nn.Module, cfg, adversarial_steps: int) -> dict:
    """The dict of refiner.pt: the model arguments, weights, direction and the full config."""
    return {"kind": REFINER_KIND, "model_args": dict(model.args),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "direction": cfg.direction, "steps": int(adversarial_steps), "config": to_dict(cfg),
            "value_range": [-1.0, 1.0], "software_version": __version__}
