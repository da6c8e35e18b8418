"""Home Assistant switches that arm and disarm: one per zone and one for the whole monitor.

Each switch has a retained state topic (``ON`` armed, ``OFF`` disarmed) and
a command topic Home Assistant sends ``ON`` / ``OFF`` to: ``<prefix>/armed``
and ``<prefix>/armed/set`` for the whole monitor (ON while any zone is
armed), ``<prefix>/<zone>/armed`` and ``<prefix>/<zone>/armed/set`` per zone.
A config without ``zones:`` has only the monitor's switch. Pure: topics,
discovery payloads and payload parsing; :class:`~monitor.integrations.mqtt.MqttPublisher`
does the talking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.arming import ZoneArming

__all__ = ["SwitchTopics", "switch_discovery", "switch_payload", "switch_states", "switch_topics"]

ON, OFF = "ON", "OFF"
MAX_PAYLOAD_BYTES = 16  # ON or OFF, with room for stray whitespace


@dataclass(frozen=True, slots=True)
class SwitchTopics:
    """One switch: ``zone`` None is the whole monitor's."""

    zone: str | None
    state_topic: str
    command_topic: str
    object_id: str


def switch_topics(prefix: str, zones: Sequence[str] | None) -> list[SwitchTopics]:
    """The monitor's switch, then one per zone (``zones`` None: a config without zones:, the monitor's only)."""
    switches = [SwitchTopics(None, f"{prefix}/armed", f"{prefix}/armed/set", "armed")]
    for name in zones or ():
        switches.append(SwitchTopics(name, f"{prefix}/{name}/armed", f"{prefix}/{name}/armed/set", f"{name}_armed"))
    return switches


def switch_discovery(
    *, discovery_prefix: str, node: str, switches: Sequence[SwitchTopics]
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant ``switch`` discovery configs, (topic, payload), without device and availability."""
    messages = []
    for switch in switches:
        payload = {
            "name": "Armed" if switch.zone is None else f"{switch.zone} armed",
            "unique_id": f"monitor_{node}_{switch.object_id}",
            "state_topic": switch.state_topic,
            "command_topic": switch.command_topic,
            "payload_on": ON,
            "payload_off": OFF,
            "state_on": ON,
            "state_off": OFF,
            "optimistic": False,
            "icon": "mdi:shield-home",
        }
        messages.append((f"{discovery_prefix}/switch/{node}/{switch.object_id}/config", payload))
    return messages


def switch_payload(payload: bytes) -> bool | None:
    """True for ``ON``, False for ``OFF`` (any case, surrounding blanks allowed), None for anything else."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    word = payload.strip().upper()
    return True if word == b"ON" else False if word == b"OFF" else None


def switch_states(switches: Sequence[SwitchTopics], states: Mapping[str, ZoneArming]) -> dict[str, str]:
    """Each switch's state topic -> ``ON``/``OFF``: a zone's own, the monitor's ON while any zone is armed."""
    out = {}
    for switch in switches:
        if switch.zone is None:
            armed = any(state.armed for state in states.values())
        elif switch.zone in states:
            armed = states[switch.zone].armed
        else:
            continue
        out[switch.state_topic] = ON if armed else OFF
    return out
