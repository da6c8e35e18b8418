"""What the frame loop tells the world: per-frame status and event records.

The daemon calls every :class:`Listener` (MQTT, hooks, the status page, the
systemd notifier) from the frame loop, so a listener must return at once:
anything slow (network, processes, disk) goes to the listener's own thread or
queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

__all__ = ["EventRecord", "FrameStatus", "Listener", "iso_time"]

State = Literal["unchanged", "changed", "settling", "camera_lost"]
EventType = Literal["event_start", "event_end", "camera_lost", "camera_found"]


def iso_time(timestamp: float) -> str:
    """ISO-8601 with the local zone and milliseconds, e.g. 2026-11-29T12:00:00.123+01:00."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class FrameStatus:
    """One scored frame, as the loop saw it.

    ``image`` is the grayscale frame itself (do not modify it; copy it if you
    keep it past the call). ``boxes`` are filled only on frames where they were
    computed (event start), otherwise empty.
    """

    frame: int
    time: float
    score: float
    changed_fraction: float
    below: bool
    state: State
    threshold: float
    clear_threshold: float
    processing_seconds: float
    image: np.ndarray | None = None
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of the event log; ``to_json()`` is exactly what is written there."""

    type: EventType
    time: float
    frame: int
    score: float | None = None
    changed_fraction: float | None = None
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    snapshot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "time": iso_time(self.time),
            "frame": self.frame,
            "score": None if self.score is None else round(self.score, 5),
            "changed_fraction": None if self.changed_fraction is None else round(self.changed_fraction, 5),
            "boxes": [list(box) for box in self.boxes],
            "snapshot": self.snapshot,
        }
        out.update(self.extra)
        return out


class Listener(Protocol):
    """Something that hears about frames and events. Every method must return quickly."""

    def on_frame(self, status: FrameStatus) -> None: ...

    def on_event(self, record: EventRecord) -> None: ...

    def close(self) -> None: ...
