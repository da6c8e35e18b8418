"""Real video clips with known change frames, written with OpenCV from sample photos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 160, 120


@dataclass(frozen=True)
class Clip:
    video: Path
    reference: Path
    changed: list[range]  # frame ranges in which the object sits in the watched area
    frames: int


def background() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.camera(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def object_patch() -> np.ndarray:
    from skimage import data

    cup = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)[60:300, 150:420]
    return cv2.resize(cup, (50, 40), interpolation=cv2.INTER_AREA)


def write_clip(folder: Path, *, frames: int, changed: list[range], fps: float = 25.0, seed: int = 3) -> Clip:
    """Write an MJPG clip: the photo with noise, and the cup at (90, 60) during ``changed`` ranges."""
    folder.mkdir(parents=True, exist_ok=True)
    base = background()
    patch = object_patch()
    rng = np.random.default_rng(seed)
    video = folder / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT), isColor=False)
    assert writer.isOpened()
    for index in range(frames):
        frame = base.astype(np.float32) + rng.normal(0, 1.5, base.shape).astype(np.float32)
        if any(index in r for r in changed):
            frame[60:100, 90:140] = patch
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    reference = folder / "reference.png"
    cv2.imwrite(str(reference), base)
    return Clip(video=video, reference=reference, changed=changed, frames=frames)


def clip_config(clip: Clip, *, extra: str = "", fps: float = 25.0, loop: bool = False) -> str:
    """A config for the clip: the right half watched, quick trigger and clear."""
    looped = str(loop).lower()
    return f"""
source: {{kind: opencv, device: {clip.video.name}, width: {WIDTH}, height: {HEIGHT}, fps: {fps}, loop: {looped}}}
reference: {clip.reference.name}
mask: {{include: [[[80, 0], [160, 0], [160, 120], [80, 120]]]}}
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
gpio: {{pin: 17}}
events: {{log: events.jsonl, snapshots: snapshots}}
{extra}
"""


def write_scene(
    folder: Path, *, frames: int, placements: list[tuple[range, tuple[int, int], np.ndarray]], fps: float = 25.0
) -> Path:
    """Write an MJPG clip of the photo with noise and, in each range, ``patch`` with its top-left corner at (x, y)."""

    def where(index: int) -> list[tuple[tuple[int, int], np.ndarray]]:
        return [(place, patch) for during, place, patch in placements if index in during]

    return write_moving(folder, frames=frames, where=where, fps=fps)


def write_moving(
    folder: Path,
    *,
    frames: int,
    where: Callable[[int], list[tuple[tuple[int, int], np.ndarray]]],
    fps: float = 25.0,
) -> Path:
    """Write an MJPG clip of the photo with noise and, in frame i, each patch ``where(i)`` gives at its (x, y)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = background()
    rng = np.random.default_rng(5)
    video = folder / "scene.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT), isColor=False)
    assert writer.isOpened()
    for index in range(frames):
        frame = base.astype(np.float32) + rng.normal(0, 1.5, base.shape).astype(np.float32)
        for (x, y), patch in where(index):
            frame[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return video


def other_patch() -> np.ndarray:
    """Something that is neither the cup nor the empty background: a piece of the astronaut photo."""
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[30:230, 160:410]
    return cv2.resize(face, (50, 40), interpolation=cv2.INTER_AREA)
