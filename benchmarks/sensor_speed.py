"""CPU time of the sensor model (colonsim/render/sensor.py) per 256x256 frame, by stage.

    python benchmarks/sensor_speed.py [--style realistic] [--frames 200] [--root CHECKOUT] [--malloc keep|default]

``--root`` imports colonsim from another checkout (to compare before/after on the same machine).
``--malloc keep`` (the default) sets glibc's malloc to reuse freed memory, as FrameRenderer does in
each render process; ``default`` leaves it as it is, and each frame then pays page faults.
CPU time of this process (time.process_time, one thread), so that other work on a shared machine
counts less than it would in wall time. Prints one line: the total of each path (``fused``: stages
3-6 in one compiled pass, where numba is installed; ``numpy``: the same stages as NumPy passes; the
frames are bit-identical), then each stage.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="realistic")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--malloc", choices=("keep", "default"), default="keep")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    import numpy as np
    if args.malloc == "keep":   # what colonsim.render.scene._keep_freed_memory does (any --root)
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-1, 256 << 20)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)    # M_MMAP_THRESHOLD

    from colonsim.render import sensor
    from colonsim.simconfig import load_sim_config

    rng = np.random.default_rng(0)
    s = args.size
    y, x = np.mgrid[:s, :s]
    mask = (((x - (s - 1) / 2) ** 2 + (y - (s - 1) / 2) ** 2) <= (0.47 * s) ** 2).astype(np.uint8)
    img = (rng.random((s, s, 3), dtype=np.float32) * 0.3 + 0.05) * mask[..., None]
    cfg = load_sim_config(args.style).sensor
    params = [sensor.sample_params(cfg, rng) for _ in range(args.frames)]
    paths = {"fused": True, "numpy": False} if getattr(sensor, "fused_kernel", lambda: None)() is not None else {"numpy": None}
    totals = {}
    for name, fused in paths.items():
        kw = {} if fused is None else {"fused": fused}
        sensor.apply(img, mask, params[0], cfg, rng, **kw)
        t0 = time.process_time()
        for p in params:
            sensor.apply(img, mask, p, cfg, rng, **kw)
        totals[name] = (time.process_time() - t0) / len(params) * 1e3

    stages = {}
    for p in params[: max(20, len(params) // 4)]:
        t = time.process_time()
        a = sensor.chromatic_aberration(img, p["sensor_chromatic_aberration_px"]) \
            if p["sensor_chromatic_aberration_px"] else img
        t = _tick(stages, "ca", t)
        a = sensor.blur(a, cfg, p)
        t = _tick(stages, "blur", t)
        gain = sensor.auto_gain(a, mask, cfg)
        t = _tick(stages, "gain", t)
        wb = np.float32([p["sensor_wb_red_gain"], p["sensor_wb_green_gain"], p["sensor_wb_blue_gain"]]) \
            * np.float32(gain * 2.0 ** p["sensor_exposure_ev"])
        if "fused" in paths:
            out = sensor._expose_noise_encode(np.ascontiguousarray(a), wb, p["sensor_noise_gain"],
                                              p["sensor_read_noise"], True, rng, cfg.tone_curve, cfg.gamma,
                                              p["sensor_tone_contrast"])
            t = _tick(stages, "wb+noise+tone (one pass)", t)
        else:
            a = sensor.add_noise(a * wb, p["sensor_noise_gain"], p["sensor_read_noise"], rng)
            t = _tick(stages, "wb+noise", t)
            out = sensor.encode(a, cfg.tone_curve, cfg.gamma, p["sensor_tone_contrast"])
            t = _tick(stages, "tone", t)
        if cfg.jpeg:
            sensor.jpeg_roundtrip(out, int(p["sensor_jpeg_quality"]))
        _tick(stages, "jpeg", t)
    n = max(20, len(params) // 4)
    parts = ", ".join(f"{k} {v / n * 1e3:.2f}" for k, v in stages.items())
    total = " | ".join(f"{k} {v:.2f}" for k, v in totals.items())
    print(f"sensor {args.style} {s}x{s}, malloc {args.malloc}: ms CPU/frame {total} (stages: {parts})")


def _tick(stages: dict, name: str, t: float) -> float:
    now = time.process_time()
    stages[name] = stages.get(name, 0.0) + now - t
    return now


if __name__ == "__main__":
    from common import run

    run(main)
