"""Zones end to end: real video written here, the real pipeline, gpiozero's mock pins."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable, read_events
from monitor.status import EventRecord, FrameStatus
from tests.scenes import HEIGHT, WIDTH, background, object_patch, other_patch, write_scene

LEFT, RIGHT = (10, 40), (100, 40)  # where the cup goes: inside the left zone, inside the right zone
ZONES = f"""
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  gate:
    mask: {{include: [[[0, 20], [75, 20], [75, 100], [0, 100]]]}}
    gpio: {{pin: 17}}
  door:
    mask: {{units: fraction, include: [[[0.55, 0.15], [1, 0.15], [1, 0.85], [0.55, 0.85]]]}}
    detection: {{threshold: 0.8}}
    gpio: {{pin: 27, active_high: false}}
  porch:
    mask: {{include: [[[60, 0], [100, 0], [100, 20], [60, 20]]]}}
events: {{log: events.jsonl, snapshots: snapshots}}
"""


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(state.state) for state in factory.pin(pin).states]


class Recorder:
    """A listener keeping every frame's verdict words and every record."""

    def __init__(self) -> None:
        self.words: list[dict[str, str]] = []
        self.records: list[EventRecord] = []

    def on_frame(self, status: FrameStatus) -> None:
        self.words.append({verdict.zone: verdict.word for verdict in status.zones})

    def on_event(self, record: EventRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def run(folder: Path, factory: MockFactory, *listeners: object) -> Monitor:
    path = folder / "config.yaml"
    monitor = Monitor(
        load_config(path),
        config_path=path,
        realtime=False,
        pin_factory=factory,
        listeners=list(listeners),  # type: ignore[arg-type]
    )
    monitor.run()
    return monitor


def test_two_change_zones_fire_independently_each_on_its_own_pin(tmp_path: Path, factory: MockFactory) -> None:
    cup = object_patch()
    write_scene(tmp_path, frames=60, placements=[(range(10, 20), LEFT, cup), (range(30, 40), RIGHT, cup)])
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    (tmp_path / "config.yaml").write_text(ZONES)
    recorder = Recorder()
    run(tmp_path, factory, recorder)

    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e["zone"], e["frame"]) for e in events] == [
        ("event_start", "gate", 12),
        ("event_end", "gate", 22),
        ("event_start", "door", 32),
        ("event_end", "door", 42),
    ]
    # Each pin followed its own zone only; the door's relay board is active low.
    assert levels(factory, 17) == [False, True, False]
    assert levels(factory, 27) == [False, True, False, True]  # the mock pin starts low: driven high (off) at once
    assert [w["gate"] for w in recorder.words[30:40]] == ["unchanged"] * 10  # the door's cup is not the gate's
    assert all(w["porch"] == "unchanged" for w in recorder.words[2:])  # a zone with no pin, logged only
    # One picture per event: every zone outlined in its own colour, the one that fired drawn thicker.
    snapshot = cv2.imread(events[2]["snapshot"])
    assert snapshot is not None and snapshot.shape == (HEIGHT, 2 * WIDTH + 4, 3)
    row = snapshot[80].astype(int)  # BGR, across the gate's right edge (x 75) and the door's left edge (x 88)
    door_blue = row[82:94, 0] - row[82:94, 2] > 40
    gate_amber = row[70:80, 2] - row[70:80, 0] > 40
    assert door_blue.sum() >= 5 and 1 <= gate_amber.sum() <= 3  # the door bold in blue, the gate thin in amber


def test_replay_scores_one_row_per_zone_per_frame(tmp_path: Path, factory: MockFactory) -> None:
    write_scene(tmp_path, frames=20, placements=[(range(8, 14), RIGHT, object_patch())])
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    (tmp_path / "config.yaml").write_text(ZONES)
    with open(tmp_path / "scores.csv", "w", newline="") as out:
        run(tmp_path, factory, ScoreTable(out))
    rows = list(csv.DictReader((tmp_path / "scores.csv").read_text().splitlines()))
    assert len(rows) == 20 * 3
    assert [r["zone"] for r in rows[:3]] == ["gate", "door", "porch"]
    door = [r for r in rows if r["zone"] == "door"]
    assert [r["state"] for r in door[:2]] == ["settling", "settling"]
    assert [int(r["below"]) for r in door] == [0] * 8 + [1] * 6 + [0] * 6
    assert all(int(r["changed_pixels"]) > 0 for r in door[8:14]) and int(door[5]["changed_pixels"]) == 0


