"""Tell systemd how the service is doing: the sd_notify protocol, written out.

Each message is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a leading ``@`` names an abstract socket). Without
that variable, which is the case anywhere but under a ``Type=notify`` unit,
every method is a silent no-op. Sending never raises: a notification that
cannot be delivered is not worth stopping the frame loop for.

The frame loop calls :meth:`Notifier.frame_arrived` (or, as a listener,
:meth:`Notifier.on_frame`) on every frame; that sends ``WATCHDOG=1`` at most
every half ``WatchdogSec=``, so when frames stop coming, the pings stop and
systemd restarts the service. The watchdog only runs once ``READY=1`` is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping

from monitor.closing import Closing
from monitor.status import EventRecord, FrameStatus, Verdict

__all__ = ["Notifier"]

_log = logging.getLogger(__name__)

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier(Closing):
    """Sends READY, RELOADING, STOPPING, STATUS and WATCHDOG notifications to systemd.

    ``environ`` defaults to ``os.environ``, and then ``NOTIFY_SOCKET``,
    ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are removed from it once read, so
    that hook commands the daemon starts do not inherit them (systemd would log
    every message they sent as refused: ``NotifyAccess=main``). Hence make one
    Notifier per process and keep it across reloads. ``clock`` must count
    seconds of CLOCK_MONOTONIC: it paces the pings and stamps ``MONOTONIC_USEC``.

    Call it from the frame loop's thread, not from a signal handler.
    """

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if environ is None:
            environ = _take_variables(os.environ)
        self._clock = clock
        self._socket: socket.socket | None = None
        self._name = environ.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(self._name)
        self.watchdog_interval: float | None = None
        self._last_ping: float | None = None
        self._last_status: float | None = None
        self._failing = False
        if self._address is None:
            return
        try:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError as exc:
            _log.warning("systemd notifications are off: cannot make a socket: %s", exc)
            return
        # A full receive queue must drop a message, not stall the frame loop.
        self._socket.setblocking(False)
        self.watchdog_interval = _watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        """Whether notifications go anywhere (under systemd with Type=notify, and not closed)."""
        return self._socket is not None

    def ready(self, status: str | None = None) -> None:
        """Startup (or a reload) is complete; systemd starts the watchdog from here."""
        self._send("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def reloading(self) -> None:
        """A reload has begun; send :meth:`ready` when it is done."""
        # systemd >= 253 wants the time of the reload with it, to match it to the request.
        self._send(f"RELOADING=1\nMONOTONIC_USEC={round(self._clock() * 1_000_000)}")

    def stopping(self) -> None:
        """The service is shutting down."""
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        """Set the one-line status ``systemctl status`` shows."""
        self._send(f"STATUS={_one_line(text)}")

    def frame_arrived(self) -> None:
        """A frame went through the loop: ping the watchdog if half its time has passed."""
        if self.watchdog_interval is None or self._socket is None:
            return
        now = self._clock()
        if self._last_ping is None or now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def status_every(self, text_fn: Callable[[], str], *, seconds: float = 5.0) -> None:
        """Send ``text_fn()`` as the status if ``seconds`` have passed since the last one.

        ``text_fn`` is only called when a status is due.
        """
        if self._socket is None:
            return
        now = self._clock()
        if self._last_status is None or now - self._last_status >= seconds:
            self._last_status = now
            self.status(text_fn())

    def on_frame(self, status: FrameStatus) -> None:
        """Listener hook: ping the watchdog; the state and score as the status every 5 s."""
        self.frame_arrived()
        self.status_every(lambda: _frame_text(status))

    def on_event(self, record: EventRecord) -> None:
        """Listener hook: show the event at once (frames' statuses wait 5 s behind it)."""
        if self._socket is None:
            return
        self._last_status = self._clock()
        self.status(_event_text(record))

    def close(self) -> None:
        """Close the socket; later calls send nothing."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: str) -> None:
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto(message.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            # Warn once per outage: the loop may send several times a second.
            if not self._failing:
                _log.warning("cannot notify systemd at %s: %s (further failures logged at debug)", self._name, exc)
            else:
                _log.debug("cannot notify systemd: %s", exc)
            self._failing = True
            return
        if self._failing:
            _log.info("notifying systemd works again")
            self._failing = False


def _take_variables(environ: MutableMapping[str, str]) -> dict[str, str]:
    return {name: environ.pop(name) for name in _VARIABLES if name in environ}


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # vsock:CID:PORT (systemd >= 254, for virtual machines) and anything else.
    _log.warning("systemd notifications are off: NOTIFY_SOCKET=%r is not a path or an @abstract name", value)
    return None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text and pid_text != str(os.getpid()):
        _log.debug("the systemd watchdog is for process %s, not this one", pid_text)
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        usec = 0
    if usec <= 0:
        _log.warning("systemd watchdog off: WATCHDOG_USEC=%r is not a positive number", usec_text)
        return None
    # Ping at twice the rate systemd expects, as sd_watchdog_enabled(3) advises.
    return usec / 2_000_000


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment in the datagram.
    return " ".join(text.splitlines())


def _frame_text(status: FrameStatus) -> str:
    if len(status.zones) == 1:
        only = status.zones[0]
        return f"{status.state}: score {only.score:.4f} (threshold {only.threshold:.2f}), frame {status.frame}"
    zones = ", ".join(_zone_text(verdict) for verdict in status.zones)
    return f"{status.state}: {zones}; frame {status.frame}"


def _zone_text(verdict: Verdict) -> str:
    return f"{verdict.zone} {verdict.word} {verdict.score:.4f} (threshold {verdict.threshold:.2f})"


def _event_text(record: EventRecord) -> str:
    what = record.type.replace("_", " ")
    if record.zone is not None:
        what = f"{record.zone}: " + (str(record.extra.get("state")) if record.type == "state" else what)
    score = "" if record.score is None else f", score {record.score:.4f}"
    return f"{what} at frame {record.frame}{score}"
