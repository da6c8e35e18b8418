"""Run the user's commands on events, one at a time on a worker thread.

A hook is an argument list run without a shell. The event reaches it only
through environment variables, never through its command line:
``MONITOR_EVENT`` (event_start, event_end, state, camera_lost, camera_found,
tamper_start, tamper_end),
``MONITOR_ZONE`` (empty for camera records), ``MONITOR_STATE`` and
``MONITOR_PREVIOUS_STATE`` (state records; empty otherwise),
``MONITOR_TIME`` (ISO-8601), ``MONITOR_TIMESTAMP`` (Unix seconds),
``MONITOR_FRAME``, ``MONITOR_SCORE``, ``MONITOR_CHANGED_FRACTION``,
``MONITOR_BOXES`` (JSON ``[[x, y, w, h], ...]``), ``MONITOR_SNAPSHOT``
(empty if none) and ``MONITOR_<KEY>`` for every extra field of the record
(a tamper's ``MONITOR_REASON``: covered, moved, defocused or frozen, and
``MONITOR_MEASURE``).
Empty means unknown. The rest of the environment (PATH, HOME, ...) is the
monitor's own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.closing import Closing
from monitor.config import HooksConfig
from monitor.status import EventRecord, FrameStatus

__all__ = ["HookRunner", "hook_environment"]

_log = logging.getLogger(__name__)

_STDERR_TAIL_BYTES = 500
_REAP_SECONDS = 2.0


def hook_environment(record: EventRecord, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) plus the record's fields as ``MONITOR_*`` variables."""
    env = dict(os.environ if base is None else base)
    for key, value in record.to_json().items():
        env[_variable_name(key)] = _variable_value(value)
    env["MONITOR_EVENT"] = record.type
    env["MONITOR_TIMESTAMP"] = f"{record.time:.3f}"
    env["MONITOR_ZONE"] = record.zone or ""
    env["MONITOR_STATE"] = _variable_value(record.extra.get("state"))
    env["MONITOR_PREVIOUS_STATE"] = _variable_value(record.extra.get("previous"))
    env.pop("MONITOR_PREVIOUS", None)  # the same as MONITOR_PREVIOUS_STATE, under one name only
    return env


def _variable_name(key: str) -> str:
    return "MONITOR_" + re.sub(r"[^A-Z0-9_]", "_", str(key).upper())


def _variable_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("\0", "")  # the one character an environment variable cannot hold


@dataclass(frozen=True)
class _Hook:
    event: str
    command: list[str]
    env: dict[str, str]

    def describe(self) -> str:
        return f"{self.event} hook `{shlex.join(self.command)}`"


class HookRunner(Closing):
    """A :class:`~monitor.status.Listener` that runs ``hooks.on_*`` commands on events.

    :meth:`on_event` only queues; a single worker thread runs the hooks in
    order, so hooks never overlap. Past ``queue_size`` waiting hooks, new ones
    are dropped with a warning. Failures are logged, never raised.
    """

    def __init__(self, config: HooksConfig, *, queue_size: int = 32) -> None:
        self.config = config
        self._commands: dict[str, list[str] | None] = {
            "event_start": config.on_event_start,
            "event_end": config.on_event_end,
            "state": config.on_state_change,
            "camera_lost": config.on_camera_lost,
            "camera_found": config.on_camera_found,
            "tamper_start": config.on_tamper,
            "tamper_end": config.on_tamper_end,
        }
        self._queue: queue.Queue[_Hook | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._running: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._stopping = threading.Event()

    def start(self) -> None:
        """Nothing to start: the worker thread starts with the first hook."""

    def on_frame(self, status: FrameStatus) -> None:
        """Frames start no hooks."""

    def on_event(self, record: EventRecord) -> None:
        """Queue the hook configured for ``record.type``, if any."""
        command = self._commands.get(record.type)
        if command is None:
            return
        hook = _Hook(record.type, list(command), hook_environment(record))
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="monitor-hooks", daemon=True)
                self._worker.start()
            try:
                self._queue.put_nowait(hook)
            except queue.Full:
                _log.warning("%d hooks are still waiting to run; dropped the %s", self._queue.maxsize, hook.describe())

    def close(self, *, timeout: float = 5.0) -> None:
        """Let queued and running hooks finish for up to ``timeout`` seconds, then kill what is left."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        if worker is None:
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        worker.join(max(0.0, deadline - time.monotonic()))
        if not worker.is_alive():
            return
        self._stopping.set()
        skipped = self._drain()
        with self._lock:
            running = self._running
        if running is not None:
            _kill_group(running)
        self._queue.put(None)  # drained above, so there is room
        worker.join(_REAP_SECONDS + 1.0)
        if skipped:
            _log.warning("stopping: %d queued hook(s) were not run", skipped)

    def _drain(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += item is not None

    def _work(self) -> None:
        while True:
            hook = self._queue.get()
            if hook is None:
                return
            if self._stopping.is_set():
                continue
            try:
                self._run(hook)
            except Exception:
                # Whatever goes wrong with one hook, the next event's hook still runs.
                _log.exception("%s failed", hook.describe())

    def _run(self, hook: _Hook) -> None:
        try:
            process = subprocess.Popen(
                hook.command,
                env=hook.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            _log.warning("%s could not start: %s", hook.describe(), reason)
            return
        with self._lock:
            self._running = process
        try:
            stderr, timed_out = _wait(process, self.config.timeout)
        finally:
            with self._lock:
                self._running = None
        tail = _tail(stderr)
        if timed_out:
            _log.warning(
                "%s still running after %gs (hooks.timeout); killed it%s", hook.describe(), self.config.timeout, tail
            )
        elif self._stopping.is_set() and process.returncode != 0:
            _log.warning("%s killed: the monitor is stopping%s", hook.describe(), tail)
        elif process.returncode < 0:
            _log.warning("%s killed by signal %d%s", hook.describe(), -process.returncode, tail)
        elif process.returncode > 0:
            _log.warning("%s exited with code %d%s", hook.describe(), process.returncode, tail)
        else:
            _log.debug("%s done", hook.describe())


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bool]:
    """Wait for the hook and its stderr; on timeout kill its process group. Returns (stderr, timed out)."""
    try:
        _, stderr = process.communicate(timeout=timeout)
        return stderr or b"", False
    except subprocess.TimeoutExpired:
        pass
    _kill_group(process)
    try:
        _, stderr = process.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        # Something outside the group (it started its own session) still holds stderr open.
        process.kill()
        if process.stderr is not None:
            process.stderr.close()
        process.wait()
        stderr = b""
    return stderr or b"", True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _tail(stderr: bytes) -> str:
    text = stderr[-_STDERR_TAIL_BYTES:].decode("utf-8", errors="replace").strip()
    return f"; stderr: {text}" if text else ""
