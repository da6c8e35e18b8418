"""When a run of low scores becomes an event, and when the event is over.

A pure state machine: :meth:`Detector.update` takes one frame's score with its
frame number and timestamp and returns an :class:`EventStart`, an
:class:`EventEnd` or ``None``. No clock, no camera, no pin.

The rules, frame by frame:

- A frame is *below* when ``score < threshold``, or, with ``min_area``, when
  at least ``min_area`` watched pixels changed (a small object in a big zone
  hardly moves the mean). The event starts on the
  ``trigger_frames``-th consecutive below frame; :class:`EventStart` carries
  that (trigger) frame's number, time and score. Any frame at or above
  ``threshold`` resets the run, so a score flickering around the threshold
  never starts an event when ``trigger_frames`` > 1.
- While an event is open it ends on the ``clear_frames``-th consecutive frame
  with ``score >= clear_threshold`` (and, with ``min_area``, fewer changed
  pixels than that). A frame under ``clear_threshold`` (below
  ``threshold`` or in the hysteresis band between the two) resets that run, so
  a scene hovering in the band keeps the event open.
- :class:`EventEnd` spans the trigger frame to the clearing frame;
  ``lowest_score`` / ``lowest_frame`` are the minimum over that span.
- :meth:`Detector.settle` marks the source as just (re)opened: the next
  ``settle_frames`` frames are junk (auto-exposure, a stale buffer). They
  neither start nor end an event, count toward no run, and do not touch
  ``lowest_score``; both runs restart from zero after them. An open event
  stays open across a settle. The detector does not settle by itself at
  construction: the caller calls ``settle()`` whenever the source opens,
  including the first time.

:class:`StateDetector` does the same for a state zone: each frame brings a
score per named state; the frame's *candidate* is the best-scoring state if
that score is at or above ``threshold``, else ``unknown``. A candidate other
than the current state must be the candidate of ``trigger_frames``
consecutive frames to become the state, which gives a :class:`StateChange`
(the first decision too, with ``previous`` None). Settling works as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config import UNKNOWN, DetectionConfig
from monitor.exc import ConfigError

__all__ = ["ActivityDetector", "Detector", "EventEnd", "EventStart", "StateChange", "StateDetector"]


@dataclass(frozen=True, slots=True)
class EventStart:
    """An event was declared on ``frame`` (the trigger frame) at ``time`` with that frame's ``score``."""

    frame: int
    time: float
    score: float


@dataclass(frozen=True, slots=True)
class EventEnd:
    """An event is over.

    ``finished_early`` is True when :meth:`Detector.finish` closed it (the
    source ended, shutdown) rather than a run of clear frames.
    """

    start_frame: int
    start_time: float
    end_frame: int
    end_time: float
    lowest_score: float
    lowest_frame: int
    finished_early: bool

    @property
    def duration(self) -> float:
        """Seconds from the start to the end."""
        return self.end_time - self.start_time


def _check(
    *, threshold: float, clear_threshold: float, trigger_frames: int, clear_frames: int, settle_frames: int
) -> None:
    problems = []
    if not 0.0 <= threshold <= 1.0:
        problems.append(f"detection.threshold: must be between 0 and 1, got {threshold:g}")
    if not threshold <= clear_threshold <= 1.0:
        problems.append(f"detection.clear_threshold: must be between threshold and 1, got {clear_threshold:g}")
    if trigger_frames < 1:
        problems.append(f"detection.trigger_frames: must be at least 1, got {trigger_frames}")
    if clear_frames < 1:
        problems.append(f"detection.clear_frames: must be at least 1, got {clear_frames}")
    if settle_frames < 0:
        problems.append(f"detection.settle_frames: must be 0 or more, got {settle_frames}")
    if problems:
        raise ConfigError(problems)


