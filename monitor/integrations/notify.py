"""Notifications with the picture: a message per event record to any service Apprise knows.

Each ``notify:`` target names its services as Apprise URLs (``ntfy://``,
``tgram://``, ``mailtos://``, ``pover://``, ``matrix://``, ...), which event
records notify (``on``, ``zones``, ``states``), what the message says
(``title``, ``body``) and what it carries (``attach``: the snapshot, the clip,
or nothing).

:class:`NotifySender` is the listener. :meth:`~NotifySender.on_event` only
decides (filters and the per-zone cooldown, on the record's own time) and
queues; one worker thread renders and sends, each URL on its own, retrying a
failed one a few times with back-off before it logs (rate-limited) and drops
the message. The queue is bounded: past it the oldest waiting message goes.
:meth:`~NotifySender.close` lets the queue drain for a few seconds, so the last
event's message still goes out when the monitor stops.

URLs hold secrets (tokens, passwords): wherever they are shown, they are shown
as Apprise masks them (:func:`masked`), and problems name the key and the
service's scheme only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import stat
import string
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.closing import Closing
from monitor.config import NOTIFY_FIELDS, NotifyConfig
from monitor.exc import ConfigError
from monitor.status import EventRecord, FrameStatus, Verdict
from monitor.throttle import Throttle

if TYPE_CHECKING:
    from apprise import NotifyBase

__all__ = [
    "Cooldown",
    "Delivery",
    "Message",
    "NotifySender",
    "Service",
    "attachments",
    "describe",
    "fields",
    "masked",
    "read_urls",
    "render",
    "sample_record",
    "send",
    "services",
    "template_problem",
    "url_problem",
    "wanted",
]

_log = logging.getLogger(__name__)

BACKOFF_SECONDS = (2.0, 6.0)  # the waits before the second and the third attempt at a service
QUEUE_SIZE = 32
DRAIN_SECONDS = 5.0
MAX_URLS_FILE_BYTES = 64 * 1024
# A clip past this goes as its snapshot: most services refuse more, and Apprise holds the whole
# file in memory (base64 for some services), which a Pi Zero's 512 MB would feel.
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_TEMPLATE_CHARACTERS = 2000  # a title or body, as written and as rendered with short values

# The record that ends what another began: an end notifies when its beginning did, and is held with it.
ENDS = {"event_end": "event_start", "camera_found": "camera_lost", "tamper_end": "tamper_start"}
# What {state} says for records that are not a state zone's.
_STATE_WORDS = {
    "event_start": "changed",
    "event_end": "clear",
    "camera_lost": "lost",
    "camera_found": "back",
    "tamper_start": "tampered",
    "tamper_end": "untampered",
}
# Apprise's message types, which set a service's icon or colour.
_TYPES = {"event_start": "warning", "camera_lost": "failure", "tamper_start": "failure"}
_TYPES.update(dict.fromkeys(ENDS, "success"))


# -- the URLs ------------------------------------------------------------------


class _AppriseLines(logging.Filter):
    """Apprise's info and warnings about work on a thread that asked for them: kept, not logged.

    A failing service makes Apprise log a warning at every attempt; the
    sender logs one line of its own (rate-limited) with Apprise's last
    warning as the reason instead, and one line naming the service for each
    message sent. Debug lines and other threads' records pass untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextlib.contextmanager
    def captured(self) -> Iterator[list[str]]:
        lines: list[str] = []
        outer, self._local.lines = getattr(self._local, "lines", None), lines
        try:
            yield lines
        finally:
            self._local.lines = outer

    def filter(self, record: logging.LogRecord) -> bool:
        lines = getattr(self._local, "lines", None)
        if lines is None or record.levelno < logging.INFO:
            return True
        if record.levelno >= logging.WARNING:
            lines.append(record.getMessage())
        return False


_LINES = _AppriseLines()


def _apprise() -> Any:
    """The apprise module, imported on first use, its log lines routed through :class:`_AppriseLines`."""
    import apprise

    logger = logging.getLogger("apprise")  # the one logger of every Apprise module
    if _LINES not in logger.filters:
        logger.addFilter(_LINES)
    return apprise


