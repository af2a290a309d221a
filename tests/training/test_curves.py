"""training.curves: loss_curve.png from logged rows or from TensorBoard events."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
from torch.utils.tensorboard import SummaryWriter

from training import Panel, plot_loss_curve, plot_run, read_scalars


def test_plot_from_rows_writes_one_panel_each(tmp_path):
    rows = [{"step": s, "train/total": 1.0 / s, "disc/acc": 0.5 + 0.01 * s} for s in range(1, 40)]
    rows.append({"step": 40, "val/abs_rel": 0.2})  # a key logged at some steps only
    one = plot_loss_curve(rows, tmp_path / "one.png")
    three = plot_loss_curve(rows, tmp_path / "three.png",
                            panels=[Panel("losses", yscale="symlog"), Panel("acc", ("acc",)), Panel("val", ("val/",))])
    h1, w1 = mpimg.imread(one).shape[:2]
    h3, w3 = mpimg.imread(three).shape[:2]
    assert h1 == h3 == 360 and (w1, w3) == (7 * 90, 17 * 90)


def test_read_scalars_gives_what_was_logged(tmp_path):
    with SummaryWriter(str(tmp_path / "tb")) as w:
        for step in range(1, 6):
            w.add_scalar("train/total", 1.0 / step, step)
            if step % 2 == 0:
                w.add_scalar("val/abs_rel", 0.1 * step, step)
    rows = read_scalars(tmp_path / "tb")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["train/total"] for r in rows] == [float(np.float32(1.0 / s)) for s in range(1, 6)]
    assert [r.get("val/abs_rel") for r in rows] == [None, float(np.float32(0.2)), None, float(np.float32(0.4)), None]
    out = plot_run(tmp_path / "tb", tmp_path / "loss_curve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_log_still_gives_a_figure(tmp_path):
    assert plot_loss_curve([], tmp_path / "empty.png").stat().st_size > 0
