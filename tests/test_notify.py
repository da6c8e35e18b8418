"""Notifications through Apprise, delivered to a real HTTP receiver on 127.0.0.1 started by the tests.

Apprise's ``json://`` service posts ``{"title", "message", "attachments": [{"filename", "mimetype",
"base64"}]}``; the receiver keeps what it was sent, or answers 500, or hangs, as a test asks.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor.config import load_config, parse_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.exc import ConfigError
from monitor.integrations.notify import Cooldown, NotifySender, render
from monitor.status import EventRecord
from tests.scenes import HEIGHT, WIDTH, write_clip

ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
WAIT = 20.0


class Receiver:
    """An HTTP server on a loopback port: ``answer`` 200 (keeps each JSON body), 500, or ``hang``.

    ``delay``: seconds before each answer, as a service far away takes.
    """

    def __init__(self, answer: int | str = 200, *, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self._release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                time.sleep(receiver.delay)
                if receiver.answer == "hang":
                    receiver._release.wait(WAIT)  # bounded: the test ends it at close
                    return
                if receiver.answer == 200:
                    receiver.messages.append(json.loads(body))
                self.send_response(int(receiver.answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._server.server_port}/hook"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def wait_until(condition: Any, *, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def zone_config(notify: str, *, fps: float = 25.0) -> str:
    """The clip of tests/scenes.py watched as zone ``door`` (its right half), no pin, with ``notify``."""
    return f"""
