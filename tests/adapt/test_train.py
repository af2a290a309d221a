"""Training: the run folder, checkpoints that round-trip, and --resume that continues exactly."""
import copy
import dataclasses

import pytest
import torch
import yaml

import cli
from adapt.apply import load_refiner
from adapt.checkpoint import TRAIN_STATE_KIND, load_checkpoint
from adapt.config import load_adapt_config
from adapt.data import quantize_8bit
from adapt.networks import square_view
from adapt.train import Trainer, train_refiner
from colonsim.errors import CheckpointError, ConfigError, InputError


def test_train_writes_run_folder_and_refiner_round_trips(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    run = tmp_path / "run"
    r = train_refiner(tiny_cfg, real_dir, synthetic_h5, run)
    assert r["steps"] == 3 and r["schedule_steps"] == 7
    assert 0.0 <= r["disc_accuracy"]["acc_target"] <= 1.0 and "refiner/delta_grey" in r["losses"]
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "refiner.pt", "last.pt", "loss_curve.png", "tensorboard"} <= names
    assert any(n.startswith("samples_") and n.endswith(".png") for n in names)
    assert yaml.safe_load((run / "config.yaml").read_text())["direction"] == "reverse"
    model, meta = load_refiner(run / "refiner.pt")
    state = load_checkpoint(run / "last.pt", TRAIN_STATE_KIND)
    assert meta["direction"] == "reverse" and meta["model_args"] == {"width": 8, "blocks": 1, "output": "residual",
                                                                        "tones": "free"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["refiner"][k]), k
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
            "--set", "schedule.log_every=1", "--set", "schedule.sample_every=4",
            "--set", "schedule.checkpoint_every=2", "--set", "compute.threads=1", "--set", "compute.device=cpu"]
    assert cli.main(args + ["--steps", "1"]) == 0
    first = load_checkpoint(tmp_path / "twice" / "last.pt", TRAIN_STATE_KIND)
    assert first["step"] == 5
    assert cli.main(args + ["--steps", "3", "--resume"]) == 0
    a = load_checkpoint(tmp_path / "once" / "last.pt", TRAIN_STATE_KIND)
    b = load_checkpoint(tmp_path / "twice" / "last.pt", TRAIN_STATE_KIND)
    assert b["step"] == 7 and [r["step"] for r in b["records"]][:5] == [1, 2, 3, 4, 5]
    for k in a["refiner"]:
        assert torch.equal(a["refiner"][k], b["refiner"][k]), k
    for k in a["disc"]:
        assert torch.equal(a["disc"][k], b["disc"][k]), k


def test_forward_direction_trains_on_synthetic_input(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, direction="forward")
    r = train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "fwd", steps=1)
    assert r["direction"] == "forward" and r["steps"] == 1
    assert load_refiner(tmp_path / "fwd" / "refiner.pt")[1]["direction"] == "forward"


def test_identity_failure_is_visible_in_the_logs(tmp_path, real_dir, synthetic_h5, tiny_cfg, caplog):
    """With no adversarial weight the residual refiner stays the identity: the log must say so."""
    cfg = dataclasses.replace(tiny_cfg, losses=dataclasses.replace(tiny_cfg.losses, adv_weight=0.0))
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

    book = Logbook(tmp_path, [], start_step=0, total=10)
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
    return (r, load_checkpoint(tmp_path / "once" / "last.pt", TRAIN_STATE_KIND),
            load_checkpoint(tmp_path / "twice" / "last.pt", TRAIN_STATE_KIND))


def _assert_parts_equal(a: dict, b: dict, parts) -> None:
    for part in parts:
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)


