"""A Debian root booted with systemd as PID 1 under systemd-nspawn, driven from the host.

The cached root (``roots.sh``) is never written to: each :class:`Container`
boots an overlay of it (the root below, a fresh upper folder on top), so a run
starts from the same clean system every time and leaves nothing behind.
Commands run inside through ``nsenter`` into all of the container's
namespaces, with a clean environment (the host's ``PIP_*`` and proxy settings
are not the container's business).

The container shares the host's network namespace: pip reaches PyPI for
``make install``, and the tests reach the status page on 127.0.0.1. Ports are
picked free on the host for that reason.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
CACHE = Path(os.environ.get("MONITOR_CI_CACHE", "/var/cache/monitor-ci"))
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CLEAN_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]

T = TypeVar("T")

#: What the make targets put in MONITOR_CONTAINER_TESTS (comma-separated) to run a suite.
SUITES = {"systemd": "make test-systemd", "homeassistant": "make test-homeassistant"}


def require(suite: str) -> None:
    """Skip the calling module unless ``suite`` was asked for and this machine can run it.

    The container tests need root, debootstrap, systemd-nspawn and minutes: the normal
    `make test` skips them, each with its reason.
    """
    asked = {name.strip() for name in os.environ.get("MONITOR_CONTAINER_TESTS", "").split(",")}
    if suite not in asked:
        pytest.skip(f"container test: run it with `{SUITES[suite]}`", allow_module_level=True)
    if os.geteuid() != 0:
        pytest.skip("container tests need root (debootstrap, mount, systemd-nspawn)", allow_module_level=True)
    for program in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (.ci/run installs it)", allow_module_level=True)


#: Figures the tests measured (run times, the exposure score), printed at the end of the run.
FIGURES: list[str] = []


def report(text: str) -> None:
    """Note a figure for the person running the make target (conftest.py prints them at the end)."""
    FIGURES.append(text)


def build_root(name: str) -> Path:
    """The cached root ``name``, built first if absent or out of date (roots.sh)."""
    result = subprocess.run(
        ["bash", str(HERE / "roots.sh"), "build", name], stdout=subprocess.PIPE, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(f"roots.sh build {name} failed (exit {result.returncode}); see its messages above")
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port nobody on this machine listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    explain: Callable[[], str] = str,
) -> T:
    """Call ``probe`` until it returns something other than None or False; bounded by ``timeout``.

    ``explain()`` adds to the message on a time-out (a log's end, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{explain()}")
        time.sleep(interval)


class Container:
    """An overlay of ``root`` booted with ``systemd-nspawn -b``; close it to power it off and clean up."""

    def __init__(self, root: Path, *, name: str, binds: Sequence[str] = ()) -> None:
        self.root = root
        self.name = name
        self.folder = CACHE / "run" / f"{name}-{os.getpid()}"
        self.merged = self.folder / "merged"
        self.boot_log = self.folder / "boot.log"
        self._binds = list(binds)
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the container's PID 1 (systemd), as the host numbers it

    # -- life cycle -------------------------------------------------------------

    def boot(self, *, timeout: float = 180) -> None:
        """Mount the overlay, boot it and wait until systemd reports the system running."""
        self._remove_stale()
        for part in ("upper", "work", "merged"):
            (self.folder / part).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.root},upperdir={self.folder / 'upper'},workdir={self.folder / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.merged)], check=True)
        command = [
            "systemd-nspawn",
            "--boot",
            "--quiet",
            "-D",
            str(self.merged),
            # Without these two, nspawn wants the host's system bus and a scope unit of its
            # own, and this host's PID 1 is not systemd.
            "--register=no",
            "--keep-unit",
            f"--machine={self.name}",
            "--console=read-only",
            f"--bind-ro={CA_BUNDLE}",
            *(f"--bind={bind}" for bind in self._binds),
        ]
        with self.boot_log.open("wb") as log:
            self._nspawn = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.pid = wait_for(self._init_pid, timeout=60, what="the container's systemd", explain=self._log_tail)
        # Until systemd has its own bus up, systemctl cannot ask it and says "offline" or nothing.
        state = wait_for(self._system_state, timeout=timeout, what="systemd to finish booting", explain=self._log_tail)
        if state != "running":
            failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
            raise AssertionError(f"the container booted to {state!r}, not 'running'; failed units:\n{failed}")

    def close(self) -> None:
        """Power the container off (SIGTERM to nspawn: an orderly shutdown), unmount and delete the overlay."""
        process, self._nspawn = self._nspawn, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        self._remove_stale()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _remove_stale(self) -> None:
        if self.merged.is_mount():
            subprocess.run(["umount", "--lazy", str(self.merged)], check=False)
        if self.folder.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.folder)], check=False)

    def _init_pid(self) -> int | None:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self._nspawn.returncode}{self._log_tail()}")
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        return None

    def _system_state(self) -> str | None:
        """running, degraded, ... once the boot is over (``--wait``), None while systemctl cannot tell."""
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=120).stdout.strip()
        return state if state in ("running", "degraded", "maintenance", "stopping") else None

    def _log_tail(self) -> str:
        try:
            lines = self.boot_log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "; the end of the boot log:\n" + "\n".join(lines[-20:])

    # -- inside -----------------------------------------------------------------

    def run(
        self,
        command: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a list, or a string for ``sh -c``) as root inside; stdout and stderr as text."""
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-a", "env", "-i", *CLEAN_ENV, *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            shown = command if isinstance(command, str) else shlex.join(command)
            raise AssertionError(
                f"in the container, `{shown}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def write(self, path: str, text: str, *, mode: str | None = None, owner: str | None = None) -> None:
        """Write a file inside, as ``cat >`` does: an existing file keeps its inode, owner and mode."""
        command = f"cat > {shlex.quote(path)}"
        if owner is not None:
            command += f" && chown {shlex.quote(owner)} {shlex.quote(path)}"
        if mode is not None:
            command += f" && chmod {mode} {shlex.quote(path)}"
        self.run(command, input=text)

    def read(self, path: str) -> str:
        """A file's text, read inside."""
        return self.run(["cat", path]).stdout

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show -p ...``, as a dict."""
        out = self.run(["systemctl", "show", unit, *(f"--property={name}" for name in properties)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, *, since: float | None = None) -> str:
        """The unit's journal as plain lines; ``since``: only entries from that time (seconds since the epoch)."""
        args = ["journalctl", "--no-pager", "--output=short-precise", "--unit", unit]
        if since is not None:
            args.append(f"--since=@{since:.6f}")
        return self.run(args).stdout
