"""The status server over real sockets: a real HTTP client, and the page in a real headless Chromium."""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import HttpConfig
from monitor.exc import ConfigError, MonitorError
from monitor.status import EventRecord, FrameStatus, Scene
from monitor.web.server import StatusServer
from tests import statuses
from tests.conftest import console_errors

TOKEN = "correct-horse-battery-staple"
BOX = (100, 60, 80, 70)  # x, y, w, h inside the watched rectangle


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scene(photo: np.ndarray) -> np.ndarray:
    """The camera man at the 320x240 the frames come at."""
    return cv2.resize(photo, (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture
def mask() -> np.ndarray:
    watched = np.zeros((240, 320), bool)
    watched[40:200, 60:280] = True
    return watched


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_server(
    scene: np.ndarray, mask: np.ndarray, clock: Clock, tmp_path: Path
) -> Iterator[Callable[..., StatusServer]]:
    servers: list[StatusServer] = []

    def make(**http: Any) -> StatusServer:
        snapshots = tmp_path / "snapshots"
        snapshots.mkdir(exist_ok=True)
        config = HttpConfig(host="127.0.0.1", port=0, **http)
        server = StatusServer(config, scene=one_zone(scene, mask), snapshot_dir=snapshots, clock=clock)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


def one_zone(picture: np.ndarray, mask: np.ndarray | None) -> Scene:
    return Scene(picture=picture, masks={"main": mask}, kinds={"main": "change"})


def frame(
    n: int,
    *,
    image: np.ndarray | None,
    score: float = 0.97,
    state: str = "unchanged",
    time: float | None = None,
    boxes: list[tuple[int, int, int, int]] | None = None,
    processing: float = 0.004,
) -> FrameStatus:
    """Frame ``n`` of the one zone ``main``; ``boxes`` only on the frame its event starts."""
    verdict = statuses.change(score=score, changed=state == "changed", boxes=boxes or ())
    return statuses.status(
        n, verdict, time=1_000.0 + 0.2 * n if time is None else time, image=image, processing=processing
    )


def get(server: StatusServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` verbatim (no client-side normalisation of ``..``) and return status, headers, body."""
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(server: StatusServer, path: str) -> Any:
    code, headers, body = get(server, path)
    assert code == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def feed_scene(server: StatusServer, scene: np.ndarray) -> EventRecord:
    """Twenty quiet frames, then an event: three frames below with the changed region boxed."""
    for n in range(20):
        server.on_frame(frame(n, image=scene))
    for n in range(20, 23):
        server.on_frame(frame(n, image=scene, score=0.71, state="changed", boxes=[BOX] if n == 20 else None))
    record = EventRecord(
        type="event_start",
        time=1_004.0,
        frame=20,
        score=0.71,
        changed_fraction=0.12,
        boxes=[BOX],
        snapshot="20261129-120000-event.jpg",
    )
    server.on_event(record)
    return record


def test_api_status_reports_the_latest_frame_rate_and_event(
    make_server: Callable[..., StatusServer], scene: np.ndarray, clock: Clock
) -> None:
    server = make_server()
    before = get_json(server, "/api/status")
    assert before["state"] is None and before["frames"] == 0 and before["last_event"] is None

    record = feed_scene(server, scene)
    clock.now += 42.5
    status = get_json(server, "/api/status")

    assert status["state"] == "changed"
    assert status["score"] == pytest.approx(0.71)
    assert status["changed_fraction"] == pytest.approx(0.12)
    assert (status["threshold"], status["clear_threshold"]) == (0.9, 0.93)
    main = status["zones"]["main"]
    assert (main["kind"], main["state"], main["output"]) == ("change", "changed", True)
    assert main["score"] == pytest.approx(0.71) and main["threshold"] == 0.9
    assert status["fps"] == pytest.approx(5.0)  # frames 0.2 s apart
    assert status["frames"] == 23 and status["frame"] == 22
    assert status["uptime_seconds"] == pytest.approx(42.5)
    assert status["last_event"] == json.loads(json.dumps(record.to_json()))


def test_history_keeps_only_the_configured_window(make_server: Callable[..., StatusServer], scene: np.ndarray) -> None:
    server = make_server(history_seconds=10)
    for n in range(151):  # 30 s at 5 fps
        server.on_frame(frame(n, image=scene, score=0.5 + n / 300))

    history = get_json(server, "/api/history")

    assert history["zones"] == ["main"]
    times = [t for t, _ in history["points"]]
    assert times == sorted(times)
    assert times[0] >= 1_030.0 - 10 and times[-1] == pytest.approx(1_030.0)
    assert len(times) == 51
    assert history["points"][-1][1] == pytest.approx(0.5 + 150 / 300, abs=1e-5)  # rounded to 5 places

    server.on_frame(frame(151, image=scene, time=500.0))  # the clock stepped back
    assert get_json(server, "/api/history")["points"] == [[500.0, 0.97]]


def test_metrics_count_frames_events_and_camera_errors(
    make_server: Callable[..., StatusServer], scene: np.ndarray
) -> None:
    server = make_server()
    feed_scene(server, scene)
    server.on_event(EventRecord(type="camera_lost", time=1_010.0, frame=23))
    server.on_event(EventRecord(type="camera_found", time=1_012.0, frame=24))

    code, headers, body = get(server, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }

    assert samples[("monitor_frames_total", ())] == 23
    assert samples[("monitor_events_total", (("type", "event_start"),))] == 1
    assert samples[("monitor_events_total", (("type", "camera_lost"),))] == 1
    assert samples[("monitor_events_total", (("type", "event_end"),))] == 0
    assert samples[("monitor_camera_errors_total", ())] == 1
    assert samples[("monitor_score", ())] == pytest.approx(0.71)
    assert samples[("monitor_state_changed", ())] == 1
    assert samples[("monitor_frame_processing_seconds_count", ())] == 23
    assert samples[("monitor_frame_processing_seconds_bucket", (("le", "0.005"),))] == 23
    assert samples[("monitor_frame_processing_seconds_bucket", (("le", "0.0025"),))] == 0


def test_healthz_follows_the_arrival_of_frames(
    make_server: Callable[..., StatusServer], scene: np.ndarray, clock: Clock
) -> None:
    server = make_server(token=TOKEN)  # /healthz needs no token: probes have none
    code, _, body = get(server, "/healthz")
    assert (code, body) == (503, b"no frame yet\n")

    server.on_frame(frame(0, image=scene))
    clock.now += 9.0
    assert get(server, "/healthz")[:3:2] == (200, b"ok\n")

    clock.now += 2.0  # 11 s since the last frame, over the 10 s default
    code, _, body = get(server, "/healthz")
    assert code == 503 and b"no frame for 11 s" in body

    server.on_event(EventRecord(type="camera_lost", time=1_011.0, frame=0, extra={"error": "unplugged"}))
    assert get(server, "/healthz")[:3:2] == (503, b"camera lost\n")
    badge = get(server, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[2]
    assert json.loads(badge)["state"] == "camera_lost"  # the page's badge says so too
    server.on_event(EventRecord(type="camera_found", time=1_012.0, frame=0))
    server.on_frame(frame(2, image=scene))
    assert get(server, "/healthz")[0] == 200


@pytest.mark.parametrize("path", ["/", "/api/status", "/api/history", "/metrics", "/frame.jpg"])
def test_a_configured_token_is_required(make_server: Callable[..., StatusServer], path: str) -> None:
    server = make_server(token=TOKEN)
    sep = "&" if "?" in path else "?"

    code, headers, _ = get(server, path)
    assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert get(server, path, {"Authorization": f"Bearer {TOKEN}x"})[0] == 401
    assert get(server, f"{path}{sep}token={TOKEN[:-1]}")[0] == 401
    assert get(server, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(server, f"{path}{sep}token={TOKEN}")[0] == 200


def test_token_file_is_read_and_stripped(make_server: Callable[..., StatusServer], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n", encoding="utf-8")
    server = make_server(token_file=token_file)

    assert get(server, "/api/status")[0] == 401
    assert get(server, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_unreadable_token_file_is_a_config_error(scene: np.ndarray, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    config = HttpConfig(token_file=missing)
    with pytest.raises(ConfigError, match=r"http\.token_file: cannot read .*no-such-token"):
        StatusServer(config, scene=one_zone(scene, None), snapshot_dir=None)


def test_frame_jpg_is_the_copied_frame_with_the_change_boxed(
    make_server: Callable[..., StatusServer], scene: np.ndarray
) -> None:
    server = make_server()
    code, _, body = get(server, "/frame.jpg")
    before = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and before.shape == (240, 320, 3)  # the reference until a frame arrives

    buffer = scene.copy()
    feed_scene(server, buffer)
    buffer[:] = 0  # the loop reuses its buffer for the next frame
    code, headers, body = get(server, "/frame.jpg")
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)

    assert code == 200 and headers["Content-Type"] == "image/jpeg"
    assert image.shape == (240, 320, 3)
    x, y, w, h = BOX
    inside = image[y + 10 : y + h - 10, x + 10 : x + w - 10].astype(int)
    assert np.abs(inside.mean(axis=2) - scene[y + 10 : y + h - 10, x + 10 : x + w - 10]).mean() < 8
    edge = image[y + h // 2, x].astype(int)  # left side of the red box (BGR)
    assert edge[2] > 180 and edge[0] < 90 and edge[1] < 90


def test_snapshots_serve_only_jpegs_inside_the_folder(
    make_server: Callable[..., StatusServer], scene: np.ndarray, tmp_path: Path
) -> None:
    server = make_server()
    snapshots = tmp_path / "snapshots"
    cv2.imwrite(str(snapshots / "event-1.jpg"), scene)
    cv2.imwrite(str(tmp_path / "secret.jpg"), scene)
    (snapshots / "notes.txt").write_text("not a picture", encoding="utf-8")
    (snapshots / "link.jpg").symlink_to(tmp_path / "secret.jpg")

    code, headers, body = get(server, "/snapshots/event-1.jpg")
    assert code == 200 and headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (240, 320)

    for path in ["/snapshots/../secret.jpg", "/snapshots/%2e%2e%2fsecret.jpg", "/snapshots/sub/../../secret.jpg"]:
        assert get(server, path)[0] == 400, path
    for path in ["/snapshots/missing.jpg", "/snapshots/notes.txt", "/snapshots/link.jpg", "/snapshots/"]:
        assert get(server, path)[0] == 404, path


def test_the_page_is_static_with_its_script_and_style_from_the_package_only(
    make_server: Callable[..., StatusServer],
) -> None:
    server = make_server(token=TOKEN)
    code, headers, body = get(server, f"/?token={TOKEN}")
    page = body.decode()
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert '<script src="/static/app.js"' in page and page.count("<script") == 2  # common.js, app.js: none inline
    assert "<script>" not in page
    assert "http://" not in page and "https://" not in page  # no external assets
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        code, headers, body = get(server, f"/static/{name}")  # no data in them: served without the token
        assert code == 200 and headers["Content-Type"].startswith(kind) and body
    assert get(server, "/static/../server.py")[0] == 401
    assert get(server, "/static/other.js", {"Authorization": f"Bearer {TOKEN}"})[0] == 404


def test_api_events_lists_the_latest_records_newest_first(
    make_server: Callable[..., StatusServer], scene: np.ndarray
) -> None:
    server = make_server()
    record = feed_scene(server, scene)
    state = EventRecord(
        type="state", time=1_005.0, frame=24, zone="shelf", extra={"state": "empty", "previous": "full"}
    )
    server.on_event(state)
    assert get_json(server, "/api/events") == [state.to_json(), json.loads(json.dumps(record.to_json()))]


def test_on_frame_returns_while_a_client_holds_a_connection(
    make_server: Callable[..., StatusServer], scene: np.ndarray
) -> None:
    server = make_server()
    idle = socket.create_connection(server.address, timeout=10)
    try:
        idle.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")  # the request never ends
        feeder = threading.Thread(target=lambda: [server.on_frame(frame(n, image=scene)) for n in range(50)])
        feeder.start()
        feeder.join(timeout=10)
        assert not feeder.is_alive()
        assert get_json(server, "/api/status")["frames"] == 50  # other clients still served
    finally:
        idle.close()


def test_port_in_use_is_one_line_naming_the_keys(make_server: Callable[..., StatusServer], scene: np.ndarray) -> None:
    first = make_server()
    config = HttpConfig(host="127.0.0.1", port=first.address[1])
    second = StatusServer(config, scene=one_zone(scene, None), snapshot_dir=None)

    with pytest.raises(
        MonitorError, match=rf"^http\.host/http\.port: cannot listen on 127\.0\.0\.1:{first.address[1]}: "
    ):
        second.start()


def test_close_releases_the_port_and_is_idempotent(make_server: Callable[..., StatusServer]) -> None:
    server = make_server()
    address = server.address
    server.close()
    server.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()


def test_page_renders_in_a_real_browser(
    make_server: Callable[..., StatusServer], scene: np.ndarray, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    server = make_server(token=TOKEN)
    cv2.imwrite(str(tmp_path / "snapshots" / "20261129-120000-event.jpg"), scene)
    start = 1_764_417_600.0  # 2025-11-29 12:00 UTC
    for n in range(300):  # a dip below the threshold, then a change that stays
        score = 0.97 - 0.3 * math.exp(-(((n - 120) / 12) ** 2)) - (0.25 if n >= 260 else 0.0)
        state = "changed" if score < 0.9 else "unchanged"
        server.on_frame(frame(n, image=scene, score=score, state=state, time=start + 0.2 * n, boxes=[BOX]))
    for n, kind in [(115, "event_start"), (128, "event_end"), (262, "event_start")]:
        snapshot = "20261129-120000-event.jpg" if kind == "event_start" else None
        server.on_event(EventRecord(type=kind, time=start + 0.2 * n, frame=n, score=0.7, snapshot=snapshot))  # type: ignore[arg-type]
    hostile = "<img src=x onerror=alert(1)>.jpg"
    server.on_event(
        EventRecord(type="event_end", time=start + 60, frame=299, snapshot=hostile, extra={"note": '<b id="bold">'})
    )

    driver = browser
    try:
        host, port = server.address
        driver.get(f"http://{host}:{port}/?token={TOKEN}")
        loaded = (
            "const f = document.getElementById('frame'), s = document.querySelector('.score-line');"
            "const t = document.querySelector('#events img[src*=\"20261129\"]');"
            "return f.complete && f.naturalWidth > 0 && t !== null && t.complete && t.naturalWidth > 0 && s !== null;"
        )
        # The score line is drawn by the page's script from /api/history, fetched with the token.
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded))
        assert driver.execute_script("return document.getElementById('frame').naturalWidth") == 320
        chart = driver.find_element("id", "score-chart")
        assert chart.size["width"] > 200 and chart.size["height"] > 100
        assert driver.find_element("id", "state").text == "changed"
        assert driver.find_element("id", "reused").text == "0 % of comparisons"  # every frame here was compared
        row = driver.find_element("css selector", "#zones tr[data-zone='main']")
        assert "changed" in row.text and "on" in row.text
        # The hostile record shows as text: no element of its making, nothing run.
        events = driver.find_element("id", "events")
        assert '<b id="bold">' in events.text and "<img src=x onerror=alert(1)>.jpg" in events.text
        assert driver.find_elements("id", "bold") == []
        screenshot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(screenshot))
        errors = console_errors(driver)
    finally:
        driver.quit()

    assert errors == []
    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[0] > 500 and image.shape[1] > 1000
    assert float(image.std()) > 20
