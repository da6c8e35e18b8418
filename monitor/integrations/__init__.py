"""What reaches beyond the pin: event hooks, MQTT with Home Assistant discovery, and the status page.

Each is a :class:`~monitor.status.Listener` with ``start()`` and ``close()``.
:func:`build_integrations` makes the ones a config asks for; the caller (``monitor
run``) starts them once the monitor stands and closes them at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config import Config, HooksConfig
from monitor.status import Scene

if TYPE_CHECKING:
    from monitor.arming_state import ArmingState

__all__ = ["build_integrations"]


def build_integrations(
    config: Config,
    *,
    scene: Callable[[], Scene],
    arming: ArmingState | None = None,
    pin_factory: Any = None,
    config_path: Path | None = None,
    reload: Callable[[], None] | None = None,
    check: Callable[[Config], None] | None = None,
) -> list[Any]:
    """Hooks, MQTT and the status page as ``config`` asks, built (their own files read) but not started.

    ``scene()`` gives the status page the reference and the zones as they are
    now. With ``arming`` (the ``arming:`` section's state), MQTT and the page
    get their switches and buttons, and the control socket and the button
    (on ``pin_factory``) join them. ``config_path`` and ``reload`` let the
    status page's zone editor save to the config file and have it re-read,
    once ``check`` raised nothing for the config as it would be.
    Each is imported only when asked for.
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
                    config.mqtt,
                    zones=None if config.legacy_zone else config.zones,
                    arming=arming,
                    tamper=config.tamper is not None,
                )
            )
        if config.http is not None:
            from monitor.web.server import StatusServer

            clips = config.events.clips
            built.append(
                StatusServer(
                    config.http,
                    scene=scene,
                    snapshot_dir=config.events.snapshots,
                    clip_dir=None if clips is None else clips.folder,
                    arming=arming,
                    config_path=config_path,
                    reload=reload,
                    check=check,
                )
            )
        if arming is not None:
            built.extend(_arming_integrations(config, arming, pin_factory))
        if config.notify:
            from monitor.integrations.notify import NotifySender

            built.append(NotifySender(config.notify))
    except BaseException:
        for integration in built:
            integration.close()
        raise
    return built


def _arming_integrations(config: Config, arming: ArmingState, pin_factory: Any) -> list[Any]:
    """The control socket (``monitor arm``/``disarm``) and the button, when configured."""
    from monitor.integrations.control import ControlServer

    built: list[Any] = []
    if arming.path is not None:
        built.append(ControlServer(arming))
    if config.arming is not None and config.arming.button is not None:
        from monitor.integrations.button import ArmButton

        built.append(ArmButton(config.arming.button, arming, pin_factory=pin_factory))
    return built
