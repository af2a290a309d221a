"""Reading and checking ColonSim HDF5 files (:mod:`colonsim.data.schema`): open, the header check
that every reader makes (:func:`open_checked`), the full validation of ``inspect``
(:func:`validate`) and the read of every chunk of ``inspect --verify`` (:func:`verify`).

:mod:`colonsim.data.h5io` (the writer) re-exports these names, so that ``h5io.open_file`` and
``h5io.validate`` keep working.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from colonsim.data import schema
from colonsim.errors import DatasetError

try:  # registers the blosc and zstd filters with HDF5
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - hdf5plugin is a dependency; gzip keeps files readable
    hdf5plugin = None

IMAGE_FIELDS = (schema.RGB, schema.DEPTH, schema.MASK)
SMALL_FIELDS = (schema.POSE, schema.INTRINSICS)
ATTR_MESH = "mesh"                  # JSON: where the colon meshes came from (procedural seeds or a file)
PARTS_SUFFIX = ".parts"             # OUT.h5.parts/: the shards of OUT.h5 while it is being rendered


# ----------------------------------------------------------------------------- reading


def open_file(path: str | Path) -> h5py.File:
    """Open a ColonSim file for reading; DatasetError if it is missing, unreadable or foreign."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"dataset not found: {p}")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        msg = str(e).split(";")[0]
        raise DatasetError(f"{p} is not a readable HDF5 file (corrupt or truncated: {msg})") from None
    if f.attrs.get(schema.ATTR_SOFTWARE) != schema.SOFTWARE:
        f.close()
        raise DatasetError(f"{p} is not a ColonSim dataset (attribute '{schema.ATTR_SOFTWARE}' is not "
                           f"'{schema.SOFTWARE}')")
    return f


def header_errors(f: h5py.File) -> list[str]:
    """What makes an open file unreadable as schema 1, from its header alone (no chunk is read):
    the ``rgb`` dataset, the schema version, units and depth kind, and the image datasets' dtypes
    and shapes. The check every reader makes (:func:`open_checked`); :func:`validate` adds the rest."""
    if schema.RGB not in f:
        return [f"not a ColonSim dataset (no '{schema.RGB}' dataset)"]
    errors = []
    version = f.attrs.get(schema.ATTR_SCHEMA_VERSION)
    if version is None:
        errors.append(f"root attribute '{schema.ATTR_SCHEMA_VERSION}' is missing")
    elif isinstance(version, (bytes, str)) or version != schema.SCHEMA_VERSION:
        errors.append(f"schema_version is {_plain(version)!r}; this reader knows {schema.SCHEMA_VERSION}")
    for key, want in ((schema.ATTR_UNITS, schema.UNITS), (schema.ATTR_DEPTH_KIND, schema.DEPTH_KIND)):
        got = _plain(f.attrs.get(key, want))
        if got != want:
            errors.append(f"root attribute '{key}' is {got!r}; expected {want!r}")
    rgb = f[schema.RGB]
    if not isinstance(rgb, h5py.Dataset) or rgb.ndim != 4 or rgb.shape[3] != 3 or rgb.dtype != np.uint8:
        errors.append(f"dataset '{schema.RGB}' must be (N, H, W, 3) uint8, not "
                      f"{getattr(rgb, 'shape', '?')} {getattr(rgb, 'dtype', '?')}")
        return errors
    if schema.DEPTH in f:
        d = f[schema.DEPTH]
        if not isinstance(d, h5py.Dataset) or d.shape != rgb.shape[:3] or not schema.check_dtype(schema.DEPTH, d.dtype):
            errors.append(f"dataset '{schema.DEPTH}' must be {rgb.shape[:3]} float16/float32 to match "
                          f"'{schema.RGB}', not {getattr(d, 'shape', '?')} {getattr(d, 'dtype', '?')}")
    return errors


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def open_checked(path: str | Path) -> h5py.File:
    """Open a ColonSim file for reading after the header check that every reader makes
    (:func:`header_errors`: ``schema_version`` 99 is refused here as in ``inspect``); DatasetError
    naming the file and the first problem otherwise. Chunks are checked as they are read when the
    file has checksums (see :func:`verify` to check them all)."""
    f = open_file(path)
    try:
        errors = header_errors(f)
    except BaseException:
        f.close()
        raise
    if errors:
        f.close()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DatasetError(f"{path}: {errors[0]}{more}")
    return f


