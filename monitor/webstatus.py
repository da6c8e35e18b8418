"""The status page, JSON API, health check and Prometheus metrics, over HTTP.

:class:`StatusServer` is a :class:`~monitor.status.Listener`: the frame loop
hands it every frame and event, and it only stores them (a copy of the frame
into a buffer it reuses, a point of score history, a few metric updates).
Everything slow happens in the HTTP threads when someone asks: JPEG encoding,
drawing the watched area and the boxes, HTML.

Routes: ``/`` (a self-contained page: no external assets, the Pi may be
offline), ``/frame.jpg``, ``/reference.jpg``, ``/snapshots/<name>.jpg``,
``/api/status``, ``/api/history``, ``/metrics`` and ``/healthz``. With a token
configured every route but ``/healthz`` needs ``Authorization: Bearer <token>``
or ``?token=<token>`` (the page passes its own ``?token=`` on to its images and
requests).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import math
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import cv2
import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.closing import Closing
from monitor.config import HttpConfig
from monitor.drawing import annotate
from monitor.exc import ConfigError, MonitorError
from monitor.status import EventRecord, FrameStatus

__all__ = ["StatusServer"]

_log = logging.getLogger(__name__)

EVENTS_KEPT = 20
FPS_WINDOW = 10.0  # seconds of frame times the fps is measured over
JPEG_QUALITY = 80
EVENT_TYPES = ("event_start", "event_end", "camera_lost", "camera_found")
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames = Counter("monitor_frames", "Frames compared with the reference", registry=self.registry)
        self.events = Counter("monitor_events", "Events recorded, by type", ["type"], registry=self.registry)
        self.camera_errors = Counter("monitor_camera_errors", "Times the camera was lost", registry=self.registry)
        self.score = Gauge("monitor_score", "Latest frame's similarity to the reference", registry=self.registry)
        self.changed = Gauge("monitor_state_changed", "1 while an event is on, else 0", registry=self.registry)
        self.processing = Histogram(
            "monitor_frame_processing_seconds",
            "Time spent comparing one frame",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        for kind in EVENT_TYPES:
            self.events.labels(type=kind)  # present at 0 before the first event, so rate() works


class StatusServer(Closing):
    """Serve the latest frame, score history, events and metrics; a frame-loop Listener.

    ``reference`` and ``mask`` are drawn on the pictures (mask: the watched
    area's outline; None = the whole frame). ``snapshot_dir`` is the only folder
    ``/snapshots/`` serves from. ``/healthz`` fails once no frame has arrived
    for ``stale_seconds`` by ``clock``.
    """

    def __init__(
        self,
        config: HttpConfig,
        *,
        reference: np.ndarray,
        mask: np.ndarray | None,
        snapshot_dir: Path | None,
        clock: Callable[[], float] = time.time,
        stale_seconds: float = 10.0,
    ) -> None:
        self._config = config
        self._token = _read_token(config)
        self._reference = reference
        self._mask = mask
        self._snapshot_dir = snapshot_dir.resolve() if snapshot_dir is not None else None
        self._clock = clock
        self._stale_seconds = stale_seconds
        self._started_at = clock()
        self.metrics = _Metrics()

        self._lock = threading.Lock()
        self._latest: FrameStatus | None = None
        self._arrived_at: float | None = None
        self._frames = 0
        self._image: np.ndarray | None = None  # the loop may reuse its buffer: frames are copied in here
        self._boxes: list[tuple[int, int, int, int]] = []
        self._history: deque[tuple[float, float]] = deque()
        self._frame_times: deque[float] = deque()
        self._events: deque[EventRecord] = deque(maxlen=EVENTS_KEPT)

        self._jpeg_lock = threading.Lock()
        self._frame_jpeg: tuple[int, bytes] | None = None  # (frames count it shows, JPEG)
        self._reference_jpeg: bytes | None = None

        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Listen on ``http.host``:``http.port`` and serve from a daemon thread; a second call does nothing."""
        if self._httpd is not None:
            return
        host, port = self._config.host, self._config.port
        try:
            httpd = _server_class(host)((host, port), _Handler)
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
        """Remember the frame, a point of history and the metrics; no encoding here."""
        now = self._clock()
        with self._lock:
            self._latest = status
            self._arrived_at = now
            self._frames += 1
            if status.image is not None:
                if self._image is None or self._image.shape != status.image.shape:
                    self._image = np.empty_like(status.image)
                np.copyto(self._image, status.image)
            if status.boxes:
                self._boxes = list(status.boxes)
            elif status.state != "changed":
                self._boxes = []
            if self._history and status.time < self._history[-1][0]:
                # The clock stepped back (a Pi without a clock battery syncing over NTP): start afresh.
                self._history.clear()
                self._frame_times.clear()
            self._history.append((status.time, status.score))
            while self._history and self._history[0][0] < status.time - self._config.history_seconds:
                self._history.popleft()
            self._frame_times.append(status.time)
            while self._frame_times and self._frame_times[0] < status.time - FPS_WINDOW:
                self._frame_times.popleft()
        self.metrics.frames.inc()
        self.metrics.score.set(status.score)
        self.metrics.changed.set(1 if status.state == "changed" else 0)
        self.metrics.processing.observe(status.processing_seconds)

    def on_event(self, record: EventRecord) -> None:
        """Keep the event for the page and count it."""
        with self._lock:
            self._events.append(record)
            if record.type == "event_start" and record.boxes:
                self._boxes = list(record.boxes)
        self.metrics.events.labels(type=record.type).inc()
        if record.type == "camera_lost":
            self.metrics.camera_errors.inc()

    # -- what the routes serve -------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The body of ``/api/status``."""
        now = self._clock()
        with self._lock:
            latest, frames, times = self._latest, self._frames, list(self._frame_times)
            last_event = self._events[-1] if self._events else None
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        return {
            "state": latest.state if latest else None,
            "score": _finite(latest.score) if latest else None,
            "changed_fraction": _finite(latest.changed_fraction) if latest else None,
            "threshold": latest.threshold if latest else None,
            "clear_threshold": latest.clear_threshold if latest else None,
            "fps": round(fps, 2),
            "last_event": last_event.to_json() if last_event else None,
            "uptime_seconds": round(now - self._started_at, 3),
            "frames": frames,
            "frame": latest.frame if latest else None,
            "history_seconds": self._config.history_seconds,
        }

    def history_json(self) -> list[list[float | None]]:
        """The body of ``/api/history``: ``[time, score]`` pairs, oldest first."""
        with self._lock:
            history = list(self._history)
        return [[round(t, 3), _finite(score)] for t, score in history]

    def health(self) -> tuple[bool, str]:
        """Whether frames are arriving, and a word on it for ``/healthz``."""
        now = self._clock()
        with self._lock:
            arrived_at, latest = self._arrived_at, self._latest
        if arrived_at is None or latest is None:
            return False, "no frame yet"
        age = now - arrived_at
        if age > self._stale_seconds:
            return False, f"no frame for {age:.0f} s"
        if latest.state == "camera_lost":
            return False, "camera lost"
        return True, "ok"

    def frame_jpeg(self) -> bytes:
        """The latest frame (the reference before the first one) with the watched area and boxes drawn."""
        with self._lock:
            frames, latest = self._frames, self._latest
            image = self._image.copy() if self._image is not None else None
            boxes = list(self._boxes)
        with self._jpeg_lock:
            if self._frame_jpeg is not None and self._frame_jpeg[0] == frames:
                return self._frame_jpeg[1]
        if image is None or latest is None:
            data = self.reference_jpeg()
        else:
            label = f"#{latest.frame}  {_score_text(latest.score)}  {latest.state}"
            data = _encode(annotate(image, mask=_fit_mask(self._mask, image.shape), boxes=boxes, label=label))
        with self._jpeg_lock:
            self._frame_jpeg = (frames, data)
        return data

    def reference_jpeg(self) -> bytes:
        """The reference with the watched area outlined."""
        with self._jpeg_lock:
            if self._reference_jpeg is None:
                gray = (
                    self._reference if self._reference.ndim == 2 else cv2.cvtColor(self._reference, cv2.COLOR_BGR2GRAY)
                )
                mask = _fit_mask(self._mask, gray.shape)
                self._reference_jpeg = _encode(annotate(gray, mask=mask, label="reference"))
            return self._reference_jpeg

    def snapshot_path(self, name: str) -> Path | None:
        """The snapshot file called ``name`` inside the snapshot folder, or None for anything else."""
        if self._snapshot_dir is None or not _plain_jpeg_name(name):
            return None
        path = (self._snapshot_dir / name).resolve()
        if path.parent != self._snapshot_dir or not path.is_file():
            return None
        return path

    def page_html(self, *, token_query: str, nonce: str) -> str:
        """The status page; ``token_query`` (``""`` or ``"?token=..."``) is passed on to its links."""
        status = self.status_json()
        with self._lock:
            events = list(reversed(self._events))
        return _render_page(status, events, token_query=token_query, nonce=nonce, snapshots=self._snapshot_dir)

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


# -- HTTP ----------------------------------------------------------------------


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    if ":" not in host:
        return ThreadingHTTPServer

    class _ThreadingHTTPServer6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    return _ThreadingHTTPServer6


class _Handler(BaseHTTPRequestHandler):
    server_version = "monitor"
    timeout = 30  # an idle client gives up its thread after this

    @property
    def _status(self) -> StatusServer:
        status: StatusServer = self.server.status  # type: ignore[attr-defined]
        return status

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
            healthy, text = self._status.health()
            code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(code, (text + "\n").encode(), "text/plain; charset=utf-8")
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
        if path == "/":
            nonce = secrets.token_urlsafe(16)
            token_query = f"?token={quote(query_token, safe='')}" if query_token else ""
            body = self._status.page_html(token_query=token_query, nonce=nonce).encode()
            csp = (
                f"default-src 'none'; img-src 'self' data:; connect-src 'self'; script-src 'nonce-{nonce}'; "
                f"style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", headers={"Content-Security-Policy": csp})
        elif path == "/frame.jpg":
            self._send(HTTPStatus.OK, self._status.frame_jpeg(), "image/jpeg")
        elif path == "/reference.jpg":
            self._send(HTTPStatus.OK, self._status.reference_jpeg(), "image/jpeg")
        elif path.startswith("/snapshots/"):
            self._send_snapshot(unquote(path[len("/snapshots/") :]))
        elif path == "/api/status":
            self._send_json(self._status.status_json())
        elif path == "/api/history":
            self._send_json(self._status.history_json())
        elif path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self._status.metrics.registry), CONTENT_TYPE_LATEST)
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

    def _send_json(self, value: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(value, allow_nan=False).encode(), "application/json")

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
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Every request at debug only: a page refreshing every 2 s would flood journald.
        _log.debug("%s %s", self.address_string(), format % args)


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


