"""What a training run reports: a progress bar, TensorBoard scalars and images (RUN/tb), sample-grid
PNGs, loss_curve.png (:mod:`training.curves`), and warnings for the known failure modes of
adversarial refinement."""
from __future__ import annotations

import logging
from collections import defaultdict

import cv2
import numpy as np
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from training.curves import Panel, plot_loss_curve
from training.rundir import RunDir

log = logging.getLogger(__name__)

#: Below this mean |refined - input| (8-bit grey levels) the refiner counts as the identity: the
#: known failure where self-regularization wins and the adversarial term has no effect.
IDENTITY_WARN_GREY = 1.0
#: A pixel counts as changed by the refiner when its grey level (the channels' mean, 8-bit) moves by
#: more than this.
CHANGED_LEVELS = 2.0
#: ... and the refiner counts as the identity only while it changes fewer pixels than this fraction
#: too: a smooth change can move a tenth of the frame by several levels at a small mean.
IDENTITY_WARN_FRAC = 0.01
#: Above this accuracy on both refined and target frames, the discriminator has won.
DISC_WINS_ACC = 0.99
#: Flushes between two warnings of the same kind.
WARN_EVERY = 50


#: loss_curve.png: the losses; the discriminator's accuracies with the fraction of pixels the refiner
#: changes; and the mean |refined - input| by the refiner and by its moving average (model.pt's).
CURVE_PANELS = (Panel("losses", yscale="symlog"),
                Panel("discriminator accuracy; fraction of pixels the refiner changes", ("/acc", "changed_frac")),
                Panel("mean |refined - input| (grey levels); _ema: model.pt's average", ("delta",)))


class Logbook:
    """Collects per-step scalars and writes their means every ``flush``.

    Args:
        run: the run folder.
        records: the list of flushed records (kept in last.pt, appended to in place).
        start_step, total: schedule steps done and planned (for the progress bar).
    """

    def __init__(self, run: RunDir, records: list[dict], start_step: int, total: int):
        self.run = run
        self.records = records
        self.writer = SummaryWriter(log_dir=str(run.tb), purge_step=start_step or None)
        # disable=None: no bar when stderr is not a terminal (a log file gets the warnings, not a bar per step)
        self.bar = tqdm(total=total, initial=start_step, desc="adapt train", unit="step", dynamic_ncols=True,
                        disable=None)
        self.pending: dict[str, list[float]] = defaultdict(list)
        self.n_flushes = 0
        self.warned_at: dict[str, int] = {}

    def add(self, step: int, phase: str, scalars: dict) -> None:
        for k, v in scalars.items():
            self.pending[k].append(float(v))
        self.bar.update(1)

    def flush(self, step: int, phase: str) -> None:
        if not self.pending:
            return
        rec = {k: float(np.mean(v)) for k, v in self.pending.items()}
        self.pending.clear()
        for k, v in rec.items():
            self.writer.add_scalar(k, v, step)
        self.records.append({"step": step, "phase": phase, **rec})
        short = {k.split("/")[-1]: f"{v:.3g}" for k, v in rec.items()}
        self.bar.set_postfix(short, refresh=False)
        self._warn(step, phase, rec)

    def _warn(self, step: int, phase: str, rec: dict) -> None:
        """Say so when the refiner stays the identity or the discriminator wins outright (each
        warning at most once every WARN_EVERY flushes)."""
        self.n_flushes += 1
        if phase != "adversarial":
            return
        delta = rec.get("refiner/delta_grey")
        changed = rec.get("refiner/changed_frac")   # absent in records written before it was logged
        if (delta is not None and delta < IDENTITY_WARN_GREY
                and (changed is None or changed < IDENTITY_WARN_FRAC) and self._due("identity")):
            moved = ("" if changed is None
                     else f"; {100 * changed:.2f} % of pixels moved by more than {CHANGED_LEVELS:g}")
            log.warning("step %d: refined frames are nearly identical to their inputs (mean |refined - input| "
                        "= %.2f grey levels%s): lower losses.self_reg_weight",
                        step, delta, moved)
        acc_t, acc_r = rec.get("disc/acc_target"), rec.get("disc/acc_refined")
        if acc_t is not None and acc_r is not None and min(acc_t, acc_r) > DISC_WINS_ACC and self._due("disc"):
            log.warning("step %d: the discriminator tells refined from target frames perfectly (acc %.3f / %.3f)",
                        step, acc_t, acc_r)

    def _due(self, what: str) -> bool:
        last = self.warned_at.get(what)
        if last is not None and self.n_flushes - last < WARN_EVERY:
            return False
        self.warned_at[what] = self.n_flushes
        return True

    def last(self) -> dict:
        """The latest value of every scalar seen so far."""
        out: dict = {}
        for rec in self.records:
            out.update({k: round(v, 5) for k, v in rec.items() if k not in ("step", "phase")})
        return out

    def samples(self, step: int, grid: np.ndarray) -> None:
        """Write samples_<step>.png and the same grid to TensorBoard; grid is (H, W, 3) uint8 RGB."""
        cv2.imwrite(str(self.run.root / f"samples_{step:06d}.png"), grid[..., ::-1])
        self.writer.add_image("samples", grid, step, dataformats="HWC")

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        if self.records:
            plot_loss_curve(self.records, self.run.loss_curve, CURVE_PANELS)
