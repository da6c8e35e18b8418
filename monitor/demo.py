"""``monitor demo``: the whole pipeline on a scene made at run time, no camera needed.

The scene is built from scikit-image's sample photos (nothing binary is
committed): a still picture with sensor noise; a cup slides into the watched
region, stays, and leaves; meanwhile a rocket crosses the unwatched part of
the picture, which must be ignored. The scene is written as a real video file
and replayed through :class:`monitor.daemon.Monitor` with gpiozero's mock pins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.status import EventRecord, FrameStatus

__all__ = ["ConsoleListener", "DemoScene", "build_scene", "write_demo_files"]

WIDTH, HEIGHT, FPS = 320, 240, 10
FRAMES = 150
# Frame ranges of the story (at 10 fps: 3 s still, the cup in and staying, then gone).
CUP_IN, CUP_SETTLED, CUP_LEAVES, CUP_GONE = 30, 42, 85, 97
ROCKET_FROM, ROCKET_TO = 50, 80
WATCHED = [(170, 60), (310, 60), (310, 230), (170, 230)]  # the right-hand part of the picture


@dataclass(frozen=True, slots=True)
class DemoScene:
    """The files the demo wrote and what a correct monitor should report."""

    video: Path
    reference: Path
    config: Path
    expected_event_frames: tuple[int, int]


def _gray(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def build_scene(seed: int = 7) -> list[np.ndarray]:
    """Return the demo's grayscale frames: noise on a still photo, a cup that comes and goes."""
    from skimage import data

    background = _gray(data.camera(), (WIDTH, HEIGHT)).astype(np.float32)
    cup = _gray(data.coffee()[60:300, 150:420], (80, 70))
    rocket = _gray(data.rocket()[40:400, 200:330], (26, 70))
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(FRAMES):
        scene = background.copy()
        cup_x = _cup_x(index)
        if cup_x is not None:
            x0 = max(cup_x, 0)
            scene[120:190, x0 : min(cup_x + 80, WIDTH)] = cup[:, x0 - cup_x : min(80, WIDTH - cup_x)]
        if ROCKET_FROM <= index < ROCKET_TO:
            y = 170 - (index - ROCKET_FROM) * 5
            scene[y : y + 70, 40:66] = rocket[: HEIGHT - y]
        scene += rng.normal(0, 2.0, scene.shape).astype(np.float32)  # sensor noise
        frames.append(np.clip(scene, 0, 255).astype(np.uint8))
    return frames


def _cup_x(index: int) -> int | None:
    """Left edge of the cup in frame ``index``, or None when it is out of the picture."""
    if index < CUP_IN or index >= CUP_GONE:
        return None
    if index < CUP_SETTLED:  # slides in from the right edge
        return WIDTH - (index - CUP_IN + 1) * (WIDTH - 200) // (CUP_SETTLED - CUP_IN)
    if index < CUP_LEAVES:
        return 200
    return 200 + (index - CUP_LEAVES + 1) * (WIDTH - 200) // (CUP_GONE - CUP_LEAVES)


def write_demo_files(folder: Path) -> DemoScene:
    """Write the scene video, a reference (median of clean frames) and a config into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = build_scene()
    video = folder / "scene.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT), isColor=False)
    if not writer.isOpened():
        raise RuntimeError(f"{video}: OpenCV cannot write MJPG video here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    reference = folder / "reference.png"
    cv2.imwrite(str(reference), np.median(np.stack(frames[:CUP_IN]), axis=0).astype(np.uint8))
    config = folder / "config.yaml"
    polygon = ", ".join(f"[{x}, {y}]" for x, y in WATCHED)
    config.write_text(
        f"""# Written by `monitor demo`: a video file paced at {FPS} fps, a mock pin.
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: {FPS}}}
reference: reference.png
mask: {{include: [[{polygon}]]}}
detection: {{threshold: 0.80, clear_threshold: 0.85, trigger_frames: 3, clear_frames: 5, settle_frames: 5}}
gpio: {{pin: 17, mode: hold}}
events: {{log: events.jsonl, snapshots: snapshots}}
""",
        encoding="utf-8",
    )
    return DemoScene(video=video, reference=reference, config=config, expected_event_frames=(CUP_IN, CUP_GONE))


class ConsoleListener:
    """Prints the score now and then, every change of state, the pin and each event."""

    def __init__(self, *, pin_state: Callable[[], bool], write: Callable[[str], None], every: int = 10) -> None:
        self._pin_state = pin_state
        self._write = write
        self._every = every
        self._last_state: str | None = None
        self._last_pin: bool | None = None

    def on_frame(self, status: FrameStatus) -> None:
        pin = self._pin_state()
        if status.frame % self._every == 0 or status.state != self._last_state:
            bar = "#" * round(max(status.score, 0) * 30)
            self._write(f"frame {status.frame:4d}  score {status.score:.3f} {bar:<30}  {status.state}")
        if pin != self._last_pin:
            self._write(f"           GPIO17 -> {'ON ' if pin else 'OFF'}")
        self._last_state, self._last_pin = status.state, pin

    def on_event(self, record: EventRecord) -> None:
        detail = (
            f"snapshot {record.snapshot}" if record.snapshot else f"lowest score {record.extra.get('lowest_score')}"
        )
        self._write(f"  >> {record.type} at frame {record.frame}: score {record.score:.3f}, {detail}")

    def close(self) -> None:
        pass


def use_mock_pins() -> None:
    """Make gpiozero use its mock pin factory (the demo has no GPIO)."""
    os.environ["GPIOZERO_PIN_FACTORY"] = "mock"
