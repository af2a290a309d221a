"""Training: the run folder, checkpoints that round-trip, and --resume that continues exactly."""
import copy
import dataclasses

import pytest
import torch
import yaml

import cli
from adapt.apply import load_refiner
from adapt.checkpoint import FORMAT_VERSION, REFINER_KIND
from adapt.config import load_adapt_config
from adapt.critics import square_view
from adapt.train import Trainer, train_refiner
from colonsim.errors import ConfigError, InputError
from training.checkpoint import load_checkpoint as _load


def test_train_writes_run_folder_and_refiner_round_trips(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    run = tmp_path / "run"
    r = train_refiner(tiny_cfg, real_dir, synthetic_h5, run)
    assert r["steps"] == 3 and r["schedule_steps"] == 7
    assert 0.0 <= r["disc_accuracy"]["acc_target"] <= 1.0 and "refiner/delta_grey" in r["losses"]
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "model.pt", "last.pt", "loss_curve.png", "tb"} <= names
    assert any(n.startswith("samples_") and n.endswith(".png") for n in names)
    assert yaml.safe_load((run / "config.yaml").read_text())["direction"] == "reverse"
    model, meta = load_refiner(run / "model.pt")
    state = _load(run / "last.pt", REFINER_KIND, FORMAT_VERSION)
    assert meta["direction"] == "reverse" and meta["model_args"] == {"width": 8, "blocks": 1, "output": "residual"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    try:
        train_refiner(tiny_cfg, real_dir, synthetic_h5, run)
        raise AssertionError("a second run into the same folder must be refused")
    except InputError as e:
        assert "--resume" in str(e)


def test_resume_continues_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """3 adversarial steps in one go == 1 step, then --resume to 3 (bit-exact weights)."""
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "once", steps=3)
    args = ["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5), "--out",
            str(tmp_path / "twice"), "--set", "refiner.width=8", "--set", "refiner.blocks=1",
            "--set", "discriminator.width=8", "--set", "discriminator.layers=2", "--set", "data.size_px=24",
            "--set", "data.batch_size=2", "--set", "data.crop=[0.6, 1.0]", "--set", "history.size=8",
            "--set", "schedule.pretrain_refiner_steps=2", "--set", "schedule.pretrain_disc_steps=2",
            "--set", "schedule.log_every=1", "--set", "schedule.checkpoint_every=2", "--set", "compute.threads=1", "--set", "compute.device=cpu"]
    assert cli.main(args + ["--steps", "1"]) == 0
    first = _load(tmp_path / "twice" / "last.pt", REFINER_KIND, FORMAT_VERSION)
    assert first["step"] == 5
    assert cli.main(args + ["--steps", "3", "--resume"]) == 0
    a = _load(tmp_path / "once" / "last.pt", REFINER_KIND, FORMAT_VERSION)
    b = _load(tmp_path / "twice" / "last.pt", REFINER_KIND, FORMAT_VERSION)
    assert b["step"] == 7 and [r["step"] for r in b["records"]][:5] == [1, 2, 3, 4, 5]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["disc"]:
        assert torch.equal(a["disc"][k], b["disc"][k]), k
    # --resume alone continues the run as its config.yaml says; only the step count and the time
    # limit may change, and a folder without last.pt has nothing to resume
    base = ["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5), "--out"]
    assert cli.main(base + [str(tmp_path / "twice"), "--steps", "4", "--resume"]) == 0
    assert _load(tmp_path / "twice" / "last.pt", REFINER_KIND, FORMAT_VERSION)["step"] == 8
    assert cli.main(base + [str(tmp_path / "twice"), "--resume", "--set", "refiner.width=16"]) == 2
    assert cli.main(base + [str(tmp_path / "twice"), "--resume", "--set", "schedule.time_limit_min=5"]) == 0
    assert cli.main(base + [str(tmp_path / "none"), "--resume"]) == 2 and not (tmp_path / "none").exists()


def test_forward_direction_trains_on_synthetic_input(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, direction="forward")
    r = train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "fwd", steps=1)
    assert r["direction"] == "forward" and r["steps"] == 1
    assert load_refiner(tmp_path / "fwd" / "model.pt")[1]["direction"] == "forward"


