"""Image files in and out: grayscale reads with clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
from pathlib import Path

import cv2
import numpy as np

from monitor.exc import ComparisonError, MonitorError
from monitor.similarity import to_gray

__all__ = ["ImageFileError", "make_folder", "read_gray", "write_bytes_atomic", "write_image_atomic"]


class ImageFileError(MonitorError, OSError):
    """An image file could not be read or written."""


def _to_gray_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageFileError(f"expected an 8-bit image, got {image.dtype}")
    try:
        return to_gray(image)
    except ComparisonError as exc:
        raise ImageFileError(str(exc)) from None


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as 2-D uint8 grayscale, converting colour like BGR2GRAY.

    Every failure (missing, unreadable, undecodable, an unsupported kind of
    image) is an ImageFileError whose message starts with the path.
    """
    path = Path(path)
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
        data = np.fromfile(str(path), dtype=np.uint8) if regular else None
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        raise ImageFileError(f"{path}: not a file")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:
        image = None  # e.g. a header claiming more pixels than OpenCV agrees to decode
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (expected PNG, JPEG, BMP or similar)")
    try:
        return _to_gray_uint8(image)
    except ImageFileError as exc:
        raise ImageFileError(f"{path}: {exc}") from None


def write_image_atomic(path: str | Path, image: np.ndarray, *, quality: int = 90) -> Path:
    """Encode ``image`` by the file's extension and put it under ``path`` atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and only then renamed over ``path``: a reader (or a crash) never sees a
    half-written image under the final name.
    """
    path = Path(path)
    ext = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in {".jpg", ".jpeg"} else []
    ok, encoded = cv2.imencode(ext, image, params)
    if not ok:
        raise ImageFileError(f"{path}: cannot encode an image as {ext}")
    write_bytes_atomic(path, encoded.tobytes())
    return path


def make_folder(path: Path, *, mode: int = 0o755) -> None:
    """Create ``path`` and its missing parents with ``mode`` (narrowed by the umask, never widened).

    Unlike ``Path.mkdir(parents=True)``, the parents get ``mode`` too: under
    umask 0 they would otherwise be world-writable.
    """
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=mode, exist_ok=True)


def _umask() -> int:
    """The process's umask, read without changing it (Linux 4.7+), else by setting it back."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync it, then rename it over ``path``.

    Temporary siblings left by an earlier writer that was killed mid-write are
    removed first, so they do not pile up on the SD card.
    """
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes it 0600: at most 0644, narrowed by the umask (a service's UMask=0027
        # keeps snapshots and the reference from other users; umask 0 never makes them writable).
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
