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


def test_ctrl_c_during_render_is_one_line_exit_130_and_resume_finishes(tmp_path):
    import signal
    import time

    out = tmp_path / "x.h5"
    args = [sys.executable, str(REPO / "cli.py"), "render", "--out", str(out), "--frames", "400", "--size", "32",
            "--workers", "1", "--set", "anatomy.max_length_mm=150", "--set", "output.shard_frames=4"]
    def default_sigint():
        # A child inherits a blocked or ignored SIGINT from this process, which other tests' libraries
        # may have left so (then the render never sees the interrupt): give it the default handling.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         preexec_fn=default_sigint)
    parts = out.with_name(out.name + ".parts")
    deadline = time.time() + 120
    while time.time() < deadline and not any(parts.glob("shard_*.h5")):
        time.sleep(0.1)  # interrupt once some work is on disk
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the render finished before the interrupt arrived")
    assert p.returncode == 130, err   # 128 + SIGINT, as a shell expects of an interrupted command
    # Besides the progress bar (drawn to stderr), exactly one line: the error.
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not ln.startswith("render:")]
    assert len(lines) == 1 and lines[0].startswith("colonsim: error: interrupted") and "Traceback" not in err, err
    assert "run again with --resume" in lines[0]   # render can resume, so the line says how
    kept = len(list(parts.glob("shard_*.h5")))
    assert kept >= 1
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    r = run("inspect", str(out))
    assert r.returncode == 0 and " ok, 400 frames" in r.stdout
