"""Tamper checks on real frames: CDnet highway, covered, knocked, blurred, sagging and frozen by the tests.

Every scene is a stretch of the real recording written to an image folder (or
served as a live MJPEG stream) and run through the real ``monitor replay`` /
``monitor run``; a part of the stretch is transformed the way a hand, a knock,
fog or a stuck stream would. A tamper starts on the ``trigger_frames``-th
suspect frame (the 5th by default) and ends on the ``clear_frames``-th clean
one after it.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import TamperConfig, load_config, parse_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.exc import ConfigError
from monitor.integrations.hooks import HookRunner
from monitor.tamper import TamperCheck, align
from monitor.web.server import StatusServer
from tests.conftest import shared_data

ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
# The road, clear of the swaying trees (the accuracy benchmark's polygon).
POLYGON = [[205, 40], [262, 40], [252, 230], [120, 230]]
STRETCH = range(470, 770)  # highway frame numbers of the scenes; the replay counts them from 0
TAMPERED = range(100, 160)  # the frames of a stretch that are covered, knocked, blurred...
TRIGGER = CLEAR = 5  # the defaults of tamper.trigger_frames and clear_frames
# Thresholds near the accuracy benchmark's (0.9667): the cars on the road are events.
DETECTION = {"threshold": 0.965, "clear_threshold": 0.97, "trigger_frames": 3, "clear_frames": 3, "settle_frames": 0}

Record = dict[str, Any]


@dataclass(frozen=True)
class Highway:
    folder: Path  # the recording's own input folder, read in place
    reference: np.ndarray  # car-free: the per-pixel median of frames the scenes do not use
    frames: list[np.ndarray]  # STRETCH, as the image source decodes it (luma)


def _luma(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def highway() -> Highway:
    folder = shared_data("cdnet-highway", "input")
    reference = np.median(np.stack([_luma(folder / f"in{n:06d}.jpg") for n in range(1, 470, 3)]), axis=0)
    frames = [_luma(folder / f"in{n:06d}.jpg") for n in STRETCH]
    return Highway(folder, reference.astype(np.uint8), frames)


def write_scene(folder: Path, frames: list[np.ndarray]) -> Path:
    """The frames as numbered PNGs (lossless: what the test made is what the monitor reads)."""
    folder.mkdir(parents=True)
    for index, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return folder


def write_config(folder: Path, reference: np.ndarray, **sections: Any) -> Path:
    """A config for 320x240 highway frames: the road polygon, a pin, events and snapshots in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "reference.png"), reference)
    config: dict[str, Any] = {
        "source": {"kind": "images", "device": "frames", "width": 320, "height": 240, "fps": 10},
        "reference": "reference.png",
        "mask": {"include": [POLYGON]},
        "detection": DETECTION,
        "gpio": {"pin": 17},
        "events": {"log": "events.jsonl", "snapshots": "snapshots"},
    }
    config.update(sections)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def replay(config: Path, source: Path) -> tuple[list[Record], str]:
    """The real ``monitor replay``; its event log and its closing line."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", str(config), "--source", str(source)],
        capture_output=True,
        text=True,
        timeout=240,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    log = config.parent / "events.jsonl"
    return (read_events(log) if log.exists() else []), result.stdout


def tampers(events: list[Record]) -> list[Record]:
    return [e for e in events if e["type"] in ("tamper_start", "tamper_end")]


def zone_starts(events: list[Record]) -> list[int]:
    return [int(e["frame"]) for e in events if e["type"] == "event_start"]


def shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The picture moved (dx, dy) pixels, as a knocked camera sees it; the edge it uncovers repeats."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def covered(image: np.ndarray, index: int) -> np.ndarray:
    """A hand over the lens: near black, with the sensor's noise."""
    noise = np.random.default_rng(index).normal(10.0, 4.0, image.shape)
    return np.clip(noise, 0, 255).astype(np.uint8)


TRANSFORMS: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], str]] = {
    "covered": (covered, "covered"),
    "knocked 15 px": (lambda image, _: shift(image, 15, 0), "moved"),
    "fogged": (lambda image, _: cv2.GaussianBlur(image, (0, 0), 2.5), "defocused"),
}