def test_coarse_scales_train_and_resume_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """With discriminator.scales=2 the coarse discriminator trains, is saved, and --resume restores
    it: 3 adversarial steps in one go equal 1 then 2 more, bit for bit. A checkpoint of a version
    without scales (no "disc_coarse", no "scales" in its config) still resumes with scales=1."""
    cfg = dataclasses.replace(tiny_cfg, discriminator=dataclasses.replace(tiny_cfg.discriminator, scales=2))
    _, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    assert a["disc_coarse"] and set(a["disc_coarse"]) == set(b["disc_coarse"])
    _assert_parts_equal(a, b, ("refiner", "disc", "disc_coarse"))
    assert a["config"]["discriminator"]["scales"] == 2
    # an older checkpoint: resume it with the default single scale
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "old", steps=1)
    old = load_checkpoint(tmp_path / "old" / "last.pt", TRAIN_STATE_KIND)
    del old["disc_coarse"], old["config"]["discriminator"]["scales"]
    torch.save(old, tmp_path / "old" / "last.pt")
    r = train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "old", steps=2, resume=True)
    assert r["steps"] == 2
    # but not with another number of scales
    try:
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "old", steps=3, resume=True)
        raise AssertionError("resuming with another discriminator must be refused")
    except CheckpointError as e:
        assert "scales" in str(e)


@pytest.mark.parametrize("knots", [0, 8])
def test_colour_curve_refiner_trains_with_the_synthetic_sets_colours(tmp_path, real_dir, synthetic_h5, tiny_cfg,
                                                                     knots):
    """refiner.output colour_curve: the curve is fitted to the synthetic HDF5 before training, saved
    in refiner.pt, and every refined pixel takes the synthetic set's colour at its grey level; with
    refiner.frame_knots the per-frame tone curve trains and is saved too."""
    import numpy as np

    from adapt.apply import refine_images
    from adapt.data import open_frames
    from adapt.match import fit_target
    from adapt.networks import colour_curve, grey

    cfg = dataclasses.replace(tiny_cfg, refiner=dataclasses.replace(tiny_cfg.refiner, output="colour_curve",
                                                                     frame_knots=knots))
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "run")
    model, meta = load_refiner(tmp_path / "run" / "refiner.pt")
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


def test_keep_tones_refiner_trains_and_refines_frames_with_their_own_grey_levels(tmp_path, real_dir, synthetic_h5,
                                                                                   tiny_cfg):
    """refiner.tones keep: refiner.pt records it, and each refined frame has its input's grey-level
    histogram inside the image circle (up to 8-bit rounding); checkpoints from before the option load
    as tones free."""
    import numpy as np

    from adapt.apply import refine_images
    from adapt.checkpoint import load_checkpoint, save_checkpoint
    from adapt.data import open_frames

    ref = dataclasses.replace(tiny_cfg.refiner, output="colour_curve", tones="keep")
    train_refiner(dataclasses.replace(tiny_cfg, refiner=ref), real_dir, synthetic_h5, tmp_path / "run")
    model, meta = load_refiner(tmp_path / "run" / "refiner.pt")
    assert meta["model_args"]["tones"] == "keep" and model.tones == "keep"
    rgb, mask = open_frames(real_dir).get(0)
    out = refine_images(model, rgb[None], mask)[0]
    inside = mask > 0
    g_in = np.sort(rgb[inside].astype(np.float32).mean(-1))
    g_out = np.sort(out[inside].astype(np.float32).mean(-1))
    assert np.abs(g_out - g_in).max() <= 2.0 and np.abs(g_out - g_in).mean() < 0.75
    assert not np.array_equal(out[inside], rgb[inside])
    ck = load_checkpoint(tmp_path / "run" / "refiner.pt", "colonsim.refiner")
    ck["model_args"] = {k: v for k, v in ck["model_args"].items() if k != "tones"}
    ck["model_args"]["output"] = "residual"
    ck["state_dict"] = {k: v for k, v in ck["state_dict"].items() if k != "curve"}
    save_checkpoint(ck, tmp_path / "old.pt")
    assert load_refiner(tmp_path / "old.pt")[0].tones == "free"


