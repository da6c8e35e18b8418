"""Where frames come from: the Pi camera, OpenCV (webcams, video files, streams), image folders.

Every source delivers 2-D uint8 grayscale :class:`Frame` objects through the
same small interface, :class:`FrameSource`. ``make_source(config)`` picks the
class from :data:`SOURCES` by ``config.kind``. Camera libraries are imported
inside the class that needs them, so this module imports on any machine.

Pacing: with ``realtime=True`` (``monitor run``) recordings (video files, image
folders) are delivered at ``config.fps``, and live sources as frames come but
at most ``config.fps``; with ``realtime=False`` (``monitor replay``) everything
is delivered as fast as it can be decoded, and recordings are decoded a few
frames ahead in a thread, so that decoding the next frame overlaps with
comparing this one on another core.
"""

from __future__ import annotations

import abc
import glob
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from monitor.closing import Closing
from monitor.config import SourceConfig
from monitor.exc import ConfigError, SourceError
from monitor.images import ImageFileError, read_gray

__all__ = [
    "IMAGE_SUFFIXES",
    "SOURCES",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "OpenCVSource",
    "PiCameraSource",
    "make_source",
]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
# IMREAD_UNCHANGED (read_gray) ignores EXIF orientation; so must the luma decode.
_JPEG_LUMA = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION


@dataclass(frozen=True, slots=True)
class Frame:
    """One grayscale frame.

    ``image``: 2-D uint8, normally ``(config.height, config.width)`` (an image
    folder delivers other sizes as they are). It is a new array on every read,
    so the caller may keep it.
    ``time``: epoch seconds; ``time.time()`` at capture, except for recordings
    read with ``realtime=False``, where it is the open time plus the frame's
    position in the recording.
    ``index``: 0-based count of frames this source object has delivered; it
    keeps counting across loops and re-opens.
    """

    image: np.ndarray
    time: float
    index: int


