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