def _scheme(url: str) -> str:
    scheme, sep, _ = url.strip().partition("://")
    return scheme.lower() if sep else ""


def url_problem(url: str) -> str | None:
    """Why Apprise cannot use ``url``, naming only its scheme (the rest may be a secret); None if it can."""
    scheme = _scheme(url)
    if not scheme:
        return "is not a URL: expected service://..., such as ntfy://ntfy.sh/my-topic (see Apprise's list of services)"
    apprise = _apprise()
    if scheme not in apprise.NotificationManager():
        return f"{scheme}:// is not a service Apprise knows (see Apprise's list of services for the URL forms)"
    with _LINES.captured():  # Apprise's own complaint may quote the URL
        plugin = apprise.Apprise.instantiate(url.strip())
    if plugin is None:
        return f"is not a {scheme}:// URL Apprise can read: check it against the service's page in Apprise's wiki"
    return None


def masked(url: str) -> str:
    """``url`` as Apprise shows it with its secrets hidden (``scheme://...`` when Apprise cannot read it)."""
    apprise = _apprise()
    with _LINES.captured():
        plugin = apprise.Apprise.instantiate(url.strip())
    if plugin is None:
        return f"{_scheme(url) or '?'}://..."
    return _shown(plugin)


def _shown(plugin: NotifyBase) -> str:
    # Without the query, which Apprise fills with every default (method=POST&overflow=upstream&...).
    return str(plugin.url(privacy=True)).split("?", 1)[0]