class _Pacer:
    """Due times one period apart, anchored so that they do not drift.

    After a stall of more than a period the schedule restarts from now rather
    than bursting through the missed frames.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def is_due(self, now: float) -> bool:
        return self._due is None or now >= self._due

    def mark(self, now: float) -> None:
        """Record a delivery at monotonic time ``now`` and schedule the next one."""
        if self._due is None or now - self._due > self.period:
            self._due = now
        self._due += self.period

    def wait(self) -> None:
        """Sleep until the next frame is due, then mark it delivered."""
        if self._due is not None:
            delay = self._due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.mark(time.monotonic())


def _camera_index(device: int | str) -> int | None:
    """The camera number ``device`` names (``0``, ``"1"``), or None for a path, glob or URL."""
    if isinstance(device, int):
        return device
    text = device.strip()
    return int(text) if text.isdigit() else None


def _is_url(device: int | str) -> bool:
    return isinstance(device, str) and "://" in device


def _has_magic(text: str) -> bool:
    return any(char in text for char in "*?[")


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _ReadAhead:
    """Calls ``next_frame`` in a thread of its own, up to ``depth`` results ahead of :meth:`get`.

    The recording's end (None) and an exception are handed over in order, like
    frames; after them the thread stops and :meth:`get` repeats them. The
    hand-over is two SimpleQueues (results, and free slots as tokens): C-level
    queues, a third of the GIL time of queue.Queue's Python conditions.
    """

    def __init__(self, next_frame: Callable[[], tuple[np.ndarray, float] | None], *, depth: int, name: str) -> None:
        self._results: queue.SimpleQueue[tuple[np.ndarray, float] | Exception | None] = queue.SimpleQueue()
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(depth):
            self._slots.put(None)
        self._stopping = False
        self._done = False  # the end or an exception was handed over; get() repeats it
        self._last: tuple[np.ndarray, float] | Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(next_frame,), name=name, daemon=True)
        self._thread.start()

    def _run(self, next_frame: Callable[[], tuple[np.ndarray, float] | None]) -> None:
        while True:
            self._slots.get()  # wait for room
            if self._stopping:
                return
            item: tuple[np.ndarray, float] | Exception | None
            try:
                item = next_frame()
            except Exception as exc:  # handed to the reader, who raises it
                item = exc
            self._results.put(item)
            if item is None or isinstance(item, Exception):
                return

    def get(self) -> tuple[np.ndarray, float] | None:
        """The next result of ``next_frame``: a frame, None at the end, or its exception raised."""
        if self._done:
            item = self._last
        else:
            item = self._results.get()
            self._slots.put(None)
        if item is None or isinstance(item, Exception):
            self._done, self._last = True, item
        if isinstance(item, Exception):
            raise item
        return item

    def stop(self) -> None:
        """End the thread (after the frame it may be decoding) and drop what it read ahead."""
        self._stopping = True
        self._slots.put(None)  # wakes it if it waits for room
        self._thread.join()


class FrameSource(Closing, abc.ABC):
    """A camera, stream or recording delivering grayscale frames; a context manager.

    ``device`` overrides ``config.device`` (``monitor replay --source PATH``).
    ``skipped`` counts frames or files that could not be decoded and were left out.
    A source may be opened again after ``close()``; ``Frame.index`` keeps counting.
    A recording read with ``realtime=False`` is decoded up to ``READ_AHEAD``
    frames ahead in a thread of its own (``is_recording`` says which sources are).
    """

    kind: ClassVar[str]
    READ_AHEAD: ClassVar[int] = 2

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        self.config = config
        self.realtime = realtime
        self.device: int | str = config.device if device is None else device
        self.skipped = 0
        self._delivered = 0
        self._open = False
        self._ahead: _ReadAhead | None = None

    @property
    def name(self) -> str:
        """The source as error messages and logs name it, e.g. ``opencv clip.avi``."""
        return f"{self.kind} {self.device}"

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Start delivering frames; does nothing if already open.

        Raises SourceError with a one-line message naming the device.
        """
        if self._open:
            return
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        if self.READ_AHEAD > 0 and not self.realtime and self.is_recording:
            self._ahead = _ReadAhead(self._next, depth=self.READ_AHEAD, name=f"read-ahead {self.name}")
        self._open = True
        _log.info("%s: open", self.name)

    def read(self) -> Frame | None:
        """The next frame, or None when a recording has ended (never for live sources).

        Raises SourceError when the device fails or no frame arrives within
        ``config.capture_timeout``.
        """
        if not self._open:
            raise SourceError(f"{self.name}: read() on a source that is not open")
        got = self._next() if self._ahead is None else self._ahead.get()
        if got is None:
            return None
        image, stamp = got
        frame = Frame(image=image, time=stamp, index=self._delivered)
        self._delivered += 1
        return frame

    def close(self) -> None:
        """Release the device; safe to call any number of times."""
        if not self._open:
            return
        self._open = False
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.stop()  # before _stop: the thread may be inside _next
        self._stop()
        _log.info("%s: closed", self.name)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    @property
    def is_recording(self) -> bool:
        """True for a recording (a file or folder), which may be read unpaced; False for a live source."""
        return False

    @abc.abstractmethod
    def _start(self) -> None:
        """Acquire the device. On an exception ``_stop()`` is called to undo a partial start."""

    @abc.abstractmethod
    def _next(self) -> tuple[np.ndarray, float] | None:
        """The next image and its time, or None at the end of a recording."""

    @abc.abstractmethod
    def _stop(self) -> None:
        """Release whatever ``_start()`` acquired, tolerating a partial start."""


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2, reading the luma plane of a small YUV420 stream.

    The ISP scales the sensor image down to ``width x height`` in hardware (the
    ``lores`` stream); only its Y plane is copied out, which is the grayscale
    image, so no colour conversion runs on the CPU.
    """

    kind = "picamera"
    settle_seconds: ClassVar[float] = 2.0  # how long AE/AWB run before lock_exposure freezes them
    buffer_count: ClassVar[int] = 4  # fewer than picamera2's 6: CMA memory is scarce on a Pi Zero 2 W

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._camera: Any = None
        self._lores_size = (config.width, config.height)

    def _start(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"{self.name}: picamera2 is not installed (on the Pi: sudo apt install python3-picamera2, "
                "and make the venv with --system-site-packages)"
            ) from exc
        index = _camera_index(self.device)
        width, height = self.config.width, self.config.height
        # picamera2 rounds odd sizes down; ask for the even size above and crop the extra row/column.
        size = (width + width % 2, height + height % 2)
        try:
            self._camera = Picamera2(self.device if index is None else index)
            camera = self._camera
            camera.configure(
                camera.create_video_configuration(
                    # lores must not exceed main, so main is made as small as lores.
                    main={"size": size, "format": "YUV420"},
                    lores={"size": size, "format": "YUV420"},
                    buffer_count=self.buffer_count,
                )
            )
            camera.set_controls({"FrameRate": self.config.fps} | dict(self.config.controls))
            camera.start()
            lores_w, lores_h = camera.camera_configuration()["lores"]["size"]
            self._lores_size = (int(lores_w), int(lores_h))
        except Exception as exc:
            raise SourceError(f"{self.name}: cannot start the camera: {_one_line(exc)}") from exc
        if self._lores_size != size:
            _log.info(
                "%s: the camera chose a %dx%d stream, scaled to %dx%d", self.name, *self._lores_size, width, height
            )
        if self.config.lock_exposure:
            self._lock_exposure()

    def _lock_exposure(self) -> None:
        """Let auto exposure and white balance settle, then freeze them at the values they reached."""
        deadline = time.monotonic() + self.settle_seconds
        while time.monotonic() < deadline:
            self._capture("capture_metadata")
        metadata = self._capture("capture_metadata")
        controls: dict[str, Any] = {"AeEnable": False, "AwbEnable": False}
        for key in ("ExposureTime", "AnalogueGain", "ColourGains"):
            if key in metadata:  # a monochrome sensor reports no ColourGains
                controls[key] = metadata[key]
        self._camera.set_controls(controls)
        _log.info("%s: exposure locked: %s", self.name, controls)

    def _capture(self, method: str, *args: Any) -> Any:
        timeout = self.config.capture_timeout
        try:
            return getattr(self._camera, method)(*args, wait=timeout)
        except TimeoutError:
            raise SourceError(f"{self.name}: no frame within {timeout:g} s (source.capture_timeout)") from None
        except Exception as exc:
            raise SourceError(f"{self.name}: capture failed: {_one_line(exc)}") from exc

    def _next(self) -> tuple[np.ndarray, float]:
        array = self._capture("capture_array", "lores")
        stamp = time.time()
        return self._luma(array), stamp

    def _luma(self, array: np.ndarray) -> np.ndarray:
        """The Y plane of a YUV420 array of shape ``(h * 3 / 2, stride)``, without the stride padding."""
        lores_w, lores_h = self._lores_size
        width, height = self.config.width, self.config.height
        if array.ndim != 2 or array.shape[0] < lores_h or array.shape[1] < lores_w:
            raise SourceError(f"{self.name}: unexpected lores array of shape {array.shape} for {lores_w}x{lores_h}")
        luma = array[:lores_h, :lores_w]
        if lores_w >= width and lores_h >= height:
            return luma[:height, :width].copy()  # contiguous, and not a view into the capture
        return cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)

    def _stop(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in ("stop", "close"):
            try:
                getattr(camera, step)()
            except Exception as exc:  # closing must go on: the daemon re-opens after a failure
                _log.warning("%s: %s() failed while closing: %s", self.name, step, _one_line(exc))


class OpenCVSource(FrameSource):
    """A webcam (index or ``/dev/video*``), a video file or an rtsp/http URL through ``cv2.VideoCapture``.

    Files end (``read()`` returns None) or, with ``config.loop``, start again.
    Cameras and streams are live: a failed read raises SourceError. Live
    sources are drained with ``grab()`` between delivered frames so that a
    delivered frame is fresh, not one that waited in the driver's queue.
    """

    kind = "opencv"

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._index = _camera_index(self.device)
        self._url = _is_url(self.device)
        self._live = self._index is not None or self._url or str(self.device).startswith("/dev/")
        self._capture: cv2.VideoCapture | None = None
        self._pacer = _Pacer(config.fps)
        self._bgr: np.ndarray | None = None  # decode buffer, reused by VideoCapture.read/retrieve
        self._gray: np.ndarray | None = None  # gray at the delivered size, reused before resizing
        self._said_resize = False
        # Recording position, for the times of unpaced replays.
        self._opened_at = 0.0
        self._file_fps = config.fps
        self._file_frame = 0
        self._loop_offset = 0.0
        self._position = 0.0
        self._first_stamp = 0.0
        self._step = 1.0 / config.fps

    @property
    def name(self) -> str:
        if self._index is not None:
            return f"opencv camera {self._index}"
        if self._url:
            return f"opencv {_redact(str(self.device))}"
        return f"opencv {self.device}"

    def _start(self) -> None:
        if not self._live and not Path(str(self.device)).expanduser().is_file():
            raise SourceError(f"{self.name}: no such file")
        self._capture = self._new_capture()
        if not self._capture.isOpened():
            raise SourceError(f"{self.name}: cannot open {self._what_failed()}")
        if self._live and not self._url:
            self._ask_camera_for_config_size()
        else:
            fps = self._capture.get(cv2.CAP_PROP_FPS)
            self._file_fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else self.config.fps
            self._step = 1.0 / self._file_fps
        self._pacer.reset()
        self._opened_at = time.time()
        self._file_frame = 0
        self._loop_offset = 0.0
        self._position = 0.0

    def _new_capture(self) -> cv2.VideoCapture:
        if self._index is not None:
            return cv2.VideoCapture(self._index)
        target = str(Path(str(self.device)).expanduser()) if not self._url else str(self.device)
        if self._url and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            read_ms = round(self.config.capture_timeout * 1000)
            # Connecting to a camera takes longer than waiting for one of its frames.
            open_ms = max(read_ms, 10_000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(target)

    @property
    def is_recording(self) -> bool:
        return not self._live

    def _what_failed(self) -> str:
        if self._index is not None:
            return "(is it connected, and not in use by another program?)"
        if self._url:
            return "(check the address, the network and the credentials)"
        return "(not a video OpenCV can decode)"

    def _ask_camera_for_config_size(self) -> None:
        assert self._capture is not None
        # Requests, not promises: a webcam picks its nearest mode and frames are resized if needed.
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        self._capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _next(self) -> tuple[np.ndarray, float] | None:
        assert self._capture is not None
        if self._live:
            return self._next_live(self._capture)
        return self._next_from_file()

    def _next_live(self, capture: cv2.VideoCapture) -> tuple[np.ndarray, float]:
        while True:
            if not capture.grab():
                raise SourceError(f"{self.name}: no frame (camera or stream lost, or source.capture_timeout passed)")
            now = time.monotonic()
            if not self.realtime or self._pacer.is_due(now):
                break
        stamp = time.time()
        self._pacer.mark(now)
        ok, bgr = capture.retrieve(self._bgr)
        if not ok or bgr is None:
            raise SourceError(f"{self.name}: a frame arrived but could not be decoded")
        self._bgr = bgr
        return self._to_gray(bgr), stamp

    def _next_from_file(self) -> tuple[np.ndarray, float] | None:
        bgr = self._read_file_frame()
        if bgr is None:
            if not self.config.loop:
                return None
            if self._file_frame == 0:
                raise SourceError(f"{self.name}: no frame could be decoded, so it cannot loop")
            self._rewind()
            bgr = self._read_file_frame()
            if bgr is None:
                raise SourceError(f"{self.name}: no frame after starting again from the beginning")
        image = self._to_gray(bgr)
        if self.realtime:
            self._pacer.wait()
            stamp = time.time()
        else:
            stamp = self._opened_at + self._loop_offset + self._file_position()
        self._file_frame += 1
        return image, stamp

    def _read_file_frame(self) -> np.ndarray | None:
        assert self._capture is not None
        ok, bgr = self._capture.read(self._bgr)
        if not ok or bgr is None:
            return None
        self._bgr = bgr
        return bgr

    def _file_position(self) -> float:
        """Seconds from the first frame of the recording to the frame just read."""
        assert self._capture is not None
        stamp = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self._file_frame == 0:
            # Some codecs start their timestamps a frame or two in: count from the first frame.
            self._first_stamp = stamp if math.isfinite(stamp) and stamp > 0 else 0.0
        position = stamp - self._first_stamp
        # Some containers report no timestamps (0 or NaN): count frames instead.
        if not math.isfinite(position) or position < 0 or (position == 0 and self._file_frame > 0):
            position = self._file_frame / self._file_fps
        if self._file_frame > 0 and position > self._position:
            self._step = position - self._position
        self._position = position
        return position

    def _rewind(self) -> None:
        assert self._capture is not None
        # The next pass goes on one frame after the last one, so replay times keep increasing.
        self._loop_offset += self._position + self._step
        self._position = 0.0
        self._file_frame = 0
        if not self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
            # Not every container can seek: open it again instead.
            self._capture.release()
            self._capture = self._new_capture()
        _log.debug("%s: looping", self.name)

    def _to_gray(self, image: np.ndarray) -> np.ndarray:
        """A new gray array of the configured size; ``image`` is the reused decode buffer."""
        width, height = self.config.width, self.config.height
        if image.shape[:2] == (height, width):
            return image.copy() if image.ndim == 2 else cv2.cvtColor(image, _gray_code(image))
        if image.ndim == 2:
            gray = image
        else:
            gray = self._gray = cv2.cvtColor(image, _gray_code(image), dst=self._gray)
        if not self._said_resize:
            self._said_resize = True
            _log.info("%s: delivers %dx%d, resized to %dx%d", self.name, gray.shape[1], gray.shape[0], width, height)
        return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)

    def _stop(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ImageFolderSource(FrameSource):
    """Image files from a folder or a glob, in name order, delivered at their own size.

    A folder contributes its .png, .jpg, .jpeg, .bmp, .tif and .tiff files; a
    glob (``frames/*.jpg``, ``**`` allowed) every file it matches. A file that
    cannot be decoded is skipped with a warning and counted in ``skipped``.
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
        self._pacer = _Pacer(config.fps)

    def _start(self) -> None:
        pattern = str(self.device)
        self._paths = self._find(pattern)
        if not self._paths:
            if not _has_magic(pattern) and not Path(pattern).expanduser().exists():
                raise SourceError(f"{self.name}: no such folder")
            raise SourceError(
                f"{self.name}: no images found (expected a folder of {'/'.join(sorted(IMAGE_SUFFIXES))} files, "
                "or a glob such as frames/*.jpg)"
            )
        self._next_path = 0
        self._since_open = 0
        self._opened_at = time.time()
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
        if _has_magic(pattern):
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
                image = _read_frame(path)
            except OSError as exc:
                # Dropped from the list, so a loop does not decode (and count) it again.
                del self._paths[self._next_path]
                self._skip(exc)
                continue
            self._next_path += 1
            return image

    def _skip(self, exc: OSError) -> None:
        self.skipped += 1
        if self.skipped <= self.warn_first or self.skipped % self.warn_every == 0:
            _log.warning("%s: skipped %s (%d skipped so far)", self.name, _one_line(exc), self.skipped)

    def _stop(self) -> None:
        self._paths = []


SOURCES: dict[str, type[FrameSource]] = {cls.kind: cls for cls in (PiCameraSource, OpenCVSource, ImageFolderSource)}


def _kind_for_recording(device: str) -> str:
    path = Path(device).expanduser()
    if path.is_dir() or _has_magic(device) or path.suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    return "opencv"


def make_source(config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> FrameSource:
    """The source ``config.kind`` names, not yet opened.

    A ``device`` that is a path, glob or URL (replaying a recording) picks its
    own kind: ``images`` for a folder, a glob or an image file, ``opencv``
    otherwise, whatever ``config.kind`` says; a camera number keeps ``config.kind``.
    """
    kind: str = config.kind
    if device is not None and _camera_index(device) is None:
        kind = "opencv" if _is_url(device) else _kind_for_recording(str(device))
    try:
        cls = SOURCES[kind]
    except KeyError:
        raise ConfigError([f"source.kind: unknown source {kind!r} (expected one of: {', '.join(SOURCES)})"]) from None
    return cls(config, realtime=realtime, device=device)


def _read_frame(path: Path) -> np.ndarray:
    """One image file as 2-D uint8 gray; raises an OSError when it cannot be read or decoded."""
    if path.suffix.lower() not in _JPEG_SUFFIXES:
        return read_gray(path)
    # A JPEG stores luma (BT.601, BGR2GRAY's weights) beside chroma: decoding only the luma
    # skips chroma upsampling and colour conversion, half the decode time of a colour frame.
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    try:
        image = cv2.imdecode(data, _JPEG_LUMA) if data.size else None
    except cv2.error:
        image = None  # e.g. a header claiming more pixels than OpenCV agrees to decode
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (expected PNG, JPEG, BMP or similar)")
    return image


def _gray_code(image: np.ndarray) -> int:
    return cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
