"""What the benchmarks share: the real data beside the checkout, scenes built from it, timing helpers.

The data lives in ``../shared/data`` (see its README); it is never copied into
the project. A benchmark whose data is absent prints why and is skipped.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
HIGHWAY = SHARED / "cdnet-highway"
CLIP_720P = SHARED / "clips" / "people-720p.avi"
MONITOR = [sys.executable, "-m", "monitor"]

# The watched area on the highway: the right lane and the right half of the left lane, from the
# first third of the road to the bottom of the picture, clear of the tree shadows that sway over
# the left lane (chosen by eye on frame 500 with a 20-pixel grid; see benchmarks/README.md).
HIGHWAY_POLYGON = [[205, 40], [262, 40], [252, 230], [120, 230]]
HIGHWAY_SIZE = (320, 240)
EVALUATED = range(470, 1701)  # temporalROI.txt: the frames with ground truth
# A frame is "changed" when at least this many ground-truth "moving object" pixels fall inside the polygon.
MIN_OBJECT_PIXELS = 50

# The walkthrough's SSIM, as the baseline computes it.
SKIMAGE_SSIM = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 255,
    "full": True,
}


def missing(*paths: Path) -> bool:
    """Print a skip message and return True when any of ``paths`` is absent."""
    gone = [p for p in paths if not p.exists()]
    for path in gone:
        print(f"skipped: {path} is absent (the shared data lives beside the checkout, see benchmarks/README.md)")
    return bool(gone)


def highway_frame_path(number: int) -> Path:
    """``input/in000001.jpg`` is frame 1 (the CSV of a replay counts it as frame 0)."""
    return HIGHWAY / "input" / f"in{number:06d}.jpg"


def read_luma(path: Path) -> np.ndarray:
    """A JPEG frame as the image-folder source decodes it: its luma plane."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise OSError(f"{path}: cannot decode")
    return image


def highway_reference() -> np.ndarray:
    """A car-free reference: the per-pixel median of every third frame before the evaluated ones.

    Frames 1-469 have no ground truth and are not scored, so the reference is
    built from data the evaluation never sees, as ``monitor capture-reference``
    would build it from the live camera (a median of frames).
    """
    frames = [read_luma(highway_frame_path(n)) for n in range(1, EVALUATED.start, 3)]
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def highway_mask() -> np.ndarray:
    """The polygon as the daemon rasterises it."""
    from monitor.config import MaskConfig
    from monitor.mask import build_mask

    mask = build_mask(MaskConfig(include=[[tuple(p) for p in HIGHWAY_POLYGON]]), width=320, height=240)
    assert mask is not None
    return mask


def highway_truth(mask: np.ndarray) -> dict[int, bool]:
    """Frame number -> at least MIN_OBJECT_PIXELS ground-truth object pixels (255) inside ``mask``."""
    truth = {}
    for number in EVALUATED:
        gt = cv2.imread(str(HIGHWAY / "groundtruth" / f"gt{number:06d}.png"), cv2.IMREAD_GRAYSCALE)
        truth[number] = int(np.count_nonzero((gt == 255) & mask)) >= MIN_OBJECT_PIXELS
    return truth


def write_config(folder: Path, *, reference: np.ndarray, source: dict[str, object], **sections: object) -> Path:
    """Write ``reference.png`` and a config whose events go to ``folder``; no GPIO pin."""
    cv2.imwrite(str(folder / "reference.png"), reference)
    config: dict[str, object] = {
        "source": source,
        "reference": str(folder / "reference.png"),
        "gpio": {"pin": None},
        "events": {"log": str(folder / "events.jsonl"), "snapshots": str(folder / "snapshots")},
    }
    config.update(sections)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def monitor_env() -> dict[str, str]:
    """The environment for a ``monitor`` subprocess: mock pins, the project importable."""
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def replay(config: Path, source: Path, scores: Path) -> list[dict[str, str]]:
    """Run the real ``monitor replay`` and return its --scores CSV as rows."""
    import csv

    subprocess.run(
        [*MONITOR, "replay", str(config), "--source", str(source), "--scores", str(scores)],
        check=True,
        env=monitor_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with scores.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@contextmanager
def cv2_threads(count: int) -> Iterator[None]:
    """OpenCV's thread pool limited to ``count`` threads inside the block."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def interleaved(runs: dict[str, Callable[[], float]], *, rounds: int) -> dict[str, float]:
    """Call each rate-returning function ``rounds`` times, alternating, and return the median rates.

    Alternating makes every contender see the same share of this shared
    machine's load; the median drops the rounds another process disturbed.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rates[name].append(run())
    return {name: statistics.median(values) for name, values in rates.items()}


def rate(count: int, started: float) -> float:
    """Items per second since ``started`` (a perf_counter value)."""
    return count / (time.perf_counter() - started)


def hall_background(size: tuple[int, int]) -> np.ndarray:
    """The people-720p hall with nobody in it: the per-pixel median of every 10th frame, grey, at ``size``."""
    capture = cv2.VideoCapture(str(CLIP_720P))
    frames = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 10 == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        index += 1
    capture.release()
    empty = np.median(np.stack(frames), axis=0).astype(np.uint8)
    return cv2.resize(empty, size, interpolation=cv2.INTER_AREA)


def write_still_clip(path: Path, background: np.ndarray, *, frames: int, fps: float, sigma: float = 3.0) -> None:
    """A still indoor scene: ``background`` with fresh Gaussian sensor noise in every frame, as MPEG-4."""
    rng = np.random.default_rng(20)
    height, width = background.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height), isColor=False)
    for _ in range(frames):
        writer.write(np.clip(background + rng.normal(0, sigma, background.shape), 0, 255).astype(np.uint8))
    writer.release()
