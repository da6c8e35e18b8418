"""A camera that stops delivering: re-open it with a capped back-off, give up after a while.

The camera counts as lost from the first failed read until a frame arrives
again: a camera that opens but delivers nothing is still lost, and its time
keeps counting toward ``source.give_up_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from monitor.exc import SourceError
from monitor.sources import FrameSource

__all__ = ["MAX_BACKOFF", "Recovery", "reopen", "swap_source"]

_log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class Recovery:
    """The lost/found bookkeeping of one frame loop.

    ``sleep(seconds)`` waits between tries and returns early when the loop
    is asked to stop; ``stopping()`` says whether it was.
    """

    def __init__(
        self,
        *,
        give_up_seconds: float,
        sleep: Callable[[float], object],
        stopping: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.give_up_seconds = give_up_seconds
        self._sleep = sleep
        self._stopping = stopping
        self._clock = clock
        self._lost_since: float | None = None
        self._backoff = FIRST_BACKOFF

    @property
    def lost(self) -> bool:
        """True from a failed read until the next frame arrives."""
        return self._lost_since is not None

    def reopen(self, source: FrameSource, error: SourceError) -> bool:
        """Close ``source`` and open it again, backing off between tries, until it opens.

        Returns True once it opened (its frames are then settle frames),
        False when the loop was asked to stop meanwhile. Raises SourceError
        once the camera has been lost for ``give_up_seconds``.
        """
        if self._lost_since is None:
            self._lost_since, self._backoff = self._clock(), FIRST_BACKOFF
            _log.warning("camera lost: %s", error)
        else:
            _log.info("camera still lost: %s", error)
        source.close()
        while not self._stopping():
            waited = self._clock() - self._lost_since
            if waited >= self.give_up_seconds:
                raise SourceError(
                    f"camera lost for {waited:.0f} s (source.give_up_seconds is {self.give_up_seconds:g}): "
                    f"giving up; last error: {error}"
                )
            self._sleep(min(self._backoff, self.give_up_seconds - waited))
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            if self._stopping():
                return False
            try:
                source.open()
            except SourceError as exc:
                error = exc
                _log.info("camera still lost (%s); next try in %.1f s", exc, self._backoff)
                continue
            return True
        return False

    def found(self) -> float:
        """A frame arrived: the camera is back. Returns the seconds it was lost."""
        assert self._lost_since is not None
        seconds = self._clock() - self._lost_since
        _log.info("camera found again after %.1f s", seconds)
        self._lost_since = None
        return seconds


def swap_source(running: FrameSource, new: FrameSource) -> None:
    """Close ``running`` and open ``new`` in its place (a reload asked for another source).

    The running one is closed first: a camera cannot be opened twice. If
    ``new`` cannot open, ``running`` is opened again (see :func:`reopen`) and
    the SourceError raised.
    """
    running.close()
    try:
        new.open()
    except SourceError:
        new.close()
        reopen(running)
        raise


def reopen(source: FrameSource) -> None:
    """Open ``source`` again; if it cannot, say so and leave it to the next read, which the loop recovers from."""
    try:
        source.open()
    except SourceError as exc:
        _log.warning("%s", exc)
