"""The zone editor and the live view: a real `monitor run`, real HTTP, a real headless Chromium.

The daemon watches a clip the test writes with OpenCV; the editor's page is
driven with mouse clicks; what counts is what lands in config.yaml and what
the running daemon then scores.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from monitor.config import HttpConfig, load_config
from monitor.config_zones import config_zones_as_written, replace_config_zones
from monitor.exc import ConfigError
from monitor.status import Scene
from monitor.web.server import MAX_BODY_BYTES, StatusServer
from tests import statuses

TOKEN = "correct-horse-battery-staple"
WIDTH, HEIGHT = 320, 240
PROJECT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

CONFIG = """\
# The test's config: every comment in it must survive the editor.
source:
  kind: opencv            # a clip the test wrote
  device: clip.avi
  width: 320
  height: 240
  fps: 10
  loop: true
reference: reference.png  # the clip's background

detection:
  threshold: 0.85         # below this a frame counts as changed
  clear_threshold: 0.9
  trigger_frames: 2
  clear_frames: 2
  settle_frames: 2

# Two zones to start with.
zones:
  door:                   # the right half, in pixels
    mask:
      include: [[[160, 0], [320, 0], [320, 240], [160, 240]]]
    gpio: {pin: 17}       # the relay
  window:
    mask:
      units: fraction     # stays in fractions
      include: [[[0.05, 0.05], [0.3, 0.05], [0.3, 0.3], [0.05, 0.3]]]

events: {log: events.jsonl, snapshots: snapshots}
http:
  host: 127.0.0.1
  port: PORT
  token: TOKEN            # the editor writes only with it
"""


# -- the scene, the daemon, HTTP ---------------------------------------------------------


def background() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.camera(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def write_scene(folder: Path, *, frames: int = 40) -> None:
    """An MJPG clip of the camera man with sensor noise, and its background as the reference."""
    base = background()
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (WIDTH, HEIGHT), False)
    assert writer.isOpened()
    for _ in range(frames):
        noisy = base.astype(np.float32) + rng.normal(0, 1.5, base.shape).astype(np.float32)
        writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    writer.release()
    cv2.imwrite(str(folder / "reference.png"), base)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_daemon_config(folder: Path, *, token: str | None = TOKEN) -> tuple[Path, int]:
    port = free_port()
    text = CONFIG.replace("PORT", str(port))
    text = (
        text.replace("TOKEN", token)
        if token
        else text.replace("  token: TOKEN            # the editor writes only with it\n", "")
    )
    config = folder / "config.yaml"
    config.write_text(text, encoding="utf-8")
    return config, port


def call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def status_zones(port: int) -> dict[str, Any]:
    code, _, body = call(port, "GET", f"/api/status?token={TOKEN}")
    assert code == 200, body
    zones: dict[str, Any] = json.loads(body)["zones"]
    return zones


def wait_for(predicate: Callable[[], object], *, timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def daemon(config: Path, port: int, *, as_user: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """`monitor run CONFIG` with mock pins, ready once /healthz answers 200; stopped with SIGTERM."""
    command = [sys.executable, "-m", "monitor", "run", str(config)]
    if as_user is not None:
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *command]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=config.parent
    )

    def healthy() -> bool:
        assert process.poll() is None, process.communicate()[1]
        try:
            return call(port, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_for(healthy, what="the daemon's first frame")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            process.kill()
            _, stderr = process.communicate()
            print(stderr[-3000:], file=sys.stderr)  # shown by pytest when the test fails


@pytest.fixture
def scene_folder(tmp_path: Path) -> Path:
    write_scene(tmp_path)
    return tmp_path


def near(points: list[list[float]], expected: list[tuple[float, float]], tolerance: float) -> None:
    assert len(points) == len(expected), points
    for (x, y), (ex, ey) in zip(points, expected, strict=True):
        assert abs(x - ex) <= tolerance and abs(y - ey) <= tolerance, (points, expected)


def comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def page_errors(driver: Any, *, expected: tuple[str, ...] = ()) -> list[str]:
    """Script errors and failed loads the page logged, but for the refusals the test asked for."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(word in entry["message"] for word in expected)
    ]


