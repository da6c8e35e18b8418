"""Lighting: the adapting reference and the light switch, alone and in the daemon on real video files."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from monitor.adapt import LightSwitch, ReferenceAdapter
from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.images import read_gray
from monitor.similarity import Comparator
from tests.scenes import HEIGHT, WIDTH, background, object_patch

CUP = (slice(60, 100), slice(90, 140))  # where tests.scenes puts the cup


def noisy(image: np.ndarray, rng: np.random.Generator, *, gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    out = image.astype(np.float32) * gain + offset + rng.normal(0, 1.5, image.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_video(folder: Path, frames: list[np.ndarray], *, fps: float = 25.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT), isColor=False)
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    cv2.imwrite(str(folder / "reference.png"), background())
    return video


def config_text(*, adapt: str = "", detection: str = "", fps: float = 5.0) -> str:
    reference = f"{{path: reference.png, adapt: {{{adapt}}}}}" if adapt else "reference.png"
    return f"""
source: {{kind: opencv, device: clip.avi, width: {WIDTH}, height: {HEIGHT}, fps: {fps}}}
reference: {reference}
mask: {{include: [[[80, 0], [160, 0], [160, 120], [80, 120]]]}}
detection: {{method: ssim, threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3,
             settle_frames: 4{detection}}}
