"""The adapt/ config: frozen dataclasses, defaults in ``assets/defaults/adapt.yaml``.

Images inside the networks are CHW float32 in [-1, 1] (declared once, in :mod:`adapt.data`).
docs/adaptation.md gives the measured gain of each setting beyond SimGAN's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from colonsim.config import Range, assets_path, check_choice, check_range, load
from colonsim.errors import ConfigError
from training.config import ComputeConfig

DEFAULTS = assets_path("defaults", "adapt.yaml")


@dataclass(frozen=True)
class RefinerConfig:
    width: int  # feature maps of the 3x3 head conv and of every residual block (SimGAN: 64)
    blocks: int  # residual blocks between the head and the 1x1 output conv (SimGAN: 4)
    # residual: output = input + conv, the last conv starting at zero (the refiner starts as the identity);
    # colour_curve: the conv changes the grey level only, and each pixel takes the synthetic set's
    # colour at its grey level (reverse direction only; adapt.networks.Refiner)
    output: Literal["residual", "colour_curve"]
    # colour_curve only, > 0: one tone curve per frame instead of a change per pixel: the change of
    # grey level at this many evenly spaced levels, from the network's features averaged over the
    # image circle, interpolated in between (adapt.networks.frame_curve); 0: a change per pixel
    frame_knots: int = 0

    def __post_init__(self):
        check_range("width", self.width, 1, 1024)
        check_range("blocks", self.blocks, 0, 64)
        check_choice("output", self.output, ("residual", "colour_curve"))
        check_range("frame_knots", self.frame_knots, 0, 256)
        if self.frame_knots == 1:
            raise ConfigError("frame_knots", "needs 0 (off) or at least 2 knots, got 1")
        if self.frame_knots and self.output != "colour_curve":
            raise ConfigError("frame_knots", f"needs output colour_curve, got output {self.output}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    width: int  # feature maps of the first conv; doubled at each stride-2 conv (capped at 8x)
    layers: int  # stride-2 3x3 convs; one realism logit per patch of (2^layers) px stride
    # > 0: fresh critics (adapt.critics). Every this many adversarial steps, two classifiers of
    # `adapt score`'s shape are trained from scratch on the refiner's current output against target
    # frames; they judge the refiner in place of the patch discriminator until the next round,
    # updated after each refiner step. 0: the patch discriminator trained alongside (SimGAN)
    fresh_every: int = 0

    def __post_init__(self):
        check_range("width", self.width, 1, 1024)
        check_range("layers", self.layers, 1, 8)
        check_range("fresh_every", self.fresh_every, 0)


SELF_REG_SPACES = ("pixel", "features", "structure")


@dataclass(frozen=True)
class LossConfig:
    self_reg_weight: float  # weight of the self-regularization L1 (refined vs its input); adversarial weight 1
    # pixel: L1 on pixels (SimGAN); features: L1 on the blurred grey level and its gradients (colour and
    # texture may change, shading may not); structure: on the blurred grey level standardized per
    # frame (brightness and contrast may change too; adapt.losses.self_regularization)
    self_reg_space: Literal["pixel", "features", "structure"]

    def __post_init__(self):
        check_range("self_reg_weight", self.self_reg_weight, 0)
        check_choice("self_reg_space", self.self_reg_space, SELF_REG_SPACES)


@dataclass(frozen=True)
class ScheduleConfig:
    pretrain_refiner_steps: int  # refiner updates on self-regularization alone (SimGAN)
    pretrain_disc_steps: int  # discriminator updates against the pre-trained refiner
    steps: int  # adversarial steps (after both pre-training phases), one update of each network
    log_every: int  # steps between TensorBoard scalars
    checkpoint_every: int  # steps between saves of the run folder and a sample grid
    time_limit_min: float  # stop early (and save) after this many wall minutes; 0 = no limit
    snapshot_every: int = 0  # adversarial steps between snapshots/step_NNNNNN.pt (kept); 0 = none

    def __post_init__(self):
        for k in ("pretrain_refiner_steps", "pretrain_disc_steps", "steps"):
            check_range(k, getattr(self, k), 0)
        for k in ("log_every", "checkpoint_every"):
            check_range(k, getattr(self, k), 1)
        check_range("time_limit_min", self.time_limit_min, 0)
        check_range("snapshot_every", self.snapshot_every, 0)


@dataclass(frozen=True)
class HistoryConfig:
    size: int  # refined frames kept for the discriminator (SimGAN's buffer; half of each fake batch); 0 = off

    def __post_init__(self):
        check_range("size", self.size, 0)


@dataclass(frozen=True)
class DataConfig:
    size_px: int  # side of the square training crops, px
    crop: Range  # crop side as a fraction of the image circle's bounding-box short side, drawn per crop
    batch_size: int  # frames per batch, for each domain
    cache_short_side_px: int  # real frames are kept in memory resized to this short side, px

    def __post_init__(self):
        check_range("size_px", self.size_px, 8, 2048)
        check_range("crop", self.crop, 0.05, 1.0)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("cache_short_side_px", self.cache_short_side_px, 8)


@dataclass(frozen=True)
class OptimConfig:
    # exponential moving average of the refiner's weights, saved as model.pt (Yazici et al. 2019):
    # each refiner update, ema = decay * ema + (1 - decay) * w; it follows the refiner about
    # 1 / (1 - decay) updates behind. 0 = off (model.pt holds the last weights)
    ema_decay: float = 0.0

    def __post_init__(self):
        check_range("ema_decay", self.ema_decay, 0, 1, hi_open=True)


@dataclass(frozen=True)
class AdaptConfig:
    # reverse: refine real frames towards synthetic (Mahmood et al. 2017, the default);
    # forward: refine synthetic frames towards real (Shrivastava et al. 2017, SimGAN)
    direction: Literal["reverse", "forward"]
    seed: int  # seeds network init, data sampling and the history buffer
    refiner: RefinerConfig
    discriminator: DiscriminatorConfig
    losses: LossConfig
    schedule: ScheduleConfig
    history: HistoryConfig
    data: DataConfig
    optim: OptimConfig
    compute: ComputeConfig  # device, threads, bf16, channels_last: shared with depth/ (training.config)

    def __post_init__(self):
        check_choice("direction", self.direction, ("reverse", "forward"))
        check_range("seed", self.seed, 0)
        if self.refiner.output == "colour_curve" and self.direction != "reverse":
            raise ConfigError("refiner.output", "colour_curve takes the synthetic set's colours, so it needs "
                             "direction reverse")


def load_adapt_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> AdaptConfig:
    """The defaults, then the user's YAML file, then ``--set`` overrides."""
    return load(AdaptConfig, defaults=[DEFAULTS], path=path, overrides=overrides)
