"""Training of the depth network on ColonSim HDF5 frames (``colonsim depth train``).

Reads top to bottom: config -> data (split, loader) -> model and optimizer -> schedule -> loop.
The run folder is :class:`training.RunDir`'s: ``config.yaml``, ``model.pt`` (best on validation
abs_rel), ``last.pt`` (all state, for ``--resume``, whose rules are training.rundir's),
``snapshots/step_NNNNNN.pt`` every ``checkpoint_every`` steps, TensorBoard events under ``tb/``, and
``loss_curve.png``. Batches and their augmentations are pure functions of (seed, step), so a resumed
run follows the same path as one that never stopped.

Data-parallel: under ``torchrun --nproc_per_node K`` (or ``train_depth(..., nproc=K)``, the CLI's
``--nproc K``) each of K processes trains its contiguous part of the same global batch of
``train.batch`` frames in DistributedDataParallel (:mod:`training.distributed`); the logged loss is
the mean over the processes, and rank 0 alone validates and writes the run folder.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from colonsim import config as cfgmod
from colonsim.data import schema
from colonsim.data.dataset import FrameDataset
from colonsim.errors import DatasetError, InputError
from colonsim.run import interrupt
from training import Panel, RunDir, autocast, channels_last, distributed, pick_device, plot_loss_curve, set_threads

from . import networks
from .config import DepthConfig
from .data import (
    PartBatchSampler,
    ResizedFrames,
    StepBatchSampler,
    check_depth_sample,
    collate_frames,
    count_frames,
    first_intrinsics,
    split_indices,
)
from .losses import depth_losses
from .metrics import aggregate, compute_metrics

log = logging.getLogger(__name__)


def lr_at(step: int, cfg) -> float:
    """Learning rate of a step: linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cos)


def autocast_for(device: torch.device, cfg: DepthConfig):
    """float16 AMP on CUDA (``compute.amp_cuda``), else bfloat16 autocast (``compute.bf16``), else none."""
    return autocast(device, cfg.compute.bf16, fp16_cuda=cfg.compute.amp_cuda)


#: loss_curve.png: the training loss (log scale) beside the validation abs_rel
CURVE_PANELS = (Panel("training loss", ("train/",), "log"), Panel("validation abs_rel", ("val/",)))


