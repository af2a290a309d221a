"""Fresh critics: classifiers of ``adapt score``'s shape that judge the refiner in place of the
co-trained patch discriminator (``discriminator.fresh_every`` > 0).

Every ``fresh_every`` adversarial steps, :data:`FRESH_COUNT` classifiers
(:class:`adapt.eval.classifier.DomainClassifier`) are trained from scratch, as the score trains
its own, on :data:`FRESH_POOL` frames of the refiner's current output against as many target
frames, each seen as the square inside its image circle (:func:`square_view`). Their mean
cross-entropy towards "target" is the refiner's adversarial loss until the next round. After each
refiner step each critic takes :data:`FRESH_TUNE` more updates on that step's views, so that a
pattern that fools it is learned back at once. A co-trained discriminator follows the refiner and
can be led away; a classifier trained afresh finds whatever still tells the sets apart, as the
score's classifier will.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import inscribed_box
from .eval.classifier import CLASSIFIER_LR, DomainClassifier, fit_classifier

#: Critics per round (their losses are averaged).
FRESH_COUNT = 2
#: Adam updates that train each critic of a round (as ``adapt score`` trains its classifier).
FRESH_STEPS = 300
#: Frames of each domain a round of critics trains on.
FRESH_POOL = 512
#: Updates of each critic after every refiner step, on that step's views.
FRESH_TUNE = 2
#: Frames per critic batch (half of each domain), as in ``adapt score``.
FRESH_BATCH = 32


def square_view(x: torch.Tensor, mask: torch.Tensor, size_px: int) -> torch.Tensor:
    """(N, 3, size_px, size_px): each frame's largest axis-aligned square inside its image circle
    (:func:`adapt.data.inscribed_box`, the view ``adapt score``'s classifier judges), resized
    (bilinear, antialiased); differentiable in ``x``. A frame with an empty mask gives its whole
    extent."""
    out = []
    for xi, mi in zip(x, (mask[:, 0] > 0.5).cpu().numpy()):
        y0, y1, x0, x1 = inscribed_box(mi) if mi.any() else (0, mi.shape[0], 0, mi.shape[1])
        crop = xi[None, :, y0:y1, x0:x1].float()
        if crop.shape[-2:] != (size_px, size_px):
            crop = F.interpolate(crop, size=(size_px, size_px), mode="bilinear", align_corners=False,
                                 antialias=crop.shape[-1] > size_px)
        out.append(crop.to(x.dtype))
    return torch.cat(out)


def balanced_accuracy(logit_refined: torch.Tensor, logit_target: torch.Tensor) -> float:
    """A critic's balanced accuracy: the mean of the refined frames it calls the refiner's (logit
    > 0) and the target frames it calls target (logit <= 0)."""
    return 0.5 * (float((logit_refined > 0).float().mean()) + float((logit_target <= 0).float().mean()))


class FreshCritics:
    """The critics of the current round, their optimizers, and the count of rounds so far."""

    def __init__(self, seed: int, device: torch.device):
        self.seed, self.device = seed, device
        self.critics: list[DomainClassifier] = []
        self.opts: list[torch.optim.Adam] = []
        self.round = 0

    def __bool__(self) -> bool:
        return bool(self.critics)

    def train_round(self, refined: torch.Tensor, target: torch.Tensor) -> dict:
        """A new round: :data:`FRESH_COUNT` critics trained from scratch to tell ``refined`` (label
        1) from ``target`` (label 0), both (N, 3, S, S) square views, then kept in eval mode (their
        BatchNorm statistics as :func:`adapt.eval.classifier.recalibrate_batchnorm` set them).
        Returns the critics' mean balanced accuracy on the frames they trained on."""
        rng = np.random.default_rng([self.seed, self.round])
        idx_r, idx_t = np.arange(len(refined)), np.arange(len(target))
        critics, accs = [], []
        for _ in range(FRESH_COUNT):
            init = int(rng.integers(2**31))
            critic = fit_classifier(refined, target, idx_r, idx_t, FRESH_STEPS, FRESH_BATCH, rng, init)
            critic.requires_grad_(False)
            with torch.no_grad():
                accs.append(balanced_accuracy(critic(refined), critic(target)))
            critics.append(critic)
        self.critics, self.round = critics, self.round + 1
        self.opts = [torch.optim.Adam(c.parameters(), lr=CLASSIFIER_LR) for c in critics]
        return {"fresh/acc_pool": float(np.mean(accs))}

    def loss(self, view: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The refiner's adversarial loss on refined square views: the critics' mean cross-entropy
        towards the target label (a logit > 0 calls a frame the refiner's); and the fraction of the
        views the critics, on average, still call refined."""
        logits = torch.stack([c(view) for c in self.critics])
        return F.softplus(logits).mean(), float((logits.detach().mean(0) > 0).float().mean())

    def tune(self, refined_view: torch.Tensor, target_view: torch.Tensor) -> dict:
        """:data:`FRESH_TUNE` Adam updates of each critic (kept in eval mode: its BatchNorm
        statistics stay as the round left them) on ``refined_view`` (label 1) against
        ``target_view`` (label 0). Returns the critics' mean balanced accuracy on that batch
        before the updates."""
        n = len(refined_view)
        x = torch.cat([refined_view.float(), target_view.float()])
        y = torch.cat([torch.ones(n), torch.zeros(len(target_view))]).to(x.device)
        accs = []
        for critic, opt in zip(self.critics, self.opts):
            critic.requires_grad_(True)
            for i in range(FRESH_TUNE):
                logits = critic(x)
                if i == 0:
                    accs.append(balanced_accuracy(logits.detach()[:n], logits.detach()[n:]))
                loss = F.binary_cross_entropy_with_logits(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            critic.requires_grad_(False)
        return {"fresh/acc_tune": float(np.mean(accs))}

    def state_dict(self) -> dict:
        return {"critics": [c.state_dict() for c in self.critics], "critic_round": self.round,
                "critic_opts": [o.state_dict() for o in self.opts]}

    def load_state_dict(self, state: dict) -> None:
        self.critics, self.opts = [], []
        for sd, osd in zip(state.get("critics", []), state.get("critic_opts", [])):
            critic = DomainClassifier().to(self.device)
            critic.load_state_dict(sd)
            self.critics.append(critic.eval().requires_grad_(False))
            opt = torch.optim.Adam(critic.parameters(), lr=CLASSIFIER_LR)
            opt.load_state_dict(osd)
            self.opts.append(opt)
        self.round = int(state.get("critic_round", 0))
