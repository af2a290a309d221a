"""training/: what every ColonSim trainer (depth/, adapt/) shares, so that there is one way to train.

- :mod:`training.config`: the ``compute`` config section, :class:`ComputeConfig` (``device``,
  ``threads``, ``bf16``, ``channels_last``; no torch import, so configs load fast).
- :mod:`training.compute`: its use: :func:`pick_device`, :func:`set_threads`, :func:`autocast`,
  :func:`channels_last`.
- :mod:`training.checkpoint`: one checkpoint format (``kind``, ``format_version``, ``model_args``,
  ``model``, ``config``, plus training state in last.pt), :func:`save_checkpoint` (atomic),
  :func:`load_checkpoint` and :func:`load_model` (``weights_only=True``; every failure is one
  :class:`colonsim.errors.CheckpointError` line naming the file).
- :mod:`training.curves`: loss_curve.png from logged rows or TensorBoard events
  (:func:`plot_loss_curve`, :func:`plot_run`, :func:`read_scalars`, :class:`Panel`).
- :mod:`training.distributed`: data-parallel training (DistributedDataParallel under torchrun, or
  ``launch`` of K processes for a CLI's ``--nproc K``).
- :mod:`training.rundir`: the run folder (:class:`RunDir`: config.yaml, last.pt, model.pt, tb/,
  snapshots/, loss_curve.png) and the ``--resume`` rules (:meth:`RunDir.check_start`,
  :func:`resume_config`, :data:`MUTABLE_ON_RESUME`); its module doc states them.

Setting names shared by the trainers' configs: ``compute.{device, threads, bf16, channels_last}``,
``steps``, ``time_limit_min`` (wall-clock limit, minutes; 0 = none), ``checkpoint_every``,
``log_every``, ``seed``.

training/ imports torch, numpy, matplotlib, yaml and colonsim's public modules, never a trainer.
Names load on first use, so that ``import training`` does not load torch.
"""
from __future__ import annotations

import importlib

_API = {
    "ComputeConfig": "config", "pick_device": "compute", "set_threads": "compute", "autocast": "compute",
    "channels_last": "compute",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "load_model": "checkpoint",
    "build_model": "checkpoint", "state_dict_cpu": "checkpoint",
    "Panel": "curves", "plot_loss_curve": "curves", "plot_run": "curves", "read_scalars": "curves",
    "RunDir": "rundir", "resume_config": "rundir", "check_resume_config": "rundir", "changed_keys": "rundir",
    "MUTABLE_ON_RESUME": "rundir",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
