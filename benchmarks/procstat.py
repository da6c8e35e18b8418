"""What a running process costs, read from /proc: CPU time per thread, resident memory.

CPU time comes from ``/proc/PID/task/TID/schedstat`` (nanoseconds on the CPU;
``stat``'s clock ticks are 10 ms), so a window of a few seconds measures a
fraction of a millisecond per frame. ``voluntary_ctxt_switches`` counts how
often a thread went to sleep on its own: a daemon that sleeps once per frame
(Motion's detection thread does) counts its own frames with it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class Thread:
    name: str
    cpu_ns: int
    sleeps: int  # voluntary context switches


def threads(pid: int) -> dict[int, Thread]:
    """Every thread of ``pid`` now (threads that ended are missing)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            name = (task / "comm").read_text().strip()
            cpu_ns = int((task / "schedstat").read_text().split()[0])
            status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(tid)] = Thread(name, cpu_ns, int(status["voluntary_ctxt_switches"]))
    return found


def cpu_between(before: dict[int, Thread], after: dict[int, Thread]) -> dict[int, tuple[str, float, int]]:
    """Per thread: name, CPU seconds and sleeps between two samples (threads born in between count in full)."""
    spent = {}
    for tid, now in after.items():
        then = before.get(tid, Thread(now.name, 0, 0))
        spent[tid] = (now.name, (now.cpu_ns - then.cpu_ns) / 1e9, now.sleeps - then.sleeps)
    return spent


def memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak), RssAnon and RssFile of ``pid``, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0])
    return values


def cpu_model() -> str:
    """The CPU's model name and how many of its cores this process may use."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("model name", "Model")):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


class Notifications:
    """An AF_UNIX datagram socket standing in for systemd's: what ``monitor run`` says (READY=1, STATUS=...)."""

    def __init__(self, folder: Path) -> None:
        self.address = str(folder / "notify.sock")
        Path(self.address).unlink(missing_ok=True)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.address)

    def wait(self, word: str, *, timeout: float) -> str:
        """The next datagram with a line starting with ``word``; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self._socket.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                message = self._socket.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                raise TimeoutError(f"no {word} from the daemon within {timeout} s") from None
            for line in message.split("\n"):
                if line.startswith(word):
                    return line

    def drain(self) -> None:
        """Forget the datagrams waiting now."""
        self._socket.setblocking(False)
        try:
            while True:
                self._socket.recv(4096)
        except BlockingIOError:
            pass
        finally:
            self._socket.setblocking(True)

    def close(self) -> None:
        self._socket.close()
        Path(self.address).unlink(missing_ok=True)

    def __enter__(self) -> Notifications:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