def test_global_head_trains_logs_its_accuracy_and_resumes_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """discriminator.global_head: the frame-level discriminator trains next to the patch one, its
    accuracies are logged, and --resume restores it bit for bit. A checkpoint without the head (an
    older version's: no "disc_global", no "global_head" in its config) resumes with the head off,
    and not with it on."""
    cfg = dataclasses.replace(tiny_cfg, discriminator=dataclasses.replace(tiny_cfg.discriminator, global_head=True))
    r, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    assert 0.0 <= r["disc_accuracy"]["acc_refined_global"] <= 1.0
    assert a["disc_global"] and a["config"]["discriminator"]["global_head"] is True
    _assert_parts_equal(a, b, ("refiner", "disc", "disc_global"))
    assert all("disc/acc_target_global" in rec for rec in a["records"] if "disc/acc_target" in rec)
    # the head's weights moved from their start: it was trained, not only carried
    start = load_checkpoint(tmp_path / "twice" / "last.pt", TRAIN_STATE_KIND)
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "zero", steps=0)
    z = load_checkpoint(tmp_path / "zero" / "last.pt", TRAIN_STATE_KIND)
    assert any(not torch.equal(z["disc_global"][k], start["disc_global"][k]) for k in z["disc_global"])
    # an older checkpoint: no head
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "old", steps=1)
    old = load_checkpoint(tmp_path / "old" / "last.pt", TRAIN_STATE_KIND)
    del old["disc_global"], old["config"]["discriminator"]["global_head"], old["config"]["discriminator"]["global_view"]
    torch.save(old, tmp_path / "old" / "last.pt")
    assert train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "old", steps=2, resume=True)["steps"] == 2
    try:
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "old", steps=3, resume=True)
        raise AssertionError("resuming with the head switched on must be refused")
    except CheckpointError as e:
        assert "global_head" in str(e)
    # a head from before discriminator.global_view judged the whole circle: it resumes as "circle"
    circ = dataclasses.replace(cfg, discriminator=dataclasses.replace(cfg.discriminator, global_view="circle"))
    train_refiner(circ, real_dir, synthetic_h5, tmp_path / "circ", steps=1)
    c = load_checkpoint(tmp_path / "circ" / "last.pt", TRAIN_STATE_KIND)
    del c["config"]["discriminator"]["global_view"]
    torch.save(c, tmp_path / "circ" / "last.pt")
    with pytest.raises(CheckpointError, match="global_view"):
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "circ", steps=2, resume=True)
    assert train_refiner(circ, real_dir, synthetic_h5, tmp_path / "circ", steps=2, resume=True)["steps"] == 2


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
    """optim.ema_decay: refiner.pt holds the averaged weights (not the last ones), last.pt both, and
    --resume continues the average bit for bit. A checkpoint without an average (the option off)
    resumes with the average started at its weights."""
    cfg = dataclasses.replace(tiny_cfg, optim=dataclasses.replace(tiny_cfg.optim, ema_decay=0.5))
    _, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    _assert_parts_equal(a, b, ("refiner", "refiner_ema"))
    saved = load_refiner(tmp_path / "once" / "refiner.pt")[0].state_dict()
    assert all(torch.equal(saved[k], a["refiner_ema"][k]) for k in saved)
    assert any(not torch.equal(a["refiner_ema"][k], a["refiner"][k]) for k in a["refiner"])
    # the option off: no average in last.pt; switched on at resume, it starts at the weights
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "off", steps=1)
    assert "refiner_ema" not in load_checkpoint(tmp_path / "off" / "last.pt", TRAIN_STATE_KIND)
    assert train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "off", steps=2, resume=True)["steps"] == 2
    with pytest.raises(ConfigError, match="ema_decay"):
        load_adapt_config(overrides=["optim.ema_decay=1.0"])