SHELF = f"""
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}
detection: {{threshold: 0.8, trigger_frames: 3, settle_frames: 2}}
zones:
  shelf:
    mask: {{include: [[[95, 35], [150, 35], [150, 85], [95, 85]]]}}
    states: {{full: full.png, empty: empty.png}}
    gpio: {{pin: 22, on_states: [empty, unknown]}}
events: {{log: events.jsonl, snapshots: snapshots}}
"""


def test_a_state_zone_walks_full_empty_unknown_full_with_its_pin(tmp_path: Path, factory: MockFactory) -> None:
    cup, other = object_patch(), other_patch()
    empty = background()
    full = empty.copy()
    full[40 : 40 + cup.shape[0], 100 : 100 + cup.shape[1]] = cup
    cv2.imwrite(str(tmp_path / "full.png"), full)
    cv2.imwrite(str(tmp_path / "empty.png"), empty)
    write_scene(
        tmp_path,
        frames=80,
        placements=[(range(0, 20), RIGHT, cup), (range(40, 60), RIGHT, other), (range(60, 80), RIGHT, cup)],
    )
    (tmp_path / "config.yaml").write_text(SHELF)
    recorder = Recorder()
    run(tmp_path, factory, recorder)

    states = [e for e in read_events(tmp_path / "events.jsonl") if e["type"] == "state"]
    assert [(e["state"], e["previous"], e["frame"]) for e in states] == [
        ("full", None, 4),  # two settle frames, then three frames of full
        ("empty", "full", 22),
        ("unknown", "empty", 42),
        ("full", "unknown", 62),
    ]
    assert all(e["zone"] == "shelf" and e["snapshot"] for e in states)
    assert states[1]["scores"]["empty"] > 0.9 > states[1]["scores"]["full"]
    assert max(states[2]["scores"].values()) < 0.8
    assert [w["shelf"] for w in recorder.words[:2]] == ["settling", "settling"]
    assert levels(factory, 22) == [False, True, False]  # on from empty through unknown, off at full again


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_capture_reference_writes_a_state_zones_picture(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for index in range(5):
        noisy = background().astype(int) + rng.integers(-3, 4, (HEIGHT, WIDTH))
        cv2.imwrite(str(frames / f"{index:03d}.png"), np.clip(noisy, 0, 255).astype(np.uint8))
    config = SHELF.replace("kind: opencv, device: scene.avi", "kind: images, device: frames")
    (tmp_path / "config.yaml").write_text(config)

    result = cli(
        "capture-reference", "config.yaml", "--zone", "shelf", "--state", "empty", "--frames", "5", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    written = cv2.imread(str(tmp_path / "empty.png"), cv2.IMREAD_GRAYSCALE)
    assert written is not None and np.abs(written.astype(int) - background()).max() <= 3  # the median
    assert not (tmp_path / "full.png").exists()

    wrong = cli("capture-reference", "config.yaml", "--zone", "shelf", "--state", "open", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "monitor: error: config.yaml: zones.shelf.states.open: no such state (states: full, empty)"
    )


def test_check_names_each_zone_and_the_pictures_still_to_take(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(SHELF)
    result = cli("check", "config.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok", "zone shelf: state states full, empty, threshold 0.8, pin 22"]
    assert "monitor capture-reference config.yaml --zone shelf --state full" in result.stderr
    assert "monitor capture-reference config.yaml --zone shelf --state empty" in result.stderr


def test_tune_suggests_per_change_zone_and_shows_a_state_zones_margin(tmp_path: Path) -> None:
    cup = object_patch()
    write_scene(tmp_path, frames=40, placements=[(range(30, 34), RIGHT, cup)])
    empty = background()
    full = empty.copy()
    full[40 : 40 + cup.shape[0], 100 : 100 + cup.shape[1]] = cup
    cv2.imwrite(str(tmp_path / "reference.png"), empty)
    cv2.imwrite(str(tmp_path / "full.png"), full)
    cv2.imwrite(str(tmp_path / "empty.png"), empty)
    shelf = SHELF.split("zones:\n")[1].split("events:")[0]
    config = ZONES.replace("zones:\n", "zones:\n" + shelf).replace(
        "gpio: {pin: 27, active_high: false}", "gpio: {pin: 23}"
    )
    (tmp_path / "config.yaml").write_text(config)

    result = cli("tune", "config.yaml", "--frames", "40", "--write", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "zone shelf (state):" in out and "matched full 4, empty 36, unknown 0" in out and "margin 0.6" in out
    assert "zone door (change):" in out and "4 of 40 frames" in out
    tuned = load_config(tmp_path / "config.yaml")
    door = tuned.zones["door"].detection
    assert door.threshold < door.clear_threshold < 1 and door.threshold != 0.8
    assert tuned.zones["shelf"].detection.threshold == 0.85  # a state zone's threshold is left as it was
    assert (tmp_path / "config.yaml.bak").read_text() == config


def test_a_reload_keeps_an_open_event_of_a_kept_zone_and_ends_one_of_a_removed_zone(
    tmp_path: Path, factory: MockFactory
) -> None:
    cup = object_patch()
    write_scene(tmp_path, frames=50, placements=[(range(5, 50), LEFT, cup), (range(5, 50), RIGHT, cup)])
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    path = tmp_path / "config.yaml"
    path.write_text(ZONES)

    class Reloader(Recorder):
        def on_frame(self, status: FrameStatus) -> None:
            super().on_frame(status)
            if status.frame == 20:
                path.write_text(ZONES.replace("  gate:", "  gone:").replace("[0, 20], [75, 20]", "[0, 21], [75, 21]"))
                monitor.reload()

    reloader = Reloader()
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory, listeners=[reloader])
    monitor.run()

    events = [(e["type"], e["zone"], e.get("reason")) for e in read_events(tmp_path / "events.jsonl")]
    assert events == [
        ("event_start", "gate", None),
        ("event_start", "door", None),
        ("event_end", "gate", "reload"),  # the zone is gone
        ("event_start", "gone", None),  # a new zone on the same place: a new event after it settles
        ("event_end", "gone", "source ended"),
        ("event_end", "door", "source ended"),  # kept across the reload
    ]
    assert levels(factory, 27) == [False, True, False, True]  # the door's relay stayed on across the reload


@pytest.mark.parametrize("kind", ["change", "state"])
def test_hooks_and_mqtt_json_carry_the_zone(kind: str) -> None:
    from monitor.integrations.hooks import hook_environment

    if kind == "state":
        record = EventRecord(
            type="state", time=1.0, frame=3, zone="shelf", extra={"state": "empty", "previous": "full"}
        )
        expected = {"MONITOR_ZONE": "shelf", "MONITOR_STATE": "empty", "MONITOR_PREVIOUS_STATE": "full"}
        assert set(record.to_json()) == {"type", "time", "frame", "zone", "snapshot", "state", "previous"}
    else:
        record = EventRecord(type="event_start", time=1.0, frame=3, zone="door", score=0.5)
        expected = {"MONITOR_ZONE": "door", "MONITOR_STATE": "", "MONITOR_PREVIOUS_STATE": ""}
    env = hook_environment(record, base={})
    assert {key: env[key] for key in expected} == expected
    assert json.loads(json.dumps(record.to_json()))["zone"] == record.zone


# --- what counts as a change: a minimum changed area, and activity zones (issue 23) -------------


def small_object() -> np.ndarray:
    """The cup at 12x8 pixels: 96 pixels, 0.5 % of the 160x120 frame."""
    return cv2.resize(object_patch(), (12, 8), interpolation=cv2.INTER_AREA)


def whole_frame(area: str) -> str:
    return (
        f"source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}\n"
        "reference: reference.png\n"
        "detection: {threshold: 0.95, clear_threshold: 0.955, trigger_frames: 3, clear_frames: 3, settle_frames: 2"
        f"{area}}}\ngpio: {{pin: 17}}\nevents: {{log: events.jsonl, snapshots: null}}\n"
    )


def test_a_small_object_in_a_big_zone_is_an_event_with_min_area_only(tmp_path: Path, factory: MockFactory) -> None:
    write_scene(tmp_path, frames=60, placements=[(range(20, 40), (30, 50), small_object())])
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    (tmp_path / "config.yaml").write_text(whole_frame(""))
    run(tmp_path, factory)
    assert not (tmp_path / "events.jsonl").exists() or read_events(tmp_path / "events.jsonl") == []

    (tmp_path / "config.yaml").write_text(whole_frame(", min_area: 100"))
    run(tmp_path, MockFactory())
    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e["frame"]) for e in events] == [("event_start", 22), ("event_end", 42)]
    assert events[0]["score"] > 0.95  # the mean hardly moved: the area did it
    assert events[0]["changed_pixels"] >= 100 and events[1]["changed_pixels"] < 100


def test_min_area_as_a_share_of_the_zone_and_its_config_errors(tmp_path: Path) -> None:
    from monitor.config import parse_config
    from monitor.exc import ConfigError
    from monitor.mask import zone_masks

    config = parse_config(whole_frame(', min_area: "0.5%"'))
    assert config.zones["main"].detection.min_area == "0.5%"
    too_big = parse_config(
        "zones: {bed: {mask: {include: [[[0, 0], [10, 0], [10, 10], [0, 10]]]}, detection: {min_area: 500}}}"
    )
    with pytest.raises(ConfigError) as info:
        zone_masks(too_big)
    assert info.value.problems == [
        "zones.bed.detection.min_area: 500 pixels is more than the 121 pixels the zone watches"
    ]


def moving_cup(index: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """The cup slides right (frames 0-29), stands still (30-109), slides back left (110-139)."""
    if index < 30:
        x = 5 + 3 * index
    elif index < 110:
        x = 92
    else:
        x = 92 - 3 * (index - 109)
    return [((x, 60), object_patch())]


BELT = f"""
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}
detection: {{trigger_frames: 3, settle_frames: 2}}
zones:
  belt:
    mask: {{include: [[[0, 50], [160, 50], [160, 110], [0, 110]]]}}
    activity: {{compare_seconds: 0.2, still_after: 2, min_area: "1%"}}
    gpio: {{pin: 22, on_states: [still]}}
events: {{log: events.jsonl, snapshots: null}}
"""


def test_an_activity_zone_goes_still_when_the_movement_stops_and_moving_when_it_starts(
    tmp_path: Path, factory: MockFactory
) -> None:
    from tests.scenes import write_moving

    write_moving(tmp_path, frames=140, where=moving_cup)
    (tmp_path / "config.yaml").write_text(BELT)  # no reference picture: an activity zone needs none
    recorder = Recorder()
    run(tmp_path, factory, recorder)

    states = [(e["state"], e["previous"], e["frame"]) for e in read_events(tmp_path / "events.jsonl")]
    # Moving from the third frame with an earlier one 0.2 s (5 frames) back; the last movement is
    # frame 33 against 28, so still 2 s (50 frames) later; moving again three frames into the return.
    assert [(state, previous) for state, previous, _ in states] == [
        ("moving", None),
        ("still", "moving"),
        ("moving", "still"),
    ]
    assert [frame for *_, frame in states] == pytest.approx([7, 83, 112], abs=2)
    assert [w["belt"] for w in recorder.words[2:5]] == ["unknown"] * 3  # nothing to compare with yet
    assert levels(factory, 22) == [False, True, False]  # on while still, as on_states asks