def read_urls(target: NotifyConfig, *, key: str) -> list[str]:
    """The target's URLs: ``urls`` and then the lines of ``urls_file``.

    The file must be readable by its owner alone (it holds secrets); blank
    lines and lines starting with ``#`` are left out. ConfigError names
    ``key`` (``notify[0]``) and the line.
    """
    urls = list(target.urls)
    path = target.urls_file
    if path is None:
        return urls
    where = f"{key}.urls_file"
    try:
        with path.open("rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            data = handle.read(MAX_URLS_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read {path}: {exc.strerror or exc}"]) from None
    if mode & 0o077:
        raise ConfigError(
            [
                f"{where}: {path} is open to group or others (mode {mode:04o}) and holds secrets: "
                f"make it the monitor user's alone (chmod 600 {path})"
            ]
        )
    if len(data) > MAX_URLS_FILE_BYTES:
        raise ConfigError([f"{where}: {path} is over {MAX_URLS_FILE_BYTES // 1024} KiB: expected one URL a line"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: {path} is not UTF-8 text: expected one URL a line"]) from None
    problems = []
    found = 0
    for number, line in enumerate(text.splitlines(), start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        found += 1
        problem = url_problem(url)
        if problem is not None:
            problems.append(f"{where}: {path} line {number}: {problem}")
        urls.append(url)
    if not found:
        problems.append(f"{where}: {path} holds no URL: expected one Apprise URL a line")
    if problems:
        raise ConfigError(problems)
    return urls


@dataclass(frozen=True, eq=False)
class Service:
    """One URL of a target, ready to send: ``name`` is the URL with its secrets masked."""

    name: str
    plugin: NotifyBase


def services(target: NotifyConfig, *, key: str) -> list[Service]:
    """A :class:`Service` for each URL of ``target`` (the file read and checked; ConfigError naming ``key``)."""
    apprise = _apprise()
    made = []
    for url in read_urls(target, key=key):
        with _LINES.captured():
            plugin = apprise.Apprise.instantiate(url.strip())
        if plugin is None:  # checked already; only a plugin that fails to start gets here
            raise ConfigError([f"{key}: Apprise cannot set up the {_scheme(url) or '?'}:// service"])
        made.append(Service(name=_shown(plugin), plugin=plugin))
    return made


# -- what a record says ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """What one notification says and carries."""

    title: str
    body: str
    attachments: tuple[Path, ...] = ()  # the first one there (and not too big) goes
    kind: str = "info"  # Apprise's message type: info, success, warning, failure


def wanted(target: NotifyConfig, record: EventRecord) -> bool:
    """Whether ``target`` tells of ``record``: its type in ``on``, its zone in ``zones``, its state in ``states``.

    Records of no zone (the camera's) pass ``zones``.
    """
    if record.type not in target.on:
        return False
    if target.zones is not None and record.zone is not None and record.zone not in target.zones:
        return False
    return not (record.type == "state" and target.states is not None and record.extra.get("state") not in target.states)


def attachments(target: NotifyConfig, record: EventRecord) -> tuple[Path, ...]:
    """The files the message may carry, best first: the clip (``attach: clip``, where there is one), the snapshot."""
    if target.attach == "none":
        return ()
    clip = record.extra.get("clip") if target.attach == "clip" else None
    return tuple(Path(path) for path in (clip, record.snapshot) if isinstance(path, str) and path)


class _Lenient(string.Formatter):
    """str.format that writes ``-`` for an unknown value and ignores a format a value does not take.

    A camera record has no score, so ``{score:.2f}`` must still give a message.
    """

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "-"
        try:
            return format(value, format_spec)
        except (TypeError, ValueError):
            return str(value)


_FORMATTER = _Lenient()


def fields(record: EventRecord, *, host: str) -> dict[str, Any]:
    """The values ``title`` and ``body`` may name."""
    extra = record.extra
    state = extra.get("state") if record.type == "state" else _STATE_WORDS.get(record.type, record.type)
    score = record.score
    scores = extra.get("scores")
    if score is None and isinstance(scores, Mapping):
        score = scores.get(state)
    reason = extra.get("reason") or extra.get("error")
    return {
        "zone": record.zone or "camera",
        "state": state,
        "previous": extra.get("previous"),
        "type": record.type,
        "score": score,
        "time": datetime.fromtimestamp(record.time).strftime("%Y-%m-%d %H:%M:%S"),
        "host": host,
        "reason": reason,
    }


def render(target: NotifyConfig, record: EventRecord, *, held: int = 0, host: str = "") -> Message:
    """The message ``target`` sends for ``record``; ``held``: how many its cooldown held back before it."""
    values = fields(record, host=host)
    body = _FORMATTER.format(target.body, **values)
    if held:
        body += f"\n({held} more held back by the {target.cooldown_seconds:g} s cooldown since the last message)"
    return Message(
        title=_FORMATTER.format(target.title, **values),
        body=body,
        attachments=attachments(target, record),
        kind=_TYPES.get(record.type, "info"),
    )


def sample_record(verdict: Verdict, *, now: float, snapshot: Path) -> EventRecord:
    """What ``monitor test-notify`` tells of a zone as it is now: a change zone's event, a state zone's state."""
    if verdict.kind == "state":
        extra = {"state": verdict.word, "previous": None, "scores": dict(verdict.scores or {})}
        return EventRecord(type="state", time=now, frame=0, zone=verdict.zone, snapshot=str(snapshot), extra=extra)
    return EventRecord(
        type="event_start", time=now, frame=0, zone=verdict.zone, score=verdict.score, snapshot=str(snapshot)
    )


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot make a title or body (an unknown field, a bad brace); None if it can."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for a brace)"
    if len(template) > MAX_TEMPLATE_CHARACTERS:
        return f"is {len(template)} characters long, expected at most {MAX_TEMPLATE_CHARACTERS}"
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in NOTIFY_FIELDS:
            return f"{{{name}}} is not a field (expected: {', '.join(NOTIFY_FIELDS)})"
        if spec and ("{" in spec or "}" in spec):
            return f"{{{name}:{spec}}}: a format cannot hold a field"
        # Checked before trying it: {zone:>999999999} would fill the memory.
        if any(int(number) > MAX_TEMPLATE_CHARACTERS for number in re.findall(r"\d+", spec or "")):
            return f"{{{name}:{spec}}}: a width or precision over {MAX_TEMPLATE_CHARACTERS}"
    # Strict here, lenient when sending: a format that fits no value of its field is a typo.
    sample = dict.fromkeys(NOTIFY_FIELDS, "text") | {"score": 0.5}
    try:
        rendered = template.format(**sample)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return str(exc) or type(exc).__name__
    if len(rendered) > MAX_TEMPLATE_CHARACTERS:
        return f"makes {len(rendered)} characters, expected at most {MAX_TEMPLATE_CHARACTERS}"
    return None


class Cooldown:
    """At most one message per zone in ``seconds``; the rest counted for the next message to say.

    Times are the records' own (the frame's time), so a replay keeps the same
    spacing as the recording. An end (``event_end``, ``camera_found``,
    ``tamper_end``) whose beginning is in ``on`` goes with its beginning:
    it notifies when its beginning did, whatever the cooldown, and is held
    (not counted again) when its beginning was held.
    """

    def __init__(self, seconds: float, *, on: Sequence[str]) -> None:
        self.seconds = seconds
        self._paired = {start for end, start in ENDS.items() if end in on and start in on}
        self._last: dict[str | None, float] = {}
        self._held: dict[str | None, int] = {}
        self._told: dict[tuple[str | None, str], bool] = {}

    def admit(self, zone: str | None, kind: str, now: float) -> int | None:
        """None: hold this record back; else let it through, with how many were held back before it."""
        start = ENDS.get(kind)
        if start in self._paired:
            return 0 if self._told.pop((zone, start), False) else None
        last = self._last.get(zone)
        if last is not None and 0 <= now - last < self.seconds:
            self._held[zone] = self._held.get(zone, 0) + 1
            if kind in self._paired:
                self._told[(zone, kind)] = False
            return None
        self._last[zone] = now
        if kind in self._paired:
            self._told[(zone, kind)] = True
        return self._held.pop(zone, 0)


# -- sending ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one message to one service went: ``reason`` is Apprise's last complaint when it failed."""

    service: str
    ok: bool
    reason: str = ""


def send(service: Service, message: Message) -> Delivery:
    """Send ``message`` to ``service`` once, on this thread (it waits for the service's answer).

    The plugin is called directly rather than through ``Apprise.notify``, which
    hands the work to a pool thread: here Apprise's complaints are heard on
    this thread and become the reason.
    """
    attach = _first_fit(message.attachments)
    with _LINES.captured() as lines:
        try:
            ok = bool(
                service.plugin.notify(
                    body=message.body, title=message.title, notify_type=message.kind, body_format="text", attach=attach
                )
            )
        except Exception as exc:  # a plugin's bug is one failed message, not a dead sender
            ok, lines = False, [*lines, f"{type(exc).__name__}: {exc}"]
    reason = "" if ok else (lines[-1] if lines else "the service did not accept it")
    return Delivery(service.name, ok, reason)


def _first_fit(paths: Sequence[Path]) -> str | None:
    """The first file that is there and not too big: a snapshot may be pruned, a clip may be long."""
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError:
            _log.debug("notify: %s is gone; trying the next attachment", path)
            continue
        if size <= MAX_ATTACHMENT_BYTES:
            return str(path)
        _log.info("notify: %s is over %d MB; trying the next attachment", path, MAX_ATTACHMENT_BYTES // 2**20)
    return None


@dataclass(frozen=True, slots=True)
class _Job:
    target: int
    record: EventRecord
    held: int


class _Target:
    def __init__(self, config: NotifyConfig, services: list[Service]) -> None:
        self.config = config
        self.services = services
        self.cooldown = Cooldown(config.cooldown_seconds, on=config.on)


class NotifySender(Closing):
    """A :class:`~monitor.status.Listener` that sends ``notify:`` messages from a worker thread.

    The URL files are read (and refused if open to others) here, so that a
    bad one stops ``monitor run`` before it touches a pin. ``backoff``: the
    waits before the second, third, ... attempt at a service (so one more
    attempt than waits). ``sent`` and ``failed`` count deliveries, one per
    message and service.
    """

    def __init__(
        self,
        targets: Sequence[NotifyConfig],
        *,
        hostname: str | None = None,
        queue_size: int = QUEUE_SIZE,
        drain_seconds: float = DRAIN_SECONDS,
        backoff: Sequence[float] = BACKOFF_SECONDS,
    ) -> None:
        self._targets = [
            _Target(target, services(target, key=f"notify[{index}]")) for index, target in enumerate(targets)
        ]
        self.hostname = hostname or socket.gethostname()
        self._queue: deque[_Job] = deque()
        self._queue_size = queue_size
        self._drain_seconds = drain_seconds
        self._backoff = list(backoff)
        self._ready = threading.Condition()
        self._give_up = threading.Event()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._failure = Throttle(_log, first=3, every=300.0)
        self._overflow = Throttle(_log, first=1, every=300.0)
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        """Start the worker thread (messages queued before this wait for it)."""
        with self._ready:
            if self._worker is not None or self._closed:
                return
            self._worker = threading.Thread(target=self._work, name="monitor-notify", daemon=True)
            self._worker.start()

    def on_frame(self, status: FrameStatus) -> None:
        """Frames send nothing."""

    def on_event(self, record: EventRecord) -> None:
        """Queue a message for each target that wants ``record`` and whose cooldown lets it through."""
        for index, target in enumerate(self._targets):
            if not wanted(target.config, record):
                continue
            held = target.cooldown.admit(record.zone, record.type, record.time)
            if held is not None:
                self._put(_Job(index, record, held))

    def _put(self, job: _Job) -> None:
        with self._ready:
            if self._closed:
                return
            if len(self._queue) >= self._queue_size:
                dropped = self._queue.popleft()
                self._overflow(
                    logging.WARNING,
                    "notify: %d messages waiting (the services are slow or down); dropped the oldest, of %s",
                    self._queue_size,
                    dropped.record.type,
                )
            self._queue.append(job)
            self._ready.notify()

    def close(self) -> None:
        """Send what is queued for up to ``drain_seconds``, then give up on the rest; later calls do nothing."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            self._ready.notify()
            worker = self._worker
        if worker is None:
            return
        worker.join(self._drain_seconds)
        if not worker.is_alive():
            return
        self._give_up.set()
        with self._ready:
            unsent = len(self._queue)
            self._queue.clear()
        _log.warning(
            "notify: stopping: %d message(s) still waiting after %g s were not sent (a service is slow or down)",
            unsent + 1,
            self._drain_seconds,
        )
        # A request under way ends at its own timeout; the thread is a daemon, so it cannot hold the exit.
        worker.join(0.5)

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
            try:
                self._deliver(job)
            except Exception:
                # Whatever goes wrong with one message, the next one still goes.
                _log.exception("notify: sending the %s message failed", job.record.type)

    def _deliver(self, job: _Job) -> None:
        target = self._targets[job.target]
        message = render(target.config, job.record, held=job.held, host=self.hostname)
        pending = list(target.services)
        reasons: dict[int, str] = {}
        tries = 0
        for delay in (0.0, *self._backoff):
            if self._give_up.wait(delay):
                break
            tries += 1
            pending = self._attempt(pending, message, job.record, reasons)
            if not pending:
                return
        for service in pending:
            self.failed += 1
            self._failure(
                logging.WARNING,
                "notify: %s: the %s message (%s) was not sent in %d attempt(s) and is dropped: %s",
                service.name,
                job.record.type,
                _about(job.record),
                tries,
                reasons.get(id(service), "the monitor was stopping"),
            )

    def _attempt(
        self, pending: list[Service], message: Message, record: EventRecord, reasons: dict[int, str]
    ) -> list[Service]:
        """Send to each service once; return those that failed (or were skipped: the monitor stops)."""
        failed = []
        for service in pending:
            if self._give_up.is_set():
                failed.append(service)
                continue
            delivery = send(service, message)
            if delivery.ok:
                self.sent += 1
                _log.info("notify: sent the %s message (%s) to %s", record.type, _about(record), service.name)
            else:
                failed.append(service)
                reasons[id(service)] = delivery.reason
        return failed


def _about(record: EventRecord) -> str:
    return f"zone {record.zone}" if record.zone is not None else "the camera"


def describe(target: NotifyConfig, urls: Sequence[str]) -> str:
    """One line about a target for ``monitor check``, its URLs masked."""
    zones = "every zone" if target.zones is None else "zones " + ", ".join(target.zones)
    states = "" if target.states is None else f" (states {', '.join(target.states)})"
    shown = ", ".join(masked(url) for url in urls)
    return (
        f"{shown}: {', '.join(target.on)} in {zones}{states}, cooldown {target.cooldown_seconds:g} s, "
        f"attach {target.attach}"
    )
