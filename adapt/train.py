"""Train the refiner adversarially (SimGAN's schedule; reverse direction by default).

Reads top to bottom: config and run folder, data, models, schedule, loop. The refiner's input
domain is "real" in the ``reverse`` direction (Mahmood, Chen, Durr 2017) and "synthetic" in the
``forward`` direction (Shrivastava et al. 2017); the discriminator's target domain is the other.

Schedule: ``pretrain_refiner_steps`` updates on self-regularization alone, ``pretrain_disc_steps``
discriminator updates, then ``steps`` adversarial steps of one discriminator and one refiner
update (SimGAN's K_d = K_g = 1). The pre-training steps are logged up front, with a warning when
they outnumber the adversarial ones (:func:`schedule_line`). Both networks use Adam (lr 2e-4,
betas 0.5 and 0.999). The run folder is :class:`training.RunDir`'s, and ``--resume`` follows its rules: config.yaml, model.pt
(the refiner for ``adapt apply``: the moving average of its weights with ``optim.ema_decay``),
last.pt (everything ``--resume`` needs), snapshots/step_<adversarial step>.pt every
``schedule.snapshot_every`` adversarial steps (model.pt as it was then, kept to compare or pick
later), tb/ (TensorBoard), loss_curve.png, and samples_<step>.png grids.

With ``discriminator.fresh_every`` > 0, fresh critics (:mod:`adapt.critics`) judge the refiner in
place of the patch discriminator.

Data-parallel: under ``torchrun --nproc_per_node K`` (or ``nproc=K``) each process takes its part of
the same global batches (:class:`adapt.data.CropSampler` with ``part``), the refined frames are
gathered so that every rank mixes the same history batch, and gradients are averaged over the
ranks before each optimizer step. That is DistributedDataParallel's arithmetic, done explicitly:
a GAN step runs each network several times per backward pass and freezes the other network's
weights, which DDP's reducer only allows with a slower unused-parameter search. Rank 0 alone
writes the run folder; the logged scalars are means over the ranks.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colonsim.config import to_dict
from colonsim.errors import InputError
from colonsim.run import interrupt
from training import distributed
from training.checkpoint import load_checkpoint
from training.compute import autocast, channels_last, pick_device, set_threads
from training.rundir import RunDir

from . import losses
from .checkpoint import FORMAT_VERSION, REFINER_KIND, WHAT, save_refiner
from .config import AdaptConfig
from .critics import FRESH_POOL, FreshCritics, square_view
from .data import CropSampler, open_frames, to_uint8
from .eval.match import fit_target
from .history import HistoryBuffer
from .logbook import CHANGED_LEVELS, Logbook
from .networks import PatchDiscriminator, Refiner, grey

log = logging.getLogger(__name__)
# the one-line refusal of fresh critics with data-parallel training (before a spawn, and under torchrun)
FRESH_ONE_PROCESS = "discriminator.fresh_every (fresh critics) runs in one process; train without nproc/torchrun"
#: Adam's learning rate (both networks) and betas (beta1 0.5, as is usual for GANs).
LR, BETAS = 2e-4, (0.5, 0.999)
#: The share of each discriminator fake batch drawn from the history buffer (SimGAN: half).
HISTORY_FRACTION = 0.5


class Trainer:
    """Holds the models, optimizers, data samplers and history buffer of one run."""

    def __init__(self, cfg: AdaptConfig, real: str | Path, synthetic: str | Path, out_dir: Path,
                 dist: distributed.Dist = distributed.Dist()):
        self.cfg, self.run, self.dist = cfg, RunDir(out_dir), dist
        self.device = pick_device(cfg.compute.device)
        set_threads(cfg.compute.threads)
        seeds = np.random.SeedSequence(cfg.seed).spawn(5)
        real_frames = open_frames(real, cfg.data.cache_short_side_px)
        synth_frames = open_frames(synthetic, cfg.data.cache_short_side_px)
        src, tgt = (real_frames, synth_frames) if cfg.direction == "reverse" else (synth_frames, real_frames)
        part = (dist.rank, dist.world)
        self.source = CropSampler(src, cfg.data, np.random.default_rng(seeds[0]), part)
        self.target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[1]), part)
        self.history = HistoryBuffer(cfg.history.size, np.random.default_rng(seeds[2]), HISTORY_FRACTION)
        # A fixed set of frames for the sample grids, so that grids of successive steps compare.
        fixed = CropSampler(src, cfg.data, np.random.default_rng(seeds[3]))
        self.fixed_source = fixed.next_batch()
        self.fixed_target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[4])).next_batch()

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(cfg.seed)
            self.refiner = Refiner(**to_dict(cfg.refiner))
            if cfg.refiner.output == "colour_curve":   # the synthetic set's colour at each grey level
                self.refiner.set_curve(fit_target(synthetic).lut)
            self.refiner.to(self.device)
            self.disc = PatchDiscriminator(cfg.discriminator.width, cfg.discriminator.layers).to(self.device)
        channels_last(self.refiner, cfg.compute.channels_last)
        channels_last(self.disc, cfg.compute.channels_last)
        # the refiner's weights averaged over its updates (optim.ema_decay > 0), what model.pt holds
        self.refiner_ema = copy.deepcopy(self.refiner).requires_grad_(False) if cfg.optim.ema_decay else None
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=LR, betas=BETAS)
        if cfg.discriminator.fresh_every and dist.enabled:
            raise InputError(FRESH_ONE_PROCESS)
        self.critics = FreshCritics(cfg.seed, self.device)   # used with discriminator.fresh_every > 0
        self.step = 0  # schedule steps done, pre-training included
        self.records: list[dict] = []  # one dict of mean scalars per log interval

    # ------------------------------------------------------------------ one update each

    def _to(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(x.to(self.device, non_blocking=True), self.cfg.compute.channels_last)

    def _autocast(self):
        return autocast(self.device, self.cfg.compute.bf16)

    def refine(self, x: torch.Tensor, m: torch.Tensor, refiner: nn.Module | None = None) -> torch.Tensor:
        """The refined frame (by ``refiner``, default the one in training), black (-1) outside the mask."""
        with self._autocast():
            y = (self.refiner if refiner is None else refiner)(x, m)
        return y.float() * m + (m - 1.0)

    def judge(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, patch weights) of the patch discriminator: weight 1 for the patches wholly inside
        the image circle."""
        with self._autocast():
            logits = self.disc(x)
        return logits, losses.patch_weights(m, logits.shape[-2:], self.disc.receptive_field_px)

    def refiner_step(self, adversarial: bool) -> dict:
        """One refiner update: self-regularization, plus the adversarial term."""
        cfg = self.cfg.losses
        x, m = (self._to(t) for t in self.source.next_batch())
        self.disc.requires_grad_(False)
        y = self.refine(x, m)
        share_m = self._share(m)
        reg = losses.self_regularization(y, x, m, cfg.self_reg_space) * share_m
        loss = cfg.self_reg_weight * reg
        with torch.no_grad():   # pixels whose grey level moved by more than CHANGED_LEVELS (8-bit)
            grey_move = 127.5 * (grey(y.float()) - grey(x.float())).abs()
            changed = losses.masked_mean((grey_move > CHANGED_LEVELS).float(), m)
        out = {"refiner/self_reg": float(reg.detach()),
               "refiner/delta_grey": 127.5 * float(losses.masked_l1(y.detach(), x, m)) * share_m,
               "refiner/changed_frac": float(changed) * share_m}
        fresh = adversarial and self.cfg.discriminator.fresh_every
        if fresh:
            view = square_view(y, m, self.cfg.data.size_px)
            adv, out["fresh/called_refined"] = self.critics.loss(view)
            loss = loss + adv
            out["refiner/adv"] = float(adv.detach())
        elif adversarial:
            logits, w = self.judge(y, m)
            adv = losses.adversarial(logits, True, w) * self._share(w)
            loss = loss + adv
            out["refiner/adv"] = float(adv.detach())
        if self.refiner_ema is not None and (self.step + 1) % self.cfg.schedule.log_every == 0:
            # what model.pt (the moving average) does to this batch, beside delta_grey (what the
            # refiner does): the average follows the refiner about 1 / (1 - ema_decay) updates behind
            with torch.no_grad():
                y_ema = self.refine(x, m, self.refiner_ema)
            out["refiner/delta_grey_ema"] = 127.5 * float(losses.masked_l1(y_ema, x, m)) * share_m
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.refiner, self.dist)
        self.opt_r.step()
        if self.refiner_ema is not None:
            ema_update(self.refiner_ema, self.refiner, self.cfg.optim.ema_decay)
        self.disc.requires_grad_(True)
        if fresh:   # the critics learn back at once what fooled them
            t, tm = (self._to(v) for v in self.target.next_batch())
            out.update(self.critics.tune(view.detach(), square_view(t, tm, self.cfg.data.size_px)))
        return out

    def disc_step(self) -> dict:
        """One discriminator update: target frames against refined ones (half from the history)."""
        x, m = (self._to(t) for t in self.source.next_batch())
        t, tm = (self._to(v) for v in self.target.next_batch())
        with torch.no_grad():
            y = self.refine(x, m)
        # every rank mixes the same global batch into its identical history, then keeps its part
        fake = self.history.mix(distributed.gather_batch(torch.cat([y, m], dim=1), self.dist))
        fake = fake[self.dist.rank * len(y):(self.dist.rank + 1) * len(y)]
        y, m = self._to(fake[:, :3]), self._to(fake[:, 3:])
        (lt, wt), (lf, wf) = self.judge(t, tm), self.judge(y, m)
        st, sf = self._share(wt), self._share(wf)
        loss = 0.5 * (losses.adversarial(lt, True, wt) * st + losses.adversarial(lf, False, wf) * sf)
        out = {"disc/acc_target": losses.accuracy(lt, True, wt) * st,
               "disc/acc_refined": losses.accuracy(lf, False, wf) * sf}
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.disc, self.dist)
        self.opt_d.step()
        return {"disc/loss": float(loss.detach()), **out}

    def train_critics(self) -> dict:
        """A new round of fresh critics (:meth:`adapt.critics.FreshCritics.train_round`) on
        :data:`adapt.critics.FRESH_POOL` square views at ``data.size_px`` of the current refiner's
        output and of target frames. Returns the round's scalars and the seconds it took."""
        size = self.cfg.data.size_px
        t0 = time.monotonic()
        refined, target = [], []
        with torch.no_grad():
            while sum(len(v) for v in refined) < FRESH_POOL:
                x, m = (self._to(t) for t in self.source.next_batch())
                refined.append(square_view(self.refine(x, m), m, size).float())
                t, tm = (self._to(v) for v in self.target.next_batch())
                target.append(square_view(t, tm, size).float())
        out = self.critics.train_round(torch.cat(refined)[:FRESH_POOL], torch.cat(target)[:FRESH_POOL])
        return {**out, "fresh/seconds": time.monotonic() - t0}

    def _share(self, weights: torch.Tensor) -> float:
        """1 for one process; with K, this rank's share of a weighted mean over the global batch
        (see :func:`training.distributed.share`): crops differ in how much of them is inside the
        image circle, so the ranks' plain means would weigh the frames differently."""
        return distributed.share(float(weights.detach().sum()), self.dist) if self.dist.enabled else 1.0

    def schedule_step(self) -> tuple[str, dict]:
        """Run the updates of schedule step ``self.step``; returns (phase, scalars)."""
        s = self.cfg.schedule
        if self.step < s.pretrain_refiner_steps:
            return "pretrain_refiner", self.refiner_step(adversarial=False)
        fresh = self.cfg.discriminator.fresh_every
        if self.step < s.pretrain_refiner_steps + s.pretrain_disc_steps:
            return "pretrain_disc", ({} if fresh else self.disc_step())   # fresh critics need none
        out: dict = {}
        if fresh and (not self.critics or self.adv_steps % fresh == 0):
            out.update(self.train_critics())
        elif not fresh:
            out.update(self.disc_step())
        out.update(self.refiner_step(adversarial=True))
        return "adversarial", out

    # ------------------------------------------------------------------ outputs

    def samples(self) -> np.ndarray:
        """(4S, B*S, 3) uint8 grid: rows input, refined (by the averaged weights where they are
        kept: what model.pt holds), 4 x |refined - input|, target frames."""
        x, m = (self._to(t) for t in self.fixed_source)
        with torch.no_grad():
            y = self.refine(x, m, self.refiner_ema)
        diff = ((y - x).abs() * 4.0 - 1.0).clamp(-1, 1)
        rows = [to_uint8(v) for v in (x, y, diff, self._to(self.fixed_target[0]))]
        return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)

    def training_state(self) -> dict:
        """What last.pt holds beside the refiner's trained weights: everything ``--resume`` needs."""
        return {"step": self.step, "disc": self.disc.state_dict(),
                "optimizers": {"refiner": self.opt_r.state_dict(), "disc": self.opt_d.state_dict()},
                "history": self.history.state_dict(),
                "rng": {"source": _rng_state(self.source.rng), "target": _rng_state(self.target.rng)},
                "records": self.records, **self.critics.state_dict(),
                **({"refiner_ema": self.refiner_ema.state_dict()} if self.refiner_ema is not None else {})}

    def restore(self, ck: dict) -> None:
        """Continue from a last.pt (:meth:`save`); the run folder's rules have checked its config."""
        self.refiner.load_state_dict(ck["model"])
        if self.refiner_ema is not None:
            self.refiner_ema.load_state_dict(ck["refiner_ema"])
        self.disc.load_state_dict(ck["disc"])
        self.opt_r.load_state_dict(ck["optimizers"]["refiner"])
        self.opt_d.load_state_dict(ck["optimizers"]["disc"])
        self.history.load_state_dict(ck["history"])
        _set_rng_state(self.source.rng, ck["rng"]["source"])
        _set_rng_state(self.target.rng, ck["rng"]["target"])
        self.critics.load_state_dict(ck)
        self.step, self.records = int(ck["step"]), list(ck["records"])

    @property
    def adv_steps(self) -> int:
        return max(0, self.step - self.cfg.schedule.pretrain_refiner_steps - self.cfg.schedule.pretrain_disc_steps)

    def save(self) -> None:
        """last.pt (everything to resume) and model.pt (what apply needs), each written atomically."""
        save_refiner(self.run.last, self.refiner, self.cfg, self.adv_steps, **self.training_state())
        save_refiner(self.run.model, self.artifact, self.cfg, self.adv_steps)

    @property
    def artifact(self) -> nn.Module:
        """The refiner of model.pt: the moving average of the weights with ``optim.ema_decay``."""
        return self.refiner if self.refiner_ema is None else self.refiner_ema

    def snapshot(self) -> Path:
        """snapshots/step_NNNNNN.pt (NNNNNN: adversarial steps), kept: model.pt at this step."""
        return save_refiner(self.run.snapshot(self.adv_steps), self.artifact, self.cfg, self.adv_steps)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model, parameter by parameter; buffers (a colour curve,
    spectral norm's vectors) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def train_refiner(cfg: AdaptConfig, real: str | Path, synthetic: str | Path, out_dir: str | Path, *,
                  resume: bool = False, steps: int | None = None, nproc: int = 1) -> dict:
    """Train a refiner; returns a summary (steps, final losses, discriminator accuracies, paths).

    Args:
        cfg: the resolved config; on resume it must equal the run's config.yaml except in
            ``schedule.steps`` and ``schedule.time_limit_min`` (build it with
            ``training.resume_config``; training.rundir).
        real: a folder of real frames, a video, or a ColonSim HDF5 of real frames.
        synthetic: a ColonSim HDF5 with ``rgb`` (and ``mask``).
        out_dir: the run folder (created; must not already hold a run unless ``resume``).
        resume: continue from ``out_dir/last.pt``.
        steps: adversarial steps in all (overrides ``cfg.schedule.steps``); with ``resume``, the run
            continues until this many are done.
        nproc: data-parallel processes on this machine (spawned here, as torchrun would; under
            torchrun leave it at 1); ``data.batch_size`` stays the global batch and must divide by it.
    """
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise InputError(f"--steps must be an integer, at least 1 (adversarial steps), got {steps!r}")
        cfg = _with_steps(cfg, steps)
    if cfg.schedule.steps < 1:
        raise InputError(f"schedule.steps is {cfg.schedule.steps}; a run needs at least 1 adversarial step (--steps N)")
    if nproc > 1 and cfg.discriminator.fresh_every:
        raise InputError(FRESH_ONE_PROCESS)
    run = RunDir(out_dir)
    run.check_start(cfg, resume)  # the refusals of training.rundir, before anything is written
    if nproc > 1 and not distributed.from_env().enabled:
        distributed.check_batch(cfg.data.batch_size, nproc, "data.batch_size")
        return distributed.launch(train_refiner, nproc, cfg, real, synthetic, out_dir, resume=resume, steps=steps)
    ckpt = load_checkpoint(run.last, REFINER_KIND, FORMAT_VERSION, WHAT) if resume else None
    dist = distributed.setup(pick_device(cfg.compute.device).type)
    distributed.check_batch(cfg.data.batch_size, dist.world, "data.batch_size")
    trainer = Trainer(cfg, real, synthetic, run.root, dist)
    if ckpt is not None:
        trainer.restore(ckpt)
        log.info("resuming %s at schedule step %d", run.root, trainer.step)
    if not dist.main:
        _follow(trainer, cfg)
        return distributed.from_main(None, dist)  # rank 0's summary
    if not resume or trainer.step < cfg.schedule.pretrain_refiner_steps + cfg.schedule.pretrain_disc_steps:
        log.log(*schedule_line(cfg))   # up front, once the data is read (bad data stays one line)
    run.create(cfg)

    s = cfg.schedule
    total = s.pretrain_refiner_steps + s.pretrain_disc_steps + s.steps
    book = Logbook(run, trainer.records, start_step=trainer.step, total=total)
    t0 = time.monotonic()
    stopped_early, phase = False, "resumed"
    try:
        while trainer.step < total:
            interrupt.check()
            phase, scalars = trainer.schedule_step()
            scalars, _ = distributed.mean_over_ranks(scalars, dist)
            trainer.step += 1
            book.add(trainer.step, phase, scalars)
            if trainer.step % s.log_every == 0:
                book.flush(trainer.step, phase)
            if trainer.step % s.checkpoint_every == 0:
                trainer.save()
                book.samples(trainer.step, trainer.samples())
            if s.snapshot_every and trainer.adv_steps and trainer.adv_steps % s.snapshot_every == 0:
                trainer.snapshot()
            out_of_time = bool(s.time_limit_min and time.monotonic() - t0 > 60.0 * s.time_limit_min)
            if distributed.mean_over_ranks({}, dist, out_of_time)[1]:  # rank 0 decides; the others follow
                stopped_early = trainer.step < total
                log.info("time limit of %g min reached at schedule step %d", s.time_limit_min, trainer.step)
                break
    finally:
        book.flush(trainer.step, phase)
        trainer.save()
        book.samples(trainer.step, trainer.samples())
        book.close()
    last = book.last()
    summary = {"steps": trainer.adv_steps, "schedule_steps": trainer.step, "stopped_early": stopped_early,
               "direction": cfg.direction, "seconds": round(time.monotonic() - t0, 1),
               "losses": {k: v for k, v in last.items() if "/acc" not in k},
               "disc_accuracy": {k.split("/")[-1]: v for k, v in last.items() if "/acc" in k},
               # the latest round of fresh critics: their accuracy on the frames they trained on
               "fresh_acc_pool": next((r["fresh/acc_pool"] for r in reversed(trainer.records) if "fresh/acc_pool" in r), None),
               "model": str(run.model), "paths": run.paths()}
    return distributed.from_main(summary, dist)  # every rank returns rank 0's summary


