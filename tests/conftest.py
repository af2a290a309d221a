"""Shared fixtures: seeding, the location of ../shared/data (skipped when absent), a tiny ColonSim HDF5
written through the project's own writer, and an in-process CLI runner."""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Keep tests from oversubscribing the 2 CI cores (torch and BLAS threads per process).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def seeded():
    """Seed every global generator a third-party library might use, so that tests are repeatable."""
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
        torch.manual_seed(0)
    except ImportError:
        pass
    yield 0


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


def write_frames_h5(path: Path, rgb: np.ndarray, depth: np.ndarray | None = None, mask: np.ndarray | None = None,
                    *, intrinsics: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None,
                    seed: int = 0, depth_dtype: str = "float32", config: dict | None = None) -> Path:
    """A complete schema-1 ColonSim file written through ColonSim's own writer (h5io.create and
    FrameWriter), as a render would write it.

    rgb (N, H, W, 3) uint8; depth (N, H, W) mm (zeros when None); mask (H, W) or (N, H, W) uint8
    (all ones when None); intrinsics (N, 3, 3) (a 90-degree pinhole when None); params {name: (N,)}.
    """
    from types import SimpleNamespace

    from colonsim.data import h5io

    n, h, w = rgb.shape[:3]
    depth = np.zeros((n, h, w), np.float32) if depth is None else depth
    mask = np.ones((h, w), np.uint8) if mask is None else mask
    masks = np.broadcast_to(mask, (n, h, w))
    if intrinsics is None:
        k = np.array([[w / 2, 0, w / 2], [0, h / 2, h / 2], [0, 0, 1]], np.float32)
        intrinsics = np.repeat(k[None], n, 0)
    params = {"frame_seed": np.arange(n, dtype=np.int32)} if params is None else params
    first = {k: v[0].item() for k, v in params.items()}
    f = h5io.create(path, n, h, w, depth_dtype=depth_dtype, compression="lzf", compression_level=0,
                    config_json=json.dumps(config or {"test": True}), camera_json="{}", seed=seed,
                    mesh_json=json.dumps({"kind": "test"}), param_dtypes=h5io.param_dtypes(first))
    writer = h5io.FrameWriter(f)
    for i in range(n):
        writer.write(i, SimpleNamespace(rgb=rgb[i], depth=depth[i], mask=masks[i], pose=np.eye(4, dtype=np.float32),
                                        intrinsics=intrinsics[i], params={k: v[i].item() for k, v in params.items()}))
    writer.close()
    return Path(path)


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
    """Eight 32-px frames of a shaded disc whose brightness falls with depth, written by ColonSim's writer."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 32 - 0.5
    mask = (xx ** 2 + yy ** 2 < 0.47 ** 2).astype(np.uint8)
    depth = np.stack([(10 + 40 * rng.uniform(0.5, 1.5) * np.sqrt(xx ** 2 + yy ** 2)) * mask for _ in range(8)])
    shade = np.clip(10 / np.maximum(depth, 1), 0, 1)[..., None] * np.array([230, 150, 140])
    rgb = (shade * mask[..., None]).astype(np.uint8)
    return write_frames_h5(tmp_path_factory.mktemp("tiny") / "tiny.h5", rgb, depth.astype(np.float32), mask)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``colonsim ARGS...`` in this process; returns code, stdout and stderr."""
    import cli

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:   # argparse: --help, or a usage error
            code = e.code if isinstance(e.code, int) else 2
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
    return run


# Tests that take more than about 4 s on 2 cores (measured with `pytest --durations=80`), by node id or
# module: `make test-fast` (-m "not slow") leaves them out, `make test` runs them. A renamed test that
# is listed here fails the collection (below), so the list cannot go stale silently.
SLOW_TESTS = (
    "tests/test_bad_input.py::test_ctrl_c_at_ten_moments_is_one_line_exit_130_and_resume_gives_the_same_file",
    "tests/test_bad_input.py::test_render_overwrite_with_a_bad_mesh_keeps_the_old_file",
    "tests/test_bad_input.py::test_a_million_frame_render_starts_within_5_s_and_resumes_as_fast",
    "tests/test_bad_input.py::test_workers_are_capped_at_the_shards",
    "tests/test_cli.py::test_ctrl_c_during_render_is_one_line_exit_130_and_resume_finishes",
    "tests/experiment/test_pipeline.py::test_toy_experiment_runs_caches_and_reports",
    "tests/depth/test_ddp.py",
    "tests/depth/test_commands.py::test_train_on_missing_or_corrupt_data_leaves_no_run_folder",
    "tests/training/test_distributed.py::test_launch_returns_rank_0_and_raises_a_ranks_error",
    "tests/adapt/test_ddp.py",
    "tests/adapt/test_train.py::test_fresh_critics_are_retrained_on_schedule_logged_and_resume_exactly",
    "tests/adapt/test_critics.py::test_fresh_critics_tell_the_domains_apart_learn_back_and_round_trip",
    "tests/adapt/eval/test_select.py",
    "tests/adapt/eval/test_score.py::test_separating_cues_name_the_property_that_differs",
    "tests/benchmarks/test_adapt_runs.py::test_adapt_quality_refuses_a_wrong_config_key_or_match_step_in_one_line_before_any_work",
    "tests/benchmarks/test_adapt_runs.py::test_adapt_quality_refuses_a_pick_or_fold_it_cannot_make_in_one_line",
    "tests/benchmarks/test_adapt_runs.py::test_adapt_quality_refuses_missing_renders_or_real_frames_in_one_line",
    "tests/colonsim/run/test_raybackend.py",
    "tests/colonsim/run/test_generate.py::test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_file",
    "tests/colonsim/run/test_generate.py::test_same_command_twice_and_any_worker_count_give_identical_frames",
    "tests/colonsim/render/test_trajectory.py::test_polyp_views_look_at_a_polyp_from_the_drawn_distance_inside_the_lumen",
    "tests/colonsim/render/test_scene.py::test_a_polyp_view_renders_the_polyp_apex_at_its_exact_depth",
    "tests/colonsim/tune/test_fit.py::test_tiny_fit_writes_a_config_that_render_loads",
    "tests/colonsim/tune/test_web.py",
    "tests/colonsim/data/test_flow.py::test_the_optional_outputs_do_not_depend_on_the_worker_count",
    "tests/adapt/eval/test_realism.py::test_two_draws_of_one_look_cannot_be_told_apart_and_another_look_can",
)


def _slow(nodeid: str) -> str | None:
    """The SLOW_TESTS entry that covers ``nodeid`` (its module, the test, or one of its parameters)."""
    for entry in SLOW_TESTS:
        if nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::"):
            return entry
    return None


def pytest_collection_modifyitems(config, items):
    used = set()
    for item in items:
        entry = _slow(item.nodeid)
        if entry:
            item.add_marker(pytest.mark.slow)
            used.add(entry)
    # A whole-suite collection must find every listed test (a rename would silently unmark it).
    if config.args in ([], ["tests"], [str(REPO / "tests")]) and not config.option.keyword:
        missing = [e for e in SLOW_TESTS if e not in used and (REPO / e.split("::")[0]).exists()]
        gone = [e for e in SLOW_TESTS if not (REPO / e.split("::")[0]).exists()]
        if missing or gone:
            raise pytest.UsageError(f"tests/conftest.py SLOW_TESTS lists tests that do not exist: {missing + gone}")
