"""Per-view culling in the renderer (depth mask of unread pixels, chunked colon, occlusion test of
chunks) changes no pixel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colonsim.anatomy.colon import generate_colon
from colonsim.render import light, scene, tissue
from colonsim.render.lens import Lens, Remap
from colonsim.render.scene import FrameRenderer
from colonsim.render.trajectory import pose_for_frame
from colonsim.simconfig import load_sim_config

OVER = ["output.size_px=96", "anatomy.triangles=30000", "anatomy.max_length_mm=600", "tissue.texture_px=64"]


@pytest.mark.parametrize("model,fov,mask", [("fisheye", 120.0, "octagon"), ("pinhole", 90.0, "round"),
                                            ("fisheye", 170.0, "round")])
def test_row_spans_cover_every_pixel_the_remap_reads(model, fov, mask):
    cfg = load_sim_config("realistic", None, OVER + [f"lens.model={model}", f"lens.fov_deg={fov}",
                                                     f"lens.mask={mask}"])
    remap = Remap(Lens(cfg.lens, 96, 96))
    spans = remap.row_spans(margin_px=0)
    for k, view in enumerate(remap.views):
        s = view.size_px
        first, end = spans[k][:, 0], spans[k][:, 1]
        if remap.direct:
            rows, cols = np.nonzero(remap.mask[::-1] > 0)
        else:
            mx, my, _ = remap._maps[k]
            ok = (remap.mask > 0) & (mx > -1)
            cols = np.concatenate([np.floor(mx[ok]).astype(int), np.floor(mx[ok]).astype(int) + 1])
            rows = np.concatenate([np.floor(my[ok]).astype(int), np.floor(my[ok]).astype(int) + 1])
            keep = (cols < s) & (rows < s)
            rows, cols = rows[keep], cols[keep]
        assert np.all((cols >= first[rows]) & (cols < end[rows]))
        if not remap.direct and model == "fisheye" and fov == 120.0:
            assert (end - first).sum() < 0.8 * s * s     # the corners of the square view are skipped


def test_masked_and_chunked_render_equals_the_plain_render_bit_for_bit():
    cfg = load_sim_config("realistic", None, OVER)
    colon = generate_colon(cfg.anatomy, 3)
    r = FrameRenderer(cfg, [colon])
    rng = np.random.default_rng(0)
    tis, li = tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng)
    keys, chunks = r._mask_keys, r.chunks
    drawn = []
    for i in range(8):
        pose, _ = pose_for_frame(colon, r._trajectory, 0, i)
        r._mask_keys, r.chunks = keys, chunks
        fast = r.render_linear(0, pose, tis, li)
        counts, _ = chunks[0].ranges(pose, 1.0, 0.5, 1000.0)
        drawn.append(len(counts))
        r._mask_keys = [None] * len(keys)
        r.chunks = [type(chunks[0])(chunks[0].start, chunks[0].count, chunks[0].center,
                                    np.full(len(chunks[0].radius), 1e9))]   # nothing culled
        plain = r.render_linear(0, pose, tis, li)
        assert np.array_equal(fast[1], plain[1]) and np.array_equal(fast[0], plain[0])
        assert (fast[1] > 0).mean() > 0.5
    assert min(drawn) < len(chunks[0].start)       # the frustum did cull chunks


def test_renderers_made_one_after_another_each_use_their_own_mask():
    # Masks live in the process's GL context; a later renderer with other optics (which may reuse
    # the id of a deleted one) must not draw with an earlier renderer's mask.
    rng = np.random.default_rng(1)
    colon = generate_colon(load_sim_config("realistic", None, OVER).anatomy, 3)
    for model, fov, mask in (("fisheye", 120.0, "octagon"), ("pinhole", 90.0, "round"), ("fisheye", 160.0, "round")):
        cfg = load_sim_config("realistic", None, OVER + [f"lens.model={model}", f"lens.fov_deg={fov}",
                                                         f"lens.mask={mask}"])
        r = FrameRenderer(cfg, [colon])
        tis, li = tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng)
        pose, _ = pose_for_frame(colon, r._trajectory, 0, 0)
        fast = r.render_linear(0, pose, tis, li)
        keys = r._mask_keys
        r._mask_keys = [None] * len(keys)
        plain = r.render_linear(0, pose, tis, li)
        assert np.array_equal(fast[1], plain[1]) and np.array_equal(fast[0], plain[0])
        r.close()
        del r


def test_chunk_boxes_hold_their_chunks_with_the_margin():
    cfg = load_sim_config("realistic", None, OVER)
    colon = generate_colon(cfg.anatomy, 4)
    parts = scene.mesh_parts(colon, cfg.tissue, 0)
    ch = parts.chunks
    assert ch.corners.shape == (len(ch.start), 8, 3)
    for k, (a, n) in enumerate(zip(ch.start, ch.count)):
        v = parts.positions[parts.faces[a:a + n].astype(np.int64)].reshape(-1, 3).astype(np.float64)
        c = ch.corners[k]
        for corner in (4, 2, 1):                          # the three edges from corner 0
            edge = c[corner] - c[0]
            length = np.linalg.norm(edge)
            t = (v - c[0]) @ (edge / length)
            assert t.min() >= scene.BOX_MARGIN_MM - 1e-4 and t.max() <= length - scene.BOX_MARGIN_MM + 1e-4
    tri = ch.box_triangles()
    assert tri.shape == (36 * len(ch.start), 3)
    assert np.allclose(np.sort(np.unique(tri[:36], axis=0), axis=0), np.sort(ch.corners[0], axis=0), atol=1e-3)


@pytest.mark.parametrize("extra,poses", [
    (["trajectory.wall_view_probability=0.4", "anatomy.polyps_per_m=6"], 40),
    (["lens.fov_deg=170", "lens.mask=round"], 12),          # five cube faces, each tested
])
def test_occlusion_culled_frames_equal_the_unculled_frames_bit_for_bit(extra, poses):
    cfg = load_sim_config("realistic", None, OVER + ["anatomy.max_length_mm=1200"] + extra)
    colon = generate_colon(cfg.anatomy, 5)
    r = FrameRenderer(cfg, [colon])
    assert r.occlusion
    drawn, skipped = _culled_and_full_frames_agree(r, colon, cfg, poses, seed=1, rng_seed=2)
    assert skipped > 0.3 * drawn        # the test did skip hidden chunks


def _culled_and_full_frames_agree(r, colon, cfg, poses: int, seed: int, rng_seed: int) -> np.ndarray:
    """Render ``poses`` frames with and without the occlusion test, assert they are equal bit for
    bit, and return (triangles in the drawn ranges, of them skipped) over those renders."""
    rng = np.random.default_rng(rng_seed)
    before = r.gl.renderer.cull_stats.copy()
    for i in range(poses):
        pose, _ = pose_for_frame(colon, r._trajectory, seed, i)
        tis, li = tissue.sample_params(cfg.tissue, rng), light.sample_params(cfg.light, rng)
        r.occlusion = True
        culled = r.render_linear(0, pose, tis, li)
        r.occlusion = False
        full = r.render_linear(0, pose, tis, li)
        assert np.array_equal(culled[0], full[0]) and np.array_equal(culled[1], full[1]), f"pose {i}"
    return r.gl.renderer.cull_stats - before


CT = Path(__file__).resolve().parents[3] / "shared" / "data" / "meshes" / "gca-edin-00020"


@pytest.mark.skipif(not CT.is_dir(), reason=f"CT reference mesh not found at {CT}")
def test_occlusion_culling_is_exact_on_the_ct_colon():
    from colonsim.anatomy.meshio import load_colon

    colon = load_colon(CT, scale="0.808594,0.808594,0.7", centerline=CT / "Paths_large_intestine_path.jsn")
    cfg = load_sim_config("realistic", None, ["output.size_px=96", "trajectory.wall_view_probability=0.5"])
    r = FrameRenderer(cfg, [colon])
    drawn, skipped = _culled_and_full_frames_agree(r, colon, cfg, 16, seed=2, rng_seed=4)
    assert skipped > 0.2 * drawn
