"""benchmarks/adapt_disc_probe.py: a trained run's discriminators on frames they did not train on."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapt.train import train_refiner

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "adapt_disc_probe.py"


def test_probe_reports_each_set_and_the_swapped_borders(tmp_path, real_dir, synthetic_h5, tiny_cfg):
    """Four sets, two accuracies each (patch, frame-level head), and four swaps. Swapping a set's
    content into its own border changes nothing, so those two rows must read the head's own
    verdict on that set: a check on the swap's arithmetic."""
    cfg = dataclasses.replace(tiny_cfg, discriminator=dataclasses.replace(tiny_cfg.discriminator, global_head=True))
    work = tmp_path / "work"
    train_refiner(cfg, real_dir, synthetic_h5, work / "run", steps=3)
    shutil.copytree(real_dir, work / "real_train")
    shutil.copytree(real_dir, work / "real_heldout")
    r = subprocess.run([sys.executable, str(SCRIPT), "--work", str(work), "--synthetic", str(synthetic_h5),
                        "--unseen", str(synthetic_h5), "--batches", "3", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {m.group(1).strip(): [float(v) for v in m.group(2).split()]
            for m in re.finditer(r"^  (\S.*?\)|renders [a-z ]+?) +((?:[01]\.\d{3}\s*)+)$", r.stdout, re.M)}
    assert len(rows) == 4 and all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in rows.values()), r.stdout
    swaps = [float(line.split()[-1]) for line in r.stdout.splitlines() if line.strip().startswith("content of")]
    assert len(swaps) == 4 and all(0 <= s <= 1 for s in swaps), r.stdout
    heldout = rows["refined real_heldout (never seen)"][1]   # fraction called refined
    unseen = rows["renders never seen"][1]                   # fraction called a render
    assert swaps[0] == pytest.approx(1.0 - heldout) and swaps[3] == pytest.approx(unseen)


def test_probe_rejects_a_missing_folder_with_one_line(tmp_path, synthetic_h5):
    r = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path / "nothing"), "--synthetic",
                        str(synthetic_h5), "--unseen", str(synthetic_h5)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "nothing" in r.stderr
