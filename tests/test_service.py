"""The daemon under a systemd-like supervisor: a real notify socket, a real subprocess.

The camera is the picamera2 stand-in (tests/fake_picamera2.py), loaded in the
child through a tiny `picamera2` module whose frames stop while a "hang" file
exists and whose constructor fails while a "gone" file exists: a dislodged
cable, seen from the daemon.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from monitor.events import read_events
from tests.fake_picamera2 import scene_y
from tests.notify_socket import NotifySocket

PROJECT = Path(__file__).resolve().parents[1]

SHIM = """
import os, sys
sys.path.insert(0, {project!r})
from tests.fake_picamera2 import Picamera2 as _Camera

HANG, GONE = {hang!r}, {gone!r}

class Picamera2(_Camera):
    def __init__(self, *args, **kwargs):
        if os.path.exists(GONE):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        super().__init__(*args, **kwargs)

    def capture_array(self, *args, **kwargs):
        self.hang = os.path.exists(HANG)
        return super().capture_array(*args, **kwargs)
"""


class Camera:
    """Switches for the child's camera."""

    def __init__(self, folder: Path) -> None:
        self.hang_file, self.gone_file = folder / "hang", folder / "gone"

    def hang(self, on: bool = True) -> None:
        self.hang_file.touch() if on else self.hang_file.unlink(missing_ok=True)

    def unplug(self, on: bool = True) -> None:
        self.gone_file.touch() if on else self.gone_file.unlink(missing_ok=True)


@pytest.fixture
def camera_env(tmp_path: Path) -> Iterator[tuple[Path, Camera, dict[str, str]]]:
    shim = tmp_path / "shim"
    shim.mkdir()
    camera = Camera(tmp_path)
    (shim / "picamera2.py").write_text(
        SHIM.format(project=str(PROJECT), hang=str(camera.hang_file), gone=str(camera.gone_file))
    )
    cv2.imwrite(str(tmp_path / "reference.png"), scene_y(320, 240))
    config = tmp_path / "config.yaml"
    config.write_text(
        """
source: {kind: picamera, width: 320, height: 240, fps: 20, capture_timeout: 0.3, give_up_seconds: 4}
reference: reference.png
detection: {settle_frames: 2}
gpio: {pin: 17}
events: {log: events.jsonl, snapshots: null}
"""
    )
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONPATH": str(shim)}
    yield config, camera, env


def start(config: Path, env: dict[str, str], sd: NotifySocket, **sd_env: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(config)],
        env={**env, **sd.env(**sd_env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], *, stop: bool = True) -> tuple[int, str]:
    """Wait for the daemon to end (after SIGTERM unless ``stop`` is False); its exit code and stderr."""
    if stop and process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    finally:
        process.kill()
    _, stderr = process.communicate()
    return code, stderr


def messages_for(sd: NotifySocket, seconds: float) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(sd.receive(timeout=left))
        except TimeoutError:
            break
    return out


def test_ready_watchdog_reload_and_stopping(camera_env: tuple[Path, Camera, dict[str, str]]) -> None:
    config, _camera, env = camera_env
    with NotifySocket() as sd:
        process = start(config, env, sd, watchdog_usec=1_000_000)
        try:
            sd.wait_for("READY=1", timeout=30)
            first = messages_for(sd, 2.2)
            pings = [m for m in first if "WATCHDOG=1" in m]
            assert 3 <= len(pings) <= 6, first  # every 0.5 s: half of WATCHDOG_USEC
            process.send_signal(signal.SIGHUP)
            after = messages_for(sd, 2.0)
            lines = [line for m in after for line in m.splitlines()]
            assert any(line.startswith("RELOADING=1") for line in lines), after
            assert lines.index("READY=1") > next(i for i, x in enumerate(lines) if x.startswith("RELOADING=1"))
            process.send_signal(signal.SIGTERM)
            final = messages_for(sd, 3.0)
        finally:
            code, stderr = finish(process)
    assert code == 0, stderr
    assert any("STOPPING=1" in m for m in final), final


def test_ready_only_after_the_first_scored_frame(camera_env: tuple[Path, Camera, dict[str, str]]) -> None:
    config, camera, env = camera_env
    camera.hang()  # the camera opens but delivers nothing
    with NotifySocket() as sd:
        process = start(config, env, sd)
        try:
            early = messages_for(sd, 1.5)
            assert not any("READY=1" in m for m in early), early
            camera.hang(False)
            sd.wait_for("READY=1", timeout=30)
            process.send_signal(signal.SIGTERM)
        finally:
            finish(process)


