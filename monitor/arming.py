"""Armed and disarmed zones: schedule windows, manual commands, snoozes, and which of them rules.

Pure: every function takes ``now`` (Unix seconds) and returns values; no
clock, no file, no thread. The state file and the hand-over between threads
live in :mod:`monitor.arming_state`.

Precedence, for one zone at time ``now``:

1. A manual command with a duration (a *snooze*, ``monitor disarm --for 30m``)
   holds until it runs out, whatever the schedule does meanwhile.
2. A manual command without one holds until the next schedule *boundary*
   after it was given (the start or the end of any window that names the
   zone); with no window naming the zone, until the next command.
3. Otherwise the schedule: the last window in the list that covers ``now``.
4. Otherwise ``arming.default``.

Windows are in local time (``arming.timezone``, else the system's): a window
``from: "22:00"`` ``to: "06:30"`` starts at 22:00 on each of its ``days`` and
ends at 06:30 the next morning, however long that night is on a
daylight-saving change. A window whose ``to`` equals its ``from`` lasts a day.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as dt_time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from monitor.config import WEEKDAYS, ArmingConfig, ArmingWindow
from monitor.exc import CommandError
from monitor.status import EventRecord, iso_time

__all__ = [
    "COMMAND_SOURCES",
    "MAX_SNOOZE_SECONDS",
    "Override",
    "Policy",
    "Schedule",
    "ZoneArming",
    "arming_record",
    "check_duration",
    "clock_text",
    "command_fields",
    "parse_duration",
]

By = Literal["schedule", "mqtt", "http", "button", "cli"]
COMMAND_SOURCES: tuple[str, ...] = ("mqtt", "http", "button", "cli")
MAX_SNOOZE_SECONDS = 30 * 86400.0  # a bound on what a command may ask for: a month


@dataclass(frozen=True, slots=True)
class Override:
    """A manual command for one zone: ``armed`` or not, given by ``by`` at ``at``.

    ``until``: the end of a snooze (a command with a duration); None: the
    command holds until the next schedule boundary after ``at``.
    """

    armed: bool
    by: str
    at: float
    until: float | None = None


@dataclass(frozen=True, slots=True)
class ZoneArming:
    """Whether a zone is armed at some moment, and why.

    ``by``: ``schedule`` (a window, or the default) or the source of the
    manual command in force. ``reason``: the same for people
    (``schedule "day" until 18:00``, ``manual``, ``snoozed until 14:05``).
    ``until``: when this may next change by itself (None: not by itself).
    """

    armed: bool
    by: str
    reason: str
    until: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "armed": self.armed,
            "by": self.by,
            "reason": self.reason,
            "until": None if self.until is None else iso_time(self.until),
        }


@dataclass(frozen=True, slots=True)
class _Window:
    label: str
    days: frozenset[int] | None  # weekday numbers (Monday 0) a window starts on; None: every day
    start: dt_time
    end: dt_time
    zones: frozenset[str] | None
    armed: bool

    @classmethod
    def of(cls, window: ArmingWindow) -> _Window:
        days = None if window.days is None else frozenset(WEEKDAYS.index(day) for day in window.days)
        zones = None if window.zones is None else frozenset(window.zones)
        return cls(window.label, days, window.start, window.end, zones, window.armed_state == "armed")

    def names(self, zone: str) -> bool:
        return self.zones is None or zone in self.zones

    def span(self, day: date, tz: tzinfo | None) -> tuple[float, float] | None:
        """The window that starts on ``day`` as (start, end) Unix seconds; None if it does not start that day."""
        if self.days is not None and day.weekday() not in self.days:
            return None
        end_day = day if self.end > self.start else day + timedelta(days=1)
        # Wall-clock times: on a daylight-saving night the window is an hour longer or shorter.
        start = datetime.combine(day, self.start, tzinfo=tz).timestamp()
        end = datetime.combine(end_day, self.end, tzinfo=tz).timestamp()
        return start, end


class Schedule:
    """The windows of ``arming.schedule``, in local time of ``tz`` (None: the system's)."""

    def __init__(self, windows: Sequence[ArmingWindow], *, tz: tzinfo | None = None) -> None:
        self.windows = [_Window.of(window) for window in windows]
        self.tz = tz

    @classmethod
    def from_config(cls, config: ArmingConfig) -> Schedule:
        return cls(config.schedule, tz=None if config.timezone is None else ZoneInfo(config.timezone))

    def _local_day(self, when: float) -> date:
        return datetime.fromtimestamp(when, self.tz).date()

    def next_midnight(self, now: float) -> float:
        """The next local midnight after ``now`` (a reason's "until tue 07:30" becomes "until 07:30" then)."""
        tomorrow = self._local_day(now) + timedelta(days=1)
        return datetime.combine(tomorrow, dt_time(0, 0), tzinfo=self.tz).timestamp()

    def window_at(self, zone: str, now: float) -> _Window | None:
        """The window that rules ``zone`` at ``now``: the last one in the list that covers it."""
        today = self._local_day(now)
        for window in reversed(self.windows):
            if not window.names(zone):
                continue
            for day in (today - timedelta(days=1), today):  # a window from yesterday may run past midnight
                span = window.span(day, self.tz)
                if span is not None and span[0] <= now < span[1]:
                    return window
        return None

    def next_boundary(self, zone: str, after: float) -> float | None:
        """The first start or end of a window naming ``zone`` later than ``after``; None without one."""
        today = self._local_day(after)
        found: float | None = None
        for window in self.windows:
            if not window.names(zone):
                continue
            for offset in range(-1, 8):  # a weekly window comes round within 7 days
                span = window.span(today + timedelta(days=offset), self.tz)
                if span is None:
                    continue
                for boundary in span:
                    if boundary > after and (found is None or boundary < found):
                        found = boundary
        return found


class Policy:
    """The schedule and the default: what a zone is at ``now``, given the manual command for it."""

    def __init__(self, schedule: Schedule, *, default_armed: bool = True) -> None:
        self.schedule = schedule
        self.default_armed = default_armed

    @classmethod
    def from_config(cls, config: ArmingConfig) -> Policy:
        return cls(Schedule.from_config(config), default_armed=config.default == "armed")

    def expiry(self, zone: str, override: Override) -> float | None:
        """When ``override`` stops holding for ``zone``: its snooze's end, else the next boundary (None: never)."""
        if override.until is not None:
            return override.until
        return self.schedule.next_boundary(zone, override.at)

    def decide(self, zone: str, now: float, override: Override | None = None) -> ZoneArming:
        """Whether ``zone`` is armed at ``now``, by whom and until when (see the module's precedence)."""
        tz = self.schedule.tz
        if override is not None:
            expiry = self.expiry(zone, override)
            if expiry is None or now < expiry:
                if override.until is not None and not override.armed:
                    reason = f"snoozed until {clock_text(expiry, now, tz)}"
                else:
                    reason = "manual" + _until(expiry, now, tz)
                return ZoneArming(override.armed, override.by, reason, expiry)
        window = self.schedule.window_at(zone, now)
        until = self.schedule.next_boundary(zone, now)
        if window is not None:
            return ZoneArming(window.armed, "schedule", f'schedule "{window.label}"' + _until(until, now, tz), until)
        return ZoneArming(self.default_armed, "schedule", "default" + _until(until, now, tz), until)


def _until(when: float | None, now: float, tz: tzinfo | None) -> str:
    return "" if when is None else f" until {clock_text(when, now, tz)}"


def clock_text(when: float | None, now: float, tz: tzinfo | None = None) -> str:
    """``when`` as people read it from ``now``: ``14:05`` today, ``tue 07:30`` this week, else the date too."""
    if when is None:
        return "-"
    at = datetime.fromtimestamp(when, tz)
    today = datetime.fromtimestamp(now, tz).date()
    if at.date() == today:
        return f"{at:%H:%M}"
    if timedelta(0) < at.date() - today < timedelta(days=7):
        return f"{WEEKDAYS[at.weekday()]} {at:%H:%M}"
    return f"{at:%Y-%m-%d %H:%M}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``30m``, ``90s``, ``1h30m``, ``2d`` or plain seconds (``600``) as seconds; CommandError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    try:
        seconds = float(compact)
    except ValueError:
        pass
    else:
        return check_duration(seconds)
    parts = _DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise CommandError(f"duration {text!r}: expected a number with s, m, h or d, such as 30m or 1h30m")
    return check_duration(sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def check_duration(seconds: float) -> float:
    """``seconds`` if it is a usable snooze (above 0, at most 30 days); CommandError otherwise."""
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SNOOZE_SECONDS):
        raise CommandError(
            f"duration: must be above 0 and at most 30 days ({MAX_SNOOZE_SECONDS:.0f} s), got {seconds:g}"
        )
    return seconds


def arming_record(zone: str, state: ZoneArming, *, frame: int, now: float) -> EventRecord:
    """The event-log line of a zone becoming armed or disarmed."""
    return EventRecord(
        type="armed" if state.armed else "disarmed",
        time=now,
        frame=frame,
        zone=zone,
        extra={
            "by": state.by,
            "until": None if state.until is None else iso_time(state.until),
            "reason": state.reason,
        },
    )


def command_fields(body: Any) -> tuple[str | None, float | None]:
    """The ``zone`` and ``for_seconds`` of a command's JSON body (``{}`` or null: every zone, no snooze).

    CommandError names the field and what was expected.
    """
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise CommandError('body: expected a JSON object such as {"zone": "door", "for_seconds": 1800}')
    unknown = sorted(set(body) - {"zone", "for_seconds"})
    if unknown:
        raise CommandError(f"{unknown[0]}: unknown field (expected zone, for_seconds)")
    zone, seconds = body.get("zone"), body.get("for_seconds")
    if zone is not None and not isinstance(zone, str):
        raise CommandError(f"zone: expected a zone's name or null, got {zone!r}")
    if seconds is None:
        return zone, None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise CommandError(f"for_seconds: expected a number of seconds or null, got {seconds!r}")
    return zone, check_duration(float(seconds))
