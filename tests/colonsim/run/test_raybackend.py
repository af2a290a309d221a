"""The Ray backend: bit-identical to the local backend, resumable after the driver is killed, and a
clear error without ray. One local Ray cluster (2 CPUs) serves the module: Ray starts slowly."""
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
N = 16
SMALL = ["--frames", str(N), "--size", "32", "--seed", "5", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "output.shard_frames=2", "--set", "tissue.texture_px=64"]


def arrays(path: Path) -> dict[str, np.ndarray]:
    with h5io.open_file(path) as f:
        out = {k: f[k][()] for k in (schema.RGB, schema.DEPTH, schema.MASK, schema.POSE, schema.INTRINSICS,
                                     schema.DONE)}
        out.update({f"params/{k}": f[schema.PARAMS][k][()] for k in f[schema.PARAMS]})
    return out


def assert_same(a: Path, b: Path) -> None:
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k


class DyingRenderer:
    """The frame renderer, but the first process to reach frame 5 dies there (os._exit)."""

    def __init__(self, cfg, colons):
        from colonsim.render.scene import FrameRenderer
        self.inner = FrameRenderer(cfg, colons)

    def render(self, i: int, seed: int):
        marker = Path(os.environ["COLONSIM_TEST_DIE_MARKER"])
        if i == 5 and not marker.exists():
            marker.write_text("died")
            os._exit(1)
        return self.inner.render(i, seed)


@pytest.fixture(scope="module")
def die_marker(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("marker") / "died"


@pytest.fixture(scope="module")
def cluster(die_marker):
    ray = pytest.importorskip("ray")
    marker = die_marker
    # the actors import DyingRenderer from this module, and learn where its marker is
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLONSIM_TEST_DIE_MARKER": str(marker)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "local.h5"
    assert cli.main(["render", "--out", str(out), *SMALL]) == 0
    return out


def test_ray_render_of_16_frames_is_bit_identical_to_the_local_backend(cluster, local_reference, tmp_path, capsys):
    out = tmp_path / "ray.h5"
    capsys.readouterr()
    assert cli.main(["render", "--out", str(out), *SMALL, "--backend", "ray", "--workers", "2", "--json"]) == 0
    assert '"backend": "ray"' in capsys.readouterr().out
    assert_same(local_reference, out)
    assert not parts_dir(out).exists()


def test_driver_killed_midway_then_resume_gives_the_same_data(cluster, local_reference, tmp_path):
    out = tmp_path / "killed.h5"
    argv = [sys.executable, "cli.py", "render", "--out", str(out), *SMALL, "--backend", "ray",
            "--address", cluster, "--workers", "2"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list(parts_dir(out).glob("shard_*.h5")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, mid-run: its actors die with it
    proc.wait()
    done = list(parts_dir(out).glob("shard_*.h5"))
    assert 0 < len(done) < N // 2 and not out.exists(), "the kill came too late to test a resume"
    assert cli.main(["render", "--out", str(out), *SMALL, "--backend", "ray", "--resume"]) == 0
    assert_same(local_reference, out)


def test_an_actor_that_dies_is_replaced_and_its_shard_redone(cluster, die_marker, local_reference, tmp_path):
    from colonsim.run.generate import render_dataset
    from colonsim.simconfig import load_sim_config

    sets = [a for a in SMALL[SMALL.index("--quiet") + 1:] if a != "--set"]
    cfg = load_sim_config(None, None, ["output.size_px=32", *sets])
    out = tmp_path / "dying.h5"
    r = render_dataset(cfg, out, N, seed=5, workers=2, backend="ray", progress=False,
                       renderer="tests.colonsim.run.test_raybackend:DyingRenderer")
    assert r["rendered"] == N and die_marker.exists()  # an actor did die mid-shard
    assert_same(local_reference, out)


def test_backend_ray_without_ray_installed_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were absent
    capsys.readouterr()
    out = tmp_path / "x.h5"
    assert cli.main(["render", "--out", str(out), *SMALL, "--backend", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install colonsim[ray]" in err[0]
    assert not out.exists() and not parts_dir(out).exists()


def test_address_without_ray_backend_is_an_error(tmp_path, capsys):
    capsys.readouterr()
    assert cli.main(["render", "--out", str(tmp_path / "y.h5"), *SMALL, "--address", "head:6379"]) == 2
    assert "--backend ray" in capsys.readouterr().err


def test_ctrl_c_during_a_ray_render_is_one_line_exit_130_and_resume_gives_the_same_data(
        cluster, local_reference, tmp_path):
    """SIGINT to the driver's process group, as a terminal sends it, once some shards are on disk:
    the driver's one line, exit 130, the actors ended; then --resume completes the same file."""
    out = tmp_path / "interrupted.h5"
    argv = [sys.executable, "cli.py", "render", "--out", str(out), *SMALL, "--backend", "ray",
            "--address", cluster, "--workers", "2"]

    def default_sigint():   # a child inherits a blocked or ignored SIGINT from this process otherwise
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()

    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list(parts_dir(out).glob("shard_*.h5")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the render finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 10
    ours = [ln for ln in err.splitlines() if ln.startswith("colonsim:")]
    assert ours == ["colonsim: error: interrupted; what was written so far is kept (run again with --resume)"], err
    assert "Traceback" not in err
    r = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_same(local_reference, out)
