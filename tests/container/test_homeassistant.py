"""MQTT discovery in front of a real Home Assistant Core, asked through its own REST API.

Home Assistant Core 2026.11 needs Python >= 3.14.2 (its Requires-Python), so it runs from a
Debian testing root (``roots.sh build testing-homeassistant``: a venv with homeassistant and the
pinned requirements of the integrations it loads), started with ``--skip-pip`` under
``systemd-nspawn`` on a read-only root. It is set up the way a user's instance is, without the
onboarding UI: a long-lived access token in its auth storage, and the MQTT integration added
through its own config entry flow (the REST API behind "Add integration").

Everything runs in a network namespace of its own (``ip netns``): Home Assistant, a real
Mosquitto, the monitors and this test's HTTP requests meet on that namespace's 127.0.0.1, so
nothing reaches outside and no port clashes with other work on this machine.

The monitor's entities are found through Home Assistant's registries (templates over the
entity and device registries: MQTT entities whose device carries a ``monitor_`` identifier),
not by entity ids, which change with names and zones.

Run with `make test-homeassistant` (root).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.container.machine import PROJECT, build_root, report, require, wait_for

require("homeassistant")

HA_PORT = 8123
BROKER_PORT = 1883
MOSQUITTO = "/usr/sbin/mosquitto"
MONITOR = [sys.executable, "-m", "monitor"]

# Asks the entity registry for every MQTT entity and the device registry for its device.
ENTITIES_TEMPLATE = """
{%- set ns = namespace(rows=[]) -%}
{%- for entity in integration_entities('mqtt') -%}
  {%- set device = device_id(entity) -%}
  {%- set ns.rows = ns.rows + [{
      'entity_id': entity,
      'device_id': device,
      'device_name': device_attr(device, 'name') if device else none,
      'identifiers': (device_attr(device, 'identifiers') | list) if device else [],
      'state': states(entity),
  }] -%}
{%- endfor -%}
{{ ns.rows | tojson }}
"""


class Namespace:
    """A network namespace with only its own loopback up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "add", name], check=True)
        # Multicast on: Home Assistant's zeroconf joins a group at start (on loopback only here).
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up", "multicast", "on"], check=True)

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", *argv]

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def jwt_hs256(claims: dict[str, Any], key: str) -> str:
    """A JSON Web Token signed with HMAC-SHA256, as Home Assistant makes its access tokens."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


def write_ha_config(folder: Path) -> str:
    """configuration.yaml and the storage files of an onboarded instance; returns an access token."""
    (folder / ".storage").mkdir(parents=True)
    (folder / "configuration.yaml").write_text(
        f"""\
homeassistant:
  name: Monitor test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {HA_PORT}
