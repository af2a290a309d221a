import pytest

from colonsim.errors import ConfigError
from depth.config import load_depth_config


def test_presets_switch_the_network_by_config():
    small = load_depth_config()
    large = load_depth_config(overrides=["preset=large"])
    assert small.preset == "small" and large.preset == "large"
    assert large.model.base_width > small.model.base_width and large.model.levels > small.model.levels
    # an explicit override still wins over the preset
    assert load_depth_config(overrides=["preset=large", "model.levels=3"]).model.levels == 3


def test_bad_values_name_their_key():
    with pytest.raises(ConfigError, match="train.val_fraction"):
        load_depth_config(overrides=["train.val_fraction=1.5"])
    with pytest.raises(ConfigError, match="model.norm"):
        load_depth_config(overrides=["model.norm=layer"])
    with pytest.raises(ConfigError, match="preset"):
        load_depth_config(overrides=["preset=huge"])