def worker_errors(loader):
    """The batches of ``loader``; a DatasetError or InputError raised in a DataLoader worker process
    (which torch re-raises with the worker's traceback in its message) comes out with its own one line."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (DatasetError, InputError) as e:
            lines = str(e).strip().splitlines()
            if len(lines) > 1 and lines[0].startswith("Caught "):
                raise type(e)(lines[-1].split(": ", 1)[-1]) from None
            raise
        yield batch


class Trainer:
    """One training run in one folder. Use :func:`train_depth`."""

    def __init__(self, cfg: DepthConfig, data: Sequence[Path], out: Path, val: Path | None,
                 dist: distributed.Dist = distributed.Dist()):
        self.cfg, self.data, self.run_dir, self.val_path, self.dist = cfg, list(data), RunDir(out), val, dist
        self.device = pick_device(cfg.compute.device)
        set_threads(cfg.compute.threads)
        self.model_args = networks.model_args_from_config(cfg)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global rng
            torch.manual_seed(cfg.train.seed)
            self.model = networks.build_model(self.model_args).to(self.device)
        self.model = channels_last(self.model, cfg.compute.channels_last)
        # self.model is the network itself (saved, validated); self.forward is what trains it.
        self.forward = distributed.wrap(self.model, dist, self.device)
        self.model = getattr(self.forward, "module", self.forward)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                     weight_decay=cfg.train.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and cfg.compute.amp_cuda)
        self.step, self.best = 0, float("inf")
        self.history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_abs_rel": []}
        self.intrinsics_norm = first_intrinsics(self.data[0])
        self._setup_data()

    # ------------------------------------------------------------------ data
    def _setup_data(self) -> None:
        t, size = self.cfg.train, self.cfg.data.size_px
        counts = count_frames(self.data)
        if self.val_path is not None:
            train_idx, val_paths = np.arange(sum(counts)), [self.val_path]
            val_idx = np.arange(sum(count_frames(val_paths)))
        else:
            (train_idx, val_idx), val_paths = split_indices(counts, t.val_fraction), self.data
        if t.val_max_frames and len(val_idx) > t.val_max_frames:  # evenly spaced, to span the set
            val_idx = val_idx[np.linspace(0, len(val_idx) - 1, t.val_max_frames).round().astype(int)]
        self.val_set = ResizedFrames(val_paths, size, val_idx) if len(val_idx) else None
        self.train_set = ResizedFrames(self.data, size, train_idx, augment=self.cfg.data, seed=t.seed)
        log.info("depth train: %d training frames, %d validation frames", len(self.train_set),
                 0 if self.val_set is None else len(self.val_set))

    def _loader(self) -> DataLoader:
        t = self.cfg.train
        sampler = StepBatchSampler(len(self.train_set), t.batch, t.seed, self.step, t.steps)
        if self.dist.enabled:
            sampler = PartBatchSampler(sampler, self.dist.rank, self.dist.world)
        return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate_frames,
                          num_workers=t.num_workers, multiprocessing_context="spawn" if t.num_workers else None,
                          pin_memory=self.device.type == "cuda")

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "best_val_abs_rel": self.best,
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "history": self.history, "data": [str(p) for p in self.data],
                "val": None if self.val_path is None else str(self.val_path),
                "intrinsics_norm": self.intrinsics_norm}

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.best = int(ckpt["step"]), float(ckpt["best_val_abs_rel"])
        self.history = {k: list(v) for k, v in ckpt["history"].items()}

    def save(self, path: Path, resumable: bool = True, **extra: Any) -> Path:
        """A checkpoint; without ``resumable``, no optimizer state (model.pt)."""
        state = self.state()
        if not resumable:
            state = {k: v for k, v in state.items() if k not in ("optimizer", "scaler")}
        return networks.save_checkpoint(path, self.model, self.model_args, config=self.cfg, **state, **extra)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        t = self.cfg.train
        rgb, gt, mask = (batch[k].to(self.device, non_blocking=True)
                         for k in (schema.RGB, schema.DEPTH, schema.MASK))
        rgb = channels_last(rgb, self.cfg.compute.channels_last)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, t)
        self.model.train()
        with autocast_for(self.device, self.cfg):
            pred = self.forward(rgb)
        losses = depth_losses(pred.float(), gt, mask, self.cfg.loss)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        if t.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
        """Mean metrics on the validation frames (align "none"), and the first batch for images."""
        if self.val_set is None:
            return {}, None
        self.model.eval()
        per_image, first = [], None
        loader = DataLoader(self.val_set, batch_size=self.cfg.train.batch, shuffle=False, collate_fn=collate_frames)
        for batch in loader:
            with autocast_for(self.device, self.cfg):
                pred = self.model(batch[schema.RGB].to(self.device)).float().cpu()
            for p, g, m in zip(pred, batch[schema.DEPTH], batch[schema.MASK]):
                per_image.append(compute_metrics(p[0].numpy(), g[0].numpy(), m[0].numpy(),
                                                 max_depth_mm=self.cfg.loss.max_depth_mm))
            if first is None:
                first = {**batch, "pred": pred}
        return aggregate(per_image), first

    # ------------------------------------------------------------------ run
    def run(self, writer) -> dict[str, Any]:
        t = self.cfg.train
        bar = tqdm(total=t.steps, initial=self.step, desc="depth train", unit="step", dynamic_ncols=True,
                   disable=None if self.dist.main else True)
        start, train_time, images, loss, val = time.perf_counter(), 0.0, 0, float("nan"), {}
        tick = time.perf_counter()
        for batch in worker_errors(self._loader()):
            interrupt.check()
            losses = self.train_step(batch)
            now = time.perf_counter()
            out_of_time = bool(t.time_limit_min and now - start > 60 * t.time_limit_min)
            losses, out_of_time = distributed.mean_over_ranks(losses, self.dist, out_of_time)  # all stop together
            images += len(batch["index"]) * self.dist.world
            train_time, loss, tick = train_time + now - tick, losses["total"], now
            self.history["step"].append(self.step)
            self.history["loss"].append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images / max(train_time, 1e-9):.1f}")
            if self.step % t.log_every == 0:
                for k, v in losses.items():
                    writer.add_scalar(f"train/{k}", v, self.step)
                writer.add_scalar("train/lr", lr_at(self.step - 1, t), self.step)
            last = self.step >= t.steps or out_of_time
            if self.dist.main and (self.step % t.val_every == 0 or last):
                val = self._validate_and_keep(writer)
            if self.dist.main and (self.step % t.checkpoint_every == 0 or last):
                self._checkpoint()
            tick = time.perf_counter()
            if out_of_time:
                log.info("depth train: time limit of %g min reached at step %d", t.time_limit_min, self.step)
                break
        bar.close()
        return {"steps": self.step, "best_val_abs_rel": None if math.isinf(self.best) else self.best,
                "val_metrics": val, "final_loss": loss,
                "images_per_s": images / train_time if train_time else float("nan")}

    def _validate_and_keep(self, writer) -> dict[str, float]:
        val, first = self.validate()
        if not val:  # no validation frames: the latest weights are the model
            self.save(self.run_dir.model, resumable=False)
            return val
        for k, v in val.items():
            writer.add_scalar(f"val/{k}", v, self.step)
        if first is not None:
            _log_images(writer, first, self.step, self.cfg.loss.max_depth_mm)
        self.history["val_step"].append(self.step)
        self.history["val_abs_rel"].append(val["abs_rel"])
        if val["abs_rel"] < self.best:
            self.best = val["abs_rel"]
            self.save(self.run_dir.model, resumable=False, val_metrics=val)
        return val

    def _checkpoint(self) -> None:
        self.save(self.run_dir.last)
        if self.step % self.cfg.train.checkpoint_every == 0:
            self.save(self.run_dir.snapshot(self.step))
        write_loss_curve(self.history, self.run_dir.loss_curve)


class _NoWriter:
    """The TensorBoard writer of ranks other than 0, which log nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass


