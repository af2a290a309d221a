"""Bad and adversarial input to the forward model's commands (issue 43): one line on stderr, exit 2,
nothing lost, nothing left behind; Ctrl-C: one line, exit 130, resumable; a start-up that does not
grow with the square of the shards; checksums that catch a damaged file."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  the blosc filter of rendered files
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--size", "32", "--set", "anatomy.max_length_mm=150"]   # a short colon: quick to build
BOMB = "\n".join([f"{chr(97 + k)}: &{chr(97 + k)} [{', '.join([f'*{chr(96 + k)}'] * 9)}]" for k in range(1, 9)])
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB + "\n"


def _files(d: Path) -> dict[str, str]:
    """Every file under ``d`` (hidden ones too) and a hash of its bytes."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def _setup(d: Path) -> None:
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01 binary \x80\x81")
    (d / "nul.yaml").write_bytes(b"light:\n  mu: 2\x00\n")
    (d / "bomb.yaml").write_text(BOMB)
    (d / "keep.ply").write_text("a mesh the user made\n")
    (d / "keep.centerline.npz").write_bytes(b"its centreline")
    (d / "keep.png").write_bytes(b"a picture the user made")
    (d / "folder").mkdir()
    import trimesh
    trimesh.Trimesh(vertices=[[0, 0, 0], [9, 0, 0], [0, 9, 0], [9, 9, 0]], faces=[[0, 1, 2], [1, 3, 2]],
                    process=False).export(d / "open.ply")


# (command, expected fragment of the one error line); {d} is the test's folder
CASES = [
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--config", "{d}/binary.yaml"], "is not UTF-8 text"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--config", "{d}/nul.yaml"], "is binary"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--config", "{d}/bomb.yaml"], "expands to more than"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--set", "light.mu=[&a [1,1,1,1,1,1,1,1,1,1], "
      "&b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], "
      "&e [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"], "expands to more than"),
    (["render", "--out", "", "--frames", "2"], "--out is empty"),
    (["render", "--out", "{d}/folder", "--frames", "2"], "is a folder"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--seed", "-1"], "--seed must be an integer from 0"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--seed", str(2**70)], "--seed must be an integer from 0"),
    (["render", "--out", "{d}/x.h5", "--frames", "1000000000000"], "needs at least"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--set", "light.mu=abc"],
     "light.mu': expected a number or a pair [lo, hi], got 'abc'"),
    (["render", "--out", "{d}/x.h5", "--frames", "2", "--mesh", "{d}/open.ply", *SMALL], "centerline.npz beside"),
    (["mesh", "--out", "{d}/keep.ply", "--set", "anatomy.max_length_mm=150"], "keep.ply exists; pass --overwrite"),
    (["mesh", "--out", "{d}/new.ply", "--seed", "-3"], "--seed must be an integer from 0"),
    (["preview", "--out", "{d}/keep.png", "--frames", "1", *SMALL], "keep.png exists; pass --overwrite"),
    (["experiment", "--config", "{d}/binary.yaml", "--out", "{d}/exp"], "is not UTF-8 text"),
    (["tune", "--ui", "--port", "99999"], "--port must be from 0 to 65535"),
    (["plan", "--frames", "8", "--address", "127.0.0.1:1"], "--address needs --backend ray"),
]