def test_snapshots_keep_the_refiner_at_their_steps(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """schedule.snapshot_every=2 over 5 adversarial steps keeps the refiner after 2 and 4; each is
    what refiner.pt held at that step (a run stopped there writes the same weights), and the last
    differs from the final refiner.pt, which went on training."""
    cfg = dataclasses.replace(tiny_cfg, schedule=dataclasses.replace(tiny_cfg.schedule, snapshot_every=2))
    train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "run", steps=5)
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert [p.name for p in snaps] == ["refiner_000002.pt", "refiner_000004.pt"]
    train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "to4", steps=4)
    at4, meta = load_refiner(snaps[1])
    stopped, _ = load_refiner(tmp_path / "to4" / "refiner.pt")
    final, _ = load_refiner(tmp_path / "run" / "refiner.pt")
    assert meta["steps"] == 4
    _assert_parts_equal({"r": at4.state_dict()}, {"r": stopped.state_dict()}, ("r",))
    assert any(not torch.equal(v, final.state_dict()[k]) for k, v in at4.state_dict().items())


def _fresh_cfg(tiny_cfg, noise=0.0, tune=0, **schedule):
    d = dataclasses.replace(tiny_cfg.discriminator, fresh_every=2, fresh_count=2, fresh_steps=40, fresh_pool=6,
                            fresh_noise=noise, fresh_tune=tune)
    return dataclasses.replace(tiny_cfg, discriminator=d, schedule=dataclasses.replace(tiny_cfg.schedule, **schedule))


def test_fresh_critics_tell_the_domains_apart_and_pull_the_refiner_to_the_target(tmp_path, real_dir, synthetic_h5,
                                                                                 tiny_cfg):
    """A round of fresh critics (adapt score's classifier, trained from scratch on the square view)
    separates the orange noisy "real" frames from the pink smooth renders, and refiner updates on
    their loss alone lower their verdict on frames the refiner never trained on, while updates
    that ignore them (self-regularization only) leave it where it was."""
    cfg = _fresh_cfg(tiny_cfg)
    cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, self_reg_weight=0.0),
                              optim=dataclasses.replace(cfg.optim, lr_refiner=3e-3))
    trainer = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "run")
    scalars = trainer.train_critics()
    assert scalars["fresh/acc_pool"] >= 0.9 and trainer.critic_round == 1 and len(trainer.critics) == 2
    assert all(not c.training and not any(p.requires_grad for p in c.parameters()) for c in trainer.critics)
    x, m = trainer.fixed_source

    def verdict() -> float:
        with torch.no_grad():
            sq = square_view(trainer.refine(x, m), m, cfg.data.size_px)
            return float(torch.stack([c(sq) for c in trainer.critics]).mean())

    before = verdict()
    assert before > 0   # the critics call the unrefined frames the refiner's
    for _ in range(15):
        out = trainer.refiner_step(adversarial=True)
    assert "fresh/called_refined" in out and out["refiner/adv"] > 0
    assert verdict() < before - 0.5
    critics = [copy.deepcopy(c.state_dict()) for c in trainer.critics]
    trainer.refiner_step(adversarial=False)   # the critics stay frozen: nothing trains them here
    assert all(torch.equal(a[k], c.state_dict()[k]) for a, c in zip(critics, trainer.critics) for k in a)


