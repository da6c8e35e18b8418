"""The event log (JSON lines, rotated) and the snapshot folder (JPEGs, pruned).

Both sit at the I/O edge of the frame loop and never stop it: a full disk or a
read-only folder costs the record or the picture, logged as a rate-limited
message on stderr, while the loop (and the pin) keep working.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from monitor.closing import Closing
from monitor.exc import ConfigError
from monitor.images import make_folder, write_image_atomic
from monitor.status import EventRecord, FrameStatus, iso_time
from monitor.throttle import Throttle

__all__ = ["EventLog", "ScoreTable", "SnapshotStore", "check_log_path", "read_events"]

_log = logging.getLogger(__name__)

LOG_MODE = 0o640  # events say when the house was empty: not for every local user
WARN_EVERY = 60.0  # seconds between two reports of the same recurring disk problem


def _describe(record: EventRecord) -> str:
    if record.type in ("armed", "disarmed"):  # issue 14
        extra = record.extra
        return f"{record.zone}: {record.type} by {extra.get('by')} ({extra.get('reason')}) at frame {record.frame}"
    if record.type == "state":
        was = record.extra.get("previous")
        text = f"{record.zone}: {record.extra.get('state')}" + (f" (was {was})" if was else "")
        return f"{text} at frame {record.frame}" + (f": snapshot {record.snapshot}" if record.snapshot else "")
    where = f"{record.zone}: " if record.zone is not None else ""
    text = f"{where}{record.type.replace('_', ' ')} at frame {record.frame}"
    details = []
    if record.score is not None:
        details.append(f"score {record.score:.3f}")
    if record.type == "event_start":
        details.append(f"{len(record.boxes)} changed region{'' if len(record.boxes) == 1 else 's'}")
    if record.type in ("tamper_start", "tamper_end"):
        details.append(f"{record.extra.get('reason')} (measure {record.extra.get('measure')})")
    if record.snapshot:
        details.append(f"snapshot {record.snapshot}")
    return f"{text}: {', '.join(details)}" if details else text


class EventLog(Closing):
    """Append-only JSON-lines event log with size-based rotation.

    Each record is one line (``EventRecord.to_json()``), written with a single
    ``write`` on an ``O_APPEND`` descriptor and fsync'd before ``write``
    returns, so a crash or power cut loses at most the line being written and
    never an earlier one. Before a line that would take the file past
    ``max_bytes``, ``events.jsonl`` becomes ``events.jsonl.1``, ``.1``
    becomes ``.2`` and so on up to ``.{keep}`` (the oldest, ``.{keep}``, is
    deleted): ``keep`` rotated files plus the live one. A line is never split
    between files; a single line longer than ``max_bytes`` gets a file of its
    own. New files have mode 0640.

    A failing disk never raises: the record is dropped, an error is logged
    (at most once a minute, with a count of the others), and the next write
    tries again, reopening the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        keep: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError(f"max_bytes and keep must be at least 1, got {max_bytes} and {keep}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd: int | None = None
        self._size = 0
        self._closed = False
        self._lock = threading.Lock()
        self._report = Throttle(_log, every=WARN_EVERY, clock=clock)
        self.dropped = 0  # records lost to disk errors
        check_log_path(self.path)  # a FIFO, a device or a link there is a config error, said at start
        try:
            self._open()
        except OSError as exc:
            self._report(logging.ERROR, "event log %s: cannot open (%s); events are not recorded", self.path, exc)

    def write(self, record: EventRecord) -> None:
        """Append one record and log a readable line about it."""
        _log.info("%s", _describe(record))
        line = (json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                # A late event during shutdown: losing it beats crashing the shutdown path.
                self.dropped += 1
                _log.warning("event log %s: closed; %s not recorded", self.path, record.type)
                return
            try:
                self._append(line)
            except OSError as exc:
                self.dropped += 1
                self._report(logging.ERROR, "event log %s: cannot write (%s); event dropped", self.path, exc)
                self._close_fd()  # reopen (and re-measure) on the next write

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._close_fd()

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            self._open()
        if self._size > 0 and self._size + len(line) > self.max_bytes:
            self._rotate()
        assert self._fd is not None
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written
        os.fsync(self._fd)

    def _open(self) -> None:
        make_folder(self.path.parent)
        try:
            check_log_path(self.path)
        except ConfigError as exc:  # swapped for a FIFO or a link while running: a disk problem then
            raise OSError(exc.problems[0]) from None
        # O_NOFOLLOW: a link planted where the log goes is not followed; O_NONBLOCK: a FIFO there
        # would otherwise hang the open until someone read it (it is refused just below).
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.path, flags, LOG_MODE)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(f"{self.path} is not a regular file")
            os.set_blocking(fd, True)
            size = info.st_size
            if size and not _ends_with_newline(fd, size):
                # A line torn by a crash: end it, so the next record starts on a line of its own.
                os.write(fd, b"\n")
                size += 1
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    def _rotate(self) -> None:
        self._close_fd()
        self.path.with_name(f"{self.path.name}.{self.keep}").unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        _log.info("event log %s: rotated (over %d bytes)", self.path, self.max_bytes)
        self._open()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # the data was fsync'd already; nothing left to lose
                os.close(fd)


def check_log_path(path: Path) -> None:
    """Refuse, with one line naming the key, an event log that is not (or cannot become) a regular file.

    A FIFO would hang the daemon, a device or anything under /proc or /sys is
    not a log, and a symbolic link is refused rather than followed.
    """
    resolved = Path(os.path.abspath(path))
    if resolved.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise ConfigError([f"events.log: {path}: under /{resolved.parts[1]}, expected a regular file"])
    try:
        info = os.lstat(path)
    except OSError:  # not there yet (or its folder is not): opening it says what is wrong
        return
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError([f"events.log: {path}: a symbolic link, expected a regular file (links are not followed)"])
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError([f"events.log: {path}: not a regular file (a FIFO, a device or a folder)"])


def _ends_with_newline(fd: int, size: int) -> bool:
    return os.pread(fd, 1, size - 1) == b"\n"


def read_events(path: Path) -> list[dict[str, Any]]:
    """The records of one event log file, oldest first.

    A last line without its newline (torn by a crash) is skipped; so is any
    other line that is not a JSON object, with a warning naming it.
    """
    records: list[dict[str, Any]] = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            _log.warning("%s: line %d is not an event record; skipped", path, number)
    if torn:
        _log.debug("%s: skipped a torn last line", path)
    return records


_SNAPSHOT_NAME = re.compile(r"^\d{8}-\d{6}\.\d{3}Z-f\d+-[a-z0-9-]+\.jpg$")


def snapshot_name(*, when: float, frame: int, kind: str) -> str:
    """A file name that sorts by time: ``20261129-120000.123Z-f000120-event.jpg`` (UTC).

    UTC, so that names keep sorting in time order across a daylight-saving change.
    """
    stamp = datetime.fromtimestamp(when, UTC)
    safe_kind = re.sub(r"[^a-z0-9-]+", "-", kind.lower()).strip("-") or "snapshot"
    return f"{stamp:%Y%m%d-%H%M%S}.{stamp.microsecond // 1000:03d}Z-f{frame:06d}-{safe_kind}.jpg"


class SnapshotStore(Closing):
    """A folder of JPEG snapshots, pruned to at most ``keep`` files and ``max_bytes`` in total.

    ``folder`` None disables it. Only files named like :func:`snapshot_name`
    are counted and pruned, oldest (by name) first; the snapshot just saved
    is always kept, even alone over ``max_bytes``. Saving never raises: on
    any failure it returns None and logs a warning, at most once a minute.
    """

    def __init__(
        self,
        folder: Path | None,
        *,
        keep: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = None if folder is None else Path(folder)
        self.keep = keep
        self.max_bytes = max_bytes
        self._report = Throttle(_log, every=WARN_EVERY, clock=clock)
        self._space_report = Throttle(_log, every=WARN_EVERY, clock=clock)

    @property
    def enabled(self) -> bool:
        """True when snapshots are saved at all."""
        return self.folder is not None

    def save(self, image: np.ndarray, *, when: float, frame: int, kind: str = "event") -> Path | None:
        """Write ``image`` as a JPEG named by ``when`` and ``frame``; the path, or None if not saved."""
        if self.folder is None:
            return None
        path = self.folder / snapshot_name(when=when, frame=frame, kind=kind)
        try:
            make_folder(self.folder)
            try:
                write_image_atomic(path, image)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # The disk is full: make room from the oldest snapshots and try once more, instead
                # of never saving a snapshot again (old ones were pruned only after a save).
                freed = self._make_room(image.nbytes // 4 + 65536)
                self._report(
                    logging.WARNING, "snapshot folder %s: disk full; deleted %d old snapshots", self.folder, freed
                )
                write_image_atomic(path, image)
        except Exception as exc:  # a lost snapshot must never stop the frame loop (cv2.error included)
            self._report(logging.WARNING, "snapshot %s: not saved (%s)", path, exc)
            return None
        self._check_free_space()
        try:
            self._prune(keep_newest=path)
        except OSError as exc:
            self._report(logging.WARNING, "snapshot folder %s: cannot prune old snapshots (%s)", self.folder, exc)
        return path

    def snapshots(self) -> list[Path]:
        """The stored snapshots, oldest first."""
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if _SNAPSHOT_NAME.match(p.name))

    def _make_room(self, wanted: int) -> int:
        """Delete the oldest snapshots until ``wanted`` bytes are free (or none is left); how many went."""
        assert self.folder is not None
        deleted = 0
        for old in self.snapshots():
            if shutil.disk_usage(self.folder).free >= wanted:
                break
            old.unlink(missing_ok=True)
            deleted += 1
        return deleted

    def _check_free_space(self) -> None:
        """Warn (rate-limited) when the snapshot disk has less free space than max_snapshot_mb."""
        assert self.folder is not None
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return
        if free < self.max_bytes:
            self._space_report(
                logging.WARNING,
                "snapshot folder %s: %.0f MB free on its disk, under events.max_snapshot_mb (%.0f MB)",
                self.folder,
                free / 1e6,
                self.max_bytes / 1e6,
            )

    def _prune(self, *, keep_newest: Path) -> None:
        sized = []
        for path in self.snapshots():
            try:
                sized.append((path, path.stat().st_size))
            except FileNotFoundError:
                continue  # removed meanwhile by someone else
        total = sum(size for _, size in sized)
        count = len(sized)
        for path, size in sized:
            if count <= self.keep and total <= self.max_bytes:
                break
            if path == keep_newest:
                continue
            path.unlink(missing_ok=True)
            count -= 1
            total -= size
            _log.debug("snapshot %s: deleted (retention)", path)

    def close(self) -> None:
        """Nothing to release; here so the store fits the daemon's close-everything path."""


class ScoreTable:
    """A listener writing one CSV row per zone per frame (``monitor replay --scores``).

    Columns: frame, time, zone, score, changed_fraction, changed_pixels,
    below (1/0), state (the word the status page shows: unchanged, changed,
    settling, or a state zone's state), reused (1 when change gating kept the
    last fully scored frame's score, see monitor/gating.py). A state zone's
    ``score`` is its best state's, and its changed columns are empty.
    """

    COLUMNS = ("frame", "time", "zone", "score", "changed_fraction", "changed_pixels", "below", "state", "reused")

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(self.COLUMNS)

    def on_frame(self, status: FrameStatus) -> None:
        when = iso_time(status.time)
        for verdict in status.zones:
            fraction = verdict.changed_fraction
            self._writer.writerow(
                [
                    status.frame,
                    when,
                    verdict.zone,
                    f"{verdict.score:.5f}",
                    "" if fraction is None else f"{fraction:.5f}",
                    "" if verdict.changed_pixels is None else verdict.changed_pixels,
                    int(verdict.below),
                    verdict.word,
                    int(verdict.reused),
                ]
            )

    def on_event(self, record: EventRecord) -> None:
        """Records are not scores."""

    def close(self) -> None:
        """The file is the caller's."""
