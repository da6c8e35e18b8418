"""What the frame loop tells the world: per-frame status and event records.

The daemon calls every :class:`Listener` (MQTT, hooks, the status page, the
systemd notifier) from the frame loop, so a listener must return at once:
anything slow (network, processes, disk) goes to the listener's own thread or
queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

from monitor.detector import EventEnd, EventStart, StateChange

__all__ = ["EventRecord", "FrameStatus", "Listener", "RunSummary", "Scene", "Verdict", "iso_time"]

State = Literal["unchanged", "changed", "settling", "camera_lost"]
EventType = Literal[
    "event_start",
    "event_end",
    "state",
    "camera_lost",
    "camera_found",
    "armed",
    "disarmed",
    "tamper_start",
    "tamper_end",
]
# Records of these types describe no comparison: no score, changed_fraction or boxes in their line.
_UNSCORED = ("state", "armed", "disarmed", "tamper_start", "tamper_end")
Box = tuple[int, int, int, int]


def iso_time(timestamp: float) -> str:
    """ISO-8601 with the local zone and milliseconds, e.g. 2026-11-29T12:00:00.123+01:00."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True, eq=False)
class Scene:
    """What frames are judged against, for pictures: the reference and each zone's mask (None = whole frame).

    ``masks`` and ``kinds`` (``change``/``state``) are keyed by zone name, in config order.
    """

    picture: np.ndarray
    masks: Mapping[str, np.ndarray | None]
    kinds: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one zone made of one frame.

    ``kind``: ``change`` (compared with the scene's reference), ``state``
    (compared with each of its state references) or ``activity`` (compared
    with the frame a moment before). ``score``: a change zone's masked mean
    similarity, a state zone's best state's, an activity zone's against that
    earlier frame (NaN until there is one). ``below``: the frame counts
    against the zone (under the threshold or over ``min_area``, matching no
    state, or showing movement). ``changed_pixels``: watched pixels whose local
    similarity is under ``local_level``, in frame pixels. ``state``: a change
    zone's ``unchanged``/``changed``; a state zone's current state (``unknown``
    when no state matches), None before its first decision. ``settling``: the
    frame was one of those ignored after the camera (re)opened.
    ``active``: what the zone's pin should show (an event is open, or the
    state is one of ``gpio.on_states``). ``started``/``ended``/``changed_to``:
    the transition this frame made, if any; ``boxes`` are filled on the frame
    an event starts. ``reused``: change gating found the frame like the last
    fully scored one and kept that frame's score and changed share.
    """

    zone: str
    kind: Literal["change", "state", "activity"]
    score: float
    state: str | None
    settling: bool
    active: bool
    threshold: float
    clear_threshold: float
    below: bool
    changed_fraction: float | None = None
    changed_pixels: int | None = None
    scores: Mapping[str, float] | None = None
    boxes: list[Box] = field(default_factory=list)
    started: EventStart | None = None
    ended: EventEnd | None = None
    changed_to: StateChange | None = None
    armed: bool = True  # False: disarmed (issue 14): scored, but starts no event and drives no pin
    reused: bool = False  # change gating kept the last fully scored frame's score (monitor/gating.py)

    @property
    def word(self) -> str:
        """The zone's state in one word, as the status page, CSV and MQTT say it."""
        if self.kind == "change":
            if self.state == "changed":
                return "changed"
            return "settling" if self.settling else "unchanged"
        if self.state is None:
            return "settling" if self.settling else "unknown" if self.kind == "activity" else "waiting"
        return self.state


@dataclass(frozen=True, slots=True)
class FrameStatus:
    """One scored frame, as the loop saw it: a :class:`Verdict` per zone, in config order.

    ``image`` is the grayscale frame itself (do not modify it; copy it if you
    keep it past the call). ``state`` sums the change zones up: ``changed``
    while any has an event open, ``settling`` while frames are ignored,
    else ``unchanged``. ``tamper`` is the reason of the tamper that is on
    (``covered``, ``moved``, ``defocused``, ``frozen``), None when none is.
    """

    frame: int
    time: float
    state: State
    processing_seconds: float
    zones: tuple[Verdict, ...]
    image: np.ndarray | None = None
    tamper: str | None = None

    @classmethod
    def of(
        cls,
        verdicts: Sequence[Verdict],
        *,
        frame: int,
        time: float,
        processing_seconds: float,
        image: np.ndarray | None = None,
        tamper: str | None = None,
    ) -> FrameStatus:
        """The status of a frame with these verdicts, its ``state`` summed up from them."""
        state: State = "unchanged"
        for verdict in verdicts:
            if verdict.kind == "change" and verdict.state == "changed":
                state = "changed"
                break
            if verdict.settling:
                state = "settling"
        return cls(
            frame=frame,
            time=time,
            state=state,
            processing_seconds=processing_seconds,
            zones=tuple(verdicts),
            image=image,
            tamper=tamper,
        )

    @property
    def score(self) -> float:
        """The lowest score of any zone (NaN when none scored)."""
        return min((verdict.score for verdict in self.zones), default=float("nan"))

    def zone(self, name: str) -> Verdict:
        """The verdict of the zone called ``name`` (KeyError if there is none)."""
        for verdict in self.zones:
            if verdict.zone == name:
                return verdict
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of the event log; ``to_json()`` is exactly what is written there.

    ``zone`` names the zone of zone records and is None for camera records.
    A ``state`` record carries ``state``, ``previous`` and ``scores`` in ``extra``;
    a ``tamper_start``/``tamper_end`` record ``reason`` and ``measure``.
    """

    type: EventType
    time: float
    frame: int
    zone: str | None = None
    score: float | None = None
    changed_fraction: float | None = None
    boxes: list[Box] = field(default_factory=list)
    snapshot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "time": iso_time(self.time), "frame": self.frame}
        if self.zone is not None:
            out["zone"] = self.zone
        if self.type not in _UNSCORED:
            out["score"] = None if self.score is None else round(self.score, 5)
            out["changed_fraction"] = None if self.changed_fraction is None else round(self.changed_fraction, 5)
            out["boxes"] = [list(box) for box in self.boxes]
        out["snapshot"] = self.snapshot
        out.update(self.extra)
        return out


class Listener(Protocol):
    """Something that hears about frames and events. Every method must return quickly."""

    def on_frame(self, status: FrameStatus) -> None: ...

    def on_event(self, record: EventRecord) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the closing line."""

    frames: int
    skipped: int
    events: int
    seconds: float
    reused_share: float = 0.0  # comparisons change gating saved, of every change zone's frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