@pytest.mark.parametrize("noise,tune", [(0.0, 0), (8.0, 0), (8.0, 2)])
def test_fresh_critics_are_retrained_on_schedule_logged_and_resume_exactly(tmp_path, real_dir, synthetic_h5, tiny_cfg,
                                                                           noise, tune):
    """fresh_every=2 over 3 adversarial steps: rounds at steps 0 and 2, the co-trained
    discriminators untouched (no pre-training of them either), the pool accuracy in the records;
    --resume from step 1 ends bit for bit where the run in one go ends (refiner and critics), with
    the critics' noise (fresh_noise) drawn again as the run in one go drew it, and the critics'
    updates between rounds (fresh_tune) and their optimizers restored."""
    cfg = _fresh_cfg(tiny_cfg, noise, tune)
    r, a, b = _one_go_and_resumed(cfg, real_dir, synthetic_h5, tmp_path)
    assert r["steps"] == 3 and a["critic_round"] == 2 == b["critic_round"]
    assert r["fresh_acc_pool"] == [rec for rec in a["records"] if "fresh/acc_pool" in rec][-1]["fresh/acc_pool"]
    _assert_parts_equal(a, b, ("refiner",))
    assert len(a["critics"]) == 2
    for ca, cb in zip(a["critics"], b["critics"]):
        assert all(torch.equal(ca[k], cb[k]) for k in ca)
    fresh_disc = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "unused").disc.state_dict()
    assert all(torch.equal(fresh_disc[k], a["disc"][k]) for k in fresh_disc)
    assert any("fresh/acc_pool" in rec for rec in a["records"])
    assert len(a["critic_opts"]) == (2 if tune else 0)
    assert any("fresh/acc_tune" in rec for rec in a["records"]) == bool(tune)
    with pytest.raises(CheckpointError, match="discriminator"):   # the critics' settings are the run's
        train_refiner(tiny_cfg, real_dir, synthetic_h5, tmp_path / "once", steps=4, resume=True)
    with pytest.raises(ConfigError, match="fresh_count"):
        load_adapt_config(overrides=["discriminator.fresh_count=0"])
    with pytest.raises(InputError, match="one process"):   # refused before any process starts
        train_refiner(cfg, real_dir, synthetic_h5, tmp_path / "ddp", nproc=2)
    assert not (tmp_path / "ddp").exists()


def test_tuned_critics_learn_back_what_fooled_them_and_stay_in_eval_mode(tmp_path, real_dir, synthetic_h5,
                                                                         tiny_cfg):
    """fresh_tune: after each refiner step the critics update on that step's refined views against
    target views. Refined frames that the refiner pushed towards the target are called the
    refiner's again after a few such updates, the critics stay frozen for the refiner's own step
    and in eval mode (their BatchNorm statistics as the round left them), and fresh_tune without
    fresh critics is refused."""
    cfg = _fresh_cfg(tiny_cfg, tune=3)
    cfg = dataclasses.replace(cfg, losses=dataclasses.replace(cfg.losses, self_reg_weight=0.0),
                              optim=dataclasses.replace(cfg.optim, lr_refiner=3e-3))
    trainer = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "run")
    trainer.train_critics()
    assert len(trainer.critic_opts) == 2
    x, m = trainer.fixed_source
    bn = [copy.deepcopy({k: v for k, v in c.state_dict().items() if "running" in k}) for c in trainer.critics]
    for _ in range(15):   # the refiner fools the critics, which learn back after each of its steps
        out = trainer.refiner_step(adversarial=True)
    assert 0.0 <= out["fresh/acc_tune"] <= 1.0
    with torch.no_grad():
        view = square_view(trainer.refine(x, m), m, cfg.data.size_px)
    def verdict() -> float:
        with torch.no_grad():
            return float(torch.stack([c(view) for c in trainer.critics]).mean())
    before = verdict()
    for _ in range(5):
        trainer.tune_critics(view)
    assert verdict() > before + 0.5
    for c, stats in zip(trainer.critics, bn):
        assert not c.training and not any(p.requires_grad for p in c.parameters())
        assert all(torch.equal(v, c.state_dict()[k]) for k, v in stats.items())
    with pytest.raises(ConfigError, match="fresh_tune"):
        load_adapt_config(overrides=["discriminator.fresh_tune=2"])
    with pytest.raises(ConfigError, match="fresh_tune"):
        load_adapt_config(overrides=["discriminator.fresh_every=50", "discriminator.fresh_tune=-1"])


