"""The armed state of a monitor: commands from any thread, the state file, and what the frame loop reads.

:class:`ArmingState` is where MQTT, the status page, the button and the
control socket hand their arm and disarm commands, each from its own thread,
and where the frame loop asks, once a frame, which zones are armed. Commands
change a small table of :class:`~monitor.arming.Override` under a lock and
are written to ``arming.state_file`` in the commanding thread (atomically:
a temporary file, fsync, rename), so the loop never waits for the disk and a
manual disarm survives a restart or a power cut. The loop only reads: it
touches the detectors and the pins itself, on its own thread, when it sees a
zone's armed state change.

The file is small JSON, one entry per zone with a manual command::

    {"version": 1, "zones": {"door": {"armed": false, "by": "cli",
      "at": "2026-12-02T13:35:00.000+01:00", "until": "2026-12-02T14:05:00.000+01:00"}}}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.arming import COMMAND_SOURCES, Override, Policy, ZoneArming, check_duration
from monitor.closing import Closing
from monitor.config import ArmingConfig, Config
from monitor.exc import CommandError
from monitor.images import make_folder
from monitor.status import iso_time

__all__ = ["ArmingState", "read_overrides", "write_overrides"]

_log = logging.getLogger(__name__)

VERSION = 1
MAX_FILE_BYTES = 64 * 1024  # a state file is a few hundred bytes; anything far larger is not ours
FILE_MODE = 0o640


@dataclass(frozen=True, slots=True)
class _Decided:
    version: int
    start: float
    end: float
    states: Mapping[str, ZoneArming]


class ArmingState(Closing):
    """Each zone's armed state: the schedule, the default and the manual commands, safe to share between threads.

    ``persist`` False keeps commands in memory and neither reads nor writes
    the state file (``monitor replay`` checks the schedule alone).
    ``clock`` stamps commands given without ``now``.
    """

    def __init__(
        self,
        config: ArmingConfig,
        zones: Sequence[str],
        *,
        persist: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.path: Path | None = config.state_file if persist else None
        self._clock = clock
        self._policy = Policy.from_config(config)
        self._zones = list(zones)
        self._lock = threading.Lock()  # the table and the cache; never held across I/O
        self._write_lock = threading.Lock()  # one writer of the file at a time, newest table last
        self._overrides: dict[str, Override] = {}
        if self.path is not None:
            self._overrides = read_overrides(self.path, self._zones)
        self._version = 0
        self._saved_version = 0
        self._decided: _Decided | None = None
        self.save_error: str | None = None  # why the last write failed; None once one succeeds

    @classmethod
    def from_config(cls, config: Config, *, persist: bool = True) -> ArmingState | None:
        """The state of ``config``'s zones, or None when it has no ``arming:`` section (always armed)."""
        if config.arming is None:
            return None
        return cls(config.arming, list(config.zones), persist=persist)

    @property
    def zones(self) -> list[str]:
        with self._lock:
            return list(self._zones)

    @property
    def timezone(self) -> Any:
        """The schedule's time zone (None: the system's local time)."""
        return self._policy.schedule.tz

    # -- the frame loop and the status page read --------------------------------------

    def evaluate(self, now: float) -> Mapping[str, ZoneArming]:
        """Each zone's armed state at ``now``; computed again only when a command or a boundary comes."""
        with self._lock:
            decided = self._decided
            if decided is not None and decided.version == self._version and decided.start <= now < decided.end:
                return decided.states
            states = {zone: self._policy.decide(zone, now, self._overrides.get(zone)) for zone in self._zones}
            # Valid until a zone's state may change, or the wording of its "until" (at midnight).
            ends = [state.until for state in states.values() if state.until is not None]
            end = min([*ends, self._policy.schedule.next_midnight(now)])
            self._decided = _Decided(self._version, now, end, states)
            return states

    # -- commands, from any thread ------------------------------------------------------

    def command(
        self,
        *,
        armed: bool | None,
        by: str,
        zone: str | None = None,
        for_seconds: float | None = None,
        now: float | None = None,
    ) -> Mapping[str, ZoneArming]:
        """Arm (``armed`` True), disarm (False) or toggle (None) ``zone`` (None: every zone); the states after it.

        ``for_seconds`` makes it a snooze that holds that long. A toggle of
        the whole monitor disarms every zone while any is armed, else arms
        them all. CommandError for an unknown zone or an impossible duration;
        the state file is written before this returns (a failure is logged
        and kept in :attr:`save_error`, and the command holds in memory).
        """
        if by not in COMMAND_SOURCES:
            raise CommandError(f"by: expected one of {', '.join(COMMAND_SOURCES)}, got {by!r}")
        if for_seconds is not None:
            for_seconds = check_duration(for_seconds)
        at = self._clock() if now is None else now
        with self._lock:
            if zone is not None and zone not in self._zones:
                raise CommandError(f"zone {zone!r}: no such zone (zones: {', '.join(self._zones)})")
            targets = self._zones if zone is None else [zone]
            if armed is None:
                current = [self._policy.decide(name, at, self._overrides.get(name)).armed for name in targets]
                armed = not any(current)
            until = None if for_seconds is None else at + for_seconds
            for name in targets:
                self._overrides[name] = Override(armed=armed, by=by, at=at, until=until)
            self._version += 1
        _log.info(
            "%s %s by %s%s",
            "armed" if armed else "disarmed",
            "every zone" if zone is None else f"zone {zone}",
            by,
            "" if for_seconds is None else f" for {for_seconds:g} s",
        )
        self.save()
        return self.evaluate(at)

    def reconfigure(self, config: ArmingConfig, zones: Sequence[str]) -> None:
        """A reloaded config's schedule, default and zones; the manual commands stay."""
        if self.path is not None and config.state_file != self.path:
            _log.warning("reload: arming.state_file changes at the next restart; still using %s", self.path)
        policy = Policy.from_config(config)
        with self._lock:
            self.config = config
            self._policy = policy
            self._zones = list(zones)
            self._version += 1

    # -- the file -------------------------------------------------------------------------

    @property
    def saved(self) -> bool:
        """True when the file holds every command given (always, without a file)."""
        with self._lock:
            return self.path is None or self._saved_version == self._version

    def save(self) -> None:
        """Write the commands to the state file if they changed since the last write; never raises."""
        if self.path is None:
            return
        with self._write_lock:
            with self._lock:
                version = self._version
                if version == self._saved_version:
                    return
                overrides = dict(self._overrides)
            try:
                write_overrides(self.path, overrides)
            except OSError as exc:
                self.save_error = f"arming.state_file {self.path}: cannot write: {exc.strerror or exc}"
                _log.error("%s; the command holds until the monitor restarts", self.save_error)
                return
            self.save_error = None
            with self._lock:
                self._saved_version = version

    def close(self) -> None:
        """Write anything not yet written (a failed write is tried once more)."""
        self.save()


