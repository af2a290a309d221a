"""The shared fixtures themselves: the tiny file is a valid ColonSim file, and the CLI runner reports
what the command line does."""
from __future__ import annotations

import numpy as np

from colonsim.data import h5io, schema


def test_tiny_h5_passes_the_validator_and_reads_back(tiny_h5):
    report = h5io.validate(tiny_h5)
    assert report["ok"] and report["n_frames"] == report["n_done"] == 8 and report["complete"]
    with h5io.open_file(tiny_h5) as f:
        assert f[schema.RGB].shape == (8, 32, 32, 3) and f[schema.RGB].dtype == np.uint8
        assert bool(f.attrs[schema.ATTR_COMPLETE])
        assert f[schema.DEPTH][0].max() > 10.0


def test_run_cli_gives_code_and_streams(run_cli, tiny_h5, tmp_path):
    r = run_cli("inspect", tiny_h5)
    assert r.code == 0 and "8" in r.out and r.err == ""
    r = run_cli("inspect", tmp_path / "missing.h5")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
