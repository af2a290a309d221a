"""Fresh critics: the square view they judge, and critics that tell the domains apart and learn back."""
import numpy as np
import torch

from adapt.critics import FRESH_COUNT, FreshCritics, balanced_accuracy, square_view
from adapt.data import inscribed_box


def _frame(mask: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random frame black outside ``mask`` ((H, W) bool), and the mask, as the networks take them."""
    g = torch.Generator().manual_seed(seed)
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = torch.rand((1, 3) + mask.shape, generator=g) * 2 - 1
    return x * m + (m - 1), m


def test_square_view_is_the_scores_square_and_ignores_border_and_rim():
    yy, xx = np.mgrid[:96, :96] - 47.5
    circle = np.hypot(yy, xx) < 44
    tabs = circle | ((np.abs(np.abs(yy) - 34) < 3) & (np.abs(np.abs(xx) - 34) < 3))   # bumps on the border
    assert (tabs & ~circle).sum() > 50 and inscribed_box(tabs) == inscribed_box(circle)
    y0, y1, x0, x1 = inscribed_box(circle)
    x, m = _frame(circle)
    sq = square_view(x, m, 96)
    ref = torch.nn.functional.interpolate(x[:, :, y0:y1, x0:x1], size=(96, 96), mode="bilinear", align_corners=False)
    assert sq.shape == (1, 3, 96, 96) and torch.allclose(sq, ref)
    xt, mt = _frame(tabs)
    xt = torch.where(torch.from_numpy(circle)[None, None], x, xt)   # the same content inside the circle
    assert torch.equal(square_view(xt, mt, 32), square_view(x, m, 32))
    # differentiable in the frame
    x.requires_grad_(True)
    square_view(x, m, 32).sum().backward()
    assert x.grad[0, :, y0 + 2, x0 + 2].abs().sum() > 0 and x.grad[0, :, 0, 0].abs().sum() == 0


def test_fresh_critics_tell_the_domains_apart_learn_back_and_round_trip():
    g = torch.Generator().manual_seed(0)
    refined = torch.rand(64, 3, 16, 16, generator=g) * 0.5 + 0.3     # bright
    target = torch.rand(64, 3, 16, 16, generator=g) * 0.5 - 0.8      # dark
    critics = FreshCritics(seed=3, device=torch.device("cpu"))
    assert not critics
    out = critics.train_round(refined, target)
    assert len(critics.critics) == FRESH_COUNT and critics.round == 1
    assert out["fresh/acc_pool"] > 0.95
    assert all(not c.training and not any(p.requires_grad for p in c.parameters()) for c in critics.critics)
    # the refiner's loss: high on refined frames, low on target frames, with a gradient to the frames
    view = refined[:8].clone().requires_grad_(True)
    loss, called = critics.loss(view)
    assert called == 1.0 and loss.item() > critics.loss(target[:8])[0].item()
    loss.backward()
    assert view.grad.abs().sum() > 0
    # the same seed and round give the same critics
    again = FreshCritics(seed=3, device=torch.device("cpu"))
    again.train_round(refined, target)
    assert all(torch.equal(a, b) for a, b in zip(critics.critics[0].state_dict().values(),
                                                  again.critics[0].state_dict().values()))
    # a pattern that fools them (target-like frames labelled refined) is learned back
    fooling = target[:16] + 0.01
    before = balanced_accuracy(*(torch.stack([c(v) for c in critics.critics]).mean(0) for v in (fooling, target[16:32])))
    for _ in range(30):
        critics.tune(fooling, target[16:32])
    after = balanced_accuracy(*(torch.stack([c(v) for c in critics.critics]).mean(0) for v in (fooling, target[16:32])))
    assert before <= 0.55 and after > before
    # state round-trips
    restored = FreshCritics(seed=3, device=torch.device("cpu"))
    restored.load_state_dict(critics.state_dict())
    assert restored.round == 1 and torch.equal(restored.loss(view)[0], critics.loss(view)[0])
