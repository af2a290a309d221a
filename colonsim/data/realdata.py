"""Real endoscopy frames: the real-data folder contract shared by adapt/ and depth/.

A source of real frames is a folder of images (``IMAGE_EXTS``), or a video file that OpenCV can
read. Frames are (H, W, 3) uint8 RGB. Real scopes show a black border outside their round or
octagonal image circle; :func:`detect_border_mask` finds the inside of that circle.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Iterator

# ffmpeg inside OpenCV writes its own complaints ("moov atom not found") to stderr; errors here are
# reported as one InputError line instead. These take effect only if cv2 is not imported yet.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

import cv2  # noqa: E402
import numpy as np

from colonsim.errors import InputError

log = logging.getLogger(__name__)

#: Image file extensions accepted in a folder of real frames (lower case).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Pixels whose brightest channel (after a small blur) is above this are "inside the scope's image".
#: The border of CVC-ColonDB frames is 0-5 (JPEG noise); its darkest lumen is about 15-25.
BORDER_THRESHOLD = 10


def _natural_key(p: Path) -> list:
    """Sort ``2.jpg`` before ``10.jpg``: runs of digits compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", p.name.lower()) if t]


#: The colour frames of the dataset layouts that hold more than frames in one folder (their depth,
#: normals, occlusion files are images too): SimCol3D's FrameBuffer_NNNN.png beside Depth_NNNN.png,
#: C3VD's NNNN_color.png beside NNNN_depth.tiff (colonsim.data.export reads these layouts whole).
LAYOUT_FRAMES = {"simcol3d": r"FrameBuffer_(\d+)\.png", "c3vd": r"(\d+)_color\.png"}


def frame_layout(directory: str | Path) -> str | None:
    """``simcol3d`` or ``c3vd`` when a folder holds the colour frames of that layout, else None."""
    names = [p.name for p in Path(directory).iterdir()]
    for kind, pattern in LAYOUT_FRAMES.items():
        if any(re.fullmatch(pattern, x) for x in names):
            return kind
    return None


def list_frames(directory: str | Path) -> list[Path]:
    """The frames of a folder: :func:`list_images`, except that in a SimCol3D or C3VD folder
    (:data:`LAYOUT_FRAMES`) only its colour frames, not its depth maps, occlusion or normals."""
    images = list_images(directory)
    kind = frame_layout(directory)
    if kind is None:
        return images
    rx = re.compile(LAYOUT_FRAMES[kind])
    frames = [p for p in images if rx.fullmatch(p.name)]
    log.info("%s is a %s folder: reading its %d colour frames, not its other %d images",
             _shown(Path(directory)), kind, len(frames), len(images) - len(frames))
    return frames


