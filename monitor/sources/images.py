"""Image files from a folder or a glob, in name order."""

from __future__ import annotations

import glob
import logging
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from monitor.config import SourceConfig
from monitor.exc import SourceError
from monitor.images import ImageFileError, check_header, image_header, read_bounded, read_gray
from monitor.sources.base import FrameSource, Pacer, has_magic, one_line

__all__ = ["IMAGE_SUFFIXES", "ImageFolderSource"]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
# IMREAD_UNCHANGED (read_gray) ignores EXIF orientation; so must the luma decode.
_JPEG_LUMA = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION


class ImageFolderSource(FrameSource):
    """Image files of the frame size from a folder or a glob, in name order.

    A folder contributes its .png, .jpg, .jpeg, .bmp, .tif and .tiff files; a
    glob (``frames/*.jpg``, ``**`` allowed) every file it matches. A file that
    cannot be decoded, or whose header says another size than the configured
    frame size, is dropped from the list with a warning (never decoded) and
    counted in ``skipped``. Running out of file descriptors or memory while
    reading is a SourceError: the folder counts as a lost camera.
    Colour images are converted as OpenCV's BGR2GRAY, except JPEGs: of those
    only the luma plane is decoded (the same weights, within a few levels).
    """

    kind = "images"
    warn_first: ClassVar[int] = 3  # skipped files warned about one by one; after that every warn_every-th
    warn_every: ClassVar[int] = 100

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._paths: list[Path] = []
        self._next_path = 0
        self._since_open = 0
        self._opened_at = 0.0
        self._pacer = Pacer(config.fps)

    def _start(self) -> None:
        pattern = str(self.device)
        self._paths = self._find(pattern)
        if not self._paths:
            if not has_magic(pattern) and not Path(pattern).expanduser().exists():
                raise SourceError(f"{self.name}: no such folder")
            raise SourceError(
                f"{self.name}: no images found (expected a folder of {'/'.join(sorted(IMAGE_SUFFIXES))} files, "
                "or a glob such as frames/*.jpg)"
            )
        self._next_path = 0
        self._since_open = 0
        self._opened_at = time.time() if self.start_time is None else self.start_time
        self._pacer.reset()
        _log.info("%s: %d images", self.name, len(self._paths))

    @property
    def is_recording(self) -> bool:
        return True

    @staticmethod
    def _find(pattern: str) -> list[Path]:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            return sorted(found, key=lambda p: p.name)
        if has_magic(pattern):
            return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        return [path] if path.is_file() else []

    def _next(self) -> tuple[np.ndarray, float] | None:
        image = self._next_image()
        if image is None:
            return None
        if self.realtime:
            self._pacer.wait()
            stamp = time.time()
        else:
            stamp = self._opened_at + self._since_open / self.config.fps
        self._since_open += 1
        return image, stamp

    def _next_image(self) -> np.ndarray | None:
        while True:
            if not self._paths:
                raise SourceError(f"{self.name}: none of the images could be read ({self.skipped} skipped)")
            if self._next_path >= len(self._paths):
                if not self.config.loop:
                    return None
                self._next_path = 0
            path = self._paths[self._next_path]
            try:
                image = _read_frame(path, size=(self.config.width, self.config.height))
            except ImageFileError as exc:
                # The file's own fault (undecodable, of another size, too big): dropped from the
                # list, so a loop does not read it (and warn about it) again.
                del self._paths[self._next_path]
                self._skip(exc)
                continue
            except OSError as exc:
                # The process's fault (too many open files, out of memory): the file stays; the
                # source counts as lost and is opened again with back-off.
                raise SourceError(f"{self.name}: cannot read {path.name}: {one_line(exc)}") from exc
            self._next_path += 1
            return image

    def _skip(self, exc: OSError) -> None:
        self.skipped += 1
        if self.skipped <= self.warn_first or self.skipped % self.warn_every == 0:
            _log.warning("%s: skipped %s (%d skipped so far)", self.name, one_line(exc), self.skipped)

    def _stop(self) -> None:
        self._paths = []


def _read_frame(path: Path, *, size: tuple[int, int]) -> np.ndarray:
    """One image file of the frame ``size`` as 2-D uint8 gray, its header checked before decoding.

    Raises ImageFileError for the file's own faults, another OSError for the process's.
    """
    if path.suffix.lower() not in _JPEG_SUFFIXES:
        return read_gray(path, size=size)
    # A JPEG stores luma (BT.601, BGR2GRAY's weights) beside chroma: decoding only the luma
    # skips chroma upsampling and colour conversion, half the decode time of a colour frame.
    data = read_bounded(path)
    header = image_header(data)
    if header is None:
        raise ImageFileError(f"{path}: not a readable JPEG")
    check_header(path, header, size=size)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _JPEG_LUMA)
    except cv2.error:
        image = None
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (expected PNG, JPEG, BMP or similar)")
    return image
