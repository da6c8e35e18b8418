"""What the status page shows, kept up to date by the frame loop: the latest frame, history, events, metrics.

:class:`LiveState` is a :class:`~monitor.status.Listener`: the frame loop hands
it every frame and event, and it only stores them (a copy of the frame into a
buffer it reuses, a point of score history per zone, a few metric updates).
Everything slow happens in the HTTP threads when someone asks: JPEG encoding,
drawing the zones and the boxes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config import HttpConfig
from monitor.drawing import ZoneOutline, annotate, draw_zones, zone_colour
from monitor.exc import MonitorError
from monitor.status import Box, EventRecord, FrameStatus, Scene

__all__ = ["EVENTS_KEPT", "LiveState"]

EVENTS_KEPT = 20
FPS_WINDOW = 10.0  # seconds of frame times the fps is measured over
JPEG_QUALITY = 80
EVENT_TYPES = ("event_start", "event_end", "state", "camera_lost", "camera_found", "tamper_start", "tamper_end")
TAMPER_REASONS = ("covered", "moved", "defocused", "frozen")
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _Metrics:
    """The page's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames = Counter("monitor_frames", "Frames compared with the reference", registry=self.registry)
        self.events = Counter("monitor_events", "Events recorded, by type", ["type"], registry=self.registry)
        self.camera_errors = Counter("monitor_camera_errors", "Times the camera was lost", registry=self.registry)
        self.score = Gauge("monitor_score", "Latest frame's lowest score of any zone", registry=self.registry)
        self.changed = Gauge(
            "monitor_state_changed", "1 while any zone has an event on, else 0", registry=self.registry
        )
        self.zone_score = Gauge("monitor_zone_score", "Latest frame's score, by zone", ["zone"], registry=self.registry)
        self.zone_active = Gauge(
            "monitor_zone_active",
            "1 while the zone's output is on (event, or an on-state)",
            ["zone"],
            registry=self.registry,
        )
        self.zone_reused = Counter(
            "monitor_zone_reused_frames",
            "Frames whose comparison change gating saved (the last verdict kept), by zone",
            ["zone"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "monitor_frame_processing_seconds",
            "Time spent judging one frame",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        for kind in EVENT_TYPES:
            self.events.labels(type=kind)  # present at 0 before the first event, so rate() works
        self.tampers = Counter("monitor_tampers", "Tampers started, by reason", ["reason"], registry=self.registry)
        for reason in TAMPER_REASONS:
            self.tampers.labels(reason=reason)


class LiveState:
    """The latest of everything the loop reports, for the HTTP threads to read.

    ``scene()`` gives the reference and the zones' masks as they are now (a
    reload or an adapted reference gives a new one). ``/healthz`` fails once no
    frame has arrived for ``stale_seconds`` by ``clock``.
    """

    def __init__(
        self,
        config: HttpConfig,
        *,
        scene: Callable[[], Scene],
        clock: Callable[[], float] = time.time,
        stale_seconds: float = 10.0,
    ) -> None:
        self.config = config
        self.scene = scene
        self._clock = clock
        self._stale_seconds = stale_seconds
        self._started_at = clock()
        self.metrics = _Metrics()

        self._lock = threading.Lock()
        self._latest: FrameStatus | None = None
        self._camera_lost = False
        self._arrived_at: float | None = None
        self._frames = 0
        self._image: np.ndarray | None = None  # the loop may reuse its buffer: frames are copied in here
        self._boxes: dict[str, list[Box]] = {}
        self._history: deque[tuple[float, tuple[float, ...]]] = deque()
        self._history_zones: tuple[str, ...] = ()
        self._frame_times: deque[float] = deque()
        self._compared = 0  # change zones' verdicts since start, and how many of them change gating kept
        self._reused = 0
        self._events: deque[EventRecord] = deque(maxlen=EVENTS_KEPT)

        self._jpeg_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._frame_jpeg: tuple[int, bytes] | None = None  # (frames count it shows, JPEG)
        self._reference_jpeg: tuple[Scene, bytes] | None = None

    # -- Listener --------------------------------------------------------------

    def on_frame(self, status: FrameStatus) -> None:
        """Remember the frame, a point of history and the metrics; no encoding here."""
        now = self._clock()
        zones = tuple(verdict.zone for verdict in status.zones)
        with self._lock:
            self._latest = status
            self._camera_lost = False
            self._arrived_at = now
            self._frames += 1
            if status.image is not None:
                if self._image is None or self._image.shape != status.image.shape:
                    self._image = np.empty_like(status.image)
                np.copyto(self._image, status.image)
            for verdict in status.zones:
                if verdict.boxes:
                    self._boxes[verdict.zone] = list(verdict.boxes)
                elif verdict.state != "changed":
                    self._boxes.pop(verdict.zone, None)
            if zones != self._history_zones or (self._history and status.time < self._history[-1][0]):
                # Other zones after a reload, or the clock stepped back (a Pi without a clock
                # battery syncing over NTP): start afresh.
                self._history.clear()
                self._frame_times.clear()
                self._history_zones = zones
            self._history.append((status.time, tuple(verdict.score for verdict in status.zones)))
            while self._history and self._history[0][0] < status.time - self.config.history_seconds:
                self._history.popleft()
            self._frame_times.append(status.time)
            for verdict in status.zones:
                if verdict.kind == "change":
                    self._compared += 1
                    self._reused += verdict.reused
            while self._frame_times and self._frame_times[0] < status.time - FPS_WINDOW:
                self._frame_times.popleft()
        metrics = self.metrics
        metrics.frames.inc()
        metrics.score.set(status.score)
        metrics.changed.set(1 if status.state == "changed" else 0)
        for verdict in status.zones:
            metrics.zone_score.labels(zone=verdict.zone).set(verdict.score)
            metrics.zone_active.labels(zone=verdict.zone).set(1 if verdict.active else 0)
            if verdict.reused:
                metrics.zone_reused.labels(zone=verdict.zone).inc()
        metrics.processing.observe(status.processing_seconds)

    def on_event(self, record: EventRecord) -> None:
        """Keep the event for the page and count it."""
        with self._lock:
            self._events.append(record)
            if record.type == "camera_lost":
                self._camera_lost = True
            elif record.type == "camera_found":
                self._camera_lost = False
        self.metrics.events.labels(type=record.type).inc()
        if record.type == "camera_lost":
            self.metrics.camera_errors.inc()
        if record.type == "tamper_start":
            self.metrics.tampers.labels(reason=str(record.extra.get("reason"))).inc()

    def close(self) -> None:
        """Nothing to release."""

    # -- what the routes serve -------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        """The body of ``/api/status``."""
        now = self._clock()
        with self._lock:
            latest, frames, times = self._latest, self._frames, list(self._frame_times)
            last_event = self._events[-1] if self._events else None
            lost = self._camera_lost
            reused_share = self._reused / self._compared if self._compared else None
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        zones: dict[str, dict[str, Any]] = {}
        names = list(self.scene().masks)
        if latest is not None:
            for verdict in latest.zones:
                index = names.index(verdict.zone) if verdict.zone in names else len(zones)
                zones[verdict.zone] = {
                    "kind": verdict.kind,
                    "state": verdict.word,
                    "score": _finite(verdict.score),
                    "threshold": None if verdict.kind == "activity" else verdict.threshold,
                    "clear_threshold": None if verdict.kind == "activity" else verdict.clear_threshold,
                    "changed_pixels": verdict.changed_pixels,
                    "changed_fraction": None if verdict.changed_fraction is None else _finite(verdict.changed_fraction),
                    "scores": None if verdict.scores is None else {k: _finite(v) for k, v in verdict.scores.items()},
                    "output": verdict.active,
                    "armed": verdict.armed,
                    "reused": verdict.reused,  # change gating kept the last fully scored frame's score
                    "colour": _css_colour(zone_colour(index)),
                }
        only = latest.zones[0] if latest is not None and len(latest.zones) == 1 else None
        tamper = latest.tamper if latest is not None and not lost else None
        return {
            "state": "camera_lost" if lost else ("tamper" if tamper else (latest.state if latest else None)),
            "tamper": tamper,  # the reason: covered, moved, defocused or frozen; null when none is on
            "score": _finite(latest.score) if latest else None,
            # The one zone's figures, as before zones existed; null with several zones.
            "changed_fraction": _finite(only.changed_fraction) if only and only.changed_fraction is not None else None,
            "threshold": only.threshold if only else None,
            "clear_threshold": only.clear_threshold if only else None,
            "zones": zones,
            "fps": round(fps, 2),
            # The share of change zones' frames change gating kept without a comparison; null before any.
            "reused_share": None if reused_share is None else round(reused_share, 4),
            "last_event": last_event.to_json() if last_event else None,
            "uptime_seconds": round(now - self._started_at, 3),
            "frames": frames,
            "frame": latest.frame if latest else None,
            "history_seconds": self.config.history_seconds,
        }

    def history_json(self) -> dict[str, Any]:
        """The body of ``/api/history``: the zones, and ``[time, score of each zone]`` points, oldest first."""
        with self._lock:
            history, zones = list(self._history), self._history_zones
        return {
            "zones": list(zones),
            "points": [[round(t, 3), *(_finite(score) for score in scores)] for t, scores in history],
        }

    def events_json(self) -> list[dict[str, Any]]:
        """The body of ``/api/events``: the latest records, newest first."""
        with self._lock:
            events = list(reversed(self._events))
        return [record.to_json() for record in events]

    def health(self) -> tuple[bool, str]:
        """Whether frames are arriving, and a word on it for ``/healthz``."""
        now = self._clock()
        with self._lock:
            arrived_at, lost = self._arrived_at, self._camera_lost
        if lost:
            return False, "camera lost"
        if arrived_at is None:
            return False, "no frame yet"
        age = now - arrived_at
        if age > self._stale_seconds:
            return False, f"no frame for {age:.0f} s"
        return True, "ok"

    def frame_jpeg(self) -> bytes:
        """The latest frame (the reference before the first one) with the zones and the boxes drawn.

        Encoded once per frame however many viewers ask: the first encodes, the others wait for it.
        """
        with self._encode_lock:
            return self._encode_frame()

    def _encode_frame(self) -> bytes:
        with self._lock:
            frames = self._frames
        with self._jpeg_lock:
            if self._frame_jpeg is not None and self._frame_jpeg[0] == frames:
                return self._frame_jpeg[1]
        with self._lock:
            frames, latest = self._frames, self._latest
            image = self._image.copy() if self._image is not None else None
            boxes = [box for zone_boxes in self._boxes.values() for box in zone_boxes]
        if image is None or latest is None:
            data = self.reference_jpeg()
        else:
            picture = annotate(image, boxes=boxes, label=f"#{latest.frame}  {latest.state}")
            draw_zones(picture, self._outlines(latest, image.shape))
            data = _encode(picture)
        with self._jpeg_lock:
            self._frame_jpeg = (frames, data)
        return data

    def reference_jpeg(self) -> bytes:
        """The reference with every zone outlined."""
        scene = self.scene()
        with self._jpeg_lock:
            if self._reference_jpeg is None or self._reference_jpeg[0] is not scene:
                gray = scene.picture
                picture = annotate(gray, label="reference")
                draw_zones(picture, self._outlines(None, gray.shape))
                self._reference_jpeg = (scene, _encode(picture))
            return self._reference_jpeg[1]

    def latest_image(self) -> tuple[int, np.ndarray] | None:
        """How many frames have arrived, and a copy of the latest (None before the first)."""
        with self._lock:
            if self._image is None:
                return None
            return self._frames, self._image.copy()

    def plain_jpeg(self, which: str) -> bytes:
        """The latest frame (``frame``, the reference before the first) or the reference, nothing drawn on it.

        For the zone editor, which draws the zones itself as they are being edited.
        """
        latest = self.latest_image() if which == "frame" else None
        return _encode(latest[1] if latest is not None else self.scene().picture)

    def _outlines(self, latest: FrameStatus | None, shape: tuple[int, ...]) -> list[ZoneOutline]:
        scene = self.scene()
        words = {} if latest is None else {v.zone: f" {v.word} {_score_text(v.score)}" for v in latest.zones}
        return [
            ZoneOutline(name + words.get(name, ""), _fit_mask(mask, shape), zone_colour(index))
            for index, (name, mask) in enumerate(scene.masks.items())
        ]


def _finite(value: float) -> float | None:
    return round(value, 5) if math.isfinite(value) else None


def _score_text(score: float) -> str:
    return f"{score:.3f}" if math.isfinite(score) else "-"


def _css_colour(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def _fit_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None or mask.shape == shape[:2]:
        return mask
    # Frames of another size than the mask (a misconfigured source): outline it where it would fall.
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def _encode(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MonitorError("could not encode the frame as JPEG")
    return bytes(data.tobytes())
