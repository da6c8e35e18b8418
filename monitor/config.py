"""The configuration file: YAML validated into frozen, typed models.

``load_config(path)`` is the only entry point. Every problem is reported as one
line naming the file and the dotted key (``config.yaml: detection.threshold:
must be between 0 and 1, got 1.4``), collected into a single
:class:`~monitor.exc.ConfigError`. Relative paths resolve against the folder of
the config file, so a service and a shell find the same files.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from collections.abc import Callable
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.exc import ConfigError

__all__ = [
    "ArmButtonConfig",
    "ArmingConfig",
    "ArmingWindow",
    "ClipsConfig",
    "Config",
    "DetectionConfig",
    "EventsConfig",
    "GpioConfig",
    "HooksConfig",
    "HttpConfig",
    "MaskConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "NotifyConfig",
    "ReferenceConfig",
    "SourceConfig",
    "TamperConfig",
    "ZoneConfig",
    "load_config",
    "load_round_trip",
    "parse_config",
    "update_config_file",
    "write_round_trip",
]


def _between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir")
    if value is None or base is None or value.is_absolute():
        return value
    return (Path(base) / value.expanduser()).resolve()


Fraction = Annotated[float, _between(0.0, 1.0)]
Count = Annotated[int, Field(ge=0)]
# Every number from outside has a sane range: 1e-300 frames a second or 1e308 MB passes "above
# 0" and stalls or overflows later, far from the key that caused it.
Seconds = Annotated[float, _between(0.001, 7 * 86400.0)]  # up to a week
Megabytes = Annotated[float, _between(0.000001, 1_000_000.0)]  # a byte to a terabyte
Frames = Annotated[int, Field(ge=1, le=100_000)]
Files = Annotated[int, Field(ge=1, le=1_000_000)]
Point = tuple[float, float]
Polygon = Annotated[list[Point], Field(max_length=4096)]
Polygons = Annotated[list[Polygon], Field(max_length=256)]


class _Model(BaseModel):
    # validate_default: default paths (reference.png, events.jsonl, ...) resolve against the
    # config's folder too, not against wherever the daemon happens to be started.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)


class SourceConfig(_Model):
    """Where frames come from and at what size and rate."""

    kind: Literal["picamera", "opencv", "images"] = "picamera"
    device: int | str = 0
    width: Annotated[int, Field(ge=16, le=8192)] = 640
    height: Annotated[int, Field(ge=16, le=8192)] = 480
    # At least one frame every 10 s: the service's watchdog (WatchdogSec=30) needs a sign of life.
    fps: Annotated[float, _between(0.1, 120.0)] = 5.0
    loop: bool = False
    controls: dict[str, Any] = Field(default_factory=dict)
    capture_timeout: Annotated[float, _between(0.01, 60.0)] = 2.0
    give_up_seconds: Seconds = 20.0
    lock_exposure: bool = False

    @field_validator("device", mode="before")
    @classmethod
    def _device_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be a camera index, a file path, a glob or a URL")
        return value

    @field_validator("device")
    @classmethod
    def _device_path(cls, value: int | str, info: ValidationInfo) -> int | str:
        # A file, folder or glob is relative to the config file, like every other path.
        base = (info.context or {}).get("base_dir")
        if isinstance(value, int) or base is None or value.isdigit() or "://" in value or value.startswith("/dev/"):
            return value
        path = Path(value).expanduser()
        return value if path.is_absolute() else str(Path(base) / path)


class AdaptConfig(_Model):
    """Slow blending of the reference toward an unchanged scene (off by default)."""

    enabled: bool = False
    rate: Annotated[float, _between(0.0, 0.5)] = 0.01
    save_seconds: Seconds = 300.0


class ReferenceConfig(_Model):
    """The reference image every frame is compared with."""

    path: Annotated[Path, AfterValidator(_resolve)] = Path("reference.png")
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)


class MaskConfig(_Model):
    """The watched region: polygons in, polygons out, and an optional mask image."""

    units: Literal["pixels", "fraction"] = "pixels"
    include: Polygons = Field(default_factory=list)
    exclude: Polygons = Field(default_factory=list)
    image: Annotated[Path | None, AfterValidator(_resolve)] = None


def _area_form(value: Any) -> Any:
    """An area is a number of pixels (1 or more) or a share of the zone such as "2%" (above 0, at most 100)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a number of pixels such as 400, or a share of the zone such as '2%'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("must be a number of pixels of 1 or more, or a share of the zone such as '2%'")
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*", value)
    if match is None:
        raise ValueError("must be a number of pixels such as 400, or a share of the zone such as '2%'")
    if not 0 < float(match.group(1)) <= 100:
        raise ValueError("must be a share above 0% and at most 100% of the zone")
    return value.strip().replace(" ", "")


