"""benchmarks/adapt_runs.py: the summary over several adapt_quality.py runs."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "adapt_runs.py"


@pytest.fixture(scope="module")
def adapt_runs():
    spec = importlib.util.spec_from_file_location("adapt_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def aq():
    """benchmarks/adapt_quality.py as a module."""
    spec = importlib.util.spec_from_file_location("adapt_quality", SCRIPT.with_name("adapt_quality.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, name: str, **scores) -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "results.json").write_text(json.dumps({"adversarial_steps": 100, **scores}))
    return work


def test_mean_and_standard_error(tmp_path, adapt_runs):
    a = _run(tmp_path, "a", acc_raw=1.0, acc_refined=0.60, acc_matched=0.62)
    b = _run(tmp_path, "b", acc_raw=0.98, acc_refined=0.70, acc_matched=0.64)
    s = adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(b)])
    assert s["n"] == 2
    assert s["mean"]["acc_refined"] == pytest.approx(0.65)
    assert s["mean"]["acc_raw"] == pytest.approx(0.99)
    # two runs 0.1 apart: sample sd 0.1/sqrt(2), standard error 0.05
    assert s["sem"]["acc_refined"] == pytest.approx(0.05)
    assert s["sem"]["acc_matched"] == pytest.approx(0.02 / math.sqrt(2) / math.sqrt(2))
    # a score that one run lacks is not averaged over the others
    assert "acc_structure" not in s["mean"]
    t = adapt_runs.table(s)
    assert t.splitlines()[-1].startswith("| mean of 2 |") and "**0.650** ± 0.050" in t


def test_refined_against_matched_is_paired_by_run(tmp_path, adapt_runs):
    """Two seeds whose luck moves both scores together: the paired difference has a small standard
    error though each score's own spread is large."""
    a = _run(tmp_path, "a", acc_refined=0.62, acc_matched=0.61)
    b = _run(tmp_path, "b", acc_refined=0.70, acc_matched=0.68)
    c = _run(tmp_path, "c", acc_refined=0.66)   # no match score: no difference, and none averaged
    s = adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(b)])
    assert s["mean"]["refined_minus_matched"] == pytest.approx(0.015)
    assert s["sem"]["refined_minus_matched"] == pytest.approx(0.005)
    assert s["sem"]["acc_refined"] == pytest.approx(0.04)
    rows = adapt_runs.table(s).splitlines()
    assert "+0.010" in rows[2] and "+0.020" in rows[3] and "**+0.015** ± 0.005" in rows[-1]
    assert "refined_minus_matched" not in adapt_runs.load(c)
    # a run whose refiner was given part of the match: what the refiner did on its own, paired too
    d = _run(tmp_path, "d", acc_refined=0.60, acc_matched=0.58, acc_input=0.85)
    assert adapt_runs.load(d)["refined_minus_input"] == pytest.approx(-0.25)
    assert "refined_minus_input" not in adapt_runs.load(a)
    assert "-0.250" in adapt_runs.table(adapt_runs.summarize([adapt_runs.load(d)]))
    assert "refined_minus_matched" not in adapt_runs.summarize([adapt_runs.load(a), adapt_runs.load(c)])["mean"]


