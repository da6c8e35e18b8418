"""A push button that arms and disarms: gpiozero's ``Button`` on ``arming.button.pin``.

``action``: ``toggle`` (disarm while anything is armed, else arm), ``arm`` or
``disarm``; ``zone`` names one zone, else the whole monitor. gpiozero calls
:meth:`ArmButton.pressed` on its own thread; the command goes to the
:class:`~monitor.arming_state.ArmingState` like any other, and the frame loop
does the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from monitor.arming_state import ArmingState
from monitor.closing import Closing
from monitor.config import ArmButtonConfig
from monitor.exc import MonitorError
from monitor.status import EventRecord, FrameStatus

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["ArmButton"]

_log = logging.getLogger(__name__)

_ARMED = {"toggle": None, "arm": True, "disarm": False}


class ArmButton(Closing):
    """The button; its pin is taken by :meth:`start` and released by :meth:`close` (a Listener that hears nothing)."""

    def __init__(self, config: ArmButtonConfig, arming: ArmingState, *, pin_factory: Factory | None = None) -> None:
        self.config = config
        self.arming = arming
        self._pin_factory = pin_factory
        self.button: Any = None

    def start(self) -> None:
        """Take the pin; MonitorError naming ``arming.button.pin`` if it cannot be had."""
        if self.button is not None:
            return
        import gpiozero

        config = self.config
        try:
            self.button = gpiozero.Button(
                config.pin,
                pull_up=config.pull_up,
                bounce_time=config.bounce_seconds or None,
                pin_factory=self._pin_factory,
            )
        except (gpiozero.GPIOZeroError, OSError, RuntimeError) as exc:
            raise MonitorError(
                f"arming.button.pin {config.pin}: cannot set up the button ({type(exc).__name__}: {exc})"
            ) from None
        self.button.when_pressed = self.pressed
        _log.info(
            "arming button on pin %s (%s%s)", config.pin, config.action, f", zone {config.zone}" if config.zone else ""
        )

    def pressed(self) -> None:
        """The button went down: arm, disarm or toggle. Never raises (gpiozero's thread would die)."""
        try:
            self.arming.command(armed=_ARMED[self.config.action], zone=self.config.zone, by="button")
        except Exception:
            _log.exception("arming button: the command failed")

    def on_frame(self, status: FrameStatus) -> None:
        """Frames are not its business."""

    def on_event(self, record: EventRecord) -> None:
        """Nor are events."""

    def close(self) -> None:
        """Release the pin; safe to call twice."""
        button, self.button = self.button, None
        if button is not None:
            button.close()
