"""One checkpoint format for every model that ColonSim trains.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written by ``torch.save``
and read back with ``torch.load(weights_only=True)`` only, so that loading one runs no code::

    kind            str   what the file holds, e.g. "colonsim.depth"; a loader names the kind it wants
    format_version  int   the version of that kind's layout; a loader refuses any other
    model_args      dict  keyword arguments that rebuild the network: ``build(**model_args)``
    model           dict  the network's state dict (tensors on the CPU)
    config          dict  the full config of the run that wrote it (``colonsim.config.to_dict``)
    software_version str  the ColonSim version that wrote it
    ...                   whatever the trainer adds: in RUN/last.pt the training state (step,
                          optimizer, scaler, history, rng states) that ``--resume`` needs

:func:`save_checkpoint` writes to a temporary file and renames it, so a crash never leaves half a
checkpoint under the real name. :func:`load_checkpoint` and :func:`load_model` raise
:class:`colonsim.errors.CheckpointError` with one line that names the file for anything else: a
missing, empty, truncated or corrupt file, a pickled Python object, another kind, another version,
missing keys, model arguments that do not build the network, or weights that do not fit it.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from colonsim import __version__
from colonsim import config as cfgmod
from colonsim.errors import CheckpointError

#: The keys every checkpoint has.
REQUIRED = ("kind", "format_version", "model_args", "model", "config")
#: The keys of the training state, dropped from the ``meta`` that :func:`load_model` returns.
TRAINING_STATE = ("model", "optimizer", "optimizers", "scaler", "scheduler", "rng")


def state_dict_cpu(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's (or a state dict's) tensors."""
    sd = model.state_dict() if isinstance(model, nn.Module) else model
    return {k: v.detach().cpu().clone() for k, v in sd.items()}


def save_checkpoint(path: str | Path, *, kind: str, format_version: int, model_args: Mapping[str, Any],
                    model: nn.Module | Mapping[str, torch.Tensor], config: Any, **extra: Any) -> Path:
    """Write a checkpoint atomically (see the module doc for the keys); returns its path.

    Args:
        path: the file; its folder is created.
        kind, format_version: the tag the loader checks.
        model_args: keyword arguments that rebuild the network (plain values only).
        model: the network, or its state dict.
        config: the run's config, a config dataclass or a plain dict.
        extra: more keys (training state, metrics); plain values and tensors only.
    """
    path = Path(path)
    payload = {"kind": kind, "format_version": int(format_version), "model_args": dict(model_args),
               "model": state_dict_cpu(model),
               "config": config if isinstance(config, dict) else cfgmod.to_dict(config),
               "software_version": __version__, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, kind: str, format_version: int, what: str = "") -> dict[str, Any]:
    """Read a checkpoint of ``kind`` and ``format_version``; CheckpointError (one line) otherwise.

    ``what`` names the expected file in the messages ("a depth model such as RUN/model.pt");
    by default, the kind.
    """
    path = Path(path)
    what = f"{what} ('{kind}')" if what else f"a '{kind}' checkpoint"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; expected {what}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), a checkpoint cut short; expected {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message is long, carries terminal escapes and advice we do not want repeated.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(f"{path} holds a pickled Python object ({found.group(1)}), refused because "
                                  f"loading it could run code; expected {what} (tensors and plain values "
                                  "only)") from None
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt); expected {what}") from None
    except Exception:  # noqa: BLE001 - a corrupt or truncated file fails in many ways (zip, EOF, key)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt); expected {what}") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise CheckpointError(f"{path} is not a ColonSim checkpoint (no 'kind' tag); expected {what}")
    if ckpt["kind"] != kind:
        raise CheckpointError(f"{path} is a '{ckpt['kind']}' checkpoint; expected {what}")
    if ckpt.get("format_version") != format_version:
        raise CheckpointError(f"{path} has format version {ckpt.get('format_version')!r} of '{kind}'; this "
                              f"version of ColonSim reads version {format_version}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; expected {what}")
    if not isinstance(ckpt["model_args"], dict) or not isinstance(ckpt["model"], dict):
        raise CheckpointError(f"{path}: model_args and model must be dicts; expected {what}")
    return ckpt


def build_model(path: str | Path, ckpt: Mapping[str, Any], build: Callable[..., nn.Module]) -> nn.Module:
    """``build(**ckpt["model_args"])`` with the checkpoint's weights loaded; CheckpointError naming
    ``path`` when the arguments do not build the network or the weights do not fit it."""
    try:
        model = build(**ckpt["model_args"])
    # ConfigError is a ValueError; torch raises RuntimeError for a negative width (base_width=-4),
    # and other arithmetic on nonsense arguments fails in the other ways named here.
    except (TypeError, ValueError, RuntimeError, ArithmeticError, AssertionError, IndexError, KeyError) as e:
        raise CheckpointError(f"{path}: its model_args do not build this version's network "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing key", "Unexpected key"))),
                      lines[0] if lines else type(e).__name__)
        raise CheckpointError(f"{path}: its weights do not fit the network of its model_args ({detail})") from None
    return model


def load_model(path: str | Path, kind: str, format_version: int, build: Callable[..., nn.Module],
               device: str | torch.device = "cpu", what: str = "") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained network in eval mode on ``device``. Returns (model, meta): meta is the
    checkpoint without the weights and training state (kind, model_args, config, metrics ...)."""
    ckpt = load_checkpoint(path, kind, format_version, what)
    model = build_model(path, ckpt, build)
    meta = {k: v for k, v in ckpt.items() if k not in TRAINING_STATE}
    return model.to(device).eval(), meta
