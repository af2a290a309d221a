"""Keep from a pool of renders the views that show what the real frames show.

The forward model draws its camera poses at random along the colon, so the frames of a render set
show the lumen, the folds and the near wall in proportions of their own. A real dataset has
proportions of its own too: CVC-ColonDB (Bernal et al. 2012) is mostly polyps and the wall seen from
close by. After ``adapt match`` the real-versus-synthetic classifier of ``adapt score`` reads
mostly that difference of content (benchmarks/RESULTS.md): flat views of the near wall read real,
dark lumen views read synthetic. No refiner that keeps the frames' structure can change it.

``pick`` renders nothing: from a pool of renders it keeps ``n`` frames, each chosen by a real frame
as the render whose *layout* is nearest its own. A frame's layout is what structure-keeping leaves
of it: the largest square inside the image circle, reduced to a 16x16 grey image, low-passed
(Gaussian of 1 px) and normalized to zero mean and unit contrast, so that brightness, colour and
texture play no part. The real frames take turns in a seeded random order, each taking its nearest
render not yet taken, until ``n`` are taken; so every real frame's layout is represented about
equally, not only the commonest. The output is a ColonSim HDF5 of the kept frames with every dataset
(depth, pose, intrinsics, params) carried along, plus ``params/pool_index``: each frame's index in
the pool. The real frames chosen from must not include frames held out for scoring. In the pool of
an interrupted render (``done`` not all set) only the finished frames are candidates.

What it is good for is measured in benchmarks/RESULTS.md ("Renders picked by the real frames'
layouts"): after ``adapt match``, held-out frames of the videos it picked by read as synthetic far
more often than against renders kept at random; frames of other videos, in two folds of four
more often and in two less often. It matches a target to the views of the videos at hand, not to
colonoscopy at large.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from colonsim import open_checked, staged_output
from colonsim.data import h5io, schema
from colonsim.errors import DatasetError, InputError

from ..apply import check_paths
from ..data import H5Frames, is_hdf5, open_frames, squares
from .score import blurred

LAYOUT_SIDE = 16       # px of the square a layout is read at
LAYOUT_SIGMA_PX = 1.0  # its low-pass, px at that size
POOL_INDEX = "pool_index"  # params/ dataset: each kept frame's index in the pool
ATTR_PICKED = "picked_from"  # root attribute: JSON {"pool", "real", "n_real", "seed"}


def layouts(frames, desc: str = "layouts") -> np.ndarray:
    """(N, LAYOUT_SIDE**2) float32: the layout of each frame of ``frames`` (``len`` and
    ``get(i) -> (rgb, mask)``), as in the module doc."""
    sq = squares(frames, tqdm(range(len(frames)), desc=desc, unit="frame", disable=None), LAYOUT_SIDE)
    grey = blurred(sq.astype(np.float32).mean(-1), LAYOUT_SIGMA_PX).reshape(len(sq), -1)
    return (grey - grey.mean(1, keepdims=True)) / (grey.std(1, keepdims=True) + 1.0)


def pick_indices(real: np.ndarray, pool: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``pool`` (P, D) of ``n`` distinct rows, and the rank of each in its chooser's
    order of nearness (0: its nearest). The rows of ``real`` (R, D) take turns, in a random order
    drawn from ``seed`` for each round, each taking its nearest pool row not yet taken."""
    n_real, n_pool = len(real), len(pool)
    if not 1 <= n <= n_pool:
        raise InputError(f"cannot pick {n} frames from a pool of {n_pool}; choose 1..{n_pool}")
    if n_real == 0:
        raise InputError("no real frames to pick by")
    d = (real.astype(np.float64) ** 2).sum(1)[:, None] + (pool.astype(np.float64) ** 2).sum(1)[None] \
        - 2.0 * real.astype(np.float64) @ pool.astype(np.float64).T
    # Each real frame needs about n / n_real of its nearest; sort that many (and a margin) first,
    # and the whole row only if they run out.
    k = min(n_pool, 4 * (n // n_real + 1) + 16)
    near = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n_pool else np.tile(np.arange(n_pool), (n_real, 1))
    order = [row[np.argsort(d[r, row], kind="stable")] for r, row in enumerate(near)]
    full = np.zeros(n_real, bool)
    rng = np.random.default_rng(seed)
    taken = np.zeros(n_pool, bool)
    ptr = np.zeros(n_real, np.int64)
    keep, ranks = [], []
    while len(keep) < n:
        for r in rng.permutation(n_real):
            while True:
                if ptr[r] == len(order[r]) and not full[r]:
                    order[r], full[r] = np.argsort(d[r], kind="stable"), True
                j = order[r][ptr[r]]
                if not taken[j]:
                    break
                ptr[r] += 1
            taken[j] = True
            keep.append(int(j))
            ranks.append(int(ptr[r]))
            if len(keep) == n:
                break
    return np.asarray(keep, np.int64), np.asarray(ranks, np.int64)


def _check_fields(f: h5py.File, src: Path) -> None:
    """DatasetError unless ``f`` has every per-frame dataset that a kept frame carries along."""
    missing = [name for name in (*h5io.IMAGE_FIELDS, *h5io.SMALL_FIELDS) if name not in f]
    if missing:
        raise DatasetError(f"{src} has no '{missing[0]}' dataset; adapt pick keeps whole rendered frames")


def write_subset(src: Path, dst: Path, keep: np.ndarray, picked_from: dict, *, overwrite: bool = False) -> None:
    """A ColonSim HDF5 at ``dst`` holding the frames ``keep`` of ``src`` in that order, every dataset
    carried along, ``params/pool_index`` added and ``picked_from`` recorded. Written beside ``dst``
    and moved onto it once complete (:func:`colonsim.staged_output`)."""
    with open_checked(src) as f:
        _check_fields(f, src)
        n_src = f[schema.RGB].shape[0]
        done = f[schema.DONE][()] if schema.DONE in f else np.ones(n_src, np.uint8)
        if not np.all(done[keep] == 1):
            raise DatasetError(f"{src}: frame {int(keep[np.argmin(done[keep])])} is not rendered")
        attrs = h5io.read_attrs(f)
        cfg = attrs.get(schema.ATTR_CONFIG) if isinstance(attrs.get(schema.ATTR_CONFIG), dict) else {}
        out_cfg = cfg.get("output", {})
        params = {k: f[schema.PARAMS][k] for k in f[schema.PARAMS]} if schema.PARAMS in f else {}
        dtypes = {k: str(v.dtype) for k, v in params.items()} | {POOL_INDEX: "int32"}
        height, width = f[schema.RGB].shape[1:3]
        dst.parent.mkdir(parents=True, exist_ok=True)
        with staged_output(dst, overwrite=overwrite) as tmp:
            g = h5io.create(tmp, len(keep), height, width, depth_dtype=str(f[schema.DEPTH].dtype),
                            compression=out_cfg.get("compression", "blosc-lz4"),
                            compression_level=int(out_cfg.get("compression_level", 5)),
                            config_json=f.attrs.get(schema.ATTR_CONFIG, "{}"),
                            camera_json=f.attrs.get(schema.ATTR_CAMERA, "{}"),
                            seed=int(attrs.get(schema.ATTR_SEED, 0)),
                            mesh_json=f.attrs.get(h5io.ATTR_MESH, "{}"), param_dtypes=dtypes)
            with g:
                for name in h5io.IMAGE_FIELDS:
                    s, t = f[name], g[name]
                    if s.shape[1:] != t.shape[1:]:  # a mask shared by all frames: one per frame here
                        t[:] = np.broadcast_to(s[()], t.shape)
                    elif s._filters == t._filters and s.chunks == t.chunks:
                        zeros = (0,) * (len(s.shape) - 1)
                        for j, i in enumerate(keep):  # the compressed chunks as they are
                            mask, data = s.id.read_direct_chunk((int(i),) + zeros)
                            t.id.write_direct_chunk((j,) + zeros, data, mask)
                    else:
                        for j, i in enumerate(keep):
                            t[j] = s[int(i)]
                for name in h5io.SMALL_FIELDS:
                    g[name][:] = f[name][()][keep]
                for k, v in params.items():
                    g[schema.PARAMS][k][:] = v[()][keep]
                g[schema.PARAMS][POOL_INDEX][:] = keep.astype(np.int32)
                g[schema.DONE][:] = 1
                g.attrs[ATTR_PICKED] = json.dumps(picked_from)
                h5io.finish(g)


def pick(real: str | Path, pool: str | Path, out: str | Path, n: int, *, seed: int = 0,
         overwrite: bool = False) -> dict:
    """Keep ``n`` frames of the render ``pool`` by the layouts of the ``real`` frames (module doc) and
    write them to ``out``; returns a summary dict."""
    src, dst = Path(pool), Path(out)
    if not src.exists():
        raise InputError(f"--pool not found: {src}; expected a ColonSim .h5")
    if not is_hdf5(src):
        raise InputError(f"--pool {src} is not a ColonSim HDF5 file")
    check_paths(src, dst, overwrite, keep=[Path(real)])
    if Path(real).resolve() == dst.resolve():
        raise InputError(f"--out {dst} is the real frames themselves; choose another path")
    with open_checked(src) as f:
        _check_fields(f, src)
        n_rows = f[schema.RGB].shape[0]
    pool_frames = H5Frames(src, cache_mb=0)  # an interrupted render's pool: its finished frames only
    rendered = np.array([pool_frames.dataset.row(i)[1] for i in range(len(pool_frames))], np.int64)
    n_pool = len(rendered)
    t0 = time.monotonic()
    real_frames = open_frames(real)
    if isinstance(real_frames, H5Frames):
        real_frames = H5Frames(real, cache_mb=0)
    if not 1 <= n <= n_pool:
        has = f"{n_pool}" if n_pool == n_rows else f"{n_pool} rendered of {n_rows}"
        raise InputError(f"cannot keep {n} frames of {src}, which has {has}; choose 1..{n_pool}")
    r = layouts(real_frames, desc="real layouts")
    p = layouts(pool_frames, desc="pool layouts")  # row j is frame rendered[j]
    keep, ranks = pick_indices(r, p, n, seed)
    keep = rendered[keep]
    write_subset(src, dst, keep, {"pool": str(src), "real": str(real), "n_real": len(r), "seed": int(seed)},
                 overwrite=overwrite)
    return {"frames": int(n), "pool": str(src), "pool_frames": int(n_pool), "pool_rows": int(n_rows),
            "real": str(real),
            "real_frames": len(r), "out": str(dst), "median_rank": float(np.median(ranks)),
            "max_rank": int(ranks.max()), "seconds": round(time.monotonic() - t0, 1)}
