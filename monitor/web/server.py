"""The status page, JSON API, health check and Prometheus metrics, over HTTP.

:class:`StatusServer` is a :class:`~monitor.status.Listener` (it hands frames
and events to its :class:`~monitor.web.state.LiveState`) and serves them:
``/`` (the page: static HTML, CSS and JavaScript from ``static/``, no external
assets, the Pi may be offline; the script draws everything from the JSON API),
``/frame.jpg``, ``/reference.jpg``, ``/snapshots/<name>.jpg``, ``/clips/<name>.mp4``, ``/api/status``,
``/api/history``, ``/api/events``, ``/metrics`` and ``/healthz``; ``POST /api/arm``
and ``POST /api/disarm`` with an ``arming:`` section. With a token
configured every route but ``/healthz`` and the page's own static files needs
``Authorization: Bearer <token>`` or ``?token=<token>`` (the page passes its own
``?token=`` on to its images and requests).

The live view and the zone editor: ``/stream.mjpg`` (see :mod:`monitor.web.stream`),
``/zones`` (the editor's page), ``/api/config/zones`` and ``/plain/frame.jpg``,
``/plain/reference.jpg`` to read, and the writes ``PUT /api/config/zones`` and
``POST /api/zones/capture-state`` (see :mod:`monitor.web.editor`). A write needs the
token in an ``Authorization: Bearer`` header, never ``?token=`` nor a cookie, so
another site cannot make a browser send one; with no token configured nothing
can be written.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.arming import command_fields
from monitor.arming_state import ArmingState
from monitor.clips import is_clip_name
from monitor.closing import Closing
from monitor.config import Config, HttpConfig
from monitor.exc import CommandError, ConfigError, MonitorError
from monitor.status import EventRecord, FrameStatus, Scene
from monitor.web import stream
from monitor.web.editor import EditorError, ZoneEditor
from monitor.web.httpd import BoundedHandler, BoundedHTTPServer
from monitor.web.state import LiveState

__all__ = ["StatusServer"]

_log = logging.getLogger(__name__)

_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")

# The page's files: name -> content type. Nothing else is served from the package.
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "zones.html": "text/html; charset=utf-8",
    "zones.css": "text/css; charset=utf-8",
    "zones.js": "text/javascript; charset=utf-8",
}
CLIP_TYPES = {".mp4": "video/mp4", ".avi": "video/x-msvideo"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
ARMING_ROUTES = ("/api/arm", "/api/disarm")
MAX_COMMAND_BYTES = 4096  # {"zone": ..., "for_seconds": ...} is a few dozen bytes
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_BODY_BYTES = 256 * 1024  # a write's JSON body: zones with thousands of points fit many times over
CSP = (
    "default-src 'none'; img-src 'self' data:; connect-src 'self'; script-src 'self'; style-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class StatusServer(Closing):
    """Serve the latest frame, score history, events and metrics; a frame-loop Listener.

    ``scene``: the reference and the zones' masks, or a function giving them
    as they are now (a reload or an adapted reference changes them).
    ``snapshot_dir`` is the only folder ``/snapshots/`` serves from, ``clip_dir`` the only one ``/clips/`` does.
    ``config_path`` and ``reload``: the file the zone editor saves to, and
    how to make the monitor re-read it (without them the editor is read-only).
    """

    # Connections served at once (the live view's max_streams among them), and the seconds a request
    # has for its line and headers: see monitor/web/httpd.py.
    MAX_CONNECTIONS: ClassVar[int] = 24
    HEADER_SECONDS: ClassVar[float] = 10.0

    def __init__(
        self,
        config: HttpConfig,
        *,
        scene: Scene | Callable[[], Scene],
        snapshot_dir: Path | None,
        clip_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        stale_seconds: float = 10.0,
        arming: ArmingState | None = None,
        config_path: Path | None = None,
        reload: Callable[[], None] | None = None,
        check: Callable[[Config], None] | None = None,
    ) -> None:
        self._config = config
        self.arming = arming
        self._clock = clock
        self._token = _read_token(config)
        fixed = scene
        current = (lambda: fixed) if isinstance(fixed, Scene) else fixed
        self.live = LiveState(config, scene=current, clock=clock, stale_seconds=stale_seconds)
        self.metrics = self.live.metrics
        self._snapshot_dir = snapshot_dir.resolve() if snapshot_dir is not None else None
        self._clip_dir = clip_dir.resolve() if clip_dir is not None else None
        self._static = {name: resources.files("monitor.web").joinpath("static", name).read_bytes() for name in STATIC}
        self._httpd: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # ends the live streams and captures when the server closes
        self.streams = stream.StreamSlots(config.max_streams)
        self.stream_frames = stream.Ticks(self.live.frame_jpeg, fps=config.stream_fps)
        self.editor = ZoneEditor(
            config_path,
            live=self.live,
            reload=reload,
            check=check,
            token_set=self._token is not None,
            stopping=self.stopping,
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Listen on ``http.host``:``http.port`` and serve from a daemon thread; a second call does nothing."""
        if self._httpd is not None:
            return
        host, port = self._config.host, self._config.port
        try:
            httpd = BoundedHTTPServer(
                (host, port),
                _Handler,
                max_connections=self.MAX_CONNECTIONS,
                header_seconds=self.HEADER_SECONDS,
                allowed_hosts=frozenset(self._config.allowed_hosts),
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MonitorError(f"http.host/http.port: cannot listen on {host}:{port}: {reason}") from None
        httpd.status = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="monitor-http", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = self.address
        _log.info("status page on http://%s:%d/", bound_host, bound_port)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually listened on (the real port when ``http.port`` is 0)."""
        if self._httpd is None:
            raise MonitorError("the status server is not listening (call start() first)")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    # -- Listener --------------------------------------------------------------

    def on_frame(self, status: FrameStatus) -> None:
        """Hand the frame to the live state (a copy and a few numbers; no encoding here)."""
        self.live.on_frame(status)

    def on_event(self, record: EventRecord) -> None:
        """Hand the record to the live state."""
        self.live.on_event(record)

    # -- what the routes need ----------------------------------------------------

    def static(self, name: str) -> bytes | None:
        """One of the page's files, or None."""
        return self._static.get(name)

    def snapshot_path(self, name: str) -> Path | None:
        """The snapshot file called ``name`` inside the snapshot folder, or None for anything else."""
        if self._snapshot_dir is None or not _plain_jpeg_name(name):
            return None
        path = (self._snapshot_dir / name).resolve()
        if path.parent != self._snapshot_dir or not path.is_file():
            return None
        return path

    def clip_path(self, name: str) -> Path | None:
        """The finished clip called ``name`` inside the clips folder, or None for anything else."""
        if self._clip_dir is None or not is_clip_name(name):
            return None
        path = (self._clip_dir / name).resolve()
        if path.parent != self._clip_dir or not path.is_file():
            return None
        return path

    def authorized(self, header: str | None, query_token: str | None) -> bool:
        """Whether a request carries the token (always, when none is configured)."""
        if self._token is None:
            return True
        expected = self._token.encode()
        offered: list[str] = []
        if header and header[:7].lower() == "bearer ":
            offered.append(header[7:].strip())
        if query_token is not None:
            offered.append(query_token)
        # Compare every candidate so the time taken does not tell which one was tried.
        results = [hmac.compare_digest(candidate.encode(), expected) for candidate in offered]
        return any(results)

    # -- arming (issue 14) -------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The body of ``/api/status``: the live state, with each zone's armed state and why."""
        body = self.live.status_json()
        body["arming"] = self.arming is not None
        if self.arming is not None:
            states = self.arming.evaluate(self._clock())
            for name, zone in body["zones"].items():
                state = states.get(name)
                if state is not None:
                    details = state.to_json()
                    zone.update(armed=state.armed, armed_by=details["by"], armed_reason=state.reason)
                    zone["armed_until"] = details["until"]
        return body

    def arm_command(self, path: str, body: Any) -> tuple[HTTPStatus, dict[str, Any]]:
        """Carry out ``POST /api/arm`` or ``/api/disarm`` with its JSON ``body``; the status and the answer."""
        if self.arming is None:
            return HTTPStatus.NOT_FOUND, {"error": "arming is not configured (add an arming: section)"}
        try:
            zone, seconds = command_fields(body)
            states = self.arming.command(armed=path == "/api/arm", zone=zone, for_seconds=seconds, by="http")
        except CommandError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        answer: dict[str, Any] = {"zones": {name: state.to_json() for name, state in states.items()}}
        if self.arming.save_error is not None:
            answer["warning"] = self.arming.save_error
        return HTTPStatus.OK, answer

    def commands_allowed(self) -> bool:
        """Commands need a token whenever one is configured, and always off loopback."""
        return self._token is not None or self._config.host in LOOPBACK

    def may_write(self, header: str | None) -> bool:
        """Whether a request may change something: the token in its ``Authorization: Bearer`` header."""
        return self._token is not None and self.authorized(header, None)


# -- HTTP ----------------------------------------------------------------------


class _Handler(BoundedHandler):
    server_version = "monitor"

    @property
    def _status(self) -> StatusServer:
        status: StatusServer = self.server.status  # type: ignore[attr-defined]
        return status

    def do_HEAD(self) -> None:
        self.do_GET()  # _send and the streaming routes leave the body out for HEAD

    def do_GET(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            _log.debug("client %s went away", self.address_string())
        except Exception:
            _log.exception("status page: %s failed", self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain; charset=utf-8")

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        if path == "/healthz":
            healthy, text = self._status.live.health()
            code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(code, (text + "\n").encode(), "text/plain; charset=utf-8")
            return
        if path.startswith("/static/") and path[len("/static/") :] in STATIC:
            # The page's own files hold no data: served without the token, so the page can load them.
            name = path[len("/static/") :]
            self._send(HTTPStatus.OK, self._status.static(name) or b"", STATIC[name], cache=True)
            return
        query_token = query.get("token", [None])[-1]
        if not self._status.authorized(self.headers.get("Authorization"), query_token):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"a token is required: Authorization: Bearer <token>, or ?token=<token>\n",
                "text/plain; charset=utf-8",
                headers={"WWW-Authenticate": 'Bearer realm="monitor"'},
            )
            return
        live = self._status.live
        if path == "/":
            page = self._status.static("index.html") or b""
            self._send(HTTPStatus.OK, page, STATIC["index.html"], headers={"Content-Security-Policy": CSP})
        elif path == "/frame.jpg":
            self._send(HTTPStatus.OK, live.frame_jpeg(), "image/jpeg")
        elif path == "/reference.jpg":
            self._send(HTTPStatus.OK, live.reference_jpeg(), "image/jpeg")
        elif path.startswith("/snapshots/"):
            self._send_snapshot(unquote(path[len("/snapshots/") :]))
        elif path.startswith("/clips/"):
            self._send_clip(unquote(path[len("/clips/") :]))
        elif path == "/api/status":
            self._send_json(self._status.status_json())
        elif path == "/api/history":
            self._send_json(live.history_json())
        elif path == "/api/events":
            self._send_json(live.events_json())
        elif path in ARMING_ROUTES:
            self._send(
                HTTPStatus.METHOD_NOT_ALLOWED, b"use POST\n", "text/plain; charset=utf-8", headers={"Allow": "POST"}
            )
        elif path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(live.metrics.registry), CONTENT_TYPE_LATEST)
        # -- the live view and the zone editor (reads) --
        elif path == "/stream.mjpg":
            self._send_stream()
        elif path == "/zones":
            page = self._status.static("zones.html") or b""
            self._send(HTTPStatus.OK, page, STATIC["zones.html"], headers={"Content-Security-Policy": CSP})
        elif path == "/api/config/zones":
            self._send_json(self._status.editor.describe())
        elif path in ("/plain/frame.jpg", "/plain/reference.jpg"):
            self._send(HTTPStatus.OK, live.plain_jpeg(path[len("/plain/") : -len(".jpg")]), "image/jpeg")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _send_snapshot(self, name: str) -> None:
        if "/" in name or "\\" in name or ".." in name:
            self._send(HTTPStatus.BAD_REQUEST, b"bad snapshot name\n", "text/plain; charset=utf-8")
            return
        path = self._status.snapshot_path(name)
        if path is None:
            self._send(HTTPStatus.NOT_FOUND, b"no such snapshot\n", "text/plain; charset=utf-8")
            return
        try:
            data = path.read_bytes()
        except OSError:  # deleted by retention between the check and the read
            self._send(HTTPStatus.NOT_FOUND, b"no such snapshot\n", "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, data, "image/jpeg", cache=True)

    def _send_clip(self, name: str) -> None:
        """The clip, or the byte range asked for: phones (Safari on iOS above all) play video only with ranges."""
        if "/" in name or "\\" in name or ".." in name:
            self._send(HTTPStatus.BAD_REQUEST, b"bad clip name\n", "text/plain; charset=utf-8")
            return
        path = self._status.clip_path(name)
        try:
            handle = path.open("rb") if path is not None else None
        except OSError:  # deleted by retention between the check and the open
            handle = None
        if path is None or handle is None:
            self._send(HTTPStatus.NOT_FOUND, b"no such clip\n", "text/plain; charset=utf-8")
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            span = _byte_range(self.headers.get("Range"), size)
            if span is None:
                self._send(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    b"range not satisfiable\n",
                    "text/plain; charset=utf-8",
                    headers={"Content-Range": f"bytes */{size}"},
                )
                return
            start, end = span
            partial = (start, end) != (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            self.send_header("Content-Type", CLIP_TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Cache-Control", "private, max-age=3600")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command == "HEAD":
                return
            handle.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := handle.read(min(1 << 16, left))):
                self.wfile.write(chunk)  # in pieces: a clip may be tens of MB, the Pi's RAM is small
                left -= len(chunk)

    def _send_json(self, value: Any, code: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(code, json.dumps(value, allow_nan=False).encode(), "application/json")

    def _send_stream(self) -> None:
        status = self._status
        if not status.streams.acquire():
            limit = status.streams.limit
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the live view has {limit} viewers already (http.max_streams: {limit})\n".encode(),
                "text/plain; charset=utf-8",
                headers={"Retry-After": "10"},
            )
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", stream.CONTENT_TYPE)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command == "HEAD":
                return
            for part in stream.parts(status.stream_frames, stopping=status.stopping):
                self.wfile.write(part)
                self.wfile.flush()
        except TimeoutError:  # a viewer that stopped reading: its slot back after the socket timeout
            _log.debug("live view: %s stopped reading", self.address_string())
            self.close_connection = True
        finally:
            status.streams.release()

    # -- writes: the zone editor (an Authorization: Bearer header only) ----------

    def do_PUT(self) -> None:
        self._write()

    def do_POST(self) -> None:
        if urlsplit(self.path).path in ARMING_ROUTES:
            self._arming_post()  # its own rules: see _post
        else:
            self._write()

    def _write(self) -> None:
        try:
            self._route_write()
        except (BrokenPipeError, ConnectionResetError):
            _log.debug("client %s went away", self.address_string())
        except EditorError as exc:
            self._send_json({"problems": exc.problems}, exc.status)
        except Exception:
            _log.exception("status page: %s %s failed", self.command, self.path)
            self._send_json({"problems": ["internal error: see the monitor's log"]}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route_write(self) -> None:
        status, path = self._status, urlsplit(self.path).path
        editor = status.editor
        if not status.may_write(self.headers.get("Authorization")):
            if editor.read_only_reason is not None:
                raise EditorError(HTTPStatus.FORBIDDEN, [editor.read_only_reason])
            problem = "changes need the token in a header: Authorization: Bearer <token> (?token= is not enough)"
            self._send(
                HTTPStatus.UNAUTHORIZED,
                json.dumps({"problems": [problem]}).encode(),
                "application/json",
                headers={"WWW-Authenticate": 'Bearer realm="monitor"'},
            )
            return
        routes: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {
            ("PUT", "/api/config/zones"): lambda body: editor.save(body, version=self.headers.get("If-Match")),
            ("POST", "/api/zones/capture-state"): editor.capture,
        }
        route = routes.get((self.command, path))
        if route is None:
            raise EditorError(HTTPStatus.NOT_FOUND, [f"no such route: {self.command} {path}"])
        self._send_json(route(self._read_json()))

    def _read_json(self) -> Any:
        """The request's JSON body, at most MAX_BODY_BYTES of it."""
        if self.headers.get("Transfer-Encoding"):
            raise EditorError(HTTPStatus.LENGTH_REQUIRED, ["send the body with a Content-Length, not chunked"])
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise EditorError(HTTPStatus.LENGTH_REQUIRED, ["a Content-Length is required"]) from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise EditorError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, [f"the body is {length} bytes, at most {MAX_BODY_BYTES}"]
            )
        body = self.rfile.read(length)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise EditorError(HTTPStatus.BAD_REQUEST, [f"the body is not valid JSON: {exc}"]) from None

    def _send(
        self,
        code: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        cache: bool = False,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- POST: arm and disarm (issue 14) ------------------------------------------

    def _arming_post(self) -> None:
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            _log.debug("client %s went away", self.address_string())
        except Exception:
            _log.exception("status page: POST %s failed", self.path)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _post(self) -> None:
        url = urlsplit(self.path)
        if url.path not in ARMING_ROUTES:
            self._send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        status = self._status
        query_token = parse_qs(url.query).get("token", [None])[-1]
        if not status.authorized(self.headers.get("Authorization"), query_token):
            self._send_error(HTTPStatus.UNAUTHORIZED, "a token is required: Authorization: Bearer <token>, or ?token=")
            return
        if not status.commands_allowed():
            self._send_error(HTTPStatus.FORBIDDEN, "commands off loopback need http.token")
            return
        if not _same_origin(self.headers.get("Origin"), self.headers.get("Host")):
            # Another site's page in the user's browser must not arm or disarm.
            self._send_error(HTTPStatus.FORBIDDEN, "cross-origin request refused")
            return
        if self.headers.get_content_type() != "application/json":
            self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "expected a Content-Length")
            return
        if len(length.strip()) > 9 or int(length) > MAX_COMMAND_BYTES:
            self.close_connection = True  # the body is left unread
            self._send_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body may hold at most {MAX_COMMAND_BYTES} bytes"
            )
            return
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._send_error(HTTPStatus.BAD_REQUEST, "the body is not valid JSON")
            return
        code, answer = status.arm_command(url.path, body)
        self._send(code, json.dumps(answer).encode(), "application/json")

    def _send_error(self, code: HTTPStatus, message: str) -> None:
        self._send(code, json.dumps({"error": message}).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        # Every request at debug only: a page refreshing every 2 s would flood journald. The request
        # line may carry ?token=: it never reaches a log.
        _log.debug("%s %s", self.address_string(), _TOKEN_IN_QUERY.sub(r"\1***", format % args))


# -- helpers -------------------------------------------------------------------


def _read_token(config: HttpConfig) -> str | None:
    if config.token is not None:
        return config.token
    if config.token_file is None:
        return None
    try:
        token = config.token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([f"http.token_file: cannot read {config.token_file}: {reason}"]) from None
    if len(token) < 16:
        raise ConfigError([f"http.token_file: {config.token_file} must hold a token of 16+ characters"])
    return token


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte a ``Range`` header asks for; None when the file cannot satisfy it.

    No header, or one this server does not do (several ranges, another unit),
    is the whole file, as RFC 9110 lets a server answer.
    """
    asked = _RANGE.fullmatch(header.strip()) if header else None
    if asked is None or not any(asked.groups()):
        return (0, size - 1)
    first, last = asked.groups()
    if not first:  # bytes=-N: the last N bytes
        return (max(0, size - int(last)), size - 1) if int(last) > 0 and size > 0 else None
    start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start < size and start <= end else None


def _same_origin(origin: str | None, host: str | None) -> bool:
    """No Origin header (not a browser, or a same-origin GET-like request), or one naming this very host."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return host is not None and parts.scheme in ("http", "https") and parts.netloc == host


def _plain_jpeg_name(name: str) -> bool:
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and ".." not in name
        and name.lower().endswith(".jpg")
    )
