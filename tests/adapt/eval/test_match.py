"""`adapt match`: the training-free reference. Each matched frame has one synthetic frame's grey-level
distribution, the synthetic set's colour at each grey level and its defocus, keeps the order of
light and dark, and stays black outside the image circle; bad inputs are one line and exit 2."""
import json

import cv2
import h5py
import numpy as np
import pytest

import cli
from adapt.eval.match import QUANTILES, fit_target, frame_key, match, match_frame, remove_highlights
from colonsim.data import realdata, schema

from ..conftest import octagon_mask, real_frames, synthetic_frames, write_h5


def _grey(rgb):
    return rgb.astype(np.float64).mean(-1)


def test_fit_target_colour_curve_and_quantiles(synthetic_h5):
    t = fit_target(synthetic_h5)
    rgb, _, mask = synthetic_frames(8, 40, seed=1)
    assert t.quantiles.shape == (8, QUANTILES)
    assert (np.diff(t.quantiles, axis=1) >= 0).all()
    # each frame's quantile function is that frame's grey levels inside the mask
    np.testing.assert_allclose(t.quantiles[3, [0, 128, 256]],
                               np.quantile(_grey(rgb[3])[mask > 0], [0, 0.5, 1]), atol=1e-3)
    # the fixture's colour is shade x (230, 150, 140): at every grey level the table has that hue
    hue = np.array([230, 150, 140]) / np.mean([230, 150, 140])
    for g in (80, 120, 165):   # levels with many pixels (the fixture spans grey 72-173)
        np.testing.assert_allclose(t.lut[g], g * hue, atol=2.5)
        assert abs(t.lut[g].mean() - g) < 1.0
    assert t.blur_frac == 0.0   # the fixture stores no config: no defocus to copy


def test_fit_target_takes_the_defocus_from_the_config(tmp_path):
    rgb, depth, mask = synthetic_frames(4, 40, seed=3)
    path = write_h5(tmp_path / "s.h5", rgb, depth, mask)
    with h5py.File(path, "r+") as f:
        f.attrs["config"] = json.dumps({"sensor": {"defocus_sigma_px": [2.0, 3.0]}})
    height = int((mask > 0).any(axis=1).sum())
    assert fit_target(path).blur_frac == pytest.approx(2.5 / height)
    assert fit_target(path, blur_frac=0.01).blur_frac == 0.01


def test_match_frame_imposes_the_target_statistics_and_keeps_the_order(synthetic_h5):
    t = fit_target(synthetic_h5, blur_frac=0.0)
    raw = real_frames(1, 48, 56, seed=5)[0]
    mask = realdata.detect_border_mask(raw)
    out = match_frame(raw, mask, t, key=11, seed=0)
    assert out.shape == raw.shape and out.dtype == np.uint8
    assert (out[mask == 0] == 0).all()
    inside = mask > 0
    g_in, g_out = _grey(raw)[inside], _grey(out)[inside]
    # tone: the output's grey distribution is one synthetic frame's (the seeded draw), away from the
    # dark blob of the fixture (9 % of the circle, all one value: a flat area takes its mean rank)
    pick = int(np.random.default_rng([0, 11]).integers(len(t.quantiles)))
    levels = [0.2, 0.35, 0.5, 0.65, 0.8]
    np.testing.assert_allclose(np.quantile(g_out, levels),
                               np.interp(levels, np.linspace(0, 1, QUANTILES),
                                         t.quantiles[pick]), atol=1.5)
    # order of light and dark kept: sorting by the input's grey sorts the output's (up to rounding)
    assert (np.diff(g_out[np.argsort(g_in, kind="stable")]) >= -1.0).all()
    # colour: every pixel on the synthetic colour curve
    lut_at = np.stack([np.interp(g_out, np.arange(256), t.lut[:, c]) for c in range(3)], 1)
    assert np.abs(out[inside].astype(np.float64) - lut_at).max() <= 1.5
    # a flat area stays flat: equal inputs give equal outputs
    flat = np.full_like(raw, 90) * mask[..., None]
    f = match_frame(flat, mask, t, key=1)
    assert len(np.unique(f[inside].reshape(-1, 3), axis=0)) == 1
    # seeded: the same key gives the same frame, another key (almost surely) another distribution
    np.testing.assert_array_equal(match_frame(raw, mask, t, key=11, seed=0), out)


