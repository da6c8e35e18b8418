"""Publish state, score and events to an MQTT broker, with Home Assistant discovery.

Topics under ``<prefix>`` (default ``monitor/<hostname>``): ``availability``
(``online``/``offline``, retained, ``offline`` also as the last will),
``event`` (one JSON object per event record, as written to the event log), and
per zone ``<zone>/state`` (a change zone: ``ON`` during an event, ``OFF``
otherwise; a state zone: its state's name; an activity zone: ``ON`` while
moving, ``OFF`` when still; retained) and ``<zone>/score`` (at
most one per ``score_interval``). A config without ``zones:`` keeps the
topics it always had, ``state`` and ``score`` right under the prefix, and the
entities Home Assistant already knows.

Home Assistant discovery makes one device with, per zone, a ``binary_sensor``
(change zone), an ``enum`` ``sensor`` whose options are the states and
``unknown`` (state zone) or a ``moving`` ``binary_sensor`` (activity zone),
and a score ``sensor``.
With an ``arming:`` section it adds ``switch`` entities that arm and disarm,
one per zone and one for the whole monitor (see :mod:`.mqtt_switches`); a
payload other than ``ON``/``OFF`` on their command topics is logged and ignored.
With the tamper checks on, one more ``binary_sensor`` (``device_class: tamper``)
follows ``<prefix>/tamper`` (``ON`` while the camera is covered, moved,
defocused or frozen; retained), the reason in its attributes
(``<prefix>/tamper/attributes``, ``{"reason": ...}``).

paho runs its own network thread and reconnects with back-off. Events are
handed to paho only while connected; in between they wait in a bounded queue
of our own and are sent in order after the next connect, before newer ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import __version__
from monitor.closing import Closing
from monitor.config import LEGACY_ZONE, UNKNOWN, MqttConfig, ZoneConfig
from monitor.exc import CommandError, ConfigError
from monitor.integrations.mqtt_switches import (
    SwitchTopics,
    switch_discovery,
    switch_payload,
    switch_states,
    switch_topics,
)
from monitor.status import EventRecord, FrameStatus, Verdict
from monitor.throttle import Throttle

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from monitor.arming import ZoneArming
    from monitor.arming_state import ArmingState

__all__ = ["MqttPublisher", "ZoneTopics", "discovery_messages", "node_id", "zone_topics"]

_log = logging.getLogger(__name__)

ON, OFF = "ON", "OFF"
ONLINE, OFFLINE = "online", "offline"
_CLOSE_WAIT_SECONDS = 2.0
DISCOVERY_EVERY = 10.0  # seconds: the most often discovery is sent again when Home Assistant says online


def node_id(hostname: str) -> str:
    """The hostname reduced to what Home Assistant allows in a node id and MQTT in a topic level."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", hostname) or "monitor"


@dataclass(frozen=True, slots=True)
class ZoneTopics:
    """One zone as published: its topics, its kind and (state zone) its state names."""

    name: str
    kind: str
    states: tuple[str, ...]
    state_topic: str
    score_topic: str
    entity: str  # what unique ids and discovery topics say for the zone ("" for a config without zones:)


def zone_topics(prefix: str, zones: Mapping[str, ZoneConfig] | None) -> list[ZoneTopics]:
    """Each zone's topics; ``zones`` None is a config without ``zones:`` (one change zone, the old topics)."""
    if zones is None:
        return [ZoneTopics(LEGACY_ZONE, "change", (), f"{prefix}/state", f"{prefix}/score", "")]
    return [
        ZoneTopics(
            name,
            zone.kind,
            tuple(zone.states or ()),
            f"{prefix}/{name}/state",
            f"{prefix}/{name}/score",
            name,
        )
        for name, zone in zones.items()
    ]


