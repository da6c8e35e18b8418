"""The picamera source and ``monitor run`` on real picamera2 and libcamera (its virtual camera).

Runs inside the test root only (``make test-picamera2``; see conftest.py for the
cameras and harness/ for the shims that stand in for the Pi's hardware).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor.config import SourceConfig
from monitor.exc import ConfigError, SourceError
from monitor.sources import PiCameraSource
from tests.hardware.conftest import HIGHWAY, HIGHWAY_WATCHED, H, VirtualCameras, W


def camera(number: int, **options: Any) -> SourceConfig:
    return SourceConfig(
        **({"kind": "picamera", "device": number, "width": W, "height": H, "fps": 30, "capture_timeout": 2.0} | options)
    )


def test_the_luma_plane_of_the_real_nv12_stream(cameras: VirtualCameras, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.sources.picamera")
    with PiCameraSource(camera(cameras.scene)) as source:
        frames = [source.read() for _ in range(3)]
    # picamera2 asked for YUV420 and libcamera's virtual camera answered with NV12 (Y, then interleaved UV).
    assert f"picamera {cameras.scene}: NV12 stream 320x240, stride 320" in caplog.messages
    for frame in frames:
        assert frame is not None
        assert frame.image.shape == (H, W) and frame.image.dtype == np.uint8 and frame.image.flags.c_contiguous
        # libcamera decodes the JPEG with libyuv, the test with OpenCV: the same Y plane but for the
        # decoders' rounding (about 1.2 levels on average here; shifted by one pixel it is 8.5). A row
        # of chroma or a wrong stride would put some rows tens of levels off.
        difference = np.abs(frame.image.astype(np.int16) - cameras.scene_luma)
        assert difference.mean() < 2.0 and difference.mean(axis=1).max() < 6.0
    assert [frame.index for frame in frames if frame is not None] == [0, 1, 2]


def test_a_size_the_camera_does_not_offer_is_scaled_from_the_size_it_chose(
    cameras: VirtualCameras, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.sources.picamera")
    with PiCameraSource(camera(cameras.bars)) as source:
        frame = source.read()
    assert f"picamera {cameras.bars}: the camera chose a 640x480 stream, scaled to 320x240" in caplog.messages
    assert frame is not None and frame.image.shape == (H, W)
    # Eight colour bars, white to black: their luma falls from one bar to the next. (They roll one
    # column a frame, so only the middle of each 40-pixel bar is read.)
    bars = [float(frame.image[:, 40 * n + 12 : 40 * n + 28].mean()) for n in range(8)]
    assert bars == sorted(bars, reverse=True) and bars[0] > 200 and bars[-1] < 40


def test_source_fps_sets_the_cameras_frame_rate(cameras: VirtualCameras) -> None:
    with PiCameraSource(camera(cameras.scene, fps=10)) as source:
        assert source.read() is not None
        started = time.monotonic()
        for _ in range(10):
            assert source.read() is not None
        elapsed = time.monotonic() - started
    # A lower bound only (a busy machine makes it longer): at its own rate the camera gives 60 a second.
    assert elapsed >= 0.8


def test_controls_are_checked_against_what_the_camera_has(cameras: VirtualCameras) -> None:
    with PiCameraSource(camera(cameras.scene, controls={"FaceDetectMode": 0})) as source:
        assert source.read() is not None
    source = PiCameraSource(camera(cameras.scene, controls={"Brightness": 0.5}))
    with pytest.raises(ConfigError) as caught:
        source.open()
    assert str(caught.value) == (
        f"picamera {cameras.scene}: source.controls: this camera has no Brightness control "
        "(it has: FaceDetectMode, FrameDurationLimits, FrameRate)"
    )
    assert not source.is_open


def test_lock_exposure_without_auto_exposure_is_a_one_line_error(cameras: VirtualCameras) -> None:
    source = PiCameraSource(camera(cameras.scene, lock_exposure=True))
    with pytest.raises(ConfigError) as caught:  # a config error: not waited for as a lost camera
        source.open()
    assert str(caught.value) == (
        f"picamera {cameras.scene}: source.lock_exposure: this camera has no auto exposure to lock "
        "(libcamera advertises no AeEnable control); set lock_exposure: false"
    )
    with PiCameraSource(camera(cameras.scene)) as again:  # the failed start released the camera
        assert again.read() is not None


def test_capture_timeout_fires_when_frames_stop_and_the_camera_opens_again(cameras: VirtualCameras) -> None:
    source = PiCameraSource(camera(cameras.scene, capture_timeout=0.5))
    try:
        with source:
            assert source.read() is not None
            cameras.hang_file.touch()
            with pytest.raises(SourceError) as caught:
                for _ in range(20):  # the frames already on their way come first
                    source.read()
            assert str(caught.value) == f"picamera {cameras.scene}: no frame within 0.5 s (source.capture_timeout)"
        # Leaving the block closed the camera: picamera2's stop() did not wait for a frame that never comes.
    finally:
        cameras.hang_file.unlink(missing_ok=True)
    assert not source.is_open
    with source:
        frame = source.read()
    assert frame is not None and frame.index >= 2  # Frame.index keeps counting across re-opens


def test_a_camera_number_that_does_not_exist(cameras: VirtualCameras) -> None:
    missing = cameras.count
    source = PiCameraSource(camera(missing))
    with pytest.raises(SourceError) as caught:
        source.open()
    assert str(caught.value).startswith(
        f"picamera {missing}: cannot start the camera: No camera number {missing} found"
    )
    assert "\n" not in str(caught.value)


# --- `monitor run`, as a user starts it ----------------------------------------------------------


def write_config(folder: Path, number: int, *, extra: str = "") -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f"source: {{kind: picamera, device: {number}, width: {W}, height: {H}, fps: 20{extra}}}\n"
        "reference: reference.png\n"
        f"mask: {{include: [{json.dumps(HIGHWAY_WATCHED)}]}}\n"
        "gpio: {pin: null}\n"
        "events: {log: events.jsonl, snapshots: null}\n"
    )
    return config


def monitor_env() -> dict[str, str]:
    return {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_monitor_run_with_lock_exposure_on_this_camera_says_why_in_one_line(
    cameras: VirtualCameras, tmp_path: Path
) -> None:
    cv2.imwrite(str(tmp_path / "reference.png"), cameras.scene_luma)
    config = write_config(tmp_path, cameras.scene, extra=", lock_exposure: true")
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "run", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=monitor_env(),
    )
    assert result.returncode == 2  # a config error: at once, not after give_up_seconds, and not restarted by systemd
    errors = [line for line in result.stderr.splitlines() if line.startswith("monitor: error:")]
    assert errors == [
        f"monitor: error: picamera {cameras.scene}: source.lock_exposure: this camera has no auto exposure "
        "to lock (libcamera advertises no AeEnable control); set lock_exposure: false"
    ]
    assert "Traceback" not in result.stderr


def test_monitor_run_logs_one_event_for_a_car_driving_through(cameras: VirtualCameras, tmp_path: Path) -> None:
    if cameras.highway is None:
        pytest.skip(f"{HIGHWAY} is absent (it lives beside the project checkout, not in it)")
    # The reference: the first frames the camera gives, the empty road (as capture-reference makes it).
    with PiCameraSource(camera(cameras.highway, fps=20)) as source:
        first = [frame.image for frame in (source.read() for _ in range(5)) if frame is not None]
    cv2.imwrite(str(tmp_path / "reference.png"), np.median(np.stack(first), axis=0).astype(np.uint8))
    log = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(write_config(tmp_path, cameras.highway))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=monitor_env(),
    )
    try:
        # The camera plays the empty road, the car, then the empty road for 7 s before it loops.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if any(record["type"] == "event_end" for record in events(log)):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    records = events(log)
    assert [r["type"] for r in records if r["type"].startswith(("event_", "camera_"))] == [
        "event_start",
        "event_end",
    ], stderr
    start = next(r for r in records if r["type"] == "event_start")
    assert start["score"] < 0.9  # detection.threshold
    assert process.returncode == 0, stderr
