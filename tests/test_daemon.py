"""The whole pipeline end to end: real video files, real images, gpiozero's mock pins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import cv2
from gpiozero.pins.mock import MockFactory

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.status import FrameStatus
from tests.scenes import HEIGHT, WIDTH, clip_config, write_clip

WriteConfig = Callable[[str], Path]


def pin_levels(factory: MockFactory, number: int = 17) -> list[bool]:
    return [bool(s.state) for s in factory.pin(number).states]


def replay(config_path: Path, factory: MockFactory, **kwargs: object) -> Monitor:
    config = load_config(config_path)
    monitor = Monitor(config, config_path=config_path, realtime=False, pin_factory=factory, **kwargs)  # type: ignore[arg-type]
    monitor.run()
    return monitor


def test_replay_finds_each_change_at_the_right_frames(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=80, changed=[range(20, 35), range(55, 65)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    monitor = replay(path, factory)

    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e["frame"]) for e in events] == [
        ("event_start", 22),  # third frame below the threshold
        ("event_end", 37),  # third frame back above the clear threshold
        ("event_start", 57),
        ("event_end", 67),
    ]
    assert {e["zone"] for e in events} == {"main"}  # a config without zones: is one zone, main
    assert monitor.frames == 80
    # The pin: off at start, on for each event, off at the end; nothing else.
    assert pin_levels(factory) == [False, True, False, True, False]
    assert not factory.pin(17).state


def test_event_records_carry_boxes_and_a_snapshot(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=40, changed=[range(10, 30)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    replay(path, factory)
    start, end = read_events(tmp_path / "events.jsonl")
    assert start["score"] < 0.85 and 0 < start["changed_fraction"] <= 1
    x, y, w, h = start["boxes"][0]
    assert x < 140 and x + w > 90 and y < 100 and y + h > 60  # around the cup at (90, 60, 50, 40)
    snapshot = cv2.imread(start["snapshot"])
    assert snapshot is not None and snapshot.shape[0] == HEIGHT and snapshot.shape[1] > 2 * WIDTH
    assert end["start_frame"] == start["frame"] and end["lowest_score"] <= start["score"]
    assert end["reason"] == "clear"


def test_change_outside_the_mask_makes_no_event(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=40, changed=[range(10, 30)])
    path = tmp_path / "config.yaml"
    # Watch only the left half: the cup lands in the right half.
    path.write_text(
        clip_config(clip).replace(
            "[[80, 0], [160, 0], [160, 120], [80, 120]]", "[[0, 0], [80, 0], [80, 120], [0, 120]]"
        )
    )
    monitor = replay(path, factory)
    assert monitor.actions.events == 0
    assert not (tmp_path / "events.jsonl").exists() or read_events(tmp_path / "events.jsonl") == []
    assert pin_levels(factory) == [False]


def test_an_event_open_when_the_recording_ends_is_closed(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=30, changed=[range(20, 30)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    replay(path, factory)
    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert events[1]["reason"] == "source ended" and events[1]["frame"] == 29
    assert pin_levels(factory)[-1] is False


def test_settle_frames_never_start_an_event(tmp_path: Path, factory: MockFactory) -> None:
    # The object is there from the first frame: only frames after settling may count.
    clip = write_clip(tmp_path, frames=20, changed=[range(0, 20)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip).replace("settle_frames: 2", "settle_frames: 10"))
    replay(path, factory)
    (start, _end) = read_events(tmp_path / "events.jsonl")
    assert start["frame"] == 12  # frames 0-9 settle; 10, 11, 12 are the three below


def test_stop_mid_event_closes_it_and_leaves_the_pin_off(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=60, changed=[range(5, 60)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip, loop=True, fps=50))
    monitor = Monitor(load_config(path), config_path=path, realtime=True, pin_factory=factory)
    runner = threading.Thread(target=monitor.run)
    runner.start()
    for _ in range(200):
        if factory.pin(17).state:
            break
        threading.Event().wait(0.05)
    assert factory.pin(17).state, "the event never started"
    monitor.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["type"] == "event_end" and events[-1]["reason"] == "stopped"
    assert pin_levels(factory) == [False, True, False]


class Recorder:
    """A listener that keeps what it hears."""

    def __init__(self) -> None:
        self.states: list[str] = []

    def on_frame(self, status: FrameStatus) -> None:
        self.states.append(status.state)

    def on_event(self, record: object) -> None:
        pass

    def close(self) -> None:
        pass


def test_listeners_see_the_settling_frames_as_settling(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=8, changed=[])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip).replace("settle_frames: 2", "settle_frames: 3"))
    recorder = Recorder()
    replay(path, factory, listeners=[recorder])
    assert recorder.states == ["settling"] * 3 + ["unchanged"] * 5


def test_a_monitor_closed_without_running_releases_the_pin(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=2, changed=[])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    with Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory) as monitor:
        monitor.actions.outputs["main"].on()
        assert factory.pin(17).state
    assert not factory.pin(17).state
    monitor.close()  # a second close does nothing
    from gpiozero import DigitalOutputDevice

    with DigitalOutputDevice(17, pin_factory=factory):  # the pin is free for a new owner
        pass
