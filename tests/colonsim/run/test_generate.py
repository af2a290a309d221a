"""Generation with K workers: determinism, kill + resume, and the torch Dataset over the result."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cli
from colonsim.data import h5io, schema
from colonsim.run.generate import parts_dir

ROOT = Path(__file__).resolve().parents[3]
N = 24
# A short straight tube of 20k triangles at 32x32 px, 12 shards of 2 frames: start-up dominates.
SMALL = ["--size", "32", "--seed", "5", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "output.shard_frames=2", "--set", "tissue.texture_px=64"]


def render(out: Path, *extra: str) -> int:
    return cli.main(["render", "--out", str(out), "--frames", str(N), *SMALL, *extra])


def arrays(path: Path) -> dict[str, np.ndarray]:
    with h5io.open_file(path) as f:
        out = {k: f[k][()] for k in (schema.RGB, schema.DEPTH, schema.MASK, schema.POSE, schema.DONE)}
        out.update({f"params/{k}": f[schema.PARAMS][k][()] for k in f[schema.PARAMS]})
    return out


def n_done(out: Path) -> int:
    """Complete shards of an interrupted render of ``out``."""
    return len(list(parts_dir(out).glob("shard_*.h5")))


def assert_same(a: Path, b: Path) -> None:
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert render(out, "--workers", "1") == 0
    return out


def test_same_command_twice_and_any_worker_count_give_identical_frames(reference, tmp_path):
    again = tmp_path / "again.h5"
    assert render(again, "--workers", "1") == 0
    assert_same(reference, again)
    two = tmp_path / "two.h5"
    assert render(two, "--workers", "2") == 0
    assert_same(reference, two)
    assert not parts_dir(two).exists()
    with h5io.open_file(two) as f:
        assert f.attrs[schema.ATTR_COMPLETE] and f.attrs[schema.ATTR_N_FRAMES] == N
        assert f[schema.RGB].chunks == (1, 32, 32, 3)
        assert np.all(f[schema.DEPTH][()] >= 0) and np.any(f[schema.DEPTH][()] > 2.0)


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_file(reference, tmp_path):
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "cli.py", "render", "--out", str(out), "--frames", str(N), *SMALL,
           "--workers", "2", "--resume"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rng = np.random.default_rng(20171117)
    n_shards, states = N // 2, []
    # Kill 1: at a random moment of start-up. Kills 2-3: once a random number of shards more is on
    # disk, plus a random fraction of a shard's time, so that they land inside the rendering.
    targets = [0] + sorted(rng.choice(np.arange(1, n_shards), size=2, replace=False).tolist())
    for target in targets:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while target and n_done(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.02 if target else 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append((out.exists(), n_done(out)))
    assert any(0 < k < n_shards for _, k in states), states
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (states, done.stderr[-2000:])
    assert_same(reference, out)
    assert not parts_dir(out).exists()
    assert cli.main(["inspect", str(out)]) == 0
    # Resuming a finished file renders nothing and leaves it as it was.
    assert cli.main(["render", "--out", str(out), "--frames", str(N), *SMALL, "--resume"]) == 0
    assert_same(reference, out)


def test_frame_dataset_reads_the_rendered_file_with_two_loader_workers(reference):
    import torch
    from torch.utils.data import DataLoader

    from colonsim.data.dataset import FrameDataset

    ds = FrameDataset(reference)
    assert len(ds) == N
    seen = {}
    for batch in DataLoader(ds, batch_size=5, num_workers=2):
        for k, i in enumerate(batch["index"].tolist()):
            seen[i] = (batch[schema.RGB][k], batch[schema.DEPTH][k])
    assert sorted(seen) == list(range(N))
    raw = arrays(reference)
    for i, (rgb, depth) in seen.items():
        assert torch.equal(rgb, torch.from_numpy(raw[schema.RGB][i]).permute(2, 0, 1).float() / 255)
        assert torch.equal(depth[0], torch.from_numpy(raw[schema.DEPTH][i].astype(np.float32)))


@pytest.mark.parametrize("bad", ["quad.obj", "straw.ply"])
def test_bad_mesh_with_the_progress_bar_on_gives_exactly_one_stderr_line(tmp_path, bad):
    """A mesh with quads fails while the meshes are built, a tube too narrow for the camera in the
    worker's first frame: both before any progress bar is drawn."""
    import trimesh
    mesh = tmp_path / bad
    if bad == "quad.obj":
        mesh.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    else:
        trimesh.creation.cylinder(radius=1.5, height=200, sections=24).export(mesh)
    out = tmp_path / "a.h5"
    args = [a for a in SMALL if a != "--quiet"]
    r = subprocess.run([sys.executable, "cli.py", "render", "--out", str(out), "--frames", "2", *args,
                        "--mesh", str(mesh)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("colonsim: error:") and "mesh" in lines[0]
    assert not out.exists() and not parts_dir(out).exists()


def test_tasks_ship_colons_without_trimesh_caches():
    import pickle

    from colonsim.anatomy.colon import generate_colon
    from colonsim.render import scene, trajectory
    from colonsim.run import generate
    from colonsim.simconfig import load_sim_config

    cfg = load_sim_config("clean", None, ["anatomy.triangles=20000", "anatomy.max_length_mm=600"])
    colon = generate_colon(cfg.anatomy, 2)
    trajectory.geometry(colon)
    scene.prepare(cfg, [colon])          # what the parent computes fills trimesh's caches
    light = generate._without_caches(colon)
    assert np.array_equal(light.mesh.vertices, colon.mesh.vertices)
    assert np.array_equal(light.mesh.faces, colon.mesh.faces)
    assert light.centerline is colon.centerline and light.name == colon.name
    assert len(pickle.dumps(light)) < 0.4 * len(pickle.dumps(colon))
    assert np.allclose(light.mesh.vertex_normals, colon.mesh.vertex_normals)   # recomputed on demand


def test_disk_estimate_counts_the_optional_outputs(tmp_path, monkeypatch):
    """check_disk_space counts normals (6 B/px, float16), flow (8 B/px) and occlusion + flow_valid
    (1 B/px each): with free space between the two estimates, the plain render fits and the one with
    the outputs is refused."""
    import shutil
    from types import SimpleNamespace

    from colonsim.errors import InputError
    from colonsim.run import generate
    from colonsim.simconfig import load_sim_config

    plain = load_sim_config(overrides=["output.size_px=64"])
    both = load_sim_config(overrides=["output.size_px=64", "output.flow=true", "output.normals=true"])
    assert generate.optional_bytes_per_px(plain) == 0
    assert generate.optional_bytes_per_px(load_sim_config(overrides=["output.normals=true"])) == 6
    assert generate.optional_bytes_per_px(load_sim_config(overrides=["output.flow=true"])) == 10
    assert generate.optional_bytes_per_px(both) == 16
    px, n = 64 * 64, 1000
    base = 3 + (2 if plain.output.depth_dtype == "float16" else 4) + 1
    small = 2 * n * (px * base * generate.MIN_COMPRESSION + generate.SMALL_BYTES_PER_FRAME)
    large = 2 * n * (px * (base + 16) * generate.MIN_COMPRESSION + generate.SMALL_BYTES_PER_FRAME)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(free=(small + large) / 2))
    generate.check_disk_space(plain, n, tmp_path)
    with pytest.raises(InputError, match="needs at least"):
        generate.check_disk_space(both, n, tmp_path)