def test_match_steps_apply_one_property_each(synthetic_h5):
    t = fit_target(synthetic_h5, blur_frac=0.0)
    raw = real_frames(1, 48, 56, seed=7)[0]
    mask = realdata.detect_border_mask(raw)
    inside = mask > 0
    # colour alone: grey levels unchanged, every pixel on the synthetic colour curve
    c = match_frame(raw, mask, t, key=3, steps=("colour",))
    assert np.abs(_grey(c)[inside] - _grey(raw)[inside]).max() <= 1.0 + 1e-9
    lut_at = np.stack([np.interp(_grey(c)[inside], np.arange(256), t.lut[:, k]) for k in range(3)], 1)
    assert np.abs(c[inside] - lut_at).max() <= 1.5
    # tones alone: the synthetic frame's distribution, the frame's own chromaticity (orange, not pink)
    g = match_frame(raw, mask, t, key=3, steps="tones")
    full = match_frame(raw, mask, t, key=3)
    unclipped = inside & (g.max(-1) < 255)     # scaling the chromaticity up may clip a channel
    assert unclipped.sum() > 0.25 * inside.sum()
    assert np.abs(_grey(g)[unclipped] - _grey(full)[unclipped]).max() <= 2.0   # the same new grey levels
    bright = inside & (_grey(raw) > 60)
    ratio = lambda x: (x[bright][:, 2] + 1.0) / (x[bright][:, 0] + 1.0)  # noqa: E731  blue over red
    assert abs(np.median(ratio(g)) - np.median(ratio(raw))) < 0.05
    assert abs(np.median(ratio(full)) - 140 / 230) < 0.05
    with pytest.raises(Exception, match="--only"):
        match_frame(raw, mask, t, key=3, steps="tones,sharpen")


def test_match_frame_defocus_removes_fine_texture(synthetic_h5):
    raw = real_frames(1, 64, 64, seed=6)[0]          # noisy texture, sigma 25 grey levels
    mask = realdata.detect_border_mask(raw)
    sharp = match_frame(raw, mask, fit_target(synthetic_h5, blur_frac=0.0), key=0)
    soft = match_frame(raw, mask, fit_target(synthetic_h5, blur_frac=0.04), key=0)
    inner = cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0

    def detail(x):   # mean absolute difference of horizontal neighbours inside the circle
        g = _grey(x)
        return np.abs(np.diff(g, axis=1))[inner[:, 1:] & inner[:, :-1]].mean()
    assert detail(soft) < 0.5 * detail(sharp)
    assert (soft[mask == 0] == 0).all()


def test_match_folder_names_sizes_border_and_order_independence(tmp_path, real_dir, synthetic_h5):
    r = match(synthetic_h5, real_dir, tmp_path / "m")
    assert r["frames"] == 6 and r["frames_fitted"] == 8
    src = realdata.list_images(real_dir)
    dst = realdata.list_images(tmp_path / "m")
    assert [p.name for p in dst] == [p.name for p in src]
    for a, b in zip(src, dst):
        raw, out = realdata.read_image(a), realdata.read_image(b)
        assert raw.shape == out.shape
        assert (out[realdata.detect_border_mask(raw) == 0] == 0).all()
    # a frame's output depends on its name, not on the other frames: match a subset alone
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / src[3].name).write_bytes(src[3].read_bytes())
    match(synthetic_h5, sub, tmp_path / "m_sub")
    np.testing.assert_array_equal(realdata.read_image(tmp_path / "m_sub" / src[3].name),
                                  realdata.read_image(tmp_path / "m" / src[3].name))
    assert frame_key("12.jpg") == frame_key("12.jpg") != frame_key("13.jpg")


def test_match_h5_changes_only_rgb(tmp_path, synthetic_h5):
    rgb, depth, _ = synthetic_frames(3, 40, seed=9)
    mask = octagon_mask(40, 40)
    src = write_h5(tmp_path / "in.h5", (rgb * 0.5).astype(np.uint8) * mask[..., None], depth, mask)
    out = tmp_path / "out.h5"
    r = match(synthetic_h5, src, out)
    assert r["frames"] == 3
    with h5py.File(src) as a, h5py.File(out) as b:
        for name in (schema.DEPTH, schema.POSE, schema.MASK, schema.DONE):
            np.testing.assert_array_equal(a[name][()], b[name][()])
        assert not np.array_equal(a[schema.RGB][()], b[schema.RGB][()])
        assert (b[schema.RGB][()][:, mask == 0] == 0).all()
        assert json.loads(b.attrs["refined_by"])["matched_to"] == str(synthetic_h5)


def _run(capsys, args):
    rc = cli.main(args)
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_match_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, real_dir, synthetic_h5):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"not hdf5")
    cases = [
        (["--synthetic", str(tmp_path / "missing.h5"), "--input", str(real_dir)], "not found"),
        (["--synthetic", str(not_h5), "--input", str(real_dir)], "not"),
        (["--synthetic", str(real_dir), "--input", str(real_dir)], "not a readable HDF5"),
        (["--synthetic", str(synthetic_h5), "--input", str(empty)], "no images"),
        (["--synthetic", str(synthetic_h5), "--input", str(real_dir), "--blur-frac", "0.5"], "--blur-frac"),
        (["--synthetic", str(synthetic_h5), "--input", str(real_dir), "--frames", "0"], "--frames"),
        (["--synthetic", str(synthetic_h5), "--input", str(real_dir), "--only", "colour,sharpen"], "--only"),
        (["--synthetic", str(synthetic_h5), "--input", str(real_dir), "--highlight-level", "0"], "--highlight-level"),
        (["--synthetic", str(synthetic_h5), "--input", str(real_dir), "--highlight-max-frac", "0"],
         "--highlight-max-frac"),
    ]
    for i, (args, words) in enumerate(cases):
        rc, err = _run(capsys, ["adapt", "match", *args, "--out", str(tmp_path / f"o{i}")])
        assert rc == 2 and len(err) == 1 and words in err[0], (args, err)
        assert not (tmp_path / f"o{i}").exists() or not any((tmp_path / f"o{i}").iterdir())


