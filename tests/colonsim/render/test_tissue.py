"""Tissue appearance: per-frame sampling, the per-mesh texture, the fold factor."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from colonsim.config import replace
from colonsim.errors import ConfigError
from colonsim.render import tissue
from colonsim.simconfig import load_sim_config


@pytest.fixture(scope="module")
def cfg():
    return load_sim_config("realistic").tissue


def test_sample_params_has_fixed_keys_values_in_range_and_one_draw_per_field(cfg):
    a = tissue.sample_params(cfg, np.random.default_rng(5))
    b = tissue.sample_params(cfg, np.random.default_rng(5))
    assert list(a) == list(tissue.PARAM_KEYS) and a == b
    assert cfg.specular[0] <= a["tissue_specular"] <= cfg.specular[1]
    # fixing one field must not shift the draws of the others
    fixed = replace(cfg, ["specular=0.5"])
    c = tissue.sample_params(fixed, np.random.default_rng(5))
    assert c["tissue_specular"] == 0.5
    assert {k: v for k, v in c.items() if k != "tissue_specular"} == \
           {k: v for k, v in a.items() if k != "tissue_specular"}


def test_texture_is_deterministic_tileable_and_has_thin_vessels(cfg):
    small = replace(cfg, ["texture_px=128"])
    t1 = tissue.make_texture(small, np.random.default_rng(3))
    t2 = tissue.make_texture(small, np.random.default_rng(3))
    assert t1.shape == (128, 128, 4) and t1.dtype == np.uint8
    assert np.array_equal(t1, t2)
    assert not np.array_equal(t1, tissue.make_texture(small, np.random.default_rng(4)))
    for c in (1, 3):                       # mottling and bumps: the wrap-around step is a normal step
        m = t1[..., c].astype(float)
        inner = np.abs(np.diff(m, axis=1)).mean()
        wrap = np.abs(m[:, 0] - m[:, -1]).mean()
        assert wrap < 2.0 * inner
    assert 0.1 < t1[..., 3].std() / 255.0 < 0.3   # the bump channel varies, without clipping
    vessel_fraction = (t1[..., 0] > 128).mean()
    assert 0.01 < vessel_fraction < 0.35


def test_fold_factor_is_positive_on_ridges_and_negative_in_valleys():
    # A tube whose radius dips at z = 0 (a fold sticking into the lumen) and bulges at z = +-L/2.
    n, m, L = 64, 81, 20.0
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    z = np.linspace(-L / 2, L / 2, m)
    r = 10.0 + 2.0 * np.cos(2 * np.pi * z / L) * -1.0          # smallest radius at z = 0
    v = np.array([[ri * np.cos(t), ri * np.sin(t), zi] for zi, ri in zip(z, r) for t in th])
    f = []
    for i in range(m - 1):
        for j in range(n):
            a, b, c, d = i * n + j, i * n + (j + 1) % n, (i + 1) * n + j, (i + 1) * n + (j + 1) % n
            f += [[a, b, c], [b, d, c]]
    mesh = trimesh.Trimesh(v, np.array(f), process=False)
    inward = -np.column_stack([np.cos(np.tile(th, m)), np.sin(np.tile(th, m)), np.zeros(n * m)])
    fold = tissue.fold_factor(mesh.vertices, mesh.faces, inward).reshape(m, n)
    assert fold[m // 2].min() > 0.2                     # ridge at z = 0
    assert fold[1].max() < -0.2 and fold[-2].max() < -0.2  # valleys at z = -+L/2
    assert fold[1].max() < fold[m // 4].min() < fold[m // 4].max() < fold[m // 2].min()  # flanks between


@pytest.mark.parametrize("override,key", [("tissue.roughness=0", "tissue.roughness"),
                                          ("tissue.albedo_r=[0.5, 1.5]", "tissue.albedo_r"),
                                          ("tissue.period_mm=0", "tissue.period_mm")])
def test_bad_tissue_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=[override])
    assert e.value.key == key