Area = Annotated[int | str, AfterValidator(_area_form)]


def area_in_pixels(area: int | str, zone_pixels: int) -> int:
    """``min_area`` in frame pixels: a number of pixels as it is, a share of the zone's ``zone_pixels``."""
    if isinstance(area, int):
        return area
    return max(1, math.ceil(float(area.rstrip("%")) / 100 * zone_pixels))


class DetectionConfig(_Model):
    """When a frame counts as changed, and when an event starts and ends."""

    method: Literal["ssim", "ssim-structure"] = "ssim"
    threshold: Fraction = 0.90
    clear_threshold: Fraction = 0.93
    trigger_frames: Frames = 3
    clear_frames: Frames = 5
    settle_frames: Annotated[int, Field(ge=0, le=100_000)] = 10
    local_level: Fraction = 0.5
    min_box_area: Annotated[int, Field(ge=0, le=100_000_000)] = 25
    downscale: Annotated[int, Field(ge=1, le=8)] = 1
    lightswitch_fraction: Fraction | None = None
    min_area: Area | None = None  # change zones: this many changed pixels also make a frame count as below
    # Change gating (monitor/gating.py): a frame like the last fully scored one keeps its verdict,
    # at most this many frames in a row; 0 compares every frame.
    max_skip_frames: Annotated[int, Field(ge=0, le=1000)] = 10

    @model_validator(mode="after")
    def _hysteresis_order(self) -> DetectionConfig:
        if self.clear_threshold < self.threshold:
            raise ValueError(
                f"clear_threshold: must be at or above threshold ({self.threshold:g}), got {self.clear_threshold:g}"
            )
        return self


