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
import pytest

from monitor.config import HttpConfig
from monitor.status import Scene
from monitor.web.server import StatusServer
from tests import statuses
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
