"""The frame loop: read a frame, judge it in every zone, act on the verdicts, recover a lost camera.

Data flows one way: source -> frame -> :class:`~monitor.watch.Watches` ->
verdicts -> :class:`~monitor.actions.Actions` (pins, event log, snapshots,
listeners). ``monitor run``, ``monitor replay`` and ``monitor demo`` all drive
this same :class:`Monitor`; the integrations (MQTT, hooks, the status page)
are built by the caller and handed in as listeners.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.actions import Actions
from monitor.arming_state import ArmingState
from monitor.closing import Closing
from monitor.config import Config, load_config
from monitor.exc import ConfigError, MonitorError, SourceError
from monitor.recovery import Recovery, reopen, swap_source
from monitor.sources import Frame, FrameSource, make_source
from monitor.status import Listener, RunSummary
from monitor.throttle import Throttle
from monitor.watch import Watches

__all__ = ["Monitor", "RunSummary"]

_log = logging.getLogger(__name__)


class Monitor(Closing):
    """Watch one source in every zone of ``config`` and act on what changes.

    ``realtime``: pace files at ``source.fps`` (``run``) or read them as fast
    as possible (``replay``). ``device`` overrides ``source.device``.
    ``listeners`` hear every frame and event; they stay the caller's to close.
    ``on_ready``/``on_reloading``/``on_stopping`` tell a service manager.
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
        on_ready: Callable[[], None] | None = None,
        on_reloading: Callable[[], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
        sleep: Callable[[float], object] | None = None,
        arming: ArmingState | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.realtime = realtime
        self.device = device
        self._on_ready = on_ready
        self._on_reloading = on_reloading
        self._on_stopping = on_stopping
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._skip_warning = Throttle(_log, first=3)
        self.watches = Watches.load(config, config_path=config_path or "CONFIG")
        if self.watches.adapter is not None and not realtime:
            _log.info("reference.adapt: adapting in memory only; a replay leaves %s as it is", config.reference.path)
        self.source: FrameSource = self._make_source(config)
        self.actions = Actions(config, self.watches, listeners=listeners, pin_factory=pin_factory)
        self.recovery = Recovery(
            give_up_seconds=config.source.give_up_seconds, sleep=sleep or self._stop.wait, stopping=self._stop.is_set
        )
        self.frames = 0
        self._closed = False
        self.arming = arming  # the caller's: it outlives the monitor (MQTT, the page and the button use it)

    def _make_source(self, config: Config) -> FrameSource:
        source = make_source(config.source, realtime=self.realtime, device=self.device)
        source.sleep = self._stop.wait  # a paced recording's wait ends at once on a stop request
        return source

    @property
    def listeners(self) -> list[Listener]:
        """The listeners told of every frame and record (a list the caller may add to before run)."""
        return self.actions.listeners

    # -- control from signal handlers and other threads -----------------------

    def stop(self) -> None:
        """Ask the loop to finish the current frame and end (safe from a signal handler)."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the loop to re-read the config file before the next frame."""
        self._reload.set()

    def would_load(self, config: Config) -> None:
        """Raise what a reload to ``config`` would refuse beyond the model (a picture missing, an empty mask)."""
        Watches.load(config, config_path=self.config_path or "CONFIG")

    # -- the loop -------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run until the source ends or :meth:`stop`; always leaves every pin inactive."""
        started = time.monotonic()
        try:
            self._open_source()
            self.watches.settle()
            self._loop()
        finally:
            self._shutdown()
        return RunSummary(
            frames=self.frames,
            skipped=self._skip_warning.count + self.source.skipped,
            events=self.actions.events,
            seconds=time.monotonic() - started,
            reused_share=self.watches.reused_share,
        )

    def _open_source(self) -> None:
        """Open the source; a live camera that is not there yet is waited for like any lost camera.

        An IP or USB camera often comes up after the Pi (every power cut): the
        wait is bounded by ``source.give_up_seconds`` as any outage is. A
        recording that cannot be opened is an error at once.
        """
        try:
            self.source.open()
        except SourceError as exc:
            if self.source.is_recording or self._stop.is_set():
                raise
            self._recover(exc)

    def _loop(self) -> None:
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
            if self.recovery.lost:
                self.recovery.found()
                self.actions.camera_found(frame=self._last_frame, now=time.time())
            if frame.image.shape != self.watches.shape:
                self._skip(frame)
                continue
            self._process(frame)
            if not ready_sent and self._on_ready is not None:
                self._on_ready()
                ready_sent = True

    def _process(self, frame: Frame) -> None:
        started = time.perf_counter()
        watches = self.watches
        # A covered, moved, blurred or frozen camera first: while it looks like one the zones
        # learn nothing (no event, no light switch, no blending); a small sag is shifted back.
        look = watches.check_tamper(frame.image, frame=frame.index, now=frame.time, live=not self.source.is_recording)
        image = look.image
        if look.started is not None:
            ended = watches.finish(frame=look.started.frame, now=look.started.time)
            self.actions.tamper_start(look.started, image=frame.image, ended=ended)
        if not look.blind:
            watches.see_lighting(image, frame=frame.index)
        disarmed = self.actions.arm(self.arming, frame=frame.index, now=frame.time)
        verdicts = watches.judge(image, frame=frame.index, now=frame.time, disarmed=disarmed, hold=look.blind)
        if not look.blind:
            watches.learn(image, verdicts)
        if look.ended is not None:
            self.actions.tamper_end(look.ended)
        if self.realtime:  # a replay adapts in memory and leaves the reference file as it is
            self.actions.save_reference(watches.adapter, now=frame.time)
        self.frames += 1
        seconds = time.perf_counter() - started
        self.actions.act(image, verdicts, frame=frame.index, now=frame.time, seconds=seconds, tamper=look.reason)

    def _skip(self, frame: Frame) -> None:
        height, width = self.watches.shape
        self._skip_warning(
            logging.WARNING,
            "skipped frame %d: it is %dx%d, expected %dx%d",
            frame.index,
            frame.image.shape[1] if frame.image.ndim > 1 else 0,
            frame.image.shape[0],
            width,
            height,
        )

    def _recover(self, error: SourceError) -> None:
        if not self.recovery.lost:
            self.actions.camera_lost(error, frame=self._last_frame, now=time.time())
        if self.recovery.reopen(self.source, error):
            self.watches.settle()
            self.watches.reset_lighting()

    @property
    def _last_frame(self) -> int:
        last = self.actions.last_status
        return last.frame if last is not None else -1

    # -- reload ---------------------------------------------------------------

    def _apply_reload(self) -> None:
        """Swap in a whole new set of watches, source and pins, or keep the running ones whole."""
        if self.config_path is None:
            _log.warning("reload asked, but this monitor has no config file to re-read")
            return
        if self._on_reloading is not None:
            self._on_reloading()
        old_source = None
        try:
            new = load_config(self.config_path)
            watches = Watches.load(new, config_path=self.config_path)
            if new.source != self.config.source:
                source = self._make_source(new)
                swap_source(self.source, source)
                old_source, self.source = self.source, source
            self.actions.take_over(new, watches)
        except (ConfigError, MonitorError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            for problem in problems:
                _log.error("reload refused, keeping the running config: %s", problem)
            if old_source is not None:  # the new source opened, but the pins could not be had
                self.source.close()
                self.source = old_source
                reopen(old_source)
            if old_source is not None or isinstance(exc, SourceError):
                self.watches.settle()  # the running source was opened again
            return self._ready_again()
        for zone in watches.carry_over(self.watches):
            self._end_dropped(zone)
        if watches.tamper is None and self.watches.tamper is not None:  # `tamper: null` now: no tamper is on
            self.actions.tamper_end(self.watches.tamper.finish(frame=self._last_frame, now=time.time()))
        old, self.config, self.watches = self.config, new, watches
        self.actions.reload_arming(self.arming, new)
        if old_source is not None:
            self.watches.settle()
        restart_keys = ("events", "mqtt", "hooks", "http", "notify")
        later = [name for name in restart_keys if getattr(new, name) != getattr(old, name)]
        if later:
            _log.warning("reload: changes to %s take effect at the next restart", ", ".join(later))
        _log.info("reloaded %s: %s", self.config_path, new.thresholds_text())
        self._ready_again()

    def _end_dropped(self, zone: str) -> None:
        last = self.actions.last_status
        verdict = last.zone(zone) if last is not None else None
        for name, end in self.watches.finish_zone(zone, frame=self._last_frame, now=time.time()):
            self.actions.end_event(name, end, verdict=verdict, reason="reload")

    def _ready_again(self) -> None:
        if self._on_ready is not None and self.frames:
            self._on_ready()

    # -- the end --------------------------------------------------------------

    def close(self) -> None:
        """Release the pins (inactive), the source and the log of a monitor never run.

        :meth:`run` does this itself on its way out; later calls do nothing.
        """
        if not self._closed:
            self._closed = True
            self.actions.close()
            self.source.close()

    def _shutdown(self) -> None:
        if self._on_stopping is not None:
            self._on_stopping()
        try:
            last = self.actions.last_status
            if last is not None:
                reason = "stopped" if self._stop.is_set() else "source ended"
                for zone, end in self.watches.finish(frame=last.frame, now=last.time):
                    self.actions.end_event(zone, end, verdict=last.zone(zone), reason=reason)
            if self.realtime:
                self.actions.save_reference(self.watches.adapter, now=None)
        finally:
            self.close()
