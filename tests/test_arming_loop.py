"""Arming in the frame loop: real video files, replayed at a chosen start time against a schedule, mock pins."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from monitor.actions import Actions
from monitor.arming_state import ArmingState
from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable, read_events
from monitor.status import EventRecord, FrameStatus
from monitor.watch import Watches
from tests import statuses
from tests.scenes import background, object_patch, write_clip

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 12, 2, 21, 59, 30, tzinfo=BERLIN).timestamp()  # frame i of a 1 fps clip: START + i s
RIGHT = "[[[80, 0], [160, 0], [160, 120], [80, 120]]]"  # where the cup lands
LEFT = "[[[0, 0], [80, 0], [80, 120], [0, 120]]]"


def write_scene(folder: Path, *, schedule: str = "", extra_zones: str = "") -> Path:
    """100 frames at 1 fps, the cup in the right half from frame 10 on; zones door (pin 17) and left (pin 27)."""
    write_clip(folder, frames=100, changed=[range(10, 100)], fps=1.0)
    config = folder / "config.yaml"
    config.write_text(
        f"""
source: {{kind: opencv, device: clip.avi, width: 160, height: 120, fps: 25}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  door: {{mask: {{include: {RIGHT}}}, gpio: {{pin: 17, on_fault: on}}}}
  left: {{mask: {{include: {LEFT}}}, gpio: {{pin: 27, on_fault: on}}}}
{extra_zones}
events: {{log: events.jsonl, snapshots: null}}
arming:
  state_file: armed.json
  timezone: Europe/Berlin
  schedule: [{schedule}]
"""
    )
    return config


VISIT = '{name: visit, from: "22:00", to: "22:01", zones: [door], set: disarmed}'  # frames 30-89


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(state.state) for state in factory.pin(pin).states]


def replay(config_path: Path, factory: MockFactory, *, persist: bool = False, **kwargs: object) -> Monitor:
    config = load_config(config_path)
    arming = ArmingState.from_config(config, persist=persist)
    monitor = Monitor(
        config,
        config_path=config_path,
        realtime=False,
        pin_factory=factory,
        arming=arming,
        **kwargs,  # type: ignore[arg-type]
    )
    monitor.source.start_time = START
    monitor.run()
    return monitor


def test_a_schedule_window_ends_the_event_holds_the_pin_and_arming_again_fires_anew(
    tmp_path: Path, factory: MockFactory
) -> None:
    config = write_scene(tmp_path, schedule=VISIT)
    with open(tmp_path / "scores.csv", "w", newline="") as scores:
        replay(config, factory, listeners=[ScoreTable(scores)])

    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e["frame"], e.get("reason")) for e in events] == [
        ("event_start", 12, None),
        ("disarmed", 30, 'schedule "visit" until 22:01'),
        ("event_end", 30, "disarmed"),
        ("armed", 90, "default until thu 22:00"),
        ("event_start", 92, None),  # the cup is still there: three frames below, a new event
        ("event_end", 99, "source ended"),
    ]
    disarmed = events[1]
    assert disarmed["zone"] == "door" and disarmed["by"] == "schedule"
    assert datetime.fromisoformat(disarmed["time"]).timestamp() == START + 30
    assert datetime.fromisoformat(disarmed["until"]).timestamp() == START + 90
    assert levels(factory, 17) == [False, True, False, True, False]  # nothing while disarmed
    assert levels(factory, 27) == [False]

    # Still scored while disarmed: the CSV has the door's low scores for every frame.
    rows = [r for r in csv.DictReader((tmp_path / "scores.csv").read_text().splitlines()) if r["zone"] == "door"]
    assert [int(r["frame"]) for r in rows] == list(range(100))
    assert all(float(r["score"]) < 0.85 and r["below"] == "1" for r in rows[30:90])
    assert {r["state"] for r in rows[31:90]} == {"unchanged"}


def test_a_manual_disarm_from_the_state_file_holds_across_a_restart(tmp_path: Path, factory: MockFactory) -> None:
    config_path = write_scene(tmp_path)
    config = load_config(config_path)
    given = ArmingState.from_config(config)
    assert given is not None
    given.command(armed=False, zone="door", by="cli")
    given.close()

    replay(config_path, factory, persist=True)  # a new monitor, reading the file
    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e["zone"], e["frame"], e.get("by")) for e in events] == [("disarmed", "door", 0, "cli")]
    assert events[0]["reason"] == "manual" and events[0]["until"] is None
    assert levels(factory, 17) == [False]


def test_a_disarmed_state_zone_records_nothing_and_follows_its_state_again_when_armed(
    tmp_path: Path, factory: MockFactory
) -> None:
    cup = background()
    cup[60:100, 90:140] = object_patch()
    cv2.imwrite(str(tmp_path / "cup.png"), cup)
    spot = f"""  spot:
    mask: {{include: {RIGHT}}}
    states: {{empty: reference.png, cup: cup.png}}
    gpio: {{pin: 22, on_states: [cup]}}"""
    visit = '{name: visit, from: "22:00", to: "22:01", zones: [spot], set: disarmed}'
    config = write_scene(tmp_path, schedule=visit, extra_zones=spot)
    replay(config, factory)

    records = [e for e in read_events(tmp_path / "events.jsonl") if e["zone"] == "spot"]
    assert [(e["type"], e["frame"], e.get("state")) for e in records] == [
        ("state", 4, "empty"),  # settle 2, then three frames
        ("state", 12, "cup"),
        ("disarmed", 30, None),
        ("armed", 90, None),  # no state line in between, and none after: it is still the cup
    ]
    assert levels(factory, 22) == [False, True, False, True, False]


def test_replay_start_time_puts_the_recording_in_the_schedule(tmp_path: Path) -> None:
    config = write_scene(tmp_path, schedule=VISIT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "replay",
            str(config),
            "--source",
            str(tmp_path / "clip.avi"),
            "--start-time",
            "2026-12-02T21:59:30",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"GPIOZERO_PIN_FACTORY": "mock", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    events = read_events(tmp_path / "events.jsonl")
    arming = [(e["type"], e["frame"], datetime.fromisoformat(e["time"]).timestamp()) for e in events if "by" in e]
    assert arming == [("disarmed", 30, START + 30), ("armed", 90, START + 90)]
    assert not (tmp_path / "armed.json").exists()  # a replay leaves the state file alone


def test_replay_refuses_a_start_time_that_is_not_one(tmp_path: Path) -> None:
    config = write_scene(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", str(config), "--source", "clip.avi", "--start-time", "tonight"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--start-time: expected a time such as 2026-12-02T21:55" in done.stderr


def test_a_camera_fault_leaves_a_disarmed_zones_pin_inactive(tmp_path: Path, factory: MockFactory) -> None:
    config = load_config(write_scene(tmp_path))
    watches = Watches.load(config)
    with Actions(config, watches, pin_factory=factory) as actions:
        image = np.zeros((120, 160), np.uint8)
        door = dataclasses.replace(statuses.change("door"), armed=False)
        actions.act(image, [door, statuses.change("left")], frame=0, now=START, seconds=0.01)
        actions.camera_lost(RuntimeError("unplugged"), frame=0, now=START + 1)
        assert levels(factory, 27) == [False, True]  # gpio.on_fault: on
        assert levels(factory, 17) == [False]
    assert levels(factory, 27) == [False, True, False]


@pytest.mark.parametrize("kind", ["video", "images"])
def test_the_frame_times_of_a_replay_start_at_start_time(tmp_path: Path, kind: str) -> None:
    from monitor.sources import make_source

    config = load_config(write_scene(tmp_path))  # source.fps 25
    clip = write_clip(tmp_path / "short", frames=5, changed=[], fps=2.0)
    device, step = str(clip.video), 0.5  # a video file's own frame rate
    if kind == "images":
        folder = tmp_path / "frames"
        folder.mkdir()
        for index in range(5):
            cv2.imwrite(str(folder / f"{index:03d}.png"), background())
        device, step = str(folder), 1 / 25  # an image folder at source.fps
    source = make_source(config.source, realtime=False, device=device)
    source.start_time = START
    with source:
        times = [frame.time for frame in iter(source.read, None)]
    assert times == pytest.approx([START + i * step for i in range(5)], abs=1e-6)


def test_a_reload_brings_a_new_schedule_into_force(tmp_path: Path, factory: MockFactory) -> None:
    config_path = write_scene(tmp_path)  # no window at first

    class ReloadAt:
        """At frame 20, write a schedule into the config and ask for a reload (as SIGHUP would)."""

        def on_frame(self, status: FrameStatus) -> None:
            if status.frame == 20:
                config_path.write_text(config_path.read_text().replace("schedule: []", f"schedule: [{VISIT}]"))
                monitor.reload()

        def on_event(self, record: EventRecord) -> None: ...

        def close(self) -> None: ...

    config = load_config(config_path)
    monitor = Monitor(
        config,
        config_path=config_path,
        realtime=False,
        pin_factory=factory,
        arming=ArmingState.from_config(config, persist=False),
        listeners=[ReloadAt()],
    )
    monitor.source.start_time = START
    monitor.run()
    lines = [(e["type"], e["frame"]) for e in read_events(tmp_path / "events.jsonl") if e["zone"] == "door"]
    assert lines[:4] == [("event_start", 12), ("disarmed", 30), ("event_end", 30), ("armed", 90)]