# -- the editor in a real browser, against a real daemon ------------------------------------


def test_a_zone_drawn_with_the_mouse_is_saved_with_the_comments_and_scored_by_the_daemon(
    scene_folder: Path, browser: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    config, port = write_daemon_config(scene_folder)
    original = config.read_text(encoding="utf-8")
    with daemon(config, port):
        browser.get(f"http://127.0.0.1:{port}/zones?token={TOKEN}")
        message = browser.find_element("id", "message")
        WebDriverWait(browser, 30).until(lambda _: message.text.startswith("editing"))
        overlay = browser.find_element("id", "overlay")
        width, height = overlay.size["width"], overlay.size["height"]

        def at(fx: float, fy: float) -> tuple[int, int]:
            """An offset from the overlay's centre to a point given in fractions of the picture."""
            return round((fx - 0.5) * width), round((fy - 0.5) * height)

        def click(fx: float, fy: float) -> None:
            ActionChains(browser).move_to_element_with_offset(overlay, *at(fx, fy)).click().perform()

        def drag(selector: str, fx: float, fy: float) -> None:
            handle = browser.find_element("css selector", f"#overlay {selector}")
            ActionChains(browser).click_and_hold(handle).move_to_element_with_offset(overlay, *at(fx, fy)).release(
            ).perform()  # fmt: skip

        # window (fractions): move a corner, delete another, add a point by dragging an edge's middle.
        browser.find_element("css selector", "#zone-list li[data-zone='window']").click()
        drag("circle.vertex[data-index='2']", 0.35, 0.35)
        ActionChains(browser).double_click(
            browser.find_element("css selector", "#overlay circle.vertex[data-index='3']")
        ).perform()
        drag("circle.midpoint[data-index='2']", 0.08, 0.32)  # between the moved corner and the first
        # door (pixels): an exclusion, closed with Enter.
        browser.find_element("css selector", "#zone-list li[data-zone='door']").click()
        browser.find_element("id", "add-exclude").click()
        excluded = [(0.6, 0.6), (0.8, 0.6), (0.7, 0.8)]
        for fx, fy in excluded:
            click(fx, fy)
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        # shelf: a new zone, closed by clicking its first point again.
        browser.find_element("id", "new-name").send_keys("shelf")
        browser.find_element("id", "add-zone").click()
        corners = [(0.1, 0.55), (0.45, 0.55), (0.45, 0.9), (0.1, 0.9)]
        for fx, fy in [*corners, corners[0]]:
            click(fx, fy)
        assert "watched 1: 4 points" in browser.find_element("id", "polygon-list").text
        slider = browser.find_element("id", "threshold")
        slider.send_keys(*[Keys.ARROW_LEFT] * 10)  # 0.85 (the top-level one it inherits) - 10 steps of 0.005
        assert browser.find_element("id", "threshold-value").text == "0.800 (clears at 0.850)"
        browser.find_element("id", "save").click()
        WebDriverWait(browser, 40).until(lambda _: "runs the new zones" in message.text or "not" in message.text)
        assert "runs the new zones" in message.text, browser.find_element("id", "problems").text

        saved = config.read_text(encoding="utf-8")
        zones = yaml.safe_load(saved)["zones"]
        assert list(zones) == ["door", "window", "shelf"]
        assert zones["shelf"]["mask"]["units"] == "fraction"  # a new zone is drawn in fractions
        [polygon] = zones["shelf"]["mask"]["include"]
        assert len(polygon) == 4
        near(polygon, corners, 0.02)
        assert zones["shelf"]["detection"] == {"threshold": 0.8, "clear_threshold": 0.85}  # the gap kept
        [window] = zones["window"]["mask"]["include"]
        assert window[:2] == [[0.05, 0.05], [0.3, 0.05]]  # untouched points exactly as written
        near(window, [(0.05, 0.05), (0.3, 0.05), (0.35, 0.35), (0.08, 0.32)], 0.02)
        [exclusion] = zones["door"]["mask"]["exclude"]  # in door's pixels: whole numbers
        assert all(isinstance(v, int) for point in exclusion for v in point), exclusion
        near(exclusion, [(fx * WIDTH, fy * HEIGHT) for fx, fy in excluded], 0.02 * WIDTH)
        assert zones["door"]["mask"]["include"] == [[[160, 0], [320, 0], [320, 240], [160, 240]]]
        assert comments(saved) == comments(original)
        assert saved.startswith(original[: original.index("  door:")])  # all before the zones, byte for byte
        assert "      include: [[[0.05, 0.05], [0." in saved  # the list as the user wrote it: on one line
        assert (scene_folder / "config.yaml.bak").read_text(encoding="utf-8") == original
        running = status_zones(port)
        assert list(running) == ["door", "window", "shelf"] and running["shelf"]["score"] > 0.9
        assert running["shelf"]["threshold"] == 0.8 and running["door"]["threshold"] == 0.85
        meter = browser.find_element("id", "live-score").text
        assert re.fullmatch(r"live score 0\.9\d\d \(of the zone as saved\): at or above the threshold", meter), meter
        shot = scene_folder / "zone-editor.png"
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(shot))
        if os.environ.get("MONITOR_EDITOR_SCREENSHOT"):  # how docs/zone-editor.png is made
            shutil.copy(shot, os.environ["MONITOR_EDITOR_SCREENSHOT"])

        # A name the config refuses: the page shows the refusal, the file stays as it was.
        name = browser.find_element("id", "zone-name")
        name.send_keys(Keys.CONTROL, "a")  # typed over, as a user does (clear() would rename it to "" first)
        name.send_keys("Shelf!", Keys.TAB)
        browser.find_element("id", "save").click()
        problems = browser.find_element("id", "problems")
        WebDriverWait(browser, 30).until(lambda _: problems.text)
        assert f"{config}: zones: 'Shelf!': must be 1-32 characters of a-z, 0-9, _ and -" in problems.text
        assert "not saved" in message.text
        assert config.read_text(encoding="utf-8") == saved
        assert list(status_zones(port)) == ["door", "window", "shelf"]
        errors = page_errors(browser, expected=("status of 400",))
    assert errors == []
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[0] > 500 and float(picture.std()) > 20


