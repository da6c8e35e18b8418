"""What reaches beyond the pin: event hooks, MQTT with Home Assistant discovery, and the status page.

Each is a :class:`~monitor.status.Listener` with ``start()`` and ``close()``.
:func:`build_integrations` makes the ones a config asks for; the caller (``monitor
run``) starts them once the monitor stands and closes them at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.config import Config, HooksConfig
from monitor.status import Scene

__all__ = ["build_integrations"]


def build_integrations(config: Config, *, scene: Callable[[], Scene]) -> list[Any]:
    """Hooks, MQTT and the status page as ``config`` asks, built (their own files read) but not started.

    ``scene()`` gives the status page the reference and the zones as they are
    now. Each is imported only when asked for.
    """
    built: list[Any] = []
    try:
        if config.hooks != HooksConfig():
            from monitor.integrations.hooks import HookRunner

            built.append(HookRunner(config.hooks))
        if config.mqtt is not None:
            from monitor.integrations.mqtt import MqttPublisher

            built.append(
                MqttPublisher(
                    config.mqtt, zones=None if config.legacy_zone else config.zones, tamper=config.tamper is not None
                )
            )
        if config.http is not None:
            from monitor.web.server import StatusServer

            built.append(StatusServer(config.http, scene=scene, snapshot_dir=config.events.snapshots))
    except BaseException:
        for integration in built:
            integration.close()
        raise
    return built