def discovery_messages(
    *,
    discovery_prefix: str,
    topic_prefix: str,
    node: str,
    device_class: str,
    device_name: str,
    zones: list[ZoneTopics],
    switches: Sequence[SwitchTopics] = (),
    tamper: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """The retained Home Assistant discovery configs, (topic, payload): per zone its state entity and its score.

    ``tamper``: also the tamper binary sensor.
    """
    device = {
        "identifiers": [f"monitor_{node}"],
        "name": device_name,
        "model": "pi-change-monitor",
        "sw_version": __version__,
    }
    availability = {
        "availability_topic": f"{topic_prefix}/availability",
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    messages = []
    for zone in zones:
        ident = f"{node}_{zone.entity}" if zone.entity else node
        object_id = f"{zone.entity}_" if zone.entity else ""
        if zone.kind == "change":
            entity: dict[str, Any] = {
                "name": zone.entity or "Change",
                "unique_id": f"monitor_{ident}_change",
                "state_topic": zone.state_topic,
                "payload_on": ON,
                "payload_off": OFF,
                "device_class": device_class,
            }
            messages.append((f"{discovery_prefix}/binary_sensor/{node}/{object_id}change/config", entity))
        elif zone.kind == "activity":
            entity = {
                "name": zone.entity,
                "unique_id": f"monitor_{ident}_moving",
                "state_topic": zone.state_topic,
                "payload_on": ON,
                "payload_off": OFF,
                "device_class": "moving",
            }
            messages.append((f"{discovery_prefix}/binary_sensor/{node}/{object_id}moving/config", entity))
        else:
            entity = {
                "name": zone.entity,
                "unique_id": f"monitor_{ident}_state",
                "state_topic": zone.state_topic,
                "device_class": "enum",
                "options": [*zone.states, UNKNOWN],
                "icon": "mdi:shape-outline",
            }
            messages.append((f"{discovery_prefix}/sensor/{node}/{object_id}state/config", entity))
        score = {
            "name": f"{zone.entity} score" if zone.entity else "Score",
            "unique_id": f"monitor_{ident}_score",
            "state_topic": zone.score_topic,
            "state_class": "measurement",
            "suggested_display_precision": 3,
            "icon": "mdi:image-search",
        }
        messages.append((f"{discovery_prefix}/sensor/{node}/{object_id}score/config", score))
    messages.extend(switch_discovery(discovery_prefix=discovery_prefix, node=node, switches=switches))
    if tamper:
        entity = {
            "name": "Tamper",
            "unique_id": f"monitor_{node}_tamper",
            "state_topic": f"{topic_prefix}/tamper",
            "json_attributes_topic": f"{topic_prefix}/tamper/attributes",
            "payload_on": ON,
            "payload_off": OFF,
            "device_class": "tamper",
        }
        messages.append((f"{discovery_prefix}/binary_sensor/{node}/tamper/config", entity))
    return [(topic, {**payload, **availability, "device": device}) for topic, payload in messages]


class MqttPublisher(Closing):
    """A :class:`~monitor.status.Listener` that publishes to MQTT; call :meth:`start` to connect.

    Every method returns at once: the network is paho's thread's business.
    ``hostname`` (default: this machine's) names the device and the default
    topic prefix; a configured ``topic_prefix`` names the device instead (one
    device per prefix). ``client_id`` defaults to ``monitor-<node>`` so that a
    restarted service takes over its own stale session at once.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        zones: Mapping[str, ZoneConfig] | None = None,
        hostname: str | None = None,
        client_id: str | None = None,
        arming: ArmingState | None = None,
        tamper: bool = False,
    ) -> None:
        from paho.mqtt.client import CallbackAPIVersion, Client

        self.config = config
        self.hostname = hostname or socket.gethostname()
        self.prefix = _topic_prefix(config, node_id(self.hostname))
        # A configured prefix names the device, not the host: several cameras on one host
        # (monitor@NAME) differ only by their prefixes, and with one node they shared a client
        # id (the broker dropped each for the other, every second) and one Home Assistant device.
        self.node = node_id(self.hostname) if config.topic_prefix is None else node_id(self.prefix)
        self.device_name = f"Change monitor {self.hostname if config.topic_prefix is None else self.prefix}"
        self.availability_topic = f"{self.prefix}/availability"
        self.zones = {zone.name: zone for zone in zone_topics(self.prefix, zones)}
        self.event_topic = f"{self.prefix}/event"
        self.tamper = tamper
        self.tamper_topic = f"{self.prefix}/tamper"
        self.tamper_attributes_topic = f"{self.prefix}/tamper/attributes"
        self.ha_status_topic = None if config.discovery_prefix is None else f"{config.discovery_prefix}/status"

        # One lock orders every hand-over to paho (ours first, then paho's own locks, never the reverse).
        self._lock = threading.Lock()
        self._connected = False
        self._started = False
        self._closed = False
        self._pending: deque[str] = deque()
        self._states: dict[str, str] = {}  # zone -> the payload last published on its state topic
        self._tamper_state: tuple[str, str | None] | None = None  # (ON/OFF, reason) last published
        self._last_score_time: float | None = None
        self._failures = 0
        self._last_discovery: float | None = None
        self._discovery_skipped = 0
        # Arming switches (issue 14): none without an arming section.
        self.arming = arming
        self.switches = [] if arming is None else switch_topics(self.prefix, None if zones is None else list(zones))
        self._switch_commands = {switch.command_topic: switch.zone for switch in self.switches}
        self._switch_states: dict[str, str] = {}  # state topic -> the payload last published there
        self._switch_seen: Mapping[str, ZoneArming] | None = None
        self._ignored = Throttle(_log, first=3)

        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"monitor-{self.node}",
            clean_session=True,
        )
        # A bug in a callback must not end paho's network thread; paho logs it instead.
        client.suppress_exceptions = True
        self._paho_log = logging.getLogger(f"{__name__}.paho")
        self._paho_log.addFilter(self._quiet_while_closing)
        client.enable_logger(self._paho_log)
        _set_credentials(client, config)
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client: Client = client

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the connection and not lost it since."""
        return self._connected

    def start(self) -> None:
        """Begin connecting in the background; a broker that is down is retried with back-off."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self._client.loop_start()

    def on_frame(self, status: FrameStatus) -> None:
        """Publish each zone's state when it changes and the scores at most once per ``score_interval``."""
        with self._lock:
            if self._closed:
                return
            for verdict in status.zones:
                zone = self.zones.get(verdict.zone)
                if zone is None:
                    continue  # a zone added by a reload: its topics come with the next restart
                payload = _state_payload(verdict)
                if payload is not None and payload != self._states.get(zone.name):
                    self._states[zone.name] = payload
                    if self._connected:
                        self._client.publish(zone.state_topic, payload, qos=self.config.qos, retain=True)
            tamper = (ON if status.tamper else OFF, status.tamper)
            if self.tamper and tamper != self._tamper_state:
                self._tamper_state = tamper
                if self._connected:
                    self._publish_tamper()
            if self._connected and self._score_due(status.time):
                self._last_score_time = status.time
                for verdict in status.zones:
                    zone = self.zones.get(verdict.zone)
                    if zone is not None and math.isfinite(verdict.score):
                        self._client.publish(zone.score_topic, f"{verdict.score:.5f}", qos=0)
            if self.arming is not None:
                self._publish_switches(self.arming.evaluate(status.time))

    def on_event(self, record: EventRecord) -> None:
        """Publish the record's JSON, or queue it (bounded, oldest dropped) until the broker is back."""
        payload = json.dumps(record.to_json(), default=str)
        with self._lock:
            if self._closed:
                return
            if self._connected:
                self._client.publish(self.event_topic, payload, qos=self.config.qos)
            else:
                self._queue([payload])

    def close(self) -> None:
        """Announce ``offline``, disconnect and stop paho's thread (waits up to 2 s for the broker)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started, connected = self._started, self._connected
            lost = len(self._pending)
            self._pending.clear()
        if lost:
            _log.warning("mqtt: %d event(s) never reached the broker at %s", lost, self._where())
        if not started:
            self._paho_log.removeFilter(self._quiet_while_closing)
            return
        if connected:
            info = self._client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            # If the connection went meanwhile, the broker publishes the will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=_CLOSE_WAIT_SECONDS)
        self._client.disconnect()
        self._client.loop_stop()
        self._paho_log.removeFilter(self._quiet_while_closing)

    def _quiet_while_closing(self, record: logging.LogRecord) -> bool:
        # paho 2.2's network thread can run one more loop after disconnect() dropped the
        # socket and logs "Client is not connected" as an ERROR: harmless during close().
        return not (self._closed and record.getMessage().startswith("Client is not connected"))

    # paho's network thread calls these.

    def _on_connect(
        self, client: Client, userdata: Any, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            self._note_failure("broker refused the connection: %s", reason)
            return
        with self._lock:
            if self._closed:
                return
            self._failures = 0
            # Events paho took while the link was already dead would be resent after ours: take them back.
            unsent = [bytes(m.payload).decode() for m in client.drop_out_messages() if m.topic == self.event_topic]
            self._pending.extendleft(reversed(unsent))
            self._drop_excess()
            if self.ha_status_topic is not None:
                # Before anything else, so that a status seen by a subscriber implies we hear HA too.
                client.subscribe(self.ha_status_topic, qos=1)
            client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
            self._publish_discovery()
            for name, payload in self._states.items():
                client.publish(self.zones[name].state_topic, payload, qos=self.config.qos, retain=True)
            if self.arming is not None:
                client.subscribe([(topic, 1) for topic in self._switch_commands])
                self._switch_states.update(switch_states(self.switches, self.arming.evaluate(time.time())))
                for topic, payload in self._switch_states.items():
                    client.publish(topic, payload, qos=self.config.qos, retain=True)
            if self._tamper_state is not None:
                self._publish_tamper()
            delivered = len(self._pending)
            while self._pending:
                client.publish(self.event_topic, self._pending.popleft(), qos=self.config.qos)
            self._connected = True
        _log.info("mqtt: connected to %s as %s", self._where(), self.prefix)
        if delivered:
            _log.info("mqtt: sent %d event(s) queued while the broker was away", delivered)

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._note_failure("cannot connect; retrying with back-off up to 60 s")

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # No lock here: paho may call this while holding its own locks, which publish() takes under ours.
        was_connected, self._connected = self._connected, False
        if was_connected and not self._closed:
            _log.warning("mqtt: lost the connection to %s (%s); reconnecting", self._where(), reason)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if message.topic in self._switch_commands:
            self._on_switch(message)
            return
        if message.topic == self.ha_status_topic and message.payload.strip() == ONLINE.encode():
            # Anyone on the broker can send "online" over and over: at most one republish (and one
            # log line) per DISCOVERY_EVERY seconds.
            now = time.monotonic()
            if self._last_discovery is not None and now - self._last_discovery < DISCOVERY_EVERY:
                self._discovery_skipped += 1
                return
            self._last_discovery = now
            skipped, self._discovery_skipped = self._discovery_skipped, 0
            more = f" ({skipped} more 'online' messages ignored meanwhile)" if skipped else ""
            _log.info("mqtt: Home Assistant is back online; publishing discovery again%s", more)
            with self._lock:
                if not self._closed:
                    self._publish_discovery()

    # Helpers; the caller holds self._lock.

    def _publish_discovery(self) -> None:
        if self.config.discovery_prefix is None:
            return
        messages = discovery_messages(
            discovery_prefix=self.config.discovery_prefix,
            topic_prefix=self.prefix,
            node=self.node,
            device_class=self.config.device_class,
            device_name=self.device_name,
            zones=list(self.zones.values()),
            switches=self.switches,
            tamper=self.tamper,
        )
        for topic, payload in messages:
            self._client.publish(topic, json.dumps(payload), qos=1, retain=True)

    def _publish_tamper(self) -> None:
        assert self._tamper_state is not None
        payload, reason = self._tamper_state
        # The reason first, so that whoever sees ON can already read why.
        self._client.publish(
            self.tamper_attributes_topic, json.dumps({"reason": reason}), qos=self.config.qos, retain=True
        )
        self._client.publish(self.tamper_topic, payload, qos=self.config.qos, retain=True)

    def _queue(self, payloads: list[str]) -> None:
        self._pending.extend(payloads)
        self._drop_excess()

    def _drop_excess(self) -> None:
        while len(self._pending) > self.config.queue_size:
            self._pending.popleft()
            _log.warning(
                "mqtt: broker at %s unreachable and %d events queued (mqtt.queue_size); dropped the oldest",
                self._where(),
                self.config.queue_size,
            )

    def _score_due(self, now: float) -> bool:
        last = self._last_score_time
        return last is None or now < last or now - last >= self.config.score_interval

    def _note_failure(self, message: str, *args: object) -> None:
        self._failures += 1
        # The first failure in a row is news; the retries every minute are not.
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        _log.log(level, "mqtt: %s: " + message, self._where(), *args)

    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    # -- arming switches (issue 14) ---------------------------------------------------

    def _on_switch(self, message: MQTTMessage) -> None:
        """Home Assistant flipped a switch (paho's thread): arm or disarm, then say so on its state topic."""
        zone = self._switch_commands[message.topic]
        payload = bytes(message.payload)
        if message.retain:
            # A retained command would be re-applied at every restart, over whatever was decided since.
            self._ignored(logging.WARNING, "mqtt: %s: ignored a retained command", message.topic)
            return
        armed = switch_payload(payload)
        if armed is None or self.arming is None:
            self._ignored(
                logging.WARNING, "mqtt: %s: ignored payload %r (expected ON or OFF)", message.topic, payload[:32]
            )
            return
        try:
            states = self.arming.command(armed=armed, zone=zone, by="mqtt")
        except CommandError as exc:  # a zone a reload removed
            self._ignored(logging.WARNING, "mqtt: %s: ignored: %s", message.topic, exc)
            return
        with self._lock:
            if not self._closed:
                self._publish_switches(states)

    def _publish_switches(self, states: Mapping[str, ZoneArming]) -> None:
        """Publish each switch whose state changed (retained); the caller holds self._lock."""
        if states is self._switch_seen:
            return
        self._switch_seen = states
        for topic, payload in switch_states(self.switches, states).items():
            if payload != self._switch_states.get(topic):
                self._switch_states[topic] = payload
                if self._connected:
                    self._client.publish(topic, payload, qos=self.config.qos, retain=True)


def _state_payload(verdict: Verdict) -> str | None:
    """What a zone's state topic says: ON/OFF for a change zone, the state's name for a state zone."""
    if verdict.kind == "change":
        return ON if verdict.state == "changed" else OFF
    if verdict.kind == "activity":
        return None if verdict.state is None else ON if verdict.state == "moving" else OFF
    return verdict.state  # None until the zone's first decision: nothing to say yet


def _topic_prefix(config: MqttConfig, node: str) -> str:
    for key, value in (("topic_prefix", config.topic_prefix), ("discovery_prefix", config.discovery_prefix)):
        if value is not None and (not value.strip("/") or any(c in value for c in "+#\0")):
            raise ConfigError([f"mqtt.{key}: must be a topic without +, # or NUL, got {value!r}"])
    if config.topic_prefix is None:
        return f"monitor/{node}"
    return config.topic_prefix.rstrip("/")


def _set_credentials(client: Client, config: MqttConfig) -> None:
    if config.password_file is not None:
        if config.username is None:
            raise ConfigError(["mqtt.password_file: needs mqtt.username as well"])
        password = _read_password(config.password_file)
        client.username_pw_set(config.username, password)
    elif config.username is not None:
        client.username_pw_set(config.username)
    if config.tls is not None:
        tls = config.tls
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=None if tls.cert_file is None else str(tls.cert_file),
                keyfile=None if tls.key_file is None else str(tls.key_file),
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(
                [f"mqtt.tls: cannot load {tls.ca_file} / {tls.cert_file} / {tls.key_file}: {exc}"]
            ) from None


def _read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"mqtt.password_file: cannot read {path}: {reason}"]) from None
    return text.rstrip("\r\n")
