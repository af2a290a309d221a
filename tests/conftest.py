"""Shared fixtures: a seeding fixture, and the location of ../shared/data (skipped when absent)."""
from __future__ import annotations

import os
import random
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