def _log_images(writer, batch: dict[str, torch.Tensor], step: int, max_depth_mm: float, n: int = 4) -> None:
    """TensorBoard samples: rgb, ground truth and predicted depth (gray, near = bright)."""
    def gray(d):
        return (1.0 - (d[:n] / max_depth_mm).clamp(0, 1)).expand(-1, 3, -1, -1) * (d[:n] > 0)
    writer.add_images("val/rgb", batch[schema.RGB][:n], step)
    writer.add_images("val/depth_gt", gray(batch[schema.DEPTH]), step)
    writer.add_images("val/depth_pred", gray(batch["pred"]), step)


def write_loss_curve(history: dict[str, list], path: Path) -> Path:
    """loss_curve.png of a run's history: training loss per step and validation abs_rel."""
    rows = [{"step": st, "train/loss": v} for st, v in zip(history["step"], history["loss"])]
    rows += [{"step": st, "val/abs_rel": v} for st, v in zip(history["val_step"], history["val_abs_rel"])]
    return plot_loss_curve(rows, path, CURVE_PANELS)


def _check_data(data: Sequence[str | Path], val: str | Path | None) -> None:
    """DatasetError naming the file if any training or validation file is not usable ColonSim HDF5,
    or if its depth holds NaN in a sample of its frames (:func:`depth.data.check_depth_sample`; the
    other frames are checked as they are read)."""
    expected = "expected a ColonSim HDF5 with rgb, depth and mask frames (from `colonsim render`)"
    for role, paths in (("--data", data), ("--val", [] if val is None else [val])):
        for p in paths:
            try:
                FrameDataset(Path(p)).close()
            except DatasetError as e:
                raise DatasetError(f"{role} {p}: {e}; {expected}") from None
            check_depth_sample(p)


def train_depth(cfg: DepthConfig, data: Sequence[str | Path], out_dir: str | Path, *, val: str | Path | None = None,
                resume: bool = False, steps: int | None = None, nproc: int = 1) -> dict[str, Any]:
    """Train a depth network; see the module doc for the run folder.

    Args:
        cfg: the config; on resume it must equal the run's config.yaml except in ``train.steps`` and
            ``train.time_limit_min`` (build it with ``training.resume_config``; training.rundir).
        data: ColonSim HDF5 files with rgb, depth and mask (on resume, empty = the run's own files).
        out_dir: the run folder (created; must not already hold a run unless ``resume``).
        val: a separate validation file; without it ``train.val_fraction`` of the frames is held out.
        resume: continue from ``out_dir/last.pt`` with its step count, optimizer state and history.
        steps: total steps of the run (overrides ``train.steps``; on resume, to extend a run).
        nproc: data-parallel processes on this machine (spawned here, as torchrun would; under
            torchrun, leave it at 1). ``train.batch`` stays the global batch and must divide by it.
    Returns a summary: steps, best_val_abs_rel, val_metrics, final_loss, images_per_s, paths.
    """
    if steps is not None:
        cfg = cfgmod.replace(cfg, [f"train.steps={steps}"])
    run = RunDir(out_dir)
    run.check_start(cfg, resume)  # the refusals of training.rundir, before anything is written
    if nproc > 1 and not distributed.from_env().enabled:
        distributed.check_batch(cfg.train.batch, nproc, "train.batch")
        if data:  # here too, so that bad data is one error line rather than one per process
            _check_data(data, val)
        return distributed.launch(train_depth, nproc, cfg, data, out_dir, val=val, resume=resume)
    ckpt = networks.load_checkpoint(run.last) if resume else None
    if ckpt is not None:
        data = data or ckpt["data"]
        val = val if val is not None else ckpt.get("val")
    if not data:
        raise InputError("no training data; pass --data DATA.h5 (repeatable)")
    _check_data(data, val)  # before the run folder exists, so that bad data leaves nothing behind
    dist = distributed.setup(pick_device(cfg.compute.device).type)
    distributed.check_batch(cfg.train.batch, dist.world, "train.batch")
    if dist.main:
        run.create(cfg)

    trainer = Trainer(cfg, [Path(p) for p in data], run.root, None if val is None else Path(val), dist)
    if ckpt is not None:
        trainer.restore(ckpt)
        log.info("depth train: resuming %s at step %d of %d", run.root, trainer.step, cfg.train.steps)
    from torch.utils.tensorboard import SummaryWriter
    if dist.main:
        with SummaryWriter(str(run.tb), purge_step=trainer.step or None) as writer:
            summary = trainer.run(writer)
        if trainer.step >= cfg.train.steps and not run.model.exists():
            trainer.save(run.model, resumable=False)
    else:
        summary = trainer.run(_NoWriter())
    summary = distributed.from_main(summary, dist)  # also: rank 0 has written the run folder
    summary["paths"] = run.paths()
    return summary