@pytest.mark.parametrize("scene", list(TRANSFORMS))
def test_a_covered_knocked_or_fogged_camera_is_one_tamper_and_no_zone_event(
    highway: Highway, tmp_path: Path, scene: str
) -> None:
    transform, reason = TRANSFORMS[scene]
    frames = [transform(image, i) if i in TAMPERED else image for i, image in enumerate(highway.frames)]
    events, summary = replay(write_config(tmp_path, highway.reference), write_scene(tmp_path / "frames", frames))

    first, last = TAMPERED[0], TAMPERED[-1]
    start_frame, end_frame = first + TRIGGER - 1, last + CLEAR
    found = tampers(events)
    assert [(e["type"], e["reason"], e["frame"]) for e in found] == [
        ("tamper_start", reason, start_frame),
        ("tamper_end", reason, end_frame),
    ]
    start, end = found
    assert set(start) == {"type", "reason", "frame", "time", "measure", "snapshot"}
    assert start["snapshot"] and Path(start["snapshot"]).is_file()
    assert end["start_frame"] == start_frame
    # From the first tampered frame to the end, no zone starts an event (the road has cars
    # before and after); one that was open when the tamper started ended for that reason.
    assert not [n for n in zone_starts(events) if first <= n <= end_frame]
    for record in events:
        if record["type"] == "event_end" and record["frame"] == start_frame:
            assert record["reason"] == "tamper"
    # `monitor replay` counts a tamper as an event.
    count = len(zone_starts(events)) + 1
    assert re.search(rf"replayed {len(frames)} frames .*, {count} events", summary), summary


def test_the_measure_is_the_number_that_tripped_it(highway: Highway, tmp_path: Path) -> None:
    frames = [covered(image, i) if i in TAMPERED else image for i, image in enumerate(highway.frames)]
    events, _ = replay(write_config(tmp_path, highway.reference), write_scene(tmp_path / "frames", frames))
    start, end = tampers(events)
    assert start["measure"] < 0.15 <= end["measure"]  # the frame's structure against the reference's


def test_a_camera_sagging_4_pixels_is_aligned_not_a_tamper_nor_an_event(highway: Highway, tmp_path: Path) -> None:
    untouched, _ = replay(
        write_config(tmp_path / "untouched", highway.reference), write_scene(tmp_path / "plain", highway.frames)
    )
    sagged = write_scene(
        tmp_path / "sagged",
        [shift(image, 4, 0) if i >= TAMPERED[0] else image for i, image in enumerate(highway.frames)],
    )
    # A car drives into the zone during TAMPERED: the other scenes' "no zone event" there means something.
    assert [n for n in zone_starts(untouched) if n in TAMPERED]
    aligned, _ = replay(write_config(tmp_path / "aligned", highway.reference), sagged)
    assert tampers(aligned) == []
    assert zone_starts(aligned) == zone_starts(untouched)  # the cars' events, and none more
    # The same sag without alignment: the road itself reads as changed.
    unaligned, _ = replay(write_config(tmp_path / "unaligned", highway.reference, tamper={"align": False}), sagged)
    assert tampers(unaligned) == []
    assert TAMPERED[0] + DETECTION["trigger_frames"] - 1 in zone_starts(unaligned)


def test_the_whole_untouched_highway_has_no_tamper(highway: Highway, tmp_path: Path) -> None:
    events, summary = replay(write_config(tmp_path, highway.reference), highway.folder)
    assert "replayed 1700 frames" in summary
    assert tampers(events) == []
    assert zone_starts(events)  # the cars still are events


def test_tamper_null_switches_the_checks_off(highway: Highway, tmp_path: Path) -> None:
    frames = [covered(image, i) if i in TAMPERED else image for i, image in enumerate(highway.frames)]
    events, _ = replay(write_config(tmp_path, highway.reference, tamper=None), write_scene(tmp_path / "frames", frames))
    assert tampers(events) == []
    assert [n for n in zone_starts(events) if n in TAMPERED]  # the hand is a change like any other


def test_a_repeated_frame_in_a_recording_is_not_frozen(highway: Highway, tmp_path: Path) -> None:
    # A recording may hold a still scene: 60 identical frames at 10 frames/s, 6 s > frozen_seconds 2.
    frames = [highway.frames[TAMPERED[0]] if i in TAMPERED else image for i, image in enumerate(highway.frames)]
    config = write_config(tmp_path, highway.reference, tamper={"frozen_seconds": 2})
    events, _ = replay(config, write_scene(tmp_path / "frames", frames))
    assert tampers(events) == []


# -- a live stream that freezes ------------------------------------------------------------------


