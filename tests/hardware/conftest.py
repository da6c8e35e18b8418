"""Real picamera2 on real libcamera: fixtures for the tests that run inside the test root.

``make test-picamera2`` builds a Debian testing root (tests/hardware/harness/)
with libcamera 0.7, its virtual camera and picamera2 from PyPI, and runs this
folder inside it with ``MONITOR_TEST_ROOT=picamera2``; anywhere else these
tests skip. The virtual cameras are described in libcamera's ``virtual.yaml``
before picamera2 is first imported (libcamera reads it once per process):

- ``scene``: a real photo (scikit-image's astronaut) as a 320x240 JPEG;
- ``bars``: libcamera's colour bars, offered only at 640x480;
- ``highway``: real frames of the CDnet highway sequence (../shared/data), an
  empty road, then cars in the watched area, then an empty road again; only
  where that data is present.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_DATA

IN_ROOT = os.environ.get("MONITOR_TEST_ROOT") == "picamera2"
VIRTUAL_YAML = Path("/usr/share/libcamera/pipeline/virtual/virtual.yaml")
HANG_VARIABLE = "MONITOR_TEST_CAMERA_HANG"  # read by harness/python/virtual_sensor.py
W, H = 320, 240

HIGHWAY = SHARED_DATA / "cdnet-highway" / "input"
# Frames of the highway sequence, in the order the highway camera plays them (each 4 times, looping):
# the road empty, a car in the watched area, then the road empty again (from the ground truth).
HIGHWAY_EMPTY_BEFORE = range(470, 482)
HIGHWAY_CAR = range(750, 782, 2)
HIGHWAY_EMPTY_AFTER = range(1216, 1251)
HIGHWAY_WATCHED = [[170, 40], [265, 40], [265, 220], [150, 220]]  # a stretch of road, no tree shadows


NOT_HERE = "real picamera2 and libcamera: these run inside the test root (make test-picamera2)"


@pytest.fixture(autouse=True)
def _inside_the_test_root() -> None:
    if not IN_ROOT:
        pytest.skip(NOT_HERE)


@dataclass(frozen=True)
class VirtualCameras:
    """The virtual cameras of this session, by picamera2 camera number."""

    scene: int
    bars: int
    highway: int | None  # None without ../shared/data
    count: int
    scene_luma: np.ndarray  # the Y plane of the scene's JPEG, as a decoder gives it
    hang_file: Path  # while it exists, no camera delivers a frame


def _write_scene(folder: Path) -> np.ndarray:
    from skimage import data

    bgr = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (W, H), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    (folder / "0.jpg").write_bytes(jpeg.tobytes())
    return cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)


def _link_highway(folder: Path) -> bool:
    if not HIGHWAY.is_dir():
        return False
    frames = [*HIGHWAY_EMPTY_BEFORE, *HIGHWAY_CAR, *HIGHWAY_EMPTY_AFTER]
    for n, frame in enumerate(frames):
        (folder / f"{n}.jpg").symlink_to(HIGHWAY / f"in{frame:06d}.jpg")
    return True


@pytest.fixture(scope="session")
def cameras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualCameras]:
    if not IN_ROOT:
        pytest.skip(NOT_HERE)
    root = tmp_path_factory.mktemp("virtual")
    scene_dir, highway_dir = root / "scene", root / "highway"
    scene_dir.mkdir()
    highway_dir.mkdir()
    scene_luma = _write_scene(scene_dir)
    entries = {
        "scene": f"  supported_formats: [{{width: {W}, height: {H}, frame_rates: [5, 60]}}]\n"
        f'  frames: {{path: "{scene_dir}/"}}\n',
        "bars": '  supported_formats: [{width: 640, height: 480, frame_rates: [5, 60]}]\n  test_pattern: "bars"\n',
    }
    if _link_highway(highway_dir):
        entries["highway"] = (
            f"  supported_formats: [{{width: {W}, height: {H}, frame_rates: [5, 60]}}]\n"
            f'  frames: {{path: "{highway_dir}/"}}\n'
        )
    VIRTUAL_YAML.write_text("".join(f'"{name}":\n{body}' for name, body in entries.items()))

    from picamera2 import Picamera2

    # Picamera2(n) is the n-th of picamera2's sorted list, which is not the file's order.
    order = [info["Id"] for info in Picamera2.global_camera_info()]
    assert sorted(order) == sorted(entries), f"libcamera found {order}, expected {sorted(entries)}"
    hang_file = root / "hang"
    os.environ[HANG_VARIABLE] = str(hang_file)
    try:
        yield VirtualCameras(
            scene=order.index("scene"),
            bars=order.index("bars"),
            highway=order.index("highway") if "highway" in order else None,
            count=len(order),
            scene_luma=scene_luma,
            hang_file=hang_file,
        )
    finally:
        os.environ.pop(HANG_VARIABLE, None)
        hang_file.unlink(missing_ok=True)
