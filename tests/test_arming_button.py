"""The arming button: gpiozero's Button on a MockFactory pin, pressed by driving the pin low."""

from __future__ import annotations

import json
from pathlib import Path

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory

from monitor.arming_state import ArmingState
from monitor.config import ArmButtonConfig, ArmingConfig
from monitor.exc import MonitorError
from monitor.integrations.button import ArmButton

ZONES = ["door", "bench"]


def armed(arming: ArmingState) -> list[bool]:
    return [state.armed for state in arming.evaluate(0.0).values()]


def test_each_press_toggles_the_whole_monitor(tmp_path: Path, factory: MockFactory) -> None:
    arming = ArmingState(ArmingConfig(state_file=tmp_path / "armed.json"), ZONES)
    with ArmButton(ArmButtonConfig(pin=22), arming, pin_factory=factory) as button:
        button.start()
        pin = factory.pin(22)
        assert pin.state  # pulled up: not pressed
        pin.drive_low()  # pressed
        assert armed(arming) == [False, False]
        assert {state.by for state in arming.evaluate(0.0).values()} == {"button"}
        pin.drive_high()  # released: nothing
        assert armed(arming) == [False, False]
        pin.drive_low()
        pin.drive_high()
        assert armed(arming) == [True, True]
        pin.drive_low()
        assert armed(arming) == [False, False]
    saved = json.loads((tmp_path / "armed.json").read_text())["zones"]
    assert {zone: entry["armed"] for zone, entry in saved.items()} == {"door": False, "bench": False}
    gpiozero.Button(22, pin_factory=factory).close()  # close() gave the pin back: it can be taken again


def test_a_disarm_button_for_one_zone_only_disarms_it(tmp_path: Path, factory: MockFactory) -> None:
    arming = ArmingState(ArmingConfig(state_file=tmp_path / "armed.json"), ZONES)
    config = ArmButtonConfig(pin="GPIO5", action="disarm", zone="door", pull_up=False)
    with ArmButton(config, arming, pin_factory=factory) as button:
        button.start()
        pin = factory.pin(5)
        for _ in range(2):  # pulled down: pressed is high
            pin.drive_high()
            pin.drive_low()
            assert armed(arming) == [False, True]


def test_a_pin_already_taken_is_one_error_naming_the_key(tmp_path: Path, factory: MockFactory) -> None:
    arming = ArmingState(ArmingConfig(state_file=tmp_path / "armed.json"), ZONES)
    with gpiozero.DigitalOutputDevice(22, pin_factory=factory):
        button = ArmButton(ArmButtonConfig(pin=22), arming, pin_factory=factory)
        with pytest.raises(MonitorError, match=r"^arming\.button\.pin 22: cannot set up the button \(GPIOPinInUse"):
            button.start()
        button.close()