class Detector:
    """Turns per-frame scores into event starts and ends, with hysteresis and settling."""

    def __init__(
        self,
        *,
        threshold: float,
        clear_threshold: float,
        trigger_frames: int,
        clear_frames: int,
        settle_frames: int,
        min_area: int | None = None,
    ) -> None:
        _check(
            threshold=threshold,
            clear_threshold=clear_threshold,
            trigger_frames=trigger_frames,
            clear_frames=clear_frames,
            settle_frames=settle_frames,
        )
        self.threshold = threshold
        self.clear_threshold = clear_threshold
        self.trigger_frames = trigger_frames
        self.clear_frames = clear_frames
        self.settle_frames = settle_frames
        self.min_area = min_area
        self._below_run = 0
        self._clear_run = 0
        self._settle_left = 0
        self._start: EventStart | None = None
        self._lowest_score = 0.0
        self._lowest_frame = 0

    @classmethod
    def from_config(cls, config: DetectionConfig, *, min_area: int | None = None) -> Detector:
        """A detector with the thresholds and counts of ``config``; ``min_area`` in pixels (see ``below``)."""
        return cls(
            threshold=config.threshold,
            clear_threshold=config.clear_threshold,
            trigger_frames=config.trigger_frames,
            clear_frames=config.clear_frames,
            settle_frames=config.settle_frames,
            min_area=min_area,
        )

    def reconfigure(self, config: DetectionConfig, *, min_area: int | None = None) -> None:
        """Take new thresholds and counts, keeping the open event and the current runs.

        A run already as long as a new, shorter count completes on the next
        qualifying frame; frames still to settle are capped at the new
        ``settle_frames``.
        """
        _check(
            threshold=config.threshold,
            clear_threshold=config.clear_threshold,
            trigger_frames=config.trigger_frames,
            clear_frames=config.clear_frames,
            settle_frames=config.settle_frames,
        )
        self.threshold = config.threshold
        self.clear_threshold = config.clear_threshold
        self.trigger_frames = config.trigger_frames
        self.clear_frames = config.clear_frames
        self.settle_frames = config.settle_frames
        self.min_area = min_area
        self._settle_left = min(self._settle_left, config.settle_frames)

    @property
    def active(self) -> bool:
        """True while an event is open."""
        return self._start is not None

    @property
    def settling(self) -> bool:
        """True while frames after a (re)open are still being ignored."""
        return self._settle_left > 0

    @property
    def current(self) -> EventStart | None:
        """The start of the open event, or None."""
        return self._start

    def below(self, score: float, changed: int = 0) -> bool:
        """True when a frame counts as changed: ``score`` under ``threshold``, or ``changed`` >= ``min_area``."""
        return score < self.threshold or (self.min_area is not None and changed >= self.min_area)

    def clear(self, score: float, changed: int = 0) -> bool:
        """True when a frame counts toward the end of an event: ``score`` at or above ``clear_threshold``
        and fewer than ``min_area`` changed pixels."""
        area_clear = self.min_area is None or changed < self.min_area
        return score >= self.clear_threshold and area_clear  # written so that NaN is never clear

    def settle(self) -> None:
        """Ignore the next ``settle_frames`` frames; the source just (re)opened."""
        self._settle_left = self.settle_frames
        self._below_run = 0
        self._clear_run = 0

    def update(self, score: float, *, frame: int, now: float, changed: int = 0) -> EventStart | EventEnd | None:
        """Feed one frame's score (and changed pixels); return the event boundary it makes, if any."""
        if self._settle_left > 0:
            self._settle_left -= 1
            return None
        if self._start is None:
            return self._update_idle(score, changed, frame=frame, now=now)
        return self._update_active(score, changed, frame=frame, now=now)

    def finish(self, *, frame: int, now: float) -> EventEnd | None:
        """Close the open event because frames stopped (source ended, shutdown); None if none is open."""
        self._below_run = 0
        self._clear_run = 0
        if self._start is None:
            return None
        return self._end(frame=frame, now=now, early=True)

    def _update_idle(self, score: float, changed: int, *, frame: int, now: float) -> EventStart | None:
        if not self.below(score, changed):
            self._below_run = 0
            return None
        self._below_run += 1
        if self._below_run < self.trigger_frames:
            return None
        self._below_run = 0
        self._clear_run = 0
        self._start = EventStart(frame=frame, time=now, score=score)
        self._lowest_score = score
        self._lowest_frame = frame
        return self._start

    def _update_active(self, score: float, changed: int, *, frame: int, now: float) -> EventEnd | None:
        if score < self._lowest_score:
            self._lowest_score = score
            self._lowest_frame = frame
        if not self.clear(score, changed):  # NaN resets the run too
            self._clear_run = 0
            return None
        self._clear_run += 1
        if self._clear_run < self.clear_frames:
            return None
        return self._end(frame=frame, now=now, early=False)

    def _end(self, *, frame: int, now: float, early: bool) -> EventEnd:
        start = self._start
        assert start is not None
        self._start = None
        self._clear_run = 0
        self._below_run = 0
        return EventEnd(
            start_frame=start.frame,
            start_time=start.time,
            end_frame=frame,
            end_time=now,
            lowest_score=self._lowest_score,
            lowest_frame=self._lowest_frame,
            finished_early=early,
        )


@dataclass(frozen=True, slots=True)
class StateChange:
    """A state zone took a new ``state`` on ``frame`` at ``time``; ``previous`` is None for its first one."""

    state: str
    previous: str | None
    frame: int
    time: float
    scores: Mapping[str, float]


