"""Reverse domain adaptation (Mahmood, Chen, Durr 2017): a refiner trained adversarially, with
self-regularization, to make real endoscopy frames look like synthetic ones; the forward direction
(synthetic made to look real, Shrivastava et al. 2017, SimGAN) is the same code with one switch.

Public API (torch is imported on first use of a submodule):

- :class:`adapt.config.AdaptConfig`, :func:`adapt.config.load_adapt_config`
- :func:`adapt.train.train_refiner` (cfg, real, synthetic, out_dir, *, resume, steps) -> dict
- :func:`adapt.apply.load_refiner` (RUN/model.pt) -> (model, meta)
- :func:`adapt.apply.refine_images` (model, rgb, mask=None, batch_size=16) -> uint8 frames
- :func:`adapt.apply.apply` (model_path, input, out) -> dict (import it from ``adapt.apply``: the
  submodule of the same name shadows it here)
- :class:`adapt.networks.Refiner`, :class:`adapt.networks.PatchDiscriminator`,
  :class:`adapt.history.HistoryBuffer`
- :mod:`adapt.eval`: ``adapt score`` (:func:`adapt.eval.score.score`), ``adapt match``
  (:func:`adapt.eval.match.match`), ``adapt pick`` (:func:`adapt.eval.pick.pick`) and the
  benchmark's protocol

docs/adaptation.md gives the method, the variants kept and what each was measured to add.
"""
from __future__ import annotations

import importlib

__all__ = ["AdaptConfig", "load_adapt_config", "train_refiner", "load_refiner", "refine_images",
           "Refiner", "PatchDiscriminator", "HistoryBuffer"]

_WHERE = {"AdaptConfig": "config", "load_adapt_config": "config", "train_refiner": "train",
          "load_refiner": "apply", "refine_images": "apply",
          "Refiner": "networks", "PatchDiscriminator": "networks", "HistoryBuffer": "history"}


def __getattr__(name: str):
    """Lazy access, so that ``import adapt`` (and ``colonsim --help``) does not import torch."""
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'adapt' has no attribute {name!r}")
