"""The HDF5 writer of the ColonSim schema (:mod:`colonsim.data.schema`); the reader and the validator
are in :mod:`colonsim.data.h5read`, and their names are re-exported here (``h5io.validate``).

A file holds N frames of one size. Image datasets (``rgb``, ``depth``, ``mask``) are chunked one
frame per chunk and compressed (see :mod:`colonsim.data.output`); the small per-frame arrays (``pose``,
``intrinsics``, ``params/*``, ``done``) are stored uncompressed in chunks of many frames, since a
chunk of 64 bytes per frame would cost more in index than in data.

The same layout serves the shard files that workers write during rendering and the final merged
file (see :mod:`colonsim.run.generate`); :func:`copy_frames` moves compressed chunks between them
without decoding them.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from colonsim.data import schema
from colonsim.data.h5read import (  # noqa: F401  the reading half, re-exported (h5io.open_file, h5io.validate)
    ATTR_MESH,
    IMAGE_FIELDS,
    N_DECODE,
    PARTS_SUFFIX,
    SMALL_FIELDS,
    chunk_filters,
    has_checksums,
    header_errors,
    open_checked,
    open_file,
    read_attrs,
    read_frame,
    validate,
    verify,
)
from colonsim.errors import DatasetError
from colonsim.version import __version__

try:  # registers the blosc and zstd filters with HDF5
    import hdf5plugin
except ImportError:  # pragma: no cover - hdf5plugin is a dependency; gzip keeps files readable
    hdf5plugin = None

log = logging.getLogger(__name__)

SMALL_CHUNK = 4096                  # frames per chunk of the small per-frame datasets
ATTR_FRAME_OFFSET = "frame_offset"  # in a shard file: the global index of its first frame


def compression_kwargs(name: str, level: int) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords for a compression name of :data:`output.COMPRESSIONS`."""
    if name in ("blosc-lz4", "blosc-zstd", "zstd") and hdf5plugin is None:
        log.warning("hdf5plugin is not installed: compressing with gzip instead of %s", name)
        name = "gzip"
    if name == "blosc-lz4":
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if name == "blosc-zstd":
        return dict(hdf5plugin.Blosc(cname="zstd", clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if name == "zstd":
        return dict(hdf5plugin.Zstd(clevel=level))
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def create(path: str | Path, n_frames: int, height: int, width: int, *, depth_dtype: str,
           compression: str, compression_level: int, config_json: str, camera_json: str,
           seed: int, mesh_json: str, param_dtypes: Mapping[str, str],
           frame_offset: int | None = None, chunk_cache: bool = True, checksum: bool = False,
           extras: tuple[str, ...] = ()) -> h5py.File:
    """Create a file for ``n_frames`` frames with every dataset of the schema, open for writing.

    ``param_dtypes`` maps each per-frame parameter name to "float32" or "int32". ``done`` starts at
    0 and ``complete`` at False; :class:`FrameWriter` and :func:`finish` set them.
    ``chunk_cache=False`` suits a file written once, frame by frame (a shard): each image chunk is
    then written whole and at once, with no copy into HDF5's chunk cache (35 ms per 100 frames of
    256 px at close). ``checksum``: a Fletcher-32 checksum on every chunk of every dataset, checked
    by HDF5 on each read, so that a damaged chunk fails to read instead of reading as other values.
    ``extras``: optional image datasets of :data:`schema.OPTIONAL_OUTPUTS` to create as well
    (``normals``, ``flow``, ``occlusion``, ``flow_valid``), chunked and compressed like ``rgb``.
    """
    # The HDF5 1.10 file format: readable by any HDF5 since 2017, unlike "latest" (the format of
    # whatever library writes it), and it allows attributes over 64 kB (the config JSON).
    f = h5py.File(path, "w", libver=("v110", "v110"), **({} if chunk_cache else {"rdcc_nbytes": 0}))
    try:
        attrs = {
            schema.ATTR_SCHEMA_VERSION: schema.SCHEMA_VERSION, schema.ATTR_UNITS: schema.UNITS,
            schema.ATTR_DEPTH_KIND: schema.DEPTH_KIND, schema.ATTR_SOFTWARE: schema.SOFTWARE,
            schema.ATTR_SOFTWARE_VERSION: __version__, schema.ATTR_CONFIG: config_json,
            schema.ATTR_SEED: int(seed), schema.ATTR_N_FRAMES: int(n_frames),
            schema.ATTR_HEIGHT: int(height), schema.ATTR_WIDTH: int(width),
            schema.ATTR_COMPLETE: False, schema.ATTR_CAMERA: camera_json, ATTR_MESH: mesh_json,
        }
        if frame_offset is not None:
            attrs[ATTR_FRAME_OFFSET] = int(frame_offset)
        f.attrs.update(attrs)
        comp = compression_kwargs(compression, compression_level)
        dtypes = {schema.RGB: "uint8", schema.DEPTH: depth_dtype, schema.MASK: "uint8"}
        for name in extras:
            if name not in schema.OPTIONAL_OUTPUTS:
                raise DatasetError(f"'{name}' is not an optional output; known: {sorted(schema.OPTIONAL_OUTPUTS)}")
            dtypes[name] = schema.OPTIONAL_OUTPUTS[name]
        for name in IMAGE_FIELDS + tuple(extras):
            shape = schema.FIELDS[name].shape(n_frames, height, width)
            f.create_dataset(name, shape=shape, dtype=dtypes[name], chunks=(1,) + shape[1:],
                             fletcher32=checksum, **comp)
        small = min(n_frames, SMALL_CHUNK)
        for name in SMALL_FIELDS:
            shape = schema.FIELDS[name].shape(n_frames, height, width)
            f.create_dataset(name, shape=shape, dtype="float32", chunks=(small,) + shape[1:],
                             fletcher32=checksum)
        f.create_dataset(schema.DONE, shape=(n_frames,), dtype="uint8", chunks=(small,), fillvalue=0,
                         fletcher32=checksum)
        grp = f.create_group(schema.PARAMS)
        for name, dt in sorted(param_dtypes.items()):
            if dt not in schema.PARAM_DTYPES:
                raise DatasetError(f"parameter '{name}' has dtype {dt}; allowed: {schema.PARAM_DTYPES}")
            grp.create_dataset(name, shape=(n_frames,), dtype=dt, chunks=(small,), fletcher32=checksum)
    except BaseException:
        f.close()
        raise
    return f


def param_dtypes(params: Mapping[str, Any]) -> dict[str, str]:
    """On-disk dtype of each per-frame parameter: int32 for integers, float32 otherwise."""
    return {k: "int32" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else "float32"
            for k, v in params.items()}


class FrameWriter:
    """Writes frames into a file made by :func:`create`.

    Image datasets are written (and compressed) frame by frame. The small per-frame arrays (pose,
    intrinsics, params, done) are kept in memory and written together by :meth:`flush`: one h5py
    call per dataset instead of one per frame and parameter (35 parameters cost 15 ms a frame
    when written one by one). ``done`` is only ever set after the frame's data, so a crash between
    flushes leaves those frames marked not done, never half written.
    """

    def __init__(self, f: h5py.File):
        self.f = f
        self.images = {name: f[name] for name in IMAGE_FIELDS}
        self.extras = {name: f[name] for name in schema.OPTIONAL_OUTPUTS if name in f}
        n = f[schema.DONE].shape[0]
        self.small = {name: np.zeros(f[name].shape, f[name].dtype) for name in SMALL_FIELDS}
        self.params = {k: np.zeros(n, ds.dtype) for k, ds in f[schema.PARAMS].items()}
        self.done = np.zeros(n, np.uint8)
        self.pending: list[int] = []

    def write(self, i: int, frame: Any, extras: Mapping[str, np.ndarray] | None = None) -> None:
        """Frame ``i``: a :class:`colonsim.render.scene.Frame` (rgb (H, W, 3) uint8, depth (H, W) float32 mm,
        mask (H, W) uint8, pose (4, 4), intrinsics (3, 3), params {name: number}); ``extras``: the
        optional datasets of the file ({name: array}), every one the file has."""
        if frame.params.keys() != self.params.keys():
            raise DatasetError(f"frame {i} has parameters {sorted(frame.params)}; the file has "
                               f"{sorted(self.params)}")
        extras = extras or {}
        if extras.keys() != self.extras.keys():
            raise DatasetError(f"frame {i} has optional outputs {sorted(extras)}; the file has {sorted(self.extras)}")
        for name, ds in self.extras.items():
            ds[i] = extras[name]
        self.images[schema.RGB][i] = frame.rgb
        self.images[schema.DEPTH][i] = frame.depth
        self.images[schema.MASK][i] = frame.mask
        self.small[schema.POSE][i] = frame.pose
        self.small[schema.INTRINSICS][i] = frame.intrinsics
        for k, v in frame.params.items():
            self.params[k][i] = v
        self.pending.append(i)

    def flush(self) -> None:
        """Write the buffered small arrays, then mark the frames written since the last flush done."""
        if not self.pending:
            return
        lo, hi = min(self.pending), max(self.pending) + 1
        for name, buf in self.small.items():
            self.f[name][lo:hi] = buf[lo:hi]
        for k, buf in self.params.items():
            self.f[schema.PARAMS][k][lo:hi] = buf[lo:hi]
        self.done[self.pending] = 1
        self.f[schema.DONE][lo:hi] = np.maximum(self.f[schema.DONE][lo:hi], self.done[lo:hi])
        self.pending = []

    def close(self) -> None:
        """Flush, mark the file complete if every frame is done, sync and close it."""
        self.flush()
        finish(self.f)
        self.f.close()


class BackgroundSync:
    """Writes a file's data to disk in a background thread while the file is still being written,
    so that the fsync that must precede its rename (:func:`finish`) finds little left to write:
    at the end of a 1000-frame render it took 0.84 s for the 332 MB merged file, the whole run's
    tail. ``kick()`` starts an ``fdatasync`` unless one is running; ``wait()`` waits for it, and
    must be called before the file is closed. The thread touches only the file descriptor, not
    h5py. A failure is left to the final fsync, which raises it."""

    def __init__(self, f: h5py.File):
        fd = f.id.get_vfd_handle()
        self.fd = fd if isinstance(fd, int) else None
        self.thread: threading.Thread | None = None

    def kick(self) -> None:
        if self.fd is None or (self.thread is not None and self.thread.is_alive()):
            return
        self.thread = threading.Thread(target=self._sync, name="colonsim-sync", daemon=True)
        self.thread.start()

    def _sync(self) -> None:
        try:
            os.fdatasync(self.fd)
        except OSError:
            pass

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None


def finish(f: h5py.File) -> None:
    """Mark a file complete if every frame is done, flush it and sync it to disk."""
    if bool(np.all(f[schema.DONE][()] == 1)):
        f.attrs[schema.ATTR_COMPLETE] = True
    f.flush()
    fd = f.id.get_vfd_handle()
    if isinstance(fd, int):
        os.fsync(fd)


def copy_frames(src: h5py.File, dst: h5py.File, start: int) -> None:
    """Copy every frame of ``src`` into ``dst`` at ``start``: image chunks as compressed bytes (the two
    files must share dtypes and filters), small arrays decoded."""
    n = src[schema.RGB].shape[0]
    extras = tuple(name for name in schema.OPTIONAL_OUTPUTS if name in dst)
    missing = [name for name in extras if name not in src]
    if missing:
        raise DatasetError(f"shard has no {', '.join(missing)} dataset(s) that the merged file has")
    for name in IMAGE_FIELDS + extras:
        if chunk_filters(src[name]) != chunk_filters(dst[name]):   # other compression or checksum: decode
            dst[name][start:start + n] = src[name][()]
            continue
        s, d = src[name].id, dst[name].id
        zeros = (0,) * (len(src[name].shape) - 1)
        for j in range(n):
            mask, data = s.read_direct_chunk((j,) + zeros)
            d.write_direct_chunk((start + j,) + zeros, data, mask)
    for name in SMALL_FIELDS + (schema.DONE,):
        dst[name][start:start + n] = src[name][()]
    if set(src[schema.PARAMS]) != set(dst[schema.PARAMS]):
        raise DatasetError(f"shard parameters {sorted(src[schema.PARAMS])} differ from "
                           f"{sorted(dst[schema.PARAMS])}")
    for k in src[schema.PARAMS]:
        dst[schema.PARAMS][k][start:start + n] = src[schema.PARAMS][k][()]


def fsync_dir(path: str | Path) -> None:
    """Sync a directory so that a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
