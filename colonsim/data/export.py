"""Export a ColonSim HDF5 file to the folder layouts that other tools read, and read them back.

Layouts (``FORMATS``; docs/formats.md has the full conventions, and each export writes them into
its folder as ``README.txt``):

- ``simcol3d`` (SimCol3D, Rau et al. 2023): ``FrameBuffer_NNNN.png`` (16-bit RGBA, as SimCol3D's
  own frames), ``Depth_NNNN.png`` (16-bit, 65280 = 200 mm, z-depth), ``SavedPosition.txt``
  (``x y z`` per frame, cm) and ``SavedRotationQuaternion.txt`` (``qx qy qz qw`` per frame):
  camera-to-world in Unity's left-handed axes (x right, y up, z forward; the world's y mirrored),
  and ``cam.txt`` (the pinhole matrix, px).
- ``c3vd`` (C3VD, Bobrow et al. 2023): ``NNNN_color.png`` (8-bit RGB), ``NNNN_depth.tiff``
  (16-bit, 65535 = 100 mm, z-depth), ``pose.txt`` (one line per frame: the 16 values of the 4x4
  camera-to-world matrix, column-major, comma-separated, mm, OpenCV camera axes: x right, y down,
  z forward), ``NNNN_occlusion.png`` when the file has occlusion. Read back: colour names with or
  without zero padding (``0_color.png`` or ``0000_color.png``), as C3VD's releases differ.
- ``png``: ``NNNN.png`` (8-bit RGB), ``NNNN.npy`` (float32 z-depth, mm: the name that ``depth
  eval`` looks for beside a frame), ``poses.npy`` (N, 4, 4) and ``intrinsics.npy`` (N, 3, 3) as in
  the HDF5 file (camera-to-world, mm, OpenGL axes), ``mask.npy``, and ``NNNN_<name>.npy`` for each
  optional output the file has (normals, flow, occlusion, flow_valid).

Every layout also gets ``mask.npy`` (the lens's image circle, as in the HDF5 file), ``camera.json``
and ``README.txt``.

:func:`read_layout` detects a layout in a folder and returns its frames, depth in mm and poses in
ColonSim's convention (camera-to-world, mm, OpenGL camera axes).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from colonsim.data import h5read, outputs, realdata, schema
from colonsim.errors import InputError

log = logging.getLogger(__name__)

FORMATS = ("simcol3d", "c3vd", "png")
SIMCOL_MM_PER_UNIT = 200.0 / 65280.0    # SimCol3D depth PNG: 65280 = 200 mm
C3VD_MM_PER_UNIT = 100.0 / 65535.0      # C3VD depth TIFF: 65535 = 100 mm
MM_PER_CM = 10.0

_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])       # OpenGL camera axes <-> OpenCV camera axes
_GL_TO_UNITY_CAM = np.diag([1.0, 1.0, -1.0])      # OpenGL camera axes <-> Unity camera axes (z forward)
# ColonSim world <-> SimCol3D (Unity) world: y mirrored, as SimCol3D's own evaluation makes its
# left-handed poses right-handed (anitarau/simcol evaluation/eval_synthetic_pose.py: TM @ P @ TM,
# TM = diag(1, -1, 1, 1)), so that a SimCol3D pose read here is that right-handed pose.
_WORLD_TO_UNITY = np.diag([1.0, -1.0, 1.0])


# ----------------------------------------------------------------------------- pose conventions


def _quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a rotation matrix (w >= 0)."""
    from scipy.spatial.transform import Rotation
    q = Rotation.from_matrix(r).as_quat()
    return q if q[3] >= 0 else -q


