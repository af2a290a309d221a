"""The depth package's config: frozen dataclasses, defaults in ``assets/defaults/depth.yaml``.

Resolution order: the defaults, then the preset named by ``preset`` (``small``: a U-Net that trains
on 2 CPU cores at 128x128; ``large``: a wider, deeper one worth a GPU), then the user's ``--config``
file, then ``--set`` overrides. Presets live in the same YAML file under ``presets:``, so choosing
the larger network is a config change (``--set preset=large``), not a code change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from colonsim import config as cfgmod
from colonsim.config import check_choice, check_range
from colonsim.errors import ConfigError
from training import config as training_config

DEFAULTS_PATH = cfgmod.assets_path("defaults", "depth.yaml")


@dataclass(frozen=True)
class ModelConfig:
    base_width: int          # channels at full resolution; each level doubles them
    levels: int              # number of 2x downsamplings of the encoder (input padded to 2**levels)
    stem_stride: int         # 1, or 2: the first conv halves the resolution, logits upsampled (4x cheaper)
    max_width: int           # cap on channels at any level
    convs_per_level: int     # 3x3 conv + norm + activation blocks per encoder/decoder level
    norm: str                # "group" (batch-size independent), "batch" or "none"
    min_depth_mm: float      # smallest depth the output can represent, mm
    max_depth_mm: float      # largest depth the output can represent, mm

    def __post_init__(self):
        check_range("base_width", self.base_width, 1, 1024)
        check_range("levels", self.levels, 1, 7)
        check_choice("stem_stride", self.stem_stride, (1, 2))
        check_range("max_width", self.max_width, self.base_width, 4096)
        check_range("convs_per_level", self.convs_per_level, 1, 8)
        check_choice("norm", self.norm, ("group", "batch", "none"))
        check_range("min_depth_mm", self.min_depth_mm, 0.0, None, lo_open=True)
        check_range("max_depth_mm", self.max_depth_mm, self.min_depth_mm, None, lo_open=True)


@dataclass(frozen=True)
class LossConfig:
    silog: float             # weight of the scale-invariant log loss (Eigen, Puhrsch, Fergus 2014)
    silog_lambda: float      # 0 = plain log MSE, 1 = fully scale invariant
    l1_log: float            # weight of the L1 loss on log depth
    grad: float              # weight of the multi-scale gradient matching term (Li & Snavely 2018)
    grad_scales: int         # number of scales (each halves the resolution) of the gradient term
    max_depth_mm: float      # ground truth beyond this depth is ignored, mm

    def __post_init__(self):
        for k in ("silog", "l1_log", "grad"):
            check_range(k, getattr(self, k), 0.0, None)
        check_range("silog_lambda", self.silog_lambda, 0.0, 1.0)
        check_range("grad_scales", self.grad_scales, 1, 8)
        check_range("max_depth_mm", self.max_depth_mm, 0.0, None, lo_open=True)
        if self.silog + self.l1_log + self.grad == 0:
            raise ConfigError("silog", "all loss weights are 0; at least one must be positive")


@dataclass(frozen=True)
class TrainConfig:
    steps: int               # optimizer steps of the whole run
    batch: int               # frames per step
    lr: float                # peak learning rate of AdamW
    weight_decay: float      # AdamW decoupled weight decay
    warmup_steps: int        # linear warm-up from 0 to lr, then cosine decay
    min_lr_ratio: float      # the cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float         # max global gradient norm; 0 = no clipping
    val_fraction: float      # fraction of frames held out for validation when no --val file is given
    val_max_frames: int      # at most this many validation frames are evaluated (0 = all)
    val_every: int           # validate (and maybe save model.pt) every N steps, and at the end
    checkpoint_every: int    # write last.pt and snapshots/step_NNNNNN.pt every N steps, and at the end
    log_every: int           # TensorBoard scalars every N steps
    seed: int                # seeds the split, the batch order, augmentation and initialization
    num_workers: int         # DataLoader worker processes (started with 'spawn'); 0 = main process
    time_limit_min: float    # stop early after this many minutes of training; 0 = no limit

    def __post_init__(self):
        check_range("steps", self.steps, 1, None)
        check_range("batch", self.batch, 1, 4096)
        check_range("lr", self.lr, 0.0, 1.0, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("warmup_steps", self.warmup_steps, 0, None)
        check_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("grad_clip", self.grad_clip, 0.0, None)
        check_range("val_fraction", self.val_fraction, 0.0, 0.9)
        check_range("val_max_frames", self.val_max_frames, 0, None)
        for k in ("val_every", "checkpoint_every", "log_every"):
            check_range(k, getattr(self, k), 1, None)
        check_range("seed", self.seed, 0, 2**32 - 1)
        check_range("num_workers", self.num_workers, 0, 64)
        check_range("time_limit_min", self.time_limit_min, 0.0, None)


@dataclass(frozen=True)
class ComputeConfig(training_config.ComputeConfig):
    """The shared ``compute`` section (device, threads, bf16, channels_last; see training.config)
    and depth's own float16 switch. bf16 and channels_last are measured in benchmarks/depth_quality.py."""
    amp_cuda: bool           # float16 autocast with a gradient scaler on CUDA (wins over bf16 there)


