"""The sensor pipeline: exact identity when off, and each effect measured against its model."""
import dataclasses

import numpy as np
import pytest

from colonsim import config
from colonsim.errors import ConfigError
from colonsim.render import sensor
from colonsim.simconfig import load_sim_config

H = W = 64


def _cfg(**fields) -> sensor.SensorConfig:
    """The identity sensor with some fields changed (Range fields given as scalars)."""
    fields = {k: (float(v), float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool)
              and isinstance(sensor.IDENTITY_FIELDS[k], tuple) else v for k, v in fields.items()}
    return dataclasses.replace(sensor.identity_config(), **fields)


def _run(img, cfg, mask=None, seed=0, extras=None):
    rng = np.random.default_rng(seed)
    params = sensor.sample_params(cfg, rng)
    if mask is None:
        mask = np.ones(img.shape[:2], np.uint8)
    return sensor.apply(img.astype(np.float32), mask, params, cfg, rng, extras)


def _circle(h, w):
    y, x = np.mgrid[:h, :w]
    return ((x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2 <= (0.45 * w) ** 2).astype(np.uint8)


def _srgb64(x):
    x = np.clip(x.astype(np.float64), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def test_identity_is_exact_srgb_encoding_and_black_outside_mask():
    rng = np.random.default_rng(1)
    img = (rng.random((H, W, 3)) ** 3 * 1.1 - 0.02).astype(np.float32)   # includes < 0 and > 1
    mask = _circle(H, W)
    out = _run(img, sensor.identity_config(), mask)
    expect = np.floor(255 * _srgb64(img) + 0.5).astype(np.uint8) * mask[..., None]
    assert out.dtype == np.uint8 and np.array_equal(out, expect)
    # the same holds at every rounding boundary of the 8-bit code
    thr = sensor._threshold_table("srgb", 2.2, 0.0)[0]
    edge = np.concatenate([thr, np.nextafter(thr, np.float32(-1))])
    assert np.array_equal(sensor.encode(edge), np.floor(255 * _srgb64(edge) + 0.5).astype(np.uint8))


def test_gamma_curve_and_s_curve_are_exact():
    x = np.random.default_rng(2).random(50_000).astype(np.float32) ** 4
    for gamma, contrast in ((2.2, 0.0), (1.0, 0.0), (2.6, 0.3)):
        y = np.clip(x.astype(np.float64), 0, 1) ** (1 / gamma)
        y = (1 - contrast) * y + contrast * y * y * (3 - 2 * y)
        assert np.array_equal(sensor.encode(x, "gamma", gamma, contrast), np.floor(255 * y + 0.5))


def test_identity_set_items_give_identity_config():
    cfg = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")],
                      overrides=[s.removeprefix("sensor.") for s in sensor.IDENTITY_SET])
    assert cfg == sensor.identity_config()


@pytest.mark.parametrize("mean", [0.1, 0.5])
def test_noise_variance_matches_poisson_gaussian_model(mean):
    gain, read = 0.002, 0.01
    cfg = _cfg(noise_gain=gain, read_noise=read, tone_curve="gamma", gamma=1.0)
    out = _run(np.full((256, 256, 3), mean), cfg).astype(np.float64) / 255
    measured = out.var() - 1 / (12 * 255 ** 2)         # minus the 8-bit quantization noise
    assert abs(out.mean() - mean) < 0.002
    assert measured == pytest.approx(gain * mean + read ** 2, rel=0.10)


def test_white_balance_gains_apply_per_channel():
    cfg = _cfg(wb_red_gain=1.5, wb_green_gain=1.0, wb_blue_gain=0.5, tone_curve="gamma", gamma=1.0)
    out = _run(np.full((8, 8, 3), 0.4), cfg)
    assert out[0, 0].tolist() == [153, 102, 51]


@pytest.mark.parametrize("fields", [dict(defocus_sigma_px=2.0),
                                    dict(defocus_sigma_px=2.0, blur_kind="disc"),
                                    dict(motion_blur_px=7.0, motion_blur_angle_deg=30.0),
                                    dict(chromatic_aberration_px=2.0)])
def test_blur_and_aberration_keep_mean_brightness(fields):
    rng = np.random.default_rng(3)
    img = rng.random((128, 128, 3)).astype(np.float32) * 0.8
    linear = _cfg(tone_curve="gamma", gamma=1.0)
    ref, out = _run(img, linear).astype(float), _run(img, _cfg(tone_curve="gamma", gamma=1.0, **fields)).astype(float)
    assert out.mean() == pytest.approx(ref.mean(), rel=0.005)
    if "chromatic_aberration_px" not in fields:
        assert out.std() < 0.7 * ref.std()  # it did blur


def test_kernels_have_the_configured_spread():
    k = sensor.motion_kernel(9.0, 0.0)
    x = np.arange(k.shape[1]) - k.shape[1] // 2
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    assert (k.sum(axis=0) * x ** 2).sum() == pytest.approx(9.0 ** 2 / 12, rel=0.1)  # a box of length 9
    assert np.allclose(k.sum(axis=1)[k.shape[0] // 2], 1.0)                         # all on one row
    d = sensor.disc_kernel(4.0)
    y = np.arange(d.shape[0]) - d.shape[0] // 2
    assert (d.sum(axis=1) * y ** 2).sum() == pytest.approx(4.0 ** 2 / 4, rel=0.05)  # std = radius / 2


def test_chromatic_aberration_moves_red_out_and_blue_in():
    img = np.zeros((128, 128, 3), np.float32)
    img[60:68, 108:116] = 1.0                  # a white square right of centre, centroid x = 111.5
    out = _run(img, _cfg(chromatic_aberration_px=3.0, tone_curve="gamma", gamma=1.0)).astype(float)
    xs = np.arange(128)
    cx = [(out[..., c].sum(axis=0) * xs).sum() / out[..., c].sum() for c in range(3)]
    shift = 3.0 * (111.5 - 63.5) / 64           # px at this radius
    assert cx[0] - cx[1] == pytest.approx(shift, abs=0.25)
    assert cx[1] - cx[2] == pytest.approx(shift, abs=0.25)


def test_jpeg_changes_pixels_but_keeps_psnr_above_30_at_q90():
    y, x = np.mgrid[:128, :128] / 128.0
    rng = np.random.default_rng(4)
    img = np.stack([0.5 + 0.3 * np.sin(6 * x), 0.2 + 0.1 * y, 0.1 + 0.05 * np.cos(5 * y)], -1)
    img = (img * (1 + 0.05 * rng.standard_normal((128, 128, 1)))).astype(np.float32)
    ref = _run(img, _cfg()).astype(float)
    out = _run(img, _cfg(jpeg=True, jpeg_quality=90)).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((out - ref) ** 2))
    assert np.any(out != ref) and psnr > 30


def test_everything_on_keeps_the_border_black():
    cfg = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")],
                      overrides=["read_noise=0.05", "jpeg_quality=50"])
    mask = _circle(H, W)
    img = np.full((H, W, 3), 0.5, np.float32)
    out = _run(img, cfg, mask)
    assert np.all(out[mask == 0] == 0) and np.all(out[mask == 1].max(axis=-1) > 0)


def test_auto_gain_brings_the_percentile_to_its_target():
    rng = np.random.default_rng(5)
    img = np.repeat(rng.random((H, W, 1)) * 0.2, 3, axis=2).astype(np.float32)
    mask = _circle(H, W)
    img[mask == 0] = 5.0                         # outside the circle must not count
    cfg = _cfg(auto_gain=True, auto_gain_percentile=90.0, auto_gain_target=0.5, auto_gain_min=0.1,
               auto_gain_max=10.0, tone_curve="gamma", gamma=1.0)
    extras = {}
    out = _run(img, cfg, mask, extras=extras) / 255.0
    assert tuple(extras) == sensor.EXTRAS_KEYS
    assert np.percentile(out[mask == 1, 1], 90) == pytest.approx(0.5, abs=1 / 255)
    assert extras["sensor_auto_gain"] == pytest.approx(0.5 / np.percentile(img[mask == 1, 1], 90), rel=1e-4)
    dark = _cfg(**{**dataclasses.asdict(cfg), "auto_gain_max": 2.0})
    _run(img * 0.01, dark, mask, extras=extras)
    assert extras["sensor_auto_gain"] == 2.0     # clamped


def test_same_seed_same_frame_other_seed_other_noise():
    cfg = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")])
    img = np.random.default_rng(6).random((H, W, 3)).astype(np.float32) * 0.5
    assert np.array_equal(_run(img, cfg, seed=7), _run(img, cfg, seed=7))
    assert not np.array_equal(_run(img, cfg, seed=7), _run(img, cfg, seed=8))


def test_sample_params_has_fixed_keys_and_draw_count():
    cfg = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")])
    keys = [tuple(sensor.sample_params(cfg, np.random.default_rng(s))) for s in range(3)]
    assert keys[0] == keys[1] == keys[2] and all(k.startswith("sensor_") for k in keys[0])
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    sensor.sample_params(cfg, a)
    sensor.sample_params(sensor.identity_config(), b)
    assert a.random() == b.random()              # randomizing a field does not shift later draws


@pytest.mark.parametrize("item,key", [("jpeg_quality=0", "jpeg_quality"), ("gamma=0", "gamma"),
                                      ("blur_kind=box", "blur_kind"), ("read_noise=[0.1, 0.0]", "read_noise"),
                                      ("auto_gain_max=0.1", "auto_gain_max"), ("no_such_key=1", "no_such_key")])
def test_bad_values_raise_config_error_naming_the_key(item, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=[f"sensor.{item}"])
    assert e.value.key == f"sensor.{key}"


@pytest.mark.parametrize("style", ["realistic", "clean", "gamma", "effects"])
def test_compiled_pass_gives_the_same_frames_as_numpy_passes(style):
    """Stages 3-6 run as one compiled loop (numba) or as NumPy passes: bit-identical frames, over
    values below 0 and above full scale, every parameter randomized, and noise on and off; also with
    the halo, overexposure and edge enhancement on ("effects")."""
    assert sensor.fused_kernel() is not None, "numba is a dependency; the compiled path must be there"
    if style == "gamma":
        cfg = _cfg(tone_curve="gamma", gamma=2.6, tone_contrast=(0.0, 0.6), noise_gain=(0.0, 0.01),
                   exposure_ev=(-1.0, 2.0))
    elif style == "effects":
        cfg = dataclasses.replace(load_sim_config("realistic").sensor,
                                  **{k: (0.5 * v, v) for k, v in _EFFECTS_ON.items()})
    else:
        cfg = load_sim_config(style).sensor
    rng = np.random.default_rng(7)
    mask = _circle(H, W)
    for i in range(25):
        img = (rng.random((H, W, 3)) ** 2 * 2.5 - 0.05).astype(np.float32) * mask[..., None]
        params = sensor.sample_params(cfg, rng)
        compiled = sensor.apply(img, mask, params, cfg, np.random.default_rng(i))
        numpy_path = sensor.apply(img, mask, params, cfg, np.random.default_rng(i), fused=False)
        assert np.array_equal(compiled, numpy_path), (style, i)


@pytest.mark.parametrize("n", [12, 4096, 10])
def test_uniform16_is_rng_integers_with_the_same_state_after(n):
    for burn in ("none", "uint32"):   # a left-over 32-bit half forces the plain draw
        a, b = np.random.default_rng(3), np.random.default_rng(3)
        if burn == "uint32":
            a.integers(0, 2 ** 16, dtype=np.uint16)
            b.integers(0, 2 ** 16, dtype=np.uint16)
        fast = sensor.uniform16(a, n)
        plain = b.integers(0, 65536, size=n, dtype=np.uint16)
        assert fast.dtype == np.uint16 and np.array_equal(fast, plain)
        assert a.random() == b.random() and np.array_equal(sensor.uniform16(a, 8), b.integers(0, 65536, 8, np.uint16))


def test_compiled_order_statistics_give_the_partial_sort_percentile():
    """The auto gain's percentile from the compiled radix select equals the partial sort's (and
    np.percentile's, to rounding) over ties, negatives, signed zeros, infinities and bucket edges."""
    rng = np.random.default_rng(3)
    cases = [rng.random(59_000, dtype=np.float32), rng.random(999, dtype=np.float32) - 0.5,
             np.round(rng.random(5000, dtype=np.float32) * 10).astype(np.float32), np.zeros(7, np.float32),
             np.float32([3.0]), np.float32([1.0, 1.0 + 2**-23]), np.float32([1.0, 1.0 + 2**-7, 2.0]),
             np.float32([-0.0, 0.0, 1e-45, -1e-45, np.inf, -np.inf, 5.0]),
             (rng.standard_normal(30_000) * 1e-3).astype(np.float32)]
    for vals in cases:
        for q in (1e-3, 1.0, 33.3, 50.0, 60.0, 99.9, 100.0):
            with np.errstate(invalid="ignore"):      # inf - inf between the two order statistics
                fast = sensor._percentile(vals, q)
                slow = sensor._percentile(vals, q, compiled=False)
            assert fast == slow or (np.isnan(fast) and np.isnan(slow)), (len(vals), q, fast, slow)
            if np.isfinite(vals).all():
                assert np.isclose(fast, np.percentile(vals, q), rtol=1e-5, atol=1e-12)
    with_nan = np.float32([0.2, np.nan, 0.1, 0.3])       # no order: the partial sort decides
    assert sensor._percentile(with_nan, 25.0) == sensor._percentile(with_nan, 25.0, compiled=False)


# ----------------------------------------------------------------------------- scope effects (issue 39)

_EFFECTS_ON = dict(overexposure_ev=1.0, halo=0.5, halo_sigma_px=3.0, edge_enhance=0.8, edge_sigma_px=1.5)


def test_param_keys_are_declared_and_the_effects_leave_older_draws_alone():
    cfg = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")])
    assert tuple(sensor.sample_params(cfg, np.random.default_rng(0))) == sensor.PARAM_KEYS
    on = _cfg(**{k: (0.5 * v, v) for k, v in _EFFECTS_ON.items()})
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    pa, pb = sensor.sample_params(cfg, a), sensor.sample_params(on, b)
    old = [k for k in sensor.PARAM_KEYS if k.removeprefix("sensor_") not in sensor._EFFECT_FIELDS]
    assert [pa[k] for k in old] == [sensor.sample_params(cfg, np.random.default_rng(11))[k] for k in old]
    assert a.random() == b.random()              # the noise stream after them is where it was
    assert pb["sensor_halo"] != 0 and pb == sensor.sample_params(on, np.random.default_rng(11))


@pytest.mark.parametrize("field,on", sorted(_EFFECTS_ON.items()))
def test_each_effect_off_gives_identical_frames(field, on):
    """An effect at its off value (whatever its other fields) leaves the frame bit-identical."""
    rng = np.random.default_rng(12)
    img = (rng.random((H, W, 3)) * 1.6).astype(np.float32)          # some pixels above full scale
    base = config.load(sensor.SensorConfig, [config.assets_path("defaults", "sim", "sensor.yaml")])
    off = {"overexposure_ev": 0.0, "halo": 0.0, "edge_enhance": 0.0}
    # the sigma fields change nothing while their effect is off
    other = {"halo_sigma_px": (7.0, 7.0)} if field == "halo_sigma_px" else \
        {"edge_sigma_px": (4.0, 4.0)} if field == "edge_sigma_px" else {}
    assert field in off or other
    cfg = dataclasses.replace(base, **{k: (v, v) for k, v in off.items()}, **other)
    assert np.array_equal(_run(img, base, _circle(H, W), seed=3), _run(img, cfg, _circle(H, W), seed=3))


def test_halo_spreads_light_only_around_saturated_pixels_and_falls_off():
    lin = _cfg(tone_curve="gamma", gamma=1.0)
    img = np.full((65, 65, 3), 0.2, np.float32)
    img[32, 32] = 4.0                                    # one saturated dot, 3x above full scale
    halo = _cfg(tone_curve="gamma", gamma=1.0, halo=1.0, halo_sigma_px=3.0)
    ref, out = _run(img, lin).astype(int), _run(img, halo).astype(int)
    diff = out - ref
    r = np.hypot(*np.mgrid[-32:33, -32:33])
    ring = [diff[(r > a) & (r <= a + 1), 1].mean() for a in range(1, 12)]
    assert ring[0] > 8 and all(x >= y for x, y in zip(ring, ring[1:])) and ring[-1] < 0.5
    assert np.all(diff >= 0) and np.all(diff[r > 15] == 0)
    # the halo holds `halo` times the light clipped from the core (3 x 255 per channel), less the
    # share that lands on the core itself (already clipped) and the faint tail rounded to 0
    assert diff[..., 1].sum() == pytest.approx(3 * 255, rel=0.08)
    below = np.random.default_rng(13).random((H, W, 3)).astype(np.float32)   # nothing above 1.0
    assert np.array_equal(_run(below, halo), _run(below, lin))


def test_halo_on_the_box_around_the_highlights_is_the_full_frame_blur():
    import cv2
    rng = np.random.default_rng(16)
    for sigma in (0.7, 3.0, 6.0):
        for n in (1, 3):
            img = (rng.random((64, 70, 3)) * 0.5).astype(np.float32)
            for y, x in rng.integers(0, 64, (n, 2)):
                img[y, x, rng.integers(0, 3)] = 3.0
            full = cv2.GaussianBlur(np.maximum(img - 1, 0), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
            assert np.array_equal(sensor.add_halo(img.copy(), 0.7, sigma), img + np.float32(0.7) * full)


def test_edge_enhancement_raises_step_contrast_by_about_k_and_keeps_flat_fields():
    img = np.full((64, 64, 3), 0.15, np.float32)
    img[:, 32:] = 0.45
    lin = _cfg(tone_curve="gamma", gamma=1.0)
    ref = _run(img, lin).astype(float)[..., 1]
    for k in (0.5, 1.0):
        out = _run(img, _cfg(tone_curve="gamma", gamma=1.0, edge_enhance=k, edge_sigma_px=3.0)).astype(float)[..., 1]
        step, enhanced = ref[32, 32] - ref[32, 31], out[32, 32] - out[32, 31]
        assert enhanced / step == pytest.approx(1 + k, rel=0.12)          # 1 + 0.87 k at sigma 3
        assert np.array_equal(out[:, :16], ref[:, :16]) and np.array_equal(out[:, 48:], ref[:, 48:])
    flat = np.full((H, W, 3), 0.3, np.float32)
    mask = _circle(H, W)
    sharp = _cfg(edge_enhance=2.0, edge_sigma_px=2.0)
    assert np.array_equal(_run(flat, sharp, mask), _run(flat, _cfg(), mask))   # no rim at the border


def test_overexposure_raises_the_clipped_fraction():
    rng = np.random.default_rng(14)
    img = (rng.random((H, W, 3)) ** 2).astype(np.float32)
    auto = dict(auto_gain=True, auto_gain_percentile=95.0, auto_gain_target=0.7, auto_gain_min=0.25,
                auto_gain_max=8.0)
    clipped = [(_run(img, _cfg(overexposure_ev=ev, **auto)) == 255).mean() for ev in (0.0, 1.0, 2.0)]
    assert clipped[0] < 0.01 and clipped[0] < clipped[1] < clipped[2] and clipped[2] > 0.2


@pytest.mark.parametrize("item,key", [("halo=-0.1", "halo"), ("halo_sigma_px=0", "halo_sigma_px"),
                                      ("overexposure_ev=[1.0, 0.5]", "overexposure_ev"),
                                      ("edge_enhance=9", "edge_enhance"), ("edge_sigma_px=-1", "edge_sigma_px")])
def test_bad_effect_values_raise_config_error_naming_the_key(item, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=[f"sensor.{item}"])
    assert e.value.key == f"sensor.{key}"