def _matrix_from_quat(q: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    return Rotation.from_quat(q).as_matrix()


def to_simcol3d(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SimCol3D's (position cm (3,), quaternion x y z w (4,)) of a ColonSim pose (4, 4)."""
    pose = np.asarray(pose, np.float64)
    r = _WORLD_TO_UNITY @ pose[:3, :3] @ _GL_TO_UNITY_CAM
    return _WORLD_TO_UNITY @ pose[:3, 3] / MM_PER_CM, _quat_from_matrix(r)


def from_simcol3d(position: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """The ColonSim pose (4, 4) of SimCol3D's position (cm) and quaternion (x, y, z, w)."""
    pose = np.eye(4)
    pose[:3, :3] = _WORLD_TO_UNITY @ _matrix_from_quat(np.asarray(quat, np.float64)) @ _GL_TO_UNITY_CAM
    pose[:3, 3] = _WORLD_TO_UNITY @ np.asarray(position, np.float64) * MM_PER_CM
    return pose


def to_c3vd(pose: np.ndarray) -> np.ndarray:
    """C3VD's 16 pose.txt values (column-major camera-to-world, OpenCV camera axes, mm)."""
    return (np.asarray(pose, np.float64) @ _GL_TO_CV).T.ravel()


def from_c3vd(values: np.ndarray) -> np.ndarray:
    """The ColonSim pose (4, 4) of C3VD's 16 pose.txt values."""
    return np.asarray(values, np.float64).reshape(4, 4).T @ _GL_TO_CV


# ----------------------------------------------------------------------------- writing


def _write_image(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(path.suffix, img)
    if not ok:
        raise InputError(f"cannot encode {path.name}")
    path.write_bytes(buf.tobytes())


def encode_depth(depth_mm: np.ndarray, mm_per_unit: float) -> np.ndarray:
    """16-bit depth units of a z-depth map in mm (0 stays 0; beyond the range saturates at 65535)."""
    return np.clip(np.rint(np.asarray(depth_mm, np.float64) / mm_per_unit), 0, 65535).astype(np.uint16)


README = {
    "simcol3d": """ColonSim export in the SimCol3D layout (Rau et al. 2023), from {src}
Frames: {n}, {h}x{w} px.

FrameBuffer_NNNN.png  colour, 16-bit RGBA (8-bit sRGB values x 257; alpha 65535)
Depth_NNNN.png        z-depth along the optical axis, 16-bit: mm = value * 200 / 65280
                      (65280 = 200 mm; 0 = no surface; depth beyond 200.8 mm saturates at 65535)
SavedPosition.txt     one line per frame: x y z, the camera centre in the world, centimetres
SavedRotationQuaternion.txt
                      one line per frame: qx qy qz qw, the camera-to-world rotation
cam.txt               the 3x3 pinhole matrix (px), one row per line
mask.npy              (H, W) or (N, H, W) uint8, 1 inside the lens's image circle{lens_note}

Handedness: LEFT-handed, Unity's. Camera axes: x right, y up, z forward (the viewing direction).
World axes: ColonSim's world with y mirrored (x, -y, z), so that SimCol3D's own conversion
(P_right = TM P TM, TM = diag(1, -1, 1, 1)) gives back ColonSim's world, in OpenCV camera axes.
Pose direction: camera-to-world (a point p_cam in camera axes is at R p_cam + t in the world).
Units: positions in cm, depth in mm as above.
""",
    "c3vd": """ColonSim export in the C3VD layout (Bobrow et al. 2023), from {src}
Frames: {n}, {h}x{w} px.

NNNN_color.png        colour, 8-bit sRGB
NNNN_depth.tiff       z-depth along the optical axis, 16-bit: mm = value * 100 / 65535
                      (65535 = 100 mm; 0 = no surface; depth beyond 100 mm saturates at 65535)
NNNN_occlusion.png    (when the source has it) 255 where the next frame does not see the pixel's point
pose.txt              one line per frame: the 16 values of the 4x4 camera-to-world matrix,
                      column-major (translation in values 13-15), comma-separated, mm
intrinsics.txt        the 3x3 pinhole matrix (px), one row per line
mask.npy              (H, W) or (N, H, W) uint8, 1 inside the lens's image circle{lens_note}

Handedness: right-handed. Camera axes: OpenCV's, x right, y down, z forward (the viewing direction).
World axes: ColonSim's world.
Pose direction: camera-to-world. Units: mm.
""",
    "png": """ColonSim export as plain PNG + NumPy, from {src}
Frames: {n}, {h}x{w} px.

NNNN.png              colour, 8-bit sRGB
NNNN.npy              float32 z-depth along the optical axis, mm; 0 = no surface
NNNN_<name>.npy       each optional output of the source ({extras})
poses.npy             (N, 4, 4) float32 camera-to-world, mm
intrinsics.npy        (N, 3, 3) float32 pinhole matrix of each frame, px
mask.npy              (H, W) or (N, H, W) uint8, 1 inside the lens's image circle{lens_note}

Handedness: right-handed. Camera axes: OpenGL's, x right, y up, looking along -z (ColonSim's own).
Pose direction: camera-to-world. Units: mm. Flow: output px to the next frame (x right, y down).
""",
}


def export(src: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the frames of the ColonSim file ``src`` into the folder ``out`` in layout ``fmt``
    (one of :data:`FORMATS`); a folder that holds files is refused without ``overwrite``.
    Returns {path, format, frames, files}."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    outputs.check_target(out, overwrite=overwrite, directory=True)
    with h5read.open_checked(src) as f:
        done = np.flatnonzero(f[schema.DONE][()] == 1) if schema.DONE in f else np.arange(f[schema.RGB].shape[0])
        if len(done) == 0:
            raise InputError(f"{src} has no complete frames to export")
        n, h, w = len(done), f[schema.RGB].shape[1], f[schema.RGB].shape[2]
        extras = h5read.optional_outputs(f)
        attrs = h5read.read_attrs(f)
        camera = attrs.get(schema.ATTR_CAMERA)
        model = camera.get("model") if isinstance(camera, dict) else None
        lens_note = "" if model in (None, "pinhole") else (
            f"\n                      (the lens is a {model} lens: the pinhole matrix holds its focal"
            f" length\n                      and principal point only; the full model is in camera.json)")
        with outputs.staged(out, overwrite=overwrite, directory=True) as tmp:
            poses = f[schema.POSE][()][done]
            for k, i in enumerate(done):
                fr = h5read.read_frame(f, int(i))
                _write_frame(tmp, fmt, k, fr, extras)
            _write_poses(tmp, fmt, poses, f[schema.INTRINSICS][()][done], f[schema.MASK][()])
            if camera is not None:
                import json
                (tmp / "camera.json").write_text(json.dumps(camera, indent=2, sort_keys=True) + "\n")
            (tmp / "README.txt").write_text(README[fmt].format(
                src=Path(src).name, n=n, h=h, w=w, lens_note=lens_note, extras=", ".join(extras) or "none"))
            files = sum(1 for _ in tmp.iterdir())
    return {"path": str(out), "format": fmt, "frames": n, "files": files, "extras": list(extras)}


def _write_frame(d: Path, fmt: str, k: int, fr: dict, extras: tuple[str, ...]) -> None:
    bgr = np.ascontiguousarray(fr[schema.RGB][..., ::-1])
    depth = fr[schema.DEPTH]
    if fmt == "simcol3d":
        rgba = np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 255, np.uint8)], axis=2).astype(np.uint16) * 257
        _write_image(d / f"FrameBuffer_{k:04d}.png", rgba)
        _write_image(d / f"Depth_{k:04d}.png", encode_depth(depth, SIMCOL_MM_PER_UNIT))
    elif fmt == "c3vd":
        _write_image(d / f"{k:04d}_color.png", bgr)
        _write_image(d / f"{k:04d}_depth.tiff", encode_depth(depth, C3VD_MM_PER_UNIT))
        if schema.OCCLUSION in fr:
            _write_image(d / f"{k:04d}_occlusion.png", (fr[schema.OCCLUSION] > 0).astype(np.uint8) * 255)
    else:
        _write_image(d / f"{k:04d}.png", bgr)
        np.save(d / f"{k:04d}.npy", depth.astype(np.float32))
        for name in extras:
            np.save(d / f"{k:04d}_{name}.npy", fr[name])


def _write_poses(d: Path, fmt: str, poses: np.ndarray, intrinsics: np.ndarray, mask: np.ndarray) -> None:
    k0 = intrinsics[0]
    matrix_text = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in k0) + "\n"
    if fmt == "simcol3d":
        conv = [to_simcol3d(p) for p in poses]
        (d / "SavedPosition.txt").write_text("".join(" ".join(f"{v:.9g}" for v in t) + "\n" for t, _ in conv))
        (d / "SavedRotationQuaternion.txt").write_text(
            "".join(" ".join(f"{v:.9g}" for v in q) + "\n" for _, q in conv))
        (d / "cam.txt").write_text(matrix_text)
    elif fmt == "c3vd":
        (d / "pose.txt").write_text("".join(",".join(f"{v:.9g}" for v in to_c3vd(p)) + "\n" for p in poses))
        (d / "intrinsics.txt").write_text(matrix_text)
    else:
        np.save(d / "poses.npy", poses.astype(np.float32))
        np.save(d / "intrinsics.npy", intrinsics.astype(np.float32))
    np.save(d / "mask.npy", mask)


# ----------------------------------------------------------------------------- reading


@dataclass
class Layout:
    """The frames of a folder in one of the :data:`FORMATS` layouts, in ColonSim's units."""
    kind: str                      # simcol3d | c3vd | png
    names: list[str]               # the colour file of each frame
    rgb: np.ndarray                # (N, H, W, 3) uint8
    depth: np.ndarray              # (N, H, W) float32 z-depth, mm; 0 = no surface
    poses: np.ndarray | None       # (N, 4, 4) float64 camera-to-world, mm, OpenGL camera axes
    intrinsics: np.ndarray | None  # (3, 3) float64 pinhole matrix, px
    mask: np.ndarray | None = None  # (N, H, W) uint8 image circle (mask.npy), None when the folder has none


def detect_layout(folder: str | Path) -> str:
    """The layout of a folder: simcol3d (FrameBuffer_*.png), c3vd (*_color.png), png (NNNN.png
    with NNNN.npy); InputError otherwise."""
    kind = find_layout(folder)
    if kind is None:
        raise InputError(f"{folder} is not a SimCol3D (FrameBuffer_NNNN.png), C3VD (NNNN_color.png) or "
                         "PNG + .npy (NNNN.png, NNNN.npy) folder")
    return kind


def find_layout(folder: str | Path) -> str | None:
    """The layout of a folder as :func:`detect_layout`, or None for a folder of another kind."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"folder not found: {d}")
    kind = realdata.frame_layout(d)
    if kind is not None:
        return kind
    names = {p.name for p in d.iterdir()}
    if any(re.fullmatch(r"\d+\.png", x) and x[:-4] + ".npy" in names for x in names):
        return "png"
    return None


def _numbered(d: Path, pattern: str) -> list[tuple[int, Path]]:
    rx = re.compile(pattern)
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := rx.fullmatch(p.name))]
    return sorted(found)


def _read_depth16(p: Path, mm_per_unit: float) -> np.ndarray:
    if not p.is_file():
        raise InputError(f"depth file not found: {p}")
    img = realdata.decode_file(p, cv2.IMREAD_UNCHANGED)
    if img is not None and img.ndim == 3 and img.dtype == np.uint16:
        img = img[..., 0]   # a depth TIFF stored with 3 equal channels
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        raise InputError(f"depth file {p.name} is not a 16-bit single-channel image")
    return (img.astype(np.float64) * mm_per_unit).astype(np.float32)


def _read_matrix(p: Path) -> np.ndarray | None:
    """A 3x3 pinhole matrix written as 9 numbers; None for a missing file or another layout (a
    dataset's own intrinsics file may hold other values)."""
    if not p.is_file():
        return None
    try:
        values = np.loadtxt(p, dtype=np.float64, delimiter=None).ravel()
    except ValueError:
        values = np.array([])
    if values.size != 9:
        log.info("%s is not a 3x3 pinhole matrix (%d values); intrinsics left out", p.name, values.size)
        return None
    return values.reshape(3, 3)


def _simcol_pose_files(d: Path) -> tuple[Path, Path]:
    """SavedPosition / SavedRotationQuaternion of a SimCol3D frame folder: beside the frames (this
    exporter), or, for SimCol3D's own ``Frames_S<k>`` folders, ``SavedPosition_S<k>.txt`` in the
    parent folder."""
    pos, rot = d / "SavedPosition.txt", d / "SavedRotationQuaternion.txt"
    m = re.fullmatch(r"Frames_([A-Z]\d+)", d.name)
    if not pos.is_file() and m:
        pos = d.parent / f"SavedPosition_{m.group(1)}.txt"
        rot = d.parent / f"SavedRotationQuaternion_{m.group(1)}.txt"
    return pos, rot


#: mm per 16-bit depth unit of each layout's depth files (None: float mm in .npy)
DEPTH_MM_PER_UNIT = {"simcol3d": SIMCOL_MM_PER_UNIT, "c3vd": C3VD_MM_PER_UNIT, "png": None}


class LayoutReader:
    """A folder in one of the :data:`FORMATS` layouts, read a frame at a time (:func:`read_layout`
    reads them all). ``names``, ``poses``, ``intrinsics`` and ``mask`` are read on opening;
    :meth:`rgb` and :meth:`depth` read frame ``k``.

    ``mm_per_unit`` replaces the layout's own depth encoding (``--depth-scale``), for a folder whose
    16-bit depth files follow another scale."""

    def __init__(self, folder: str | Path, kind: str | None = None, mm_per_unit: float | None = None):
        d = self.folder = Path(folder)
        kind = self.kind = kind or detect_layout(d)
        if kind not in FORMATS:
            raise InputError(f"layout must be one of {', '.join(FORMATS)}, got {kind!r}")
        own = DEPTH_MM_PER_UNIT[kind]
        if mm_per_unit is not None and own is not None and not np.isclose(mm_per_unit, own, rtol=1e-9):
            log.info("%s: depth read at %.6g mm a unit (--depth-scale), not the %s layout's %.6g",
                     d, mm_per_unit, kind, own)
        self.mm_per_unit = own if mm_per_unit is None else float(mm_per_unit)
        self.poses: np.ndarray | None = None
        if kind == "simcol3d":
            self._frames = _numbered(d, realdata.LAYOUT_FRAMES["simcol3d"])
            self._depth = [d / f"Depth_{p.name[len('FrameBuffer_'):]}" for _, p in self._frames]
            pos, rot = _simcol_pose_files(d)
            if pos.is_file() and rot.is_file():
                t, q = np.loadtxt(pos, ndmin=2), np.loadtxt(rot, ndmin=2)
                self.poses = np.stack([from_simcol3d(a, b) for a, b in zip(t, q)])
            self.intrinsics = _read_matrix(d / "cam.txt")
        elif kind == "c3vd":
            self._frames = _numbered(d, realdata.LAYOUT_FRAMES["c3vd"])
            # C3VD's releases name colour frames 0_color.png or 0000_color.png; depth 0000_depth.tiff
            self._depth = [next((c for c in (d / f"{i:04d}_depth.tiff", d / f"{i}_depth.tiff") if c.is_file()),
                                d / f"{i:04d}_depth.tiff") for i, _ in self._frames]
            if (d / "pose.txt").is_file():
                rows = np.loadtxt(d / "pose.txt", delimiter=",", ndmin=2)
                self.poses = np.stack([from_c3vd(r) for r in rows])
            self.intrinsics = _read_matrix(d / "intrinsics.txt")
        else:
            self._frames = _numbered(d, r"(\d+)\.png")
            self._depth = [p.with_suffix(".npy") for _, p in self._frames]
            if (d / "poses.npy").is_file():
                self.poses = np.load(d / "poses.npy").astype(np.float64)
            self.intrinsics = (np.load(d / "intrinsics.npy")[0].astype(np.float64)
                               if (d / "intrinsics.npy").is_file() else None)
        if not self._frames:
            raise InputError(f"{d} holds no frames of the {kind} layout")
        if self.poses is not None and len(self.poses) != len(self._frames):
            raise InputError(f"{d} has {len(self._frames)} frames but {len(self.poses)} poses")
        self.names = [p.name for _, p in self._frames]
        self.mask = self._read_mask(d / "mask.npy")

    def _read_mask(self, p: Path) -> np.ndarray | None:
        if not p.is_file():
            return None
        m = np.load(p, allow_pickle=False)
        if m.ndim == 2:
            m = np.broadcast_to(m, (len(self._frames),) + m.shape)
        if m.ndim != 3 or len(m) != len(self._frames):
            raise InputError(f"{p} holds {m.shape}; expected (H, W) or ({len(self._frames)}, H, W)")
        return (m > 0).astype(np.uint8)

    def __len__(self) -> int:
        return len(self._frames)

    def rgb(self, k: int) -> np.ndarray:
        """Frame k as (H, W, 3) uint8 RGB (16-bit and RGBA frames converted, with one logged note)."""
        return realdata.read_image(self._frames[k][1])

    def has_depth(self, k: int) -> bool:
        return self._depth[k].is_file()

    def depth(self, k: int) -> np.ndarray:
        """The z-depth of frame k, (H, W) float32 mm; 0 = no surface."""
        p = self._depth[k]
        if self.mm_per_unit is not None and p.suffix != ".npy":
            return _read_depth16(p, self.mm_per_unit)
        if not p.is_file():
            raise InputError(f"depth file not found: {p}")
        d = np.load(p, allow_pickle=False)
        if np.issubdtype(d.dtype, np.integer) and self.mm_per_unit is not None:
            d = d * self.mm_per_unit
        return np.nan_to_num(np.asarray(d, np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def read_layout(folder: str | Path, kind: str | None = None) -> Layout:
    """Read a folder in a layout of :data:`FORMATS` (detected by :func:`detect_layout` unless
    ``kind`` is given): colour as (N, H, W, 3) uint8 (16-bit and RGBA frames converted), z-depth in
    mm, and poses in ColonSim's convention (camera-to-world, mm, OpenGL camera axes) when the folder
    has them."""
    r = LayoutReader(folder, kind)
    rgb = np.stack([r.rgb(k) for k in range(len(r))])
    depth = np.stack([r.depth(k) for k in range(len(r))])
    return Layout(r.kind, r.names, rgb, depth, r.poses, r.intrinsics,
                  None if r.mask is None else np.ascontiguousarray(r.mask))