def list_images(directory: str | Path) -> list[Path]:
    """The image files of a folder (not recursive), in natural order (``2.jpg`` before ``10.jpg``).

    Raises InputError if the folder is missing or holds no image with an extension in IMAGE_EXTS.
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"image folder not found: {d}")
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise InputError(f"no images in {d}; expected files ending in {', '.join(IMAGE_EXTS)}")
    return sorted(files, key=_natural_key)


def _check_frame(img: np.ndarray | None, name: str) -> np.ndarray:
    """Check a decoded BGR(A) image and return it as (H, W, 3) uint8 RGB."""
    if img is None:
        raise InputError(f"cannot read image {name}: not a readable image file")
    converted = img.dtype == np.uint16 and img.ndim == 3 and img.shape[2] in (3, 4)
    if converted:
        img = _to_8bit(img, name)   # SimCol3D's frames are 16-bit RGBA
    if img.dtype != np.uint8:
        raise InputError(f"image {name} is {img.dtype} ({8 * img.dtype.itemsize}-bit); "
                         "real frames must be 8-bit RGB")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        raise InputError(f"image {name} is grayscale; real frames must be 8-bit RGB colour")
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputError(f"image {name} has shape {img.shape}; real frames must be (H, W, 3) RGB")
    if img.shape[2] == 4 and not converted:
        _note_converted(name, "8-bit RGBA: alpha dropped")
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB))


_CONVERTED: list[str] = []


def _to_8bit(img: np.ndarray, name: str) -> np.ndarray:
    """A 16-bit colour frame as 8 bits (value / 257, rounded: exact for 8-bit values x 257), noted
    once in the log (the first one by name, the rest counted by :func:`converted_images`)."""
    kind = "RGBA" if img.shape[2] == 4 else "RGB"
    _note_converted(name, f"16-bit {kind}: converted to 8-bit RGB (value / 257; alpha dropped)")
    return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _note_converted(name: str, what: str) -> None:
    """One logged note for the first frame converted (16-bit, or RGBA), the rest counted."""
    if not _CONVERTED:
        log.info("image %s is %s; further 16-bit or RGBA frames are converted without a note", name, what)
    _CONVERTED.append(name)


def converted_images() -> list[str]:
    """The 16-bit or RGBA colour frames converted to 8-bit RGB so far by this process (see
    :func:`read_image`)."""
    return list(_CONVERTED)


def read_image(path: str | Path) -> np.ndarray:
    """Read one real frame as (H, W, 3) uint8 RGB.

    Raises InputError for a missing or unreadable file, a grayscale image (a 16-bit single-channel
    PNG/TIFF is a depth map, not a frame), or one of another bit depth. A 16-bit colour frame (RGB
    or RGBA, as SimCol3D's) is converted to 8 bits, with one logged note (:func:`converted_images`);
    the alpha channel of an RGBA frame is dropped. A truncated JPEG is read (its missing part is
    grey), with a warning for the first one and a count (:func:`truncated_images`).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    # IMREAD_UNCHANGED keeps the bit depth and channel count, so that 16-bit depth maps and gray
    # are caught instead of being silently converted.
    return _check_frame(decode_file(p, cv2.IMREAD_UNCHANGED), _shown(p))


def decode_file(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """Decode an image file read by bytes (as cv2.imread would, with ``flags``; None if it is not an
    image). By bytes, because cv2.imread takes a C string: a file name that is not valid UTF-8
    crashed it (exit 139). A truncated JPEG is decoded quietly and noted (:func:`truncated_images`)."""
    p = Path(path)
    try:
        buf = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read image {_shown(p)}: {e.strerror or e}") from None
    if buf.size == 0:
        return None
    if _is_truncated_jpeg(buf):
        _note_truncated(p)
        # libjpeg decodes what is there once the file ends with its end-of-image marker (OpenCV
        # refuses the file without it); its "premature end of data" goes to stderr, silenced here.
        with _quiet_stderr():
            return cv2.imdecode(np.concatenate([buf, np.frombuffer(b"\xff\xd9", np.uint8)]), flags)
    return cv2.imdecode(buf, flags)


def _is_truncated_jpeg(buf: np.ndarray) -> bool:
    """A JPEG (starts with SOI, FF D8) whose end-of-image marker (FF D9) is not in its last bytes."""
    if buf.size < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return False
    tail = buf[-4096:].tobytes()
    return b"\xff\xd9" not in tail


_TRUNCATED: list[str] = []


def _note_truncated(p: Path) -> None:
    name = _shown(p)
    if not _TRUNCATED:
        log.warning("%s is a truncated JPEG (its end is missing; the missing part reads as grey); "
                    "further truncated images are counted, not named", name)
    _TRUNCATED.append(name)


def truncated_images() -> list[str]:
    """The truncated JPEGs read so far by this process (see :func:`read_image`), for a command's summary."""
    return list(_TRUNCATED)


def _shown(p: Path) -> str:
    """A file name fit for a message: bytes that are not UTF-8 are shown as escapes (\\xff)."""
    return os.fsdecode(bytes(p)).encode("utf-8", "backslashreplace").decode("utf-8")


def is_video(path: str | Path) -> bool:
    """True if ``path`` is a file that is not an image (so it is read as a video)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() not in IMAGE_EXTS


def iter_frames(source: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, rgb)`` for each frame of a folder of images or a video file.

    ``name`` is the image file name (``12.jpg``) for a folder, ``frame_000012.png`` for a video. In a
    SimCol3D or C3VD folder only its colour frames are read (:func:`list_frames`).
    ``rgb`` is (H, W, 3) uint8. Raises InputError for a missing source, an empty folder, an
    unreadable image, or a video that OpenCV cannot open.
    """
    src = Path(source)
    if src.is_dir():
        for p in list_frames(src):
            yield p.name, read_image(p)
        return
    if not src.exists():
        raise InputError(f"real frames not found: {src}; expected a folder of images or a video file")
    if src.suffix.lower() in IMAGE_EXTS:
        yield src.name, read_image(src)
        return
    try:
        name = os.fsencode(src).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"cannot open video {_shown(src)}: OpenCV reads videos only by file names "
                         "that are valid UTF-8; rename the file") from None
    with _quiet_stderr():
        cap = cv2.VideoCapture(name)
    try:
        if not cap.isOpened():
            raise InputError(f"cannot open video {src}; expected a video file that OpenCV can read, "
                             "or a folder of images")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"frame_{i:06d}.png", _check_frame(frame, f"{_shown(src)} frame {i}")
            i += 1
        if i == 0:
            raise InputError(f"video {_shown(src)} has no readable frames")
        if i < declared:
            log.warning("video %s declares %d frames but only %d could be read (cut short?)",
                        _shown(src), declared, i)
    finally:
        cap.release()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence OpenCV's logging and anything native code writes to file descriptor 2 (ffmpeg's own
    log), for the duration of the block. Python's stderr is flushed first, so nothing of ours is lost."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no fd 2 (embedded interpreter): logging level only
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        cv2.utils.logging.setLogLevel(level)


def detect_border_mask(rgb: np.ndarray, threshold: int = BORDER_THRESHOLD) -> np.ndarray:
    """The inside of the scope's image circle: (H, W) uint8, 1 inside, 0 on the black border.

    The border is near-black; the image circle is convex (round or octagonal). Method: median-filter the
    brightest channel, threshold, keep the largest connected component, then fill its convex
    hull, so that dark lumen regions inside the circle (even those touching its edge) are kept.
    A frame without a border gives all ones; an all-black frame gives all ones too (no evidence).

    Args:
        rgb: (H, W, 3) uint8 frame.
        threshold: grey level (0-255) above which a pixel is inside.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"border detection needs an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    # A median (not a Gaussian) removes JPEG noise without growing the bright region into the border.
    bright = cv2.medianBlur(np.ascontiguousarray(rgb.max(axis=2)), 5)
    fg = (bright > threshold).astype(np.uint8)
    # Opening removes isolated noisy pixels in the border (JPEG ringing near the edge).
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.ones((h, w), np.uint8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < 0.05 * h * w:
        return np.ones((h, w), np.uint8)  # too little signal to tell border from content
    pts = cv2.findNonZero((labels == biggest).astype(np.uint8))
    hull = cv2.convexHull(pts)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask
