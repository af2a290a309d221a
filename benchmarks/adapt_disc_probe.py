"""What a trained run's discriminators decide on frames they did not train on, and why.

For a finished ``benchmarks/adapt_quality.py`` run folder (``--work``), loads ``run/last.pt`` and
prints each discriminator's accuracy (the patch discriminator's, then the frame-level head's where
there is one) on random crops, as training draws them, of four sets:

- the refined training frames (``matched_train`` with ``--match``, else ``real_train``);
- the refined held-out frames (``matched_heldout`` / ``real_heldout``), which it never saw;
- the renders it trained on (``--synthetic``);
- renders it never saw (``--unseen``, the same config with another render seed).

A discriminator that learned the frames rather than the domains scores lower on the frames it never
saw. With a frame-level head it also swaps the content between the sets' borders: the held-out
frames' content inside the renders' image circles and the other way round. A head whose verdict
follows the border's shape, which no refiner can change, calls every frame with a round border a
render.

Usage:
    python benchmarks/adapt_disc_probe.py --work runs/adapt_v6_w64sqres_seed0 \
        --synthetic runs/gap/v6.h5 --unseen runs/gap/v6_seed1.h5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fail(msg: str) -> None:
    print(f"adapt_disc_probe: {msg}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="an adapt_quality.py --work folder")
    ap.add_argument("--synthetic", required=True, help="the render set the run trained on")
    ap.add_argument("--unseen", required=True, help="renders the run never saw (another render seed)")
    ap.add_argument("--batches", type=int, default=40, help="batches of crops per set")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    from adapt import losses
    from adapt.checkpoint import TRAIN_STATE_KIND, load_checkpoint
    from adapt.config import load_adapt_config
    from adapt.data import CropSampler, open_frames
    from adapt.train import Trainer
    from colonsim.errors import ColonSimError

    work = Path(args.work)
    prefix = "matched" if (work / "matched_train").is_dir() else "real"
    need = [work / "run" / "config.yaml", work / "run" / "last.pt", work / f"{prefix}_train", work / f"{prefix}_heldout"]
    for p in need + [Path(args.synthetic), Path(args.unseen)]:
        if not p.exists():
            _fail(f"not found: {p} (expected a finished adapt_quality.py --work folder and two render sets)")
    if args.batches < 1:
        _fail(f"--batches must be >= 1, got {args.batches}")
    torch.set_num_threads(args.threads)
    try:
        # a run from before discriminator.global_view had the head judge the whole circle
        older = "global_view" not in (work / "run" / "config.yaml").read_text()
        cfg = load_adapt_config(work / "run" / "config.yaml", ["discriminator.global_view=circle"] * older)
        trainer = Trainer(cfg, work / f"{prefix}_train", args.synthetic, work / "run")
        trainer.load_state_dict(load_checkpoint(work / "run" / "last.pt", TRAIN_STATE_KIND))
        sets = {f"refined {prefix}_train (trained on)": (work / f"{prefix}_train", False),
                f"refined {prefix}_heldout (never seen)": (work / f"{prefix}_heldout", False),
                "renders trained on": (Path(args.synthetic), True),
                "renders never seen": (Path(args.unseen), True)}
        batches = {}
        for name, (src, _) in sets.items():
            sampler = CropSampler(open_frames(src, cfg.data.cache_short_side_px), cfg.data, np.random.default_rng(123))
            batches[name] = [sampler.next_batch() for _ in range(args.batches)]
    except ColonSimError as e:
        _fail(str(e))
    heads = ["patch"] + ["frame-level head"] * bool(cfg.discriminator.global_head)

    def verdicts(x, m, refine: bool):
        with torch.no_grad():
            y = trainer.refine(x, m) if refine else x
            return trainer.judge(y, m)

    print(f"{work}: discriminator accuracy on {args.batches} batches of {cfg.data.batch_size} crops "
          f"({cfg.data.size_px} px, crop {list(cfg.data.crop)}); columns: {', '.join(heads)}")
    for name, (_, is_target) in sets.items():
        accs = []
        for x, m in batches[name]:
            judged = verdicts(x, m, not is_target)
            judged = [judged[0], judged[-1]] if len(heads) > 1 else [judged[0]]
            accs.append([float(losses.accuracy(lg, is_target, cfg.losses.adv, w)) for lg, w in judged])
        print(f"  {name:40s} " + "  ".join(f"{a:.3f}" for a in np.mean(accs, axis=0)))
    if len(heads) < 2:
        return
    real_name, render_name = list(sets)[1], list(sets)[3]
    print(f"  frame-level head, content and border swapped (view {cfg.discriminator.global_view}); "
          "fraction called a render:")
    for content, border in ((real_name, real_name), (render_name, real_name), (real_name, render_name),
                            (render_name, render_name)):
        called = []
        for (xc, mc), (_, mb) in zip(batches[content], batches[border]):
            x = xc * mb + (mb - 1)     # the content inside the other set's image circle
            logits = verdicts(x, mb, content == real_name)[-1][0].flatten()
            called.append((logits.float() > losses.decision_threshold(cfg.losses.adv)).float().mean().item())
        print(f"    content of {content.split(' (')[0]:26s} border of {border.split(' (')[0]:26s} {np.mean(called):.3f}")


if __name__ == "__main__":
    main()
