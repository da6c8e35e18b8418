"""The event pin, on gpiozero's mock pins: hold, pulse, polarity, faults, closing, reconfiguring."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from monitor import outputs
from monitor.config import GpioConfig
from monitor.exc import OutputError
from monitor.outputs import NullOutput, PinOutput, make_output

LOW, HIGH = False, True


@pytest.fixture
def no_default_factory() -> Iterator[None]:
    """Let gpiozero choose its default factory, then put the previous one back."""
    saved = Device.pin_factory
    Device.pin_factory = None
    try:
        yield
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.reset()
        Device.pin_factory = saved


def levels(pin: MockPin) -> list[bool]:
    """The physical levels the pin went through, starting with its state before the device."""
    return [bool(state.state) for state in pin.states]


def wait_for_level(pin: MockPin, level: bool, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while bool(pin.state) != level:
        assert time.monotonic() < deadline, f"pin never went {'high' if level else 'low'}"
        time.sleep(0.005)


def test_hold_is_on_for_the_whole_event(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        assert pin.state == LOW and not out.is_active
        out.event_started()
        assert pin.state == HIGH and out.is_active
        out.event_ended()
        assert pin.state == LOW and not out.is_active
    assert levels(pin) == [LOW, HIGH, LOW]
    assert len(pin.states) == 3


def test_active_low_inverts_the_physical_level(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17, active_high=False), pin_factory=factory) as out:
        assert pin.state == HIGH  # inactive at once: a relay board on a low input stays off
        out.event_started()
        assert pin.state == LOW and out.is_active
        out.event_ended()
    assert pin.state == HIGH
    assert levels(pin) == [LOW, HIGH, LOW, HIGH]  # the first LOW is the mock pin before setup


def test_pulse_turns_itself_off_and_ignores_the_end(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17, mode="pulse", pulse_seconds=0.05), pin_factory=factory) as out:
        out.event_started()
        wait_for_level(pin, HIGH)
        wait_for_level(pin, LOW)
        out.event_ended()
        assert levels(pin) == [LOW, HIGH, LOW]
        assert len(pin.states) == 3
    assert len(pin.states) == 3


def test_pulse_length_is_the_configured_one(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17, mode="pulse", pulse_seconds=0.2), pin_factory=factory) as out:
        out.event_started()
        wait_for_level(pin, LOW)
    on, off = pin.states[1], pin.states[2]
    # MockPin timestamps are relative to the previous state, so states[2] is the time spent on.
    assert off.state == LOW and on.state == HIGH
    assert off.timestamp >= 0.19


def test_close_mid_event_leaves_the_pin_inactive_and_is_idempotent(factory: MockFactory) -> None:
    pin = factory.pin(17)
    out = PinOutput(GpioConfig(pin=17, active_high=False), pin_factory=factory)
    out.event_started()
    assert pin.state == LOW
    out.close()
    assert pin.state == HIGH
    out.close()
    assert levels(pin) == [LOW, HIGH, LOW, HIGH]
    assert not out.is_active and out.device is None
    out.event_started()  # a closed output ignores late calls rather than touching a released pin
    assert len(pin.states) == 4
    # Closing released the pin: another device can claim it.
    PinOutput(GpioConfig(pin=17), pin_factory=factory).close()


def test_close_stops_a_running_pulse(factory: MockFactory) -> None:
    pin = factory.pin(17)
    out = PinOutput(GpioConfig(pin=17, mode="pulse", pulse_seconds=30), pin_factory=factory)
    out.event_started()
    wait_for_level(pin, HIGH)
    out.close()
    assert pin.state == LOW
    assert levels(pin) == [LOW, HIGH, LOW]


def test_an_exception_inside_the_with_block_still_leaves_the_pin_inactive(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with pytest.raises(KeyboardInterrupt), PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        out.event_started()
        raise KeyboardInterrupt
    assert pin.state == LOW
    assert levels(pin) == [LOW, HIGH, LOW]


def test_fault_modes(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        out.event_started()
        out.fault("off")
        assert pin.state == LOW
        out.recovered(active=True)
        assert pin.state == HIGH
        out.fault("keep")
        assert pin.state == HIGH
        out.recovered(active=False)  # the event ended while the camera was away
        assert pin.state == LOW
        out.fault("on")
        assert pin.state == HIGH
        out.recovered(active=False)
        assert pin.state == LOW
        with pytest.raises(ValueError, match="on_fault"):
            out.fault("blink")
    assert levels(pin) == [LOW, HIGH, LOW, HIGH, LOW, HIGH, LOW]


def test_pulse_mode_recovery_does_not_pulse_again(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17, mode="pulse", pulse_seconds=0.02), pin_factory=factory) as out:
        out.event_started()
        wait_for_level(pin, HIGH)
        wait_for_level(pin, LOW)
        out.fault("on")
        assert pin.state == HIGH
        out.recovered(active=True)
        assert pin.state == LOW
        out.fault("keep")
        out.recovered(active=True)
        assert levels(pin) == [LOW, HIGH, LOW, HIGH, LOW]


def test_test_output_switches_exactly_three_times(factory: MockFactory) -> None:
    pin = factory.pin(17)
    slept: list[float] = []
    with PinOutput(GpioConfig(pin=17, mode="pulse"), pin_factory=factory) as out:
        outputs.test_output(out, times=3, on_seconds=0.2, off_seconds=0.1, sleep=slept.append)
        assert pin.state == LOW
    assert levels(pin) == [LOW, HIGH, LOW, HIGH, LOW, HIGH, LOW]
    assert len(pin.states) == 7
    assert slept == [0.2, 0.1, 0.2, 0.1, 0.2]


def test_test_output_ends_off_when_interrupted(factory: MockFactory) -> None:
    pin = factory.pin(17)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        with pytest.raises(KeyboardInterrupt):
            outputs.test_output(out, sleep=interrupted)
        assert pin.state == LOW
    assert levels(pin) == [LOW, HIGH, LOW]


def test_reconfigure_same_pin_keeps_the_device_and_takes_the_new_pulse(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17, mode="pulse", pulse_seconds=30), pin_factory=factory) as out:
        device = out.device
        out.reconfigure(GpioConfig(pin=17, mode="pulse", pulse_seconds=0.02, on_fault="on"))
        assert out.device is device
        out.event_started()
        wait_for_level(pin, HIGH)
        wait_for_level(pin, LOW)  # with the old 30 s this would time out


def test_reconfigure_mode_mid_event(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        out.event_started()
        out.reconfigure(GpioConfig(pin=17, mode="pulse", pulse_seconds=5))
        assert pin.state == LOW  # the held state belonged to hold mode; the start is not re-pulsed
        out.reconfigure(GpioConfig(pin=17, mode="hold"))
        assert pin.state == HIGH  # hold follows the event that is still open
        out.event_ended()
    assert levels(pin) == [LOW, HIGH, LOW, HIGH, LOW]


def test_reconfigure_to_another_pin_releases_the_old_one(factory: MockFactory) -> None:
    old_pin, new_pin = factory.pin(17), factory.pin(27)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        out.event_started()
        out.reconfigure(GpioConfig(pin=27))
        assert old_pin.state == LOW
        assert new_pin.state == HIGH  # hold mode: the new pin shows the open event
        PinOutput(GpioConfig(pin=17), pin_factory=factory).close()  # 17 is free again
        out.event_ended()
        assert new_pin.state == LOW
    assert levels(old_pin) == [LOW, HIGH, LOW]
    assert levels(new_pin) == [LOW, HIGH, LOW]


def test_reconfigure_polarity_recreates_the_device_inactive(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        device = out.device
        out.reconfigure(GpioConfig(pin=17, active_high=False))
        assert out.device is not device
        assert pin.state == HIGH and not out.is_active
        out.event_started()
        assert pin.state == LOW
    assert pin.state == HIGH


def test_reconfigure_to_no_pin_and_back(factory: MockFactory) -> None:
    pin = factory.pin(17)
    with PinOutput(GpioConfig(pin=17), pin_factory=factory) as out:
        out.reconfigure(GpioConfig(pin=None))
        out.event_started()
        assert pin.state == LOW and not out.is_active
        out.reconfigure(GpioConfig(pin=17))
        assert pin.state == HIGH  # the event is still open and the mode is hold
    assert levels(pin) == [LOW, HIGH, LOW]


def test_pin_in_use_is_an_output_error(factory: MockFactory) -> None:
    with PinOutput(GpioConfig(pin=17), pin_factory=factory), pytest.raises(OutputError) as info:
        PinOutput(GpioConfig(pin=17), pin_factory=factory)
    message = str(info.value)
    assert message.startswith("gpio.pin 17: already in use") and "\n" not in message


def test_invalid_pin_name_is_an_output_error(factory: MockFactory) -> None:
    with pytest.raises(OutputError, match=r"gpio.pin NOPE: not a pin on this board .*BCM number"):
        PinOutput(GpioConfig(pin="NOPE"), pin_factory=factory)


def test_pin_factory_from_the_environment(monkeypatch: pytest.MonkeyPatch, no_default_factory: None) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with make_output(GpioConfig(pin=22)) as out:
        assert isinstance(Device.pin_factory, MockFactory)
        pin = Device.pin_factory.pin(22)
        out.event_started()
        assert pin.state == HIGH
    assert levels(pin) == [LOW, HIGH, LOW]


def test_unknown_pin_factory_names_the_pin_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, no_default_factory: None
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(OutputError, match=r"^gpio.pin 17: no usable GPIO library .*gpio.pin: null"):
        make_output(GpioConfig(pin=17))


def test_no_pin_is_a_silent_no_op(factory: MockFactory) -> None:
    out = make_output(GpioConfig(pin=None), pin_factory=factory)
    assert isinstance(out, NullOutput)
    with out:
        out.event_started()
        out.fault("on")
        out.recovered(active=True)
        out.event_ended()
        outputs.test_output(out, times=2, sleep=lambda seconds: None)
        out.reconfigure(GpioConfig(pin=None, mode="pulse"))
        assert not out.is_active
    out.close()
    assert factory.pins == {}  # no pin was ever set up
    with pytest.raises(OutputError, match="make_output"):
        PinOutput(GpioConfig(pin=None), pin_factory=factory)
