"""The adapt/ config: frozen dataclasses, defaults in ``assets/defaults/adapt.yaml``.

Images inside the networks are CHW float32 in [-1, 1] (declared once, in :mod:`adapt.data`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from colonsim.config import Range, assets_path, check_choice, check_range, load
from colonsim.errors import ConfigError

DEFAULTS = assets_path("defaults", "adapt.yaml")


@dataclass(frozen=True)
class RefinerConfig:
    width: int  # feature maps of the 3x3 head conv and of every residual block (SimGAN: 64)
    blocks: int  # residual blocks between the head and the 1x1 output conv (SimGAN: 4)
    # residual: output = input + conv (last conv starts at zero, so the refiner starts as identity);
    # tanh: output = tanh(conv), as in SimGAN;
    # colour_curve: the conv changes the grey level only, and each pixel takes the synthetic set's
    # colour at its grey level (reverse direction only; see adapt.networks.Refiner)
    output: Literal["residual", "tanh", "colour_curve"]
    # free: the refiner sets each pixel's grey level; keep (colour_curve only): each refined frame
    # keeps its input's grey-level histogram exactly, the refiner choosing only which pixel gets which
    # level (for matched frames, `adapt train --match`, whose tones are a render's; adapt.networks)
    tones: Literal["free", "keep"] = "free"
    # colour_curve only: the change of grey level is averaged over blocks of this many pixels and
    # interpolated back (bilinear), so that it varies smoothly; 0 leaves it per pixel
    smooth_px: int = 0
    # tones keep only: pixels within this fraction of the image circle's box (short side) from its
    # border keep their input's level and take no part in the exchange (no discriminator judges a
    # patch that overlaps the border); at 0.15 the exchange stays inside the largest square within
    # a round circle (a circle wider than tall leaves some of it beside that square)
    rim_frac: float = 0.0
    # in training, each refined frame is rounded to the 8-bit levels it is saved with before any
    # loss or critic sees it; the gradient passes the rounding unchanged (straight-through), so the
    # refiner learns only changes that survive in the frames it writes
    quantize: bool = False
    # colour_curve with free tones only, > 0: one tone curve per frame instead of a change per pixel:
    # the change of grey level at this many evenly spaced levels, from the network's features
    # averaged over the image circle, interpolated in between (adapt.networks.frame_curve)
    frame_knots: int = 0

    def __post_init__(self):
        check_range("width", self.width, 1, 1024)
        check_range("smooth_px", self.smooth_px, 0, 256)
        check_range("rim_frac", self.rim_frac, 0, 0.5, hi_open=True)
        if self.rim_frac and self.tones != "keep":
            raise ConfigError("rim_frac", f"needs tones keep, got tones {self.tones}")
        if self.smooth_px and self.output != "colour_curve":
            raise ConfigError("smooth_px", f"needs output colour_curve, got output {self.output}")
        check_range("frame_knots", self.frame_knots, 0, 256)
        if self.frame_knots == 1:
            raise ConfigError("frame_knots", "needs 0 (off) or at least 2 knots, got 1")
        if self.frame_knots and (self.output != "colour_curve" or self.tones != "free" or self.smooth_px):
            raise ConfigError("frame_knots", f"needs output colour_curve, tones free and smooth_px 0, got "
                                             f"output {self.output}, tones {self.tones}, smooth_px {self.smooth_px}")
        check_range("blocks", self.blocks, 0, 64)
        check_choice("output", self.output, ("residual", "tanh", "colour_curve"))
        check_choice("tones", self.tones, ("free", "keep"))
        if self.tones == "keep" and self.output != "colour_curve":
            raise ConfigError("tones", f"keep needs output colour_curve, got output {self.output}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    width: int  # feature maps of the first conv; doubled at each stride-2 conv (capped at 8x)
    layers: int  # stride-2 3x3 convs; one realism logit per patch of (2^layers) px stride
    spectral_norm: bool  # spectral normalization on every conv (Miyato et al. 2018)
    scales: int = 1  # discriminators of this shape; the k-th sees the frame average-pooled by 2^k
    # (k = 0 .. scales-1); losses and the logged accuracies are means over the scales
    # also a frame-level discriminator shaped like `adapt score`'s classifier (four stride-2 convs,
    # features averaged inside the image circle, one logit; adapt.networks.GlobalDiscriminator),
    # judged alongside the patch scales with the same weight as one of them
    global_head: bool = False
    # what the frame-level head judges: square, the largest square inside the image circle, as
    # `adapt score` does (the border's shape cannot give the domain away); circle, the whole circle,
    # the head's first form, whose features near the border see the border's shape
    global_view: Literal["square", "circle"] = "square"
    # > 0: fresh critics. Every this many adversarial steps, ``fresh_count`` classifiers of `adapt
    # score`'s shape (adapt.score.DomainClassifier, on the square view) are trained from scratch for
    # ``fresh_steps`` updates on ``fresh_pool`` frames of each domain (the refiner's current output
    # against target frames), then frozen; their mean cross-entropy is the refiner's adversarial
    # loss until the next ones. The co-trained discriminators above then take no part (the
    # pre-training of the discriminator is skipped). 0: the co-trained discriminators (SimGAN)
    fresh_every: int = 0
    fresh_count: int = 2
    fresh_steps: int = 300
    fresh_pool: int = 128
    # > 0: the fresh critics train on, and judge, views with Gaussian noise of this standard
    # deviation (8-bit grey levels) added, new noise each time: changes far under it (adversarial
    # patterns of a level or two, which fool a frozen classifier of clean views) cannot lead them
    fresh_noise: float = 0.0
    # > 0: between rounds the critics do not stay frozen: after each refiner step, each takes this
    # many Adam updates (lr 1e-3, as they were trained; BatchNorm statistics as the round left them)
    # on that step's refined views against as many target views, so that a pattern that fools them
    # is learned back at once, not only at the next round
    fresh_tune: int = 0

    def __post_init__(self):
        check_range("width", self.width, 1, 1024)
        check_range("layers", self.layers, 1, 8)
        check_range("scales", self.scales, 1, 4)
        check_choice("global_view", self.global_view, ("square", "circle"))
        check_range("fresh_every", self.fresh_every, 0)
        check_range("fresh_count", self.fresh_count, 1, 16)
        check_range("fresh_steps", self.fresh_steps, 1)
        check_range("fresh_pool", self.fresh_pool, 2)
        check_range("fresh_noise", self.fresh_noise, 0, 128)
        check_range("fresh_tune", self.fresh_tune, 0, 100)
        if self.fresh_tune and not self.fresh_every:
            raise ConfigError("fresh_tune", "tunes the fresh critics: it needs fresh_every > 0")


SELF_REG_SPACES = ("pixel", "lowpass", "features", "luma", "structure")


@dataclass(frozen=True)
class LossConfig:
    adv: Literal["lsgan", "nonsat"]  # least-squares (Mao et al. 2017) or non-saturating cross-entropy
    adv_weight: float  # weight of the refiner's adversarial loss
    self_reg_weight: float  # weight of the self-regularization L1 (refined vs its input)
    # pixel: L1 on pixels; lowpass: L1 after a Gaussian blur (texture may change, shading may not);
    # features: L1 on fixed features (blurred grey level and its gradients: colour may change too);
    # luma: L1 on the blurred grey level alone (colour and texture may change; edges are not kept)
    # structure: on the blurred grey level standardized per frame (brightness and contrast may change too)
    self_reg_space: Literal["pixel", "lowpass", "features", "luma", "structure"]
    lowpass_sigma_px: float  # Gaussian sigma of the lowpass/features/luma spaces, px at data.size_px
    identity_weight: float  # L1 between R(target frame) and that frame (0 = off)

    def __post_init__(self):
        check_choice("adv", self.adv, ("lsgan", "nonsat"))
        check_range("adv_weight", self.adv_weight, 0)
        check_range("self_reg_weight", self.self_reg_weight, 0)
        check_choice("self_reg_space", self.self_reg_space, SELF_REG_SPACES)
        check_range("lowpass_sigma_px", self.lowpass_sigma_px, 0.3, 32)
        check_range("identity_weight", self.identity_weight, 0)


@dataclass(frozen=True)
class ScheduleConfig:
    pretrain_refiner_steps: int  # refiner updates on self-regularization alone (SimGAN)
    pretrain_disc_steps: int  # discriminator updates against the pre-trained refiner
    kg: int  # refiner updates per adversarial step (SimGAN's K_g)
    kd: int  # discriminator updates per adversarial step (SimGAN's K_d)
    steps: int  # adversarial steps (after both pre-training phases)
    log_every: int  # steps between TensorBoard scalars
    sample_every: int  # steps between sample grids (PNG and TensorBoard)
    checkpoint_every: int  # steps between last.pt / refiner.pt saves
    time_limit_min: float  # stop early (and save) after this many wall minutes; 0 = no limit
    snapshot_every: int = 0  # adversarial steps between snapshots/refiner_NNNNNN.pt (kept); 0 = none

    def __post_init__(self):
        for k in ("pretrain_refiner_steps", "pretrain_disc_steps", "steps"):
            check_range(k, getattr(self, k), 0)
        for k in ("kg", "kd", "log_every", "sample_every", "checkpoint_every"):
            check_range(k, getattr(self, k), 1)
        check_range("time_limit_min", self.time_limit_min, 0)
        check_range("snapshot_every", self.snapshot_every, 0)


@dataclass(frozen=True)
class HistoryConfig:
    size: int  # refined frames kept for the discriminator (SimGAN's buffer); 0 = off
    fraction: float  # fraction of each discriminator fake batch drawn from the history (SimGAN: 0.5)

    def __post_init__(self):
        check_range("size", self.size, 0)
        check_range("fraction", self.fraction, 0, 1)


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
    lr_refiner: float  # Adam learning rate of the refiner
    lr_disc: float  # Adam learning rate of the discriminator
    beta1: float  # Adam beta1 (0.5 is usual for GANs)
    beta2: float  # Adam beta2
    # exponential moving average of the refiner's weights, kept next to the trained ones and saved
    # as refiner.pt (Yazici et al. 2019): each refiner update, ema = decay * ema + (1 - decay) * w.
    # 0 = off (refiner.pt holds the last weights); 0.999 averages over about the last 1,000 updates,
    # and so follows a refiner that is still moving about as many behind (the log's
    # refiner/delta_grey_ema beside refiner/delta_grey): for a run of a few thousand updates 0.99
    # is the better choice (benchmarks/RESULTS.md, "The moving average lagged")
    ema_decay: float = 0.0

    def __post_init__(self):
        check_range("ema_decay", self.ema_decay, 0, 1, hi_open=True)
        check_range("lr_refiner", self.lr_refiner, 0, 1, lo_open=True)
        check_range("lr_disc", self.lr_disc, 0, 1, lo_open=True)
        check_range("beta1", self.beta1, 0, 1, hi_open=True)
        check_range("beta2", self.beta2, 0, 1, hi_open=True)


@dataclass(frozen=True)
class ComputeConfig:
    threads: int  # torch CPU threads; 0 = leave torch's default
    bf16: bool  # bfloat16 autocast for the network passes (CPU or CUDA)
    channels_last: bool  # NHWC memory format for the convolutions
    device: str  # "cpu", "cuda", or "auto" (cuda when available)

    def __post_init__(self):
        check_range("threads", self.threads, 0, 256)
        check_choice("device", self.device, ("cpu", "cuda", "auto"))


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
    compute: ComputeConfig

    def __post_init__(self):
        check_choice("direction", self.direction, ("reverse", "forward"))
        check_range("seed", self.seed, 0)
        if self.refiner.output == "colour_curve" and self.direction != "reverse":
            raise ConfigError("refiner.output", "colour_curve takes the synthetic set's colours, so it needs "
                             "direction reverse")


def load_adapt_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> AdaptConfig:
    """The defaults, then the user's YAML file, then ``--set`` overrides."""
    return load(AdaptConfig, defaults=[DEFAULTS], path=path, overrides=overrides)