def read_attrs(f: h5py.File) -> dict[str, Any]:
    """Root attributes as plain Python values (``config``, ``camera`` and ``mesh`` parsed from JSON)."""
    out = {}
    for k, v in f.attrs.items():
        if isinstance(v, np.generic):
            v = v.item()
        if k in (schema.ATTR_CONFIG, schema.ATTR_CAMERA, ATTR_MESH) and isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def read_frame(f: h5py.File, i: int) -> dict[str, Any]:
    """Frame ``i`` in file units: rgb (H, W, 3) uint8, depth (H, W) float32 mm, mask (H, W) uint8,
    pose (4, 4) float32, intrinsics (3, 3) float32, params {name: float | int}; and each optional
    dataset the file has (:func:`optional_outputs`), as stored."""
    mask = f[schema.MASK]
    out = {
        schema.RGB: f[schema.RGB][i], schema.DEPTH: f[schema.DEPTH][i].astype(np.float32),
        schema.MASK: mask[()] if mask.ndim == 2 else mask[i], schema.POSE: f[schema.POSE][i],
        schema.INTRINSICS: f[schema.INTRINSICS][i],
        schema.PARAMS: {k: f[schema.PARAMS][k][i].item() for k in f[schema.PARAMS]},
    }
    for name in optional_outputs(f):
        out[name] = f[name][i]
    return out


def optional_outputs(f: h5py.File) -> tuple[str, ...]:
    """The optional per-frame datasets an open file has (``normals``, ``flow``, ``occlusion``,
    ``flow_valid``, ``polyp_mask``; see :data:`schema.OPTIONAL_OUTPUTS`): a file without them is as valid."""
    return tuple(name for name in schema.OPTIONAL_OUTPUTS if name in f)


# ----------------------------------------------------------------------------- validation

N_DECODE = 16  # frames decoded by validate(), evenly spaced (every chunk's extent is checked)


def validate(path: str | Path) -> dict[str, Any]:
    """Check a file against the schema; returns a report dict (``ok``, ``errors``, and a summary).

    Raises DatasetError only when the file cannot be opened as a ColonSim dataset at all. Every
    chunk's byte extent is checked against the file size (a cut-short file fails), and up to
    :data:`N_DECODE` frames are decoded and checked (depth finite and >= 0, mask in {0, 1}).
    """
    p = Path(path)
    parts = p.with_name(p.name + PARTS_SUFFIX)
    if not p.exists() and parts.is_dir():
        n = len(list(parts.glob("shard_*.h5")))
        raise DatasetError(f"{p} is not finished: {n} shard(s) are in {parts}; finish it with "
                           "'colonsim render --resume' and the same settings")
    errors: list[str] = []
    with open_file(p) as f:
        attrs = read_attrs(f)
        for key in (schema.ATTR_SCHEMA_VERSION, schema.ATTR_UNITS, schema.ATTR_DEPTH_KIND,
                    schema.ATTR_SOFTWARE_VERSION, schema.ATTR_CONFIG, schema.ATTR_SEED,
                    schema.ATTR_N_FRAMES, schema.ATTR_HEIGHT, schema.ATTR_WIDTH, schema.ATTR_COMPLETE,
                    schema.ATTR_CAMERA):
            if key not in attrs:
                errors.append(f"root attribute '{key}' is missing")
        errors.extend(header_errors(f))   # the check every reader makes, first
        if errors:
            return _report(p, attrs, {}, [], errors, 0)
        if not isinstance(attrs[schema.ATTR_CONFIG], dict):
            errors.append("root attribute 'config' is not a JSON object")
        n, h, w = (int(attrs[k]) for k in (schema.ATTR_N_FRAMES, schema.ATTR_HEIGHT, schema.ATTR_WIDTH))
        fields = {}
        size = p.stat().st_size
        for name, field in schema.FIELDS.items():
            if name not in f:
                if field.required:
                    errors.append(f"dataset '{name}' is missing")
                continue
            ds = f[name]
            fields[name] = {"dtype": ds.dtype.name, "shape": list(ds.shape), "compression":
                            _filter_name(ds), "checksum": bool(ds.fletcher32)}
            want = field.shape(n, h, w)
            if name == schema.MASK and ds.shape == want[1:]:
                pass
            elif ds.shape != want:
                errors.append(f"dataset '{name}' has shape {ds.shape}; expected {want}")
            if not schema.check_dtype(name, ds.dtype):
                errors.append(f"dataset '{name}' has dtype {ds.dtype}; allowed {field.dtypes}")
            if name in IMAGE_FIELDS and ds.chunks is not None and ds.ndim == len(want) and ds.chunks[0] != 1:
                errors.append(f"dataset '{name}' has chunks {ds.chunks}; expected one frame per chunk")
            errors.extend(_check_extent(name, ds, size))
        params = sorted(f[schema.PARAMS]) if schema.PARAMS in f else []
        if schema.PARAMS not in f:
            errors.append(f"group '{schema.PARAMS}' is missing")
        for k in params:
            ds = f[schema.PARAMS][k]
            if ds.shape != (n,) or not schema.check_dtype(f"{schema.PARAMS}/{k}", ds.dtype):
                errors.append(f"params/{k} has shape {ds.shape} dtype {ds.dtype}; expected ({n},) "
                              f"{schema.PARAM_DTYPES}")
        n_done = 0
        if errors:
            return _report(p, attrs, fields, params, errors, n_done)
        try:
            done = f[schema.DONE][()]
            n_done = int(np.count_nonzero(done == 1))
            if n_done < n:
                errors.append(f"incomplete: {n_done} of {n} frames are written (resume with "
                              f"'colonsim render --resume')")
            elif not attrs[schema.ATTR_COMPLETE]:
                errors.append("every frame is written but the file was not closed cleanly ('complete' is false)")
            stats = _check_frames(f, np.flatnonzero(done == 1), errors)
        except (OSError, ValueError, RuntimeError) as e:
            errors.append(f"data cannot be read ({str(e).split(';')[0]})")
            stats = {}
    report = _report(p, attrs, fields, params, errors, n_done)
    report.update(stats)
    return report


