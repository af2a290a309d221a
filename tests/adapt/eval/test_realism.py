"""adapt.eval.realism: the real-versus-render classifier that benchmarks/realism.py reports."""
from __future__ import annotations

import pytest

from adapt.eval.realism import realism
from colonsim.errors import InputError
from tests.adapt.conftest import synthetic_frames, write_h5


def test_two_draws_of_one_look_cannot_be_told_apart_and_another_look_can(tmp_path, real_dir):
    a = write_h5(tmp_path / "a.h5", *synthetic_frames(32, 40, seed=1))
    b = write_h5(tmp_path / "b.h5", *synthetic_frames(32, 40, seed=3))
    same = realism(a, b, size_px=16, steps=40, batch_size=16, repeats=2, floor=False)
    other = realism(real_dir, b, size_px=16, steps=40, batch_size=16, repeats=2, cues=True)
    assert same["acc"] < 0.75
    assert other["acc"] > 0.9 and len(other["acc_seeds"]) == 2
    assert other["n_real"] == 6 and other["n_renders"] == 32
    assert 0.0 <= other["acc_structure"] <= 1.0
    assert set(other["cues"]) == {"layout", "+brightness", "+colour", "+texture", "everything"}


def test_bad_settings_are_one_line_errors(tmp_path, real_dir):
    b = write_h5(tmp_path / "b.h5", *synthetic_frames(4, 40, seed=3))
    with pytest.raises(InputError, match="--size"):
        realism(real_dir, b, size_px=1)
    with pytest.raises(InputError, match="--repeats"):
        realism(real_dir, b, repeats=0)
