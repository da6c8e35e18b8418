"""A stand-in for systemd's notify socket, for tests of anything that calls sd_notify.

Binds a real AF_UNIX datagram socket and collects what arrives::

    with NotifySocket() as sd:
        proc = subprocess.Popen([...], env={**os.environ, **sd.env(watchdog_usec=2_000_000)})
        sd.wait_for("READY=1")
        text, pid = sd.receive_with_pid()   # pid: who sent it (NotifyAccess=main checks this)
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path
from types import TracebackType

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifySocket:
    """A bound datagram socket that receives notifications, and the environment that points at it.

    ``directory`` holds the socket file (default: a new short temp folder, since
    socket paths are limited to 107 bytes); ``abstract`` binds a name in the
    abstract namespace instead, given to clients as ``@name``.
    """

    def __init__(self, directory: Path | None = None, *, abstract: bool = False, name: str = "notify") -> None:
        self._own_dir: Path | None = None
        self.path: Path | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Ask the kernel to attach the sender's pid to each datagram, as systemd does.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            unique = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
            self._sock.bind("\0" + unique)
            self.address = "@" + unique
        else:
            if directory is None:
                directory = self._own_dir = Path(tempfile.mkdtemp(prefix="sd-"))
            self.path = directory / name
            self._sock.bind(str(self.path))
            self.address = str(self.path)

    def env(self, *, watchdog_usec: int | None = None, watchdog_pid: int | None = None) -> dict[str, str]:
        """The variables systemd would set for a Type=notify service (and WatchdogSec=)."""
        env = {"NOTIFY_SOCKET": self.address}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        if watchdog_pid is not None:
            env["WATCHDOG_PID"] = str(watchdog_pid)
        return env

    def receive_with_pid(self, timeout: float = 5.0) -> tuple[str, int]:
        """The next datagram and its sender's pid; TimeoutError if none comes in ``timeout`` s."""
        readable, _, _ = select.select([self._sock], [], [], timeout)
        if not readable:
            raise TimeoutError(f"no notification on {self.address} within {timeout} s")
        data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _CREDENTIALS.unpack(payload[: _CREDENTIALS.size])[0]
        return data.decode("utf-8"), pid

    def receive(self, timeout: float = 5.0) -> str:
        """The next datagram's text; TimeoutError if none comes in ``timeout`` s."""
        return self.receive_with_pid(timeout)[0]

    def drain(self) -> list[str]:
        """Every datagram waiting now, without waiting for more."""
        messages = []
        while True:
            try:
                messages.append(self.receive(timeout=0))
            except TimeoutError:
                return messages

    def wait_for(self, line: str, timeout: float = 10.0) -> list[str]:
        """Receive until a datagram has ``line`` as one of its lines; return all datagrams seen."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                seen.append(self.receive(timeout=max(remaining, 0)))
            except TimeoutError:
                raise TimeoutError(f"no {line!r} on {self.address} within {timeout} s; got {seen!r}") from None
            if line in seen[-1].split("\n"):
                return seen

    def close(self) -> None:
        """Close and unlink the socket (idempotent)."""
        self._sock.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