@pytest.mark.parametrize("args,fragment", CASES, ids=[" ".join(c[0][:1] + c[0][-2:])[:60] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, run_cli, args, fragment):
    _setup(tmp_path)
    before = _files(tmp_path)
    t0 = time.perf_counter()
    r = run_cli(*[a.format(d=tmp_path) for a in args])
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colonsim: error: ") and len(lines[0]) < 2200, r.err
    assert fragment in lines[0], lines[0]
    assert _files(tmp_path) == before   # nothing replaced, nothing left behind (no .parts, no lock)
    assert time.perf_counter() - t0 < 60


def test_plan_takes_backend_ray_not_ray(run_cli):
    r = run_cli("plan", "--frames", "8", "--ray")
    assert r.code == 2 and "unrecognized arguments: --ray" in r.err
    r = run_cli("plan", "--help")
    assert "--backend {local,ray}" in r.out


def test_every_reader_refuses_schema_version_99(tmp_path, tiny_h5):
    import colonsim
    from colonsim.errors import DatasetError

    bad = tmp_path / "v99.h5"
    shutil.copy(tiny_h5, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DatasetError, match="schema_version is 99"):
        colonsim.open_checked(bad)
    with pytest.raises(DatasetError, match="schema_version is 99"):
        colonsim.FrameDataset(bad)
    assert not colonsim.validate(bad)["ok"]
    colonsim.FrameDataset(tiny_h5)   # the good one still reads


# ----------------------------------------------------------------------------- the shared output rule


def test_staged_output_replaces_only_when_complete_and_never_deletes_others(tmp_path):
    import colonsim
    from colonsim.errors import InputError

    out = tmp_path / "keep.png"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="exists; pass --overwrite"):
        with colonsim.staged_output(out) as tmp:
            tmp.write_bytes(b"new")
    with pytest.raises(RuntimeError):   # a failure half way: the old output stays, no debris
        with colonsim.staged_output(out, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("bad input found late")
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
    with colonsim.staged_output(out, overwrite=True) as tmp:
        assert tmp.name == "keep.png" and tmp.parent != tmp_path   # beside, under the same name
        tmp.write_bytes(b"new")
        assert out.read_bytes() == b"old"   # not replaced before the new one is complete
    assert out.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "important.txt").write_text("the user's")
    (folder / "a.png").write_bytes(b"old a")
    with pytest.raises(InputError, match="holds files; pass --overwrite"):
        with colonsim.staged_output(folder, directory=True):
            pass
    with colonsim.staged_output(folder, overwrite=True, directory=True) as tmp:
        (tmp / "a.png").write_bytes(b"new a")
        (tmp / "b.png").write_bytes(b"new b")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "important.txt": b"the user's", "a.png": b"new a", "b.png": b"new b"}