def test_match_keeps_an_existing_output_unless_overwrite(tmp_path, capsys, real_dir, synthetic_h5):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    rc, err = _run(capsys, ["adapt", "match", "--synthetic", str(synthetic_h5), "--input", str(real_dir),
                            "--out", str(out)])
    assert rc == 2 and len(err) == 1 and "--overwrite" in err[0]
    assert (out / "keep.txt").read_text() == "earlier work"
    rc, _ = _run(capsys, ["adapt", "match", "--synthetic", str(synthetic_h5), "--input", str(real_dir),
                          "--out", str(out), "--overwrite", "--json"])
    # --overwrite replaces the frames it writes and never deletes what it did not write (issue 43)
    assert rc == 0 and len(realdata.list_images(out)) == 6 and (out / "keep.txt").read_text() == "earlier work"


def _wet_frame(size=200):
    """A round image circle of smooth red-orange mucosa with white specular spots, one at the edge."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    inside = np.hypot(yy - size / 2, xx - size / 2) < size * 0.45
    shade = 0.55 + 0.4 * xx / size
    mucosa = np.stack([220 * shade, 120 * shade, 80 * shade], -1)
    rgb = np.where(inside[..., None], mucosa, 0).round().astype(np.uint8)
    spots = [(60, 80, 4), (120, 130, 6), (100, 60, 3), (size // 2, int(size * 0.94), 4)]   # last: at the edge
    for y, x, r in spots:
        disc = (np.hypot(yy - y, xx - x) <= r) & inside
        rgb[disc] = 250
        ring = (np.hypot(yy - y, xx - x) <= r + 1) & ~disc & inside          # a soft rim
        rgb[ring] = np.maximum(rgb[ring], 185)
    return rgb, inside, mucosa, spots


def test_remove_highlights_fills_them_from_the_mucosa_around_and_leaves_the_rest():
    rgb, inside, mucosa, spots = _wet_frame()
    out, hl = remove_highlights(rgb, inside, 170)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not (out.min(axis=2)[inside] >= 170).any()                         # no highlight is left
    assert np.array_equal(out[~hl], rgb[~hl])                                # nothing else moves
    assert np.array_equal(out[~inside], rgb[~inside]) and not hl[~inside].any()
    yy, xx = np.mgrid[:rgb.shape[0], :rgb.shape[1]]
    for y, x, r in spots:   # each spot, the one at the circle's edge included, takes the mucosa's colour
        disc = (np.hypot(yy - y, xx - x) <= r) & inside
        assert hl[disc].all()
        np.testing.assert_allclose(out[disc].mean(0), mucosa[disc].mean(0), atol=12)
    # a large bright patch (overexposed wall, 2% of the circle) is not a highlight: it stays as it was
    glare = rgb.copy()
    patch = (np.hypot(yy - 150, xx - 70) <= 15.5) & inside                   # away from the spots
    assert patch.sum() > 0.01 * inside.sum()
    glare[patch] = 240
    out2, hl2 = remove_highlights(glare, inside, 170)
    assert not hl2[patch].any() and np.array_equal(out2[patch], glare[patch])
    assert hl2.sum() == hl.sum()                                              # the spots still go
    out3, hl3 = remove_highlights(glare, inside, 170, max_frac=1.0)          # unless every patch is to go
    assert hl3[patch].all() and not (out3.min(axis=2)[inside] >= 170).any()
    # a frame with no highlights comes back as it was
    dry = np.where(inside[..., None], mucosa, 0).round().astype(np.uint8)
    same, none = remove_highlights(dry, inside, 170)
    assert np.array_equal(same, dry) and not none.any()


def test_the_highlights_step_alone_is_remove_highlights_inside_the_circle(synthetic_h5):
    rgb, inside, _, _ = _wet_frame()
    target = fit_target(synthetic_h5)
    got = match_frame(rgb, inside.astype(np.uint8), target, key=0, steps=("highlights",))
    want = remove_highlights(rgb, inside, 170)[0]
    assert np.abs(got[inside].astype(int) - want[inside]).max() <= 1
    assert not got[~inside].any()