api:
config:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
""",
        encoding="utf-8",
    )
    now = datetime.now(UTC)
    user_id, token_id, jwt_key = uuid.uuid4().hex, uuid.uuid4().hex, secrets.token_hex(64)

    def store(key: str, data: dict[str, Any], version: int = 1, minor: int = 1) -> None:
        body = {"version": version, "minor_version": minor, "key": key, "data": data}
        (folder / ".storage" / key).write_text(json.dumps(body), encoding="utf-8")

    store(
        "auth",
        {
            "users": [
                {
                    "id": user_id,
                    "group_ids": ["system-admin"],
                    "is_owner": True,
                    "is_active": True,
                    "name": "test",
                    "system_generated": False,
                    "local_only": False,
                }
            ],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
            ],
            "credentials": [],
            "refresh_tokens": [
                {
                    "id": token_id,
                    "user_id": user_id,
                    "client_id": None,
                    "client_name": "monitor test",
                    "client_icon": None,
                    "token_type": "long_lived_access_token",
                    "created_at": now.isoformat(),
                    "access_token_expiration": 86400.0,
                    "token": secrets.token_hex(64),
                    "jwt_key": jwt_key,
                    "last_used_at": None,
                    "last_used_ip": None,
                    "expire_at": None,
                    "credential_id": None,
                    "version": None,
                }
            ],
        },
    )
    # No onboarding UI: every step is done.
    store("onboarding", {"done": ["user", "core_config", "analytics", "integration"]}, version=4)
    stamp = int(now.timestamp())
    return jwt_hs256({"iss": token_id, "iat": stamp, "exp": stamp + 86400}, jwt_key)


@dataclass
class HomeAssistant:
    """Home Assistant's REST API on the namespace's loopback, asked from inside the namespace."""

    netns: Namespace
    token: str
    log: Path

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        script = (
            "import json, sys, urllib.request\n"
            "method, url, token, body = sys.argv[1:5]\n"
            "data = None if body == 'null' else body.encode()\n"
            "request = urllib.request.Request(url, data=data, method=method, headers={\n"
            "    'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})\n"
            "try:\n"
            "    with urllib.request.urlopen(request, timeout=20) as response:\n"
            "        print(response.status); print(response.read().decode())\n"
            "except urllib.error.HTTPError as error:\n"
            "    print(error.code); print(error.read().decode())\n"
            "except OSError as error:\n"
            "    print(0); print(error)\n"
        )
        url = f"http://127.0.0.1:{HA_PORT}{path}"
        result = subprocess.run(
            self.netns.command([sys.executable, "-c", script, method, url, self.token, json.dumps(body)]),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        code, _, text = result.stdout.partition("\n")
        return int(code), text.strip()

    def json(self, method: str, path: str, body: Any = None) -> Any:
        code, text = self.api(method, path, body)
        assert code == 200, f"{method} {path}: {code} {text}"
        return json.loads(text)

    def entities(self) -> list[dict[str, Any]]:
        code, text = self.api("POST", "/api/template", {"template": ENTITIES_TEMPLATE})
        assert code == 200, f"template: {code} {text}"
        return list(json.loads(text))

    def monitor_devices(self) -> dict[str, list[dict[str, Any]]]:
        """The entities of each device whose identifiers say it is a monitor, by device id."""
        devices: dict[str, list[dict[str, Any]]] = {}
        for row in self.entities():
            if any(domain == "mqtt" and ident.startswith("monitor_") for domain, ident in row["identifiers"]):
                devices.setdefault(row["device_id"], []).append(row)
        return devices


@pytest.fixture(scope="module")
def netns() -> Iterator[Namespace]:
    namespace = Namespace(f"monitor-ha-{os.getpid()}")
    try:
        yield namespace
    finally:
        namespace.close()


@pytest.fixture(scope="module")
def broker(netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    folder = tmp_path_factory.mktemp("mosquitto")
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {BROKER_PORT} 127.0.0.1\nallow_anonymous true\nuser root\n", encoding="utf-8")
    with (folder / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen(netns.command([MOSQUITTO, "-c", str(conf)]), stdout=log, stderr=log)
    try:
        time.sleep(0.5)
        assert process.poll() is None, (folder / "mosquitto.log").read_text()
        yield
    finally:
        stop(process)


@pytest.fixture(scope="module")
def homeassistant(netns: Namespace, broker: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    root = build_root("testing-homeassistant")
    config = tmp_path_factory.mktemp("homeassistant")
    token = write_ha_config(config)
    log = config / "hass.log"
    command = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--read-only",
        "--console=pipe",
        "--kill-signal=SIGTERM",
        f"--network-namespace-path={netns.path}",
        f"--bind={config}:/config",
        "-D",
        str(root),
        "--",
        "/opt/homeassistant/bin/hass",
        "--config",
        "/config",
        "--skip-pip",
        "--log-no-color",
    ]
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    ha = HomeAssistant(netns, token, log)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"Home Assistant exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        code, text = ha.api("GET", "/api/config")
        return code == 200 and json.loads(text).get("state") == "RUNNING"

    try:
        wait_for(up, timeout=300, what="Home Assistant to run", interval=1.0)
        version = ha.json("GET", "/api/config")["version"]
        report(f"Home Assistant {version} running after {time.monotonic() - started:.0f} s")
        yield ha
    finally:
        stop(process, timeout=60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from monitor.demo import write_demo_files

    return write_demo_files(tmp_path_factory.mktemp("clip")).video


class Monitor:
    """`monitor run` on the demo clip (looped), publishing to the namespace's broker."""

    def __init__(self, netns: Namespace, clip: Path, folder: Path, *, topic_prefix: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reference.png").write_bytes((clip.parent / "reference.png").read_bytes())
        self.config = folder / "config.yaml"
        self.config.write_text(
            f"""\
source: {{kind: opencv, device: {clip}, width: 320, height: 240, fps: 10, loop: true}}
reference: reference.png
mask: {{include: [[[170, 60], [310, 60], [310, 230], [170, 230]]]}}
detection: {{threshold: 0.80, clear_threshold: 0.85, trigger_frames: 3, clear_frames: 5, settle_frames: 5}}
gpio: {{pin: 17, mode: hold}}
events: {{log: events.jsonl, snapshots: null}}
mqtt: {{host: 127.0.0.1, port: {BROKER_PORT}, topic_prefix: {topic_prefix}, score_interval: 1}}
arming: {{state_file: armed.json}}
""",
            encoding="utf-8",
        )
        self.log = folder / "monitor.log"
        self.netns = netns
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONPATH": str(PROJECT)}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.netns.command([*MONITOR, "run", str(self.config)]), env=env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        """SIGKILL: no goodbye, the broker publishes the last will."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture(scope="module")
def monitors(
    netns: Namespace, homeassistant: HomeAssistant, clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Monitor]]:
    folder = tmp_path_factory.mktemp("monitors")
    # Two cameras on one Pi (one host name), told apart by their topic prefixes.
    started = {
        name: Monitor(netns, clip, folder / name, topic_prefix=f"monitor/{name}") for name in ("garage", "porch")
    }
    try:
        for monitor in started.values():
            monitor.start()
        yield started
    finally:
        for monitor in started.values():
            monitor.close()


