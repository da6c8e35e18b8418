"""What every frame source shares: the Frame, the FrameSource interface, pacing and read-ahead.

Pacing: with ``realtime=True`` (``monitor run``) recordings (video files, image
folders) are delivered at ``config.fps``, and live sources as frames come but
at most ``config.fps``; with ``realtime=False`` (``monitor replay``) everything
is delivered as fast as it can be decoded, and recordings are decoded a few
frames ahead in a thread, so that decoding the next frame overlaps with
comparing this one on another core.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from monitor.closing import Closing
from monitor.config import SourceConfig
from monitor.exc import SourceError

__all__ = ["Frame", "FrameSource", "Pacer", "camera_index", "has_magic", "is_url", "one_line", "redact"]

_log = logging.getLogger(__name__)


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


class Pacer:
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


def camera_index(device: int | str) -> int | None:
    """The camera number ``device`` names (``0``, ``"1"``), or None for a path, glob or URL."""
    if isinstance(device, int):
        return device
    text = device.strip()
    return int(text) if text.isdigit() else None


def is_url(device: int | str) -> bool:
    return isinstance(device, str) and "://" in device


def has_magic(text: str) -> bool:
    return any(char in text for char in "*?[")


def redact(url: str) -> str:
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
    ``start_time`` (set before opening) stamps an unpaced recording's first
    frame instead of the open time: frame i is then at start + i / fps.
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
        # Unpaced recordings: the time of their first frame (None: when opened), e.g. replay --start-time.
        self.start_time: float | None = None
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

        Raises SourceError with a one-line message naming the device, for
        any OSError of the device too.
        """
        if self._open:
            return
        try:
            self._start()
        except OSError as exc:  # a folder the daemon may not read, no file descriptors left, ...
            self._stop()
            raise SourceError(f"{self.name}: cannot open: {one_line(exc)}") from exc
        except BaseException:
            self._stop()
            raise
        if self.READ_AHEAD > 0 and not self.realtime and self.is_recording:
            self._ahead = _ReadAhead(self._next, depth=self.READ_AHEAD, name=f"read-ahead {self.name}")
        self._open = True
        _log.info("%s: open", self.name)

    def read(self) -> Frame | None:
        """The next frame, or None when a recording has ended (never for live sources).

        Raises SourceError when the device fails (any OSError included) or no
        frame arrives within ``config.capture_timeout``.
        """
        if not self._open:
            raise SourceError(f"{self.name}: read() on a source that is not open")
        try:
            got = self._next() if self._ahead is None else self._ahead.get()
        except OSError as exc:  # every failure of a device or a file is a lost camera, recovered from
            raise SourceError(f"{self.name}: {one_line(exc)}") from exc
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


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
