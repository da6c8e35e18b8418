"""Event clips: real videos replayed through the monitor, the clips read back with OpenCV.

Each source frame carries its own number as ten black and white squares in the
bottom-left corner, outside the watched zone (the right half), so a clip's
frames can be told apart by their content after two rounds of lossy encoding.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor import clips
from monitor.cli import main
from monitor.clips import ClipPlan, ClipRecorder, frames_in, is_clip_name
from monitor.config import HttpConfig, load_config, parse_config
from monitor.daemon import Monitor, RunSummary
from monitor.drawing import ZoneOutline
from monitor.events import read_events
from monitor.exc import ConfigError
from monitor.integrations.hooks import HookRunner
from monitor.status import EventRecord, Scene, Verdict
from monitor.web.server import StatusServer
from tests.conftest import small_disk

WIDTH, HEIGHT, FPS = 320, 240, 25.0
CELL, BITS, CODE_Y = 14, 10, 220  # the frame number: BITS squares of CELL pixels at (4, CODE_Y)
ZONE = "[[[160, 0], [320, 0], [320, 240], [160, 240]]]"  # the right half
ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}


# -- the scene ---------------------------------------------------------------------------


def background() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.camera(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def cup() -> np.ndarray:
    from skimage import data

    photo = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)[60:300, 150:420]
    return cv2.resize(photo, (100, 80), interpolation=cv2.INTER_AREA)


def draw_number(image: np.ndarray, number: int) -> None:
    for bit in range(BITS):
        x = 4 + bit * CELL
        image[CODE_Y : CODE_Y + CELL, x : x + CELL] = 255 if number >> bit & 1 else 0


def read_number(frame: np.ndarray) -> int:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    number = 0
    for bit in range(BITS):
        x = 4 + bit * CELL
        if grey[CODE_Y + 4 : CODE_Y + CELL - 4, x + 4 : x + CELL - 4].mean() > 128:
            number |= 1 << bit
    return number


def write_video(folder: Path, *, frames: int, changed: list[range], noise: float = 0.0) -> Path:
    """An MJPG clip of the photo, the cup in the watched half during ``changed``; noise only in the other half."""
    base = background()
    patch = cup()
    rng = np.random.default_rng(7)
    video = folder / "source.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT), isColor=False)
    assert writer.isOpened()
    for index in range(frames):
        frame = base.copy()
        if noise:
            left = frame[:, :150].astype(np.float32) + rng.normal(0, noise, (HEIGHT, 150)).astype(np.float32)
            frame[:, :150] = np.clip(left, 0, 255).astype(np.uint8)
        if any(index in span for span in changed):
            frame[80:160, 190:290] = patch
        draw_number(frame, index)
        writer.write(frame)
    writer.release()
    cv2.imwrite(str(folder / "reference.png"), base)
    return video


def write_config(folder: Path, clip_keys: str, *, extra: str = "", clip_folder: Path | str = "clips") -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"""
source: {{kind: opencv, device: source.avi, width: {WIDTH}, height: {HEIGHT}, fps: {FPS}}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 1, clear_frames: 1, settle_frames: 0}}
zones:
  door: {{mask: {{include: {ZONE}}}}}
events: {{log: events.jsonl, snapshots: null, clips: {{folder: {clip_folder}, {clip_keys}}}}}
{extra}
""",
        encoding="utf-8",
    )
    return path


def replay(config_path: Path, *, listeners: list[Any] | None = None) -> tuple[RunSummary, list[dict[str, Any]]]:
    monitor = Monitor(load_config(config_path), config_path=config_path, realtime=False, listeners=listeners or [])
    summary = monitor.run()
    return summary, read_events(config_path.parent / "events.jsonl")


def read_clip(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < 10_000:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    return frames


def folder_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def red_pixels(frame: np.ndarray) -> int:
    """Pixels of the changed boxes' red: the scene itself is grey."""
    blue, green, red = frame[..., 0].astype(int), frame[..., 1].astype(int), frame[..., 2].astype(int)
    return int(((red > 150) & (green < 90) & (blue < 90)).sum())