def test_a_state_captured_on_the_page_makes_a_state_zone_once_saved(scene_folder: Path, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    config, port = write_daemon_config(scene_folder)
    with daemon(config, port):
        browser.get(f"http://127.0.0.1:{port}/zones?token={TOKEN}")
        message = browser.find_element("id", "message")
        WebDriverWait(browser, 30).until(lambda _: message.text.startswith("editing"))
        browser.find_element("css selector", "#zone-list li[data-zone='window']").click()
        browser.find_element("id", "new-state").send_keys("clear")
        browser.find_element("id", "capture").click()
        WebDriverWait(browser, 30).until(lambda _: "captured" in message.text or "not" in message.text)
        assert "captured clear" in message.text and "save to use it" in message.text, message.text
        assert "clear: window-clear.png" in browser.find_element("id", "state-list").text
        browser.find_element("id", "save").click()
        WebDriverWait(browser, 40).until(lambda _: "runs the new zones" in message.text or "not" in message.text)
        assert "runs the new zones" in message.text, browser.find_element("id", "problems").text
        wait_for(lambda: status_zones(port)["window"]["state"] == "clear", what="the state zone's state")
        assert status_zones(port)["window"]["kind"] == "state"
        errors = page_errors(browser)
    assert errors == []
    assert yaml.safe_load(config.read_text(encoding="utf-8"))["zones"]["window"]["states"] == {
        "clear": "window-clear.png"
    }
    assert cv2.imread(str(scene_folder / "window-clear.png"), cv2.IMREAD_GRAYSCALE).shape == (HEIGHT, WIDTH)


def test_without_a_token_the_editor_is_read_only_and_says_how_to_enable_it(scene_folder: Path, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    config, port = write_daemon_config(scene_folder, token=None)
    original = config.read_text(encoding="utf-8")
    with daemon(config, port):
        code, _, body = call(port, "PUT", "/api/config/zones", {"door": {}}, {"Content-Type": "application/json"})
        assert code == 403 and "http.token" in json.loads(body)["problems"][0]
        browser.get(f"http://127.0.0.1:{port}/zones")
        notice = browser.find_element("id", "notice")
        WebDriverWait(browser, 30).until(lambda _: notice.is_displayed())
        assert "set http.token" in notice.text and "/zones?token=" in notice.text
        assert not browser.find_element("id", "save").is_enabled()
        assert not browser.find_element("id", "add-zone").is_enabled()
        # Still a picture with the zones on it.
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return document.querySelectorAll('#overlay polygon').length") == 2
        )
        errors = page_errors(browser)
    assert errors == []
    assert config.read_text(encoding="utf-8") == original


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_config_the_daemon_cannot_write_is_said_on_the_page(browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    # As on a Pi: the config belongs to root, the daemon runs as another user (nobody here).
    folder = Path(tempfile.mkdtemp(prefix="monitor-editor-"))
    try:
        folder.chmod(0o755)
        write_scene(folder)
        config, port = write_daemon_config(folder)
        for data in ("snapshots", "events.jsonl"):
            (folder / data).mkdir() if data == "snapshots" else (folder / data).touch()
            os.chown(folder / data, 65534, 65534)
        original = config.read_text(encoding="utf-8")
        with daemon(config, port, as_user=65534):
            code, _, body = call(port, "GET", f"/api/config/zones?token={TOKEN}")
            problem = json.loads(body)["not_writable"]
            assert code == 200 and f"{config} is not writable by the monitor (user nobody)" in problem
            code, _, body = call(port, "PUT", "/api/config/zones", config_zones_as_written(config), bearer())
            assert code == 409 and json.loads(body)["problems"] == [problem]
            browser.get(f"http://127.0.0.1:{port}/zones?token={TOKEN}")
            notice = browser.find_element("id", "notice")
            WebDriverWait(browser, 30).until(lambda _: notice.is_displayed())
            assert "is not writable by the monitor" in notice.text and "Zone editor" in notice.text
            assert not browser.find_element("id", "save").is_enabled()
        assert config.read_text(encoding="utf-8") == original
        assert not (folder / "config.yaml.bak").exists()
    finally:
        shutil.rmtree(folder)


# -- the same API without a browser, against a real daemon ------------------------------------


def test_the_live_stream_delivers_decodable_jpegs(scene_folder: Path) -> None:
    config, port = write_daemon_config(scene_folder)
    with daemon(config, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", f"/stream.mjpg?token={TOKEN}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
            pictures = [read_part(response) for _ in range(3)]
        finally:
            conn.close()
    for data in pictures:
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape == (HEIGHT, WIDTH, 3)
    assert len({bytes(data) for data in pictures}) == 3  # three frames, each with its own number drawn


def read_part(response: http.client.HTTPResponse) -> bytes:
    """One part of a multipart/x-mixed-replace body: its boundary line, headers, then Content-Length bytes."""
    line = response.readline()
    while line in (b"\r\n", b"\n"):
        line = response.readline()
    assert line.strip() == b"--frame", line
    headers = {}
    for line in iter(response.readline, b"\r\n"):
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    data = response.read(int(headers["content-length"]))
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"  # a whole JPEG, start to end
    return data


def test_without_the_token_every_write_route_answers_401_and_changes_nothing(scene_folder: Path) -> None:
    config, port = write_daemon_config(scene_folder)
    original = config.read_text(encoding="utf-8")
    zones = config_zones_as_written(config)
    writes = [
        ("PUT", "/api/config/zones", {**zones, "shelf": {}}),
        ("POST", "/api/zones/capture-state", {"zone": "shelf", "state": "empty"}),
    ]
    not_the_header = [
        {},
        {"Authorization": "Bearer not-the-token-at-all"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Cookie": f"token={TOKEN}"},
    ]
    with daemon(config, port):
        for method, path, body in writes:
            for headers in not_the_header:
                code, _, answer = call(port, method, path, body, {**headers, "Content-Type": "application/json"})
                assert code == 401, (method, path, headers, answer)
            # The token in the query reads pages, but never changes anything.
            assert call(port, method, f"{path}?token={TOKEN}", body)[0] == 401
        for path in ("/zones", "/api/config/zones", "/stream.mjpg", "/plain/frame.jpg"):
            assert call(port, "GET", path)[0] == 401
        assert call(port, "GET", f"/api/config/zones?token={TOKEN}")[0] == 200  # a read changes nothing either
        assert list(status_zones(port)) == ["door", "window"]
    assert config.read_text(encoding="utf-8") == original
    assert sorted(p.name for p in scene_folder.iterdir() if p.suffix in {".png", ".bak"}) == ["reference.png"]


def test_a_refused_save_answers_with_the_lines_monitor_check_prints(scene_folder: Path) -> None:
    config, port = write_daemon_config(scene_folder)
    original = config.read_text(encoding="utf-8")
    zones = config_zones_as_written(config)
    mistakes = {  # what the model finds first, field by field; then what it finds across the zones
        "a misspelt key": {"mask": {"units": "fraction", "exlude": []}},
        "a pin taken and a polygon of two points": {"mask": {"include": [[[10, 10], [50, 10]]]}, "gpio": {"pin": 17}},
    }
    answers = {}
    with daemon(config, port):
        for what, shelf in mistakes.items():
            code, _, body = call(port, "PUT", "/api/config/zones", {**zones, "shelf": shelf}, bearer())
            assert code == 400, what
            answers[what] = json.loads(body)["problems"]
        assert config.read_text(encoding="utf-8") == original and not (scene_folder / "config.yaml.bak").exists()
        assert list(status_zones(port)) == ["door", "window"]
    # The same zones written by hand: `monitor check` says the same lines.
    for index, (what, shelf) in enumerate(mistakes.items()):
        data = yaml.safe_load(original)
        data["zones"]["shelf"] = shelf
        by_hand = scene_folder / f"by-hand-{index}" / "config.yaml"
        by_hand.parent.mkdir()
        by_hand.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        check = subprocess.run(
            [sys.executable, "-m", "monitor", "check", str(by_hand)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=60,
        )
        assert check.returncode == 2
        assert check.stdout.replace(str(by_hand), str(config)).splitlines() == answers[what], what
    assert answers["a misspelt key"] == [f"{config}: zones.shelf.mask.exlude: unknown key (did you mean 'exclude'?)"]
    assert answers["a pin taken and a polygon of two points"] == [
        f"{config}: zones.shelf.mask.include[0]: a polygon needs at least 3 points, got 2",
        f"{config}: zones.shelf.gpio.pin: 17 is already the pin of zone 'door', and two zones cannot share a pin",
    ]


def test_a_state_captured_from_the_live_picture_runs_once_saved(scene_folder: Path) -> None:
    config, port = write_daemon_config(scene_folder)
    with daemon(config, port):
        code, _, body = call(port, "POST", "/api/zones/capture-state", {"zone": "shelf", "state": "empty"}, bearer())
        assert code == 200, body
        captured = json.loads(body)
        assert captured["path"] == "shelf-empty.png" and captured["frames"] == 5
        picture = cv2.imread(str(scene_folder / "shelf-empty.png"), cv2.IMREAD_GRAYSCALE)
        # The median of five noisy frames of the clip: its background, give or take the noise.
        assert picture.shape == (HEIGHT, WIDTH)
        assert float(np.abs(picture.astype(np.float32) - background()).mean()) < 3.0

        zones = config_zones_as_written(config)
        zones["shelf"] = {
            "mask": {"units": "fraction", "include": [[[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]]},
            "states": {"empty": captured["path"]},
        }
        code, _, body = call(port, "PUT", "/api/config/zones", zones, bearer())
        assert code == 200, body
        wait_for(lambda: status_zones(port).get("shelf", {}).get("state") == "empty", what="the state zone's state")
        assert status_zones(port)["shelf"]["kind"] == "state"
        assert load_config(config).zones["shelf"].states == {"empty": scene_folder / "shelf-empty.png"}

        # A state the zone does not have in the config: refused until it is captured.
        zones["shelf"]["states"]["full"] = "shelf-full.png"
        code, _, body = call(port, "PUT", "/api/config/zones", zones, bearer())
        assert code == 400
        assert "zones.shelf.states.full:" in body.decode() and "no such file" in body.decode()


def test_a_save_over_a_file_changed_since_the_page_read_it_is_refused(scene_folder: Path) -> None:
    config, port = write_daemon_config(scene_folder)
    with daemon(config, port):
        code, _, body = call(port, "GET", f"/api/config/zones?token={TOKEN}")
        version = json.loads(body)["version"]
        config.write_text(config.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
        edited = config.read_text(encoding="utf-8")
        zones = config_zones_as_written(config)
        code, _, body = call(port, "PUT", "/api/config/zones", zones, {**bearer(), "If-Match": version})
        assert code == 412 and "changed since this page read it" in body.decode()
        assert config.read_text(encoding="utf-8") == edited


# -- in-process: the server's bounds ------------------------------------------------------------


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., StatusServer]]:
    servers: list[StatusServer] = []

    def make(**http: Any) -> StatusServer:
        write_scene(tmp_path, frames=2)
        config_path, _ = write_daemon_config(tmp_path)
        picture = background()
        scene = Scene(
            picture=picture, masks={"door": None, "window": None}, kinds={"door": "change", "window": "change"}
        )
        server = StatusServer(
            HttpConfig(host="127.0.0.1", port=0, token=TOKEN, **http),
            scene=scene,
            snapshot_dir=None,
            config_path=config_path,
            reload=lambda: None,
        )
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


def test_bodies_over_the_cap_or_without_a_length_are_refused(make_server: Callable[..., StatusServer]) -> None:
    server = make_server()
    port = server.address[1]
    path = server.editor.config_path
    assert path is not None
    original = path.read_text(encoding="utf-8")
    huge = json.dumps({"door": {"mask": {"include": [[[1, 1]] * 40_000]}}}).encode()
    assert len(huge) > MAX_BODY_BYTES
    code, _, _ = call(server.address[1], "PUT", "/api/config/zones", raw=huge, headers=bearer())
    assert code == 413
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("PUT", "/api/config/zones")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"2\r\n{}\r\n0\r\n\r\n")
        assert conn.getresponse().status == 411
    finally:
        conn.close()
    assert call(port, "PUT", "/api/config/zones", raw=b"{not json", headers=bearer())[0] == 400
    assert call(port, "PUT", "/api/config/zones", raw=b"[" * 100_000, headers=bearer())[0] == 400
    assert call(port, "PUT", "/api/config/zones", body=["door"], headers=bearer())[0] == 400
    deep: Any = 0.5
    for _ in range(500):  # valid JSON, but no zone is this deep
        deep = [deep]
    code, _, body = call(port, "PUT", "/api/config/zones", body={"door": {"mask": {"include": deep}}}, headers=bearer())
    assert code == 400 and "nested more than 8 deep" in body.decode()
    assert call(port, "DELETE", "/api/config/zones", headers=bearer())[0] == 501
    assert path.read_text(encoding="utf-8") == original


def test_the_stream_has_at_most_max_streams_viewers(make_server: Callable[..., StatusServer]) -> None:
    server = make_server(max_streams=2, stream_fps=20)
    port = server.address[1]
    stop = threading.Event()
    image = background()

    def feed() -> None:
        n = 0
        while not stop.is_set():
            server.on_frame(statuses.status(n, statuses.change("door"), image=image))
            n += 1
            stop.wait(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    viewers = []
    try:
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", f"/stream.mjpg?token={TOKEN}")
            response = conn.getresponse()
            assert response.status == 200
            read_part(response)
            viewers.append(conn)
        code, headers, body = call(port, "GET", f"/stream.mjpg?token={TOKEN}")
        assert code == 503 and "http.max_streams: 2" in body.decode() and headers["Retry-After"]
        assert call(port, "GET", f"/api/status?token={TOKEN}")[0] == 200  # other routes still served
        viewers.pop().close()  # a viewer leaves: its slot comes back once the server notices
        wait_for(lambda: server.streams.count < 2, what="the slot to come back")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/stream.mjpg?token={TOKEN}")
        assert conn.getresponse().status == 200
        viewers.append(conn)
    finally:
        stop.set()
        feeder.join(timeout=10)
        for conn in viewers:
            conn.close()
    server.close()
    wait_for(lambda: server.streams.count == 0, timeout=10, what="the streams to end with the server")


def test_frames_are_encoded_only_while_someone_watches(
    make_server: Callable[..., StatusServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.web.state as state_module

    encoded: list[int] = []
    encode = state_module._encode
    monkeypatch.setattr(state_module, "_encode", lambda image: encoded.append(1) or encode(image))
    server = make_server()
    image = background()
    for n in range(20):
        server.on_frame(statuses.status(n, statuses.change("door"), image=image))
    assert encoded == []  # nobody watched: not one JPEG
    assert call(server.address[1], "GET", f"/frame.jpg?token={TOKEN}")[0] == 200
    assert call(server.address[1], "GET", f"/frame.jpg?token={TOKEN}")[0] == 200
    assert len(encoded) == 1  # the same frame twice: encoded once


def test_viewers_share_one_frame_per_tick() -> None:
    from monitor.web.stream import Ticks

    now = [100.0]
    made: list[int] = []

    def frame() -> bytes:
        made.append(1)
        return b"jpeg %d" % len(made)

    ticks = Ticks(frame, fps=5, clock=lambda: now[0])
    first = [ticks() for _ in range(3)]  # three viewers in one tick
    assert len(made) == 1 and first[0] is first[1] is first[2]
    assert ticks.until_next() == pytest.approx(0.2)
    now[0] += 0.19
    assert ticks() is first[0] and len(made) == 1
    now[0] += 0.02  # the next tick
    assert ticks() == b"jpeg 2" and ticks.until_next() == pytest.approx(0.19)


# -- the config file: what the editor writes ------------------------------------------------------


def test_a_legacy_config_gets_zones_with_its_mask_and_pin_moved_into_main(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shutil.copy(PROJECT / "config.yaml", config)  # the project's own example: no zones:, gpio.pin 17
    original = config.read_text(encoding="utf-8")
    zones = config_zones_as_written(config)
    assert zones["main"]["gpio"]["pin"] == 17 and zones["main"]["mask"]["units"] == "pixels"
    zones["main"]["mask"]["include"] = [[[0, 0], [320, 0], [320, 480], [0, 480]]]
    zones["shelf"] = {"mask": {"units": "fraction", "include": [[[0.6, 0.5], [0.9, 0.5], [0.9, 0.9]]]}}

    replace_config_zones(config, zones)

    saved = config.read_text(encoding="utf-8")
    data = yaml.safe_load(saved)
    assert "mask" not in data and "gpio" not in data  # beside zones: they would be an error
    assert list(data)[: list(data).index("zones") + 2] == ["source", "reference", "zones", "detection"]
    assert sorted(comments(saved)) == sorted(comments(original))  # gpio's moved up with it, into main
    loaded = load_config(config)
    assert not loaded.legacy_zone and list(loaded.zones) == ["main", "shelf"]
    assert loaded.zones["main"].gpio.pin == 17 and loaded.zones["shelf"].gpio.pin is None
    assert loaded.zones["shelf"].mask.include == [[(0.6, 0.5), (0.9, 0.5), (0.9, 0.9)]]
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == original


def test_saving_the_zones_as_read_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("PORT", "8080").replace("TOKEN", TOKEN), encoding="utf-8")
    original = config.read_text(encoding="utf-8")
    replace_config_zones(config, config_zones_as_written(config))
    assert config.read_text(encoding="utf-8") == original


def test_an_invalid_replacement_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("PORT", "8080").replace("TOKEN", TOKEN), encoding="utf-8")
    original = config.read_text(encoding="utf-8")
    zones = config_zones_as_written(config)
    zones["door"]["mask"]["include"] = [[[160, 0], [400, 0], [320, 240]]]
    with pytest.raises(ConfigError) as caught:
        replace_config_zones(config, zones)
    assert caught.value.problems == [
        f"{config}: zones.door.mask.include[0]: point [400, 0] is outside the frame "
        "(expected pixels of the 320x240 frame: x 0-320, y 0-240)"
    ]
    assert config.read_text(encoding="utf-8") == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no .bak, no temporary file