def test_identity_failure_is_visible_in_the_logs(tmp_path, real_dir, synthetic_h5, tiny_cfg, caplog):
    """Held to its input by a heavy pixel self-regularization, the residual refiner stays the
    identity: the log must say so."""
    cfg = dataclasses.replace(tiny_cfg, losses=dataclasses.replace(tiny_cfg.losses, self_reg_space="pixel",
                                                                   self_reg_weight=1000.0))
    with caplog.at_level("WARNING", logger="adapt"):
        r = train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "ident", steps=2)
    assert r["losses"]["refiner/delta_grey"] < 0.5
    assert r["losses"]["refiner/changed_frac"] == 0.0
    assert "nearly identical to their inputs" in caplog.text


def test_changed_fraction_counts_pixels_the_refiner_moves(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """A refiner that adds 25 grey levels everywhere changes every pixel inside the circle; the
    identity changes none. Both report the fraction, not a mean that a few large moves can hide."""
    from adapt.train import Trainer

    trainer = Trainer(tiny_cfg, real_dir, synthetic_h5, tmp_path / "t")
    assert trainer.refiner_step(adversarial=False)["refiner/changed_frac"] == 0.0   # residual output starts at 0
    with torch.no_grad():
        trainer.refiner.tail.bias.fill_(25 / 127.5)
    out = trainer.refiner_step(adversarial=False)
    # every inside pixel moves by 25 levels, except where a real frame's level clips at 255
    assert out["refiner/changed_frac"] > 0.9 and out["refiner/delta_grey"] > 20


def test_the_moving_averages_change_is_logged_beside_the_refiners(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """A refiner moved at once by 25 grey levels: a slow average (decay 0.999) still changes the
    frames by almost nothing, a fast one (decay 0.01) by the refiner's 25 within a step; both are
    logged as refiner/delta_grey_ema beside refiner/delta_grey, and without an average there is none."""
    from adapt.train import Trainer

    assert "refiner/delta_grey_ema" not in Trainer(tiny_cfg, real_dir, synthetic_h5, tmp_path / "off").refiner_step(False)
    for decay in (0.999, 0.01):
        cfg = dataclasses.replace(tiny_cfg, optim=dataclasses.replace(tiny_cfg.optim, ema_decay=decay))
        trainer = Trainer(cfg, real_dir, synthetic_h5, tmp_path / f"d{decay}")
        assert trainer.refiner_step(adversarial=False)["refiner/delta_grey_ema"] == 0.0   # both the identity
        with torch.no_grad():
            trainer.refiner.tail.bias.fill_(25 / 127.5)
        trainer.refiner_step(adversarial=False)      # the average moves (1 - decay) of the way
        out = trainer.refiner_step(adversarial=False)
        assert out["refiner/delta_grey"] > 20, out
        if decay == 0.999:
            assert out["refiner/delta_grey_ema"] < 1, out
        else:
            assert abs(out["refiner/delta_grey_ema"] - out["refiner/delta_grey"]) < 1, out


def test_identity_warning_reads_the_changed_fraction(tmp_path, caplog):
    """A small mean change with a tenth of the pixels moved is a smooth change, not the identity: no
    warning. The same mean with nothing moved warns, and so do records written before the fraction
    was logged."""
    from adapt.logbook import Logbook
    from training.rundir import RunDir

    book = Logbook(RunDir(tmp_path), [], start_step=0, total=10)
    cases = [({"refiner/delta_grey": 0.5, "refiner/changed_frac": 0.1}, False),
             ({"refiner/delta_grey": 0.5, "refiner/changed_frac": 0.0}, True),
             ({"refiner/delta_grey": 0.5}, True),
             ({"refiner/delta_grey": 3.0, "refiner/changed_frac": 0.0}, False)]
    for step, (rec, warns) in enumerate(cases):
        book.warned_at.clear()
        caplog.clear()
        with caplog.at_level("WARNING", logger="adapt"):
            book.add(step, "adversarial", {"refiner/self_reg": 0.1, **rec})
            book.flush(step, "adversarial")
        assert ("nearly identical" in caplog.text) == warns, rec
    book.close()
    assert (tmp_path / "loss_curve.png").is_file()


def _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path):
    """3 adversarial steps in one go (folder "once") and 1 step then --resume to 3 ("twice"):
    (the one-go summary, its last.pt, the resumed last.pt)."""
    r = train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "once", steps=3)
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "twice", steps=1)
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "twice", steps=3, resume=True)
    return (r, _load(tmp_path / "once" / "last.pt", REFINER_KIND, FORMAT_VERSION),
            _load(tmp_path / "twice" / "last.pt", REFINER_KIND, FORMAT_VERSION))


