"""The experiment's config: which datasets to render, which models to train, how to evaluate.

Defaults: ``assets/experiments/full.yaml`` (about an hour on 2 CPU cores) and ``quick.yaml`` (the
``colonsim demo --quick`` config, a few minutes). Every list of ``*_set`` strings is passed as
``--set`` overrides to the stage's own config (sim, depth or adapt).
"""
from __future__ import annotations

from dataclasses import dataclass

from colonsim.config import check_choice, check_range


@dataclass(frozen=True)
class RenderSet:
    frames: int                      # number of frames
    style: str                       # style preset (assets/styles)
    seed: int                        # dataset seed; different seeds give different colons and poses
    sim_set: tuple[str, ...] = ()    # --set overrides of the forward-model config

    def __post_init__(self):
        check_range("frames", self.frames, 1, None)
        check_range("seed", self.seed, 0, 2**31 - 1)


@dataclass(frozen=True)
class TrainStage:
    steps: int                       # optimizer steps
    config_set: tuple[str, ...] = ()  # --set overrides of the depth or adapt config

    def __post_init__(self):
        check_range("steps", self.steps, 1, None)


@dataclass(frozen=True)
class EvalConfig:
    align: str = "none"              # none | median | lsq: per-image scale alignment before the metrics
    max_depth_mm: float = 200.0      # depth cap of the metrics, mm
    bootstrap: int = 2000            # bootstrap resamples for the 95% confidence intervals
    panel_frames: int = 6            # frames shown in the report's image grid

    def __post_init__(self):
        check_choice("align", self.align, ("none", "median", "lsq"))
        check_range("max_depth_mm", self.max_depth_mm, 0.0, None, lo_open=True)
        check_range("bootstrap", self.bootstrap, 100, 100000)
        check_range("panel_frames", self.panel_frames, 1, 32)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str                         # shown in the report
    size_px: int                      # image size of every rendered set and network
    train: RenderSet                  # clean-style synthetic training set (the synthetic domain)
    train_realistic: RenderSet        # realistic-style training set, for the upper-bound baseline
    real_like: RenderSet              # realistic-style unlabeled set: the "real" domain for the refiner
    test: RenderSet                   # held-out realistic-style test set with ground-truth depth
    depth: TrainStage                 # depth network training
    adapt: TrainStage                 # refiner training (both directions)
    eval: EvalConfig
    real_folder: str = ""             # train the refiner on this folder of real frames instead of real_like
    qualitative_folder: str = ""      # real frames without depth for a qualitative panel ("" = skip)
    ct_mesh: str = ""                 # CT colon folder to add to the test set when present ("" = skip)
    ct_frames: int = 0                # frames rendered from the CT colon
    ct_scale: str = "0.808594,0.808594,0.7"  # CT voxel size, mm (sx,sy,sz): Gut Cell Atlas model 00020
    ct_centerline: str = "Paths_large_intestine_path.jsn"  # centreline file inside ct_mesh ("" = computed)
    baselines: bool = True            # also run the upper bound and the forward (SimGAN) direction
    workers: int = 2                  # render processes

    def __post_init__(self):
        check_range("size_px", self.size_px, 16, 1024)
        check_range("ct_frames", self.ct_frames, 0, None)
        check_range("workers", self.workers, 1, 64)
