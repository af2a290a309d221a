"""After a benchmark run (adapt.eval.select): the choice among its snapshots by the training frames,
and the score against renders of the held-out frames' own layouts."""
from __future__ import annotations

import json

import pytest

from adapt.eval.select import control_score, select_snapshot
from colonsim.errors import CheckpointError, InputError


def test_select_picks_the_snapshot_that_passes_for_synthetic_by_the_training_frames(tmp_path, tiny_cfg):
    """The "real" frames of this run are renders of the synthetic kind, and its "match" darkened
    them by 60 grey levels. A snapshot that brightens them back passes for synthetic; the final
    refiner, the identity, leaves them dark. --select must pick the snapshot by the training
    frames, the held-out scores must agree, and where no refiner beats the matched frames
    themselves (a tie included) the choice is the match."""
    import cv2
    import numpy as np
    import torch

    from adapt.checkpoint import save_refiner
    from adapt.networks import Refiner
    from tests.adapt.conftest import synthetic_frames, write_h5

    work = tmp_path / "work"
    rgb, depth, mask = synthetic_frames(24, 40, seed=1)
    synth = write_h5(tmp_path / "synth.h5", rgb, depth, mask)
    frames, _, _ = synthetic_frames(24, 40, seed=5)
    dark = np.where(frames > 0, np.clip(frames.astype(int) - 60, 1, 255), 0).astype(np.uint8)  # border stays 0
    for part, sl in (("real_train", slice(0, 12)), ("real_heldout", slice(12, 24))):
        for folder, imgs in ((part, frames), (part.replace("real", "matched"), dark)):
            (work / folder).mkdir(parents=True)
            for i, f in enumerate(imgs[sl]):
                cv2.imwrite(str(work / folder / f"{i:03d}.png"), f[..., ::-1])
    (work / "results.json").write_text(json.dumps({"match": True, "synthetic": str(synth),
                                                   "train_synthetic": str(synth), "acc_matched": 0.7,
                                                   "acc_matched_seeds": [0.68, 0.72]}))
    snaps = work / "run" / "snapshots"
    snaps.mkdir(parents=True)

    def refiner(shift_levels: float) -> Refiner:   # the residual refiner's identity, shifted
        model = Refiner(width=4, blocks=1)
        with torch.no_grad():
            model.tail.bias.fill_(shift_levels / 127.5)
        return model

    save_refiner(work / "run" / "model.pt", refiner(0), tiny_cfg, 4)
    with pytest.raises(InputError, match="snapshot_every"):      # no snapshot is no choice
        select_snapshot(work, None, 16, 60, 2, 2, 0)
    assert not (work / "select.json").exists()
    save_refiner(snaps / "step_000002.pt", refiner(60), tiny_cfg, 2)
    s = select_snapshot(work, None, 16, 60, 2, 2, 0)
    assert json.loads((work / "select.json").read_text()) == s
    assert [c["candidate"] for c in s["candidates"]] == ["match", "step_000002", "final"]
    assert [c["adv_steps"] for c in s["candidates"]] == [0, 2, 4]
    assert s["selected"] == "step_000002"
    match, first, final = s["candidates"]
    assert first["acc_select"] < final["acc_select"] and final["acc_select"] > 0.9
    assert s["acc_refined_selected"] == first["acc_refined"] < s["acc_refined_final"] == final["acc_refined"]
    # the match, scored on the same frames, reads what the identity refiner reads
    assert s["acc_select_matched"] == match["acc_select"] == final["acc_select"]
    assert match["acc_refined"] == 0.7 and match["acc_refined_seeds"] == [0.68, 0.72]
    (snaps / "step_000003.pt").write_bytes(b"not a checkpoint")    # e.g. a copy cut short
    with pytest.raises(CheckpointError, match="step_000003.pt"):
        select_snapshot(work, None, 16, 60, 2, 2, 0)
    assert json.loads((work / "select.json").read_text()) == s        # the last choice is kept
    # the safeguard: a snapshot that darkens further, and the identity, which ties with the match
    save_refiner(snaps / "step_000003.pt", refiner(-40), tiny_cfg, 3)
    (snaps / "step_000002.pt").unlink()
    s = select_snapshot(work, None, 16, 60, 2, 2, 0)
    assert s["selected"] == "match" and s["acc_refined_selected"] == 0.7
    assert s["candidates"][1]["acc_select"] >= s["acc_select_matched"] == s["candidates"][2]["acc_select"]


