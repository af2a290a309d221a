"""The adapt config: the luma self-regularization space loads; an unknown space names its key."""
import pytest

from adapt.config import load_adapt_config
from colonsim.errors import ConfigError


def test_luma_self_reg_space_loads_and_an_unknown_space_is_an_error():
    assert load_adapt_config(overrides=["losses.self_reg_space=luma"]).losses.self_reg_space == "luma"
    with pytest.raises(ConfigError, match="self_reg_space"):
        load_adapt_config(overrides=["losses.self_reg_space=hsv"])


def test_discriminator_scales_load_and_out_of_range_is_an_error():
    assert load_adapt_config().discriminator.scales == 1
    assert load_adapt_config(overrides=["discriminator.scales=3"]).discriminator.scales == 3
    for bad in ("0", "5"):
        with pytest.raises(ConfigError, match="scales"):
            load_adapt_config(overrides=[f"discriminator.scales={bad}"])


def test_colour_curve_output_needs_the_reverse_direction(tmp_path, real_dir, synthetic_h5, capsys):
    import cli

    assert load_adapt_config(overrides=["refiner.output=colour_curve"]).refiner.output == "colour_curve"
    with pytest.raises(ConfigError, match="refiner.output.*reverse"):
        load_adapt_config(overrides=["refiner.output=colour_curve", "direction=forward"])
    rc = cli.main(["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5), "--out",
                   str(tmp_path / "run"), "--set", "refiner.output=colour_curve", "--set", "direction=forward"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refiner.output" in err[0]
    assert not (tmp_path / "run").exists()


def test_keep_tones_needs_the_colour_curve_output(tmp_path, real_dir, synthetic_h5, capsys):
    import cli

    assert load_adapt_config().refiner.tones == "free"
    cfg = load_adapt_config(overrides=["refiner.output=colour_curve", "refiner.tones=keep"])
    assert cfg.refiner.tones == "keep"
    with pytest.raises(ConfigError, match="tones"):
        load_adapt_config(overrides=["refiner.tones=keep"])
    with pytest.raises(ConfigError, match="tones"):
        load_adapt_config(overrides=["refiner.output=colour_curve", "refiner.tones=kept"])
    rc = cli.main(["adapt", "train", "--real", str(real_dir), "--synthetic", str(synthetic_h5), "--out",
                   str(tmp_path / "run"), "--set", "refiner.tones=keep"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "tones" in err[0]
    assert not (tmp_path / "run").exists()


def test_frame_knots_needs_the_colour_curve_with_free_tones_and_no_smoothing():
    assert load_adapt_config().refiner.frame_knots == 0
    cc = "refiner.output=colour_curve"
    assert load_adapt_config(overrides=[cc, "refiner.frame_knots=16"]).refiner.frame_knots == 16
    for bad in (["refiner.frame_knots=16"], [cc, "refiner.frame_knots=1"], [cc, "refiner.frame_knots=-2"],
                [cc, "refiner.frame_knots=300"], [cc, "refiner.tones=keep", "refiner.frame_knots=16"],
                [cc, "refiner.smooth_px=8", "refiner.frame_knots=16"]):
        with pytest.raises(ConfigError, match="frame_knots"):
            load_adapt_config(overrides=bad)


def test_smooth_px_needs_the_colour_curve_output():
    assert load_adapt_config().refiner.smooth_px == 0
    assert load_adapt_config(overrides=["refiner.output=colour_curve", "refiner.smooth_px=8"]).refiner.smooth_px == 8
    with pytest.raises(ConfigError, match="smooth_px"):
        load_adapt_config(overrides=["refiner.smooth_px=8"])
    with pytest.raises(ConfigError, match="smooth_px"):
        load_adapt_config(overrides=["refiner.output=colour_curve", "refiner.smooth_px=-1"])
