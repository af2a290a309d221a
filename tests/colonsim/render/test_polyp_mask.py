"""The polyp mask (output.polyp_mask): 1 exactly where a polyp's surface is the visible surface.

A colon with polyps and the same colon without them have the same wall (the polyps have their own
random streams), so at the same pose the two depths differ exactly where a polyp is seen."""
from __future__ import annotations

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from colonsim.anatomy.colon import generate_colon
from colonsim.data import h5io, schema
from colonsim.render.scene import FrameRenderer
from colonsim.run.generate import render_dataset
from colonsim.simconfig import load_sim_config

POLYPS = ["anatomy.path=straight", "anatomy.segments=[transverse]", "anatomy.max_length_mm=200",
          "anatomy.triangles=20000", "anatomy.polyps_per_m=15", "trajectory.polyp_view_probability=1",
          "trajectory.sequence_length=1", "output.size_px=64"]
LENSES = {"pinhole": ["lens.model=pinhole", "lens.fov_deg=90", "lens.mask=round", "lens.circle_frac=1.5"],
          "fisheye": []}   # the clean style's 120 degree fisheye: cube-free single view, remapped


def _renderers(lens: str):
    cfg = load_sim_config("clean", None, POLYPS + LENSES[lens])
    plain_cfg = load_sim_config("clean", None, POLYPS + LENSES[lens] + ["anatomy.polyps_per_m=0"])
    colon = generate_colon(cfg.anatomy, 7)
    plain = generate_colon(plain_cfg.anatomy, 7)
    assert len(colon.polyps) >= 1
    n_wall = len(plain.mesh.vertices)
    np.testing.assert_array_equal(colon.mesh.vertices[:n_wall], plain.mesh.vertices)   # the same wall
    return FrameRenderer(cfg, [colon]), FrameRenderer(cfg, [plain])


@pytest.mark.parametrize("lens", sorted(LENSES))
def test_the_mask_is_where_the_polyp_changes_the_depth(lens):
    r, r_plain = _renderers(lens)
    covered = total = rim_misses = 0
    for i in range(6):
        p = r.begin(i, seed=2)
        frame = r.finish(p)
        mask = r.render_polyp_mask(p.pose, 0)
        _, plain_depth = r_plain.render_linear(0, p.pose, p.params, p.params)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        inside = frame.mask > 0
        diff = plain_depth - frame.depth            # > 0 where something stands in front of the wall
        raised = inside & (diff > 1e-3 * plain_depth + 0.05)
        if lens == "pinhole":   # one sample per pixel: the mask and the depth see the same surface
            off = inside & (mask == 0)
            assert np.all(np.abs(diff[off]) <= 1e-5 * plain_depth[off])     # the wall, as without polyps
            assert np.all(mask[raised] == 1)
            on = mask > 0    # a polyp's surface: in front of the wall (its foot within 0.1 mm of it)
            assert np.all(diff[on] >= -1e-5 * plain_depth[on])
        else:
            # The depth is bilinear away from depth edges (where the polyp's foot meets the wall),
            # the mask the nearest sample: they may differ along the polyp's rim, within two
            # samples of the rendered view (2 / render_scale output pixels; 3-4 px measured at
            # render_scale 0.5), and nowhere else.
            import cv2
            reach = int(np.ceil(2.0 / r.cfg.lens.render_scale))
            near_mask = cv2.dilate(mask, np.ones((2 * reach + 1,) * 2, np.uint8))
            assert not np.any(raised & (near_mask == 0))
            # At the polyp's silhouette the depth takes the nearest sample, from a ray up to half
            # a sample away, which on an oblique wall may lie farther than the plain colon's
            # bilinear depth (measured: 29 of 1,536 mask pixels, all on the rim); inside, never.
            inner = cv2.erode(mask, np.ones((2 * reach + 1,) * 2, np.uint8))
            assert not np.any((inner > 0) & (diff < -0.05))
            rim_misses += int(np.sum(raised & (mask == 0)))
        assert not np.any(mask[~inside])
        covered += int(np.sum(mask[raised]))
        total += int(raised.sum())
    r.close()
    r_plain.close()
    assert total >= 50                                    # the polyp views show polyps
    print(f"{lens}: {covered} of {total} raised pixels in the mask ({rim_misses} rim pixels not)")
    assert covered >= (0.95 if lens == "pinhole" else 0.75) * total


def test_a_colon_without_polyps_has_an_empty_mask_without_a_render():
    cfg = load_sim_config("clean", None, POLYPS + ["anatomy.polyps_per_m=0"])
    r = FrameRenderer(cfg, [generate_colon(cfg.anatomy, 7)])
    assert r.has_polyps == [False] and r.draw_polyp_mask(np.eye(4), 0) is None
    assert not r.render_polyp_mask(np.eye(4), 0).any()
    r.close()


def test_the_file_has_the_mask_and_readers_that_do_not_know_it_still_read_it(tmp_path, monkeypatch):
    from colonsim.data import h5read
    from colonsim.data.dataset import FrameDataset

    cfg = load_sim_config("clean", None, POLYPS + ["output.polyp_mask=true", "output.size_px=32"])
    out = tmp_path / "polyps.h5"
    render_dataset(cfg, out, 4, seed=3, workers=1, progress=False)
    with h5py.File(out, "r") as f:
        m = f[schema.POLYP_MASK][()]
        assert m.dtype == np.uint8 and m.shape == (4, 32, 32) and m.any()
        assert set(np.unique(m)) <= {0, 1}
        assert not np.any(m & (f[schema.DEPTH][()] == 0))   # a polyp is a surface
    assert h5io.validate(out)["ok"]
    item = FrameDataset(out, fields=("rgb", "polyp_mask"))[0]
    assert item["polyp_mask"].shape == (1, 32, 32)
    # A reader of the schema before polyp_mask (no such optional output): the file reads as before.
    monkeypatch.setattr(schema, "OPTIONAL_OUTPUTS", {k: v for k, v in schema.OPTIONAL_OUTPUTS.items()
                                                     if k != schema.POLYP_MASK})
    assert h5io.validate(out)["ok"]
    with h5io.open_checked(out) as f:
        assert h5read.read_frame(f, 0).keys() == {"rgb", "depth", "mask", "pose", "intrinsics", "params"}
    item = FrameDataset(out)[1]
    assert set(item) == {"index", "rgb", "depth", "mask"}
