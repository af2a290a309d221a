"""The shard files of a render in progress and their bookkeeping: the shard layout, the manifest
that a resume is checked against, and the merge of complete shards into the final file.

``OUT.parts/`` holds ``manifest.json`` (config, seed, frame count, mesh source, shard size) and
``shard_NNNNN.h5`` files, each complete or absent (see :mod:`colonsim.run.generate` for the protocol).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from colonsim.config import to_dict
from colonsim.data import h5io, outputs, schema
from colonsim.errors import ConfigError, DatasetError
from colonsim.version import __version__

MANIFEST = "manifest.json"


def parts_dir(out: str | Path) -> Path:
    """The folder of shards that stands for ``out`` while it is being rendered."""
    out = Path(out)
    return out.with_name(out.name + h5io.PARTS_SUFFIX)


def shard_path(parts: str | Path, s: int) -> Path:
    return Path(parts) / f"shard_{s:05d}.h5"


def shard_range(s: int, shard_frames: int, n_frames: int) -> range:
    return range(s * shard_frames, min((s + 1) * shard_frames, n_frames))



# ----------------------------------------------------------------------------- resume bookkeeping


def manifest(cfg, seed: int, n_frames: int, source: dict, shard_frames: int) -> dict:
    """What a resume must match: config, seed, frame count, mesh (not its path) and shard size."""
    return {"config": to_dict(cfg), "seed": seed, "n_frames": n_frames, "mesh": comparable(source),
            "shard_frames": shard_frames, "software_version": __version__}


def comparable(source: dict) -> dict:
    return {k: v for k, v in source.items() if k != "path"}  # a moved mesh file is the same mesh


def first_difference(a: Any, b: Any, key: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else k)
            if d:
                return d
        return None
    return None if a == b else f"{key}: {json.dumps(a)} in the file, {json.dumps(b)} now"


def check_same(old: dict, new: dict, what: Path) -> None:
    for key in ("seed", "n_frames", "config", "mesh"):  # the plainest difference first
        diff = first_difference(old.get(key), new[key], key)
        if diff:
            break
    if diff:
        raise ConfigError("", f"cannot resume {what}: it was made with other settings ({diff}); "
                          "rerun with the same settings, or use --overwrite")


def read_manifest(parts: Path) -> dict:
    try:
        data = json.loads((parts / MANIFEST).read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("shard_frames"), int):
        raise DatasetError(f"{parts} is not a ColonSim render in progress (no readable {MANIFEST}); "
                           "remove it or use --overwrite")
    return data


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    h5io.fsync_dir(path.parent)


def check_final(out: Path, expected: dict) -> None:
    """A complete OUT from an earlier run: made with the settings of the manifest ``expected`` and
    valid, or refuse."""
    with h5io.open_file(out) as f:
        attrs = h5io.read_attrs(f)
    old = {"config": attrs.get(schema.ATTR_CONFIG), "seed": attrs.get(schema.ATTR_SEED),
           "n_frames": attrs.get(schema.ATTR_N_FRAMES), "mesh": comparable(attrs.get(h5io.ATTR_MESH) or {})}
    check_same(old, expected, out)
    report = h5io.validate(out)
    if not report["ok"]:
        raise DatasetError(f"cannot resume {out}: {report['errors'][0]}")


def done_shards(parts: Path, n_shards: int, seed: int) -> set[int]:
    """Shards already on disk, each checked; deletes leftover temporary files. One listing of the
    folder, then one open per shard file found: linear in the shards, whatever their number."""
    with os.scandir(parts) as it:
        names = [e.name for e in it]
    done = set()
    for name in names:
        if name.endswith(".tmp"):
            (parts / name).unlink(missing_ok=True)
            continue
        m = _SHARD_NAME.fullmatch(name)
        if m is None or int(m.group(1)) >= n_shards:
            continue
        s = int(m.group(1))
        p = shard_path(parts, s)
        try:
            with h5io.open_file(p) as f:
                ok = f.attrs.get(schema.ATTR_SEED) == seed and bool(f.attrs.get(schema.ATTR_COMPLETE))
        except DatasetError as e:
            raise DatasetError(f"cannot resume: shard {p} is damaged ({e}); delete it and resume again") from None
        if not ok:
            raise DatasetError(f"cannot resume: shard {p} is foreign or incomplete; delete it and resume again")
        done.add(s)
    return done


_SHARD_NAME = re.compile(r"shard_(\d{5,})\.h5")

# ----------------------------------------------------------------------------- merging


class ShardMerger:
    """Joins complete shards into ``OUT.tmp`` by chunk copy as they arrive (the parent is otherwise
    idle while workers render), then syncs it and renames it to ``out``."""

    def __init__(self, parts: Path, out: Path, n_frames: int, shard_frames: int, attrs: dict):
        self.parts, self.out, self.n, self.shard_frames, self.attrs = parts, out, n_frames, shard_frames, attrs
        self.tmp = out.with_name(out.name + ".tmp")
        self.dst = None
        self.sync: h5io.BackgroundSync | None = None
        self.merged: set[int] = set()

    def add(self, s: int) -> None:
        with h5io.open_file(shard_path(self.parts, s)) as src:
            if self.dst is None:
                h, w = src[schema.RGB].shape[1:3]
                dtypes = {k: ds.dtype.name for k, ds in src[schema.PARAMS].items()}
                self.dst = h5io.create(self.tmp, self.n, h, w, param_dtypes=dtypes, **self.attrs)
                self.sync = h5io.BackgroundSync(self.dst)
            h5io.copy_frames(src, self.dst, s * self.shard_frames)
        self.merged.add(s)
        self.sync.kick()   # the merged frames go to disk now, not all in close()'s fsync

    def close(self) -> None:
        """Merge the shards not merged yet, finish the file and move it into place."""
        for s in range(math.ceil(self.n / self.shard_frames)):
            if s not in self.merged:
                self.add(s)
        self.sync.wait()
        h5io.finish(self.dst)
        self.dst.close()
        outputs.replace(self.tmp, self.out)   # an old file of that name survives until now

    def abort(self) -> None:
        if self.sync is not None:
            self.sync.wait()
        if self.dst is not None:
            self.dst.close()
        self.tmp.unlink(missing_ok=True)
