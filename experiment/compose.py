"""adapt/ composed with depth/: the refiner as a frame transform of depth evaluation.

depth/ evaluates through any frame transform (:data:`depth.evaluate.FrameTransform`) and knows
nothing of adapt/; this module, which imports both, makes adapt's refiner one, and registers the
``colonsim depth`` commands with ``depth eval --refiner ADAPT_RUN/refiner.pt``.
"""
from __future__ import annotations

from pathlib import Path

from depth import commands as depth_commands


def refiner_artifact(adapt_run: str | Path) -> Path:
    """The refiner an adapt run folder holds: RUN/model.pt (training.rundir's layout), or the
    RUN/refiner.pt of runs written before adapt/ took that layout."""
    run = Path(adapt_run)
    return run / "model.pt" if (run / "model.pt").exists() else run / "refiner.pt"


def refiner_transform(path: str | Path):
    """The frame transform of an adapt refiner checkpoint: every frame made to look like the
    refiner's target domain (synthetic, for the reverse direction), black outside its mask."""
    from adapt.apply import load_refiner, refine_images

    model, _ = load_refiner(path)

    def refine(rgb, mask):
        return refine_images(model, rgb, mask)
    return refine


REFINER = depth_commands.TransformOption(
    "--refiner", "R.pt", "adapt refiner applied to every frame first (ADAPT_RUN/refiner.pt): the "
    "reverse domain adaptation", refiner_transform)


def add_parsers(subparsers) -> None:
    """``colonsim depth ...``, with ``depth eval --refiner``."""
    depth_commands.add_parsers(subparsers, transforms=(REFINER,))