def test_quantized_training_sees_the_8bit_levels_and_passes_the_gradient(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """refiner.quantize: the frames every loss and critic sees are those the refiner would save
    (8-bit levels), so a change under half a level is no change at all; yet the gradient reaches
    the refiner through the rounding (straight-through), as without it."""
    plain = Trainer(tiny_cfg, real_dir, synthetic_h5, tmp_path / "plain")
    cfg = dataclasses.replace(tiny_cfg, refiner=dataclasses.replace(tiny_cfg.refiner, quantize=True))
    quant = Trainer(cfg, real_dir, synthetic_h5, tmp_path / "quant")
    x, m = quant.fixed_source
    x = quantize_8bit(x)   # frames at 8-bit levels, as the refiner's inputs are before any resize
    for t in (plain, quant):   # the residual refiner's identity, shifted by 0.3 of a grey level
        t.refiner.load_state_dict(plain.refiner.state_dict())
        with torch.no_grad():
            t.refiner.tail.bias.fill_(0.3 / 127.5)
    inside = m.expand_as(x) > 0
    yp, yq = plain.refine(x, m).detach(), quant.refine(x, m).detach()
    levels = (yq + 1.0) * 127.5
    assert float((levels - levels.round()).abs().max()) < 1e-3   # float rounding only, a level is 1
    assert float((yq - x)[inside].abs().max()) < 1e-5   # 0.3 of a level rounds back to the input
    assert 0.25 < float(((yp - x) * 127.5)[inside].abs().mean()) < 0.35   # unrounded, the shift is there
    grads = []
    for t in (plain, quant):
        t.refiner.zero_grad()
        (t.refine(x, m) * m).sum().backward()
        grads.append(t.refiner.tail.bias.grad.clone())
    assert torch.allclose(grads[0], grads[1]) and float(grads[1].abs().min()) > 0
    with pytest.raises(ConfigError, match="quantize"):
        load_adapt_config(overrides=["refiner.quantize=maybe"])


def test_noisy_fresh_critics_judge_noisy_views_drawn_anew_each_step(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """fresh_noise: the critics, trained on noisy views, still tell the fixtures' domains apart; the
    refiner's adversarial loss is read on a new draw of noise at each step (the same draw for the
    same step, so that a resumed run repeats it), and with the noise at 0 the score's classifier
    is the one it was (fit_classifier with noise_levels=0 draws nothing more)."""
    import numpy as np

    from adapt.score import fit_classifier

    trainer = Trainer(_fresh_cfg(tiny_cfg, 16.0), real_dir, synthetic_h5, tmp_path / "run")
    assert trainer.train_critics()["fresh/acc_pool"] >= 0.9
    state = copy.deepcopy(trainer.refiner.state_dict()), copy.deepcopy(trainer.opt_r.state_dict())

    def adv_at(step: int) -> float:
        trainer.refiner.load_state_dict(state[0])
        trainer.opt_r.load_state_dict(state[1])
        trainer.source.rng = np.random.default_rng(0)   # the same batch each time
        trainer.step = step
        return trainer.refiner_step(adversarial=True)["refiner/adv"]

    a, b, c = adv_at(5), adv_at(5), adv_at(6)
    assert a == b and a != c
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    y = torch.rand(8, 3, 16, 16) * 2 - 1
    idx = np.arange(8)
    plain = fit_classifier(x, y, idx, idx, 5, 4, np.random.default_rng(3), 11)
    zero = fit_classifier(x, y, idx, idx, 5, 4, np.random.default_rng(3), 11, noise_levels=0.0)
    noisy = fit_classifier(x, y, idx, idx, 5, 4, np.random.default_rng(3), 11, noise_levels=8.0)
    sp, sz, sn = plain.state_dict(), zero.state_dict(), noisy.state_dict()
    assert all(torch.equal(sp[k], sz[k]) for k in sp)
    assert any(not torch.equal(sp[k], sn[k]) for k in sp if sp[k].is_floating_point())
    with pytest.raises(ConfigError, match="fresh_noise"):
        load_adapt_config(overrides=["discriminator.fresh_noise=-1"])