def test_control_scores_against_renders_that_show_what_the_held_out_frames_show(tmp_path):
    """The held-out frames are flat views of the wall; the run's pool is mostly lumen views (a dark
    centre) with some flat ones. Against the whole pool a classifier tells the refined frames from
    the renders by what they show; --control keeps the flat renders only, and then it cannot,
    while the raw frames (darker and tinted) are still told apart."""
    import cv2
    import numpy as np

    from adapt.eval.score import score
    from tests.adapt.conftest import synthetic_frames, write_h5

    size = 32
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    mask = (xx ** 2 + yy ** 2 < 0.47 ** 2).astype(np.uint8)

    def flat(n, seed):   # the near wall, lit a little unevenly
        rng = np.random.default_rng(seed)
        out = []
        for a, g in zip(rng.uniform(0, 2 * np.pi, n), rng.uniform(0.1, 0.3, n)):
            shade = 0.8 + g * (xx * np.cos(a) + yy * np.sin(a))
            out.append((shade[..., None] * np.array([230, 150, 140]) * mask[..., None]).astype(np.uint8))
        return np.stack(out)

    lumen, depth, _ = synthetic_frames(72, size, seed=3)
    walls = flat(24, seed=4)
    pool = write_h5(tmp_path / "pool.h5", np.concatenate([lumen, walls]),
                    np.concatenate([depth, np.full((24, size, size), 10.0, np.float32) * mask]), mask)
    work = tmp_path / "work"
    held = flat(24, seed=5)
    raw = np.where(held > 0, np.clip(held * np.array([0.7, 0.5, 0.6]) - 30, 1, 255), 0).astype(np.uint8)
    for folder, imgs in (("real_heldout", raw), ("matched_heldout", held), ("refined_heldout", held)):
        (work / folder).mkdir(parents=True)
        for i, f in enumerate(imgs):
            cv2.imwrite(str(work / folder / f"{i:03d}.png"), f[..., ::-1])
    (work / "results.json").write_text(json.dumps({"match": True, "synthetic": str(pool), "acc_refined": 0.9}))
    c = control_score(work, None, 24, 16, 80, 2, 0)
    assert json.loads((work / "control.json").read_text()) == c
    import h5py
    with h5py.File(work / "synthetic_control.h5") as f:
        kept = f["params/pool_index"][()]
    assert (kept >= 72).mean() >= 0.9                  # the flat renders, nearly all of them
    whole = score(work / "real_heldout", work / "refined_heldout", pool, size_px=16, steps=80, seed=0, repeats=2)
    assert whole["acc_refined"] > 0.75                 # against the whole pool: told apart by content
    assert c["acc_refined"] < 0.65 and c["acc_matched"] < 0.65     # content alike: not told apart
    assert c["acc_raw"] > 0.9                          # how the raw frames look still gives them away
    assert c["uncontrolled"]["acc_refined"] == 0.9
    # not a finished run, or a pool too small: an error that says which
    with pytest.raises(InputError, match="not a finished run"):
        control_score(tmp_path / "nothing", None, 24, 16, 80, 2, 0)
    with pytest.raises(InputError, match="cannot keep 200"):
        control_score(work, None, 200, 16, 80, 2, 0)
    with pytest.raises(InputError, match="no_pool.h5.*--synthetic"):
        control_score(work, tmp_path / "no_pool.h5", 24, 16, 80, 2, 0)
    assert json.loads((work / "control.json").read_text()) == c     # the earlier score is kept