def _assert_parts_equal(a: dict, b: dict, parts) -> None:
    for part in parts:
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


@pytest.mark.parametrize("knots", [0, 8])
def test_colour_curve_refiner_trains_with_the_synthetic_sets_colours(tmp_path, real_dir, synthetic_h5, tiny_cfg,
                                                                     knots):
    """refiner.output colour_curve: the curve is fitted to the synthetic HDF5 before training, saved
    in model.pt, and every refined pixel takes the synthetic set's colour at its grey level; with
    refiner.frame_knots the per-frame tone curve trains and is saved too."""
    import numpy as np

    from adapt.apply import refine_images
    from adapt.data import open_frames
    from adapt.eval.match import fit_target
    from adapt.networks import colour_curve, grey

    cfg = dataclasses.replace(tiny_cfg, refiner=dataclasses.replace(tiny_cfg.refiner, output="colour_curve",
                                                                     frame_knots=knots))
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "run")
    model, meta = load_refiner(tmp_path / "run" / "model.pt")
    assert meta["model_args"]["output"] == "colour_curve"
    assert meta["model_args"].get("frame_knots", 0) == knots and model.frame_knots == knots
    assert bool((model.tail.weight.detach() != 0).any())           # it trained away from the identity
    lut = torch.as_tensor(fit_target(synthetic_h5).lut).clamp(0, 255) / 127.5 - 1
    assert torch.allclose(model.curve, lut)
    rgb, mask = open_frames(real_dir).get(0)
    out = refine_images(model, rgb[None], mask)[0]
    inside = mask > 0
    y = torch.as_tensor(out[inside].astype(np.float32)).T[None, :, :, None] / 127.5 - 1   # (1, 3, P, 1)
    on_curve = colour_curve(grey(y), model.curve)
    assert float((y - on_curve).abs().max()) <= 3 / 127.5          # 8-bit rounding of three channels
    assert not np.array_equal(out[inside], rgb[inside])             # the real frame's own colours are gone


def test_ema_update_is_the_moving_average_and_copies_buffers():
    from adapt.networks import Refiner
    from adapt.train import ema_update

    torch.manual_seed(0)
    ema, model = Refiner(width=4, blocks=1), Refiner(width=4, blocks=1)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema_update(ema, model, 0.9)
    for (k, e), p in zip(ema.named_parameters(), model.parameters()):
        assert torch.allclose(e, 0.9 * before[k] + 0.1 * p), k
    ema_update(ema, model, 0.0)          # decay 0: the model's weights themselves
    assert all(torch.equal(e, p) for e, p in zip(ema.parameters(), model.parameters()))


def test_ema_refiner_is_saved_for_apply_and_resumes_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """optim.ema_decay: model.pt holds the averaged weights (not the last ones), last.pt both, and
    --resume continues the average bit for bit. A run without an average does not resume with one."""
    cfg = dataclasses.replace(tiny_cfg, optim=dataclasses.replace(tiny_cfg.optim, ema_decay=0.5))
    _, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    _assert_parts_equal(a, b, ("model", "refiner_ema"))
    saved = load_refiner(tmp_path / "once" / "model.pt")[0].state_dict()
    assert all(torch.equal(saved[k], a["refiner_ema"][k]) for k in saved)
    assert any(not torch.equal(a["refiner_ema"][k], a["model"][k]) for k in a["model"])
    # the option off: no average in last.pt, and --resume keeps the run's config
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "off", steps=1)
    assert "refiner_ema" not in _load(tmp_path / "off" / "last.pt", REFINER_KIND, FORMAT_VERSION)
    with pytest.raises(ConfigError, match="optim.ema_decay"):
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "off", steps=2, resume=True)
    with pytest.raises(ConfigError, match="ema_decay"):
        load_adapt_config(overrides=["optim.ema_decay=1.0"])