gpio: {{pin: 17}}
events: {{log: events.jsonl, snapshots: null}}
"""


def replay(folder: Path, text: str, factory: MockFactory, *, realtime: bool = False) -> Monitor:
    path = folder / "config.yaml"
    path.write_text(text)
    monitor = Monitor(load_config(path), config_path=path, realtime=realtime, pin_factory=factory)
    monitor.run()
    return monitor


def event_types(folder: Path) -> list[str]:
    log = folder / "events.jsonl"
    return [e["type"] for e in read_events(log)] if log.exists() else []


def drift_frames(count: int, *, to_gain: float, seed: int = 1) -> list[np.ndarray]:
    """The scene darkening steadily from gain 1 to ``to_gain``."""
    rng = np.random.default_rng(seed)
    base = background()
    return [noisy(base, rng, gain=1 + (to_gain - 1) * i / (count - 1)) for i in range(count)]


# -- ReferenceAdapter alone -------------------------------------------------------


def test_adapting_reference_follows_a_slow_drift_so_the_score_stays_high() -> None:
    reference = background()
    frames = drift_frames(300, to_gain=0.6)
    fixed = Comparator(reference)
    adapting = Comparator(reference)
    adapter = ReferenceAdapter(reference, rate=0.3, every=5, hold_frames=3)
    adapted_scores = []
    for frame in frames:
        score = adapting.score(frame)
        adapted_scores.append(score)
        if adapter.update(frame, unchanged=score >= 0.9):
            adapting.set_reference(adapter.reference)
    assert fixed.score(frames[-1]) < 0.85  # without adaptation: a permanent alarm
    assert min(adapted_scores) > 0.93
    assert adapter.blends >= 50 and adapter.dirty
    # The reference itself went dark with the scene.
    assert abs(float(adapter.reference.mean()) - float(frames[-1].mean())) < 3


def test_adapter_never_learns_frames_it_is_told_are_changed() -> None:
    reference = background()
    with_cup = reference.copy()
    with_cup[CUP] = object_patch()
    adapter = ReferenceAdapter(reference, rate=0.5, every=1, hold_frames=0)
    assert not any(adapter.update(with_cup, unchanged=False) for _ in range(50))
    assert np.array_equal(adapter.reference, reference) and not adapter.dirty


def test_adapter_waits_hold_frames_then_blends_the_mean_every_n_frames() -> None:
    reference = np.full((40, 40), 100, np.uint8)
    brighter = np.full((40, 40), 140, np.uint8)
    adapter = ReferenceAdapter(reference, rate=0.5, every=4, hold_frames=3)
    changed = [adapter.update(brighter, unchanged=True) for _ in range(11)]
    # 3 frames held back, then a blend after every 4 more: frames 7 and 11 (1-based).
    assert changed == [False] * 6 + [True] + [False] * 3 + [True]
    assert int(adapter.reference[0, 0]) == 130  # 100 -> 120 -> 130
    # One frame that is not unchanged restarts the hold.
    assert not adapter.update(brighter, unchanged=False)
    assert [adapter.update(brighter, unchanged=True) for _ in range(7)] == [False] * 6 + [True]


def test_reseed_replaces_the_reference_with_the_latest_frames() -> None:
    reference = np.full((40, 40), 50, np.uint8)
    adapter = ReferenceAdapter(reference, rate=0.01)
    adapter.begin_reseed()
    assert adapter.reseeding
    assert not adapter.update(np.full((40, 40), 200, np.uint8), unchanged=True)  # no blending while re-seeding
    assert not adapter.reseed(np.full((40, 40), 120, np.uint8), final=False)  # exposure still settling
    for _ in range(3):
        assert not adapter.reseed(np.full((40, 40), 200, np.uint8), final=False)
    assert adapter.reseed(np.full((40, 40), 200, np.uint8), final=True)
    assert not adapter.reseeding
    assert 190 <= int(adapter.reference[0, 0]) <= 200  # the settling frame hardly counts


# -- LightSwitch alone ------------------------------------------------------------


def test_light_switch_fires_once_on_a_global_jump_and_not_on_an_object() -> None:
    rng = np.random.default_rng(2)
    base = background()
    switch = LightSwitch(fraction=0.8)
    with_cup = base.copy()
    with_cup[CUP] = object_patch()
    dark = [noisy(base, rng) for _ in range(5)]
    cup = [noisy(with_cup, rng) for _ in range(3)]
    bright = [noisy(base, rng, offset=60) for _ in range(5)]
    fired = [switch.update(frame) for frame in dark + cup + bright]
    assert fired == [False] * 8 + [True] + [False] * 4
    assert switch.changed_fraction < 0.1  # the frames after the switch are alike again
    # A slow change never counts as a switch.
    ramp = [noisy(base, rng, offset=i) for i in range(0, 80, 2)]
    switch.reset()
    assert not any(switch.update(frame) for frame in ramp)


# -- in the daemon, on real video files ---------------------------------------------


def test_daemon_adaptation_turns_a_permanent_alarm_from_slow_drift_into_none(
    tmp_path: Path, factory: MockFactory
) -> None:
    write_video(tmp_path, drift_frames(150, to_gain=0.6))
    replay(tmp_path, config_text(), factory)
    assert event_types(tmp_path) == ["event_start", "event_end"]  # the drift alone is an alarm...
    (tmp_path / "events.jsonl").unlink()

    monitor = replay(tmp_path, config_text(adapt="enabled: true, rate: 0.3"), factory)
    assert event_types(tmp_path) == []  # ...unless the reference follows it
    assert monitor.actions.last_status is not None and monitor.actions.last_status.score > 0.9
    # A replay adapts in memory only: the reference file is as it was.
    assert np.array_equal(read_gray(tmp_path / "reference.png"), background())


def test_daemon_never_learns_an_object_that_stays_during_an_event(tmp_path: Path, factory: MockFactory) -> None:
    rng = np.random.default_rng(3)
    base = background()
    with_cup = base.copy()
    with_cup[CUP] = object_patch()
    write_video(tmp_path, [noisy(base, rng) for _ in range(30)] + [noisy(with_cup, rng) for _ in range(120)])
    monitor = replay(tmp_path, config_text(adapt="enabled: true, rate: 0.5"), factory)
    events = read_events(tmp_path / "events.jsonl")
    assert [(e["type"], e.get("reason")) for e in events] == [("event_start", None), ("event_end", "source ended")]
    assert events[0]["frame"] == 32
    adapter = monitor.watches.adapter
    assert adapter is not None and adapter.blends > 0  # it did adapt before the cup came
    # The cup is not in the reference: still the background there, within noise.
    cup_area = monitor.watches.reference[CUP].astype(int) - base[CUP].astype(int)
    assert np.abs(cup_area).mean() < 3
    assert monitor.actions.last_status is not None and monitor.actions.last_status.score < 0.85


def test_daemon_saves_the_adapted_reference_atomically_while_running(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # 50 fps: a blend every 50 unchanged frames (about once a second), i.e. at frames 53 and 103.
    write_video(tmp_path, drift_frames(110, to_gain=0.8))
    text = config_text(adapt="enabled: true, rate: 0.5, save_seconds: 0.5", fps=50)
    with caplog.at_level(logging.INFO, logger="monitor"):
        monitor = replay(tmp_path, text, factory, realtime=True)
    messages = [r.getMessage() for r in caplog.records]
    saves = [i for i, m in enumerate(messages) if "saved the adapted reference" in m]
    ended = next(i for i, m in enumerate(messages) if "recording ended" in m)
    assert len(saves) == 2 and saves[-1] < ended  # both while running, every save_seconds at most
    saved = read_gray(tmp_path / "reference.png")
    assert np.array_equal(saved, monitor.watches.reference)
    assert saved.mean() < background().mean() - 5  # darker, like the scene
    assert event_types(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "config.yaml", "events.jsonl", "reference.png"]


def light_frames(*, dim: range, count: int) -> list[np.ndarray]:
    """The scene, with the light at 40 % during ``dim``."""
    rng = np.random.default_rng(4)
    base = background()
    return [noisy(base, rng, gain=0.4 if i in dim else 1.0) for i in range(count)]


def test_light_switched_off_with_adaptation_reseeds_and_starts_no_event(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    write_video(tmp_path, light_frames(dim=range(30, 80), count=80))
    replay(tmp_path, config_text(), factory)
    assert event_types(tmp_path)[:1] == ["event_start"]  # without the light switch: an alarm
    (tmp_path / "events.jsonl").unlink()

    switch = ", lightswitch_fraction: 0.75"
    with caplog.at_level(logging.INFO, logger="monitor"):
        monitor = replay(tmp_path, config_text(adapt="enabled: true", detection=switch), factory)
    assert event_types(tmp_path) == []
    switches = [r for r in caplog.records if "light switch" in r.getMessage()]
    assert len(switches) == 1 and "frame 30" in switches[0].getMessage()
    assert any("now shows the new light" in r.getMessage() for r in caplog.records)
    assert monitor.watches.reference.mean() < background().mean() * 0.5
    assert monitor.actions.last_status is not None and monitor.actions.last_status.score > 0.9


def test_light_flash_without_adaptation_settles_and_warns(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # An IR filter flipping back and forth: four dim frames, then the old light again.
    write_video(tmp_path, light_frames(dim=range(20, 24), count=50))
    replay(tmp_path, config_text(), factory)
    assert event_types(tmp_path) == ["event_start", "event_end"]
    (tmp_path / "events.jsonl").unlink()

    with caplog.at_level(logging.WARNING, logger="monitor"):
        replay(tmp_path, config_text(detection=", lightswitch_fraction: 0.75"), factory)
    assert event_types(tmp_path) == []
    messages = [r.getMessage() for r in caplog.records]
    assert sum("light switch" in m for m in messages) == 2  # on, then off again
    assert any("ssim-structure" in m and "reference.adapt" in m for m in messages)
