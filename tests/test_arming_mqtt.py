"""Home Assistant's arming switches against a real mosquitto, with the monitor running on a real video and mock pins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from monitor.arming_state import ArmingState
from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.integrations.mqtt import MqttPublisher
from tests.scenes import write_clip
from tests.test_mqtt import HOST, PREFIX, Broker, Subscriber, wait_until

RIGHT = "[[[80, 0], [160, 0], [160, 120], [80, 120]]]"  # where the cup sits, all the time
LEFT = "[[[0, 0], [80, 0], [80, 120], [0, 120]]]"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(state.state) for state in factory.pin(pin).states]


def arming_lines(log: Path) -> list[tuple[str, str, str]]:
    records = read_events(log) if log.exists() else []
    return [(r["type"], r["zone"], r["by"]) for r in records if r["type"] in ("armed", "disarmed")]


def test_a_zone_switched_off_in_home_assistant_never_fires_until_it_is_switched_on(
    tmp_path: Path, broker: Broker, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    write_clip(tmp_path, frames=50, changed=[range(0, 50)])
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        f"""
source: {{kind: opencv, device: clip.avi, width: 160, height: 120, fps: 25, loop: true}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  door: {{mask: {{include: {RIGHT}}}, gpio: {{pin: 17}}}}
  left: {{mask: {{include: {LEFT}}}, gpio: {{pin: 27}}}}
events: {{log: events.jsonl, snapshots: null}}
mqtt: {{host: 127.0.0.1, port: {broker.port}}}
arming: {{state_file: armed.json}}
"""
    )
    config = load_config(config_path)
    assert config.mqtt is not None
    log = tmp_path / "events.jsonl"
    arming = ArmingState.from_config(config)
    assert arming is not None
    publisher = MqttPublisher(config.mqtt, zones=config.zones, hostname=HOST, client_id="arming-pub", arming=arming)
    monitor = Monitor(
        config, config_path=config_path, realtime=True, pin_factory=factory, listeners=[publisher], arming=arming
    )
    ha = Subscriber(broker.port, ["homeassistant/switch/#", f"{PREFIX}/#"])
    # A command left retained on the broker reaches the monitor when it subscribes: old news, ignored.
    ha.client.publish(f"{PREFIX}/door/armed/set", b"OFF", qos=1, retain=True).wait_for_publish(timeout=10)
    runner = threading.Thread(target=monitor.run, name="monitor-under-test")
    try:
        publisher.start()
        runner.start()
        wait_until(lambda: levels(factory, 17) == [False, True], what="the cup to start an event on pin 17")

        # Home Assistant finds a switch per zone and one for the monitor, and learns their command topics.
        door_config = json.loads(ha.wait_for(f"homeassistant/switch/{HOST}/door_armed/config")[0])
        monitor_config = json.loads(ha.wait_for(f"homeassistant/switch/{HOST}/armed/config")[0])
        ha.wait_for(f"homeassistant/switch/{HOST}/left_armed/config")
        door_command, door_state = door_config["command_topic"], door_config["state_topic"]
        assert (door_config["payload_on"], door_config["payload_off"]) == ("ON", "OFF")
        assert door_config["unique_id"] == f"monitor_{HOST}_door_armed"
        assert door_config["availability_topic"] == f"{PREFIX}/availability"
        assert door_config["device"]["identifiers"] == [f"monitor_{HOST}"]
        assert ha.wait_for(door_state) == [b"ON"]

        # Garbage changes nothing; the plain ON after it (same topic, in order) shows it was all read.
        for payload in [b"maybe", b'{"state": "OFF"}', b"\xff\xfe" * 300, b"ON"]:
            ha.client.publish(door_command, payload, qos=1)
        wait_until(lambda: arming.evaluate(time.time())["door"].by == "mqtt", what="the ON after the garbage")
        assert arming_lines(log) == []
        assert levels(factory, 17) == [False, True]
        ignored = [r.getMessage() for r in caplog.records if "door/armed/set: ignored" in r.getMessage()]
        assert len(ignored) == 3  # then rate-limited
        assert "retained" in ignored[0] and "b'maybe' (expected ON or OFF)" in ignored[1]

        ha.client.publish(door_command, b"OFF", qos=1)
        wait_until(lambda: arming_lines(log) == [("disarmed", "door", "mqtt")], what="the disarmed line")
        wait_until(lambda: levels(factory, 17) == [False, True, False], what="the pin to go off")
        assert ha.wait_for(door_state, 2) == [b"ON", b"OFF"]
        ended = [r for r in read_events(log) if r["type"] == "event_end"]
        assert [(r["zone"], r["reason"]) for r in ended] == [("door", "disarmed")]

        seen = monitor.frames
        wait_until(lambda: monitor.frames >= seen + 50, what="50 more frames")
        assert levels(factory, 17) == [False, True, False]  # the cup is still there: no activation while off
        assert ha.payloads(f"{PREFIX}/door/state")[-1] == b"OFF"

        ha.client.publish(door_command, b"ON", qos=1)
        wait_until(lambda: levels(factory, 17) == [False, True, False, True], what="a new event once armed")
        assert arming_lines(log) == [("disarmed", "door", "mqtt"), ("armed", "door", "mqtt")]
        assert ha.wait_for(door_state, 3) == [b"ON", b"OFF", b"ON"]

        # The monitor's own switch disarms every zone.
        ha.client.publish(monitor_config["command_topic"], b"off", qos=1)
        wait_until(lambda: len(arming_lines(log)) == 4, what="both zones disarmed")
        assert arming_lines(log)[2:] == [("disarmed", "door", "mqtt"), ("disarmed", "left", "mqtt")]
        assert ha.wait_for(monitor_config["state_topic"], 2) == [b"ON", b"OFF"]
    finally:
        monitor.stop()
        runner.join(timeout=30)
        publisher.close()
        ha.close()
    assert not runner.is_alive()
    assert levels(factory, 17) == [False, True, False, True, False]
    late = Subscriber(broker.port, [door_state])  # retained: what Home Assistant sees after its own restart
    try:
        assert late.wait_for(door_state) == [b"OFF"]
    finally:
        late.close()
    again = ArmingState.from_config(config)  # as the next start would read it
    assert again is not None and not again.evaluate(time.time())["door"].armed
