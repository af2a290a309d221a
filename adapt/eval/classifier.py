"""The classifier of ``adapt score``: a small real-versus-synthetic CNN, trained on one half of the
frames and tested on the other (a classifier two-sample test), with its BatchNorm recalibrated
before testing (:func:`recalibrate_batchnorm`). The fresh critics of training (:mod:`adapt.critics`)
are classifiers of the same shape, trained the same way."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from colonsim.errors import InputError

from ..data import to_tensor


class DomainClassifier(nn.Module):
    """Four stride-2 3x3 convs, global average pooling, one logit (> 0: real)."""

    def __init__(self, width: int = 16):
        super().__init__()
        c = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(c[:-1], c[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))[:, 0]


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Split 0..n-1 into two halves by alternating blocks of neighbouring frames (neighbours in a
    video are near-duplicates, so a random split would leak)."""
    block = int(np.clip(n // 8, 1, 8))
    part = (np.arange(n) // block) % 2
    return np.flatnonzero(part == 0), np.flatnonzero(part == 1)


def fold(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of 0..n-1 for a classifier seed: the two :func:`halves`, in the
    other order for odd seeds."""
    a, b = halves(n)
    return (b, a) if seed % 2 else (a, b)


def recalibrate_batchnorm(model: nn.Module, real: torch.Tensor, synth: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of the final weights on a balanced set of
    the training frames, whole, as they are tested ("precise BN", Wu and Johnson 2021), and put the
    model in eval mode.

    The running averages that training leaves (momentum 0.1) trail weights that Adam moves fast;
    on these small classifiers they shift every test logit by the same amount, so that a classifier
    whose logits separate the two sets well could still call every test frame one class and score
    0.5 (seen on matched CVC-ColonDB frames: 0.50-0.54 for four of six seeds that separate them at
    0.82-0.91 once recalibrated).
    """
    k = min(len(real), len(synth))
    pick = lambda x: x[np.linspace(0, len(x) - 1, k).round().astype(int)]  # noqa: E731
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                      # a cumulative average over the one pass
    model.train()
    with torch.no_grad():
        model(torch.cat([pick(real), pick(synth)]))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()


def train_and_test(real: np.ndarray, synth: np.ndarray, steps: int, batch_size: int, seed: int) -> float:
    """Train on one half of each domain, return the balanced accuracy on the other half (see
    :func:`fit_and_test`)."""
    return fit_and_test(real, synth, steps, batch_size, seed)[0]


#: the learning rate (Adam) of the classifier's updates, here and in the fresh critics' updates
CLASSIFIER_LR = 1e-3


def fit_classifier(xr: torch.Tensor, xs: torch.Tensor, r_idx: np.ndarray, s_idx: np.ndarray, steps: int,
                   batch_size: int, rng: np.random.Generator, init_seed: int) -> DomainClassifier:
    """A :class:`DomainClassifier` (initialized with torch seed ``init_seed``) trained to call the
    frames ``xr[r_idx]`` real (logit > 0) and ``xs[s_idx]`` not: ``steps`` Adam updates (lr 1e-3)
    of cross-entropy on batches of ``batch_size / 2`` frames of each, drawn by ``rng``, each batch
    cropped at random to 3/4 of the side and flipped half the time; BatchNorm recalibrated at the
    end (:func:`recalibrate_batchnorm`), so it is returned in eval mode.

    xr, xs: (N, 3, S, S) float in [-1, 1], on the device the classifier is to train on."""
    crop = max(8, (3 * xr.shape[-1]) // 4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = DomainClassifier().to(xr.device)
    opt = torch.optim.Adam(model.parameters(), lr=CLASSIFIER_LR)
    loss_fn = nn.BCEWithLogitsLoss()
    half = max(1, batch_size // 2)
    y = torch.cat([torch.ones(half), torch.zeros(half)]).to(xr.device)
    model.train()
    for _ in range(steps):
        x = torch.cat([xr[rng.choice(r_idx, half)], xs[rng.choice(s_idx, half)]])
        top, left = rng.integers(0, x.shape[-1] - crop + 1, size=2)
        x = x[..., top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            x = x.flip(-1)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    recalibrate_batchnorm(model, xr[r_idx], xs[s_idx])
    return model


def fit_and_test(real: np.ndarray, synth: np.ndarray, steps: int, batch_size: int,
                 seed: int) -> tuple[float, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Train on one half of each domain, test on the other half.

    Even seeds train on the first half and test on the second, odd seeds the other way round
    (two-fold cross-fitting): with two or more seeds every frame is tested, and the mean over
    seeds does not hang on which frames one fixed test half happens to hold.

    real, synth: (N, S, S, 3) uint8. Returns (balanced accuracy, (real test indices, their logits),
    (synthetic test indices, their logits)); a logit > 0 calls a frame real.
    """
    rng = np.random.default_rng(seed)
    (r_tr, r_te), (s_tr, s_te) = fold(len(real), seed), fold(len(synth), seed)
    if min(r_tr.size, r_te.size, s_tr.size, s_te.size) == 0:
        raise InputError(f"scoring needs at least 2 real and 2 synthetic frames, got {len(real)} and {len(synth)}")
    xr, xs = to_tensor(real), to_tensor(synth)
    model = fit_classifier(xr, xs, r_tr, s_tr, steps, batch_size, rng, seed)
    with torch.inference_mode():
        logit_r, logit_s = model(xr[r_te]).numpy(), model(xs[s_te]).numpy()
    acc = 0.5 * (float((logit_r > 0).mean()) + float((logit_s <= 0).mean()))
    return acc, (r_te, logit_r), (s_te, logit_s)