def _finite(value: float) -> float | None:
    return round(value, 5) if math.isfinite(value) else None


def _score_text(score: float) -> str:
    return f"{score:.3f}" if math.isfinite(score) else "-"


def _fit_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None or mask.shape == shape[:2]:
        return mask
    # Frames of another size than the mask (a misconfigured source): outline it where it would fall.
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _encode(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MonitorError("could not encode the frame as JPEG")
    return bytes(data.tobytes())


# -- the page ------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111827; }
header { display: flex; align-items: center; gap: 16px; padding: 10px 18px; background: #1f2937; color: #f9fafb; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; padding: 16px;
  align-items: start; }
#live { grid-row: span 2; }
@media (max-width: 800px) { main { grid-template-columns: 1fr; } #live { grid-row: auto; } }
section { background: #fff; border-radius: 8px; padding: 12px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #4b5563; }
#frame { width: 100%; height: auto; display: block; background: #111; border-radius: 4px; }
#score-chart { width: 100%; height: 180px; display: block; background: #fafafa; border-radius: 4px; }
.state { padding: 2px 10px; border-radius: 12px; font-weight: 600; background: #6b7280; }
.state-unchanged { background: #15803d; } .state-changed { background: #b91c1c; }
.state-settling { background: #a16207; } .state-camera_lost { background: #7c3aed; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 10px 0 0; }
dt { color: #6b7280; } dd { margin: 0; font-variant-numeric: tabular-nums; }
.legend span { margin-right: 12px; font-size: 13px; } .legend i { display: inline-block; width: 14px; height: 3px;
  vertical-align: middle; margin-right: 4px; }
.c-score { background: #2563eb; } .c-threshold { background: #dc2626; } .c-clear { background: #16a34a; }
ol { list-style: none; padding: 0; margin: 0; }
li { display: flex; gap: 10px; padding: 6px 0; border-top: 1px solid #e5e7eb; }
li:first-child { border-top: 0; } li img { width: 120px; height: auto; border-radius: 3px; }
.type { font-weight: 600; } .muted { color: #6b7280; font-size: 13px; word-break: break-all; }
#reference { width: 160px; height: auto; border-radius: 3px; margin-top: 10px; }
"""

_SCRIPT = """
"use strict";
const params = new URLSearchParams(location.search);
const tokenQuery = params.get("token") ? "token=" + encodeURIComponent(params.get("token")) : "";
const shownEvent = document.body.dataset.lastEvent;
const SVG = "http://www.w3.org/2000/svg";

function url(path) {
  const sep = path.includes("?") ? "&" : "?";
  return tokenQuery ? path + sep + tokenQuery : path;
}

function setText(id, value) {
  const el = document.getElementById(id);
  if (el) el.textContent = value;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function duration(seconds) {
  const s = Math.floor(seconds), m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return d + " d " + (h % 24) + " h";
  if (h) return h + " h " + (m % 60) + " min";
  return m + " min " + (s % 60) + " s";
}

function refreshFrame() {
  const next = new Image();
  next.onload = () => { document.getElementById("frame").src = next.src; };
  next.src = url("/frame.jpg?t=" + Date.now());
}

function line(svg, attrs) {
  const el = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  svg.appendChild(el);
}

function label(svg, x, y, text, color) {
  const el = document.createElementNS(SVG, "text");
  el.setAttribute("x", x); el.setAttribute("y", y); el.setAttribute("fill", color);
  el.setAttribute("font-size", "11"); el.textContent = text;
  svg.appendChild(el);
}

function drawChart(points, status) {
  const svg = document.getElementById("score-chart");
  const W = 600, H = 180, L = 34, R = 6, T = 8, B = 18;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const scored = points.filter(p => p[1] !== null);
  const threshold = status.threshold ?? 0.9, clear = status.clear_threshold ?? threshold;
  let low = Math.min(threshold - 0.05, ...scored.map(p => p[1]));
  low = Math.max(0, Math.floor(low * 20) / 20);
  const high = 1.0;
  const t1 = points.length ? points[points.length - 1][0] : 0;
  const t0 = Math.min(t1 - 10, points.length ? points[0][0] : t1);
  const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
  const y = s => T + (H - T - B) * (high - s) / (high - low);
  line(svg, {x1: L, y1: T, x2: L, y2: H - B, stroke: "#9ca3af"});
  line(svg, {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9ca3af"});
  label(svg, 2, y(high) + 4, high.toFixed(2), "#6b7280");
  label(svg, 2, y(low) + 4, low.toFixed(2), "#6b7280");
  label(svg, L + 2, H - 4, "-" + Math.round(t1 - t0) + " s", "#6b7280");
  label(svg, W - R - 22, H - 4, "now", "#6b7280");
  line(svg, {x1: L, y1: y(threshold), x2: W - R, y2: y(threshold), stroke: "#dc2626", "stroke-dasharray": "5 4"});
  line(svg, {x1: L, y1: y(clear), x2: W - R, y2: y(clear), stroke: "#16a34a", "stroke-dasharray": "5 4"});
  if (!scored.length) return;
  const poly = document.createElementNS(SVG, "polyline");
  poly.setAttribute("id", "score-line");
  poly.setAttribute("fill", "none");
  poly.setAttribute("stroke", "#2563eb");
  poly.setAttribute("stroke-width", "2");
  poly.setAttribute("points", scored.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "));
  svg.appendChild(poly);
}

async function refreshData() {
  try {
    const status = await (await fetch(url("/api/status"), {cache: "no-store"})).json();
    const history = await (await fetch(url("/api/history"), {cache: "no-store"})).json();
    const stateEl = document.getElementById("state");
    stateEl.textContent = status.state ?? "waiting";
    stateEl.className = "state state-" + (status.state ?? "none");
    setText("score", fmt(status.score, 4));
    setText("changed", status.changed_fraction === null ? "-" : (100 * status.changed_fraction).toFixed(1) + " %");
    setText("fps", fmt(status.fps, 1));
    setText("frames", status.frames);
    setText("uptime", duration(status.uptime_seconds));
    drawChart(history, status);
    const latest = status.last_event ? status.last_event.time : "";
    if (latest !== shownEvent) location.reload();
  } catch (err) {
    setText("error", "no answer from the monitor: " + err);
    return;
  }
  setText("error", "");
}

refreshData();
setInterval(() => { refreshFrame(); refreshData(); }, 2000);
"""


def _render_page(
    status: dict[str, Any],
    events: list[EventRecord],
    *,
    token_query: str,
    nonce: str,
    snapshots: Path | None,
) -> str:
    e = html.escape
    last_event = status["last_event"]
    state = status["state"] or "waiting"
    score = "-" if status["score"] is None else f"{status['score']:.4f}"
    changed = "-" if status["changed_fraction"] is None else f"{100 * status['changed_fraction']:.1f} %"
    threshold = "-" if status["threshold"] is None else f"{status['threshold']:g}"
    clear = "-" if status["clear_threshold"] is None else f"{status['clear_threshold']:g}"
    minutes = status["history_seconds"] / 60
    items = "\n".join(_render_event(record, token_query=token_query, snapshots=snapshots) for record in events)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>monitor: {e(state)}</title>
<link rel="icon" href="data:,">
<style nonce="{e(nonce)}">{_STYLE}</style>
</head>
<body data-last-event="{e(last_event["time"] if last_event else "")}">
<header><h1>monitor</h1><span id="state" class="state state-{e(state)}">{e(state)}</span>
<span>score <b id="score">{e(score)}</b></span><span id="error" class="muted"></span></header>
<main>
<section id="live">
<h2>Latest frame</h2>
<img id="frame" src="/frame.jpg{e(token_query)}" alt="the latest frame, watched area outlined, changes boxed">
</section>
<section>
<h2>Score, last {minutes:g} minutes</h2>
<svg id="score-chart" viewBox="0 0 600 180" preserveAspectRatio="none" role="img"
 aria-label="score against the thresholds"></svg>
<div class="legend"><span><i class="c-score"></i>score</span>
<span><i class="c-threshold"></i>threshold {e(threshold)}</span>
<span><i class="c-clear"></i>clear {e(clear)}</span></div>
<dl>
<dt>changed area</dt><dd id="changed">{e(changed)}</dd>
<dt>frames per second</dt><dd id="fps">{status["fps"]:.1f}</dd>
<dt>frames</dt><dd id="frames">{status["frames"]}</dd>
<dt>up for</dt><dd id="uptime">{_duration(status["uptime_seconds"])}</dd>
</dl>
<img id="reference" src="/reference.jpg{e(token_query)}" alt="the reference picture">
</section>
<section id="history">
<h2>Latest events</h2>
<ol id="events">
{items or '<li class="muted">none yet</li>'}
</ol>
</section>
</main>
<script nonce="{e(nonce)}">{_SCRIPT}</script>
</body>
</html>
"""


def _render_event(record: EventRecord, *, token_query: str, snapshots: Path | None) -> str:
    e = html.escape
    data = record.to_json()
    details = []
    if record.score is not None:
        details.append(f"score {record.score:.4f}")
    if record.changed_fraction is not None:
        details.append(f"changed {100 * record.changed_fraction:.1f} %")
    details.extend(f"{key} {value}" for key, value in record.extra.items())
    thumbnail = ""
    if record.snapshot:
        name = Path(record.snapshot).name
        if snapshots is not None and _plain_jpeg_name(name):
            href = f"/snapshots/{quote(name, safe='')}{token_query}"
            thumbnail = f'<a href="{e(href)}"><img src="{e(href)}" alt="snapshot" loading="lazy"></a>'
        details.append(f"snapshot {record.snapshot}")
    return (
        f'<li>{thumbnail}<div><span class="type">{e(record.type)}</span> '
        f'<time datetime="{e(data["time"])}">{e(_local_time(record.time))}</time>'
        f'<div class="muted">{e(" · ".join(details))}</div></div></li>'
    )


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"
