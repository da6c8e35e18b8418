"""What the verdicts do: each zone's pin, the event log, snapshots, and the listeners.

:class:`Actions` is the I/O edge of the frame loop. It turns one frame's
verdicts into pin changes and event records, composes a snapshot when an event
starts or a state changes, and hands every frame and record to the listeners
(MQTT, hooks, the status page, the systemd notifier). Nothing here decides: the
verdicts already say what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.arming import ZoneArming, arming_record
from monitor.clips import ClipRecorder
from monitor.closing import Closing
from monitor.config import Config, GpioConfig
from monitor.detector import EventEnd
from monitor.drawing import ZoneOutline, annotate, draw_zones, panels, zone_colour
from monitor.events import EventLog, SnapshotStore
from monitor.exc import OutputError
from monitor.images import write_image_atomic
from monitor.outputs import NullOutput, PinOutput, make_output
from monitor.status import EventRecord, FrameStatus, Listener, Verdict, iso_time
from monitor.throttle import Throttle

if TYPE_CHECKING:
    from gpiozero import Factory

    from monitor.adapt import ReferenceAdapter
    from monitor.arming_state import ArmingState
    from monitor.tamper import TamperEnd, TamperStart
    from monitor.watch import Watches

__all__ = ["Actions", "close_all"]

_log = logging.getLogger(__name__)

Output = PinOutput | NullOutput


class Actions(Closing):
    """Pins, event log, snapshots and listeners for the zones of ``watches``.

    The event log is opened first and the pins last, so that if anything
    fails no pin was ever touched. ``listeners`` belong to the caller, who
    closes them.
    """

    def __init__(
        self,
        config: Config,
        watches: Watches,
        *,
        listeners: Sequence[Listener] = (),
        pin_factory: Factory | None = None,
    ) -> None:
        self.config = config
        self.watches = watches
        self.listeners = list(listeners)
        self._pin_factory = pin_factory
        self._listener_warning = Throttle(_log, first=3)
        events = config.events
        self.snapshots = SnapshotStore(
            events.snapshots, keep=events.keep_snapshots, max_bytes=int(events.max_snapshot_mb * 1e6)
        )
        self.event_log = EventLog(events.log, max_bytes=int(events.max_log_mb * 1e6), keep=events.keep_logs)
        try:
            self.outputs = _open_outputs(config, pin_factory)
        except BaseException:
            self.event_log.close()
            raise
        self._pin_on = dict.fromkeys(config.zones, False)
        # Last: nothing after it can fail, so a failed start never leaves its writer thread running.
        self.clips = ClipRecorder.of(config, outlines=self.outlines)
        self.events = 0
        self._disarmed: frozenset[str] = frozenset()
        self._arm_seen: Mapping[str, ZoneArming] | None = None
        self._reference_saved_at: float | None = None
        self.last_status: FrameStatus | None = None
        self.tampered: str | None = None  # the reason of the tamper that is on
        self._closed = False

    # -- per frame ------------------------------------------------------------

    def act(
        self,
        image: np.ndarray,
        verdicts: Sequence[Verdict],
        *,
        frame: int,
        now: float,
        seconds: float,
        tamper: str | None = None,
    ) -> FrameStatus:
        """Switch pins, write records and snapshots for this frame's transitions; tell the listeners.

        ``tamper``: the reason of the tamper that is on, for the listeners.
        """
        for verdict in verdicts:
            if not verdict.armed:
                self._pin(verdict.zone, False)  # disarmed: no pin, no record, no hook (issue 14)
                continue
            if verdict.started is not None:
                self._pin(verdict.zone, True)
                self.events += 1
                snapshot = self._snapshot(image, verdicts, verdict, frame=frame, now=now)
                self.record(
                    EventRecord(
                        type="event_start",
                        time=verdict.started.time,
                        frame=verdict.started.frame,
                        zone=verdict.zone,
                        score=verdict.started.score,
                        changed_fraction=verdict.changed_fraction,
                        boxes=verdict.boxes,
                        snapshot=snapshot,
                        extra={"changed_pixels": verdict.changed_pixels},
                    )
                )
                if self.clips is not None:
                    self.clips.event_started(
                        verdict.zone, frame=verdict.started.frame, now=verdict.started.time, boxes=verdict.boxes
                    )
            elif verdict.ended is not None:
                self.end_event(verdict.zone, verdict.ended, verdict=verdict)
            elif verdict.changed_to is not None:
                self._pin(verdict.zone, verdict.active)
                self.events += 1
                change = verdict.changed_to
                self.record(
                    EventRecord(
                        type="state",
                        time=change.time,
                        frame=change.frame,
                        zone=verdict.zone,
                        snapshot=self._snapshot(image, verdicts, verdict, frame=frame, now=now),
                        extra={
                            "state": change.state,
                            "previous": change.previous,
                            "scores": {name: round(score, 5) for name, score in change.scores.items()},
                        },
                    )
                )
            elif verdict.kind == "state":
                self._pin(verdict.zone, verdict.active)  # armed again: the pin shows the state the zone is in
        if self.clips is not None:  # after the transitions: a clip begun on this frame holds it
            self.clips.feed(image, verdicts, frame=frame, now=now)
        status = FrameStatus.of(verdicts, frame=frame, time=now, processing_seconds=seconds, image=image, tamper=tamper)
        self.last_status = status
        self.tell("on_frame", status)
        return status

    def end_event(self, zone: str, end: EventEnd, *, verdict: Verdict | None, reason: str = "clear") -> None:
        """Release the zone's pin and record the end of its event (with its clip's path when clips are on).

        ``verdict``: the zone's last one, if any.
        """
        self._pin(zone, False)
        clip = {} if self.clips is None else {"clip": self.clips.event_ended(zone, frame=end.end_frame)}
        self.record(
            EventRecord(
                type="event_end",
                time=end.end_time,
                frame=end.end_frame,
                zone=zone,
                score=None if verdict is None else verdict.score,
                changed_fraction=None if verdict is None else verdict.changed_fraction,
                extra={
                    "changed_pixels": None if verdict is None else verdict.changed_pixels,
                    "start_time": iso_time(end.start_time),
                    "start_frame": end.start_frame,
                    "duration": round(end.end_time - end.start_time, 3),
                    "lowest_score": round(end.lowest_score, 5),
                    "reason": reason,
                    **clip,
                },
            )
        )

    def _pin(self, zone: str, on: bool) -> None:
        output = self.outputs.get(zone)
        was, self._pin_on[zone] = self._pin_on.get(zone, False), on
        if output is None or was == on:
            return
        if on:
            output.event_started()
        else:
            output.event_ended()

    # -- arming (issue 14) ----------------------------------------------------

    def arm(self, arming: ArmingState | None, *, frame: int, now: float) -> frozenset[str]:
        """The zones disarmed at this frame's time; each change is recorded, and a zone disarmed ends its event.

        ``now`` is the frame's own time, not the clock's: a replay
        (``--start-time``) meets the schedule as the recording's moments would have.
        """
        if arming is None:
            return self._disarmed
        states = arming.evaluate(now)
        if states is self._arm_seen:  # the same decision as the last frame's (it is cached until it changes)
            return self._disarmed
        self._arm_seen = states
        disarmed = frozenset(zone for zone, state in states.items() if not state.armed)
        if disarmed == self._disarmed:
            return disarmed
        for zone in self.watches.names:
            state = states.get(zone)
            if state is None or (zone in disarmed) == (zone in self._disarmed):
                continue
            self.record(arming_record(zone, state, frame=frame, now=now))
            if not state.armed:
                self._end_disarmed(zone, frame=frame, now=now)
        self._disarmed = disarmed
        return disarmed

    def reload_arming(self, arming: ArmingState | None, new: Config) -> None:
        """A reloaded config's arming section for the running arming state (added or removed: at the next start)."""
        if arming is not None and new.arming is not None:
            arming.reconfigure(new.arming, list(new.zones))
        elif (arming is None) != (new.arming is None):
            _log.warning("reload: adding or removing the arming section takes effect at the next restart")

    def _end_disarmed(self, zone: str, *, frame: int, now: float) -> None:
        last = self.last_status
        for name, end in self.watches.finish_zone(zone, frame=frame, now=now):
            verdict = next((v for v in last.zones if v.zone == name), None) if last is not None else None
            self.end_event(name, end, verdict=verdict, reason="disarmed")

    # -- camera trouble -------------------------------------------------------

    def camera_lost(self, error: Exception, *, frame: int, now: float) -> None:
        """Record the loss and put every pin (a disarmed zone's aside) in its zone's ``gpio.on_fault`` state."""
        self.record(EventRecord(type="camera_lost", time=now, frame=frame, extra={"error": str(error)}))
        disarmed = set() if self.last_status is None else {v.zone for v in self.last_status.zones if not v.armed}
        for zone, output in self.outputs.items():
            if zone not in disarmed:  # a disarmed zone's pin stays inactive, fault or not
                output.fault(output.config.on_fault)

    def camera_found(self, *, frame: int, now: float) -> None:
        """Record the camera's return and drive every pin as its zone wants again (not during a tamper)."""
        if self.tampered is None:
            for zone, output in self.outputs.items():
                output.recovered(active=self._pin_on.get(zone, False))
        self.record(EventRecord(type="camera_found", time=now, frame=frame))

    def tamper_start(
        self, start: TamperStart, *, image: np.ndarray, ended: Iterable[tuple[str, EventEnd]] = ()
    ) -> None:
        """Record a tamper, with a snapshot of ``image``; every pin goes to its ``gpio.on_fault`` state.

        ``ended``: the zones' events the tamper closed, (zone, end): recorded
        first with ``"reason": "tamper"`` (their end releases a pin).
        """
        last = self.last_status
        for zone, end in ended:
            self.end_event(zone, end, verdict=last.zone(zone) if last is not None else None, reason="tamper")
        self.tampered = start.reason
        self.events += 1
        snapshot = None
        if self.snapshots.enabled:
            picture = self.picture(image, (), None, frame=start.frame, now=start.time)
            saved = self.snapshots.save(picture, when=start.time, frame=start.frame, kind=f"tamper-{start.reason}")
            snapshot = None if saved is None else str(saved)
        self.record(
            EventRecord(
                type="tamper_start",
                time=start.time,
                frame=start.frame,
                snapshot=snapshot,
                extra={"reason": start.reason, "measure": round(start.measure, 5)},
            )
        )
        for output in self.outputs.values():
            output.fault(output.config.on_fault)

    def tamper_end(self, end: TamperEnd | None) -> None:
        """Record the tamper's end and drive every pin as its zone wants again (None: no tamper was on)."""
        if end is None:
            return
        self.tampered = None
        for zone, output in self.outputs.items():
            output.recovered(active=self._pin_on.get(zone, False))
        self.record(
            EventRecord(
                type="tamper_end",
                time=end.time,
                frame=end.frame,
                extra={
                    "reason": end.reason,
                    "measure": None if end.measure is None else round(end.measure, 5),
                    "start_time": iso_time(end.start_time),
                    "start_frame": end.start_frame,
                    "duration": round(end.time - end.start_time, 3),
                },
            )
        )

    # -- records, pictures, listeners ------------------------------------------

    def record(self, record: EventRecord) -> None:
        """Write one record to the event log and tell the listeners."""
        self.event_log.write(record)
        self.tell("on_event", record)

    def tell(self, method: str, argument: FrameStatus | EventRecord) -> None:
        """Call ``method`` on every listener; a listener's failure is logged, never raised."""
        for listener in self.listeners:
            try:
                getattr(listener, method)(argument)
            except Exception:
                # A listener's bug must not stop the monitor from switching its pins.
                self._listener_warning(logging.WARNING, "%s.%s failed", type(listener).__name__, method, exc_info=True)

    def _snapshot(
        self, image: np.ndarray, verdicts: Sequence[Verdict], fired: Verdict, *, frame: int, now: float
    ) -> str | None:
        if not self.snapshots.enabled:  # with events.snapshots null there is no picture to compose
            return None
        kind = f"{fired.zone}-{fired.word if fired.kind == 'state' else 'event'}"
        picture = self.picture(image, verdicts, fired, frame=frame, now=now)
        saved = self.snapshots.save(picture, when=now, frame=frame, kind=kind)
        return None if saved is None else str(saved)

    def picture(
        self, image: np.ndarray, verdicts: Sequence[Verdict], fired: Verdict | None, *, frame: int, now: float
    ) -> np.ndarray:
        """The frame with every zone outlined (``fired`` bold, its boxes drawn) beside its reference."""
        bold = None if fired is None else fired.zone
        outlines = self.outlines(verdicts, bold=bold)
        reference, label = self.watches.picture, "reference"
        if fired is not None and fired.kind == "state" and fired.state in self.watches.state_names(fired.zone):
            reference = self.watches.state_picture(fired.zone, fired.state)
            label = f"{fired.zone}: {fired.state}"
        # Drawn straight onto the canvas: the picture is made when memory is at its highest.
        canvas, (left, right) = panels([image.shape, reference.shape])
        boxes = fired.boxes if fired is not None else []
        annotate(image, boxes=boxes, label=f"{iso_time(now)[:19]}  frame {frame}", out=left)
        draw_zones(left, outlines)
        annotate(reference, label=label, out=right)
        draw_zones(right, self.outlines((), bold=bold))
        return canvas

    def outlines(self, verdicts: Sequence[Verdict], *, bold: str | None = None) -> list[ZoneOutline]:
        """Each zone as drawn on a frame: its name, its state and score, in its colour."""
        by_zone = {verdict.zone: verdict for verdict in verdicts}
        outlines = []
        for index, (name, mask) in enumerate(self.watches.masks.items()):
            verdict = by_zone.get(name)
            label = name if verdict is None else f"{name} {verdict.word} {verdict.score:.2f}"
            outlines.append(ZoneOutline(label, mask, zone_colour(index), bold=name == bold))
        return outlines

    def save_reference(self, adapter: ReferenceAdapter | None, *, now: float | None) -> None:
        """Store the adapted reference atomically, at most every ``reference.adapt.save_seconds``.

        ``now`` None: right away (on the way out), if it changed since the last save.
        """
        if adapter is None:
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

    # -- reload and the end -------------------------------------------------------

    def take_over(self, config: Config, watches: Watches) -> None:
        """Use a reloaded config's zones and pins; OutputError (the running pins kept) if a pin cannot be had.

        A zone whose pin settings did not change keeps its pin as it is (a relay
        held on through the reload stays on); the others' pins are released
        (inactive) first, then the new ones opened and driven as their zones want.
        """
        old = {name: zone.gpio for name, zone in self.config.zones.items()}
        new = {name: zone.gpio for name, zone in config.zones.items()}
        self.outputs = _swap_outputs(self.outputs, old, new, self._pin_factory)
        self._pin_on = {name: self._pin_on.get(name, False) for name in config.zones}
        for zone, output in self.outputs.items():
            if old.get(zone) != new[zone]:
                output.recovered(active=self._pin_on[zone])
                if self.tampered is not None:
                    output.fault(output.config.on_fault)
        self.config, self.watches = config, watches

    def close(self) -> None:
        """Leave every pin inactive and release it, close the event log, finish the clip; later calls do nothing."""
        if not self._closed:
            self._closed = True
            close_all([*self.outputs.values(), self.event_log, *([self.clips] if self.clips else [])])


