"""The command-line contract: help, version, subcommands, and bad input as one line + exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cli
from colonsim import __version__

REPO = Path(__file__).resolve().parents[1]
CONTRACT = ["mesh", "render", "inspect", "preview", "depth", "adapt", "experiment", "demo"]


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_version_and_help_list_every_contract_command():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"colonsim {__version__}"
    r = run("--help")
    assert r.returncode == 0
    for name in CONTRACT:
        assert f"    {name}" in r.stdout, name


@pytest.mark.parametrize("sub", [["depth", "train"], ["depth", "eval"], ["depth", "predict"],
                                 ["adapt", "train"], ["adapt", "apply"], ["mesh"], ["render"], ["preview"],
                                 ["experiment"]])
def test_every_subcommand_has_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*sub, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_command_and_missing_argument_are_one_line_exit_2():
    for args in (["frobnicate"], ["render"], ["experiment"]):
        r = run(*args)
        assert r.returncode == 2, args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_bad_config_key_names_it(tmp_path):
    r = run("render", "--out", str(tmp_path / "x.h5"), "--frames", "2", "--set", "light.no_such_key=1")
    assert r.returncode == 2
    assert "light.no_such_key" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_experiment_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsize_px: 8\n")
    r = run("experiment", "--config", str(bad), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "size_px" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
