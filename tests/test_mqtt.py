"""MQTT publishing against a real mosquitto broker started by the tests."""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from monitor.config import MqttConfig, parse_config
from monitor.exc import ConfigError
from monitor.integrations.mqtt import MqttPublisher, node_id
from monitor.status import EventRecord, FrameStatus
from tests import statuses

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
if not Path(MOSQUITTO).exists():
    pytest.skip("mosquitto is not installed (apt install mosquitto)", allow_module_level=True)

from paho.mqtt.client import CallbackAPIVersion, Client  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
HOST = "test-host"
PREFIX = f"monitor/{HOST}"
WAIT = 20.0


def wait_until(condition: Callable[[], bool], *, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """A mosquitto process on a loopback port that can be stopped and started again on the same port."""

    def __init__(self, folder: Path, *, persistence: bool = False, extra: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        self.conf = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {folder}/",
            # Run as root, mosquitto would switch to the user "mosquitto", who cannot read tmp_path.
            f"user {getpass.getuser()}",
            extra,
        ]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_until(self._accepts, timeout=10, what=f"mosquitto on port {self.port}")

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho client that collects every message on ``topics``; resubscribes after reconnects."""

    def __init__(self, port: int, topics: list[str], *, client_id: str = "", persistent: bool = False) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)

        def on_connect(client: Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            client.subscribe([(topic, 1) for topic in topics])

        def on_subscribe(client: Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
            self._subscribed.set()

        def on_message(client: Client, userdata: Any, message: Any) -> None:
            with self._lock:
                self.messages.append(Message(message.topic, bytes(message.payload), bool(message.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "subscriber never got its SUBACK"

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.on(topic)]

    def wait_for(self, topic: str, count: int = 1) -> list[bytes]:
        wait_until(lambda: len(self.on(topic)) >= count, what=f"{count} message(s) on {topic}")
        return self.payloads(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topics: list[str], **options: Any) -> Subscriber:
        made.append(Subscriber(port, topics, **options))
        return made[-1]

    yield make
    for subscriber in made:
        subscriber.close()


@pytest.fixture
def publish(broker: Broker) -> Iterator[Callable[..., MqttPublisher]]:
    """Make MqttPublishers for the broker (keyword arguments go to MqttConfig); closed afterwards."""
    made: list[MqttPublisher] = []

    def make(*, start: bool = True, **options: Any) -> MqttPublisher:
        config = MqttConfig(host="127.0.0.1", port=broker.port, **options)
        publisher = MqttPublisher(config, hostname=HOST, client_id=f"test-publisher-{len(made)}")
        made.append(publisher)
        if start:
            publisher.start()
            wait_until(lambda: publisher.connected, what="the publisher to connect")
        return publisher

    yield make
    for publisher in made:
        publisher.close()


def frame(index: int, *, state: str = "unchanged", score: float = 0.98, at: float | None = None) -> FrameStatus:
    if state == "changed" and score >= 0.9:
        score = 0.8
    return statuses.status(index, statuses.change(score=score, changed=state == "changed"), time=at)


def event(index: int, kind: str = "event_start") -> EventRecord:
    return EventRecord(
        type=kind,  # type: ignore[arg-type]
        time=1_800_000_000.0 + index,
        frame=index,
        score=0.61234567,
        changed_fraction=0.25,
        boxes=[(1, 2, 30, 40)],
        snapshot=f"snapshots/{index}.jpg",
        extra={"camera": "porch"},
    )


def test_node_id_and_default_prefix_are_safe_for_mqtt_and_home_assistant() -> None:
    assert node_id("garage-pi.local") == "garage-pi_local"
    assert node_id("a/b+c#d e") == "a_b_c_d_e"
    publisher = MqttPublisher(MqttConfig(host="localhost"), hostname="cam.example.org")
    assert publisher.availability_topic == "monitor/cam_example_org/availability"
    custom = MqttPublisher(MqttConfig(host="localhost", topic_prefix="home/porch/"), hostname="x")
    assert custom.event_topic == "home/porch/event"


def test_two_cameras_on_one_host_with_their_own_prefixes_are_two_clients_and_two_devices(
    broker: Broker, subscribe: Callable[..., Subscriber]
) -> None:
    # monitor@garage and monitor@porch on one Pi: same host name, default client ids.
    publishers = [
        MqttPublisher(MqttConfig(host="127.0.0.1", port=broker.port, topic_prefix=f"monitor/{name}"), hostname=HOST)
        for name in ("garage", "porch")
    ]
    try:
        for publisher in publishers:
            publisher.start()
        wait_until(lambda: all(p.connected for p in publishers), what="both publishers to connect")
        time.sleep(1.5)  # a shared client id would have the broker drop one for the other by now
        assert all(p.connected for p in publishers)
        late = subscribe(broker.port, ["homeassistant/#"])
        configs = {
            name: json.loads(late.wait_for(f"homeassistant/binary_sensor/monitor_{name}/change/config")[0])
            for name in ("garage", "porch")
        }
    finally:
        for publisher in publishers:
            publisher.close()
    assert configs["garage"]["unique_id"] == "monitor_monitor_garage_change"
    assert configs["garage"]["state_topic"] == "monitor/garage/state"
    assert configs["porch"]["device"]["identifiers"] == ["monitor_monitor_porch"]
    assert configs["porch"]["device"]["name"] == "Change monitor monitor/porch"


def test_wildcards_in_the_prefix_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.topic_prefix"):
        MqttPublisher(MqttConfig(host="localhost", topic_prefix="monitor/+"))


def test_unreadable_password_file_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = MqttConfig(host="localhost", username="cam", password_file=tmp_path / "missing")
    with pytest.raises(ConfigError) as info:
        MqttPublisher(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("mqtt.password_file: cannot read")
    assert "missing" in info.value.problems[0]


def test_discovery_configs_and_availability_are_retained(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    publish(device_class="opening")
    binary_topic = f"homeassistant/binary_sensor/{HOST}/change/config"
    sensor_topic = f"homeassistant/sensor/{HOST}/score/config"
    # paho sends what on_connect published after `connected` is set: once a first client has
    # them, the broker holds them, and a later one can only get them as retained messages.
    first = subscribe(broker.port, ["homeassistant/#"])
    first.wait_for(binary_topic)
    first.wait_for(sensor_topic)
    # A client arriving later sees only what the broker retained.
    late = subscribe(broker.port, ["homeassistant/#", f"{PREFIX}/availability"])
    late.wait_for(binary_topic)
    late.wait_for(sensor_topic)
    assert late.wait_for(f"{PREFIX}/availability") == [b"online"]
    assert all(m.retain for m in late.messages)

    change = json.loads(late.payloads(binary_topic)[0])
    assert change["device_class"] == "opening"
    assert change["unique_id"] == f"monitor_{HOST}_change"
    assert change["state_topic"] == f"{PREFIX}/state"
    assert (change["payload_on"], change["payload_off"]) == ("ON", "OFF")
    assert change["availability_topic"] == f"{PREFIX}/availability"
    score = json.loads(late.payloads(sensor_topic)[0])
    assert score["unique_id"] == f"monitor_{HOST}_score"
    assert score["state_topic"] == f"{PREFIX}/score"
    assert score["state_class"] == "measurement"
    assert score["suggested_display_precision"] == 3
    assert "unit_of_measurement" not in score
    assert change["device"] == score["device"]
    assert change["device"]["identifiers"] == [f"monitor_{HOST}"]
    assert change["device"]["model"] == "pi-change-monitor"


def test_no_discovery_when_the_prefix_is_null(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    publish(discovery_prefix=None)
    late = subscribe(broker.port, [f"{PREFIX}/availability", "homeassistant/#"])
    late.wait_for(f"{PREFIX}/availability")
    assert [m.topic for m in late.messages] == [f"{PREFIX}/availability"]


def test_state_follows_the_event_and_events_carry_the_log_json(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    live = subscribe(broker.port, [f"{PREFIX}/#"])
    publisher = publish()
    for index, state in enumerate(["unchanged", "unchanged", "changed", "changed", "changed", "unchanged"]):
        publisher.on_frame(frame(index, state=state))
    record = event(2)
    publisher.on_event(record)
    assert live.wait_for(f"{PREFIX}/state", 3) == [b"OFF", b"ON", b"OFF"]
    assert [json.loads(p) for p in live.wait_for(f"{PREFIX}/event")] == [record.to_json()]

    late = subscribe(broker.port, [f"{PREFIX}/state"])
    assert late.wait_for(f"{PREFIX}/state") == [b"OFF"]
    assert late.on(f"{PREFIX}/state")[0].retain


def test_state_seen_before_connecting_is_published_on_connect(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    live = subscribe(broker.port, [f"{PREFIX}/state"])
    publisher = publish(start=False)
    publisher.on_frame(frame(0, state="changed"))
    publisher.start()
    assert live.wait_for(f"{PREFIX}/state") == [b"ON"]


def test_score_is_rate_limited_by_score_interval(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    live = subscribe(broker.port, [f"{PREFIX}/score"])
    publisher = publish(score_interval=10)
    publisher.on_frame(frame(0, score=0.95, at=1000.0))
    publisher.on_frame(frame(1, score=0.90, at=1005.0))  # within 10 s of the last one: not sent
    publisher.on_frame(frame(2, score=0.80, at=1010.0))
    # The third arriving means the second would have arrived before it (one client, in order).
    assert live.wait_for(f"{PREFIX}/score", 2) == [b"0.95000", b"0.80000"]


def test_home_assistant_coming_online_gets_discovery_again(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    topic = f"homeassistant/sensor/{HOST}/score/config"
    live = subscribe(broker.port, ["homeassistant/#"])
    publish()
    live.wait_for(topic, 1)
    live.client.publish("homeassistant/status", "online", qos=1)
    live.wait_for(topic, 2)
    config = json.loads(live.payloads(topic)[1])
    assert config["unique_id"] == f"monitor_{HOST}_score"


def test_close_announces_offline_and_is_idempotent(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    live = subscribe(broker.port, [f"{PREFIX}/availability", f"{PREFIX}/event"])
    publisher = publish()
    live.wait_for(f"{PREFIX}/availability")
    publisher.close()
    publisher.close()
    publisher.on_event(event(1))  # ignored after close, not raised
    assert live.wait_for(f"{PREFIX}/availability", 2) == [b"online", b"offline"]
    assert live.payloads(f"{PREFIX}/event") == []
    assert not publisher.connected


def test_last_will_says_offline_when_the_process_is_killed(
    broker: Broker, subscribe: Callable[..., Subscriber]
) -> None:
    topic = "monitor/killed-host/availability"
    live = subscribe(broker.port, [topic])
    script = (
        "import sys, time\n"
        "from monitor.config import MqttConfig\n"
        "from monitor.integrations.mqtt import MqttPublisher\n"
        "config = MqttConfig(host='127.0.0.1', port=int(sys.argv[1]), keepalive=5)\n"
        "MqttPublisher(config, hostname='killed-host', client_id='killed').start()\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(broker.port)], cwd=PROJECT)
    try:
        assert live.wait_for(topic) == [b"online"]
    finally:
        process.kill()
        process.wait()
    # The broker sends the will when it notices (at once on a closed socket, at the latest after 1.5 keepalives).
    assert live.wait_for(topic, 2) == [b"online", b"offline"]


def test_events_during_an_outage_are_delivered_in_order_after_reconnect(
    tmp_path: Path, subscribe: Callable[..., Subscriber]
) -> None:
    # Broker persistence keeps the subscriber's session (and its queue) across the restart, so events
    # reach it whichever of the two clients reconnects first.
    server = Broker(tmp_path / "persistent", persistence=True)
    server.start()
    topic = f"{PREFIX}/event"
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=server.port), hostname=HOST, client_id="outage-pub")
    try:
        live = subscribe(server.port, [topic], client_id="outage-sub", persistent=True)
        publisher.start()
        wait_until(lambda: publisher.connected, what="the publisher to connect")
        publisher.on_event(event(0))
        live.wait_for(topic, 1)

        server.stop()
        wait_until(lambda: not publisher.connected, what="the publisher to notice the outage")
        for index in (1, 2, 3):
            publisher.on_event(event(index))
        server.start()

        live.wait_for(topic, 4)
        assert [json.loads(p)["frame"] for p in live.payloads(topic)] == [0, 1, 2, 3]
    finally:
        publisher.close()
        server.stop()


def test_queue_past_its_bound_drops_the_oldest_with_a_warning(
    broker: Broker,
    publish: Callable[..., MqttPublisher],
    subscribe: Callable[..., Subscriber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = subscribe(broker.port, [f"{PREFIX}/event", f"{PREFIX}/availability"])
    publisher = publish(start=False, queue_size=2)
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.mqtt"):
        for index in (1, 2, 3, 4):
            publisher.on_event(event(index))
    drops = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(drops) == 2
    publisher.start()
    live.wait_for(f"{PREFIX}/event", 2)
    publisher.close()
    # "offline" comes after every event the publisher sent, on the same ordered path.
    assert live.wait_for(f"{PREFIX}/availability", 2) == [b"online", b"offline"]
    assert [json.loads(p)["frame"] for p in live.payloads(f"{PREFIX}/event")] == [3, 4]


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed")
def test_username_and_password_file_authenticate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "cam", "s3cret word"], check=True)
    server = Broker(tmp_path / "auth", extra=f"allow_anonymous false\npassword_file {passwords}")
    # The last allow_anonymous wins; drop the fixture's default one.
    server.conf.write_text(server.conf.read_text().replace("allow_anonymous true\n", ""), encoding="utf-8")
    server.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret word\n", encoding="utf-8")
    good = MqttConfig(host="127.0.0.1", port=server.port, username="cam", password_file=secret)
    bad_secret = tmp_path / "wrong"
    bad_secret.write_text("wrong\n", encoding="utf-8")
    bad = MqttConfig(host="127.0.0.1", port=server.port, username="cam", password_file=bad_secret)
    try:
        with MqttPublisher(good, hostname=HOST, client_id="auth-good") as publisher:
            publisher.start()
            wait_until(lambda: publisher.connected, what="an authenticated connection")
        with (
            caplog.at_level(logging.WARNING, logger="monitor.integrations.mqtt"),
            MqttPublisher(bad, hostname=HOST, client_id="auth-bad") as refused,
        ):
            refused.start()
            wait_until(lambda: "refused" in caplog.text, what="the broker to refuse a wrong password")
            assert not refused.connected
    finally:
        server.stop()


ZONED = parse_config(
    "zones:\n"
    "  door: {mask: {include: [[[0, 0], [100, 0], [100, 100]]]}, gpio: {pin: 17}}\n"
    "  shelf: {states: {full: full.png, empty: empty.png}}\n"
).zones


def test_each_zone_gets_its_entities_and_topics(
    broker: Broker, publish: Callable[..., MqttPublisher], subscribe: Callable[..., Subscriber]
) -> None:
    live = subscribe(broker.port, ["homeassistant/#", f"{PREFIX}/#"])
    config = MqttConfig(host="127.0.0.1", port=broker.port)
    with MqttPublisher(config, zones=ZONED, hostname=HOST, client_id="test-zones") as publisher:
        publisher.start()
        wait_until(lambda: publisher.connected, what="the publisher to connect")
        door_config = json.loads(live.wait_for(f"homeassistant/binary_sensor/{HOST}/door_change/config")[0])
        shelf_config = json.loads(live.wait_for(f"homeassistant/sensor/{HOST}/shelf_state/config")[0])
        scores = [
            json.loads(live.wait_for(f"homeassistant/sensor/{HOST}/{z}_score/config")[0]) for z in ("door", "shelf")
        ]

        shelf_full = statuses.state("shelf", {"full": 0.95, "empty": 0.4}, current="full")
        shelf_empty = statuses.state("shelf", {"full": 0.5, "empty": 0.94}, current="empty")
        publisher.on_frame(
            statuses.status(
                1, statuses.change("door"), statuses.state("shelf", {"full": 0.9, "empty": 0.4}, current=None)
            )
        )
        publisher.on_frame(statuses.status(2, statuses.change("door", score=0.5, changed=True), shelf_full))
        publisher.on_frame(statuses.status(3, statuses.change("door"), shelf_empty))
        assert live.wait_for(f"{PREFIX}/door/state", 3) == [b"OFF", b"ON", b"OFF"]
        assert live.wait_for(f"{PREFIX}/shelf/state", 2) == [b"full", b"empty"]  # nothing before the first decision
        assert live.wait_for(f"{PREFIX}/door/score")[0] == b"0.97000"

    assert door_config["unique_id"] == f"monitor_{HOST}_door_change" and door_config["name"] == "door"
    assert door_config["state_topic"] == f"{PREFIX}/door/state"
    assert shelf_config["device_class"] == "enum" and shelf_config["options"] == ["full", "empty", "unknown"]
    assert shelf_config["state_topic"] == f"{PREFIX}/shelf/state"
    assert [s["state_topic"] for s in scores] == [f"{PREFIX}/door/score", f"{PREFIX}/shelf/score"]
    assert len({json.dumps(c["device"]) for c in (door_config, shelf_config, *scores)}) == 1  # one device


def test_an_activity_zone_is_a_moving_binary_sensor_on_when_moving() -> None:
    from monitor.integrations.mqtt import _state_payload, discovery_messages, zone_topics

    zones = parse_config("zones: {belt: {activity: {}}}").zones
    [(topic, entity), _score] = discovery_messages(
        discovery_prefix="homeassistant",
        topic_prefix=PREFIX,
        node=HOST,
        device_class="problem",
        device_name="x",
        zones=zone_topics(PREFIX, zones),
    )
    assert topic == f"homeassistant/binary_sensor/{HOST}/belt_moving/config"
    assert entity["device_class"] == "moving" and entity["state_topic"] == f"{PREFIX}/belt/state"
    moving = statuses.state("belt", {"moving": 1.0}, current=None)
    payloads = [_state_payload(replace(moving, kind="activity", state=state)) for state in (None, "moving", "still")]
    assert payloads == [None, "ON", "OFF"]
