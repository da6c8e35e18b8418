"""A hostile neighbour on the LAN, a careless owner, a power cut: driven as they would be (issue 22).

Real sockets on 127.0.0.1, real files, real signals to a real ``monitor run``; every load loop is
bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import HttpConfig
from monitor.status import Scene
from monitor.web.server import StatusServer
from tests import statuses
from tests.conftest import small_disk
from tests.scenes import background, clip_config, object_patch, write_clip

TOKEN = "correct-horse-battery-staple"


def wait_until(probe: Callable[[], bool], *, timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StatusServer]:
    monkeypatch.setattr(StatusServer, "MAX_CONNECTIONS", 8)
    monkeypatch.setattr(StatusServer, "HEADER_SECONDS", 1.0)
    scene = Scene(picture=background(), masks={"main": None}, kinds={"main": "change"})
    config = HttpConfig(host="127.0.0.1", port=0, token=TOKEN, allowed_hosts=["garage.example.org"])
    with StatusServer(config, scene=scene, snapshot_dir=tmp_path) as started:
        started.on_frame(statuses.status(0, image=background()))
        yield started


def request(server: StatusServer, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_tricklers_are_cut_off_and_never_hold_more_than_the_cap(server: StatusServer) -> None:
    host, port = server.address
    threads_before = threading.active_count()
    tricklers = []
    for _ in range(30):  # more than the 8 the server serves at once
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        tricklers.append(sock)
    most = 0
    closed: set[int] = set()
    deadline = time.monotonic() + 6
    while len(closed) < len(tricklers) and time.monotonic() < deadline:
        most = max(most, threading.active_count() - threads_before)
        for index, sock in enumerate(tricklers):
            if index in closed:
                continue
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # a header line now and then, never the end of them
                sock.settimeout(0.01)
                if sock.recv(4096) == b"":
                    closed.add(index)
            except TimeoutError:
                pass
            except OSError:
                closed.add(index)
        time.sleep(0.2)
    for sock in tricklers:
        sock.close()
    assert len(closed) == len(tricklers)  # the 22 over the cap refused at once, the 8 cut at 1 s
    assert most <= 8 + 2  # the handlers, plus the deadline reaper (and at most one in passing)
    assert request(server, "GET", "/healthz", {"Host": "127.0.0.1"})[0] == 200  # and then served again


def test_a_rebinding_page_gets_421_and_the_right_names_get_through(server: StatusServer) -> None:
    port = server.address[1]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert request(server, "GET", "/api/status", {"Host": f"attacker.example:{port}", **auth})[0] == 421
    assert request(server, "GET", "/healthz", {"Host": "attacker.example"})[0] == 421  # with or without a token
    for name in (f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", "garage.example.org", socket.gethostname()):
        assert request(server, "GET", "/api/status", {"Host": name, **auth})[0] == 200, name


def test_head_is_answered_wherever_get_is_and_without_a_body(server: StatusServer) -> None:
    for path in ("/healthz", "/static/app.js", f"/api/status?token={TOKEN}", f"/frame.jpg?token={TOKEN}"):
        code, body = request(server, "HEAD", path, {"Host": "127.0.0.1"})
        assert (code, body) == (200, b""), path


def test_the_token_never_reaches_a_log_line(server: StatusServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="monitor"):
        assert request(server, "GET", f"/api/status?token={TOKEN}", {"Host": "127.0.0.1"})[0] == 200
        assert request(server, "GET", "/api/status?token=wrong-guess-xyz", {"Host": "127.0.0.1"})[0] == 401
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/status?token=***" in text
    assert TOKEN not in text and "wrong-guess-xyz" not in text


# --- a real daemon under a small open-file limit, flooded with slow connections -------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_flood_of_slow_connections_under_a_small_fd_limit_does_not_stop_the_watch(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(40):  # an image folder, looped: the source the flood once crashed
        image = background().copy()
        if 10 <= index < 20:
            image[60:100, 90:140] = object_patch()
        cv2.imwrite(str(frames / f"{index:03d}.png"), image)
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    port = free_port()
    hook = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('x')", str(tmp_path / "hooks.txt")]
    clip = write_clip(tmp_path / "unused", frames=1, changed=[])  # a config in the tests' usual form
    config = clip_config(clip, fps=25, loop=True).replace(f"device: {clip.video.name}", f"device: {frames}")
    config = config.replace("kind: opencv", "kind: images").replace(
        f"reference: {clip.reference.name}", "reference: reference.png"
    )
    config += f"http: {{host: 127.0.0.1, port: {port}}}\nhooks: {{on_event_start: {json.dumps(hook)}}}\n"
    (tmp_path / "config.yaml").write_text(config)

    def small_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))

    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(tmp_path / "config.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=small_fd_limit,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
    )
    flood: list[socket.socket] = []
    try:
        wait_until(lambda: _healthy(port) or process.poll() is not None, what="the daemon's first frames")
        assert process.poll() is None, process.communicate()[1][-2000:]
        for _ in range(200):  # more connections than the daemon has file descriptors
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(b"GET / HTTP/1.1\r\n")  # and never the rest
                flood.append(sock)
            except OSError:
                break
        events_before = _event_count(tmp_path)
        wait_until(lambda: _event_count(tmp_path) >= events_before + 2, timeout=30, what="events during the flood")
        assert process.poll() is None, "the daemon died"
        for sock in flood:
            sock.close()
        wait_until(lambda: _healthy(port), timeout=20, what="the page to answer again")
        assert (tmp_path / "hooks.txt").exists()  # hooks still ran (they need file descriptors too)
    finally:
        for sock in flood:
            sock.close()
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    assert "Too many open files" not in stderr


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _event_count(folder: Path) -> int:
    log = folder / "events.jsonl"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines() if '"event_start"' in line or '"event_end"' in line)


# --- config: bounds, bombs, special files ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source: {fps: 1e-300}", "source.fps: must be between 0.1 and 120"),
        ("events: {max_log_mb: 1e308}", "events.max_log_mb: must be between 1e-06 and 1e+06"),
        ("events: {keep_snapshots: 100000000}", "events.keep_snapshots: must be less than or equal to 1000000"),
        ("detection: {trigger_frames: 1000000000}", "detection.trigger_frames: must be less than or equal to 100000"),
        ("http: {history_seconds: 1e9}", "http.history_seconds: must be between 1 and 3600"),
        ("source: {give_up_seconds: .inf}", "source.give_up_seconds: must be between 0.001 and 604800"),
    ],
)
def test_numbers_out_of_any_sane_range_are_refused_at_load(text: str, expected: str) -> None:
    from monitor.config import parse_config
    from monitor.exc import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [p for p in info.value.problems if expected in p], info.value.problems


def monitor_check(config: str, *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``monitor check CONFIG`` in a child process, as a user runs it (bounded at 60 s)."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "check", config], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def billion_laughs(levels: int = 9) -> str:
    text = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, levels):
        text += f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]\n"
    return text + f"mask: {{include: *l{levels - 1}}}\n"


def test_a_yaml_alias_bomb_is_refused_at_once_with_one_short_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(billion_laughs())
    started = time.monotonic()
    result = monitor_check("config.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == "config.yaml: line 4: not valid YAML: more than 20 aliases (*name)"
    assert time.monotonic() - started < 30  # bounded: the point is that it does not expand the bomb


def test_a_huge_config_and_a_fifo_are_refused_without_reading_them_whole_or_hanging(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# padding\n" * 200_000)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path, message in ((huge, "larger than 1024 KB: not a config file"), (fifo, "not a regular file")):
        result = monitor_check(str(path))
        assert result.returncode == 2 and result.stdout.strip() == f"{path}: {message}", result


@pytest.mark.parametrize("kind", ["fifo", "symlink", "proc"])
def test_an_event_log_that_is_not_a_plain_file_is_a_config_error(tmp_path: Path, kind: str) -> None:
    log = tmp_path / "events.jsonl"
    if kind == "fifo":
        os.mkfifo(log)
    elif kind == "symlink":
        (tmp_path / "elsewhere.jsonl").write_text("")
        log.symlink_to(tmp_path / "elsewhere.jsonl")
    else:
        log = Path("/proc/self/fd/1")
    (tmp_path / "config.yaml").write_text(f"events: {{log: {log}}}\ngpio: {{pin: null}}\n")
    result = monitor_check("config.yaml", cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stdout.startswith(f"config.yaml: events.log: {log}: "), result.stdout


# --- files: a full disk, the umask ----------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", "600k") as disk:
        yield disk


def test_a_full_disk_makes_room_from_the_oldest_snapshots_instead_of_saving_none_again(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from monitor.events import SnapshotStore, snapshot_name

    folder = tiny_disk / "snapshots"
    folder.mkdir()
    for index in range(5):  # old snapshots fill the disk, within the store's own limits
        (folder / snapshot_name(when=1000.0 + index, frame=index, kind="event")).write_bytes(os.urandom(100_000))
    (tiny_disk / "filler").write_bytes(os.urandom(70_000))  # whatever else is on the card
    store = SnapshotStore(folder, keep=200, max_bytes=200 * 10**6)
    picture = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)  # ~200 KB as JPEG
    with caplog.at_level(logging.WARNING, logger="monitor.events"):
        saved = store.save(picture, when=2000.0, frame=99)
    assert saved is not None and saved.exists() and cv2.imread(str(saved)) is not None
    names = sorted(p.name for p in folder.iterdir())
    assert names[-1] == saved.name and len(names) < 6  # the oldest went, the new one is there
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk full; deleted" in m for m in messages)
    assert any("MB free on its disk, under events.max_snapshot_mb" in m for m in messages)


def test_written_pictures_follow_the_umask(tmp_path: Path) -> None:
    script = (
        "import os, sys, numpy\nos.umask(0o027)\nfrom monitor.images import write_image_atomic\n"
        "write_image_atomic(sys.argv[1], numpy.zeros((8, 8), numpy.uint8))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "snap.jpg")], check=True, timeout=60)
    assert (tmp_path / "snap.jpg").stat().st_mode & 0o777 == 0o640


# --- signals and a flood of Home Assistant "online" -----------------------------------------------


def test_sigusr1_and_sigusr2_neither_kill_the_daemon_nor_leave_the_event_open(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=60, changed=[range(0, 60)])  # the cup sits there: an event at once
    (tmp_path / "config.yaml").write_text(clip_config(clip, loop=True, fps=25))
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(tmp_path / "config.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
    )
    try:
        wait_until(lambda: _event_count(tmp_path) >= 1, what="the event to start")
        for signal_number in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1):
            process.send_signal(signal_number)
            time.sleep(0.3)
        assert process.poll() is None, "a user signal ended the daemon"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    from monitor.events import read_events

    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"] and events[-1]["reason"] == "stopped"


def test_home_assistant_online_floods_get_discovery_at_most_every_ten_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from monitor.config import MqttConfig
    from monitor.integrations.mqtt import MqttPublisher
    from tests.test_mqtt import Broker, Subscriber

    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        topic = "homeassistant/binary_sensor/flood-host/change/config"
        live = Subscriber(broker.port, [topic])
        config = MqttConfig(host="127.0.0.1", port=broker.port)
        with (
            caplog.at_level(logging.INFO, logger="monitor.integrations.mqtt"),
            MqttPublisher(config, hostname="flood-host", client_id="flood") as publisher,
        ):
            publisher.start()
            wait_until(lambda: publisher.connected, what="the connection")
            live.wait_for(topic, 1)
            for _ in range(50):  # anyone on the broker may say "online", as often as they like
                live.client.publish("homeassistant/status", "online", qos=1)
            wait_until(lambda: len(live.payloads(topic)) >= 2, what="one republish")
            time.sleep(1.0)  # the other 49 had time to arrive: none of them republished
            assert len(live.payloads(topic)) == 2
        live.close()
    finally:
        broker.stop()
    back_online = [r for r in caplog.records if "back online" in r.getMessage()]
    assert len(back_online) == 1
