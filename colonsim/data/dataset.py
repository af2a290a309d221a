"""A torch Dataset over ColonSim HDF5 files: the data contract that depth/ and adapt/ read.

This is the only colonsim module that imports torch. h5py handles are opened lazily, once per
DataLoader worker process (h5py handles must not cross a fork), and kept open for every item.

Inside networks, images are CHW float32 in [0, 1] (declared once, here): ``rgb`` (3, H, W);
``depth`` (1, H, W) mm, 0 where invalid; ``mask`` (1, H, W) 1 inside the image circle. The
optional outputs, when asked for in ``fields`` (the file must have them): ``normals`` (3, H, W),
``flow`` (2, H, W) px, ``occlusion``, ``flow_valid`` and ``polyp_mask`` (1, H, W) 0/1.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import hdf5plugin  # noqa: F401  registers the blosc and zstd filters that ColonSim files are written with
import numpy as np
import torch
from torch.utils.data import Dataset

from colonsim.data import schema
from colonsim.data.h5read import open_checked  # noqa: F401  the check of every reader (adapt imports it here)
from colonsim.errors import DatasetError


def complete_indices(f: h5py.File) -> np.ndarray:
    """Indices of the frames of an open file that are fully written."""
    if schema.DONE in f:
        return np.flatnonzero(f[schema.DONE][()] == 1)
    return np.arange(f[schema.RGB].shape[0])


class FrameDataset(Dataset):
    """Frames of one or more ColonSim HDF5 files, as tensors.

    Args:
        paths: one file or several (their frames are concatenated in order).
        fields: which of ``rgb``, ``depth``, ``mask`` (and the optional ``normals``, ``flow``,
            ``occlusion``, ``flow_valid``, ``polyp_mask``) to return.
        indices: optional subset of global frame indices (after concatenation), e.g. a train split.
    Items are dicts of tensors (see module doc) plus ``index`` (int, global frame index).
    """

    def __init__(self, paths: str | Path | Sequence[str | Path],
                 fields: Sequence[str] = (schema.RGB, schema.DEPTH, schema.MASK),
                 indices: Sequence[int] | None = None):
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        self.fields = tuple(fields)
        entries = []  # (file number, local index)
        self.frames_per_file: list[int] = []  # complete frames of each file, before ``indices``
        for k, p in enumerate(self.paths):
            with open_checked(p) as f:
                for name in self.fields:
                    if name not in f:
                        raise DatasetError(f"{p} has no '{name}' dataset")
                done = complete_indices(f)
                entries.extend((k, int(i)) for i in done)
                self.frames_per_file.append(len(done))
        if not entries:
            raise DatasetError(f"no complete frames in {', '.join(map(str, self.paths))}")
        self._entries = np.asarray(entries, dtype=np.int64)
        if indices is not None:
            self._entries = self._entries[np.asarray(indices, dtype=np.int64)]
        self._files: dict[int, h5py.File] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self._entries)

    def _file(self, k: int) -> h5py.File:
        if self._pid != os.getpid():  # first use in this process (e.g. a new DataLoader worker)
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = h5py.File(self.paths[k], "r")
        return self._files[k]

    def row(self, i: int) -> tuple[Path, int]:
        """The file and the row in it of item ``i`` (rows of unfinished frames are skipped, so the
        two differ after an interrupted render)."""
        k, j = self._entries[i]
        return self.paths[int(k)], int(j)

    def read(self, i: int) -> dict[str, np.ndarray]:
        """Frame ``i`` as numpy arrays in file units: rgb (H, W, 3) uint8, depth (H, W) float32 mm,
        mask (H, W) uint8."""
        k, j = self._entries[i]
        f = self._file(int(k))
        out = {}
        for name in self.fields:
            ds = f[name]
            if name == schema.MASK and ds.ndim == 2:
                out[name] = ds[()]
            else:
                out[name] = ds[j]
        if schema.DEPTH in out:
            out[schema.DEPTH] = out[schema.DEPTH].astype(np.float32)
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a = self.read(i)
        item: dict[str, torch.Tensor] = {"index": torch.tensor(int(i))}
        if schema.RGB in a:
            item[schema.RGB] = torch.from_numpy(np.ascontiguousarray(a[schema.RGB].transpose(2, 0, 1))).float() / 255.0
        if schema.DEPTH in a:
            item[schema.DEPTH] = torch.from_numpy(a[schema.DEPTH])[None]
        if schema.MASK in a:
            item[schema.MASK] = torch.from_numpy(a[schema.MASK].astype(np.float32))[None]
        for name in (schema.NORMALS, schema.FLOW):   # optional outputs, asked for in ``fields``
            if name in a:
                item[name] = torch.from_numpy(np.ascontiguousarray(a[name].astype(np.float32).transpose(2, 0, 1)))
        for name in (schema.OCCLUSION, schema.FLOW_VALID, schema.POLYP_MASK):
            if name in a:
                item[name] = torch.from_numpy(a[name].astype(np.float32))[None]
        return item

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"], state["_pid"] = {}, None
        return state

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
