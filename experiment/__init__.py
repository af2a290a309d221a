"""The paper's experiment end to end: render, train depth and the refiner, evaluate raw against
adapted with bootstrap confidence intervals, and write a self-contained report.

Public API: :func:`run_experiment`, :func:`load_experiment_config`, :class:`ExperimentConfig`.
"""
from .config import ExperimentConfig
from .pipeline import load_experiment_config, run_experiment

__all__ = ["ExperimentConfig", "load_experiment_config", "run_experiment"]
