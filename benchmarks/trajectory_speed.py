import time
from colonsim import trajectory
from colonsim.simconfig import load_sim_config
from colonsim.anatomy import generate_colon
cfg = load_sim_config("realistic")
colon = generate_colon(cfg.anatomy, 1)
t = time.process_time(); trajectory.pose_for_frame(colon, cfg.trajectory, 0, 0); print(f"geometry build + first pose ({len(colon.mesh.faces)} triangles): {time.process_time() - t:.2f} s CPU")
for L in (1, 100):
    c = trajectory.TrajectoryConfig(**{**cfg.trajectory.__dict__, "sequence_length": L})
    t = time.process_time()
    for i in range(300): trajectory.pose_for_frame(colon, c, 1, i)
    print(f"pose_for_frame sequence_length={L}: {(time.process_time() - t) / 300 * 1e3:.2f} ms CPU/frame")