def test_render_overwrite_with_a_bad_mesh_keeps_the_old_file(tmp_path):
    precious = tmp_path / "precious.h5"
    base = [sys.executable, str(REPO / "cli.py"), "render", "--frames", "2", "--workers", "1", "--quiet", *SMALL]
    r = subprocess.run(base + ["--out", str(precious)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(precious.read_bytes()).hexdigest()
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n\x00\x01")
    r = subprocess.run(base + ["--out", str(precious), "--overwrite", "--mesh", str(garbage)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "garbage.ply" in r.stderr, r.stderr
    assert hashlib.sha256(precious.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.ply", "precious.h5"]


def test_mesh_overwrite_replaces_the_mesh_and_its_centreline_together(tmp_path, run_cli):
    out = tmp_path / "keep.ply"
    out.write_text("old mesh")
    (tmp_path / "keep.centerline.npz").write_bytes(b"old centreline")
    r = run_cli("mesh", "--out", out, "--set", "anatomy.max_length_mm=150", "--overwrite")
    assert r.code == 0, r.err
    assert out.read_bytes()[:3] == b"ply" and np.load(tmp_path / "keep.centerline.npz")["points_mm"].shape[1] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.centerline.npz", "keep.ply"]


# ----------------------------------------------------------------------------- checksums


def test_checksums_are_on_and_inspect_verify_finds_a_damaged_chunk(tmp_path, run_cli):
    out = tmp_path / "x.h5"
    r = run_cli("render", "--out", out, "--frames", "4", "--workers", "1", "--quiet", "--size", "64",
                "--set", "anatomy.max_length_mm=150")
    assert r.code == 0, r.err
    with h5py.File(out, "r") as f:
        assert f["rgb"].fletcher32 and f["depth"].fletcher32 and f["pose"].fletcher32
        info = f["depth"].id.get_chunk_info(2)   # frame 2's depth chunk
    r = run_cli("inspect", out, "--verify")
    assert r.code == 0 and "checksums, " in r.out and "chunks verified" in r.out, r.out + r.err
    with open(out, "r+b") as fh:   # zero bytes inside the chunk, past its compression header
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\0" * min(4096, info.size // 3))
    r = run_cli("inspect", out, "--verify")
    assert r.code == 2, r.out
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "dataset 'depth' frame 2 is corrupt" in lines[0], r.err
    import colonsim
    with colonsim.open_checked(out) as f, pytest.raises(OSError):
        f["depth"][2]   # a reader (training) fails on it too, instead of reading other numbers


# ----------------------------------------------------------------------------- real frames


def test_frames_are_read_by_bytes_and_truncated_ones_are_warned_about(tmp_path):
    """A file name that is not UTF-8 crashed cv2.imread (exit 139); run in a child so that a crash
    fails this test instead of ending the test run."""
    import cv2

    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(0)
    ok, jpg = cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    jpg = jpg.tobytes()
    (d / os.fsdecode(b"bad\xffname.jpg")).write_bytes(jpg)
    (d / "cut1.jpg").write_bytes(jpg[: len(jpg) // 2])
    (d / "cut2.jpg").write_bytes(jpg[: len(jpg) // 2])
    vid = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(8):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    raw = vid.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(raw[: len(raw) * 4 // 10])
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING, format='%(message)s'); "
            "from colonsim.data.realdata import iter_frames, truncated_images; "
            "n = len(list(iter_frames(sys.argv[1]))); print('frames', n); print('truncated', len(truncated_images())); "
            "print('video', len(list(iter_frames(sys.argv[2]))))")
    r = subprocess.run([sys.executable, "-c", code, str(d), str(cut)], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "frames 3" in r.stdout and "truncated 2" in r.stdout, r.stdout
    warnings = [ln for ln in r.stderr.splitlines() if "truncated JPEG" in ln]
    assert len(warnings) == 1 and "cut1.jpg" in warnings[0], r.stderr   # once, naming the first
    assert "Premature end of JPEG" not in r.stderr
    n_video = int(r.stdout.split("video ")[1])
    assert 0 < n_video < 8 and f"declares 8 frames but only {n_video}" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- many workers, two renders


def test_workers_are_capped_at_the_shards(tmp_path, run_cli, caplog):
    r = run_cli("render", "--out", tmp_path / "x.h5", "--frames", "2", "--workers", "1000", "--quiet", "--json", *SMALL)
    assert r.code == 0, r.err
    import json
    assert json.loads(r.out)["workers"] == 2
    assert "--workers 1000 capped at 2, the number of shards" in caplog.text + r.err


def _popen(args, **kw):
    def default_sigint():   # a child may inherit an ignored SIGINT from the test runner
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
                            preexec_fn=default_sigint, **kw)


def _interrupt(p: subprocess.Popen, timeout: float = 5.0) -> tuple[float, str]:
    """SIGINT to the process group, as a terminal's Ctrl-C; returns (seconds to exit, stderr)."""
    t = time.perf_counter()
    os.killpg(p.pid, signal.SIGINT)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"no exit {timeout} s after Ctrl-C")
    return time.perf_counter() - t, err


def test_a_second_render_into_the_same_output_is_refused(tmp_path, run_cli):
    out = tmp_path / "x.h5"
    p = _popen(["render", "--out", out, "--frames", "100000", "--workers", "1", "--quiet", *SMALL])
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not out.with_name(out.name + ".parts").is_dir():
            time.sleep(0.05)
        r = run_cli("render", "--out", out, "--frames", "100000", "--workers", "1", "--quiet", "--resume", *SMALL)
        assert r.code == 2 and "is being written by another process" in r.err and len(r.err.splitlines()) == 1, r.err
    finally:
        _interrupt(p, timeout=30)


# ----------------------------------------------------------------------------- start-up and Ctrl-C


def _first_shard_seconds(p: subprocess.Popen, t0: float, limit: float = 60.0) -> float:
    """Seconds from ``t0`` until the render logs its first shard submission (-v)."""
    seen = threading.Event()

    def read():
        for line in p.stderr:
            if "first shard submitted" in line:
                seen.set()
                return
    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(limit):
        pytest.fail("no shard was submitted")
    return time.perf_counter() - t0


def test_a_million_frame_render_starts_within_5_s_and_resumes_as_fast(tmp_path):
    """Start-up is linear in the shards (it was quadratic: 128k frames took 57 s to the first shard)."""
    out = tmp_path / "m.h5"
    args = ["-v", "render", "--out", out, "--frames", "1000000", "--size", "8", "--workers", "1", "--quiet",
            "--set", "anatomy.max_length_mm=150"]
    for resume in ([], ["--resume"]):
        t0 = time.perf_counter()
        p = _popen(args + resume)
        try:
            took = _first_shard_seconds(p, t0)
        finally:
            _interrupt(p, timeout=30)
        assert took < 5.0, f"first shard after {took:.1f} s {resume}"
    assert (tmp_path / "m.h5.parts" / "manifest.json").is_file()


def _arrays_and_attrs(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": str(v) for k, v in f.attrs.items()})
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes())
                     if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.slow
def test_ctrl_c_at_ten_moments_is_one_line_exit_130_and_resume_gives_the_same_file(tmp_path):
    args = ["render", "--frames", "24", "--workers", "1", "--quiet", "--size", "32",
            "--set", "anatomy.max_length_mm=150", "--set", "output.shard_frames=4"]
    ref = tmp_path / "ref.h5"
    t0 = time.perf_counter()
    p = _popen(args + ["--out", ref])
    assert p.wait(timeout=300) == 0, p.stderr.read()
    whole = time.perf_counter() - t0
    want = _arrays_and_attrs(ref)
    interrupted = 0
    for k in range(10):
        out = tmp_path / f"k{k}.h5"
        p = _popen(args + ["--out", out])
        time.sleep(whole * (0.05 + 0.09 * k))   # from the imports to the last shards
        took, err = _interrupt(p)
        if p.returncode == 0:
            continue   # finished before the key arrived
        interrupted += 1
        lines = err.strip().splitlines()
        assert p.returncode == 130, err
        assert len(lines) == 1 and lines[0].startswith("colonsim: error: interrupted"), err
        assert took < 5.0
        r = subprocess.run([sys.executable, str(REPO / "cli.py"), *args, "--out", str(out), "--resume"],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr
        assert _arrays_and_attrs(out) == want, k
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"k{k}.")) == [f"k{k}.h5"]
    assert interrupted >= 5


def test_ctrl_c_during_preview_is_one_line_exit_130_and_leaves_no_file(tmp_path):
    """Exit 130 after one line is the CLI's, for every command; preview's render worker is stopped."""
    out = tmp_path / "grid.png"
    p = _popen(["preview", "--out", out, "--frames", "8", "--size", "64", "--set", "anatomy.max_length_mm=150"])
    time.sleep(2.5)
    took, err = _interrupt(p)
    if p.returncode == 0:
        pytest.skip("the preview finished before the interrupt arrived")
    assert p.returncode == 130 and err.strip() == "colonsim: error: interrupted; what was written so far is kept", err
    assert took < 5.0 and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- adapt/ and depth/ (issue 43)
# Their bad inputs: one line, exit 2, nothing lost; outputs by colonsim's staged_output rule; frames read
# by bytes (colonsim.decode_file); HDF5 through colonsim.open_checked; checkpoints read weights-only.


def _jpeg(rgb: np.ndarray) -> bytes:
    import cv2
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()


def _disc_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a lit disc on black, as a scope sees the colon."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    inside = (xx ** 2 + yy ** 2 < 0.45 ** 2)[..., None]
    return np.stack([(inside * rng.uniform(0.5, 1.0) * np.array([220, 140, 120])
                      * (1 - np.sqrt(xx ** 2 + yy ** 2))[..., None]).astype(np.uint8) for _ in range(n)])


@pytest.fixture(scope="module")
def ml(tmp_path_factory, tiny_h5) -> Path:
    """Inputs of adapt/ and depth/ commands: ColonSim files (good, schema_version 99, a NaN depth),
    folders of frames (good, 1x1, truncated JPEGs), and checkpoints (good, empty, invalid model args)."""
    import cv2
    import torch

    from adapt.checkpoint import save_refiner
    from adapt.config import load_adapt_config
    from adapt.networks import Refiner
    from colonsim.config import to_dict
    from depth import networks

    m = tmp_path_factory.mktemp("ml")
    shutil.copy(tiny_h5, m / "good.h5")
    shutil.copy(tiny_h5, m / "v99.h5")
    with h5py.File(m / "v99.h5", "r+") as f:
        f.attrs["schema_version"] = 99
    shutil.copy(tiny_h5, m / "nan.h5")
    with h5py.File(m / "nan.h5", "r+") as f:
        f["depth"][0, 16, 16] = np.nan
    rgb = _disc_frames(3, 64)
    for name in ("frames", "tiny", "trunc"):
        (m / name).mkdir()
    for i, frame in enumerate(rgb):
        (m / "frames" / f"{i}.jpg").write_bytes(_jpeg(frame))
    (m / "tiny" / "a.png").write_bytes(cv2.imencode(".png", np.full((1, 1, 3), 128, np.uint8))[1].tobytes())
    jpg = _jpeg(rgb[0])
    (m / "trunc" / "a.jpg").write_bytes(jpg)
    (m / "trunc" / "cut1.jpg").write_bytes(jpg[: len(jpg) // 2])
    (m / "trunc" / "cut2.jpg").write_bytes(jpg[: len(jpg) // 2])

    args = dict(base_width=4, levels=2, max_width=16, convs_per_level=1, norm="group", min_depth_mm=0.5,
                max_depth_mm=400.0, size_px=32)
    networks.save_checkpoint(m / "depth.pt", networks.build_model(args), args, config={},
                             intrinsics_norm=[0.29, 0.29, 0.5, 0.5])
    cfg = load_adapt_config(None, ["refiner.width=4", "refiner.blocks=1"])
    save_refiner(m / "refiner.pt", Refiner(**to_dict(cfg.refiner)), cfg, 0)
    (m / "empty.pt").write_bytes(b"")
    for name, key in (("depth", "base_width"), ("refiner", "width")):
        ck = torch.load(m / f"{name}.pt", weights_only=True)
        ck["model_args"][key] = -4
        torch.save(ck, m / f"bad_{name}.pt")
    return m


DEPTH_TRAIN = ["depth", "train", "--steps", "1", "--size", "32", "--set", "model.base_width=4",
               "--set", "model.levels=2", "--set", "train.batch=2"]
ADAPT_TRAIN = ["adapt", "train", "--real", "{m}/frames", "--size", "24", "--set", "refiner.width=4",
               "--set", "refiner.blocks=1", "--set", "discriminator.width=4", "--set", "data.batch_size=2"]
APPLY = ["adapt", "apply", "--model", "{m}/refiner.pt", "--input", "{m}/frames", "--out", "{d}/refined"]
PREDICT = ["depth", "predict", "--model", "{m}/depth.pt", "--input", "{m}/frames", "--out", "{d}/pred"]

# (command, expected fragment of the one error line); {m}: the inputs above, {d}: the test's folder
ML_CASES = [
    (["depth", "predict", "--model", "{m}/depth.pt", "--input", "{m}/frames", "--out", "{d}/nonempty"],
     "holds files; pass --overwrite"),
    (["depth", "export", "--model", "{d}/run/model.pt", "--out", "{d}/run/model.pt"], "is the --model checkpoint"),
    (["depth", "export", "--model", "{d}/run/model.pt", "--out", "{d}/run/model.pt", "--overwrite"],
     "is the --model checkpoint"),
    (["depth", "export", "--model", "{m}/depth.pt", "--out", "{d}/run/model.pt"], "exists; pass --overwrite"),
    ([*DEPTH_TRAIN, "--data", "{m}/v99.h5", "--out", "{d}/r"], "schema_version is 99"),
    ([*ADAPT_TRAIN, "--synthetic", "{m}/v99.h5", "--out", "{d}/r", "--steps", "1"], "schema_version is 99"),
    ([*DEPTH_TRAIN, "--data", "{m}/nan.h5", "--out", "{d}/r", "--set", "train.val_fraction=0"],
     "nan.h5 frame 0: depth holds 1 NaN"),
    (["depth", "eval", "--model", "{m}/depth.pt", "--data", "{m}/nan.h5"], "nan.h5 frame 0: depth holds 1 NaN"),
    ([*APPLY, "--batch-size", "-5"], "--batch-size must be a whole number of frames, at least 1; got -5"),
    ([*APPLY, "--batch-size", "0"], "--batch-size must be a whole number of frames, at least 1; got 0"),
    ([*PREDICT, "--ply", "--fov-deg", "-10"], "--fov-deg must be a field of view between 0 and 180"),
    ([*PREDICT, "--ply", "--fov-deg", "400"], "--fov-deg must be a field of view between 0 and 180"),
    ([*ADAPT_TRAIN, "--synthetic", "{m}/good.h5", "--out", "{d}/r", "--steps", "0"], "--steps must be an integer, at least 1"),
    (["depth", "predict", "--model", "{m}/empty.pt", "--input", "{m}/frames", "--out", "{d}/p"], "empty.pt is empty (0 bytes)"),
    (["depth", "export", "--model", "{m}/empty.pt", "--out", "{d}/x.pt"], "empty.pt is empty (0 bytes)"),
    (["adapt", "apply", "--model", "{m}/empty.pt", "--input", "{m}/frames", "--out", "{d}/p"], "empty.pt is empty (0 bytes)"),
    (["depth", "predict", "--model", "{m}/bad_depth.pt", "--input", "{m}/frames", "--out", "{d}/p"],
     "bad_depth.pt: its model_args do not build"),
    (["depth", "export", "--model", "{m}/bad_depth.pt", "--out", "{d}/x.pt"], "bad_depth.pt: its model_args do not build"),
    (["adapt", "apply", "--model", "{m}/bad_refiner.pt", "--input", "{m}/frames", "--out", "{d}/p"],
     "bad_refiner.pt: its model_args do not build"),
    (["adapt", "apply", "--model", "{m}/refiner.pt", "--input", "{m}/tiny", "--out", "{d}/p"],
     "frame a.png is 1x1 pixels; frames must be at least 8x8"),
    (["adapt", "score", "--real", "{m}/frames", "--refined", "{m}/frames", "--synthetic", "{m}/good.h5",
      "--size", "1"], "--size must be an integer from 8 to 1024"),
    (["adapt", "apply", "--model", "{m}/refiner.pt", "--input", "{m}/frames", "--out", ""], "--out is empty"),
    (["depth", "predict", "--model", "{m}/depth.pt", "--input", "{m}/frames", "--out", ""], "--out is empty"),
]


@pytest.mark.parametrize("args,fragment", ML_CASES, ids=[" ".join(c[0][:2] + c[0][-2:])[:60] for c in ML_CASES])
def test_adapt_and_depth_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, run_cli, ml, args, fragment):
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "important.txt").write_text("the user's")
    (tmp_path / "run").mkdir()
    shutil.copy(ml / "depth.pt", tmp_path / "run" / "model.pt")
    before, inputs = _files(tmp_path), _files(ml)
    r = run_cli(*[a.format(d=tmp_path, m=ml) for a in args])
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colonsim: error: ") and len(lines[0]) < 2200, r.err
    assert fragment in lines[0], lines[0]
    assert "weights_only" not in lines[0] and "Traceback" not in lines[0]
    assert _files(tmp_path) == before and _files(ml) == inputs   # nothing replaced, nothing left behind


def test_adapt_apply_overwrite_keeps_the_files_it_did_not_write(tmp_path, run_cli, ml):
    out = tmp_path / "refined"
    out.mkdir()
    (out / "important.txt").write_text("the user's")
    (out / "0.jpg").write_bytes(b"an earlier refined frame")
    r = run_cli("adapt", "apply", "--model", ml / "refiner.pt", "--input", ml / "frames", "--out", out, "--overwrite")
    assert r.code == 0, r.err
    assert (out / "important.txt").read_text() == "the user's"
    assert sorted(p.name for p in out.iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "important.txt"]
    assert (out / "0.jpg").read_bytes()[:2] == b"\xff\xd8"   # the frame of the same name is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refined"]   # no staging folder left


def test_depth_predict_overwrite_writes_into_a_folder_and_keeps_its_files(tmp_path, run_cli, ml):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "important.txt").write_text("the user's")
    r = run_cli("depth", "predict", "--model", ml / "depth.pt", "--input", ml / "frames", "--out", out, "--overwrite")
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["important.txt"] + [f"{i}.{e}" for i in range(3) for e in ("npy", "png")])


def _child(code: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash there fails the test instead of ending the run)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


RUN_COMMANDS = ("import sys, cli; "
                "sys.exit(max(cli.main(a.split('|')) for a in sys.argv[1:]))")


def test_adapt_and_depth_read_and_write_frames_by_bytes(tmp_path, ml):
    """A frame whose name is not UTF-8 crashed cv2.imread and cv2.imwrite (exit 139): apply, predict
    and eval (its 16-bit ground truth too) read and write it."""
    import cv2

    d = tmp_path / "frames"
    d.mkdir()
    (tmp_path / "depth").mkdir()   # ground truth in the sibling folder depth/ (depth.gt)
    bad = os.fsdecode(b"bad\xffname")
    (d / f"{bad}.jpg").write_bytes(_jpeg(_disc_frames(1, 32)[0]))
    (tmp_path / "depth" / f"{bad}.png").write_bytes(cv2.imencode(".png", np.full((32, 32), 30000, np.uint16))[1].tobytes())
    commands = [f"adapt|apply|--model|{ml}/refiner.pt|--input|{d}|--out|{tmp_path}/refined",
                f"depth|predict|--model|{ml}/depth.pt|--input|{d}|--out|{tmp_path}/pred",
                f"depth|eval|--model|{ml}/depth.pt|--data|{d}|--depth-scale|c3vd"]
    r = _child(RUN_COMMANDS, *commands)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert sorted(os.listdir(tmp_path / "refined")) == [f"{bad}.jpg"]
    assert sorted(os.listdir(tmp_path / "pred")) == [f"{bad}.npy", f"{bad}.png"]
    assert "1 frames, align none" in r.stdout


def test_truncated_jpegs_are_counted_in_the_summaries_and_named_once(tmp_path, ml):
    commands = [f"adapt|apply|--model|{ml}/refiner.pt|--input|{ml}/trunc|--out|{tmp_path}/refined",
                f"depth|predict|--model|{ml}/depth.pt|--input|{ml}/trunc|--out|{tmp_path}/pred"]
    r = _child(RUN_COMMANDS, *commands)
    assert r.returncode == 0, r.stderr
    assert "refined 3 frames" in r.stdout and "s; 2 truncated)" in r.stdout, r.stdout
    assert "predicted depth for 3 frames" in r.stdout and "(2 truncated)" in r.stdout, r.stdout
    warnings = [ln for ln in r.stderr.splitlines() if "truncated JPEG" in ln]
    assert len(warnings) == 1 and "cut1.jpg" in warnings[0], r.stderr
    assert "Premature end of JPEG" not in r.stderr


def test_adapt_train_says_up_front_that_pre_training_outnumbers_a_short_run(tmp_path, run_cli, ml, caplog):
    """The default schedule pre-trains for 50 + 100 steps before a 3-step trial run: the run says so
    before its first step, in one line with the settings that shorten it (pre-training is not cut,
    so that a short run extended by --resume stays exactly one run of its final length)."""
    import json

    args = [a.format(m=ml) for a in ADAPT_TRAIN] + ["--synthetic", ml / "good.h5", "--out", tmp_path / "r", "--json",
                                                    "--set", "schedule.pretrain_refiner_steps=2",
                                                    "--set", "schedule.pretrain_disc_steps=3"]
    r = run_cli(*args, "--steps", "1")
    assert r.code == 0, r.err
    assert json.loads(r.out)["schedule_steps"] == 6
    lines = [rec for rec in caplog.records if "pre-training steps come before" in rec.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "WARNING", caplog.text
    assert ("2 refiner and 3 discriminator pre-training steps come before the 1 adversarial step (5 of 6 steps); "
            "set schedule.pretrain_refiner_steps and schedule.pretrain_disc_steps") in lines[0].getMessage()
    assert "nan" not in r.out.lower()


def test_depth_train_resume_refuses_a_new_size(tmp_path, run_cli, ml):
    r = run_cli(*DEPTH_TRAIN, "--data", ml / "good.h5", "--out", tmp_path / "r")
    assert r.code == 0, r.err
    before = _files(tmp_path)
    r = run_cli("depth", "train", "--out", tmp_path / "r", "--resume", "--steps", "2", "--size", "64")
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and "'data.size_px'" in lines[0] and "has 32, not 64" in lines[0], r.err
    assert _files(tmp_path) == before