def _open_outputs(config: Config, pin_factory: Factory | None) -> dict[str, Output]:
    return _open_each({name: zone.gpio for name, zone in config.zones.items()}, pin_factory)


def _open_each(gpios: Mapping[str, GpioConfig], pin_factory: Factory | None) -> dict[str, Output]:
    opened: dict[str, Output] = {}
    try:
        for name, gpio in gpios.items():
            opened[name] = make_output(gpio, pin_factory=pin_factory)
    except BaseException:
        close_all(opened.values())
        raise
    return opened


def _swap_outputs(
    running: dict[str, Output],
    old: Mapping[str, GpioConfig],
    new: Mapping[str, GpioConfig],
    pin_factory: Factory | None,
) -> dict[str, Output]:
    """The outputs for ``new``: unchanged ones kept, the rest released and opened anew.

    On failure the running outputs are taken back (reopened where released) and the error raised.
    """
    changed = [name for name in running if old.get(name) != new.get(name)]
    close_all(running[name] for name in changed)  # first: a pin may move from one zone to another
    try:
        opened = _open_each({name: gpio for name, gpio in new.items() if old.get(name) != gpio}, pin_factory)
    except OutputError:
        try:
            running.update(_open_each({name: old[name] for name in changed}, pin_factory))
        except OutputError as exc:
            _log.error("gpio: cannot take the running config's pins back: %s", exc)
            running.update({name: NullOutput(old[name]) for name in changed})
        raise
    return {name: opened[name] if name in opened else running[name] for name in new}


def close_all(things: Iterable[Any]) -> None:
    """Close each thing, logging (not raising) failures so the rest still close."""
    for thing in things:
        try:
            thing.close()
        except Exception:
            _log.exception("closing %s failed", type(thing).__name__)