def test_watchdog_pings_stop_while_the_camera_hangs_and_resume(
    camera_env: tuple[Path, Camera, dict[str, str]],
) -> None:
    config, camera, env = camera_env
    config.write_text(config.read_text().replace("give_up_seconds: 4", "give_up_seconds: 60"))
    with NotifySocket() as sd:
        process = start(config, env, sd, watchdog_usec=1_000_000)
        try:
            sd.wait_for("READY=1", timeout=30)
            camera.hang()
            messages_for(sd, 0.8)  # a ping may still be on its way
            hung = messages_for(sd, 2.5)
            assert not any("WATCHDOG=1" in m for m in hung), hung
            camera.hang(False)
            back = messages_for(sd, 6.0)
            assert any("WATCHDOG=1" in m for m in back), back
            process.send_signal(signal.SIGTERM)
        finally:
            code, stderr = finish(process)
    assert code == 0, stderr
    kinds = [e["type"] for e in read_events(config.parent / "events.jsonl")]
    assert kinds[:2] == ["camera_lost", "camera_found"]
    assert "camera lost" in stderr and "camera found again" in stderr


def test_a_camera_unplugged_and_plugged_back_is_reopened(camera_env: tuple[Path, Camera, dict[str, str]]) -> None:
    config, camera, env = camera_env
    config.write_text(config.read_text().replace("give_up_seconds: 4", "give_up_seconds: 60"))
    with NotifySocket() as sd:
        process = start(config, env, sd)
        try:
            sd.wait_for("READY=1", timeout=30)
            camera.unplug()
            camera.hang()  # the open stream stops, and re-opening fails
            time.sleep(2.0)
            assert process.poll() is None
            camera.unplug(False)
            camera.hang(False)
            log = config.parent / "events.jsonl"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if any(e["type"] == "camera_found" for e in read_events(log)):
                    break
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
        finally:
            code, stderr = finish(process)
    assert code == 0, stderr
    kinds = [e["type"] for e in read_events(config.parent / "events.jsonl")]
    assert kinds == ["camera_lost", "camera_found"]
    assert "Camera __init__ sequence did not complete" in stderr


def test_a_camera_that_never_comes_back_ends_the_daemon_non_zero(
    camera_env: tuple[Path, Camera, dict[str, str]],
) -> None:
    config, camera, env = camera_env
    with NotifySocket() as sd:
        process = start(config, env, sd)
        try:
            sd.wait_for("READY=1", timeout=30)
            camera.unplug()
            camera.hang()
            code, stderr = finish(process, stop=False)  # give_up_seconds: 4
        finally:
            process.kill()
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("monitor: error: camera lost for ")
    assert "source.give_up_seconds is 4" in stderr


def test_a_camera_that_comes_up_after_the_daemon_is_waited_for(
    camera_env: tuple[Path, Camera, dict[str, str]],
) -> None:
    config, camera, env = camera_env
    camera.unplug()  # a USB or IP camera still booting after a power cut
    with NotifySocket(config.parent) as sd:
        process = start(config, env, sd)
        log = config.parent / "events.jsonl"
        deadline = time.monotonic() + 60  # a slow start (arm64 under emulation) takes seconds
        while not (log.exists() and "camera_lost" in log.read_text()):
            assert process.poll() is None, "the daemon gave up on a camera that may still come"
            assert time.monotonic() < deadline, "no camera_lost in the event log within 60 s"
            time.sleep(0.1)
        early = messages_for(sd, 1.0)
        assert process.poll() is None, "the daemon gave up on a camera that may still come"
        assert "READY=1" not in early  # not ready without a frame
        camera.unplug(False)
        later = messages_for(sd, 5.0)
        code, stderr = finish(process)
    assert "READY=1" in later
    assert code == 0, stderr
    events = [e["type"] for e in read_events(config.parent / "events.jsonl")]
    assert events[:2] == ["camera_lost", "camera_found"] and events.count("camera_lost") == 1
    assert stderr.count("camera lost:") == 1  # said once, then "still lost" at info level
