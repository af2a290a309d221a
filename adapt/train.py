"""Train the refiner adversarially (SimGAN's schedule; reverse direction by default).

Reads top to bottom: config and run folder, data, models, schedule, loop. The refiner's input
domain is "real" in the ``reverse`` direction (Mahmood, Chen, Durr 2017) and "synthetic" in the
``forward`` direction (Shrivastava et al. 2017); the discriminator's target domain is the other.

Schedule: ``pretrain_refiner_steps`` updates on self-regularization alone, ``pretrain_disc_steps``
discriminator updates, then ``steps`` adversarial steps of ``kg`` refiner and ``kd`` discriminator
updates. The run folder holds config.yaml, refiner.pt (for apply), last.pt (for ``--resume``),
samples_<step>.png grids, TensorBoard events and loss_curve.png.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from colonsim import __version__
from colonsim.config import to_dict, to_yaml
from colonsim.errors import CheckpointError, InputError

from . import losses
from .checkpoint import TRAIN_STATE_KIND, load_checkpoint, refiner_checkpoint, save_checkpoint
from .config import AdaptConfig
from .data import CropSampler, open_frames, to_uint8
from .history import HistoryBuffer
from .logbook import Logbook
from .networks import PatchDiscriminator, Refiner

log = logging.getLogger(__name__)

def _device(cfg: AdaptConfig) -> torch.device:
    if cfg.compute.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.compute.device == "cuda" and not torch.cuda.is_available():
        raise InputError("compute.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(cfg.compute.device)


class Trainer:
    """Holds the models, optimizers, data samplers and history buffer of one run."""

    def __init__(self, cfg: AdaptConfig, real: str | Path, synthetic: str | Path, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir
        self.device = _device(cfg)
        if cfg.compute.threads:
            torch.set_num_threads(cfg.compute.threads)
        seeds = np.random.SeedSequence(cfg.seed).spawn(5)
        real_frames = open_frames(real, cfg.data.cache_short_side_px)
        synth_frames = open_frames(synthetic, cfg.data.cache_short_side_px)
        src, tgt = (real_frames, synth_frames) if cfg.direction == "reverse" else (synth_frames, real_frames)
        self.source = CropSampler(src, cfg.data, np.random.default_rng(seeds[0]))
        self.target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[1]))
        self.history = HistoryBuffer(cfg.history.size, np.random.default_rng(seeds[2]), cfg.history.fraction)
        # A fixed set of frames for the sample grids, so that grids of successive steps compare.
        fixed = CropSampler(src, cfg.data, np.random.default_rng(seeds[3]))
        self.fixed_source = fixed.next_batch()
        self.fixed_target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[4])).next_batch()

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(cfg.seed)
            self.refiner = Refiner(**to_dict(cfg.refiner)).to(self.device)
            self.disc = PatchDiscriminator(**to_dict(cfg.discriminator)).to(self.device)
        if cfg.compute.channels_last:
            self.refiner.to(memory_format=torch.channels_last)
            self.disc.to(memory_format=torch.channels_last)
        o = cfg.optim
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=o.lr_refiner, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=o.lr_disc, betas=(o.beta1, o.beta2))
        self.step = 0  # schedule steps done, pre-training included
        self.records: list[dict] = []  # one dict of mean scalars per log interval

    # ------------------------------------------------------------------ one update each

    def _to(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.compute.channels_last else x

    def _autocast(self):
        if not self.cfg.compute.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def refine(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The refined frame, black (-1) outside the mask."""
        with self._autocast():
            y = self.refiner(x)
        return y.float() * m + (m - 1.0)

    def refiner_step(self, adversarial: bool) -> dict:
        """One refiner update: self-regularization, plus the adversarial and identity terms."""
        cfg = self.cfg.losses
        x, m = (self._to(t) for t in self.source.next_batch())
        self.disc.requires_grad_(False)
        y = self.refine(x, m)
        reg = losses.self_regularization(y, x, m, cfg.self_reg_space, cfg.lowpass_sigma_px)
        loss = cfg.self_reg_weight * reg
        out = {"refiner/self_reg": float(reg.detach()),
               "refiner/delta_grey": 127.5 * float(losses.masked_l1(y.detach(), x, m))}
        if adversarial:
            with self._autocast():
                logits = self.disc(y)
            w = losses.patch_weights(m, logits.shape[-2:], self.disc.receptive_field_px)
            adv = losses.adversarial(logits, True, cfg.adv, w)
            loss = loss + cfg.adv_weight * adv
            out["refiner/adv"] = float(adv.detach())
        if cfg.identity_weight > 0:
            t, tm = (self._to(v) for v in self.target.next_batch())
            ident = losses.masked_l1(self.refine(t, tm), t, tm)
            loss = loss + cfg.identity_weight * ident
            out["refiner/identity"] = float(ident.detach())
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_r.step()
        self.disc.requires_grad_(True)
        return out

    def disc_step(self) -> dict:
        """One discriminator update: target frames against refined ones (half from the history)."""
        kind = self.cfg.losses.adv
        x, m = (self._to(t) for t in self.source.next_batch())
        t, tm = (self._to(v) for v in self.target.next_batch())
        with torch.no_grad():
            y = self.refine(x, m)
        fake = self.history.mix(torch.cat([y, m], dim=1))
        y, m = self._to(fake[:, :3]), self._to(fake[:, 3:])
        with self._autocast():
            lt, lf = self.disc(t), self.disc(y)
        rf = self.disc.receptive_field_px
        wt, wf = losses.patch_weights(tm, lt.shape[-2:], rf), losses.patch_weights(m, lf.shape[-2:], rf)
        loss = 0.5 * (losses.adversarial(lt, True, kind, wt) + losses.adversarial(lf, False, kind, wf))
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {"disc/loss": float(loss.detach()), "disc/acc_target": losses.accuracy(lt, True, kind, wt),
                "disc/acc_refined": losses.accuracy(lf, False, kind, wf)}

    def schedule_step(self) -> tuple[str, dict]:
        """Run the updates of schedule step ``self.step``; returns (phase, scalars)."""
        s = self.cfg.schedule
        if self.step < s.pretrain_refiner_steps:
            return "pretrain_refiner", self.refiner_step(adversarial=False)
        if self.step < s.pretrain_refiner_steps + s.pretrain_disc_steps:
            return "pretrain_disc", self.disc_step()
        out: dict = {}
        for _ in range(s.kd):
            out.update(self.disc_step())
        for _ in range(s.kg):
            out.update(self.refiner_step(adversarial=True))
        return "adversarial", out

    # ------------------------------------------------------------------ outputs

    def samples(self) -> np.ndarray:
        """(4S, B*S, 3) uint8 grid: rows input, refined, 4 x |refined - input|, target frames."""
        x, m = (self._to(t) for t in self.fixed_source)
        with torch.no_grad():
            y = self.refine(x, m)
        diff = ((y - x).abs() * 4.0 - 1.0).clamp(-1, 1)
        rows = [to_uint8(v) for v in (x, y, diff, self._to(self.fixed_target[0]))]
        return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)

    def state_dict(self) -> dict:
        return {"kind": TRAIN_STATE_KIND, "step": self.step, "refiner": self.refiner.state_dict(),
                "disc": self.disc.state_dict(), "opt_r": self.opt_r.state_dict(),
                "opt_d": self.opt_d.state_dict(), "history": self.history.state_dict(),
                "rng_source": _rng_state(self.source.rng), "rng_target": _rng_state(self.target.rng),
                "records": self.records, "config": to_dict(self.cfg), "software_version": __version__}

    def load_state_dict(self, state: dict) -> None:
        for key in ("refiner", "discriminator"):
            if state["config"][key] != to_dict(getattr(self.cfg, key)):
                raise CheckpointError(f"last.pt was trained with {key} {state['config'][key]}; the config "
                                      f"now says {to_dict(getattr(self.cfg, key))}: resume with the same {key}")
        self.refiner.load_state_dict(state["refiner"])
        self.disc.load_state_dict(state["disc"])
        self.opt_r.load_state_dict(state["opt_r"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.history.load_state_dict(state["history"])
        _set_rng_state(self.source.rng, state["rng_source"])
        _set_rng_state(self.target.rng, state["rng_target"])
        self.step, self.records = int(state["step"]), list(state["records"])

    def save(self) -> None:
        """last.pt (everything to resume) and refiner.pt (what apply needs), each written atomically."""
        save_checkpoint(self.state_dict(), self.out_dir / "last.pt")
        adv_steps = max(0, self.step - self.cfg.schedule.pretrain_refiner_steps - self.cfg.schedule.pretrain_disc_steps)
        save_checkpoint(refiner_checkpoint(self.refiner, self.cfg, adv_steps), self.out_dir / "refiner.pt")


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def train_refiner(cfg: AdaptConfig, real: str | Path, synthetic: str | Path, out_dir: str | Path, *,
                  resume: bool = False, steps: int | None = None) -> dict:
    """Train a refiner; returns a summary (steps, final losses, discriminator accuracies, paths).

    Args:
        cfg: the resolved config.
        real: a folder of real frames, a video, or a ColonSim HDF5 of real frames.
        synthetic: a ColonSim HDF5 with ``rgb`` (and ``mask``).
        out_dir: the run folder (created).
        resume: continue from ``out_dir/last.pt``.
        steps: adversarial steps in all (overrides ``cfg.schedule.steps``); with ``resume``, the run
            continues until this many are done.
    """
    if steps is not None:
        if steps < 0:
            raise InputError(f"--steps must be >= 0, got {steps}")
        cfg = _with_steps(cfg, steps)
    out = Path(out_dir)
    if (out / "last.pt").exists() and not resume:
        raise InputError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    trainer = Trainer(cfg, real, synthetic, out)
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "last.pt").exists():
        trainer.load_state_dict(load_checkpoint(out / "last.pt", TRAIN_STATE_KIND))
        log.info("resuming %s at schedule step %d", out, trainer.step)
    elif resume:
        log.info("no last.pt in %s: starting a new run", out)
    (out / "config.yaml").write_text(to_yaml(cfg))

    s = cfg.schedule
    total = s.pretrain_refiner_steps + s.pretrain_disc_steps + s.steps
    book = Logbook(out, trainer.records, start_step=trainer.step, total=total)
    t0 = time.monotonic()
    stopped_early, phase = False, "resumed"
    try:
        while trainer.step < total:
            phase, scalars = trainer.schedule_step()
            trainer.step += 1
            book.add(trainer.step, phase, scalars)
            if trainer.step % s.log_every == 0:
                book.flush(trainer.step, phase)
            if trainer.step % s.sample_every == 0:
                book.samples(trainer.step, trainer.samples())
            if trainer.step % s.checkpoint_every == 0:
                trainer.save()
            if s.time_limit_min and time.monotonic() - t0 > 60.0 * s.time_limit_min:
                stopped_early = trainer.step < total
                log.info("time limit of %g min reached at schedule step %d", s.time_limit_min, trainer.step)
                break
    finally:
        book.flush(trainer.step, phase)
        trainer.save()
        book.samples(trainer.step, trainer.samples())
        book.close()
    last = book.last()
    adv_done = max(0, trainer.step - s.pretrain_refiner_steps - s.pretrain_disc_steps)
    return {"steps": adv_done, "schedule_steps": trainer.step, "stopped_early": stopped_early,
            "direction": cfg.direction, "seconds": round(time.monotonic() - t0, 1),
            "losses": {k: v for k, v in last.items() if "/acc" not in k},
            "disc_accuracy": {k.split("/")[-1]: v for k, v in last.items() if "/acc" in k},
            "refiner": str(out / "refiner.pt"), "last": str(out / "last.pt"), "run_dir": str(out)}


def _with_steps(cfg: AdaptConfig, steps: int) -> AdaptConfig:
    return dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, steps=int(steps)))