def amber_on_zone_edge(frame: np.ndarray) -> int:
    """Pixels of the zone's amber outline along its left edge (x = 160)."""
    edge = frame[60:200, 156:165].astype(int)
    return int(((edge[..., 2] > 180) & (edge[..., 1] > 130) & (edge[..., 0] < 110)).sum())


@pytest.fixture
def roomy_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay runs faster than real time: let the writer fall far behind rather than drop frames."""
    monkeypatch.setattr(clips, "QUEUE_SECONDS", 60.0)


# -- what a clip holds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changed", "first"),
    [
        # The change sits in frames 100-139: the event starts on 100 and ends on 140, the first clear frame.
        (range(100, 140), 100 - 50),
        # The numbers: an event at frames 40-80 has only 40 frames before it, so the clip starts at 0.
        (range(40, 80), 0),
    ],
)
def test_a_clip_holds_the_seconds_before_the_event_it_and_the_seconds_after(
    tmp_path: Path, roomy_writer: None, changed: range, first: int
) -> None:
    write_video(tmp_path, frames=220, changed=[changed])
    hook_out = tmp_path / "hook-clip.txt"
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ['MONITOR_CLIP'])"
    hook = f'[{sys.executable}, -c, "{script}", {hook_out}]'
    config = write_config(tmp_path, "pre_seconds: 2, post_seconds: 2", extra=f"hooks: {{on_event_end: {hook}}}")
    hooks = HookRunner(load_config(config).hooks)
    try:
        summary, records = replay(config, listeners=[hooks])
    finally:
        hooks.close()

    assert summary.frames == 220
    start, end = records
    assert (start["type"], start["frame"]) == ("event_start", changed.start)
    assert (end["type"], end["frame"]) == ("event_end", changed.stop)
    names = folder_names(tmp_path / "clips")
    assert len(names) == 1 and is_clip_name(names[0]), names  # one finished clip, no partial file beside it
    path = tmp_path / "clips" / names[0]
    assert end["clip"] == str(path)
    assert hook_out.read_text() == str(path)  # hooks get it as MONITOR_CLIP

    frames = read_clip(path)
    numbers = [read_number(frame) for frame in frames]
    last = changed.stop + 50  # two seconds after the event's end
    assert numbers == list(range(first, last + 1))
    assert len(frames) == (changed.stop - changed.start) + (changed.start - first) + 50 + 1
    # Drawn on: the zone's outline on every frame; the boxes from the event's start to its end only.
    assert all(amber_on_zone_edge(frame) > 40 for frame in frames)
    boxed = [number for number, frame in zip(numbers, frames, strict=True) if red_pixels(frame) > 50]
    assert boxed == list(range(changed.start, changed.stop))


def test_an_event_starting_within_the_post_roll_joins_the_clip(tmp_path: Path, roomy_writer: None) -> None:
    write_video(tmp_path, frames=220, changed=[range(60, 80), range(100, 120)])
    config = write_config(tmp_path, "pre_seconds: 1, post_seconds: 2")
    _, records = replay(config)

    assert [record["type"] for record in records] == ["event_start", "event_end"] * 2
    names = folder_names(tmp_path / "clips")
    assert len(names) == 1
    path = tmp_path / "clips" / names[0]
    assert records[1]["clip"] == records[3]["clip"] == str(path)
    numbers = [read_number(frame) for frame in read_clip(path)]
    assert numbers == list(range(60 - 25, 120 + 50 + 1))


def test_a_long_event_is_cut_at_max_seconds(tmp_path: Path, roomy_writer: None) -> None:
    write_video(tmp_path, frames=220, changed=[range(50, 200)])
    config = write_config(tmp_path, "pre_seconds: 1, post_seconds: 1, max_seconds: 4")
    _, records = replay(config)

    names = folder_names(tmp_path / "clips")
    assert len(names) == 1
    assert records[1]["clip"] == str(tmp_path / "clips" / names[0])
    numbers = [read_number(frame) for frame in read_clip(tmp_path / "clips" / names[0])]
    assert numbers == list(range(50 - 25, 50 - 25 + 100))  # 4 s of 25 fps, pre-roll included


# -- written atomically, kept within bounds ---------------------------------------------------


def recorder_for(tmp_path: Path, source: str, clip_keys: str) -> ClipRecorder:
    config = parse_config(
        f"source: {{{source}}}\nevents: {{clips: {{{clip_keys}}}}}", name="config.yaml", base_dir=tmp_path
    )
    assert config.events.clips is not None

    def outlines(verdicts: object) -> list[ZoneOutline]:
        return [ZoneOutline("door", None, (0, 200, 255))]

    return ClipRecorder(config.events.clips, ClipPlan.of(config), outlines=outlines)


def no_verdicts() -> list[Verdict]:
    return []


def test_a_clip_appears_under_its_name_only_when_complete(tmp_path: Path, roomy_writer: None) -> None:
    photo = cv2.resize(background(), (640, 480))
    frames = []
    for number in range(300):
        frame = photo.copy()
        draw_number(frame, number)
        frames.append(frame)
    recorder = recorder_for(tmp_path, "width: 640, height: 480, fps: 25", "pre_seconds: 2, post_seconds: 2")
    seen_part = seen_final = 0
    try:
        for number, frame in enumerate(frames):
            if number == 100:
                recorder.event_started("door", frame=number, now=1000.0 + number / 25)
            if number == 200:
                path = Path(recorder.event_ended("door", frame=number) or "")
            recorder.feed(frame, no_verdicts(), frame=number, now=1000.0 + number / 25)
        # The writer is still at it: watch the folder until the clip has its name.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not path.exists():
            names = folder_names(path.parent)
            seen_part += any(name.endswith(".part.mp4") and name.startswith(".") for name in names)
            time.sleep(0.002)
        while time.monotonic() < deadline and seen_final < 20:
            assert frames_in(path) == 50 + 100 + 50 + 1  # whenever it is there, it is whole
            seen_final += 1
    finally:
        recorder.close()
    assert seen_part > 0 and seen_final == 20
    assert folder_names(path.parent) == [path.name]


@pytest.mark.parametrize(("keep", "megabytes", "kept"), [(2, 500, [100, 180]), (50, 0.00001, [180])])
def test_retention_deletes_the_oldest_clips(
    tmp_path: Path, roomy_writer: None, keep: int, megabytes: float, kept: list[int]
) -> None:
    write_video(tmp_path, frames=230, changed=[range(20, 30), range(100, 110), range(180, 190)])
    config = write_config(
        tmp_path, f"pre_seconds: 0.4, post_seconds: 0.4, keep_clips: {keep}, max_clip_mb: {megabytes}"
    )
    _, records = replay(config)

    made = [Path(record["clip"]) for record in records if record["type"] == "event_end"]
    assert len(made) == 3
    names = folder_names(tmp_path / "clips")
    assert names == sorted(path.name for path in made if any(f"-f{start:06d}-" in path.name for start in kept))
    for name in names:
        assert read_number(read_clip(tmp_path / "clips" / name)[0]) == int(name.split("-f")[1][:6]) - 10


# -- what goes wrong costs the clip, never the loop ----------------------------------------------


@pytest.mark.parametrize("min_free", [clips.MIN_FREE_BYTES, 0], ids=["seen-coming", "writes-failing"])
def test_a_full_disk_costs_the_clip_not_the_event_or_the_loop(
    tmp_path: Path, roomy_writer: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, min_free: int
) -> None:
    # With no free-space margin the disk fills under FFmpeg, whose failed writes are only warnings:
    # the clip is caught when it does not read back whole.
    monkeypatch.setattr(clips, "MIN_FREE_BYTES", min_free)
    write_video(tmp_path, frames=220, changed=[range(100, 140)], noise=60.0)
    with small_disk(tmp_path / "disk", "2m") as disk:
        config = write_config(tmp_path, "pre_seconds: 2, post_seconds: 2", clip_folder=disk)
        with caplog.at_level(logging.WARNING, logger="monitor.clips"):
            summary, records = replay(config)
        left = folder_names(disk)

    assert summary.frames == 220
    assert [record["type"] for record in records] == ["event_start", "event_end"]
    assert "clip" in records[1]
    assert left == []  # no clip, and no partial one
    assert any("lost" in message or "not recorded" in message for message in caplog.messages)


def test_a_writer_that_falls_behind_drops_clip_frames_not_camera_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 1280x720 frames fed as fast as a loop can: the writer cannot keep up with that.
    photo = cv2.resize(background(), (1280, 720))
    frames = [photo, cv2.flip(photo, 1)]
    recorder = recorder_for(tmp_path, "width: 1280, height: 720, fps: 25", "pre_seconds: 1, post_seconds: 0")
    bound = recorder.plan.queue_frames
    with caplog.at_level(logging.WARNING, logger="monitor.clips"):
        try:
            recorder.event_started("door", frame=0, now=1000.0)
            for number in range(400):
                recorder.feed(frames[number % 2], no_verdicts(), frame=number, now=1000.0 + number / 25)
            path = Path(recorder.event_ended("door", frame=399) or "")
            dropped = recorder.dropped
        finally:
            recorder.close(timeout=60)

    assert dropped > 400 - 2 * bound  # the queue held at most its bound, the rest was dropped at once
    assert frames_in(path) == 400 - recorder.dropped
    assert any("dropped" in message for message in caplog.messages)


def test_sigterm_during_an_event_finishes_the_clip(tmp_path: Path) -> None:
    write_video(tmp_path, frames=400, changed=[range(30, 400)])
    config = write_config(tmp_path, "pre_seconds: 1, post_seconds: 1")
    log = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(config)], stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (log.exists() and read_events(log)):
            time.sleep(0.05)
        time.sleep(1.0)  # a second of the event
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        process.kill()
        _, stderr = process.communicate()

    assert code == 0, stderr
    start, end = read_events(log)
    assert (start["type"], end["type"], end["reason"]) == ("event_start", "event_end", "stopped")
    path = Path(end["clip"])
    assert folder_names(path.parent) == [path.name]
    numbers = [read_number(frame) for frame in read_clip(path)]
    assert numbers == list(range(30 - 25, end["frame"] + 1))  # the pre-roll, and every frame up to the stop
    assert end["frame"] > 30 + 10


# -- config and `monitor check` --------------------------------------------------------------------


def test_clips_are_off_unless_configured_and_their_folder_is_relative_to_the_config(tmp_path: Path) -> None:
    assert parse_config("{}", base_dir=tmp_path).events.clips is None
    config = parse_config("events: {clips: {}}", base_dir=tmp_path)
    assert config.events.clips is not None and config.events.clips.folder == tmp_path / "clips"
    assert (config.events.clips.pre_seconds, config.events.clips.post_seconds) == (3.0, 3.0)


@pytest.mark.parametrize(
    ("clips_yaml", "line"),
    [
        (
            "{size: [1280, 720]}",
            "config.yaml: events.clips.size: [1280, 720] is larger than the compared frame (640x480, ",
        ),
        ("{pre_seconds: 5, max_seconds: 5}", "config.yaml: events.clips.max_seconds: must be above pre_seconds (5)"),
        ("{pre_seconds: -1}", "config.yaml: events.clips.pre_seconds: "),
        ("{keep_clip: 3}", "config.yaml: events.clips.keep_clip: unknown key (did you mean 'keep_clips'?)"),
    ],
)
def test_bad_clip_settings_are_one_line_naming_the_key(clips_yaml: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"events: {{clips: {clips_yaml}}}")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(line), caught.value.problems


def test_check_prints_the_memory_cap_of_the_ring_buffer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("events: {clips: {pre_seconds: 3}}\n", encoding="utf-8")
    assert main(["check", str(config)]) == 0
    out = capsys.readouterr().out
    # 640x480 grey frames at 5 fps: 15 in the ring, and up to 15 + 2 s of them waiting for the writer.
    cap = (15 + 15 + 10) * 640 * 480 / 1e6
    assert f"up to {cap:.1f} MB (15 in the ring buffer + 25 waiting for the writer)" in out
    assert "clips: written as " in out


# -- the status page -----------------------------------------------------------------------------


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    path = folder / "20261129-120000.000Z-f000100-door.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for number in range(30):
        frame = cv2.cvtColor(background(), cv2.COLOR_GRAY2BGR)
        draw_number(frame, number)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def clip_server(clip_file: Path) -> Iterator[Callable[..., StatusServer]]:
    servers: list[StatusServer] = []

    def make(**http: Any) -> StatusServer:
        scene = Scene(picture=background(), masks={"door": None}, kinds={"door": "change"})
        server = StatusServer(
            HttpConfig(host="127.0.0.1", port=0, **http), scene=scene, snapshot_dir=None, clip_dir=clip_file.parent
        )
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def get(server: StatusServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_clips_are_served_whole_or_by_range_only_from_the_clips_folder(
    clip_server: Callable[..., StatusServer], clip_file: Path
) -> None:
    server = clip_server()
    data = clip_file.read_bytes()
    url = f"/clips/{clip_file.name}"
    code, headers, body = get(server, url)
    assert (code, headers["Content-Type"], headers["Accept-Ranges"], body) == (200, "video/mp4", "bytes", data)
    code, headers, body = get(server, url, {"Range": "bytes=100-199"})
    assert (code, headers["Content-Range"], body) == (206, f"bytes 100-199/{len(data)}", data[100:200])
    assert get(server, url, {"Range": "bytes=-50"})[2] == data[-50:]
    assert get(server, url, {"Range": f"bytes={len(data)}-"})[0] == 416

    folder = clip_file.parent
    (folder.parent / "secret.mp4").write_bytes(b"not yours")
    (folder / f".{clip_file.stem}.part.mp4").write_bytes(data[:100])
    (folder / "20261129-120001.000Z-f000200-door.mp4").symlink_to(folder.parent / "secret.mp4")
    for path in ["/clips/../secret.mp4", "/clips/%2e%2e%2fsecret.mp4", "/clips/sub/../../secret.mp4"]:
        assert get(server, path)[0] == 400, path
    for name in [f".{clip_file.stem}.part.mp4", "20261129-120001.000Z-f000200-door.mp4", "notes.txt", ""]:
        assert get(server, f"/clips/{name}")[0] == 404, name


def test_clips_need_the_token_when_one_is_set(clip_server: Callable[..., StatusServer], clip_file: Path) -> None:
    server = clip_server(token="correct-horse-battery-staple")
    assert get(server, f"/clips/{clip_file.name}")[0] == 401
    assert get(server, f"/clips/{clip_file.name}?token=correct-horse-battery-staple")[0] == 200


def test_the_page_links_an_event_to_its_clip(
    clip_server: Callable[..., StatusServer], clip_file: Path, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    token = "correct-horse-battery-staple"
    server = clip_server(token=token)
    server.on_event(
        EventRecord(type="event_end", time=1_764_417_600.0, frame=140, zone="door", extra={"clip": str(clip_file)})
    )
    driver = browser
    try:
        host, port = server.address
        driver.get(f"http://{host}:{port}/?token={token}")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements("css selector", "#events a.clip"))
        link = driver.find_element("css selector", "#events a.clip")
        href = link.get_attribute("href")
        fetched = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.arrayBuffer()"
            ".then(b => done([r.status, r.headers.get('content-type'), b.byteLength])));",
            href,
        )
    finally:
        driver.quit()
    assert href == f"http://{host}:{port}/clips/{clip_file.name}?token={token}"
    assert fetched == [200, "video/mp4", clip_file.stat().st_size]