@dataclass(frozen=True)
class DataConfig:
    size_px: int             # frames are resized to size_px x size_px for training and prediction
    flips: bool              # random horizontal and vertical flips (they keep the shading cue)
    rot90: bool              # random rotations by multiples of 90 degrees (keep the shading cue)
    brightness_jitter: float  # max relative global gain; 0 by default, see below
    color_balance_jitter: float  # max relative per-channel gain at constant mean brightness

    # Brightness falls with distance from the scope's light (about 1/d^2), so the global image
    # brightness is itself a depth cue: a random global gain makes the same geometry look nearer or
    # farther and teaches the network to ignore the cue. brightness_jitter is therefore 0 by default;
    # the colour balance can vary (tissue and white balance differ between scopes) because it keeps
    # the mean brightness of each pixel.

    def __post_init__(self):
        check_range("size_px", self.size_px, 8, 4096)
        check_range("brightness_jitter", self.brightness_jitter, 0.0, 0.9)
        check_range("color_balance_jitter", self.color_balance_jitter, 0.0, 0.5)


@dataclass(frozen=True)
class DepthConfig:
    model: ModelConfig       # the network's architecture (stored in every checkpoint)
    loss: LossConfig         # loss weights
    train: TrainConfig       # optimizer, schedule, split, checkpoints
    data: DataConfig         # input size and augmentation
    compute: ComputeConfig   # device, threads, bf16, channels_last, amp_cuda
    preset: str = "small"    # the preset layered over the defaults ("small" or "large")


def presets() -> dict[str, dict]:
    """The presets of ``depth.yaml``: name -> partial config."""
    return dict(cfgmod.read_yaml(DEFAULTS_PATH).get("presets", {}))


def _default_layer() -> dict:
    data = cfgmod.read_yaml(DEFAULTS_PATH)
    data.pop("presets", None)
    return data


def _chosen_preset(path: str | Path | None, overrides: Sequence[str]) -> str:
    name = _default_layer().get("preset", "small")
    if path is not None:
        name = cfgmod.read_yaml(path).get("preset", name)
    for item in overrides:
        parts, value = cfgmod.parse_set(item)
        if parts == ["preset"]:
            name = value
    return name


def load_depth_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DepthConfig:
    """Resolve the depth config: defaults, preset, the user's file, then ``--set`` items."""
    name = _chosen_preset(path, overrides)
    known = presets()
    if name not in known:
        raise ConfigError("preset", f"unknown preset {name!r}; available: {sorted(known)}")
    return cfgmod.load(DepthConfig, [_default_layer(), known[name], {"preset": name}], path, overrides)