def form_answer(schema: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """What the UI sends for a config flow form when only ``values`` are typed in.

    ``schema`` is the form's ``data_schema`` as the REST API serialises it. The rest is what the
    frontend fills in by itself: a suggestion or default, else for a required field an unticked
    box or a drop-down's first option; a collapsed section (``expandable``) likewise.
    """
    answer: dict[str, Any] = {}
    for field in schema:
        name, selector = field["name"], field.get("selector") or {}
        if field.get("type") == "expandable":
            answer[name] = form_answer(field["schema"], values)
        elif name in values:
            answer[name] = values[name]
        elif "suggested_value" in (field.get("description") or {}):
            answer[name] = field["description"]["suggested_value"]
        elif "default" in field:
            answer[name] = field["default"]
        elif field.get("required") and "boolean" in selector:
            answer[name] = False
        elif field.get("required") and "select" in selector:
            first = selector["select"]["options"][0]
            answer[name] = first["value"] if isinstance(first, dict) else first
    return answer


def add_mqtt_integration(ha: HomeAssistant) -> dict[str, Any]:
    """Add MQTT the way the UI does: the config entry flow, step by step."""
    flow = ha.json("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
    assert (flow["type"], flow["step_id"]) == ("form", "broker"), flow
    answer = form_answer(flow["data_schema"], {"broker": "127.0.0.1", "port": BROKER_PORT})
    result = ha.json("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer)
    assert result["type"] == "create_entry", result
    return dict(result)


def devices_with_both(ha: HomeAssistant, count: int) -> dict[str, list[dict[str, Any]]] | None:
    """``count`` monitor devices, each with a binary sensor and a sensor, or None (not yet)."""
    devices = ha.monitor_devices()
    complete = {
        device: rows
        for device, rows in devices.items()
        if {row["entity_id"].split(".")[0] for row in rows} >= {"binary_sensor", "sensor"}
    }
    return complete if len(complete) == count else None


def by_domain(rows: list[dict[str, Any]], domain: str, suffix: str = "") -> str:
    """The one entity of ``domain`` (whose id ends with ``suffix``) among a device's rows."""
    ids = [row["entity_id"] for row in rows]
    [entity] = [name for name in ids if name.startswith(domain + ".") and name.endswith(suffix)]
    return entity


def state_of(ha: HomeAssistant, entity: str) -> str:
    return str(ha.json("GET", f"/api/states/{entity}")["state"])


def test_home_assistant_sees_each_monitor_as_a_device_with_its_entities(
    homeassistant: HomeAssistant, monitors: dict[str, Monitor]
) -> None:
    ha = homeassistant
    entry = add_mqtt_integration(ha)
    assert entry["result"]["domain"] == "mqtt"
    devices = wait_for(
        lambda: devices_with_both(ha, 2), timeout=90, what="two monitor devices in Home Assistant", interval=1.0
    )
    names = sorted(rows[0]["device_name"] for rows in devices.values())
    report(f"devices: {names}; entities: {sorted(row['entity_id'] for rows in devices.values() for row in rows)}")
    # Told apart: each camera its own device, with its own change sensor and score.
    assert len(set(names)) == 2, names
    for rows in devices.values():
        score = wait_for(
            lambda rows=rows: (s := state_of(ha, by_domain(rows, "sensor"))) not in ("unknown", "unavailable") and s,
            timeout=30,
            what="a score",
        )
        assert 0.0 < float(score) <= 1.0
        assert state_of(ha, by_domain(rows, "binary_sensor", "_change")) in ("on", "off")
    # Home Assistant took the discovery payloads without a word against them.
    complaints = [
        line
        for line in ha.log.read_text(errors="replace").splitlines()
        if "[homeassistant.components.mqtt" in line and (" WARNING " in line or " ERROR " in line)
    ]
    assert complaints == []


def test_the_change_sensor_turns_on_then_off_with_the_event(homeassistant: HomeAssistant) -> None:
    ha = homeassistant
    devices = devices_with_both(ha, 2)
    assert devices is not None
    for rows in devices.values():
        change = by_domain(rows, "binary_sensor", "_change")
        wait_for(lambda change=change: state_of(ha, change) == "on", timeout=60, what=f"{change} on", interval=0.5)
        wait_for(lambda change=change: state_of(ha, change) == "off", timeout=60, what=f"{change} off", interval=0.5)


def test_killing_a_monitor_makes_its_entities_unavailable_and_only_its_own(
    homeassistant: HomeAssistant, monitors: dict[str, Monitor]
) -> None:
    ha = homeassistant
    devices = devices_with_both(ha, 2)
    assert devices is not None
    monitors["garage"].kill()
    garage = [rows for rows in devices.values() if "garage" in rows[0]["device_name"]]
    porch = [rows for rows in devices.values() if "porch" in rows[0]["device_name"]]
    assert len(garage) == len(porch) == 1, devices
    for row in garage[0]:
        wait_for(
            lambda row=row: state_of(ha, row["entity_id"]) == "unavailable",
            timeout=30,
            what=f"{row['entity_id']} unavailable",
            interval=0.5,
        )
    for row in porch[0]:
        assert state_of(ha, row["entity_id"]) != "unavailable"


def test_turning_the_zone_switch_off_in_home_assistant_disarms_the_zone(
    homeassistant: HomeAssistant, monitors: dict[str, Monitor]
) -> None:
    ha = homeassistant
    devices = devices_with_both(ha, 2)
    assert devices is not None
    [porch] = [rows for rows in devices.values() if "porch" in rows[0]["device_name"]]
    # A config without zones has one zone, main: its switch is the whole monitor's (one switch).
    zone_switch = by_domain(porch, "switch")
    change = by_domain(porch, "binary_sensor", "_change")
    wait_for(lambda: state_of(ha, zone_switch) == "on", timeout=30, what=f"{zone_switch} on (armed)")
    log = monitors["porch"].config.parent / "events.jsonl"

    ha.json("POST", "/api/services/switch/turn_off", {"entity_id": zone_switch})
    wait_for(lambda: state_of(ha, zone_switch) == "off", timeout=30, what=f"{zone_switch} off")
    wait_for(lambda: '"type":"disarmed"' in log.read_text(), timeout=30, what="the disarmed line")
    disarmed_at = len(log.read_text().splitlines())
    record = json.loads(log.read_text().splitlines()[disarmed_at - 1])
    assert (record["zone"], record["by"]) == ("main", "mqtt")
    # The demo clip loops every 15 s with the cup in it for 7 s: 20 s disarmed would have seen an event.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert state_of(ha, change) == "off", "an event while disarmed"
        time.sleep(0.5)
    later = [json.loads(line)["type"] for line in log.read_text().splitlines()[disarmed_at:]]
    assert "event_start" not in later, later

    ha.json("POST", "/api/services/switch/turn_on", {"entity_id": zone_switch})
    wait_for(lambda: '"type":"armed"' in log.read_text(), timeout=30, what="the armed line")
    wait_for(lambda: state_of(ha, change) == "on", timeout=60, what="an event again once armed", interval=0.5)
