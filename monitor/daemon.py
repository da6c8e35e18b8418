"""The frame loop: the one place where source, comparison, decision and actions meet.

Data flows one way: source -> frame -> comparison -> decision -> actions
(pin, event log, snapshots, listeners). ``monitor run``, ``monitor replay``
and ``monitor demo`` all drive this same :class:`Monitor`.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from monitor.adapt import LightSwitch, ReferenceAdapter
from monitor.closing import Closing
from monitor.config import Config, HooksConfig, load_config
from monitor.detector import Detector, EventEnd, EventStart
from monitor.drawing import annotate, panels
from monitor.events import EventLog, SnapshotStore
from monitor.exc import ConfigError, MonitorError, OutputError, ReferenceImageError, SourceError
from monitor.images import ImageFileError, read_gray, write_image_atomic
from monitor.mask import build_mask
from monitor.outputs import make_output
from monitor.similarity import Comparator
from monitor.sources import Frame, FrameSource, make_source
from monitor.status import EventRecord, FrameStatus, Listener, State, iso_time
from monitor.throttle import Throttle

__all__ = ["Monitor", "RunSummary", "load_reference", "make_comparator"]

_log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


def load_reference(config: Config, *, config_path: Path | str = "CONFIG") -> np.ndarray:
    """Read the reference image; refuse one that is missing, unreadable or of the wrong size."""
    path = config.reference.path
    fix = f"capture one with: monitor capture-reference {config_path}"
    try:
        reference = read_gray(path)
    except ImageFileError as exc:
        raise ReferenceImageError(f"reference {exc}; {fix}") from None
    width, height = config.source.width, config.source.height
    if reference.shape != (height, width):
        raise ReferenceImageError(
            f"reference {path}: is {reference.shape[1]}x{reference.shape[0]}, expected the frame size "
            f"{width}x{height} (source.width x source.height); {fix}"
        )
    return reference


def make_comparator(config: Config, reference: np.ndarray, mask: np.ndarray | None) -> Comparator:
    """The comparator the config describes, for ``reference`` over ``mask``."""
    detection = config.detection
    return Comparator(
        reference,
        mask=mask,
        method=detection.method,
        local_level=detection.local_level,
        min_box_area=detection.min_box_area,
        downscale=detection.downscale,
    )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the closing line."""

    frames: int
    skipped: int
    events: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Monitor(Closing):
    """Watch one source against one reference and act on changes.

    ``realtime``: pace files at ``source.fps`` (``run``) or read them as fast
    as possible (``replay``). ``device`` overrides ``source.device``.
    ``listeners`` hear every frame and event; ``integrations=True`` adds the
    ones the config asks for (MQTT, hooks, the status page). ``scores``
    receives one CSV row per frame.
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        realtime: bool = True,
        device: int | str | None = None,
        pin_factory: Any = None,
        listeners: Sequence[Listener] = (),
        scores: IO[str] | None = None,
        on_ready: Callable[[], None] | None = None,
        on_reloading: Callable[[], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        integrations: bool = False,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.realtime = realtime
        self.device = device
        self.listeners = list(listeners)
        self._on_ready = on_ready
        self._on_reloading = on_reloading
        self._on_stopping = on_stopping
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._reload = threading.Event()
        self._skip_warning = Throttle(_log, first=3)
        self._listener_warning = Throttle(_log, first=3)
        self._scores = csv.writer(scores) if scores is not None else None
        if self._scores is not None:
            self._scores.writerow(["frame", "time", "score", "changed_fraction", "below", "state"])

        self.reference = load_reference(config, config_path=config_path or "CONFIG")
        self.mask = build_mask(config.mask, width=config.source.width, height=config.source.height)
        self.comparator = make_comparator(config, self.reference, self.mask)
        self.detector = Detector.from_config(config.detection)
        self.adapter = self._make_adapter(config, self.reference)
        self.light_switch = self._make_light_switch(config)
        self._reference_saved_at: float | None = None
        if self.adapter is not None and not realtime:
            _log.info("reference.adapt: adapting in memory only; a replay leaves %s as it is", config.reference.path)
        self.source: FrameSource = make_source(config.source, realtime=realtime, device=device)
        self.snapshots = SnapshotStore(
            config.events.snapshots,
            keep=config.events.keep_snapshots,
            max_bytes=int(config.events.max_snapshot_mb * 1e6),
        )
        if integrations:
            self.listeners.extend(self._integrations(config))
        # The log file is created at once: only once the integrations' own config checks passed.
        self.event_log = EventLog(
            config.events.log, max_bytes=int(config.events.max_log_mb * 1e6), keep=config.events.keep_logs
        )
        # The pin last: if anything above fails, no pin was ever touched.
        try:
            self.output = make_output(config.gpio, pin_factory=pin_factory)
        except BaseException:
            _close_all([self.event_log, *self.listeners])
            raise
        self.frames = 0
        self.events = 0
        self.last_status: FrameStatus | None = None
        self._closed = False
        self._lost_since: float | None = None  # monotonic time the camera was lost, None while it delivers
        self._backoff = 0.5

    def _integrations(self, config: Config) -> list[Listener]:
        """Start MQTT, hooks and the status page as the config asks; imported only when asked."""
        started: list[Listener] = []
        try:
            if config.hooks != HooksConfig():
                from monitor.integrations.hooks import HookRunner

                started.append(HookRunner(config.hooks))
            if config.mqtt is not None:
                from monitor.integrations.mqtt import MqttPublisher

                mqtt = MqttPublisher(config.mqtt)
                started.append(mqtt)
                mqtt.start()
            if config.http is not None:
                from monitor.webstatus import StatusServer

                server = StatusServer(
                    config.http, reference=self.reference, mask=self.mask, snapshot_dir=config.events.snapshots
                )
                started.append(server)
                server.start()
        except BaseException:
            _close_all(started)
            raise
        return started

    @staticmethod
    def _make_adapter(config: Config, reference: np.ndarray) -> ReferenceAdapter | None:
        adapt = config.reference.adapt
        if not adapt.enabled:
            return None
        # Each new reference costs the comparator a recomputation of its
        # statistics, so blend about once a second rather than every frame.
        return ReferenceAdapter(
            reference,
            rate=adapt.rate,
            every=max(1, round(config.source.fps)),
            hold_frames=config.detection.clear_frames,
        )

    @staticmethod
    def _make_light_switch(config: Config) -> LightSwitch | None:
        fraction = config.detection.lightswitch_fraction
        return None if fraction is None else LightSwitch(fraction=fraction)

    # -- control from signal handlers and other threads -----------------------

    def stop(self) -> None:
        """Ask the loop to finish the current frame and end (safe from a signal handler)."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the loop to re-read the config file before the next frame."""
        self._reload.set()

    # -- the loop -------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run until the source ends or :meth:`stop`; always leaves the pin inactive."""
        started = time.monotonic()
        try:
            self.source.open()
            self.detector.settle()
            self._loop()
        finally:
            self._shutdown()
        return RunSummary(
            frames=self.frames,
            skipped=self._skip_warning.count + self.source.skipped,
            events=self.events,
            seconds=time.monotonic() - started,
        )

    def _loop(self) -> None:
        shape = (self.config.source.height, self.config.source.width)
        ready_sent = False
        while not self._stop.is_set():
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
            try:
                frame = self.source.read()
            except SourceError as exc:
                if self._stop.is_set():
                    break
                self._recover(exc)
                continue
            if frame is None:
                _log.info("the recording ended after %d frames", self.frames)
                break
            if self._lost_since is not None:
                self._camera_found()
            if frame.image.shape != shape:
                self._skip_warning(
                    logging.WARNING,
                    "skipped frame %d: it is %dx%d, expected %dx%d",
                    frame.index,
                    frame.image.shape[1] if frame.image.ndim > 1 else 0,
                    frame.image.shape[0],
                    shape[1],
                    shape[0],
                )
                continue
            self._process(frame)
            if not ready_sent and self._on_ready is not None:
                self._on_ready()
                ready_sent = True

    def _process(self, frame: Frame) -> None:
        started = time.perf_counter()
        self._watch_lighting(frame)
        comparison = self.comparator.compare(frame.image, boxes=False)
        was_settling = self.detector.settling  # the state this frame was judged in
        outcome = self.detector.update(comparison.score, frame=frame.index, now=frame.time)
        boxes: list[tuple[int, int, int, int]] = []
        if isinstance(outcome, EventStart):
            boxes = self.comparator.boxes_of_last()  # of this frame: no second comparison
            self._event_started(frame, outcome, comparison.changed_fraction, boxes)
        elif isinstance(outcome, EventEnd):
            self._event_ended(outcome, comparison.score, comparison.changed_fraction)
        self._adapt(frame, comparison.score)
        self.frames += 1
        below = self.detector.below(comparison.score)
        state: State = "changed" if self.detector.active else ("settling" if was_settling else "unchanged")
        status = FrameStatus(
            frame=frame.index,
            time=frame.time,
            score=comparison.score,
            changed_fraction=comparison.changed_fraction,
            below=below,
            state=state,
            threshold=self.config.detection.threshold,
            clear_threshold=self.config.detection.clear_threshold,
            processing_seconds=time.perf_counter() - started,
            image=frame.image,
            boxes=boxes,
        )
        self.last_status = status
        if self._scores is not None:
            self._scores.writerow(
                [
                    frame.index,
                    iso_time(frame.time),
                    f"{comparison.score:.5f}",
                    f"{comparison.changed_fraction:.5f}",
                    int(below),
                    "changed" if self.detector.active else "unchanged",
                ]
            )
        self._tell("on_frame", status)

    def _event_started(
        self, frame: Frame, start: EventStart, changed_fraction: float, boxes: list[tuple[int, int, int, int]]
    ) -> None:
        self.output.event_started()
        self.events += 1
        snapshot = None
        if self.snapshots.enabled:  # with events.snapshots null there is no picture to compose
            snapshot = self.snapshots.save(self._snapshot_picture(frame, boxes), when=frame.time, frame=frame.index)
        record = EventRecord(
            type="event_start",
            time=start.time,
            frame=start.frame,
            score=start.score,
            changed_fraction=changed_fraction,
            boxes=boxes,
            snapshot=str(snapshot) if snapshot is not None else None,
        )
        self._record(record)

    def _event_ended(self, end: EventEnd, score: float, changed_fraction: float, *, reason: str = "clear") -> None:
        self.output.event_ended()
        record = EventRecord(
            type="event_end",
            time=end.end_time,
            frame=end.end_frame,
            score=score,
            changed_fraction=changed_fraction,
            extra={
                "start_time": iso_time(end.start_time),
                "start_frame": end.start_frame,
                "duration": round(end.end_time - end.start_time, 3),
                "lowest_score": round(end.lowest_score, 5),
                "reason": reason,
            },
        )
        self._record(record)

    def _snapshot_picture(self, frame: Frame, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        label = f"{iso_time(frame.time)[:19]}  frame {frame.index}"
        # Drawn straight onto the canvas: the picture is made when memory is at its highest.
        canvas, (left, right) = panels([frame.image.shape, self.reference.shape])
        annotate(frame.image, mask=self.mask, boxes=boxes, label=label, out=left)
        annotate(self.reference, mask=self.mask, label="reference", out=right)
        return canvas

    def _record(self, record: EventRecord) -> None:
        self.event_log.write(record)
        self._tell("on_event", record)

    def _tell(self, method: str, argument: FrameStatus | EventRecord) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, method)(argument)
            except Exception:
                # A listener's bug must not stop the monitor from switching its pin.
                self._listener_warning(logging.WARNING, "%s.%s failed", type(listener).__name__, method, exc_info=True)

    # -- lighting -------------------------------------------------------------

    def _watch_lighting(self, frame: Frame) -> None:
        """Before a frame is judged: notice a light switch, and finish re-seeding the reference after one."""
        if self.light_switch is not None and self.light_switch.update(frame.image):
            self._light_switched(frame)
        adapter = self.adapter
        if adapter is not None and adapter.reseeding and adapter.reseed(frame.image, final=not self.detector.settling):
            self._use_reference(adapter.reference)
            _log.info("frame %d: the reference now shows the new light", frame.index)

    def _light_switched(self, frame: Frame) -> None:
        """Nearly the whole frame changed at once: a lighting change, not an event."""
        assert self.light_switch is not None
        _log.warning(
            "frame %d: light switch (%.0f%% of the whole frame changed at once): not judging the next %d frames",
            frame.index,
            100 * self.light_switch.changed_fraction,
            self.config.detection.settle_frames,
        )
        self.detector.settle()
        if self.adapter is None:
            _log.warning(
                "the reference still shows the old light: if events follow, use detection.method: ssim-structure "
                "or reference.adapt.enabled: true, or capture a new reference"
            )
        elif self.detector.active:
            _log.warning("an event is open: the reference is not re-seeded, so what changed is not learned")
        else:
            self.adapter.begin_reseed()

    def _adapt(self, frame: Frame, score: float) -> None:
        """Blend an unchanged frame into the reference when one is due, and save it when due."""
        adapter = self.adapter
        if adapter is None:
            return
        detector = self.detector
        unchanged = not detector.active and not detector.settling and score >= detector.clear_threshold
        if adapter.update(frame.image, unchanged=unchanged):
            self._use_reference(adapter.reference)
        self._save_reference(now=frame.time)

    def _use_reference(self, reference: np.ndarray) -> None:
        self.comparator.set_reference(reference)
        self.reference = reference

    def _save_reference(self, *, now: float | None = None) -> None:
        """Store the adapted reference atomically, at most every save_seconds (``now=None``: right away).

        Only a realtime run writes the file: a replay adapts in memory and
        leaves the reference as it is.
        """
        adapter = self.adapter
        if adapter is None or not self.realtime:
            return
        if now is not None:
            if self._reference_saved_at is None:
                self._reference_saved_at = now
            if now - self._reference_saved_at < self.config.reference.adapt.save_seconds:
                return
        if not adapter.dirty:
            return
        path = self.config.reference.path
        try:
            write_image_atomic(path, adapter.reference)
        except OSError as exc:  # ImageFileError is an OSError too
            _log.warning("could not save the adapted reference to %s: %s", path, exc)
            return
        adapter.saved()
        if now is not None:
            self._reference_saved_at = now
        _log.info("saved the adapted reference to %s (%d blends so far)", path, adapter.blends)

    # -- camera trouble -------------------------------------------------------

    def _recover(self, error: SourceError) -> None:
        """Close and re-open the source with a capped back-off; give up after give_up_seconds.

        The camera counts as found again only when a frame arrives (see
        :meth:`_camera_found`): a camera that opens but delivers nothing is
        still lost, and its time keeps counting toward giving up.
        """
        give_up = self.config.source.give_up_seconds
        if self._lost_since is None:
            self._lost_since, self._backoff = time.monotonic(), 0.5
            _log.warning("camera lost: %s", error)
            self._record(
                EventRecord(type="camera_lost", time=time.time(), frame=self._last_frame, extra={"error": str(error)})
            )
            self.output.fault(self.config.gpio.on_fault)
        else:
            _log.info("camera still lost: %s", error)
        self.source.close()
        while not self._stop.is_set():
            waited = time.monotonic() - self._lost_since
            if waited >= give_up:
                raise SourceError(
                    f"camera lost for {waited:.0f} s (source.give_up_seconds is {give_up:g}): giving up; "
                    f"last error: {error}"
                )
            self._sleep(min(self._backoff, give_up - waited))
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            if self._stop.is_set():
                return
            try:
                self.source.open()
            except SourceError as exc:
                error = exc
                _log.info("camera still lost (%s); next try in %.1f s", exc, self._backoff)
                continue
            self.detector.settle()
            if self.light_switch is not None:
                self.light_switch.reset()
            return

    def _camera_found(self) -> None:
        assert self._lost_since is not None
        _log.info("camera found again after %.1f s", time.monotonic() - self._lost_since)
        self._lost_since = None
        self.output.recovered(active=self.detector.active)
        self._record(EventRecord(type="camera_found", time=time.time(), frame=self._last_frame))

    @property
    def _last_frame(self) -> int:
        return self.last_status.frame if self.last_status is not None else -1

    # -- reload ---------------------------------------------------------------

    def _apply_reload(self) -> None:
        if self.config_path is None:
            _log.warning("reload asked, but this monitor has no config file to re-read")
            return
        if self._on_reloading is not None:
            self._on_reloading()
        try:
            new = load_config(self.config_path)
            reference = load_reference(new, config_path=self.config_path)
            mask = build_mask(new.mask, width=new.source.width, height=new.source.height)
            comparator = make_comparator(new, reference, mask)
        except ConfigError as exc:
            for problem in exc.problems:
                _log.error("reload refused, keeping the running config: %s", problem)
            self._ready_again()
            return
        except MonitorError as exc:
            _log.error("reload refused, keeping the running config: %s", exc)
            self._ready_again()
            return
        old_source = self.source
        try:
            self._take_source_and_pin(new)
        except (SourceError, OutputError) as exc:
            _log.error("reload refused, keeping the running config: %s", exc)
            self._put_back(old_source)
            self._ready_again()
            return
        old = self.config
        self.config, self.reference, self.mask, self.comparator = new, reference, mask, comparator
        # The reference file wins: blending since its last save is dropped.
        self.adapter = self._make_adapter(new, reference)
        self.light_switch = self._make_light_switch(new)
        self.detector.reconfigure(new.detection)
        if self.source is not old_source:
            self.detector.settle()
        later = [name for name in ("events", "mqtt", "hooks", "http") if getattr(new, name) != getattr(old, name)]
        if later:
            _log.warning("reload: changes to %s take effect at the next restart", ", ".join(later))
        _log.info(
            "reloaded %s: threshold %.3f, clear_threshold %.3f",
            self.config_path,
            new.detection.threshold,
            new.detection.clear_threshold,
        )
        self._ready_again()

    def _take_source_and_pin(self, new: Config) -> None:
        """Open the source and the pin a reload asks for; SourceError or OutputError if either fails."""
        if new.source != self.config.source:
            self.source.close()  # first: a camera cannot be opened twice
            self.source = make_source(new.source, realtime=self.realtime, device=self.device)
            self.source.open()
        self.output.reconfigure(new.gpio)

    def _put_back(self, old_source: FrameSource) -> None:
        """Undo a reload refused half-way: the running config's source and pin again."""
        if self.source is not old_source:
            self.source.close()
            self.source = old_source
            try:
                old_source.open()
            except SourceError as exc:
                _log.warning("%s", exc)  # the next read fails and _recover takes over
            self.detector.settle()
        try:
            self.output.reconfigure(self.config.gpio)
        except OutputError as exc:
            _log.error("gpio: cannot take the running config's pin back: %s", exc)

    def _ready_again(self) -> None:
        if self._on_ready is not None and self.frames:
            self._on_ready()

    # -- the end --------------------------------------------------------------

    def close(self) -> None:
        """Release the pin (inactive), the source, the log and the listeners of a monitor never run.

        :meth:`run` does this itself on its way out; later calls do nothing.
        """
        if not self._closed:
            self._closed = True
            _close_all([self.output, self.source, self.event_log, *self.listeners])

    def _shutdown(self) -> None:
        if self._on_stopping is not None:
            self._on_stopping()
        try:
            last = self.last_status
            if last is not None:
                end = self.detector.finish(frame=last.frame, now=last.time)
                if end is not None:
                    reason = "stopped" if self._stop.is_set() else "source ended"
                    self._event_ended(end, last.score, last.changed_fraction, reason=reason)
            self._save_reference()
        finally:
            self.close()


def _close_all(things: Iterable[Any]) -> None:
    """Close each thing, logging (not raising) failures so the rest still close."""
    for thing in things:
        try:
            thing.close()
        except Exception:
            _log.exception("closing %s failed", type(thing).__name__)