class GpioConfig(_Model):
    """The pin switched during an event."""

    pin: Annotated[int | str | None, Field()] = 17
    active_high: bool = True
    mode: Literal["hold", "pulse"] = "hold"
    pulse_seconds: Annotated[float, _between(0.01, 3600.0)] = 1.0
    on_fault: Literal["off", "on", "keep"] = "off"
    on_states: list[str] | None = None  # state zones: the pin is on while the zone is in one of these

    @field_validator("pin", mode="before")
    @classmethod
    def _pin_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int | str)):
            raise ValueError("must be a BCM pin number such as 17, a name such as 'GPIO17', or null")
        if isinstance(value, int) and not 0 <= value <= 53:
            raise ValueError("must be a BCM pin number between 0 and 53")
        return value

    @field_validator("on_fault", mode="before")
    @classmethod
    def _yaml_off_on(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` / `on` as false / true.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value


ClipSide = Annotated[int, Field(ge=16, le=8192)]


class ClipsConfig(_Model):
    """Event clips with seconds of pre-roll from a RAM ring buffer (``events.clips``; absent = no clips)."""

    folder: Annotated[Path, AfterValidator(_resolve)] = Path("clips")
    pre_seconds: Annotated[float, Field(ge=0, le=60)] = 3.0
    post_seconds: Annotated[float, Field(ge=0, le=600)] = 3.0
    max_seconds: Annotated[float, _between(0.1, 3600.0)] = 120.0
    fps: Annotated[float, _between(0.1, 120.0)] | None = None  # None: source.fps
    size: tuple[ClipSide, ClipSide] | None = None  # None: the compared frame's size
    keep_clips: Files = 50
    max_clip_mb: Megabytes = 500.0

    @model_validator(mode="after")
    def _longer_than_pre_roll(self) -> ClipsConfig:
        if self.max_seconds <= self.pre_seconds:
            raise ValueError(f"max_seconds: must be above pre_seconds ({self.pre_seconds:g}), got {self.max_seconds:g}")
        return self


class EventsConfig(_Model):
    """Where events and snapshots are written, and how much of them is kept."""

    log: Annotated[Path, AfterValidator(_resolve)] = Path("events.jsonl")
    snapshots: Annotated[Path | None, AfterValidator(_resolve)] = Path("snapshots")
    keep_snapshots: Files = 200
    max_snapshot_mb: Megabytes = 200.0
    max_log_mb: Megabytes = 10.0
    keep_logs: Annotated[int, Field(ge=1, le=1000)] = 5
    clips: ClipsConfig | None = None


class MqttTlsConfig(_Model):
    """TLS to the broker: a CA file, optionally a client certificate and key."""

    ca_file: Annotated[Path, AfterValidator(_resolve)]
    cert_file: Annotated[Path | None, AfterValidator(_resolve)] = None
    key_file: Annotated[Path | None, AfterValidator(_resolve)] = None


class MqttConfig(_Model):
    """Publish state, score and events to an MQTT broker (absent = off)."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password_file: Annotated[Path | None, AfterValidator(_resolve)] = None
    tls: MqttTlsConfig | None = None
    topic_prefix: str | None = None  # None: monitor/<hostname>
    discovery_prefix: str | None = "homeassistant"
    device_class: str = "problem"
    qos: Annotated[int, Field(ge=0, le=2)] = 1
    score_interval: Annotated[float, _between(0.1, 86400.0)] = 10.0
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 100
    keepalive: Annotated[int, Field(ge=5, le=65535)] = 60


Command = Annotated[list[str], Field(min_length=1)]


class HooksConfig(_Model):
    """Commands run on events: argument lists, no shell, event fields in MONITOR_* variables."""

    on_event_start: Command | None = None
    on_event_end: Command | None = None
    on_state_change: Command | None = None
    on_camera_lost: Command | None = None
    on_camera_found: Command | None = None
    on_tamper: Command | None = None
    on_tamper_end: Command | None = None
    timeout: Annotated[float, _between(0.1, 3600.0)] = 30.0


class HttpConfig(_Model):
    """The status page, JSON API, health check and Prometheus metrics (absent = off)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token: str | None = Field(default=None, min_length=16)
    token_file: Annotated[Path | None, AfterValidator(_resolve)] = None
    # The page keeps a point per frame for this long: an hour at 120 frames/s is 432,000 points.
    history_seconds: Annotated[float, _between(1.0, 3600.0)] = 300.0
    # Names the page may be asked for besides loopback, this machine's name and the address a
    # request came in on (a guard against DNS rebinding): e.g. [garage-pi.example.org].
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(default_factory=list)
    # The live view (/stream.mjpg): frames per second per viewer, and viewers at once (0: no stream).
    stream_fps: Annotated[float, _between(0.1, 30.0)] = 5.0
    max_streams: Annotated[int, Field(ge=0, le=32)] = 3

    @model_validator(mode="after")
    def _token_off_loopback(self) -> HttpConfig:
        if self.host not in {"127.0.0.1", "localhost", "::1"} and self.token is None and self.token_file is None:
            raise ValueError(
                f"token: required when host is {self.host!r} (not loopback): "
                "set token (16+ characters) or token_file (a file holding it)"
            )
        return self


class TamperConfig(_Model):
    """Telling a covered, moved, blurred or frozen camera from a change (absent = on; null = off).

    Each check can be switched off alone with null.
    """

    covered_level: Fraction | None = 0.15
    moved_pixels: Annotated[float, _between(0.5, 4096.0)] | None = 8.0
    align: bool = True
    defocus_ratio: Fraction | None = 0.5
    frozen_seconds: Seconds | None = 10.0
    trigger_frames: Frames = 5
    clear_frames: Frames = 5


# -- arming (issue 14): schedules, the state file, a button ------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def _clock_time(value: Any) -> Any:
    # YAML reads an unquoted 07:30 as the number 450 (base 60): say so rather than take 00:07:30.
    if not isinstance(value, str):
        raise ValueError(f'must be a time of day in quotes, such as "07:30", got {_show(value)}')
    match = _CLOCK.fullmatch(value.strip())
    if match is None:
        raise ValueError(f'must be a time of day HH:MM between "00:00" and "23:59", got {_show(value)}')
    return dt_time(int(match.group(1)), int(match.group(2)))


ClockTime = Annotated[dt_time, BeforeValidator(_clock_time)]


class ArmingWindow(_Model):
    """One schedule window: from ``from`` to ``to`` (local time) on ``days``, ``zones`` are ``set``.

    ``to`` at or before ``from`` ends on the next day; ``days`` are the days a
    window starts on (None: every day); ``zones`` None: every zone.
    """

    name: str | None = Field(default=None, min_length=1, max_length=64)
    days: Annotated[list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]], Field(min_length=1)] | None = None
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")
    zones: Annotated[list[str], Field(min_length=1)] | None = None
    armed_state: Literal["armed", "disarmed"] = Field(alias="set")

    @property
    def label(self) -> str:
        """The window as the status page names it: its ``name``, else its days and hours."""
        if self.name is not None:
            return self.name
        days = "" if self.days is None else ",".join(self.days) + " "
        return f"{days}{self.start:%H:%M}-{self.end:%H:%M}"


class ArmButtonConfig(_Model):
    """A push button (gpiozero ``Button``) that arms or disarms."""

    pin: int | str
    action: Literal["toggle", "arm", "disarm"] = "toggle"
    zone: str | None = None  # None: the whole monitor
    pull_up: bool = True  # wired between the pin and ground (the usual way)
    bounce_seconds: Annotated[float, _between(0.0, 1.0)] = 0.05

    @field_validator("pin", mode="before")
    @classmethod
    def _pin_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be a BCM pin number such as 22, or a name such as 'GPIO22'")
        if isinstance(value, int) and not 0 <= value <= 53:
            raise ValueError("must be a BCM pin number between 0 and 53")
        return value


class ArmingConfig(_Model):
    """Armed and disarmed zones: a state file that survives restarts, a schedule, a button (absent = always armed)."""

    state_file: Annotated[Path, AfterValidator(_resolve)] = Path("armed.json")
    default: Literal["armed", "disarmed"] = "armed"
    timezone: str | None = None  # None: the system's local time
    schedule: list[ArmingWindow] = Field(default_factory=list)
    button: ArmButtonConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone, expected a name such as Europe/Berlin") from None
        return value


def _arming_problems(arming: ArmingConfig, zones: dict[str, Any]) -> list[str]:
    """Schedule windows and the button must name zones that exist; the button's pin is no zone's pin."""
    problems = []
    known = ", ".join(zones)
    for index, window in enumerate(arming.schedule):
        for name in window.zones or ():
            if name not in zones:
                problems.append(f"arming.schedule[{index}].zones: no zone {name!r} (zones: {known})")
    button = arming.button
    if button is not None:
        if button.zone is not None and button.zone not in zones:
            problems.append(f"arming.button.zone: no zone {button.zone!r} (zones: {known})")
        for name, zone in zones.items():
            if zone.gpio.pin is not None and _pin_key(zone.gpio.pin) == _pin_key(button.pin):
                problems.append(
                    f"arming.button.pin: {button.pin} is already the output pin of zone {name!r}, "
                    "and the button needs a pin of its own"
                )
    return problems


# -- notify: ------------------------------------------------------------------

NotifyRecord = Literal["event_start", "event_end", "state", "camera_lost", "camera_found", "tamper_start", "tamper_end"]
NOTIFY_FIELDS = ("zone", "state", "previous", "type", "score", "time", "host", "reason")
_NOTIFY_ON: tuple[NotifyRecord, ...] = ("event_start", "state", "camera_lost")


class NotifyConfig(_Model):
    """One notification target: its services (Apprise URLs), which records it tells of, and what it says.

    ``urls`` are checked with Apprise here (imported only for a config with
    ``notify:``); ``urls_file`` is read, and refused if others may read it,
    when the sender is built and by ``monitor check``.
    """

    urls: list[str] = Field(default_factory=list, repr=False)  # secrets: kept out of tracebacks
    urls_file: Annotated[Path | None, AfterValidator(_resolve)] = None
    zones: list[str] | None = None
    on: list[NotifyRecord] = Field(default_factory=lambda: list(_NOTIFY_ON))
    states: list[str] | None = None
    attach: Literal["snapshot", "clip", "none"] = "snapshot"
    cooldown_seconds: Annotated[float, _between(0.0, 86400.0)] = 300.0
    title: str = "{zone}: {state}"
    body: str = "{zone} {state} at {time} on {host} (score {score:.2f})"

    @model_validator(mode="before")
    @classmethod
    def _yaml_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # YAML 1.1 reads a bare `on:` key as true, and `attach: null` means no attachment.
        data = {("on" if key is True else key): value for key, value in data.items()}
        if isinstance(data.get("urls"), str):
            data["urls"] = [data["urls"]]
        if "attach" in data and data["attach"] is None:
            data["attach"] = "none"
        return data

    @model_validator(mode="after")
    def _urls_and_words(self) -> NotifyConfig:
        from monitor.integrations.notify import template_problem, url_problem

        problems = []
        if not self.urls and self.urls_file is None:
            problems.append("urls: required: a list of Apprise URLs (or urls_file: a file of them, one a line)")
        for index, url in enumerate(self.urls):
            problem = url_problem(url)
            if problem is not None:
                problems.append(f"urls[{index}]: {problem}")
        for key in ("title", "body"):
            problem = template_problem(getattr(self, key))
            if problem is not None:
                problems.append(f"{key}: {problem}")
        if not self.on:
            problems.append("on: needs at least one record type (event_start, state, camera_lost, ...)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _notify_targets(value: Any) -> Any:
    """``notify:`` as a list of targets; a single target or a bare URL is taken as one.

    A wrong shape is named without echoing the value, which may hold a secret.
    """
    if value is None:
        return []
    if isinstance(value, dict | str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"must be a list of targets (each with urls: and on:), got {_kind(value)}")
    return [{"urls": [item]} if isinstance(item, str) else item for item in value]


ZONE_NAME = re.compile(r"[a-z0-9_-]{1,32}")
UNKNOWN = "unknown"  # the state of a state zone whose every reference scores under its threshold
ACTIVITY_STATES = ("moving", "still")
LEGACY_ZONE = "main"  # the one zone of a config without zones:
# Detection keys that belong to the whole frame, not to one zone.
SCENE_DETECTION_KEYS = ("lightswitch_fraction",)


def _zone_name_problem(name: object, what: str) -> str | None:
    if isinstance(name, str) and ZONE_NAME.fullmatch(name):
        return None
    return f"{what} {_show(name)}: must be 1-32 characters of a-z, 0-9, _ and -"


class ActivityConfig(_Model):
    """An activity zone: is something in it moving, or has it stood still for too long?"""

    compare_seconds: Annotated[float, _between(0.05, 60.0)] = 1.0
    still_after: Annotated[float, _between(0.1, 86400.0)] = 60.0
    min_area: Area = "1%"


class ZoneConfig(_Model):
    """One watched place: its mask, its detection (top-level defaults filled in), its pin.

    A *change zone* (no ``states``) compares with the scene's reference; a
    *state zone* compares with each of its state references and names the best.
    """

    mask: MaskConfig = Field(default_factory=MaskConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    states: Annotated[dict[str, Annotated[Path, AfterValidator(_resolve)]], Field(max_length=32)] | None = None
    activity: ActivityConfig | None = None

    @property
    def kind(self) -> Literal["change", "state", "activity"]:
        if self.activity is not None:
            return "activity"
        return "change" if self.states is None else "state"

    @property
    def state_names(self) -> list[str]:
        """The states the zone can name besides unknown: its pictures', or moving and still."""
        if self.activity is not None:
            return list(ACTIVITY_STATES)
        return list(self.states or ())

    @field_validator("states")
    @classmethod
    def _state_names(cls, value: dict[str, Path] | None) -> dict[str, Path] | None:
        if not value:
            return value
        problems = [
            f"{_show(name)}: must be 1-32 characters of a-z, 0-9, _ and -"
            for name in value
            if not ZONE_NAME.fullmatch(name)
        ]
        if UNKNOWN in value:
            problems.append(
                f"{UNKNOWN}: is the state of a zone that matches none of its states, so it cannot be a state's name"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _states_fit(self) -> ZoneConfig:
        if self.states is not None and not self.states:
            raise ValueError("states: a state zone needs at least one state (name: reference image)")
        if self.activity is not None and self.states is not None:
            raise ValueError("activity: an activity zone has the states moving and still, so it takes no states:")
        on_states = self.gpio.on_states
        if on_states is None:
            return self
        if self.kind == "change":
            raise ValueError(
                "gpio.on_states: only for a state zone (one with states:), a change zone's pin follows its events"
            )
        allowed = [*self.state_names, UNKNOWN]
        wrong = [name for name in on_states if name not in allowed]
        if wrong:
            raise ValueError(
                f"gpio.on_states: {', '.join(map(repr, wrong))} is not a state of this zone "
                f"(expected: {', '.join(allowed)})"
            )
        return self


def _pin_key(pin: int | str) -> str:
    """A pin as gpiozero would name it, so that 17, "17", "GPIO17" and "BCM17" are one pin."""
    text = str(pin).strip().upper()
    for prefix in ("GPIO", "BCM"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return str(int(text[len(prefix) :]))
    return str(int(text)) if text.isdigit() else text


class Config(_Model):
    """The whole configuration file.

    ``zones`` always holds at least one zone: a file without ``zones:`` has one
    zone named ``main`` made of its top-level ``mask`` and ``gpio``
    (``legacy_zone`` is then True), so that every older config keeps working.
    """

    source: SourceConfig = Field(default_factory=SourceConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    zones: Annotated[dict[str, ZoneConfig], Field(max_length=64)]
    events: EventsConfig = Field(default_factory=EventsConfig)
    mqtt: MqttConfig | None = None
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    http: HttpConfig | None = None
    arming: ArmingConfig | None = None
    notify: Annotated[list[NotifyConfig], BeforeValidator(_notify_targets)] = Field(default_factory=list)
    legacy_zone: bool = Field(default=False, exclude=True)
    tamper: TamperConfig | None = Field(default_factory=TamperConfig)

    @model_validator(mode="before")
    @classmethod
    def _sections_from_empty(cls, data: Any) -> Any:
        # Build absent sections from {} in this validation, so their default paths see the
        # config's folder (a default_factory instance would skip the validators).
        if not isinstance(data, dict):
            return data
        sections = ("source", "reference", "detection", "events", "hooks")
        data = {**{name: {} for name in sections}, **data}
        if "legacy_zone" in data:
            raise ValueError("legacy_zone: unknown key")
        if "zones" not in data:
            zone = {key: data.pop(key) for key in ("mask", "gpio") if key in data}
            data["zones"] = {LEGACY_ZONE: zone}
            data["legacy_zone"] = True
            return _zone_detection(data)
        misplaced = [key for key in ("mask", "gpio") if key in data]
        if misplaced:
            raise ValueError(
                "; ".join(
                    f"{key}: with zones:, each zone has its own {key}: move it into a zone (zones.<name>.{key})"
                    for key in misplaced
                )
            )
        zones = data["zones"]
        if isinstance(zones, dict):
            data["zones"] = {name: _zone_defaults(zone) for name, zone in zones.items()}
        return _zone_detection(data)

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_shorthand(cls, value: Any) -> Any:
        # `reference: reference.png` is the short form of `reference: {path: ...}`.
        if isinstance(value, str | Path):
            return {"path": value}
        if not isinstance(value, dict | ReferenceConfig):
            raise ValueError("must be an image path, or a mapping with path: and adapt:")
        return value

    @model_validator(mode="after")
    def _zones_fit(self) -> Config:
        problems = []
        if not self.zones:
            problems.append("zones: needs at least one zone (name -> mask, detection, gpio)")
        pins: dict[str, str] = {}
        for name, zone in self.zones.items():
            naming = _zone_name_problem(name, "zones:")
            if naming is not None:
                problems.append(naming)
                continue
            where = self.zone_key(name)
            problems.extend(_polygon_problems(zone.mask, self.source.width, self.source.height, key=f"{where}mask"))
            pin = zone.gpio.pin
            if pin is not None:
                first = pins.setdefault(_pin_key(pin), name)
                if first != name:
                    problems.append(
                        f"{where}gpio.pin: {pin} is already the pin of zone {first!r}, and two zones cannot share a pin"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _clip_size_fits(self) -> Config:
        clips = self.events.clips
        if clips is None or clips.size is None:
            return self
        width, height = clips.size
        if width > self.source.width or height > self.source.height:
            raise ValueError(
                f"events.clips.size: [{width}, {height}] is larger than the compared frame "
                f"({self.source.width}x{self.source.height}, source.width x source.height): clips are made "
                "from the compared frames, so the size can be that or smaller (null = that)"
            )
        return self

    @model_validator(mode="after")
    def _arming_fits(self) -> Config:
        problems = [] if self.arming is None else _arming_problems(self.arming, self.zones)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def thresholds_text(self) -> str:
        """Each zone's thresholds in a few words, as a reload's log line says them."""
        if self.legacy_zone:
            detection = self.zones[LEGACY_ZONE].detection
            return f"threshold {detection.threshold:.3f}, clear_threshold {detection.clear_threshold:.3f}"
        return ", ".join(
            f"{name} threshold {zone.detection.threshold:.3f}"
            + (f" clear {zone.detection.clear_threshold:.3f}" if zone.kind == "change" else "")
            for name, zone in self.zones.items()
        )

    def zone_key(self, name: str) -> str:
        """The prefix of a zone's keys as the user wrote them: ``zones.door.``, or nothing for a legacy config."""
        return "" if self.legacy_zone else f"zones.{name}."

    @property
    def change_zones(self) -> dict[str, ZoneConfig]:
        """The zones that compare with the scene's reference."""
        return {name: zone for name, zone in self.zones.items() if zone.kind == "change"}

    @model_validator(mode="after")
    def _tamper_fits(self) -> Config:
        # The shift is measured on a small copy of the frame: past a quarter of it, it means nothing.
        # Only a value the user wrote is refused: with the default, a small frame keeps working.
        tamper = self.tamper
        moved = None if tamper is None or "moved_pixels" not in tamper.model_fields_set else tamper.moved_pixels
        limit = min(self.source.width, self.source.height) / 4
        if moved is not None and moved >= limit:
            raise ValueError(
                f"tamper.moved_pixels: must be below {limit:g} (a quarter of the "
                f"{self.source.width}x{self.source.height} frame's smaller side), got {moved:g}"
            )
        return self

    @model_validator(mode="after")
    def _notify_fits(self) -> Config:
        problems = []
        for index, target in enumerate(self.notify):
            for name in target.zones or ():
                if name not in self.zones:
                    problems.append(f"notify[{index}].zones: {name!r} is not a zone (zones: {', '.join(self.zones)})")
            watched = [self.zones[name] for name in target.zones or self.zones if name in self.zones]
            states = {state for zone in watched for state in zone.states or ()}
            if target.states is not None:
                if not states:
                    problems.append(f"notify[{index}].states: only for state zones, and none of its zones has states")
                    continue
                wrong = [state for state in target.states if state not in states and state != UNKNOWN]
                if wrong:
                    problems.append(
                        f"notify[{index}].states: {', '.join(map(repr, wrong))} is not a state of its zones "
                        f"(expected: {', '.join([*sorted(states), UNKNOWN])})"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _zone_detection(data: dict[str, Any]) -> dict[str, Any]:
    """Each zone's detection: the top-level one with the zone's own keys on top.

    An invalid top-level section is reported once, there, not again in every zone.
    """
    if not isinstance(data.get("zones"), dict):
        return data
    top = data.get("detection")
    try:
        DetectionConfig.model_validate(top)
    except ValidationError:
        top = {}
    if not isinstance(top, dict):
        top = {}
    zones = {}
    for name, zone in data["zones"].items():
        if isinstance(zone, dict) and isinstance(zone.get("detection") or {}, dict):
            own = zone.get("detection") or {}
            merged = {**top, **own}
            if zone.get("activity") is not None:
                if "min_area" in own:
                    raise ValueError(
                        f"zones.{name}.detection.min_area: an activity zone counts movement with "
                        "activity.min_area, not detection.min_area"
                    )
                merged.pop("min_area", None)  # the top level's is for change zones
            zone = {**zone, "detection": merged}
            scene_keys = [key for key in SCENE_DETECTION_KEYS if key in own]
            if scene_keys and not data.get("legacy_zone"):
                raise ValueError(
                    f"zones.{name}.detection.{scene_keys[0]}: applies to the whole frame, so it belongs in the "
                    "top-level detection section"
                )
        zones[name] = zone
    return {**data, "zones": zones}


def _zone_defaults(zone: Any) -> Any:
    # In a config with zones:, a zone without a pin has none (no surprise click on GPIO 17).
    if zone is None:
        zone = {}
    if not isinstance(zone, dict):
        return zone
    gpio = zone.get("gpio", {})
    if isinstance(gpio, dict) and "pin" not in gpio:
        zone = {**zone, "gpio": {**gpio, "pin": None}}
    return zone


def _polygon_problems(mask: MaskConfig, width: int, height: int, *, key: str = "mask") -> list[str]:
    if mask.units == "fraction":
        max_x, max_y, unit = 1.0, 1.0, "0-1 fractions of the frame"
    else:
        max_x, max_y, unit = float(width), float(height), f"pixels of the {width}x{height} frame"
    problems = []
    for group in ("include", "exclude"):
        for index, polygon in enumerate(getattr(mask, group)):
            where = f"{key}.{group}[{index}]"
            if len(polygon) < 3:
                problems.append(f"{where}: a polygon needs at least 3 points, got {len(polygon)}")
                continue
            for x, y in polygon:
                if not (0 <= x <= max_x and 0 <= y <= max_y):
                    problems.append(
                        f"{where}: point [{x:g}, {y:g}] is outside the frame "
                        f"(expected {unit}: x 0-{max_x:g}, y 0-{max_y:g})"
                    )
                    break
    return problems


MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few kilobytes; a megabyte is already a mistake
MAX_YAML_ALIASES = 20  # aliases (*name) in one file: 20 expand a value at most ~1,600-fold


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError with one line per problem."""
    path = Path(path)
    try:
        text = _read_small_file(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (copy config.yaml from the project and edit it)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_config(text, name=str(path), base_dir=path.resolve().parent)


def _read_small_file(path: Path) -> bytes:
    """At most MAX_CONFIG_BYTES of a regular file; a FIFO or a device is refused, never waited on."""
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError([f"{path}: not a regular file"])
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KB: not a config file"])
    return raw


def parse_config(text: str, *, name: str = "config.yaml", base_dir: Path | None = None) -> Config:
    """Validate YAML text; ``name`` prefixes each problem, ``base_dir`` anchors relative paths."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{name}: {where}not valid YAML: {problem}"]) from None
    except Exception as exc:
        # PyYAML's constructors raise what their parsing raises: a date that does not exist
        # (2001-02-30), an empty `!!float`, nesting deeper than Python's recursion limit.
        problem = "nested too deeply" if isinstance(exc, RecursionError) else f"cannot build a value ({exc})"
        raise ConfigError([f"{name}: not valid YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{name}: expected a mapping of sections (source:, detection:, ...), got {_kind(data)}"])
    context = {"base_dir": base_dir}
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        legacy = "zones" not in data
        lines = _describe(exc, legacy=legacy)
        raise ConfigError([f"{name}: {line}" for line in lines]) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error, not the last one wins,
    and that more than MAX_YAML_ALIASES aliases are refused at once: nested aliases ("billion
    laughs") expand into billions of values once validated, which stalled a check or a reload for
    half a minute at two gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases (*name)", self.peek_event().start_mark
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _describe(exc: ValidationError, *, legacy: bool = False) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        where = tuple(error["loc"])
        if legacy and where[:2] == ("zones", LEGACY_ZONE):
            where = where[2:]  # the user wrote these keys at the top level
        error["loc"] = where
        loc = _dotted(where)
        kind = error["type"]
        message = str(error["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        message = message.replace("Input should be", "must be")
        got = error.get("input")
        if kind == "path_type":
            message = "must be a file path"
        if kind == "extra_forbidden":
            lines.append(f"{loc}: unknown key{_suggestion(error['loc'])}")
        elif kind == "invalid_key":
            # pydantic's loc turns a YAML key like `false` into 0: name it as it was written.
            lines.append(f"{_dotted((*error['loc'][:-1], _show(got)))}: a key must be a name, got {_show(got)}")
        elif kind == "missing":
            lines.append(f"{loc}: required")
        elif kind == "value_error" and isinstance(got, dict):
            # Model-level checks report "key: problem; key: problem".
            prefix = f"{loc}." if loc else ""
            lines.extend(prefix + part for part in message.split("; "))
        elif " got " in message or isinstance(got, dict):
            lines.append(f"{loc}: {message}")
        else:
            lines.append(f"{loc}: {message}, got {_show(got)}")
    return lines


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A key that is empty or holds a line break is quoted, so that a problem stays one line.
            name = part if part.isprintable() and part.strip() else repr(part)
            out += f".{name}" if out else name
    return out


def _show(value: Any) -> str:
    """A value as a problem line shows it: a bounded excerpt, however big or deep the value is."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = _EXCERPT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounded_repr() -> Any:
    import reprlib

    excerpt = reprlib.Repr()
    excerpt.maxlevel, excerpt.maxlist, excerpt.maxdict, excerpt.maxstring, excerpt.maxother = 3, 4, 4, 50, 50
    return excerpt


_EXCERPT = _bounded_repr()


def _suggestion(loc: tuple[int | str, ...]) -> str:
    model: Any = Config
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        optional = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
        if isinstance(annotation, types.UnionType) and len(optional) == 1:  # an optional section: Model | None
            annotation = optional[0]
        if getattr(annotation, "__origin__", None) is dict:  # zones: name -> ZoneConfig
            annotation = getattr(annotation, "__args__", (None, None))[1]
            if parts:
                parts.pop(0)
        elif getattr(annotation, "__origin__", None) is list:  # arming.schedule: [window, ...]
            annotation = getattr(annotation, "__args__", (None,))[0]
            if parts:
                parts.pop(0)
        else:  # an optional section: Model | None
            members = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    # A field is written under its alias where it has one (an arming window's from, to, set).
    names = [field.alias or name for name, field in model.model_fields.items() if name != "legacy_zone"]
    if model is Config:
        names += ["mask", "gpio"]  # the top-level form of a config without zones:
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (expected one of: {', '.join(names)})"


def update_config_file(path: str | Path, values: dict[str, Any]) -> Path:
    """Set dotted keys (``"detection.threshold"``) in a config file in place; return the backup's path.

    Comments, key order and layout are kept (ruamel.yaml round-trips the
    file). The result is validated before anything is written; the old file
    is copied to ``<name>.bak`` first, and the new one replaces it atomically
    with the old file's permissions.
    """
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
    yaml_rt, data = load_round_trip(path)
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = CommentedMap()
            node = node[part]
        node[key] = value
    return write_round_trip(path, yaml_rt, data)


def load_round_trip(path: Path) -> tuple[Any, Any]:
    """The file as ruamel.yaml's round-trip mapping (comments and order kept), and the YAML object to dump it with.

    Edit the mapping in place and hand both to :func:`write_round_trip`.
    """
    from ruamel.yaml import YAML, YAMLError
    from ruamel.yaml.comments import CommentedMap

    text = path.read_text(encoding="utf-8")
    yaml_rt = YAML(typ="rt")
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096  # never re-wrap a long line the user wrote on one
    # Keep `null` as written: ruamel would otherwise leave the value empty.
    yaml_rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    try:
        data = yaml_rt.load(text)
    except YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {str(exc).splitlines()[0]}"]) from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError([f"{path}: expected a mapping of sections (source:, detection:, ...), got {_kind(data)}"])
    return yaml_rt, data


def write_round_trip(path: Path, yaml_rt: Any, data: Any, *, check: Callable[[Config], None] | None = None) -> Path:
    """Validate the edited mapping, copy the old file to ``<name>.bak``, replace it atomically; return the backup.

    ``check(config)`` may refuse what the model alone cannot see (raise ConfigError): nothing is written then.
    """
    import contextlib
    import io
    import os
    import shutil
    import tempfile

    out = io.StringIO()
    yaml_rt.dump(data, out)
    new_text = out.getvalue()
    config = parse_config(new_text, name=str(path), base_dir=path.resolve().parent)
    if check is not None:
        check(config)
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copymode(path, tmp)
        # And its owner and group: an installed config is root:monitor 0640, and a copy owned by
        # root:root would lock the service out of it (`sudo monitor tune --write`, then reload).
        old = path.stat()
        with contextlib.suppress(PermissionError):
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