class _Stream:
    """A live MJPEG stream on 127.0.0.1: the highway at ``fps``, one frame repeated for ``frozen`` seconds.

    Records when the repeated frame was first and last sent; after the
    script it keeps sending fresh frames until closed.
    """

    def __init__(self, jpegs: list[bytes], *, fps: float, freeze_at: int, frozen: float) -> None:
        self.jpegs, self.period, self.freeze_at, self.frozen = jpegs, 1.0 / fps, freeze_at, frozen
        self.froze_at: float | None = None
        self.thawed_at: float | None = None
        self.closing = threading.Event()
        stream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the monitor hung up
                    stream.serve(self.wfile)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def serve(self, out: Any) -> None:
        index = 0
        deadline = time.monotonic() + 120  # bounded, whatever happens to the test
        while not self.closing.is_set() and time.monotonic() < deadline:
            if index == self.freeze_at and self.froze_at is None:
                self.froze_at = time.time()
                while time.time() - self.froze_at < self.frozen and not self.closing.is_set():
                    self._send(out, self.jpegs[self.freeze_at])
                self.thawed_at = time.time()
            self._send(out, self.jpegs[index % len(self.jpegs)])
            index += 1

    def _send(self, out: Any, jpeg: bytes) -> None:
        out.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
        out.write(jpeg + b"\r\n")
        out.flush()
        time.sleep(self.period)

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stream(highway: Highway) -> Iterator[Callable[..., _Stream]]:
    made: list[_Stream] = []

    def make(**options: Any) -> _Stream:
        jpegs = [(highway.folder / f"in{n:06d}.jpg").read_bytes() for n in STRETCH]
        made.append(_Stream(jpegs, **options))
        return made[-1]

    yield make
    for served in made:
        served.close()


