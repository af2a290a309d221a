"""depth/: a monocular depth network trained on ColonSim's synthetic frames, evaluated on real frames
as they are and after reverse domain adaptation (Mahmood, Chen, Durr 2017).

Public API (imported on first use, so that ``import depth`` does not load torch):

- :func:`depth.config.load_depth_config`, :class:`depth.config.DepthConfig`
- :func:`depth.train.train_depth`
- :func:`depth.networks.load_model`, :class:`depth.networks.DepthUNet`
- :func:`depth.predict.predict_depth`, :func:`depth.predict.predict_folder`
- :func:`depth.metrics.compute_metrics`, :func:`depth.metrics.aggregate`
- :func:`depth.evaluate.evaluate` (import it from its module: ``depth.evaluate`` is the module), with
  an optional frame transform (:data:`depth.evaluate.FrameTransform`) applied to every frame first;
  depth/ does not import adapt/: experiment/ makes adapt's refiner such a transform

Training follows :mod:`training` (run folder, checkpoints, ``--resume``, the ``compute`` settings).
- :func:`depth.export.export_model`
- :func:`depth.gt.read_depth`, :func:`depth.gt.find_depth_file`
"""
from __future__ import annotations

import importlib

_API = {
    "DepthConfig": "config", "load_depth_config": "config",
    "train_depth": "train",
    "load_model": "networks", "DepthUNet": "networks",
    "predict_depth": "predict", "predict_folder": "predict",
    "compute_metrics": "metrics", "aggregate": "metrics",
    "export_model": "export",
    "read_depth": "gt", "find_depth_file": "gt",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'depth' has no attribute {name!r}")
