"""The config loader: defaults, path resolution and one clear line per problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import Config, load_config, parse_config
from monitor.exc import ConfigError

PROJECT = Path(__file__).resolve().parents[1]

WriteConfig = Callable[[str], Path]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_the_shipped_example_is_valid() -> None:
    config = load_config(PROJECT / "config.yaml")
    assert config.source.kind == "picamera"
    assert config.detection.threshold == 0.90
    assert config.zones["main"].gpio.on_fault == "off"  # YAML's bare `off` is read as the word, not false


def test_empty_file_gives_the_documented_defaults() -> None:
    config = parse_config("")
    assert config == Config()
    assert (config.source.width, config.source.height, config.source.fps) == (640, 480, 5.0)
    assert (config.detection.threshold, config.detection.clear_threshold) == (0.90, 0.93)
    assert (config.detection.trigger_frames, config.detection.clear_frames) == (3, 5)
    gpio = config.zones["main"].gpio
    assert (gpio.pin, gpio.active_high, gpio.mode) == (17, True, "hold")


def test_models_are_frozen() -> None:
    config = parse_config("")
    with pytest.raises(ValueError):
        config.detection.threshold = 0.5  # type: ignore[misc]


def test_relative_paths_resolve_against_the_config_folder(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config("reference: ref/front.png\nevents: {log: logs/events.jsonl, snapshots: null}\n")
    config = load_config(path)
    assert config.reference.path == tmp_path / "ref" / "front.png"
    assert config.events.log == tmp_path / "logs" / "events.jsonl"
    assert config.events.snapshots is None


def test_absolute_paths_are_kept(write_config: WriteConfig) -> None:
    config = load_config(write_config("reference: /var/lib/monitor/reference.png\n"))
    assert config.reference.path == Path("/var/lib/monitor/reference.png")


def test_reference_mapping_form(write_config: WriteConfig, tmp_path: Path) -> None:
    config = load_config(write_config("reference: {path: r.png, adapt: {enabled: true, rate: 0.02}}\n"))
    assert config.reference.path == tmp_path / "r.png"
    assert config.reference.adapt.enabled and config.reference.adapt.rate == 0.02


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detection: {threshold: 1.4}", "config.yaml: detection.threshold: must be between 0 and 1, got 1.4"),
        ("detection: {clear_threshold: -0.1}", "config.yaml: detection.clear_threshold: must be between 0 and 1"),
        (
            "detection: {threshold: 0.95, clear_threshold: 0.9}",
            "config.yaml: detection.clear_threshold: must be at or above threshold (0.95), got 0.9",
        ),
        ("detection: {trigger_frames: 0}", "config.yaml: detection.trigger_frames: must be greater than or equal"),
        ("detection: {method: mse}", "config.yaml: detection.method: must be 'ssim' or 'ssim-structure', got 'mse'"),
        ("detection: {threshhold: 0.8}", "config.yaml: detection.threshhold: unknown key (did you mean 'threshold'?)"),
        ("camera: {}", "config.yaml: camera: unknown key"),
        ("source: {kind: webcam}", "config.yaml: source.kind: must be 'picamera', 'opencv' or 'images', got 'webcam'"),
        ("source: {fps: 0}", "config.yaml: source.fps: must be a number above 0, got 0"),
        ("source: {width: wide}", "config.yaml: source.width: must be a valid integer"),
        ("source: {device: [0]}", "config.yaml: source.device: must be a camera index, a file path"),
        ("gpio: {pin: 99}", "config.yaml: gpio.pin: must be a BCM pin number between 0 and 53, got 99"),
        ("gpio: {mode: blink}", "config.yaml: gpio.mode: must be 'hold' or 'pulse', got 'blink'"),
        ("gpio: {pulse_seconds: -1}", "config.yaml: gpio.pulse_seconds: must be a number above 0, got -1"),
        ("events: {log: null}", "config.yaml: events.log: must be a file path, got null"),
        ("events: {keep_snapshots: 0}", "config.yaml: events.keep_snapshots: must be greater than or equal to 1"),
        ("reference: 5", "config.yaml: reference: must be an image path, or a mapping with path: and adapt:"),
        ("mask: {units: inches}", "config.yaml: mask.units: must be 'pixels' or 'fraction', got 'inches'"),
        ("- a\n- b\n", "config.yaml: expected a mapping of sections (source:, detection:, ...), got a list"),
        ("detection: {threshold: [0.9\n", "config.yaml: line 2: not valid YAML"),
    ],
)
def test_each_problem_names_the_key_and_what_was_expected(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems("source: {kind: usb, fps: -2}\ndetection: {threshold: 3}\ngpio: {mode: x}\n")
    assert [line.split(":")[1].strip() for line in found] == [
        "source.kind",
        "source.fps",
        "detection.threshold",
        "gpio.mode",
    ]


def test_polygon_outside_the_frame() -> None:
    found = problems("source: {width: 320, height: 240}\nmask: {include: [[[0, 0], [400, 0], [0, 100]]]}\n")
    assert found == [
        "config.yaml: mask.include[0]: point [400, 0] is outside the frame "
        "(expected pixels of the 320x240 frame: x 0-320, y 0-240)"
    ]


def test_polygon_with_too_few_points() -> None:
    found = problems("mask: {exclude: [[[0, 0], [10, 10]]]}\n")
    assert found == ["config.yaml: mask.exclude[0]: a polygon needs at least 3 points, got 2"]


def test_fraction_polygons_must_lie_in_0_1() -> None:
    assert parse_config("mask: {units: fraction, include: [[[0, 0], [1, 0], [0.5, 1]]]}\n")
    found = problems("mask: {units: fraction, include: [[[0, 0], [1.5, 0], [0.5, 1]]]}\n")
    assert "0-1 fractions" in found[0]


def test_a_non_number_point_names_its_place() -> None:
    found = problems('mask: {include: [[[0, "a"], [1, 2], [3, 3]]]}\n')
    assert found[0].startswith("config.yaml: mask.include[0][0][1]: must be a valid number")


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_problems_name_the_actual_file(write_config: WriteConfig) -> None:
    path = write_config("detection: {threshold: 2}\n", "garage.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith(f"{path}: detection.threshold:")


def test_yaml_on_off_words_for_on_fault() -> None:
    assert parse_config("gpio: {on_fault: on}").zones["main"].gpio.on_fault == "on"
    assert parse_config("gpio: {on_fault: keep}").zones["main"].gpio.on_fault == "keep"


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_config("detection: {threshold: 9}")


def test_default_paths_resolve_against_the_config_folder_too(write_config: WriteConfig, tmp_path: Path) -> None:
    config = load_config(write_config("source: {kind: opencv}\n"))
    assert config.reference.path == tmp_path / "reference.png"
    assert config.events.log == tmp_path / "events.jsonl"
    assert config.events.snapshots == tmp_path / "snapshots"


# --- zones ---------------------------------------------------------------------------------------

SQUARE = "[[[0, 0], [50, 0], [50, 50]]]"


def test_a_zone_takes_the_top_level_detection_and_overrides_its_own_keys() -> None:
    config = parse_config(
        f"detection: {{threshold: 0.8, clear_threshold: 0.85, trigger_frames: 4}}\n"
        f"zones:\n  door: {{mask: {{include: {SQUARE}}}, detection: {{threshold: 0.82}}, gpio: {{pin: 17}}}}\n"
        f"  porch: {{mask: {{include: {SQUARE}}}}}\n"
    )
    door, porch = config.zones["door"], config.zones["porch"]
    assert (door.detection.threshold, door.detection.clear_threshold, door.detection.trigger_frames) == (0.82, 0.85, 4)
    assert (porch.detection.threshold, porch.gpio.pin) == (0.8, None)  # in zones:, no pin unless one is named
    assert not config.legacy_zone and door.kind == porch.kind == "change"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"mask: {{include: {SQUARE}}}\nzones: {{door: {{}}}}",
            "mask: with zones:, each zone has its own mask: move it",
        ),
        ("gpio: {pin: 17}\nzones: {door: {}}", "gpio: with zones:, each zone has its own gpio: move it"),
        (
            "zones: {door: {gpio: {pin: 17}}, gate: {gpio: {pin: GPIO17}}}",
            "zones.gate.gpio.pin: GPIO17 is already the pin of zone 'door'",
        ),
        ("zones: {Door: {}}", "zones: 'Door': must be 1-32 characters of a-z, 0-9, _ and -"),
        ("zones: {door: {}, door: {}}", "line 1: not valid YAML: the key 'door' appears twice in one mapping"),
        ("zones: {}", "zones: needs at least one zone"),
        (
            "zones: {door: {mask: {include: [[[0, 0], [700, 0], [9, 9]]]}}}",
            "zones.door.mask.include[0]: point [700, 0] is outside the frame",
        ),
        (
            "zones: {door: {detection: {threshold: 0.95}}}",
            "zones.door.detection.clear_threshold: must be at or above threshold (0.95)",
        ),
        (
            "zones: {door: {detection: {treshold: 0.9}}}",
            "zones.door.detection.treshold: unknown key (did you mean 'threshold'?)",
        ),
        (
            "zones: {door: {detection: {lightswitch_fraction: 0.8}}}",
            "zones.door.detection.lightswitch_fraction: applies to the whole frame",
        ),
        ("zones: {door: {gpio: {on_states: [open]}}}", "zones.door.gpio.on_states: only for a state zone"),
        (
            "zones: {shelf: {states: {full: a.png}, gpio: {on_states: [empty]}}}",
            "zones.shelf.gpio.on_states: 'empty' is not a state of this zone (expected: full, unknown)",
        ),
        (
            "zones: {shelf: {states: {unknown: a.png}}}",
            "zones.shelf.states.unknown: is the state of a zone that matches none of its states",
        ),
        ("zones: {shelf: {states: {Full: a.png}}}", "zones.shelf.states.'Full': must be 1-32 characters"),
        ("zones: {shelf: {states: {}}}", "zones.shelf.states: a state zone needs at least one state"),
        ("zones: {door: {mask: {inclde: []}}}", "zones.door.mask.inclde: unknown key (did you mean 'include'?)"),
        ("zones: {belt: {activity: {}, states: {x: a.png}}}", "zones.belt.activity: an activity zone has the states"),
        ("zones: {belt: {activity: {}, detection: {min_area: 40}}}", "zones.belt.detection.min_area: an activity zone"),
        ("zones: {belt: {activity: {compare_seconds: 0}}}", "zones.belt.activity.compare_seconds: must be between"),
        ("zones: {bed: {detection: {min_area: -1}}}", "zones.bed.detection.min_area: must be a number of pixels of 1"),
        ("zones: {bed: {detection: {min_area: '120%'}}}", "zones.bed.detection.min_area: must be a share above 0%"),
    ],
)
def test_each_zone_rule_is_one_line_naming_the_zone_and_key(text: str, expected: str) -> None:
    found = problems(text)
    assert any(problem.startswith(f"config.yaml: {expected}") for problem in found), found


def test_a_config_without_zones_names_its_keys_as_written(tmp_path: Path) -> None:
    assert problems("mask: {include: [[[0, 0], [700, 0], [9, 9]]]}") == [
        "config.yaml: mask.include[0]: point [700, 0] is outside the frame (expected pixels of the 640x480 frame: "
        "x 0-640, y 0-480)"
    ]
    assert problems("gpio: {pin: 99}") == ["config.yaml: gpio.pin: must be a BCM pin number between 0 and 53, got 99"]


def test_the_shipped_zones_example_is_valid_once_uncommented() -> None:
    text = (Path(__file__).resolve().parents[1] / "config.yaml").read_text(encoding="utf-8")
    lines, skipping, in_zones = [], False, False
    for line in text.splitlines():
        if line.startswith(("mask:", "gpio:")):
            skipping = True  # the top-level mask and gpio move into the zones
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        if line.startswith("# zones:"):
            in_zones = True
        if (in_zones and line.startswith("#   ")) or line.startswith("# zones:"):
            line = line[2:]
        elif in_zones:
            in_zones = False
        lines.append(line)
    config = parse_config("\n".join(lines))
    assert list(config.zones) == ["door", "shelf", "porch", "belt"] and not config.legacy_zone
    assert config.zones["belt"].kind == "activity"
    assert config.zones["shelf"].kind == "state" and config.zones["door"].detection.threshold == 0.85
