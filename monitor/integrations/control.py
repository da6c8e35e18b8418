"""The local control socket: how ``monitor arm`` and ``monitor disarm`` reach a running daemon.

A Unix stream socket beside the state file (``armed.json`` -> ``armed.sock``),
mode 0660. A client sends one JSON line, ``{"command": "arm" | "disarm" |
"status", "zone": ..., "for_seconds": ...}``, and reads one JSON line back:
``{"ok": true, "zones": {zone: {"armed", "by", "reason", "until"}}}`` or
``{"ok": false, "error": "..."}``.

Why a socket rather than the HTTP API: the status page is optional (no
``http:`` section, no API) and, off loopback, needs a token the command line
would have to find; the socket exists whenever arming does, cannot be reached
from the network, and the file system says who may use it (the daemon's user
and group). When nothing listens there, the daemon is not running and the
command line writes the state file itself.

Connections are served one at a time, each bounded in size (4 KiB) and time
(2 s), on a thread of their own; the frame loop never waits for them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from pathlib import Path
from typing import Any

from monitor.arming import command_fields
from monitor.arming_state import ArmingState
from monitor.closing import Closing
from monitor.exc import CommandError, ConfigError, MonitorError
from monitor.images import make_folder
from monitor.status import EventRecord, FrameStatus

__all__ = ["ControlServer", "control_path", "send_command"]

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
CONNECTION_SECONDS = 2.0
SOCKET_MODE = 0o660
_MAX_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, with its terminating NUL


def control_path(state_file: Path) -> Path:
    """The control socket of a state file: the same name with ``.sock``."""
    return state_file.with_suffix(".sock")


def answer(arming: ArmingState, request: Any) -> dict[str, Any]:
    """What the socket answers to one request (a decoded JSON line)."""
    if not isinstance(request, dict) or request.get("command") not in ("arm", "disarm", "status"):
        return {
            "ok": False,
            "error": 'expected {"command": "arm" | "disarm" | "status", "zone": ..., "for_seconds": ...}',
        }
    fields = {key: value for key, value in request.items() if key != "command"}
    try:
        zone, seconds = command_fields(fields)
        if request["command"] == "status":
            states = arming.evaluate(time.time())
        else:
            states = arming.command(armed=request["command"] == "arm", zone=zone, for_seconds=seconds, by="cli")
    except CommandError as exc:
        return {"ok": False, "error": str(exc)}
    reply: dict[str, Any] = {"ok": True, "zones": {name: state.to_json() for name, state in states.items()}}
    if arming.save_error is not None:
        reply["warning"] = arming.save_error
    return reply


class _Handler(socketserver.StreamRequestHandler):
    timeout = CONNECTION_SECONDS

    def handle(self) -> None:
        arming: ArmingState = self.server.arming  # type: ignore[attr-defined]
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        except OSError:
            return  # the client was too slow or went away
        if len(line) > MAX_REQUEST_BYTES or not line.endswith(b"\n"):
            reply: dict[str, Any] = {
                "ok": False,
                "error": f"expected one JSON line of at most {MAX_REQUEST_BYTES} bytes",
            }
        else:
            try:
                request = json.loads(line)
            except ValueError:
                reply = {"ok": False, "error": "not valid JSON"}
            else:
                reply = answer(arming, request)
        with contextlib.suppress(OSError):
            self.wfile.write((json.dumps(reply) + "\n").encode())


class ControlServer(Closing):
    """Listens on the control socket of ``arming``'s state file; a Listener that hears nothing.

    :meth:`start` refuses (MonitorError) when another monitor already listens
    there, and removes a socket left behind by one that died.
    """

    def __init__(self, arming: ArmingState) -> None:
        if arming.path is None:
            raise MonitorError("the control socket needs a state file (arming.state_file)")
        self.arming = arming
        self.path = control_path(arming.path)
        if len(os.fsencode(self.path)) > _MAX_PATH_BYTES:
            raise ConfigError(
                [
                    f"arming.state_file: the control socket {self.path} would be longer than a Unix socket's "
                    f"{_MAX_PATH_BYTES} bytes; choose a shorter path"
                ]
            )
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def start(self) -> None:
        """Bind the socket and serve from a daemon thread; a second call does nothing."""
        if self._server is not None:
            return
        try:
            make_folder(self.path.parent)  # the state file's folder: the state file may not exist yet
        except OSError as exc:
            raise MonitorError(f"arming.state_file: cannot create {self.path.parent}: {exc.strerror or exc}") from None
        self._clear_stale()
        try:
            server = socketserver.UnixStreamServer(str(self.path), _Handler)
        except OSError as exc:
            raise MonitorError(
                f"arming.state_file: cannot create the control socket {self.path}: {exc.strerror or exc}"
            ) from None
        server.arming = self.arming  # type: ignore[attr-defined]
        os.chmod(self.path, SOCKET_MODE)
        self._inode = self.path.stat().st_ino
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="monitor-control", daemon=True
        )
        self._thread.start()
        _log.info("control socket on %s (monitor arm/disarm)", self.path)

    def _clear_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise MonitorError(f"arming.state_file: {self.path} exists and is not a socket; move it away")
        if _listening(self.path):
            raise MonitorError(
                f"arming.state_file: another monitor already listens on {self.path}; "
                "two monitors cannot share a state file"
            )
        self.path.unlink(missing_ok=True)  # left behind by a monitor that was killed

    def on_frame(self, status: FrameStatus) -> None:
        """Frames are not its business."""

    def on_event(self, record: EventRecord) -> None:
        """Nor are events."""

    def close(self) -> None:
        """Stop serving and remove the socket (if it is still ours); safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def send_command(path: Path, request: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any] | None:
    """Send one request to the daemon listening on ``path``; its reply, or None when none listens there.

    MonitorError when a daemon listens but does not answer within ``timeout``
    or answers something else than a JSON object.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            return None
        except OSError as exc:
            raise MonitorError(f"{path}: cannot reach the running monitor: {exc.strerror or exc}") from None
        try:
            client.sendall((json.dumps(request) + "\n").encode())
            with client.makefile("rb") as stream:
                line = stream.readline(1024 * 1024)
        except OSError as exc:
            raise MonitorError(f"{path}: the running monitor did not answer: {exc.strerror or exc}") from None
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise MonitorError(f"{path}: the running monitor answered something else than JSON: {line[:80]!r}")
    return reply
