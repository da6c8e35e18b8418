"""Image files in and out: grayscale reads with clear errors and bounds, atomic writes.

Every image the monitor reads comes from outside (a reference, a mask, a file
dropped into a watched folder), so its size is read from its header and checked
before a single pixel is decoded: a 0.5 MB PNG can claim 8192x8192 16-bit RGBA,
over a gigabyte once decoded, which is an out-of-memory kill on a Pi Zero 2 W.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.exc import ComparisonError, MonitorError
from monitor.similarity import to_gray

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_FILE_BYTES",
    "TRANSIENT_ERRNOS",
    "ImageFileError",
    "ImageHeader",
    "check_header",
    "image_header",
    "make_folder",
    "read_bounded",
    "read_gray",
    "write_bytes_atomic",
    "write_image_atomic",
]

# Bounds on what one image may cost: a 4K colour frame at 16 bits a sample is 50 MB decoded.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DECODED_BYTES = 64 * 1024 * 1024
# Errors that say nothing about the file itself: the process ran out of something. The file may be
# read again later; the caller must not give up on it.
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR})


class ImageFileError(MonitorError, OSError):
    """An image file could not be read or written."""


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an image's header says: its size, and how many bytes decoding it takes."""

    width: int
    height: int
    channels: int
    bytes_per_sample: int

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * self.channels * self.bytes_per_sample


def image_header(data: bytes) -> ImageHeader | None:
    """The header of a PNG, JPEG, BMP, TIFF or PNM image in ``data``, or None for anything else.

    Only the header is read: nothing is decoded. A header that is cut short
    or makes no sense is None too.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
            channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
            return ImageHeader(width, height, channels, 2 if depth == 16 else 1)
        if data[:2] == b"\xff\xd8":
            return _jpeg_header(data)
        if data[:2] == b"BM":
            width, height, _, bits = struct.unpack("<iiHH", data[18:30])
            return ImageHeader(abs(width), abs(height), max(1, bits // 8), 1)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_header(data)
        if data[:1] == b"P" and data[1:2] in b"123456":
            return _pnm_header(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_header(data: bytes) -> ImageHeader | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            precision, height, width, channels = struct.unpack(">BHHB", data[at + 4 : at + 10])
            return ImageHeader(width, height, channels, 2 if precision > 8 else 1)
        at += 2 + length
    return None


def _tiff_header(data: bytes) -> ImageHeader | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    fields: dict[int, int] = {}
    for index in range(count):
        entry = data[offset + 2 + 12 * index : offset + 14 + 12 * index]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        value = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        fields[tag] = value
    if 256 not in fields or 257 not in fields:
        return None
    bits = fields.get(258, 8)  # of the first sample when there are several: what a reader checks first
    return ImageHeader(fields[256], fields[257], fields.get(277, 1), max(1, bits // 8) if bits <= 64 else 8)


def _pnm_header(data: bytes) -> ImageHeader | None:
    words: list[bytes] = []
    for line in data[2:4096].split(b"\n"):
        words += line.split(b"#")[0].split()
        if len(words) >= 3:
            break
    width, height = int(words[0]), int(words[1])
    top = int(words[2]) if data[1:2] not in b"14" else 1
    channels = 3 if data[1:2] in b"36" else 1
    return ImageHeader(width, height, channels, 2 if top > 255 else 1)


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


def read_gray(path: str | Path, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as 2-D uint8 grayscale, converting colour like BGR2GRAY.

    ``size``: (width, height) the image must have; checked from its header,
    before decoding. Every image is bounded too: at most MAX_FILE_BYTES on
    disk and MAX_DECODED_BYTES decoded, in a format whose header is read here
    (PNG, JPEG, BMP, TIFF, PNM). Every failure (missing, unreadable, too big,
    of another size, undecodable) is an ImageFileError whose message starts
    with the path; an error that says the process ran out of something
    (TRANSIENT_ERRNOS: too many open files) is raised as it is, since the
    file may be fine.
    """
    path = Path(path)
    data = read_bounded(path)
    header = image_header(data)
    if header is None:
        raise ImageFileError(f"{path}: not a readable image (expected PNG, JPEG, BMP, TIFF or PNM)")
    check_header(path, header, size=size)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None  # e.g. a header claiming more pixels than OpenCV agrees to decode
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (expected PNG, JPEG, BMP or similar)")
    try:
        return _to_gray_uint8(image)
    except ImageFileError as exc:
        raise ImageFileError(f"{path}: {exc}") from None


def check_header(path: Path, header: ImageHeader, *, size: tuple[int, int] | None) -> None:
    """Refuse, before decoding, an image of another size than ``size`` or over MAX_DECODED_BYTES decoded."""
    if size is not None and (header.width, header.height) != size:
        raise ImageFileError(
            f"{path}: is {header.width}x{header.height}, expected the frame size {size[0]}x{size[1]} "
            "(source.width x source.height)"
        )
    if header.decoded_bytes > MAX_DECODED_BYTES or header.width < 1 or header.height < 1:
        raise ImageFileError(
            f"{path}: its header claims {header.width}x{header.height}x{header.channels} at "
            f"{8 * header.bytes_per_sample} bits, {header.decoded_bytes / 1e6:.0f} MB decoded "
            f"(at most {MAX_DECODED_BYTES / 1e6:.0f} MB): not decoded"
        )


def read_bounded(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, without following it if it is a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise
        raise ImageFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageFileError(f"{path}: not a file")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageFileError(f"{path}: {info.st_size / 1e6:.0f} MB is too big for an image (at most 64 MB)")
        if info.st_size == 0:
            raise ImageFileError(f"{path}: empty: not a readable image")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_FILE_BYTES)
    except ImageFileError:
        raise
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise
        raise ImageFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return data


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
