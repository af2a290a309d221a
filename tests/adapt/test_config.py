"""The adapt config: its size, the spaces of self-regularization, and the settings that depend on another."""
import dataclasses

import pytest
import yaml

from adapt.config import DEFAULTS, load_adapt_config
from colonsim.errors import ConfigError


def _leaves(obj) -> list[str]:
    out = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out += [f"{f.name}.{k}" for k in _leaves(v)] if dataclasses.is_dataclass(v) else [f.name]
    return out


def test_every_field_has_a_default_in_the_shipped_yaml_and_there_are_few():
    cfg = load_adapt_config()
    fields = _leaves(cfg)
    shipped = yaml.safe_load(DEFAULTS.read_text())
    flat = [f"{k}.{j}" if isinstance(v, dict) else k for k, v in shipped.items()
            for j in (v if isinstance(v, dict) else [None])]
    assert sorted(fields) == sorted(flat)
    assert len(fields) <= 28


def test_self_reg_spaces_load_and_an_unknown_space_is_an_error():
    for space in ("pixel", "features", "structure"):
        assert load_adapt_config(overrides=[f"losses.self_reg_space={space}"]).losses.self_reg_space == space
    for bad in ("hsv", "luma"):
        with pytest.raises(ConfigError, match="self_reg_space"):
            load_adapt_config(overrides=[f"losses.self_reg_space={bad}"])


def test_a_removed_variant_is_an_unknown_key():
    for gone in ("refiner.tones=keep", "discriminator.scales=3", "losses.adv=nonsat", "refiner.quantize=true"):
        with pytest.raises(ConfigError):
            load_adapt_config(overrides=[gone])


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


def test_frame_knots_needs_the_colour_curve():
    assert load_adapt_config().refiner.frame_knots == 0
    cc = "refiner.output=colour_curve"
    assert load_adapt_config(overrides=[cc, "refiner.frame_knots=16"]).refiner.frame_knots == 16
    for bad in (["refiner.frame_knots=16"], [cc, "refiner.frame_knots=1"], [cc, "refiner.frame_knots=-2"],
                [cc, "refiner.frame_knots=300"]):
        with pytest.raises(ConfigError, match="frame_knots"):
            load_adapt_config(overrides=bad)