def test_cli_prints_json_and_rejects_bad_folders(tmp_path):
    a = _run(tmp_path, "a", acc_raw=0.99, acc_refined=0.66)
    ok = subprocess.run([sys.executable, str(SCRIPT), str(a), "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["mean"]["acc_refined"] == pytest.approx(0.66)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    for bad in (tmp_path / "missing", tmp_path / "bad"):
        r = subprocess.run([sys.executable, str(SCRIPT), str(a), str(bad)], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and str(bad) in r.stderr


def test_adapt_quality_measures_what_the_refiner_changes_on_held_out_frames(tmp_path, real_dir, tiny_cfg, aq):
    """An untrained residual refiner is the identity and must read as one (changed_frac 0); a
    refiner that shifts every grey level by 25 must read as changing every pixel by 25."""
    import torch

    from adapt.checkpoint import refiner_checkpoint, save_checkpoint
    from adapt.networks import Refiner

    model = Refiner(width=4, blocks=1)
    save_checkpoint(refiner_checkpoint(model, tiny_cfg, 0), tmp_path / "identity.pt")
    same = aq.held_out_change(real_dir, tmp_path / "identity.pt")
    assert same == {"delta_grey_heldout": 0.0, "changed_frac": 0.0, "changed_frac_square": 0.0,
                    "shift_square": 0.0, "shift_rim": 0.0}
    with torch.no_grad():
        model.tail.bias.fill_(25 / 127.5)
    save_checkpoint(refiner_checkpoint(model, tiny_cfg, 0), tmp_path / "shift.pt")
    moved = aq.held_out_change(real_dir, tmp_path / "shift.pt")
    # every inside pixel moves by 25 grey levels, less where the real frames' levels clip at 255
    assert moved["changed_frac"] > 0.9 and moved["changed_frac_square"] > 0.9
    assert 20 < moved["delta_grey_heldout"] <= 25.5
    assert 20 < moved["shift_square"] <= 25.5 and 20 < moved["shift_rim"] <= 25.5


def test_adapt_quality_sees_levels_moved_out_of_the_classifiers_square(tmp_path, real_dir, tiny_cfg, aq):
    """A tones-keep refiner that darkens the pixels beside the black border (its 3x3 view averages
    in the black) must give them the frame's darkest levels, and the rest of the circle the
    brighter ones it had: shift_rim < 0 < shift_square, each frame's levels kept."""
    import torch

    from adapt.checkpoint import refiner_checkpoint, save_checkpoint
    from adapt.networks import Refiner

    model = Refiner(width=1, blocks=0, output="colour_curve", tones="keep")
    with torch.no_grad():
        model.head[0].weight.fill_(1.0 / 27.0)    # the 3x3 mean of the grey level, + 1 (so >= 0)
        model.head[0].bias.fill_(1.0)
        model.tail.weight.fill_(3.0)
    save_checkpoint(refiner_checkpoint(model, tiny_cfg, 0), tmp_path / "rim.pt")
    moved = aq.held_out_change(real_dir, tmp_path / "rim.pt")
    assert moved["shift_rim"] < 0 < moved["shift_square"], moved


def test_adapt_quality_refuses_missing_renders_or_real_frames_in_one_line(tmp_path, synthetic_h5):
    r = subprocess.run([sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
                        "--train-synthetic", str(tmp_path / "none.h5"), "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "none.h5" in r.stderr
    assert not (tmp_path / "w" / "real_train").exists()   # nothing was split, matched or trained
    r = subprocess.run([sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
                        "--real", str(tmp_path / "no_frames"), "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no_frames" in r.stderr


def test_split_real_holds_out_the_chosen_block_of_each_round(tmp_path, real_dir, aq):
    """Six frames in blocks of one, one block in four held out: the default holds out the last
    position of each round (frame 4), ``fold`` 0 the first (frames 1 and 5); blocks of three with
    fold 1 hold out a whole block (frames 4-6), as ``--block 95 --fold K`` holds out whole videos."""
    def held(block, fold):
        train, heldout, n_train, n_held = aq.split_real(real_dir, tmp_path / f"w{block}_{fold}", 0.25, block, fold)
        names = sorted(int(p.stem) for p in heldout.iterdir())
        assert n_held == len(names) and n_train == len(list(train.iterdir())) == 6 - n_held
        assert not {p.name for p in train.iterdir()} & {p.name for p in heldout.iterdir()}
        return names

    assert held(1, None) == held(1, 3) == [4]
    assert held(1, 0) == [1, 5]
    assert held(3, 1) == [4, 5, 6]
    with pytest.raises(ValueError, match="--fold 4"):
        aq.split_real(real_dir, tmp_path / "bad", 0.25, 1, 4)


def test_adapt_quality_refuses_a_pick_or_fold_it_cannot_make_in_one_line(tmp_path, synthetic_h5, real_dir):
    base = [sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
            "--real", str(real_dir), "--block", "1", "--minutes", "0.01"]
    cases = ((["--pick", "9"], "which has 8"), (["--pick", "0"], "cannot keep 0"),
             (["--pick-train", "4"], "--pick-train needs --train-synthetic"), (["--fold", "4"], "--fold 4: choose 0..3"))
    for i, (extra, words) in enumerate(cases):
        work = tmp_path / f"w{i}"
        r = subprocess.run([*base, *extra, "--work", str(work)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
        assert not (work / "run").exists() and not list(work.glob("*picked.h5"))   # nothing trained or kept


def test_select_picks_the_snapshot_that_passes_for_synthetic_by_the_training_frames(tmp_path, tiny_cfg, aq, capsys):
    """The "real" frames of this run are renders of the synthetic kind, and its "match" darkened
    them by 60 grey levels. A snapshot that brightens them back passes for synthetic; the final
    refiner, the identity, leaves them dark. --select must pick the snapshot by the training
    frames, the held-out scores must agree, and where no refiner beats the matched frames
    themselves (a tie included) the choice is the match."""
    import cv2
    import numpy as np
    import torch

    from adapt.checkpoint import refiner_checkpoint, save_checkpoint
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

    save_checkpoint(refiner_checkpoint(refiner(0), tiny_cfg, 4), work / "run" / "refiner.pt")
    assert aq.select_snapshot(work, None, 16, 60, 2, 2, 0) == 2      # no snapshot is no choice
    assert "snapshot_every" in capsys.readouterr().err and not (work / "select.json").exists()
    save_checkpoint(refiner_checkpoint(refiner(60), tiny_cfg, 2), snaps / "refiner_000002.pt")
    assert aq.select_snapshot(work, None, 16, 60, 2, 2, 0) == 0
    s = json.loads((work / "select.json").read_text())
    assert [c["candidate"] for c in s["candidates"]] == ["match", "refiner_000002", "final"]
    assert [c["adv_steps"] for c in s["candidates"]] == [0, 2, 4]
    assert s["selected"] == "refiner_000002"
    match, first, final = s["candidates"]
    assert first["acc_select"] < final["acc_select"] and final["acc_select"] > 0.9
    assert s["acc_refined_selected"] == first["acc_refined"] < s["acc_refined_final"] == final["acc_refined"]
    # the match, scored on the same frames, reads what the identity refiner reads
    assert s["acc_select_matched"] == match["acc_select"] == final["acc_select"]
    assert match["acc_refined"] == 0.7 and match["acc_refined_seeds"] == [0.68, 0.72]
    (snaps / "refiner_000003.pt").write_bytes(b"not a checkpoint")    # e.g. a copy cut short
    assert aq.select_snapshot(work, None, 16, 60, 2, 2, 0) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("adapt_quality: ") and "refiner_000003.pt" in err[-1]
    assert json.loads((work / "select.json").read_text()) == s        # the last choice is kept
    # the safeguard: a snapshot that darkens further, and the identity, which ties with the match
    save_checkpoint(refiner_checkpoint(refiner(-40), tiny_cfg, 3), snaps / "refiner_000003.pt")
    (snaps / "refiner_000002.pt").unlink()
    assert aq.select_snapshot(work, None, 16, 60, 2, 2, 0) == 0
    s = json.loads((work / "select.json").read_text())
    assert s["selected"] == "match" and s["acc_refined_selected"] == 0.7
    assert s["candidates"][1]["acc_select"] >= s["acc_select_matched"] == s["candidates"][2]["acc_select"]


def test_control_scores_against_renders_that_show_what_the_held_out_frames_show(tmp_path, aq, capsys):
    """The held-out frames are flat views of the wall; the run's pool is mostly lumen views (a dark
    centre) with some flat ones. Against the whole pool a classifier tells the refined frames from
    the renders by what they show; --control keeps the flat renders only, and then it cannot,
    while the raw frames (darker and tinted) are still told apart."""
    import cv2
    import numpy as np
    from adapt.score import score
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
    assert aq.control_score(work, None, 24, 16, 80, 2, 0) == 0
    c = json.loads((work / "control.json").read_text())
    import h5py
    with h5py.File(work / "synthetic_control.h5") as f:
        kept = f["params/pool_index"][()]
    assert (kept >= 72).mean() >= 0.9                  # the flat renders, nearly all of them
    whole = score(work / "real_heldout", work / "refined_heldout", pool, size_px=16, steps=80, seed=0, repeats=2)
    assert whole["acc_refined"] > 0.75                 # against the whole pool: told apart by content
    assert c["acc_refined"] < 0.65 and c["acc_matched"] < 0.65     # content alike: not told apart
    assert c["acc_raw"] > 0.9                          # how the raw frames look still gives them away
    assert c["uncontrolled"]["acc_refined"] == 0.9 and "control.json" in capsys.readouterr().out
    # not a finished run, or a pool too small: one line, exit 2
    assert aq.control_score(tmp_path / "nothing", None, 24, 16, 80, 2, 0) == 2
    assert aq.control_score(work, None, 200, 16, 80, 2, 0) == 2
    assert aq.control_score(work, tmp_path / "no_pool.h5", 24, 16, 80, 2, 0) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 3 and "not a finished run" in err[0] and "cannot keep 200" in err[1]
    assert "no_pool.h5" in err[2] and "--synthetic" in err[2]
    assert json.loads((work / "control.json").read_text()) == c     # the earlier score is kept


def test_refiner_config_layers_file_over_benchmark_defaults_and_run_settings_over_file(tmp_path, aq):
    """The benchmark's width (32) gives way to a --config file, the run's own settings (size, seed,
    budget) to nothing in the file, and --set to nothing at all."""
    plain = aq.refiner_config(None, [], 64, 3, 1, 5.0)
    assert plain.refiner.width == 32 and plain.data.size_px == 64 and plain.seed == 3
    f = tmp_path / "c.yaml"
    f.write_text("refiner: {width: 12, blocks: 2}\ndata: {size_px: 999}\nseed: 7\nschedule: {time_limit_min: 99}\n")
    cfg = aq.refiner_config(f, [], 64, 3, 1, 5.0)
    assert (cfg.refiner.width, cfg.refiner.blocks) == (12, 2)
    assert (cfg.data.size_px, cfg.seed, cfg.schedule.time_limit_min) == (64, 3, 5.0)
    assert aq.refiner_config(f, ["refiner.width=20"], 64, 3, 1, 5.0).refiner.width == 20


def test_the_shipped_refiner_config_is_the_one_the_results_were_measured_with(aq):
    """benchmarks/configs/adapt_refiner.yaml resolves to the config of the --set list that the
    README's and RESULTS.md's runs recorded (results.json's config_overrides)."""
    recorded = ["losses.self_reg_space=structure", "refiner.width=16", "losses.self_reg_weight=0.5",
                "data.crop=[1.0,1.0]", "refiner.output=colour_curve", "refiner.tones=free", "refiner.smooth_px=8",
                "optim.ema_decay=0.999", "schedule.snapshot_every=1000", "discriminator.fresh_every=50",
                "discriminator.fresh_pool=512", "discriminator.fresh_tune=2"]
    shipped = SCRIPT.parent / "configs" / "adapt_refiner.yaml"
    assert aq.refiner_config(shipped, [], 64, 0, 2, 20.0) == aq.refiner_config(None, recorded, 64, 0, 2, 20.0)
    assert aq.refiner_config(shipped, [], 64, 0, 2, 20.0) != aq.refiner_config(None, recorded[1:], 64, 0, 2, 20.0)


def test_the_shipped_tones_config_is_the_one_its_results_were_measured_with(aq):
    """benchmarks/configs/adapt_tones.yaml resolves to adapt_refiner.yaml with the three --set items
    that the learned-tones runs recorded (results.json's config_overrides)."""
    configs = SCRIPT.parent / "configs"
    recorded = ["refiner.smooth_px=0", "refiner.frame_knots=16", "optim.ema_decay=0.99"]
    tones = aq.refiner_config(configs / "adapt_tones.yaml", [], 64, 0, 2, 20.0)
    assert tones == aq.refiner_config(configs / "adapt_refiner.yaml", recorded, 64, 0, 2, 20.0)
    assert tones != aq.refiner_config(configs / "adapt_refiner.yaml", recorded[:2], 64, 0, 2, 20.0)


def test_adapt_quality_refuses_a_wrong_config_key_or_match_step_in_one_line_before_any_work(tmp_path, synthetic_h5, real_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("refiner: {widht: 16}\n")
    base = [sys.executable, str(SCRIPT.with_name("adapt_quality.py")), "--synthetic", str(synthetic_h5),
            "--real", str(real_dir), "--block", "1", "--minutes", "0.01"]
    cases = ((["--config", str(bad)], "refiner.widht"), (["--set", "refiner.width=wide"], "refiner.width"),
             (["--config", str(tmp_path / "none.yaml")], "none.yaml"),
             (["--match-steps", "highlights"], "--match-steps needs --match"),
             (["--match", "--match-steps", "highlights,blur"], "--match-steps must be one or more of"))
    for i, (extra, words) in enumerate(cases):
        work = tmp_path / f"w{i}"
        r = subprocess.run([*base, *extra, "--work", str(work)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
        assert not work.exists()   # nothing split, matched or trained


def test_a_finished_runs_refiner_is_measured_on_the_frames_it_was_given(tmp_path, aq):
    """--remeasure and --select apply the saved refiner to its own held-out input: the raw frames,
    the whole match (--match), or the part of it the run gave (--match-steps, which records acc_input)."""
    assert aq.heldout_input(tmp_path, {"match": False}) == tmp_path / "real_heldout"
    assert aq.heldout_input(tmp_path, {"match": True, "acc_matched": 0.6}) == tmp_path / "matched_heldout"
    assert aq.heldout_input(tmp_path, {"match": True, "acc_matched": 0.6, "acc_input": 0.9}) == tmp_path / "input_heldout"