source: {{kind: opencv, device: clip.avi, width: {WIDTH}, height: {HEIGHT}, fps: {fps}}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  door: {{mask: {{include: [[[80, 0], [160, 0], [160, 120], [80, 120]]]}}}}
events: {{log: events.jsonl, snapshots: snapshots}}
{notify}
"""


def monitor(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def decoded(attachment: dict[str, Any]) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(attachment["base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"{attachment['filename']} does not decode"
    return image


def replay(config_path: Path, sender: NotifySender | None) -> tuple[float, list[tuple[str, int]]]:
    """Replay the clip through the monitor as fast as it goes: frames per second, and (type, frame) per log line."""
    config = load_config(config_path)
    config.events.log.unlink(missing_ok=True)
    with Monitor(config, config_path=config_path, realtime=False, listeners=[sender] if sender else []) as run:
        summary = run.run()
    return summary.fps, [(str(e["type"]), int(e["frame"])) for e in read_events(config.events.log)]  # type: ignore[call-overload]


# -- one event, end to end ---------------------------------------------------------


def test_an_event_on_a_clip_sends_the_zone_and_its_snapshot_and_the_last_message_goes_out_at_the_end(
    tmp_path: Path,
) -> None:
    # The cup enters at frame 20 and is still there when the recording ends: its event_end is
    # written at shutdown, and its message, answered a second later, must still go before `monitor run` exits.
    receiver = Receiver(delay=1.0)
    write_clip(tmp_path, frames=50, changed=[range(20, 50)])
    config = tmp_path / "config.yaml"
    notify = f"""notify:
  - urls: ["{receiver.url}"]
    on: [event_start, event_end]
    body: "{{zone}} {{state}} at {{time}} (score {{score:.2f}}, {{reason}})"
"""
    config.write_text(zone_config(notify, fps=50))
    try:
        done = monitor("run", config)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr

    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert [m["title"] for m in receiver.messages] == ["door: changed", "door: clear"]
    start, end = receiver.messages
    [attachment] = start["attachments"]
    assert attachment["mimetype"] == "image/jpeg"
    snapshot = Path(str(events[0]["snapshot"]))
    assert attachment["filename"] == snapshot.name
    assert base64.b64decode(attachment["base64"]) == snapshot.read_bytes()
    picture = decoded(attachment)
    assert picture.shape[0] == HEIGHT and picture.shape[1] > WIDTH  # the frame beside its reference
    assert f"score {events[0]['score']:.2f}" in start["message"]
    assert "source ended" in end["message"]
    assert not end.get("attachments")  # an event's end has no snapshot
    assert "notify: sent the event_end message (zone door)" in done.stderr


def test_two_events_inside_the_cooldown_give_one_message_and_the_next_says_how_many_were_held(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Events start at about 0.5 s, 1.7 s and 5.3 s of the recording (25 fps); the cooldown is 3 s.
    write_clip(tmp_path, frames=150, changed=[range(10, 20), range(40, 50), range(130, 140)])
    config = tmp_path / "config.yaml"
    config.write_text(zone_config(f'notify: [{{urls: ["{receiver.url}"], on: [event_start], cooldown_seconds: 3}}]'))
    sender = NotifySender(load_config(config).notify)
    sender.start()
    _, events = replay(config, sender)
    sender.close()

    starts = [e for e in events if e[0] == "event_start"]
    assert len(starts) == 3
    assert len(receiver.messages) == 2
    first, third = receiver.messages
    assert first["title"] == third["title"] == "door: changed"
    assert "held back" not in first["message"]
    assert "(1 more held back by the 3 s cooldown" in third["message"]
    assert [decoded(m["attachments"][0]).shape[0] for m in receiver.messages] == [HEIGHT, HEIGHT]


# -- slow and failing services ----------------------------------------------------


def test_a_hanging_and_a_failing_receiver_do_not_slow_the_frame_loop_nor_lose_an_event_line(tmp_path: Path) -> None:
    write_clip(tmp_path, frames=900, changed=[range(start, start + 10) for start in range(10, 880, 30)])
    hangs, fails = Receiver("hang"), Receiver(500)
    try:
        config = tmp_path / "config.yaml"
        notify = f"""notify:
  - {{urls: ["{hangs.url}"], on: [event_start, event_end], cooldown_seconds: 0}}
  - {{urls: ["{fails.url}"], on: [event_start, event_end], cooldown_seconds: 0}}
"""
        config.write_text(zone_config(notify))
        targets = load_config(config).notify
        rounds: dict[str, list[float]] = {"without": [], "with": []}
        logs: dict[str, list[tuple[str, int]]] = {}
        for _ in range(3):  # alternated, the best of each kept: other work on the machine comes and goes
            fps, logs["without"] = replay(config, None)
            rounds["without"].append(fps)
            sender = NotifySender(targets, drain_seconds=1.0, backoff=(0.2, 0.2))
            sender.start()
            fps, logs["with"] = replay(config, sender)
            rounds["with"].append(fps)
            started = time.monotonic()
            sender.close()
            assert time.monotonic() - started < 3.0  # drain_seconds, then the rest is given up
    finally:
        hangs.close()
        fails.close()

    # A sender that waited for the services would be some hundred times slower; 2x is the machine's noise.
    assert max(rounds["with"]) > 0.5 * max(rounds["without"]), rounds
    assert hangs.requests >= 1
    assert len(logs["without"]) == 58  # 29 events, each a start and an end
    assert logs["with"] == logs["without"]


def test_a_failing_service_is_retried_then_dropped_with_rate_limited_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fails = Receiver(500)
    try:
        target = parse_config(f'notify: [{{urls: ["{fails.url}"], cooldown_seconds: 0}}]').notify
        sender = NotifySender(target, backoff=(0.0, 0.05))
        with caplog.at_level(logging.INFO):
            sender.start()
            for index in range(6):
                sender.on_event(EventRecord(type="event_start", time=1e9 + index, frame=index, zone="main"))
            sender.close()
    finally:
        fails.close()

    assert fails.requests == 18  # 3 attempts at each of 6 messages
    assert sender.failed == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3, warnings  # the first three; the next in five minutes
    assert all("not sent in 3 attempt(s)" in w and "error=500" in w for w in warnings), warnings
    assert not [r for r in caplog.records if r.name == "apprise" and r.levelno >= logging.INFO]


# -- secrets and config ----------------------------------------------------------


def test_a_urls_file_open_to_others_is_refused_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    write_clip(tmp_path, frames=10, changed=[])
    urls = tmp_path / "notify-urls"
    urls.write_text("# the family's phones\njson://family:hunter2secret@127.0.0.1:9/hook\n")
    urls.chmod(0o644)
    config = tmp_path / "config.yaml"
    config.write_text(zone_config("notify: [{urls_file: notify-urls}]"))

    checked = monitor("check", config)
    assert checked.returncode == 2
    assert f"notify[0].urls_file: {urls} is open to group or others (mode 0644)" in checked.stdout
    assert f"chmod 600 {urls}" in checked.stdout
    run = monitor("run", config)
    assert run.returncode == 2
    assert "monitor: error: notify[0].urls_file:" in run.stderr
    assert not (tmp_path / "events.jsonl").exists()  # refused before the event log was opened
    for output in (checked.stdout, checked.stderr, run.stdout, run.stderr):
        assert "hunter2secret" not in output

    urls.chmod(0o600)
    checked = monitor("check", config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "notify[0]: json://family:****@127.0.0.1:9/hook: event_start, state, camera_lost" in checked.stdout
    assert "hunter2secret" not in checked.stdout + checked.stderr


def test_an_unknown_service_or_malformed_url_names_the_key_and_the_scheme_only() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            'notify: [{urls: ["ntfy://ntfy.sh/garage", "telegramm://bot123:s3cret@x/1", "tgram://s3cret", "s3cret"]}]'
        )
    assert info.value.problems == [
        "config.yaml: notify[0].urls[1]: telegramm:// is not a service Apprise knows "
        "(see Apprise's list of services for the URL forms)",
        "config.yaml: notify[0].urls[2]: is not a tgram:// URL Apprise can read: "
        "check it against the service's page in Apprise's wiki",
        "config.yaml: notify[0].urls[3]: is not a URL: expected service://..., such as ntfy://ntfy.sh/my-topic "
        "(see Apprise's list of services)",
    ]
    assert "s3cret" not in str(info.value)


def test_yaml_on_key_zones_states_and_templates_are_checked_at_load_time() -> None:
    text = """
zones:
  door: {states: {open: open.png, closed: closed.png}}
notify:
  - urls: json://127.0.0.1:9/hook
    on: [state]
    zones: [door, gate]
    states: [open, ajar]
    title: "{zone} {colour}"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.problems == [
        "config.yaml: notify[0].title: {colour} is not a field "
        "(expected: zone, state, previous, type, score, time, host, reason)"
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace(' {colour}"', ': {state}"'))
    assert info.value.problems == [
        "config.yaml: notify[0].zones: 'gate' is not a zone (zones: door)",
        "config.yaml: notify[0].states: 'ajar' is not a state of its zones (expected: closed, open, unknown)",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace("{colour}", "{state:>999999999}"))  # would take a gigabyte to render
    assert info.value.problems == ["config.yaml: notify[0].title: {state:>999999999}: a width or precision over 2000"]
    target = parse_config(text.replace(' {colour}"', ': {state}"').replace("gate", "door").replace("ajar", "open"))
    assert target.notify[0].on == ["state"]  # YAML 1.1 reads the bare key `on` as true


def test_monitor_run_without_notify_does_not_import_apprise(tmp_path: Path) -> None:
    code = (
        "import sys; from monitor.config import parse_config; from monitor.integrations import build_integrations; "
        "config = parse_config('hooks: {on_event_start: [/bin/true]}'); build_integrations(config, scene=None); "
        "print('apprise' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV)
    assert done.stdout.strip() == "False", done.stderr


# -- the pieces --------------------------------------------------------------------


def test_an_end_goes_with_its_start_through_the_cooldown() -> None:
    cooldown = Cooldown(60, on=["event_start", "event_end", "camera_lost", "camera_found"])
    assert cooldown.admit("door", "event_start", 0.0) == 0
    assert cooldown.admit("door", "event_end", 5.0) == 0  # the answer to a message sent: always
    assert cooldown.admit("door", "event_start", 10.0) is None  # held
    assert cooldown.admit("door", "event_end", 15.0) is None  # held with its start, not counted again
    assert cooldown.admit(None, "camera_lost", 16.0) == 0  # the camera's records have a cooldown of their own
    assert cooldown.admit("door", "event_start", 61.0) == 1
    assert cooldown.admit("door", "event_end", 62.0) == 0


def test_a_camera_record_renders_without_a_score_or_a_picture() -> None:
    [target] = parse_config(
        'notify: [{urls: "json://127.0.0.1:9/hook", body: "{zone} {state} {score:.2f} {reason}"}]'
    ).notify
    lost = render(target, EventRecord(type="camera_lost", time=1e9, frame=3, extra={"error": "no frame"}), host="porch")
    assert (lost.title, lost.body, lost.attachments) == ("camera: lost", "camera lost - no frame", ())


def test_attach_clip_sends_the_events_clip_and_the_snapshot_when_the_clip_is_gone(
    tmp_path: Path, receiver: Receiver
) -> None:
    clip = write_clip(tmp_path, frames=5, changed=[]).video
    snapshot = tmp_path / "snapshot.jpg"
    cv2.imwrite(str(snapshot), np.full((HEIGHT, WIDTH), 128, np.uint8))
    [target] = parse_config(f'notify: [{{urls: "{receiver.url}", on: [event_end], attach: clip}}]').notify
    sender = NotifySender([target])
    sender.start()
    for index, path in enumerate((clip, tmp_path / "pruned.avi")):
        extra = {"clip": str(path)}
        sender.on_event(
            EventRecord("event_end", 1e9 + 600 * index, 9, zone="door", snapshot=str(snapshot), extra=extra)
        )
    sender.close()

    assert [m["attachments"][0]["filename"] for m in receiver.messages] == ["clip.avi", "snapshot.jpg"]
    assert base64.b64decode(receiver.messages[0]["attachments"][0]["base64"]) == clip.read_bytes()


def test_test_notify_sends_the_current_frame_to_each_url_and_says_which_failed(
    tmp_path: Path, receiver: Receiver
) -> None:
    write_clip(tmp_path, frames=10, changed=[])
    fails = Receiver(500)
    try:
        config = tmp_path / "config.yaml"
        notify = f'notify: [{{urls: ["{receiver.url}"]}}, {{urls: ["{fails.url}"], zones: [door]}}]'
        config.write_text(zone_config(notify))
        done = monitor("test-notify", config, "--zone", "door")
    finally:
        fails.close()
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"sent   notify[0] {receiver.url}"
    assert lines[1].startswith(f"FAILED notify[1] {fails.url}: ") and "error=500" in lines[1]
    assert lines[2] == "1 of 2 sent; see the reasons above"
    [message] = receiver.messages
    assert message["title"] == "test: door: changed"  # as an event's message would say it
    picture = decoded(message["attachments"][0])
    assert picture.shape == (HEIGHT, WIDTH, 3)  # the current frame, zones outlined
    assert fails.requests == 1  # once: it is a check, not a retry loop
