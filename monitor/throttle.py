"""Recurring log messages, let through now and then with a count of the rest.

A disk that is full, a camera that sends odd frames or a listener with a bug
would otherwise write the same line at every frame into the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Throttle"]


class Throttle:
    """Log the first ``first`` messages, then at most one per ``every`` seconds.

    Each message let through after some were held back says how many.
    ``count`` is the number of calls, logged or not.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 60.0,
        first: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._first = first
        self._clock = clock
        self._last: float | None = None
        self._held = 0
        self.count = 0

    def __call__(self, level: int, message: str, *args: object, exc_info: bool = False) -> None:
        self.count += 1
        now = self._clock()
        if self.count > self._first and self._last is not None and now - self._last < self._every:
            self._held += 1
            return
        if self._held and self._last is not None:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, self._held, now - self._last)
        self._last, self._held = now, 0
        self._logger.log(level, message, *args, exc_info=exc_info)
