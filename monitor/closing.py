"""The one context-manager shape every device-holding object here shares."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Closing"]


class Closing:
    """Mixin: ``with thing:`` calls ``thing.close()`` on the way out, however it is left.

    Subclasses define an idempotent ``close()``; those that must start or open
    something on entry override ``__enter__`` and call it.
    """

    def close(self) -> None:
        """Release what the object holds; later calls do nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
