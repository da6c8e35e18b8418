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
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.exc import ConfigError

__all__ = [
    "Config",
    "DetectionConfig",
    "EventsConfig",
    "GpioConfig",
    "HooksConfig",
    "HttpConfig",
    "MaskConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "ReferenceConfig",
    "SourceConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
    "update_config_file",
]


def _between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a number above 0")
    return value


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir")
    if value is None or base is None or value.is_absolute():
        return value
    return (Path(base) / value.expanduser()).resolve()


Fraction = Annotated[float, _between(0.0, 1.0)]
Positive = Annotated[float, AfterValidator(_positive)]
Count = Annotated[int, Field(ge=0)]
Point = tuple[float, float]
Polygon = list[Point]


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
    fps: Positive = 5.0
    loop: bool = False
    controls: dict[str, Any] = Field(default_factory=dict)
    capture_timeout: Positive = 2.0
    give_up_seconds: Positive = 20.0
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
    save_seconds: Positive = 300.0


class ReferenceConfig(_Model):
    """The reference image every frame is compared with."""

    path: Annotated[Path, AfterValidator(_resolve)] = Path("reference.png")
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)


class MaskConfig(_Model):
    """The watched region: polygons in, polygons out, and an optional mask image."""

    units: Literal["pixels", "fraction"] = "pixels"
    include: list[Polygon] = Field(default_factory=list)
    exclude: list[Polygon] = Field(default_factory=list)
    image: Annotated[Path | None, AfterValidator(_resolve)] = None


class DetectionConfig(_Model):
    """When a frame counts as changed, and when an event starts and ends."""

    method: Literal["ssim", "ssim-structure"] = "ssim"
    threshold: Fraction = 0.90
    clear_threshold: Fraction = 0.93
    trigger_frames: Annotated[int, Field(ge=1)] = 3
    clear_frames: Annotated[int, Field(ge=1)] = 5
    settle_frames: Count = 10
    local_level: Fraction = 0.5
    min_box_area: Count = 25
    downscale: Annotated[int, Field(ge=1, le=8)] = 1
    lightswitch_fraction: Fraction | None = None
    # Change gating (monitor/gating.py): a frame like the last fully scored one keeps its verdict,
    # at most this many frames in a row; 0 compares every frame.
    max_skip_frames: Count = 10

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
    pulse_seconds: Positive = 1.0
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


class EventsConfig(_Model):
    """Where events and snapshots are written, and how much of them is kept."""

    log: Annotated[Path, AfterValidator(_resolve)] = Path("events.jsonl")
    snapshots: Annotated[Path | None, AfterValidator(_resolve)] = Path("snapshots")
    keep_snapshots: Annotated[int, Field(ge=1)] = 200
    max_snapshot_mb: Positive = 200.0
    max_log_mb: Positive = 10.0
    keep_logs: Annotated[int, Field(ge=1)] = 5


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
    score_interval: Positive = 10.0
    queue_size: Annotated[int, Field(ge=1)] = 100
    keepalive: Annotated[int, Field(ge=5)] = 60


Command = Annotated[list[str], Field(min_length=1)]


class HooksConfig(_Model):
    """Commands run on events: argument lists, no shell, event fields in MONITOR_* variables."""

    on_event_start: Command | None = None
    on_event_end: Command | None = None
    on_state_change: Command | None = None
    on_camera_lost: Command | None = None
    on_camera_found: Command | None = None
    timeout: Positive = 30.0


class HttpConfig(_Model):
    """The status page, JSON API, health check and Prometheus metrics (absent = off)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token: str | None = Field(default=None, min_length=16)
    token_file: Annotated[Path | None, AfterValidator(_resolve)] = None
    history_seconds: Positive = 300.0

    @model_validator(mode="after")
    def _token_off_loopback(self) -> HttpConfig:
        if self.host not in {"127.0.0.1", "localhost", "::1"} and self.token is None and self.token_file is None:
            raise ValueError(
                f"token: required when host is {self.host!r} (not loopback): "
                "set token (16+ characters) or token_file (a file holding it)"
            )
        return self


ZONE_NAME = re.compile(r"[a-z0-9_-]{1,32}")
UNKNOWN = "unknown"  # the state of a state zone whose every reference scores under its threshold
LEGACY_ZONE = "main"  # the one zone of a config without zones:
# Detection keys that belong to the whole frame, not to one zone.
SCENE_DETECTION_KEYS = ("lightswitch_fraction",)


def _zone_name_problem(name: object, what: str) -> str | None:
    if isinstance(name, str) and ZONE_NAME.fullmatch(name):
        return None
    return f"{what} {_show(name)}: must be 1-32 characters of a-z, 0-9, _ and -"


class ZoneConfig(_Model):
    """One watched place: its mask, its detection (top-level defaults filled in), its pin.

    A *change zone* (no ``states``) compares with the scene's reference; a
    *state zone* compares with each of its state references and names the best.
    """

    mask: MaskConfig = Field(default_factory=MaskConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    states: dict[str, Annotated[Path, AfterValidator(_resolve)]] | None = None

    @property
    def kind(self) -> Literal["change", "state"]:
        return "change" if self.states is None else "state"

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
        on_states = self.gpio.on_states
        if on_states is None:
            return self
        if self.states is None:
            raise ValueError(
                "gpio.on_states: only for a state zone (one with states:), a change zone's pin follows its events"
            )
        allowed = [*self.states, UNKNOWN]
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
    zones: dict[str, ZoneConfig]
    events: EventsConfig = Field(default_factory=EventsConfig)
    mqtt: MqttConfig | None = None
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    http: HttpConfig | None = None
    legacy_zone: bool = Field(default=False, exclude=True)

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

    def zone_key(self, name: str) -> str:
        """The prefix of a zone's keys as the user wrote them: ``zones.door.``, or nothing for a legacy config."""
        return "" if self.legacy_zone else f"zones.{name}."

    @property
    def change_zones(self) -> dict[str, ZoneConfig]:
        """The zones that compare with the scene's reference."""
        return {name: zone for name, zone in self.zones.items() if zone.kind == "change"}


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
            zone = {**zone, "detection": {**top, **own}}
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


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError with one line per problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (copy config.yaml from the project and edit it)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_config(text, name=str(path), base_dir=path.resolve().parent)


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
    """PyYAML's safe loader, except that a key written twice in one mapping is an error, not the last one wins."""

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
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(loc: tuple[int | str, ...]) -> str:
    model: Any = Config
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if getattr(annotation, "__origin__", None) is dict:  # zones: name -> ZoneConfig
            annotation = getattr(annotation, "__args__", (None, None))[1]
            if parts:
                parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    names = [name for name in model.model_fields if name != "legacy_zone"]
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
    import io
    import os
    import shutil
    import tempfile

    from ruamel.yaml import YAML, YAMLError
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
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
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = CommentedMap()
            node = node[part]
        node[key] = value
    out = io.StringIO()
    yaml_rt.dump(data, out)
    new_text = out.getvalue()
    parse_config(new_text, name=str(path), base_dir=path.resolve().parent)
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
