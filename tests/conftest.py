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
