"""The whole pipeline end to end: real video files, real images, gpiozero's mock pins."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable, read_events
from monitor.exc import ReferenceImageError
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


def test_scores_csv_has_a_row_per_frame(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=30, changed=[range(10, 20)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    with open(tmp_path / "scores.csv", "w", newline="") as scores:
        replay(path, factory, listeners=[ScoreTable(scores)])
    rows = list(csv.DictReader((tmp_path / "scores.csv").read_text().splitlines()))
    assert list(rows[0]) == ["frame", "time", "zone", "score", "changed_fraction", "changed_pixels", "below", "state"]
    assert [int(r["frame"]) for r in rows] == list(range(30))
    assert {r["zone"] for r in rows} == {"main"}
    below = [int(r["below"]) for r in rows]
    assert below[:10] == [0] * 10 and below[10:20] == [1] * 10 and below[20:] == [0] * 10
    assert all((float(r["score"]) < 0.85) == bool(int(r["below"])) for r in rows)
    states = [r["state"] for r in rows]
    assert states[:2] == ["settling"] * 2  # as the status page and MQTT say it
    assert states[11] == "unchanged" and states[12] == "changed" and states[22] == "unchanged"


def test_image_folder_source_with_a_corrupt_file(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=1, changed=[])
    frames = tmp_path / "frames"
    frames.mkdir()
    base = cv2.imread(str(clip.reference), cv2.IMREAD_GRAYSCALE)
    for i in range(12):
        image = base.copy()
        if 4 <= i < 9:
            image[60:100, 90:140] = 255 - image[60:100, 90:140]
        cv2.imwrite(str(frames / f"f{i:03d}.png"), image)
    (frames / "f005.png").write_bytes(b"\x89PNG but not really")
    (frames / "f010.png").unlink()
    cv2.imwrite(str(frames / "f010.png"), np.zeros((50, 50), np.uint8))  # wrong size
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip).replace("kind: opencv, device: clip.avi", "kind: images, device: frames"))
    monitor = replay(path, factory)
    assert monitor.frames == 10  # 12 files, one undecodable, one of the wrong size
    assert [e["type"] for e in read_events(tmp_path / "events.jsonl")] == ["event_start", "event_end"]


def test_missing_reference_names_the_fix(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=5, changed=[])
    clip.reference.unlink()
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    with pytest.raises(ReferenceImageError, match=r"no such file; capture one with: monitor capture-reference"):
        Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory)


def test_reference_of_another_size_is_refused(tmp_path: Path, factory: MockFactory) -> None:
    clip = write_clip(tmp_path, frames=5, changed=[])
    cv2.imwrite(str(clip.reference), np.zeros((10, 20), np.uint8))
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    with pytest.raises(ReferenceImageError, match=r"is 20x10, expected the frame size 160x120"):
        Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory)


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
