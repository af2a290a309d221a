import time, numpy as np
from colonsim import sensor
from colonsim.simconfig import load_sim_config
rng = np.random.default_rng(0)
y, x = np.mgrid[:256, :256]
mask = (((x - 127.5) ** 2 + (y - 127.5) ** 2) <= 120 ** 2).astype(np.uint8)
img = (rng.random((256, 256, 3), dtype=np.float32) * 0.3 + 0.05).astype(np.float32)
for style in ("clean", "realistic"):
    cfg = load_sim_config(style).sensor
    for name, c in ((style, cfg),) + ((("identity", sensor.identity_config()),) if style == "clean" else ()):
        ps = [sensor.sample_params(c, rng) for _ in range(200)]
        sensor.apply(img, mask, ps[0], c, rng)
        t = time.process_time()
        for p in ps:
            sensor.apply(img, mask, p, c, rng)
        print(f"sensor {name}: {(time.process_time() - t) / len(ps) * 1e3:.2f} ms CPU/frame at 256x256")
