"""RUN/loss_curve.png: the logged scalars of a run, plotted against the step.

The scalars come either as rows (``[{"step": 10, "train/total": 0.31, ...}, ...]``, a key absent
from a row is simply not plotted at that step) or from the run's TensorBoard events
(:func:`read_scalars`). :class:`Panel` groups the series: each series goes to the first panel whose
``match`` holds a substring of its name, or else to the first panel with an empty ``match``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.figure import Figure  # drawn by Agg without pyplot: no global backend, no GUI


@dataclass(frozen=True)
class Panel:
    title: str                  # the panel's title
    match: tuple[str, ...] = ()  # substrings of the series names it shows; () = the series no other panel takes
    yscale: str = "linear"      # "linear", "log" or "symlog" (linear within 1e-3 of 0)


def read_scalars(tb_dir: str | Path) -> list[dict[str, float]]:
    """The scalars of a TensorBoard log folder as rows, one per step, sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    rows: dict[int, dict[str, float]] = {}
    for tag in acc.Tags().get("scalars", []):
        for ev in acc.Scalars(tag):
            rows.setdefault(int(ev.step), {"step": int(ev.step)})[tag] = float(ev.value)
    return [rows[s] for s in sorted(rows)]


def _assign(names: Sequence[str], panels: Sequence[Panel]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in panels]
    for name in names:
        i = next((i for i, p in enumerate(panels) if any(m in name for m in p.match)), None)
        if i is None:
            i = next((i for i, p in enumerate(panels) if not p.match), None)
        if i is not None:
            out[i].append(name)
    return out


def plot_loss_curve(rows: Sequence[Mapping[str, float]], path: str | Path,
                    panels: Sequence[Panel] = (Panel("losses", yscale="log"),), x: str = "step") -> Path:
    """Write a PNG with one panel per :class:`Panel` side by side; returns its path.

    Args:
        rows: logged scalars, each row a mapping with the ``x`` key (see the module doc).
        path: the PNG to write (RUN/loss_curve.png).
        panels: how to group the series; by default one panel of every series on a log scale.
        x: the key of the horizontal axis.
    """
    names = sorted({k for r in rows for k in r if k != x and isinstance(r[k], (int, float))})
    groups = _assign(names, panels)
    fig = Figure(figsize=(5 * len(panels) + 2, 4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, panel, group in zip(axes[0], panels, groups):
        for name in group:
            pts = [(r[x], r[name]) for r in rows if name in r and x in r]
            ax.plot(*zip(*pts), lw=0.9, marker="o" if len(pts) < 30 else None, ms=3, label=name)
        if group and panel.yscale == "symlog":
            ax.set_yscale("symlog", linthresh=1e-3)
        elif group and panel.yscale == "log" and all(r[n] > 0 for r in rows for n in group if n in r):
            ax.set_yscale("log")
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(x)
        if group:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path


def plot_run(tb_dir: str | Path, path: str | Path, panels: Sequence[Panel] = (Panel("losses", yscale="log"),)) -> Path:
    """:func:`plot_loss_curve` of the scalars in a TensorBoard folder (RUN/tb)."""
    return plot_loss_curve(read_scalars(tb_dir), path, panels)