def read_overrides(path: Path, zones: Sequence[str]) -> dict[str, Override]:
    """The manual commands in the state file at ``path`` for ``zones``; {} when it is absent.

    Never raises: an unreadable or malformed file, or entry, is one warning
    naming the file and the key, and is left out (the schedule and the
    default rule those zones).
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        _log.warning("arming.state_file %s: cannot read (%s); starting from the schedule", path, exc.strerror or exc)
        return {}
    if len(raw) > MAX_FILE_BYTES:
        _log.warning(
            "arming.state_file %s: over %d bytes, not a state file; starting from the schedule", path, MAX_FILE_BYTES
        )
        return {}
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        _log.warning("arming.state_file %s: not valid JSON (%s); starting from the schedule", path, exc)
        return {}
    if (
        not isinstance(document, dict)
        or document.get("version") != VERSION
        or not isinstance(document.get("zones"), dict)
    ):
        _log.warning(
            'arming.state_file %s: expected {"version": %d, "zones": {...}}; starting from the schedule', path, VERSION
        )
        return {}
    overrides = {}
    for zone, entry in document["zones"].items():
        if zone not in zones:
            _log.info("arming.state_file %s: zones.%s: no such zone any more; ignored", path, zone)
            continue
        try:
            overrides[zone] = _override(entry)
        except (TypeError, ValueError) as exc:
            _log.warning("arming.state_file %s: zones.%s: %s; ignored", path, zone, exc)
    return overrides


def _override(entry: Any) -> Override:
    if not isinstance(entry, dict):
        raise TypeError("expected {armed, by, at, until}")
    armed, by, at, until = (entry.get(key) for key in ("armed", "by", "at", "until"))
    if not isinstance(armed, bool):
        raise ValueError(f"armed: expected true or false, got {armed!r}")
    if by not in COMMAND_SOURCES:
        raise ValueError(f"by: expected one of {', '.join(COMMAND_SOURCES)}, got {by!r}")
    return Override(
        armed=armed, by=by, at=_timestamp(at, "at"), until=None if until is None else _timestamp(until, "until")
    )


def _timestamp(text: Any, key: str) -> float:
    if not isinstance(text, str):
        raise ValueError(f"{key}: expected an ISO-8601 time, got {text!r}")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key}: expected an ISO-8601 time, got {text!r}") from None
    return when.timestamp() if when.tzinfo is not None else when.astimezone().timestamp()


def write_overrides(path: Path, overrides: Mapping[str, Override]) -> None:
    """Replace the state file with ``overrides``, atomically and durably (OSError on failure)."""
    document = {
        "version": VERSION,
        "zones": {
            zone: {
                "armed": override.armed,
                "by": override.by,
                "at": iso_time(override.at),
                "until": None if override.until is None else iso_time(override.until),
            }
            for zone, override in overrides.items()
        },
    }
    text = json.dumps(document, indent=1) + "\n"
    make_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk, or a power cut could bring the old file back.
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