class StateDetector:
    """Turns per-frame scores of named states into the zone's state, with a trigger run and settling."""

    def __init__(self, *, threshold: float, trigger_frames: int, settle_frames: int) -> None:
        _check(
            threshold=threshold,
            clear_threshold=threshold,
            trigger_frames=trigger_frames,
            clear_frames=1,
            settle_frames=settle_frames,
        )
        self.threshold = threshold
        self.trigger_frames = trigger_frames
        self.settle_frames = settle_frames
        self.state: str | None = None
        self._pending: str | None = None
        self._run = 0
        self._settle_left = 0

    @classmethod
    def from_config(cls, config: DetectionConfig) -> StateDetector:
        """A detector with the threshold and counts of ``config``."""
        return cls(threshold=config.threshold, trigger_frames=config.trigger_frames, settle_frames=config.settle_frames)

    def reconfigure(self, config: DetectionConfig) -> None:
        """Take a new threshold and counts, keeping the state and the current run."""
        _check(
            threshold=config.threshold,
            clear_threshold=config.threshold,
            trigger_frames=config.trigger_frames,
            clear_frames=1,
            settle_frames=config.settle_frames,
        )
        self.threshold = config.threshold
        self.trigger_frames = config.trigger_frames
        self.settle_frames = config.settle_frames
        self._settle_left = min(self._settle_left, config.settle_frames)

    @property
    def settling(self) -> bool:
        """True while frames after a (re)open are still being ignored."""
        return self._settle_left > 0

    def settle(self) -> None:
        """Ignore the next ``settle_frames`` frames; the source just (re)opened."""
        self._settle_left = self.settle_frames
        self._pending = None
        self._run = 0

    def candidate(self, scores: Mapping[str, float]) -> str:
        """The state these scores point to: the best one at or above the threshold, else ``unknown``."""
        best = max(scores, key=lambda name: scores[name], default=None)
        if best is None or not scores[best] >= self.threshold:  # NaN counts as no match
            return UNKNOWN
        return best

    def update(self, scores: Mapping[str, float], *, frame: int, now: float) -> StateChange | None:
        """Feed one frame's scores; return the change of state it completes, if any."""
        if self._settle_left > 0:
            self._settle_left -= 1
            return None
        candidate = self.candidate(scores)
        if candidate == self.state:
            self._pending, self._run = None, 0
            return None
        if candidate != self._pending:
            self._pending, self._run = candidate, 0
        self._run += 1
        if self._run < self.trigger_frames:
            return None
        previous, self.state = self.state, candidate
        self._pending, self._run = None, 0
        return StateChange(state=candidate, previous=previous, frame=frame, time=now, scores=dict(scores))


class ActivityDetector:
    """Turns per-frame movement into ``moving`` and ``still``: an activity zone's state machine.

    Each frame says whether the zone moved (True), did not (False) or cannot
    tell yet (None: no earlier frame to compare with). The zone becomes
    ``moving`` once movement holds for ``trigger_frames`` frames in a row, and
    ``still`` once no movement has been seen for ``still_after`` seconds of
    frame time (counted from the first judged frame when it never moved). The
    state is None until the first decision. Settling works as in :class:`Detector`.
    """

    def __init__(self, *, still_after: float, trigger_frames: int, settle_frames: int) -> None:
        if not still_after > 0 or trigger_frames < 1 or settle_frames < 0:
            raise ConfigError(
                [
                    f"activity: still_after must be above 0, trigger_frames 1 or more, settle_frames 0 or more, "
                    f"got {still_after:g}, {trigger_frames}, {settle_frames}"
                ]
            )
        self.still_after = still_after
        self.trigger_frames = trigger_frames
        self.settle_frames = settle_frames
        self.state: str | None = None
        self._run = 0
        self._moved_at: float | None = None  # frame time of the last movement (or of the first frame)
        self._settle_left = 0

    @property
    def settling(self) -> bool:
        """True while frames after a (re)open are still being ignored."""
        return self._settle_left > 0

    def settle(self) -> None:
        """Ignore the next ``settle_frames`` frames; the source just (re)opened."""
        self._settle_left = self.settle_frames
        self._run = 0

    def reconfigure(self, *, still_after: float, trigger_frames: int, settle_frames: int) -> None:
        """Take new times and counts, keeping the state and the clock."""
        self.still_after, self.trigger_frames, self.settle_frames = still_after, trigger_frames, settle_frames
        self._settle_left = min(self._settle_left, settle_frames)

    def update(
        self, movement: bool | None, *, frame: int, now: float, scores: Mapping[str, float]
    ) -> StateChange | None:
        """Feed one frame's movement; return the change of state it completes, if any."""
        if self._settle_left > 0:
            self._settle_left -= 1
            return None
        if self._moved_at is None or now < self._moved_at:  # the first frame, or the clock stepped back
            self._moved_at = now
        if movement:
            self._moved_at = now
            self._run += 1
            if self.state != "moving" and self._run >= self.trigger_frames:
                return self._become("moving", frame=frame, now=now, scores=scores)
            return None
        self._run = 0
        if movement is not None and self.state != "still" and now - self._moved_at >= self.still_after:
            return self._become("still", frame=frame, now=now, scores=scores)
        return None

    def _become(self, state: str, *, frame: int, now: float, scores: Mapping[str, float]) -> StateChange:
        previous, self.state = self.state, state
        return StateChange(state=state, previous=previous, frame=frame, time=now, scores=dict(scores))
