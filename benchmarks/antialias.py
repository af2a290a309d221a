"""Aliasing of the rendered colour against a supersampled reference, and what each setting costs.

The renderer takes one sample per pixel of its pinhole view (pyrender's 4x multisampling is off: it
costs 2.5x on llvmpipe) and the lens remap interpolates that view bilinearly; textures are read from
mipmaps. This measures the error that leaves: the same frames (pose, tissue and light drawn as
in a dataset) rendered as linear radiance at the output size with ``lens.render_scale`` 0.5 (the
styles' default) and 1.0, against a reference rendered at 4x the output size with render_scale 1.0
(16 samples per output pixel at the centre) and area-averaged down. Errors are in 8-bit sRGB levels
inside the image circle (eroded by 2 px), after one exposure per frame taken from the reference.
Depth is not anti-aliased on purpose (a pixel's depth is the surface its centre sees, never a mix).

    python benchmarks/antialias.py [--style realistic] [--frames 24] [--size 256]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def renderer(style: str, size: int, scale: float):
    from colonsim.render.scene import FrameRenderer
    from colonsim.run.shard import load_colons, mesh_source
    from colonsim.simconfig import load_sim_config

    cfg = load_sim_config(style, None, [f"output.size_px={size}", f"lens.render_scale={scale}",
                                        "anatomy.triangles=100000"])
    return FrameRenderer(cfg, load_colons(cfg, mesh_source(cfg, "procedural", 0))), cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="realistic")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    os.environ.setdefault("LP_NUM_THREADS", "1")   # one core, so that the times compare
    import cv2
    import numpy as np

    from colonsim.render import light as lightmod
    from colonsim.render import sensor
    from colonsim.render import tissue as tissuemod
    from colonsim.render.trajectory import pose_for_frame

    s = args.size
    variants = {"render_scale 0.5 (default)": (s, 0.5), "render_scale 1.0": (s, 1.0),
                "reference (4x size, scale 1.0)": (4 * s, 1.0)}
    rends = {name: renderer(args.style, size, scale) for name, (size, scale) in variants.items()}
    r0, cfg = rends["render_scale 0.5 (default)"]
    mask = cv2.erode(r0.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    jobs = []
    for i in range(args.frames):
        rng = np.random.default_rng(i)
        pose, _ = pose_for_frame(r0.colons[0], r0._trajectory, 0, i)
        jobs.append((pose, tissuemod.sample_params(cfg.tissue, rng), lightmod.sample_params(cfg.light, rng)))
    images, times = {}, {}
    for name, (r, _) in rends.items():
        r.render_linear(0, *jobs[0])   # warm-up: shaders, textures
        t0 = time.perf_counter()
        images[name] = [r.render_linear(0, *job)[0] for job in jobs]
        times[name] = (time.perf_counter() - t0) / len(jobs) * 1e3
        print(f"{name}: view {r.remap.views[0].size_px} px, {times[name]:.1f} ms/frame", flush=True)
    ref = [cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA) for x in images["reference (4x size, scale 1.0)"]]
    sigma = float(cfg.sensor.defocus_sigma_px[0])   # the style's least defocus blur
    for name in list(variants)[:2]:
        for blur in ([0.0, sigma] if sigma > 0 else [0.0]):
            errs = []
            for x, y in zip(images[name], ref):
                if blur:
                    x, y = (cv2.GaussianBlur(z, (0, 0), blur) for z in (x, y))
                lum = y[mask] @ np.float32(sensor.LUMA_RGB)
                gain = 0.3 / max(float(np.percentile(lum, 60)), 1e-9)   # the styles' auto gain
                a = sensor.encode(x * gain).astype(np.int16)
                b = sensor.encode(y * gain).astype(np.int16)
                errs.append(np.abs(a - b)[mask].max(-1))
            e = np.concatenate(errs)
            after = f" after the style's least defocus blur (sigma {blur:g} px)" if blur else ""
            print(f"{name}{after}: |error| vs reference, 8-bit levels: mean {e.mean():.2f}, p99 "
                  f"{np.percentile(e, 99):.0f}, pixels off by more than 8: {100 * (e > 8).mean():.2f}%; "
                  f"{times[name]:.1f} ms/frame on one core (remap included)")


if __name__ == "__main__":
    from common import run

    run(main)