def _follow(trainer: Trainer, cfg: AdaptConfig) -> None:
    """The loop of ranks other than 0: the same updates and all-reduces as rank 0, and no output."""
    s = cfg.schedule
    total = s.pretrain_refiner_steps + s.pretrain_disc_steps + s.steps
    while trainer.step < total:
        interrupt.check()
        _, scalars = trainer.schedule_step()
        distributed.mean_over_ranks(scalars, trainer.dist)
        trainer.step += 1
        if distributed.mean_over_ranks({}, trainer.dist, False)[1]:
            break


def schedule_line(cfg: AdaptConfig) -> tuple[int, str]:
    """The log level and line that say, before the first step, how many pre-training steps come
    before the adversarial ones: a warning when they are more than the adversarial steps (a 3-step
    trial run of the default schedule pre-trains for 150 steps). Pre-training is not cut to a short
    run, so that a short run extended by ``--resume`` trains exactly as one run of its final length."""
    s = cfg.schedule
    pre = s.pretrain_refiner_steps + s.pretrain_disc_steps
    line = (f"adapt train: {s.pretrain_refiner_steps} refiner and {s.pretrain_disc_steps} discriminator pre-training "
            f"steps come before the {s.steps} adversarial step{'s' if s.steps != 1 else ''} ({pre} of "
            f"{pre + s.steps} steps)")
    if pre > s.steps:
        return logging.WARNING, line + ("; set schedule.pretrain_refiner_steps and schedule.pretrain_disc_steps "
                                        "(--set) to shorten a trial run")
    return logging.INFO, line


def _with_steps(cfg: AdaptConfig, steps: int) -> AdaptConfig:
    return dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, steps=int(steps)))
