"""The config machinery: typed loading, dotted overrides, errors that name the key."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from colonsim import config as C
from colonsim.errors import ConfigError, InputError


@dataclass(frozen=True)
class Inner:
    power: C.Range           # randomized, [lo, hi]
    count: int = 2           # number of things
    mode: str = "a"

    def __post_init__(self):
        C.check_range("power", self.power, 0.0, 10.0)
        C.check_range("count", self.count, 1, 3)
        C.check_choice("mode", self.mode, ("a", "b"))


@dataclass(frozen=True)
class Outer:
    inner: Inner
    fov_deg: float = 90.0
    offsets_mm: tuple[float, ...] = (3.5, 3.5)
    flag: bool = False
    note: str | None = None


def _load(overrides=(), base=None):
    return C.load(Outer, [base or {"inner": {"power": [1.0, 2.0]}}], None, overrides)


def test_load_converts_types_and_scalar_range():
    cfg = _load(["inner.power=3", "fov_deg=120", "offsets_mm=[1, 2, 3]", "flag=true"])
    assert cfg.inner.power == (3.0, 3.0)
    assert cfg.fov_deg == 120.0 and isinstance(cfg.fov_deg, float)
    assert cfg.offsets_mm == (1.0, 2.0, 3.0)
    assert cfg.flag is True


def test_unknown_key_is_named():
    with pytest.raises(ConfigError) as e:
        _load(["inner.powr=3"])
    assert e.value.key == "inner.powr"
    with pytest.raises(ConfigError) as e:
        C.load(Outer, [{"inner": {"power": 1, "bogus": 2}}])
    assert e.value.key == "inner.bogus"


def test_out_of_range_names_key_and_range():
    with pytest.raises(ConfigError) as e:
        _load(["inner.count=7"])
    assert e.value.key == "inner.count"
    assert "[1, 3]" in str(e.value)


def test_wrong_type_and_bad_choice():
    with pytest.raises(ConfigError) as e:
        _load(["fov_deg=wide"])
    assert e.value.key == "fov_deg"
    with pytest.raises(ConfigError) as e:
        _load(["inner.count=1.5"])
    assert e.value.key == "inner.count"
    with pytest.raises(ConfigError) as e:
        _load(["inner.mode=c"])
    assert e.value.key == "inner.mode"
    with pytest.raises(ConfigError):
        _load(["inner.power=[3, 1]"])  # lo > hi


def test_roundtrip_through_dict_is_exact():
    cfg = _load(["inner.power=[0.5, 1.5]", "note=hello"])
    assert C.from_dict(Outer, C.to_dict(cfg)) == cfg
    assert C.replace(cfg, ["fov_deg=100"]).fov_deg == 100.0


def test_yaml_files_are_read_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("inner: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(InputError):
        C.load(Outer, [], evil)
    with pytest.raises(InputError):
        C.read_yaml(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("inner:\n  power: 4\nfov_deg: 60\n")
    assert C.load(Outer, [], good).fov_deg == 60.0


def test_sample_draws_within_range_and_always_consumes():
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    assert C.sample(a, (2.0, 2.0)) == 2.0
    b.random()
    x = C.sample(a, (0.0, 1.0))
    assert x == b.random()  # the fixed field consumed exactly one draw
    vals = [C.sample(a, (3.0, 4.0)) for _ in range(100)]
    assert min(vals) >= 3.0 and max(vals) <= 4.0