def test_snapshots_keep_the_refiner_at_their_steps(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """schedule.snapshot_every=2 over 5 adversarial steps keeps the refiner after 2 and 4; each is
    what model.pt held at that step (a run stopped there writes the same weights), and the last
    differs from the final model.pt, which went on training."""
    cfg = dataclasses.replace(tiny_cfg, schedule=dataclasses.replace(tiny_cfg.schedule, snapshot_every=2))
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "run", steps=5)
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert [p.name for p in snaps] == ["step_000002.pt", "step_000004.pt"]
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "to4", steps=4)
    at4, meta = load_refiner(snaps[1])
    stopped, _ = load_refiner(tmp_path / "to4" / "model.pt")
    final, _ = load_refiner(tmp_path / "run" / "model.pt")
    assert meta["steps"] == 4
    _assert_parts_equal({"r": at4.state_dict()}, {"r": stopped.state_dict()}, ("r",))
    assert any(not torch.equal(v, final.state_dict()[k]) for k, v in at4.state_dict().items())


def _fresh_cfg(tiny_cfg, **schedule):
    d = dataclasses.replace(tiny_cfg.discriminator, fresh_every=2)
    return dataclasses.replace(tiny_cfg, discriminator=d, schedule=dataclasses.replace(tiny_cfg.schedule, **schedule))


def test_fresh_critics_judge_the_refiner_and_learn_back_after_each_of_its_steps(tmp_path, real_dir, synthetic_h5,
                                                                                 tiny_cfg):
    """A round of fresh critics (adapt score's classifier, trained from scratch on the square view)
    separates the orange noisy "real" frames from the pink smooth renders and calls the unrefined
    frames the refiner's. An adversarial step is judged by them (not by the patch discriminator,
    which stays as it was) and then updates them on that step's views; a step of
    self-regularization alone leaves them as they are."""
    cfg = _fresh_cfg(tiny_cfg)
    trainer = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "run")
    scalars = trainer.train_critics()
    assert scalars["fresh/acc_pool"] >= 0.9 and trainer.critics.round == 1 and len(trainer.critics.critics) == 2
    x, m = trainer.fixed_source
    with torch.no_grad():
        sq = square_view(trainer.refine(x, m), m, cfg.data.size_px)
        assert float(torch.stack([c(sq) for c in trainer.critics.critics]).mean()) > 0
    critics = [copy.deepcopy(c.state_dict()) for c in trainer.critics.critics]
    disc = copy.deepcopy(trainer.disc.state_dict())
    trainer.refiner_step(adversarial=False)
    assert all(torch.equal(a[k], c.state_dict()[k]) for a, c in zip(critics, trainer.critics.critics) for k in a)
    out = trainer.refiner_step(adversarial=True)
    assert out["refiner/adv"] > 0 and 0.0 <= out["fresh/called_refined"] <= 1.0 and 0.0 <= out["fresh/acc_tune"] <= 1.0
    assert any(not torch.equal(a[k], c.state_dict()[k])
               for a, c in zip(critics, trainer.critics.critics) for k in a if "running" not in k)
    assert all(torch.equal(disc[k], trainer.disc.state_dict()[k]) for k in disc)
    for c in trainer.critics.critics:   # in eval mode, frozen for the refiner's own step
        assert not c.training and not any(p.requires_grad for p in c.parameters())


def test_fresh_critics_are_retrained_on_schedule_logged_and_resume_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """fresh_every=2 over 3 adversarial steps: rounds at steps 0 and 2, the co-trained
    discriminator untouched (no pre-training of it either), the pool accuracy in the records;
    --resume from step 1 ends bit for bit where the run in one go ends (refiner, critics and their
    optimizers)."""
    cfg = _fresh_cfg(tiny_cfg)
    r, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    assert r["steps"] == 3 and a["critic_round"] == 2 == b["critic_round"]
    assert r["fresh_acc_pool"] == [rec for rec in a["records"] if "fresh/acc_pool" in rec][-1]["fresh/acc_pool"]
    _assert_parts_equal(a, b, ("model",))
    assert len(a["critics"]) == 2 == len(a["critic_opts"])
    for ca, cb in zip(a["critics"], b["critics"]):
        assert all(torch.equal(ca[k], cb[k]) for k in ca)
    fresh_disc = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "unused").disc.state_dict()
    assert all(torch.equal(fresh_disc[k], a["disc"][k]) for k in fresh_disc)
    assert any("fresh/acc_tune" in rec for rec in a["records"])
    with pytest.raises(ConfigError, match="discriminator.fresh_every"):   # the critics' settings are the run's
        train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "once", steps=4, resume=True)
    with pytest.raises(InputError, match="one process"):   # refused before any process starts
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "ddp", nproc=2)
    assert not (tmp_path / "ddp").exists()
