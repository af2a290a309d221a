"""The benchmark's protocol (adapt.eval.protocol): the held-out split, what a refiner changes on the
held-out frames, and the benchmark's config."""
from __future__ import annotations

from pathlib import Path

import pytest

from adapt.eval.protocol import benchmark_config, held_out_change, heldout_input, split_real
from colonsim.errors import InputError

CONFIGS = Path(__file__).resolve().parents[3] / "benchmarks" / "configs"


def test_held_out_change_measures_what_the_refiner_changes_on_held_out_frames(tmp_path, real_dir, tiny_cfg):
    """An untrained residual refiner is the identity and must read as one (changed_frac 0); a
    refiner that shifts every grey level by 25 must read as changing every pixel by 25."""
    import torch

    from adapt.checkpoint import save_refiner
    from adapt.networks import Refiner

    model = Refiner(width=4, blocks=1)
    save_refiner(tmp_path / "identity.pt", model, tiny_cfg, 0)
    same = held_out_change(real_dir, tmp_path / "identity.pt")
    assert same == {"delta_grey_heldout": 0.0, "changed_frac": 0.0, "changed_frac_square": 0.0,
                    "shift_square": 0.0, "shift_rim": 0.0}
    with torch.no_grad():
        model.tail.bias.fill_(25 / 127.5)
    save_refiner(tmp_path / "shift.pt", model, tiny_cfg, 0)
    moved = held_out_change(real_dir, tmp_path / "shift.pt")
    # every inside pixel moves by 25 grey levels, less where the real frames' levels clip at 255
    assert moved["changed_frac"] > 0.9 and moved["changed_frac_square"] > 0.9
    assert 20 < moved["delta_grey_heldout"] <= 25.5
    assert 20 < moved["shift_square"] <= 25.5 and 20 < moved["shift_rim"] <= 25.5


def test_split_real_holds_out_the_chosen_block_of_each_round(tmp_path, real_dir):
    """Six frames in blocks of one, one block in four held out: the default holds out the last
    position of each round (frame 4), ``fold`` 0 the first (frames 1 and 5); blocks of three with
    fold 1 hold out a whole block (frames 4-6), as ``--block 95 --fold K`` holds out whole videos."""
    def held(block, fold):
        train, heldout, n_train, n_held = split_real(real_dir, tmp_path / f"w{block}_{fold}", 0.25, block, fold)
        names = sorted(int(p.stem) for p in heldout.iterdir())
        assert n_held == len(names) and n_train == len(list(train.iterdir())) == 6 - n_held
        assert not {p.name for p in train.iterdir()} & {p.name for p in heldout.iterdir()}
        return names

    assert held(1, None) == held(1, 3) == [4]
    assert held(1, 0) == [1, 5]
    assert held(3, 1) == [4, 5, 6]
    with pytest.raises(InputError, match="--fold 4"):
        split_real(real_dir, tmp_path / "bad", 0.25, 1, 4)


def test_benchmark_config_layers_file_over_benchmark_defaults_and_run_settings_over_file(tmp_path):
    """The benchmark's width (32) gives way to a --config file, the run's own settings (size, seed,
    budget) to nothing in the file, and --set to nothing at all."""
    plain = benchmark_config(None, [], 64, 3, 1, 5.0)
    assert plain.refiner.width == 32 and plain.data.size_px == 64 and plain.seed == 3
    f = tmp_path / "c.yaml"
    f.write_text("refiner: {width: 12, blocks: 2}\ndata: {size_px: 999}\nseed: 7\nschedule: {time_limit_min: 99}\n")
    cfg = benchmark_config(f, [], 64, 3, 1, 5.0)
    assert (cfg.refiner.width, cfg.refiner.blocks) == (12, 2)
    assert (cfg.data.size_px, cfg.seed, cfg.schedule.time_limit_min) == (64, 3, 5.0)
    assert benchmark_config(f, ["refiner.width=20"], 64, 3, 1, 5.0).refiner.width == 20


def test_the_shipped_tones_config_is_the_one_its_results_were_measured_with():
    """benchmarks/configs/adapt_tones.yaml resolves to the config of the --set items that the
    learned-tones runs recorded (results.json's config_overrides), less the settings of variants
    since removed, each of which those runs had at the value now built in (tones free, smooth_px 0,
    fresh critics' pool 512 and 2 updates per step)."""
    recorded = ["losses.self_reg_space=structure", "refiner.width=16", "losses.self_reg_weight=0.5",
                "data.crop=[1.0,1.0]", "refiner.output=colour_curve", "optim.ema_decay=0.99",
                "schedule.snapshot_every=1000", "discriminator.fresh_every=50", "refiner.frame_knots=16"]
    tones = benchmark_config(CONFIGS / "adapt_tones.yaml", [], 64, 0, 2, 20.0)
    assert tones == benchmark_config(None, recorded, 64, 0, 2, 20.0)
    assert tones != benchmark_config(None, recorded[:-1], 64, 0, 2, 20.0)


def test_a_finished_runs_refiner_is_measured_on_the_frames_it_was_given(tmp_path):
    """--remeasure and --select apply the saved refiner to its own held-out input: the raw frames,
    the whole match (--match), or the part of it the run gave (--match-steps, which records acc_input)."""
    assert heldout_input(tmp_path, {"match": False}) == tmp_path / "real_heldout"
    assert heldout_input(tmp_path, {"match": True, "acc_matched": 0.6}) == tmp_path / "matched_heldout"
    assert heldout_input(tmp_path, {"match": True, "acc_matched": 0.6, "acc_input": 0.9}) == tmp_path / "input_heldout"
