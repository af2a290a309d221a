"""The adapt config: the luma self-regularization space loads; an unknown space names its key."""
import pytest

from adapt.config import load_adapt_config
from colonsim.errors import ConfigError


def test_luma_self_reg_space_loads_and_an_unknown_space_is_an_error():
    assert load_adapt_config(overrides=["losses.self_reg_space=luma"]).losses.self_reg_space == "luma"
    with pytest.raises(ConfigError, match="self_reg_space"):
        load_adapt_config(overrides=["losses.self_reg_space=hsv"])