def _wait_for(predicate: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s")
        time.sleep(0.05)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_live_stream_repeating_its_frame_is_frozen(
    highway: Highway, tmp_path: Path, stream: Callable[..., _Stream]
) -> None:
    served = stream(fps=20, freeze_at=40, frozen=3.0)
    source = {"kind": "opencv", "device": served.url, "width": 320, "height": 240, "fps": 20, "capture_timeout": 5}
    config = write_config(tmp_path, highway.reference, source=source, tamper={"frozen_seconds": 1.0})
    log = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    try:
        _wait_for(lambda: log.exists() and any(e["type"] == "tamper_end" for e in read_events(log)), timeout=60)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = read_events(log)
    found = tampers(events)
    assert [(e["type"], e["reason"]) for e in found] == [("tamper_start", "frozen"), ("tamper_end", "frozen")]
    start, end = found
    assert served.froze_at is not None and served.thawed_at is not None
    # Declared once the frame had not changed for frozen_seconds, over once fresh frames came again.
    assert _epoch(start["time"]) >= served.froze_at + 1.0
    assert start["measure"] >= 1.0
    assert _epoch(end["time"]) > served.thawed_at
    assert not [n for n in zone_starts(events) if start["frame"] <= n <= end["frame"]]


# -- pins, hooks, MQTT and the status page ------------------------------------------------------


def run_in_process(config_path: Path, source: Path, factory: MockFactory, listeners: list[Any]) -> Monitor:
    monitor = Monitor(
        load_config(config_path), config_path=config_path, realtime=False, device=str(source), pin_factory=factory
    )
    monitor.listeners.extend(listeners)
    monitor.run()
    return monitor


def test_pins_follow_on_fault_hooks_run_and_an_open_event_ends_for_the_tamper(
    highway: Highway, tmp_path: Path, factory: MockFactory
) -> None:
    # Where the untouched road has a car event of some length, the hand comes in the middle of it.
    untouched, _ = replay(
        write_config(tmp_path / "untouched", highway.reference), write_scene(tmp_path / "plain", highway.frames)
    )
    ends = {e["start_frame"]: e["frame"] for e in untouched if e["type"] == "event_end"}
    start = next(n for n in zone_starts(untouched) if ends[n] - n >= 6 and n + 22 < len(highway.frames) - CLEAR)
    hand = range(start + 2, start + 22)
    scene = write_scene(
        tmp_path / "frames", [covered(image, i) if i in hand else image for i, image in enumerate(highway.frames)]
    )
    tamper_start, tamper_end = hand[0] + TRIGGER - 1, hand[-1] + CLEAR
    hooks = tmp_path / "hooks.txt"
    hook = [sys.executable, "-c", _HOOK, str(hooks)]
    levels = {}
    for on_fault in ("off", "on"):
        config = write_config(
            tmp_path / on_fault,
            highway.reference,
            gpio={"pin": 17, "on_fault": on_fault},
            hooks={"on_tamper": hook, "on_tamper_end": hook},
        )
        factory.reset()
        pin = factory.pin(17)
        with HookRunner(load_config(config).hooks) as runner:
            run_in_process(config, scene, factory, [runner])
        levels[on_fault] = [bool(state.state) for state in pin.states]
        events = read_events(tmp_path / on_fault / "events.jsonl")
        ended = [e for e in events if e["type"] == "event_end" and e["start_frame"] == start]
        assert [(e["frame"], e["reason"]) for e in ended] == [(tamper_start, "tamper")]
    # Off at first, on for the car, off when the tamper ends its event; with on_fault on, on
    # for as long as the hand is there; then whatever the cars after it do, the same in both.
    assert levels["off"][:3] == [False, True, False]
    assert levels["on"] == [*levels["off"][:3], True, False, *levels["off"][3:]]
    assert hooks.read_text().splitlines() == 2 * [
        f"tamper_start covered {tamper_start}",
        f"tamper_end covered {tamper_end}",
    ]


# A hook that appends "<event> <reason> <frame>" to the file it is given.
_HOOK = (
    "import os, sys; print(os.environ['MONITOR_EVENT'], os.environ['MONITOR_REASON'], os.environ['MONITOR_FRAME'],"
    " file=open(sys.argv[1], 'a'))"
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    """A real mosquitto on a loopback port (skipped where mosquitto is not installed)."""
    mqtt_tests = pytest.importorskip("tests.test_mqtt")
    server = mqtt_tests.Broker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


def test_status_page_metrics_and_home_assistant_see_the_reason(
    highway: Highway, tmp_path: Path, broker: Any, factory: MockFactory
) -> None:
    from monitor.integrations.mqtt import MqttPublisher
    from tests.test_mqtt import Subscriber

    # The hand stays until the recording ends: the tamper is still on when the replay stops.
    frames = [covered(image, i) if i >= TAMPERED[0] else image for i, image in enumerate(highway.frames[:150])]
    mqtt = {"host": "127.0.0.1", "port": broker.port, "topic_prefix": "monitor/tamper-test"}
    config_path = write_config(tmp_path, highway.reference, mqtt=mqtt, http={"host": "127.0.0.1", "port": 0})
    config = load_config(config_path)
    seen = Subscriber(broker.port, ["homeassistant/#", "monitor/tamper-test/#"])
    publisher = MqttPublisher(config.mqtt, zones=None, tamper=config.tamper is not None, hostname="tamper-test")
    server = StatusServer(config.http, scene=lambda: monitor.watches.scene, snapshot_dir=config.events.snapshots)
    with publisher, server:
        publisher.start()
        _wait_for(lambda: publisher.connected, timeout=20)
        scene = write_scene(tmp_path / "frames", frames)
        monitor = Monitor(config, config_path=config_path, realtime=False, device=str(scene), pin_factory=factory)
        monitor.listeners.extend([publisher, server])
        monitor.run()
        host, port = server.address
        status = json.loads(urllib.request.urlopen(f"http://{host}:{port}/api/status", timeout=10).read())
        metrics = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read().decode()
        _wait_for(lambda: b"ON" in seen.payloads("monitor/tamper-test/tamper"), timeout=20)
    seen.close()
    assert status["state"] == "tamper" and status["tamper"] == "covered"
    counts = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "monitor_tampers"
        for sample in family.samples
        if sample.name == "monitor_tampers_total"
    }
    assert counts == {"covered": 1.0, "moved": 0.0, "defocused": 0.0, "frozen": 0.0}
    discovery = json.loads(seen.payloads(f"homeassistant/binary_sensor/{publisher.node}/tamper/config")[-1])
    assert discovery["device_class"] == "tamper"
    assert discovery["state_topic"] == "monitor/tamper-test/tamper"
    assert seen.payloads("monitor/tamper-test/tamper") == [b"OFF", b"ON"]
    reasons = [json.loads(p)["reason"] for p in seen.payloads(discovery["json_attributes_topic"])]
    assert reasons == [None, "covered"]


class _Reloader:
    """A listener that, on the first tamper_start, rewrites the config (``tamper: null``) and asks for a reload."""

    def __init__(self, config: Path, reference: np.ndarray) -> None:
        self.config, self.reference = config, reference
        self.monitor: Monitor | None = None

    def on_frame(self, status: Any) -> None:
        pass

    def on_event(self, record: Any) -> None:
        if record.type == "tamper_start" and self.monitor is not None:
            write_config(self.config.parent, self.reference, tamper=None, gpio={"pin": 17, "on_fault": "on"})
            self.monitor.reload()

    def close(self) -> None:
        pass


def test_a_reload_that_switches_the_checks_off_ends_the_tamper_and_frees_the_pins(
    highway: Highway, tmp_path: Path, factory: MockFactory
) -> None:
    frames = [covered(image, i) if i in TAMPERED else image for i, image in enumerate(highway.frames[:200])]
    config = write_config(tmp_path, highway.reference, gpio={"pin": 17, "on_fault": "on"})
    reloader = _Reloader(config, highway.reference)
    pin = factory.pin(17)
    monitor = Monitor(
        load_config(config),
        config_path=config,
        realtime=False,
        device=str(write_scene(tmp_path / "frames", frames)),
        pin_factory=factory,
    )
    reloader.monitor = monitor
    monitor.listeners.append(reloader)
    monitor.run()
    events = read_events(tmp_path / "events.jsonl")
    found = tampers(events)
    start = TAMPERED[0] + TRIGGER - 1
    assert [(e["type"], e["frame"]) for e in found] == [("tamper_start", start), ("tamper_end", start)]
    assert found[1]["measure"] is None  # ended by the reload, not by a clean frame
    # On for the tamper (on_fault: on), off at the reload; then the hand is a change like any other.
    assert [bool(state.state) for state in pin.states][:3] == [False, True, False]
    assert [n for n in zone_starts(events) if n in TAMPERED]


def test_the_page_in_a_real_browser_names_the_reason(highway: Highway, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    from monitor.config import HttpConfig
    from monitor.status import FrameStatus, Scene
    from tests import statuses

    scene = Scene(picture=highway.reference, masks={"main": None}, kinds={"main": "change"})
    server = StatusServer(HttpConfig(host="127.0.0.1", port=0), scene=scene, snapshot_dir=None)
    with server:
        for n in range(3):
            verdict = statuses.change(score=0.2, settling=True)
            status = statuses.status(n, verdict, image=highway.frames[n])
            server.on_frame(
                FrameStatus.of(
                    status.zones,
                    frame=n,
                    time=status.time,
                    processing_seconds=0.01,
                    image=status.image,
                    tamper="covered",
                )
            )
        driver = browser
        try:
            host, port = server.address
            driver.get(f"http://{host}:{port}/")
            state = "return document.getElementById('state').textContent"
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(state) != "waiting")
            assert driver.execute_script(state) == "tamper: covered"
            assert "state-tamper" in driver.find_element("id", "state").get_attribute("class")
        finally:
            driver.quit()


# -- the pure parts -----------------------------------------------------------------------------


def test_align_undoes_a_whole_pixel_shift(highway: Highway) -> None:
    image = highway.frames[0]
    moved = shift(image, 3, -2)
    back = align(moved, 3, -2)
    assert back.shape == image.shape
    assert np.array_equal(back[5:-5, 5:-5], image[5:-5, 5:-5])
    assert align(image, 0, 0) is image


def test_a_short_suspect_run_starts_nothing_and_the_reason_is_the_runs_most_common(highway: Highway) -> None:
    check = TamperCheck(TamperConfig(trigger_frames=3, clear_frames=2), highway.reference)
    image = highway.frames[0]
    black = covered(image, 0)
    looks = [check.look(frame, frame=i, now=i / 10, live=False) for i, frame in enumerate([image, black, black, image])]
    assert [look.suspect for look in looks] == [None, "covered", "covered", None]
    assert [look.blind for look in looks] == [False, True, True, False]  # the zones learn nothing from it
    assert all(look.started is None for look in looks)
    knocked = shift(image, 15, 0)
    looks = [check.look(frame, frame=i, now=i / 10, live=False) for i, frame in enumerate([knocked, black, knocked])]
    assert looks[-1].started is not None and looks[-1].started.reason == "moved"
    assert looks[-1].started.measure == pytest.approx(15, abs=1)


def test_moved_pixels_past_a_quarter_of_the_frame_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("source: {width: 320, height: 240}\ntamper: {moved_pixels: 70}", name="c.yaml")
    assert caught.value.problems == [
        "c.yaml: tamper.moved_pixels: must be below 60 (a quarter of the 320x240 frame's smaller side), got 70"
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config("tamper: {covred_level: 0.2}", name="c.yaml")
    assert caught.value.problems == ["c.yaml: tamper.covred_level: unknown key (did you mean 'covered_level'?)"]
    assert parse_config("source: {width: 32, height: 24}").tamper == TamperConfig()  # the default fits any frame
    assert parse_config("tamper: null").tamper is None
