"""Train the refiner adversarially (SimGAN's schedule; reverse direction by default).

Reads top to bottom: config and run folder, data, models, schedule, loop. The refiner's input
domain is "real" in the ``reverse`` direction (Mahmood, Chen, Durr 2017) and "synthetic" in the
``forward`` direction (Shrivastava et al. 2017); the discriminator's target domain is the other.

Schedule: ``pretrain_refiner_steps`` updates on self-regularization alone, ``pretrain_disc_steps``
discriminator updates, then ``steps`` adversarial steps of ``kg`` refiner and ``kd`` discriminator
updates. The run folder holds config.yaml, refiner.pt (for apply; the weights' moving average
with ``optim.ema_decay``), last.pt (for ``--resume``), snapshots/refiner_<adversarial
step>.pt every ``schedule.snapshot_every`` adversarial steps (kept, to compare or pick later),
samples_<step>.png grids, TensorBoard events and loss_curve.png.

Fresh critics (``discriminator.fresh_every`` > 0): instead of discriminators trained alongside the
refiner, every ``fresh_every`` adversarial steps new classifiers of ``adapt score``'s shape are
trained from scratch on the refiner's current output against target frames (the square inside the
image circle, as the score sees it), then frozen as the refiner's critics until the next round. A
co-trained discriminator follows the refiner and can be led away; a classifier trained afresh
finds whatever still tells the sets apart, as the score's classifier will. With
``discriminator.fresh_tune`` the critics of a round are not frozen: after each refiner step they
update on that step's refined views, so that a pattern that fools them is learned back at once.

Data-parallel: under ``torchrun --nproc_per_node K`` (or ``nproc=K``) each process takes its part of
the same global batches (:class:`adapt.data.CropSampler` with ``part``), the refined frames are
gathered so that every rank mixes the same history batch, and gradients are averaged over the
ranks before each optimizer step. That is DistributedDataParallel's arithmetic, done explicitly:
a GAN step runs each network several times per backward pass and freezes the other network's
weights, which DDP's reducer only allows with a slower unused-parameter search. Rank 0 alone
writes the run folder; the logged scalars are means over the ranks.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colonsim import __version__
from colonsim.run import distributed, interrupt
from colonsim.config import to_dict, to_yaml
from colonsim.errors import CheckpointError, InputError

from . import losses
from .checkpoint import TRAIN_STATE_KIND, load_checkpoint, refiner_checkpoint, save_checkpoint
from .config import AdaptConfig
from .data import CropSampler, add_noise, open_frames, quantize_8bit, to_uint8
from .history import HistoryBuffer
from .logbook import CHANGED_LEVELS, Logbook
from .networks import CoarseDiscriminators, GlobalDiscriminator, PatchDiscriminator, Refiner, grey, square_view
from .score import CLASSIFIER_LR, DomainClassifier, fit_classifier

log = logging.getLogger(__name__)
# the one-line refusal of fresh critics with data-parallel training (before a spawn, and under torchrun)
FRESH_ONE_PROCESS = "discriminator.fresh_every (fresh critics) runs in one process; train without nproc/torchrun"


def _balanced_accuracy(logit_refined: torch.Tensor, logit_target: torch.Tensor) -> float:
    """A critic's balanced accuracy: the mean of the refined frames it calls the refiner's (logit
    > 0) and the target frames it calls target (logit <= 0)."""
    return 0.5 * (float((logit_refined > 0).float().mean()) + float((logit_target <= 0).float().mean()))


def _critic_optimizer(critic: nn.Module) -> torch.optim.Adam:
    """The optimizer of a fresh critic's tuning (``discriminator.fresh_tune``): Adam at the rate
    the critic was trained with."""
    return torch.optim.Adam(critic.parameters(), lr=CLASSIFIER_LR)


def _device(cfg: AdaptConfig) -> torch.device:
    if cfg.compute.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.compute.device == "cuda" and not torch.cuda.is_available():
        raise InputError("compute.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(cfg.compute.device)


class Trainer:
    """Holds the models, optimizers, data samplers and history buffer of one run."""

    def __init__(self, cfg: AdaptConfig, real: str | Path, synthetic: str | Path, out_dir: Path,
                 dist: distributed.Dist = distributed.Dist()):
        self.cfg, self.out_dir, self.dist = cfg, out_dir, dist
        self.device = _device(cfg)
        if cfg.compute.threads:
            torch.set_num_threads(cfg.compute.threads)
        seeds = np.random.SeedSequence(cfg.seed).spawn(5)
        real_frames = open_frames(real, cfg.data.cache_short_side_px)
        synth_frames = open_frames(synthetic, cfg.data.cache_short_side_px)
        src, tgt = (real_frames, synth_frames) if cfg.direction == "reverse" else (synth_frames, real_frames)
        part = (dist.rank, dist.world)
        self.source = CropSampler(src, cfg.data, np.random.default_rng(seeds[0]), part)
        self.target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[1]), part)
        self.history = HistoryBuffer(cfg.history.size, np.random.default_rng(seeds[2]), cfg.history.fraction)
        # A fixed set of frames for the sample grids, so that grids of successive steps compare.
        fixed = CropSampler(src, cfg.data, np.random.default_rng(seeds[3]))
        self.fixed_source = fixed.next_batch()
        self.fixed_target = CropSampler(tgt, cfg.data, np.random.default_rng(seeds[4])).next_batch()

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(cfg.seed)
            self.refiner = Refiner(**{k: v for k, v in to_dict(cfg.refiner).items() if k != "quantize"})
            if cfg.refiner.output == "colour_curve":   # the synthetic set's colour at each grey level
                from .match import fit_target

                self.refiner.set_curve(fit_target(synthetic).lut)
            self.refiner.to(self.device)
            d = cfg.discriminator
            self.disc = PatchDiscriminator(d.width, d.layers, d.spectral_norm).to(self.device)
            # the coarser scales' discriminators (none by default): their own parameters and state
            self.disc_coarse = CoarseDiscriminators(d.width, d.layers, d.spectral_norm, d.scales).to(self.device)
            # the frame-level head (off by default): an empty ModuleList when off, so that the
            # optimizer, the checkpoint and the gradient averaging treat both cases alike
            self.disc_global = nn.ModuleList([GlobalDiscriminator(d.width, 4, d.spectral_norm, d.global_view)] if d.global_head else [])
            self.disc_global.to(self.device)
        if cfg.compute.channels_last:
            self.refiner.to(memory_format=torch.channels_last)
            self.disc.to(memory_format=torch.channels_last)
            self.disc_coarse.to(memory_format=torch.channels_last)
            self.disc_global.to(memory_format=torch.channels_last)
        # the refiner's weights averaged over its updates (optim.ema_decay > 0), what refiner.pt holds
        self.refiner_ema = copy.deepcopy(self.refiner).requires_grad_(False) if cfg.optim.ema_decay else None
        o = cfg.optim
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=o.lr_refiner, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam([*self.disc.parameters(), *self.disc_coarse.parameters(),
                                       *self.disc_global.parameters()],
                                      lr=o.lr_disc, betas=(o.beta1, o.beta2))
        if cfg.discriminator.fresh_every and dist.enabled:
            raise InputError(FRESH_ONE_PROCESS)
        self.critics: list[DomainClassifier] = []  # the frozen fresh critics of the current round
        self.critic_opts: list[torch.optim.Adam] = []  # their optimizers (discriminator.fresh_tune > 0)
        self.critic_round = 0   # rounds of fresh critics trained so far
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

    def refine(self, x: torch.Tensor, m: torch.Tensor, refiner: nn.Module | None = None) -> torch.Tensor:
        """The refined frame (by ``refiner``, default the one in training), black (-1) outside the mask."""
        with self._autocast():
            y = (self.refiner if refiner is None else refiner)(x, m)
        y = y.float()
        if self.cfg.refiner.quantize:   # the 8-bit levels the frame is saved with, gradient straight through
            y = y + (quantize_8bit(y) - y).detach()
        return y * m + (m - 1.0)

    def judge(self, x: torch.Tensor, m: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(logits, patch weights)] of every discriminator scale, the full resolution first, then
        the frame-level head's (one logit per frame) where there is one."""
        with self._autocast():
            logits = self.disc(x)
            coarse = self.disc_coarse(x, m)
            whole = [net(x, m) for net in self.disc_global]
        out = [(logits, losses.patch_weights(m, logits.shape[-2:], self.disc.receptive_field_px))]
        return out + [(lg, losses.patch_weights(mk, lg.shape[-2:], rf)) for lg, mk, rf in coarse] + whole

    def refiner_step(self, adversarial: bool) -> dict:
        """One refiner update: self-regularization, plus the adversarial and identity terms."""
        cfg = self.cfg.losses
        x, m = (self._to(t) for t in self.source.next_batch())
        self.disc.requires_grad_(False)
        self.disc_coarse.requires_grad_(False)
        self.disc_global.requires_grad_(False)
        y = self.refine(x, m)
        share_m = self._share(m)
        reg = losses.self_regularization(y, x, m, cfg.self_reg_space, cfg.lowpass_sigma_px) * share_m
        loss = cfg.self_reg_weight * reg
        with torch.no_grad():   # pixels whose grey level moved by more than CHANGED_LEVELS (8-bit)
            grey_move = 127.5 * (grey(y.float()) - grey(x.float())).abs()
            changed = losses.masked_mean((grey_move > CHANGED_LEVELS).float(), m)
        out = {"refiner/self_reg": float(reg.detach()),
               "refiner/delta_grey": 127.5 * float(losses.masked_l1(y.detach(), x, m)) * share_m,
               "refiner/changed_frac": float(changed) * share_m}
        if adversarial and self.cfg.discriminator.fresh_every:
            # the frozen critics' cross-entropy towards the target label (a logit > 0 calls a frame
            # the refiner's), averaged over the critics
            view = square_view(y, m, self.cfg.data.size_px)
            noise = self.cfg.discriminator.fresh_noise
            if noise > 0:   # new noise at every step, drawn from (seed, step): a resumed run draws the same
                view = add_noise(view, noise, self._step_generator(view.device, 7))
            logits = torch.stack([c(view) for c in self.critics])
            adv = torch.nn.functional.softplus(logits).mean()
            loss = loss + cfg.adv_weight * adv
            out["refiner/adv"] = float(adv.detach())
            out["fresh/called_refined"] = float((logits.detach().mean(0) > 0).float().mean())
            tune_view = view.detach()
        elif adversarial:
            judged = self.judge(y, m)   # the mean over the scales
            adv = sum(losses.adversarial(lg, True, cfg.adv, w) * self._share(w) for lg, w in judged) / len(judged)
            loss = loss + cfg.adv_weight * adv
            out["refiner/adv"] = float(adv.detach())
        if cfg.identity_weight > 0:
            t, tm = (self._to(v) for v in self.target.next_batch())
            ident = losses.masked_l1(self.refine(t, tm), t, tm) * self._share(tm)
            loss = loss + cfg.identity_weight * ident
            out["refiner/identity"] = float(ident.detach())
        if self.refiner_ema is not None and (self.step + 1) % self.cfg.schedule.log_every == 0:
            # what refiner.pt (the moving average) does to this batch, beside delta_grey (what the
            # refiner does): the average follows the refiner about 1 / (1 - ema_decay) updates behind,
            # and smooths its swings from one round of critics to the next
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
        self.disc_coarse.requires_grad_(True)
        self.disc_global.requires_grad_(True)
        if adversarial and self.cfg.discriminator.fresh_tune:
            out.update(self.tune_critics(tune_view))
        return out

    def tune_critics(self, refined_view: torch.Tensor) -> dict:
        """``discriminator.fresh_tune`` Adam updates of each fresh critic (kept in eval mode: its
        BatchNorm statistics stay as the round's recalibration left them) on ``refined_view``
        (label 1, the square views the refiner was just judged on, noise included) against as many
        target views (label 0; noisy with ``fresh_noise``, drawn from (seed, step)). Returns the
        critics' mean balanced accuracy on that batch before the updates."""
        d = self.cfg.discriminator
        t, tm = (self._to(v) for v in self.target.next_batch())
        target = square_view(t, tm, self.cfg.data.size_px).float()
        if d.fresh_noise > 0:
            target = add_noise(target, d.fresh_noise, self._step_generator(target.device, 8))
        n = len(refined_view)
        x = torch.cat([refined_view.float(), target])
        y = torch.cat([torch.ones(n), torch.zeros(len(target))]).to(x.device)
        accs = []
        for critic, opt in zip(self.critics, self.critic_opts):
            critic.requires_grad_(True)
            for i in range(d.fresh_tune):
                logits = critic(x)
                if i == 0:
                    accs.append(_balanced_accuracy(logits.detach()[:n], logits.detach()[n:]))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            critic.requires_grad_(False)
        return {"fresh/acc_tune": float(np.mean(accs))}

    def disc_step(self) -> dict:
        """One discriminator update: target frames against refined ones (half from the history)."""
        kind = self.cfg.losses.adv
        x, m = (self._to(t) for t in self.source.next_batch())
        t, tm = (self._to(v) for v in self.target.next_batch())
        with torch.no_grad():
            y = self.refine(x, m)
        # every rank mixes the same global batch into its identical history, then keeps its part
        fake = self.history.mix(distributed.gather_batch(torch.cat([y, m], dim=1), self.dist))
        fake = fake[self.dist.rank * len(y):(self.dist.rank + 1) * len(y)]
        y, m = self._to(fake[:, :3]), self._to(fake[:, 3:])
        loss, acc_t, acc_f = 0.0, 0.0, 0.0
        scales = list(zip(self.judge(t, tm), self.judge(y, m)))
        for (lt, wt), (lf, wf) in scales:   # each scale's loss and accuracies; their means over the scales
            st, sf = self._share(wt), self._share(wf)
            loss = loss + 0.5 * (losses.adversarial(lt, True, kind, wt) * st
                                 + losses.adversarial(lf, False, kind, wf) * sf) / len(scales)
            acc_t += losses.accuracy(lt, True, kind, wt) * st / len(scales)
            acc_f += losses.accuracy(lf, False, kind, wf) * sf / len(scales)
        out = {"disc/acc_target": acc_t, "disc/acc_refined": acc_f}
        if len(self.disc_global):   # the frame-level head's own accuracies (the last of the scales)
            (lt, wt), (lf, wf) = scales[-1]
            out["disc/acc_target_global"] = losses.accuracy(lt, True, kind, wt) * self._share(wt)
            out["disc/acc_refined_global"] = losses.accuracy(lf, False, kind, wf) * self._share(wf)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.disc, self.dist)
        distributed.average_gradients(self.disc_coarse, self.dist)
        distributed.average_gradients(self.disc_global, self.dist)
        self.opt_d.step()
        return {"disc/loss": float(loss.detach()), **out}

    def train_critics(self) -> dict:
        """A new round of fresh critics: ``fresh_count`` :class:`adapt.score.DomainClassifier`
        trained from scratch as ``adapt score`` trains its classifier
        (:func:`adapt.score.fit_classifier`, batches of 16 + 16), to tell the
        current refiner's output (label 1) from target frames (label 0), each on the square inside
        the image circle at ``data.size_px``; then frozen. Returns the round's scalars: the
        critics' mean balanced accuracy on the frames they trained on and the seconds taken."""
        d, size = self.cfg.discriminator, self.cfg.data.size_px
        t0 = time.monotonic()
        refined, target = [], []
        with torch.no_grad():
            while sum(len(v) for v in refined) < d.fresh_pool:
                x, m = (self._to(t) for t in self.source.next_batch())
                refined.append(square_view(self.refine(x, m), m, size).float())
                t, tm = (self._to(v) for v in self.target.next_batch())
                target.append(square_view(t, tm, size).float())
        fr, ft = torch.cat(refined)[:d.fresh_pool], torch.cat(target)[:d.fresh_pool]
        rng = np.random.default_rng([self.cfg.seed, self.critic_round])
        critics, accs = [], []
        for _ in range(d.fresh_count):
            seed = int(rng.integers(2**31))
            critic = fit_classifier(fr, ft, np.arange(len(fr)), np.arange(len(ft)), d.fresh_steps, 32, rng, seed,
                                    noise_levels=d.fresh_noise).requires_grad_(False)   # in eval mode
            with torch.no_grad():   # on the views as the critic sees them (noisy where fresh_noise > 0)
                gen = torch.Generator(fr.device).manual_seed(seed + 1)
                vr, vt = (add_noise(v, d.fresh_noise, gen) if d.fresh_noise > 0 else v for v in (fr, ft))
                accs.append(_balanced_accuracy(critic(vr), critic(vt)))
            critics.append(critic)
        self.critics, self.critic_round = critics, self.critic_round + 1
        self.critic_opts = [_critic_optimizer(c) for c in critics] if d.fresh_tune else []
        return {"fresh/acc_pool": float(np.mean(accs)), "fresh/seconds": time.monotonic() - t0}

    def _step_generator(self, device: torch.device, tag: int) -> torch.Generator:
        """A torch generator seeded from (run seed, schedule step, ``tag``): draws that differ from
        step to step and purpose to purpose, and that a resumed run repeats."""
        seed = int(np.random.default_rng([self.cfg.seed, self.step, tag]).integers(2**62))
        return torch.Generator(device).manual_seed(seed)

    def _share(self, weights: torch.Tensor) -> float:
        """1 for one process; with K, this rank's share of a weighted mean over the global batch
        (see :func:`colonsim.run.distributed.share`): crops differ in how much of them is inside the
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
        if fresh:
            if not self.critics or self.adv_steps % fresh == 0:
                out.update(self.train_critics())
            for _ in range(s.kg):
                out.update(self.refiner_step(adversarial=True))
            return "adversarial", out
        for _ in range(s.kd):
            out.update(self.disc_step())
        for _ in range(s.kg):
            out.update(self.refiner_step(adversarial=True))
        return "adversarial", out

    # ------------------------------------------------------------------ outputs

    def samples(self) -> np.ndarray:
        """(4S, B*S, 3) uint8 grid: rows input, refined (by the averaged weights where they are
        kept: what refiner.pt holds), 4 x |refined - input|, target frames."""
        x, m = (self._to(t) for t in self.fixed_source)
        with torch.no_grad():
            y = self.refine(x, m, self.refiner_ema)
        diff = ((y - x).abs() * 4.0 - 1.0).clamp(-1, 1)
        rows = [to_uint8(v) for v in (x, y, diff, self._to(self.fixed_target[0]))]
        return np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)

    def state_dict(self) -> dict:
        return {"kind": TRAIN_STATE_KIND, "step": self.step, "refiner": self.refiner.state_dict(),
                "disc": self.disc.state_dict(), "disc_coarse": self.disc_coarse.state_dict(),
                "disc_global": self.disc_global.state_dict(), "opt_r": self.opt_r.state_dict(),
                "opt_d": self.opt_d.state_dict(), "history": self.history.state_dict(),
                "rng_source": _rng_state(self.source.rng), "rng_target": _rng_state(self.target.rng),
                "records": self.records, "config": to_dict(self.cfg), "software_version": __version__,
                "critics": [c.state_dict() for c in self.critics], "critic_round": self.critic_round,
                "critic_opts": [o.state_dict() for o in self.critic_opts],
                **({"refiner_ema": self.refiner_ema.state_dict()} if self.refiner_ema is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        # fields that checkpoints of older versions lack, at the values those versions had
        before = {"refiner": {"smooth_px": 0, "rim_frac": 0.0, "quantize": False, "frame_knots": 0},
                  "discriminator": {"scales": 1, "global_head": False, "global_view": "circle",
                                    "fresh_every": 0, "fresh_count": 2, "fresh_steps": 300, "fresh_pool": 128,
                                    "fresh_noise": 0.0, "fresh_tune": 0}}
        for key in ("refiner", "discriminator"):
            was = {**before.get(key, {}), **state["config"][key]}
            now = to_dict(getattr(self.cfg, key))
            if key == "discriminator" and not was["global_head"] and not now["global_head"]:
                was.pop("global_view"), now.pop("global_view")   # no head: its view is moot
            if was != now:
                raise CheckpointError(f"last.pt was trained with {key} {was}; the config "
                                      f"now says {now}: resume with the same {key}")
        self.refiner.load_state_dict(state["refiner"])
        if self.refiner_ema is not None:   # a checkpoint without an average starts it at its weights
            self.refiner_ema.load_state_dict(state.get("refiner_ema", state["refiner"]))
        self.disc.load_state_dict(state["disc"])
        self.disc_coarse.load_state_dict(state.get("disc_coarse", {}))
        self.disc_global.load_state_dict(state.get("disc_global", {}))
        self.opt_r.load_state_dict(state["opt_r"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.history.load_state_dict(state["history"])
        _set_rng_state(self.source.rng, state["rng_source"])
        _set_rng_state(self.target.rng, state["rng_target"])
        self.critics = []
        for sd in state.get("critics", []):
            critic = DomainClassifier().to(self.device)
            critic.load_state_dict(sd)
            self.critics.append(critic.eval().requires_grad_(False))
        self.critic_opts = []
        if self.cfg.discriminator.fresh_tune:
            for critic, sd in zip(self.critics, state.get("critic_opts", [])):
                opt = _critic_optimizer(critic)
                opt.load_state_dict(sd)
                self.critic_opts.append(opt)
        self.critic_round = int(state.get("critic_round", 0))
        self.step, self.records = int(state["step"]), list(state["records"])

    @property
    def adv_steps(self) -> int:
        return max(0, self.step - self.cfg.schedule.pretrain_refiner_steps - self.cfg.schedule.pretrain_disc_steps)

    def save(self) -> None:
        """last.pt (everything to resume) and refiner.pt (what apply needs), each written atomically."""
        save_checkpoint(self.state_dict(), self.out_dir / "last.pt")
        save_checkpoint(self.refiner_state(), self.out_dir / "refiner.pt")

    def refiner_state(self) -> dict:
        """What refiner.pt holds: the refiner (its moving average with ``optim.ema_decay``)."""
        return refiner_checkpoint(self.refiner if self.refiner_ema is None else self.refiner_ema, self.cfg, self.adv_steps)

    def snapshot(self) -> Path:
        """snapshots/refiner_NNNNNN.pt (NNNNNN: adversarial steps), kept: refiner.pt at this step."""
        path = self.out_dir / "snapshots" / f"refiner_{self.adv_steps:06d}.pt"
        path.parent.mkdir(exist_ok=True)
        save_checkpoint(self.refiner_state(), path)
        return path


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
        cfg: the resolved config.
        real: a folder of real frames, a video, or a ColonSim HDF5 of real frames.
        synthetic: a ColonSim HDF5 with ``rgb`` (and ``mask``).
        out_dir: the run folder (created).
        resume: continue from ``out_dir/last.pt``.
        steps: adversarial steps in all (overrides ``cfg.schedule.steps``); with ``resume``, the run
            continues until this many are done.
        nproc: data-parallel processes on this machine (spawned here, as torchrun would; under
            torchrun leave it at 1); ``data.batch_size`` stays the global batch and must divide by it.
    """
    if steps is not None:
        if steps < 0:
            raise InputError(f"--steps must be >= 0, got {steps}")
        cfg = _with_steps(cfg, steps)
    if nproc > 1 and cfg.discriminator.fresh_every:
        raise InputError(FRESH_ONE_PROCESS)
    if nproc > 1 and not distributed.from_env().enabled:
        distributed.check_batch(cfg.data.batch_size, nproc, "data.batch_size")
        return distributed.launch(train_refiner, nproc, cfg, real, synthetic, out_dir, resume=resume, steps=steps)
    out = Path(out_dir)
    if (out / "last.pt").exists() and not resume:
        raise InputError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    dist = distributed.setup(_device(cfg).type)
    distributed.check_batch(cfg.data.batch_size, dist.world, "data.batch_size")
    trainer = Trainer(cfg, real, synthetic, out, dist)
    if not dist.main:
        _follow(trainer, cfg, resume)
        return distributed.from_main(None, dist)  # rank 0's summary
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
            interrupt.check()
            phase, scalars = trainer.schedule_step()
            scalars, _ = distributed.mean_over_ranks(scalars, dist)
            trainer.step += 1
            book.add(trainer.step, phase, scalars)
            if trainer.step % s.log_every == 0:
                book.flush(trainer.step, phase)
            if trainer.step % s.sample_every == 0:
                book.samples(trainer.step, trainer.samples())
            if trainer.step % s.checkpoint_every == 0:
                trainer.save()
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
               "refiner": str(out / "refiner.pt"), "last": str(out / "last.pt"), "run_dir": str(out)}
    return distributed.from_main(summary, dist)  # every rank returns rank 0's summary


def _follow(trainer: Trainer, cfg: AdaptConfig, resume: bool) -> None:
    """The loop of ranks other than 0: the same updates and all-reduces as rank 0, and no output."""
    s = cfg.schedule
    if resume and (trainer.out_dir / "last.pt").exists():  # rank 0 loads the same file
        trainer.load_state_dict(load_checkpoint(trainer.out_dir / "last.pt", TRAIN_STATE_KIND))
    total = s.pretrain_refiner_steps + s.pretrain_disc_steps + s.steps
    while trainer.step < total:
        interrupt.check()
        _, scalars = trainer.schedule_step()
        distributed.mean_over_ranks(scalars, trainer.dist)
        trainer.step += 1
        if distributed.mean_over_ranks({}, trainer.dist, False)[1]:
            break


def _with_steps(cfg: AdaptConfig, steps: int) -> AdaptConfig:
    return dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, steps=int(steps)))
