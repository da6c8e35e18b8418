"""The GPIO pin switched during an event, through gpiozero.

gpiozero is the GPIO layer: :class:`PinOutput` only decides *when* its
``DigitalOutputDevice`` is on. ``pin_factory`` None means gpiozero picks one
itself (``GPIOZERO_PIN_FACTORY``, else lgpio, RPi.GPIO, ...); tests pass a
``MockFactory``. gpiozero is imported lazily so the package imports anywhere.

Modes: ``hold`` keeps the pin on from the event's start to its end; ``pulse``
switches it on for ``pulse_seconds`` at the start (gpiozero's background blink
with ``n=1``) and ignores the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.closing import Closing
from monitor.config import GpioConfig
from monitor.exc import OutputError

if TYPE_CHECKING:
    from gpiozero import Factory

__all__ = ["NullOutput", "PinOutput", "make_output", "test_output"]

_log = logging.getLogger(__name__)


def _open_device(config: GpioConfig, pin_factory: Factory | None) -> Any:
    """A gpiozero DigitalOutputDevice for ``config.pin``, initially inactive, or OutputError."""
    try:
        import gpiozero
    except ImportError as exc:  # pragma: no cover - gpiozero is a dependency
        raise OutputError(
            f"gpio.pin {config.pin}: gpiozero is not installed ({exc}); install it or set gpio.pin: null"
        ) from None
    try:
        return gpiozero.DigitalOutputDevice(
            config.pin, active_high=config.active_high, initial_value=False, pin_factory=pin_factory
        )
    except gpiozero.BadPinFactory as exc:
        raise OutputError(
            f"gpio.pin {config.pin}: no usable GPIO library ({exc}); on a Pi install python3-lgpio, "
            "elsewhere set gpio.pin: null or GPIOZERO_PIN_FACTORY=mock"
        ) from None
    except gpiozero.GPIOPinInUse as exc:
        raise OutputError(
            f"gpio.pin {config.pin}: already in use ({exc}); stop the other program or choose another pin"
        ) from None
    except gpiozero.PinInvalidPin as exc:
        raise OutputError(
            f"gpio.pin {config.pin}: not a pin on this board ({exc}); use a BCM number such as 17"
        ) from None
    except (gpiozero.GPIOZeroError, OSError, RuntimeError) as exc:
        # lgpio and RPi.GPIO raise their own errors (no /dev/gpiochip, no permission).
        raise OutputError(
            f"gpio.pin {config.pin}: cannot set up the output ({type(exc).__name__}: {exc}); "
            "check the pin number and that this user may use GPIO (group gpio)"
        ) from None


class PinOutput(Closing):
    """One GPIO pin driven by the event logic; always left inactive when closed.

    ``config.pin`` must not be None (use :func:`make_output`). A later
    :meth:`reconfigure` to ``pin: null`` releases the pin and makes this
    output do nothing.
    """

    def __init__(self, config: GpioConfig, *, pin_factory: Factory | None = None) -> None:
        if config.pin is None:
            raise OutputError("gpio.pin is null: there is no pin to drive (use make_output for a no-op output)")
        self._pin_factory = pin_factory
        self._config = config
        self._device: Any = _open_device(config, pin_factory)
        self._forced_on = False  # pulse mode: fault("on") holds the pin until recovered()
        self._event_open = False
        _log.info(
            "gpio pin %s ready (%s, %s)",
            config.pin,
            config.mode,
            "active high" if config.active_high else "active low",
        )

    @property
    def config(self) -> GpioConfig:
        """The gpio section in force."""
        return self._config

    @property
    def device(self) -> Any:
        """The gpiozero DigitalOutputDevice, or None once closed or set to no pin."""
        return self._device

    @property
    def is_active(self) -> bool:
        """True while the pin is at its active level."""
        return self._device is not None and bool(self._device.is_active)

    def on(self) -> None:
        """Drive the pin active, stopping any pulse."""
        if self._device is not None:
            self._device.on()

    def off(self) -> None:
        """Drive the pin inactive, stopping any pulse."""
        if self._device is not None:
            self._device.off()

    def event_started(self) -> None:
        """An event started: hold the pin on, or start a pulse."""
        self._forced_on = False
        self._event_open = True
        if self._device is None:
            return
        if self._config.mode == "pulse":
            self._device.blink(on_time=self._config.pulse_seconds, off_time=0, n=1, background=True)
        else:
            self._device.on()

    def event_ended(self) -> None:
        """The event ended: release a held pin; a pulse ends by itself."""
        self._event_open = False
        if self._config.mode == "hold":
            self.off()

    def fault(self, on_fault: str) -> None:
        """The camera is lost: ``off`` and ``on`` force the pin, ``keep`` leaves it as it is."""
        if on_fault == "off":
            self.off()
        elif on_fault == "on":
            self.on()
            self._forced_on = True
        elif on_fault != "keep":
            raise ValueError(f"on_fault must be 'off', 'on' or 'keep', got {on_fault!r}")

    def recovered(self, *, active: bool) -> None:
        """The camera is back: drive the pin as the event logic wants (``active``: an event is open).

        In pulse mode a pin forced on by the fault goes off, and an event still
        open is not pulsed again; a pulse still running is left to finish.
        """
        self._event_open = active
        if self._config.mode == "hold":
            if active:
                self.on()
            else:
                self.off()
        elif self._forced_on:
            self.off()
        self._forced_on = False

    def reconfigure(self, config: GpioConfig) -> None:
        """Take a new gpio section.

        A new pin or polarity closes the old device (left inactive) and opens
        the new one; raises OutputError if that fails, leaving no pin driven
        until the next successful reconfigure. After a change of pin or mode,
        a ``hold`` pin follows the open event and a ``pulse`` pin starts off
        (the open event's pulse is not repeated).
        """
        old = self._config
        self._config = config
        if config.pin != old.pin or config.active_high != old.active_high or self._device is None:
            self._release()
            self._forced_on = False
            if config.pin is None:
                _log.info("gpio pin %s released: gpio.pin is now null", old.pin)
                return
            self._device = _open_device(config, self._pin_factory)
            _log.info("gpio pin %s ready after reconfigure (was %s)", config.pin, old.pin)
        elif config.mode == old.mode:
            return
        self._forced_on = False
        if config.mode == "hold" and self._event_open:
            self.on()
        else:
            self.off()

    def close(self) -> None:
        """Drive the pin inactive, then release it. Safe to call twice."""
        self._release()

    def _release(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.off()
        finally:
            device.close()

    def __repr__(self) -> str:
        return f"PinOutput(pin={self._config.pin!r}, mode={self._config.mode!r}, active={self.is_active})"


class NullOutput(Closing):
    """The output when ``gpio.pin`` is null: every call does nothing."""

    def __init__(self, config: GpioConfig | None = None) -> None:
        self._config = config if config is not None else GpioConfig(pin=None)

    @property
    def config(self) -> GpioConfig:
        """The gpio section in force."""
        return self._config

    @property
    def is_active(self) -> bool:
        """Always False: there is no pin."""
        return False

    def on(self) -> None:
        """Do nothing."""

    def off(self) -> None:
        """Do nothing."""

    def event_started(self) -> None:
        """Do nothing."""

    def event_ended(self) -> None:
        """Do nothing."""

    def fault(self, on_fault: str) -> None:
        """Do nothing."""

    def recovered(self, *, active: bool) -> None:
        """Do nothing."""

    def reconfigure(self, config: GpioConfig) -> None:
        """Keep doing nothing; a pin set where there was none needs a restart (or a new make_output)."""
        if config.pin is not None:
            _log.warning("gpio.pin changed from null to %s: restart the monitor to use the pin", config.pin)
        self._config = config

    def close(self) -> None:
        """Do nothing."""

    def __repr__(self) -> str:
        return "NullOutput()"


def make_output(config: GpioConfig, *, pin_factory: Factory | None = None) -> PinOutput | NullOutput:
    """The output ``config`` asks for: a pin, or a no-op when ``gpio.pin`` is null."""
    if config.pin is None:
        return NullOutput(config)
    return PinOutput(config, pin_factory=pin_factory)


def test_output(
    output: PinOutput | NullOutput,
    *,
    times: int = 3,
    on_seconds: float = 0.5,
    off_seconds: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Switch the output on and off ``times`` times, to check the wiring; it ends off.

    Works in either mode (it drives the pin directly). There is no pause
    after the last cycle.
    """
    try:
        for cycle in range(times):
            _log.info("test output: on (%d of %d)", cycle + 1, times)
            output.on()
            sleep(on_seconds)
            output.off()
            if cycle + 1 < times:
                sleep(off_seconds)
    finally:
        output.off()


test_output.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