def chunk_filters(ds: h5py.Dataset) -> list[tuple]:
    """The filter pipeline of a dataset (id, flags, options of each): equal pipelines can share
    compressed chunk bytes."""
    plist = ds.id.get_create_plist()
    return [plist.get_filter(k)[:3] for k in range(plist.get_nfilters())]


def _filter_name(ds: h5py.Dataset) -> str:
    plist = ds.id.get_create_plist()
    names = [plist.get_filter(k)[3].decode(errors="replace") for k in range(plist.get_nfilters())]
    names = [x for x in names if x not in ("shuffle", "fletcher32")]
    return ",".join(names) or "none"


def has_checksums(f: h5py.File) -> bool:
    """True if the image datasets of an open file carry Fletcher-32 checksums."""
    return all(name in f and f[name].fletcher32 for name in (schema.RGB, schema.DEPTH))


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    out = []
    f.visititems(lambda name, obj: out.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


def verify(path: str | Path) -> dict[str, Any]:
    """Read every chunk of every dataset of a ColonSim file, so that HDF5 checks each chunk's
    Fletcher-32 checksum (files written with ``output.checksum``) and decompresses it; returns
    ``{"path", "checksums", "chunks", "errors"}``, errors naming the dataset and the frame (image
    datasets) or element range of each chunk that fails."""
    errors: list[str] = []
    chunks = 0
    with open_checked(path) as f:
        checksums = has_checksums(f)
        for name, ds in _datasets(f):
            if ds.chunks is None:
                try:
                    ds[()]
                except (OSError, ValueError, RuntimeError) as e:
                    errors.append(f"dataset '{name}' cannot be read ({_h5_reason(e, ds)})")
                chunks += 1
                continue
            step = ds.chunks[0]
            for lo in range(0, ds.shape[0], step):
                chunks += 1
                try:
                    ds[lo:lo + step]
                except (OSError, ValueError, RuntimeError) as e:
                    where = f"frame {lo}" if step == 1 else f"elements {lo}-{min(lo + step, ds.shape[0]) - 1}"
                    errors.append(f"dataset '{name}' {where} is corrupt ({_h5_reason(e, ds)})")
    return {"path": str(path), "checksums": checksums, "chunks": chunks, "errors": errors}


def _h5_reason(e: BaseException, ds: h5py.Dataset | None = None) -> str:
    text = str(e)
    if "fletcher32" in text.lower() or "checksum" in text.lower() or (
            ds is not None and ds.fletcher32 and "filter returned failure" in text):
        return "its checksum does not match: the chunk's bytes on disk are damaged"
    return text.split(";")[0].strip() or type(e).__name__


def _check_extent(name: str, ds: h5py.Dataset, file_size: int) -> list[str]:
    """Errors if a chunk of ``ds`` lies beyond the end of the file (a cut-short file)."""
    if ds.chunks is None:
        off = ds.id.get_offset()
        end = (off or 0) + ds.id.get_storage_size()
        return [] if end <= file_size else [f"dataset '{name}' extends beyond the end of the file"]
    end = 0

    def visit(info):
        nonlocal end
        end = max(end, info.byte_offset + info.size)
    if hasattr(ds.id, "chunk_iter"):  # HDF5 >= 1.12.3: one pass over the chunk index
        ds.id.chunk_iter(visit)
    else:
        for k in range(ds.id.get_num_chunks()):
            visit(ds.id.get_chunk_info(k))
    return [] if end <= file_size else [f"dataset '{name}' has chunks beyond the end of the file "
                                        f"({end} > {file_size} bytes): the file was cut short"]


def _check_frames(f: h5py.File, done: np.ndarray, errors: list[str]) -> dict[str, Any]:
    """Decode up to N_DECODE done frames; append errors; return depth statistics (mm)."""
    if len(done) == 0:
        return {}
    pick = done[np.unique(np.linspace(0, len(done) - 1, min(N_DECODE, len(done))).astype(int))]
    lo, hi, valid = np.inf, 0.0, []
    for i in pick:
        try:
            fr = read_frame(f, int(i))
        except (OSError, ValueError, RuntimeError) as e:
            errors.append(_frame_error(f, int(i), e))
            continue
        d = fr[schema.DEPTH]
        if not np.all(np.isfinite(d)) or np.any(d < 0):
            errors.append(f"frame {i}: depth has NaN, inf or negative values")
        if np.any(fr[schema.MASK] > 1):
            errors.append(f"frame {i}: mask has values other than 0 and 1")
        if not np.all(np.isfinite(fr[schema.POSE])):
            errors.append(f"frame {i}: pose is not finite")
        v = d[d > 0]
        valid.append(v.size / d.size)
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    return {"depth_min_mm": None if lo == np.inf else lo, "depth_max_mm": hi,
            "depth_valid_fraction": float(np.mean(valid)), "frames_decoded": len(pick)}


def _frame_error(f: h5py.File, i: int, e: BaseException) -> str:
    """The error of a frame that cannot be read, naming the dataset whose chunk fails."""
    for name in IMAGE_FIELDS + SMALL_FIELDS:
        ds = f.get(name)
        if ds is None or ds.ndim == 0:
            continue
        try:
            ds[i if ds.shape[0] > i and not (name == schema.MASK and ds.ndim == 2) else 0]
        except (OSError, ValueError, RuntimeError) as e2:
            return f"dataset '{name}' frame {i} is corrupt ({_h5_reason(e2, ds)})"
    return f"frame {i} cannot be read ({_h5_reason(e)})"


def _report(p: Path, attrs: dict, fields: dict, params: list, errors: list, n_done: int) -> dict:
    cfg = attrs.get(schema.ATTR_CONFIG)
    return {
        "path": str(p), "ok": not errors, "errors": errors, "size_bytes": p.stat().st_size,
        "n_frames": attrs.get(schema.ATTR_N_FRAMES), "n_done": n_done,
        "height": attrs.get(schema.ATTR_HEIGHT), "width": attrs.get(schema.ATTR_WIDTH),
        "seed": attrs.get(schema.ATTR_SEED), "complete": attrs.get(schema.ATTR_COMPLETE),
        "software_version": attrs.get(schema.ATTR_SOFTWARE_VERSION),
        "style": cfg.get("style") if isinstance(cfg, dict) else None,
        "fields": fields, "params": params, "checksums": bool(fields) and all(
            v.get("checksum") for k, v in fields.items() if k in (schema.RGB, schema.DEPTH)),
    }
