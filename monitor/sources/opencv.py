"""Webcams, video files and network streams through ``cv2.VideoCapture``.

Three cases behave differently, so each is a class of its own, and
:func:`opencv_source` picks one from ``device``:

- :class:`CameraSource` (a camera index or ``/dev/video*``) is live: it asks
  the camera for the configured size and rate, and a failed read raises
  SourceError; the daemon then closes it and opens the camera again.
- :class:`StreamSource` (an rtsp/http URL) is live too, with FFmpeg's open and
  read timeouts; a failed read is a lost stream, reconnected the same way.
  Its password never appears in a log line or an error.
- :class:`VideoFileSource` ends (``read()`` returns None) or, with
  ``config.loop``, starts again; it knows each frame's position in the file,
  which stamps the frames of an unpaced replay.

Live sources are drained with ``grab()`` between delivered frames, so that a
delivered frame is fresh, not one that waited in the driver's queue.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from monitor.config import SourceConfig
from monitor.exc import SourceError
from monitor.sources.base import FrameSource, Pacer, camera_index, is_url, redact

__all__ = ["CameraSource", "StreamSource", "VideoFileSource", "opencv_source"]

_log = logging.getLogger(__name__)


class _CaptureSource(FrameSource):
    """What the three OpenCV cases share: the capture, its decode buffer and the grey conversion."""

    kind = "opencv"

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._capture: cv2.VideoCapture | None = None
        self._pacer = Pacer(config.fps)
        self._bgr: np.ndarray | None = None  # decode buffer, reused by VideoCapture.read/retrieve
        self._gray: np.ndarray | None = None  # gray at the delivered size, reused before resizing
        self._said_resize = False

    def _start(self) -> None:
        self._capture = self._new_capture()
        if not self._capture.isOpened():
            raise SourceError(f"{self.name}: cannot open {self._what_failed()}")
        self._pacer.reset()

    def _new_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self.device))

    def _what_failed(self) -> str:
        return ""

    def _next_live(self) -> tuple[np.ndarray, float]:
        capture = self._capture
        assert capture is not None
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


class CameraSource(_CaptureSource):
    """A webcam by index (``0``) or device node (``/dev/video0``); live, re-opened after a loss."""

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._index = camera_index(self.device)

    @property
    def name(self) -> str:
        return f"opencv camera {self._index}" if self._index is not None else f"opencv {self.device}"

    def _new_capture(self) -> cv2.VideoCapture:
        if self._index is not None:
            return cv2.VideoCapture(self._index)
        return cv2.VideoCapture(str(self.device))

    def _what_failed(self) -> str:
        return "(is it connected, and not in use by another program?)"

    def _start(self) -> None:
        super()._start()
        assert self._capture is not None
        # Requests, not promises: a webcam picks its nearest mode and frames are resized if needed.
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        self._capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _next(self) -> tuple[np.ndarray, float]:
        return self._next_live()


class StreamSource(_CaptureSource):
    """An rtsp/http(s) stream; live, reconnected after a loss, its password kept out of every message."""

    @property
    def name(self) -> str:
        return f"opencv {redact(str(self.device))}"

    def _new_capture(self) -> cv2.VideoCapture:
        target = str(self.device)
        if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            read_ms = round(self.config.capture_timeout * 1000)
            # Connecting to a camera takes longer than waiting for one of its frames.
            open_ms = max(read_ms, 10_000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(target)

    def _what_failed(self) -> str:
        return "(check the address, the network and the credentials)"

    def _next(self) -> tuple[np.ndarray, float]:
        return self._next_live()


class VideoFileSource(_CaptureSource):
    """A video file: paced at ``fps`` in ``run``, as fast as it decodes in ``replay``; it ends or loops."""

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        # Recording position, for the times of unpaced replays.
        self._opened_at = 0.0
        self._file_fps = config.fps
        self._file_frame = 0
        self._loop_offset = 0.0
        self._position = 0.0
        self._first_stamp = 0.0
        self._step = 1.0 / config.fps

    @property
    def is_recording(self) -> bool:
        return True

    def _new_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(Path(str(self.device)).expanduser()))

    def _what_failed(self) -> str:
        return "(not a video OpenCV can decode)"

    def _start(self) -> None:
        if not Path(str(self.device)).expanduser().is_file():
            raise SourceError(f"{self.name}: no such file")
        super()._start()
        assert self._capture is not None
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._file_fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else self.config.fps
        self._step = 1.0 / self._file_fps
        self._opened_at = time.time() if self.start_time is None else self.start_time
        self._file_frame = 0
        self._loop_offset = 0.0
        self._position = 0.0

    def _next(self) -> tuple[np.ndarray, float] | None:
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


def opencv_source(
    config: SourceConfig, *, realtime: bool = True, device: int | str | None = None
) -> CameraSource | StreamSource | VideoFileSource:
    """The OpenCV source for ``device`` (default ``config.device``): a camera, a stream or a file."""
    target = config.device if device is None else device
    if camera_index(target) is not None or str(target).startswith("/dev/"):
        return CameraSource(config, realtime=realtime, device=device)
    if is_url(target):
        return StreamSource(config, realtime=realtime, device=device)
    return VideoFileSource(config, realtime=realtime, device=device)


def _gray_code(image: np.ndarray) -> int:
    return cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
