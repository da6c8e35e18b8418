"""The whole replay pipeline against the walkthrough's per-frame loop, in frames per second (issue 8).

Ours: ``Monitor(..., realtime=False)`` over the recording, exactly what
``monitor replay --scores`` runs: decode, grayscale, compare, detect, write
the CSV row, log events and write their snapshots. Timed by its own
RunSummary (source open to source end).

Baseline, per frame, what the classic "compare two images with SSIM"
walkthrough does: ``cv2.imread`` (or ``VideoCapture.read``), ``cvtColor`` to
gray, and scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255, full=True)`` against
the reference, over the whole frame. Nothing else (no CSV, no detector).

Beside them, to show where our time goes: the source alone (decode and gray)
and the comparator alone on frames already in memory. Every contender runs
ROUNDS times, alternating, and the median is reported; then all again on one
core: OpenCV and FFmpeg's decoder limited to one thread and no read-ahead
thread in the source (FrameSource.READ_AHEAD = 0), since scikit-image uses one
core anyway.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from common import (
    CLIP_720P,
    HIGHWAY,
    HIGHWAY_POLYGON,
    SKIMAGE_SSIM,
    cv2_threads,
    highway_reference,
    interleaved,
    missing,
    rate,
    write_config,
)

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable
from monitor.similarity import Comparator
from monitor.sources import FrameSource, make_source

ROUNDS = 3
BASELINE_FRAMES = {"highway": 300, "clip": 40}  # the baseline is slow: a prefix of the recording is enough


@contextmanager
def single_threaded() -> Iterator[None]:
    """OpenCV's pool and FFmpeg's decoder threads (read at each open) limited to one, no read-ahead."""
    before = os.environ.get("OPENCV_FFMPEG_THREADS")
    read_ahead = FrameSource.READ_AHEAD
    os.environ["OPENCV_FFMPEG_THREADS"] = "1"
    FrameSource.READ_AHEAD = 0
    try:
        with cv2_threads(1):
            yield
    finally:
        FrameSource.READ_AHEAD = read_ahead
        if before is None:
            del os.environ["OPENCV_FFMPEG_THREADS"]
        else:
            os.environ["OPENCV_FFMPEG_THREADS"] = before


def pipeline(config_path: Path, source: Path, folder: Path) -> Callable[[], float]:
    """One replay of the whole recording through Monitor; returns frames/s."""
    config = load_config(config_path)

    def run() -> float:
        with (folder / "scores.csv").open("w", newline="", encoding="utf-8") as scores:
            table = ScoreTable(scores)
            monitor = Monitor(config, config_path=config_path, realtime=False, device=str(source), listeners=[table])
            summary = monitor.run()
        return summary.fps

    return run


def source_only(config_path: Path, source: Path) -> Callable[[], float]:
    """Decode and gray conversion alone, through the same source class."""
    config = load_config(config_path)

    def run() -> float:
        count = 0
        started = time.perf_counter()
        with make_source(config.source, realtime=False, device=str(source)) as frames:
            while frames.read() is not None:
                count += 1
        return rate(count, started)

    return run


def compare_only(config_path: Path, frames: list[np.ndarray]) -> Callable[[], float]:
    """The comparator alone (as the daemon calls it per frame) on frames already decoded."""
    from monitor.mask import zone_masks
    from monitor.watch import load_reference

    config = load_config(config_path)
    mask = zone_masks(config)["main"]
    detection = config.detection
    comparator = Comparator(load_reference(config), mask=mask, downscale=detection.downscale)

    def run() -> float:
        started = time.perf_counter()
        for frame in frames:
            comparator.compare(frame, boxes=False)
        return rate(len(frames), started)

    return run


def baseline_images(reference: np.ndarray, paths: list[Path]) -> Callable[[], float]:
    from skimage.metrics import structural_similarity

    def run() -> float:
        started = time.perf_counter()
        for path in paths:
            gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
            structural_similarity(reference, gray, **SKIMAGE_SSIM)
        return rate(len(paths), started)

    return run


def baseline_video(reference: np.ndarray, path: Path, count: int) -> Callable[[], float]:
    from skimage.metrics import structural_similarity

    def run() -> float:
        started = time.perf_counter()
        capture = cv2.VideoCapture(str(path))
        for _ in range(count):
            ok, frame = capture.read()
            if not ok:
                raise RuntimeError(f"{path}: ended before {count} frames")
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            structural_similarity(reference, gray, **SKIMAGE_SSIM)
        capture.release()
        return rate(count, started)

    return run


def highway_contenders(folder: Path) -> dict[str, Callable[[], float]]:
    reference = highway_reference()
    source = {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240}
    configs = {}
    for name, sections in {
        "polygon": {"mask": {"include": [HIGHWAY_POLYGON]}},
        "full frame": {},
        "polygon, downscale 2": {"mask": {"include": [HIGHWAY_POLYGON]}, "detection": {"downscale": 2}},
    }.items():
        (folder / name).mkdir()
        configs[name] = write_config(folder / name, reference=reference, source=source, **sections)  # type: ignore[arg-type]
    paths = sorted((HIGHWAY / "input").glob("*.jpg"))
    frames = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths[:300]]
    runs = {f"ours, {name}": pipeline(path, HIGHWAY / "input", path.parent) for name, path in configs.items()}
    runs["  decode+gray only"] = source_only(configs["polygon"], HIGHWAY / "input")
    runs["  compare only, polygon"] = compare_only(configs["polygon"], frames)
    runs["  compare only, full frame"] = compare_only(configs["full frame"], frames)
    runs["baseline (imread+cvtColor+skimage)"] = baseline_images(reference, paths[: BASELINE_FRAMES["highway"]])
    return runs


def clip_contenders(folder: Path) -> dict[str, Callable[[], float]]:
    capture = cv2.VideoCapture(str(CLIP_720P))
    frames = []
    while len(frames) < 60:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    capture.release()
    reference = frames[0]
    source = {"kind": "opencv", "device": str(CLIP_720P), "width": 1280, "height": 720}
    configs = {}
    for name, sections in {"full frame": {}, "full frame, downscale 2": {"detection": {"downscale": 2}}}.items():
        (folder / name).mkdir()
        configs[name] = write_config(folder / name, reference=reference, source=source, **sections)  # type: ignore[arg-type]
    runs = {f"ours, {name}": pipeline(path, CLIP_720P, path.parent) for name, path in configs.items()}
    runs["  decode+gray only"] = source_only(configs["full frame"], CLIP_720P)
    runs["  compare only, full frame"] = compare_only(configs["full frame"], frames)
    runs["baseline (VideoCapture+cvtColor+skimage)"] = baseline_video(reference, CLIP_720P, BASELINE_FRAMES["clip"])
    return runs


def measure(title: str, runs: dict[str, Callable[[], float]], threads: str) -> list[dict[str, object]]:
    results = interleaved(runs, rounds=ROUNDS)
    base = next(v for k, v in results.items() if k.startswith("baseline"))
    print(f"\n{title}, {threads} (median of {ROUNDS} alternating rounds)")
    print(f"{'':44} {'frames/s':>9} {'ms/frame':>9} {'x baseline':>10}")
    rows: list[dict[str, object]] = []
    for name, fps in results.items():
        print(f"{name:44} {fps:9.1f} {1e3 / fps:9.3f} {fps / base:9.1f}x")
        rows.append({"data": title, "threads": threads, "what": name.strip(), "fps": fps, "ratio": fps / base})
    return rows


def main() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        suites = []
        if not missing(HIGHWAY):
            (work / "highway").mkdir()
            suites.append(("cdnet-highway, 1700 JPEGs, 320x240", highway_contenders(work / "highway")))
        if not missing(CLIP_720P):
            (work / "clip").mkdir()
            suites.append(("people-720p.avi, H.264 1280x720", clip_contenders(work / "clip")))
        for title, runs in suites:
            rows += measure(title, runs, f"OpenCV default ({cv2.getNumThreads()} threads)")
            with single_threaded():
                rows += measure(title, runs, "one core: OpenCV and FFmpeg 1 thread, no read-ahead")
    return rows


if __name__ == "__main__":
    main()
