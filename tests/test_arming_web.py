"""POST /api/arm and /api/disarm over a real socket, and the page's arming buttons in a real headless Chromium."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor.arming_state import ArmingState
from monitor.config import ArmingConfig, HttpConfig
from monitor.status import Scene
from monitor.web.server import StatusServer
from tests import statuses
from tests.conftest import console_errors

TOKEN = "correct-horse-battery-staple"
ZONES = ["door", "bench"]
JSON = {"Content-Type": "application/json"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def picture(photo: np.ndarray) -> np.ndarray:
    return cv2.resize(photo, (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture
def arming(tmp_path: Path) -> ArmingState:
    return ArmingState(ArmingConfig(state_file=tmp_path / "armed.json"), ZONES)


@pytest.fixture
def serve(picture: np.ndarray, arming: ArmingState) -> Iterator[Callable[..., StatusServer]]:
    servers: list[StatusServer] = []

    def make(*, with_arming: bool = True, **http: Any) -> StatusServer:
        scene = Scene(picture=picture, masks=dict.fromkeys(ZONES), kinds=dict.fromkeys(ZONES, "change"))
        server = StatusServer(
            HttpConfig(host="127.0.0.1", port=0, **http),
            scene=scene,
            snapshot_dir=None,
            arming=arming if with_arming else None,
        )
        servers.append(server)
        server.start()
        server.on_frame(statuses.status(0, *(statuses.change(zone) for zone in ZONES), image=picture))
        return server

    yield make
    for server in servers:
        server.close()


def request(
    server: StatusServer, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(data) if kind == "application/json" else data
    finally:
        conn.close()


def post(server: StatusServer, path: str, value: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return request(server, "POST", path, json.dumps(value).encode(), {**JSON, **BEARER, **(headers or {})})


def armed(arming: ArmingState) -> list[bool]:
    return [state.armed for state in arming.evaluate(0.0).values()]


def test_a_command_without_the_token_is_refused_and_changes_nothing(
    serve: Callable[..., StatusServer], arming: ArmingState, tmp_path: Path
) -> None:
    server = serve(token=TOKEN)
    body = json.dumps({"zone": "door"}).encode()
    for headers in [JSON, {**JSON, "Authorization": "Bearer wrong-token-wrong-token"}]:
        code, answer = request(server, "POST", "/api/disarm", body, headers)
        assert code == 401 and "token" in answer["error"]
    code, _ = request(server, "POST", "/api/disarm?token=nope", body, JSON)
    assert code == 401
    assert armed(arming) == [True, True]
    assert not (tmp_path / "armed.json").exists()

    code, answer = request(server, "POST", f"/api/disarm?token={TOKEN}", body, JSON)
    assert code == 200
    assert answer["zones"]["door"] == {"armed": False, "by": "http", "reason": "manual", "until": None}
    assert armed(arming) == [False, True]
    assert json.loads((tmp_path / "armed.json").read_text())["zones"]["door"]["by"] == "http"


def test_get_changes_nothing(serve: Callable[..., StatusServer], arming: ArmingState) -> None:
    server = serve(token=TOKEN)
    for path in ("/api/disarm", f"/api/disarm?token={TOKEN}", "/api/arm"):
        code, _ = request(server, "GET", path, headers=BEARER)
        assert code == 405
    assert armed(arming) == [True, True]


def test_what_a_browser_on_another_site_could_send_is_refused(
    serve: Callable[..., StatusServer], arming: ArmingState
) -> None:
    server = serve()  # no token: loopback only, which a page on another site can still reach
    host, port = server.address
    body = json.dumps({}).encode()
    code, answer = request(server, "POST", "/api/disarm", body, {"Content-Type": "text/plain"})
    assert code == 415 and "application/json" in answer["error"]  # a form or no-cors fetch cannot send JSON
    code, _ = request(server, "POST", "/api/disarm", body, {**JSON, "Origin": "http://evil.example"})
    assert code == 403
    assert armed(arming) == [True, True]
    code, _ = request(server, "POST", "/api/disarm", body, {**JSON, "Origin": f"http://{host}:{port}"})
    assert code == 200 and armed(arming) == [False, False]


def test_bodies_are_bounded_and_checked(serve: Callable[..., StatusServer], arming: ArmingState) -> None:
    server = serve(token=TOKEN)
    code, answer = request(server, "POST", "/api/disarm", b"x" * 5000, {**JSON, **BEARER})
    assert code == 413 and "4096" in answer["error"]
    code, _ = request(server, "POST", "/api/disarm", b"{", {**JSON, **BEARER})
    assert code == 400
    code, _ = request(server, "POST", "/api/disarm", b"{}", {**JSON, **BEARER, "Content-Length": "9" * 5000})
    assert code == 413
    for value, word in [
        ({"zone": "shed"}, "zone 'shed': no such zone (zones: door, bench)"),
        ({"zone": "door", "for_seconds": -5}, "duration"),
        ({"zone": "door", "for_seconds": 1e12}, "duration"),
        ({"zone": "door", "minutes": 5}, "minutes: unknown field"),
        (["door"], "JSON object"),
    ]:
        code, answer = post(server, "/api/disarm", value)
        assert code == 400 and word in answer["error"], answer
    assert armed(arming) == [True, True]


def test_a_snooze_over_http_shows_in_the_status(serve: Callable[..., StatusServer], arming: ArmingState) -> None:
    server = serve(token=TOKEN)
    code, _ = post(server, "/api/disarm", {"zone": "door", "for_seconds": 1800})
    assert code == 200
    code, status = request(server, "GET", "/api/status", headers=BEARER)
    assert code == 200 and status["arming"] is True
    door, bench = status["zones"]["door"], status["zones"]["bench"]
    assert door["armed"] is False and door["armed_by"] == "http" and door["armed_reason"].startswith("snoozed until ")
    assert door["armed_until"] is not None
    assert bench["armed"] is True and bench["armed_reason"] == "default"
    code, _ = post(server, "/api/arm", {"zone": "door"})
    assert code == 200 and armed(arming) == [True, True]


def test_without_an_arming_section_there_is_nothing_to_command(serve: Callable[..., StatusServer]) -> None:
    server = serve(with_arming=False)
    code, answer = post(server, "/api/disarm", {})
    assert code == 404 and "arming: section" in answer["error"]
    code, status = request(server, "GET", "/api/status")
    assert status["arming"] is False and status["zones"]["door"]["armed"] is True


def text(driver: Any, selector: str) -> str:
    """The element's text; "" when the page replaced it while it was read (it redraws every 2 s)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", selector).text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def click(driver: Any, selector: str) -> bool:
    """Click the element; False (try again) when the page replaced it between finding and clicking."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        driver.find_element("css selector", selector).click()
    except StaleElementReferenceException:
        return False
    return True


def test_the_page_disarms_and_arms_a_zone_with_its_buttons(
    serve: Callable[..., StatusServer], arming: ArmingState, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    server = serve(token=TOKEN)
    driver = browser
    try:
        host, port = server.address
        driver.get(f"http://{host}:{port}/?token={TOKEN}")
        button = "#zones tr[data-zone='door'] button"
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_elements("css selector", button))
        wait.until(lambda d: text(d, button) == "disarm")
        assert driver.find_element("id", "arming").is_displayed()
        # The page redraws its table every 2 s: find and click in one step, again if it was redrawn meanwhile.
        wait.until(lambda d: click(d, button))
        wait.until(lambda d: not arming.evaluate(0.0)["door"].armed)
        cell = "#zones tr[data-zone='door'] td.zone-armed"
        wait.until(lambda d: text(d, cell).startswith("disarmed") and "manual" in text(d, cell))
        assert arming.evaluate(0.0)["door"].by == "http" and arming.evaluate(0.0)["bench"].armed

        wait.until(lambda d: click(d, "#arm-all"))
        wait.until(lambda d: armed(arming) == [True, True])
        errors = console_errors(driver)
    finally:
        driver.quit()
    assert errors == []
