"""The live view: ``/stream.mjpg`` as the parts of a ``multipart/x-mixed-replace`` body, paced, for few viewers.

Nothing here runs in the frame loop. Every viewer's HTTP thread wakes at the
same ticks of the clock, ``fps`` a second, and asks :class:`Ticks` for the
frame of the current tick: the first to ask has the latest frame drawn and
encoded (:meth:`~monitor.web.state.LiveState.frame_jpeg`), the others get the
same bytes. So the live view costs at most ``fps`` JPEGs a second however many
watch, and nothing at all while nobody does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["CONTENT_TYPE", "StreamSlots", "Ticks", "part", "parts"]

BOUNDARY = "frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
# Without a new frame (camera lost, a paused source) the current one is sent again this often,
# so a viewer that went away is noticed by the failed write and gives its slot back.
KEEPALIVE_SECONDS = 5.0


class StreamSlots:
    """At most ``limit`` viewers at once (each holds an HTTP thread and a socket)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot; False when every one is taken."""
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self._count = max(0, self._count - 1)

    @property
    def count(self) -> int:
        """Viewers now."""
        with self._lock:
            return self._count


class Ticks:
    """``frame()`` at most once per tick of the clock (``fps`` ticks a second), shared by every viewer."""

    def __init__(self, frame: Callable[[], bytes], *, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fps = fps
        self.clock = clock
        self._frame = frame
        self._tick: int | None = None
        self._data = b""
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        """The frame of the current tick."""
        with self._lock:
            tick = math.floor(self.clock() * self.fps)
            if tick != self._tick:
                self._data = self._frame()
                self._tick = tick
            return self._data

    def until_next(self) -> float:
        """Seconds to the next tick."""
        now = self.clock()
        return (math.floor(now * self.fps) + 1) / self.fps - now


def part(jpeg: bytes) -> bytes:
    """One JPEG as a part of the multipart body."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"


def parts(
    frames: Ticks,
    *,
    stopping: threading.Event,
    keepalive: float = KEEPALIVE_SECONDS,
) -> Iterator[bytes]:
    """The parts of one viewer's stream, until ``stopping`` is set.

    ``frames()`` gives the same bytes object until a new frame arrives: a
    part is made only for a new one (or after ``keepalive`` seconds).
    """
    last: bytes | None = None
    sent_at = float("-inf")
    while not stopping.is_set():
        data = frames()
        now = frames.clock()
        if data is not last or now - sent_at >= keepalive:
            yield part(data)
            last, sent_at = data, now
        stopping.wait(frames.until_next())
