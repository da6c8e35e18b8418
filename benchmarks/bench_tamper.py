"""What the tamper checks cost per frame, as a share of the frame's whole cost (issue 13: well under 10 %).

Side by side in one run, at 320x240 (the CDnet highway as recorded) and
640x480 (the same frames scaled up with INTER_CUBIC and written as JPEGs),
all on one core (OpenCV with one thread, no read-ahead thread):

1. The whole ``monitor replay`` pipeline over the image folder (decode, checks,
   comparison, detection, the per-frame CSV row) with the tamper checks on
   (the default), the CPU time spent inside ``Watches.check_tamper`` summed
   frame by frame in the same run: its share of the frame's whole CPU time
   is the figure the issue asks for. Beside it the same replay with
   ``tamper: null`` (the difference of the two totals says the same, but
   is at the mercy of this shared machine). With the road polygon watched
   (the cheaper comparison, so the larger share) and with the whole frame.
2. The parts alone on frames already in memory: ``Watches.judge`` (the
   zones), ``TamperCheck.look`` on the frames as they are (a steady camera),
   on the frames shifted by (3, -2) pixels (a sagged camera: the whole-pixel
   refinement and the re-alignment run on every frame), and as a live source
   (the frozen check compares every frame with the one before).

Every contender runs ROUNDS times, alternating, and the median is reported;
times are the process's CPU time (``time.process_time``), not the wall clock,
since everything runs on one thread and this machine is shared: waiting for
a core is not the frame's cost.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from bench_pipeline import single_threaded
from common import HIGHWAY, HIGHWAY_POLYGON, highway_reference, interleaved, missing, write_config

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable
from monitor.watch import Watches

ROUNDS = 7
FRAMES = {320: range(470, 1701), 640: range(470, 870)}  # 640x480: 400 frames keep the JPEGs written quick
IN_MEMORY = 300  # frames held in memory for the parts alone
SAG = (3, -2)


def frames_at(width: int, numbers: range, folder: Path) -> tuple[Path, list[np.ndarray], np.ndarray]:
    """The highway frames at ``width`` (an image folder, the first IN_MEMORY decoded) and the reference."""
    height = width * 3 // 4
    reference = highway_reference()
    if width == 320:
        source = HIGHWAY / "input"
        paths = [source / f"in{n:06d}.jpg" for n in numbers]
    else:
        source = folder / f"frames-{width}"
        source.mkdir()
        reference = cv2.resize(reference, (width, height), interpolation=cv2.INTER_CUBIC)
        paths = []
        for n in numbers:
            image = cv2.imread(str(HIGHWAY / "input" / f"in{n:06d}.jpg"))
            path = source / f"in{n:06d}.jpg"
            cv2.imwrite(str(path), cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC))
            paths.append(path)
    decoded = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION) for p in paths[:IN_MEMORY]]
    return source, decoded, reference


def configs(folder: Path, width: int, reference: np.ndarray, source: Path) -> dict[str, Path]:
    scale = width / 320
    polygon = [[round(x * scale), round(y * scale)] for x, y in HIGHWAY_POLYGON]
    source_section = {"kind": "images", "device": str(source), "width": width, "height": width * 3 // 4}
    made = {}
    for name, sections in {
        "polygon": {"mask": {"include": [polygon]}},
        "polygon, tamper: null": {"mask": {"include": [polygon]}, "tamper": None},
        "whole frame": {},
        "whole frame, tamper: null": {"tamper": None},
    }.items():
        (folder / name).mkdir(parents=True)
        made[name] = write_config(folder / name, reference=reference, source=source_section, **sections)  # type: ignore[arg-type]
    return made


def cpu_rate(count: int, started: float) -> float:
    """Items per CPU second since ``started`` (a process_time value)."""
    return count / (time.process_time() - started)


def replay(config_path: Path, source: Path, checks: list[float]) -> Callable[[], float]:
    """One ``monitor replay --scores`` of the folder; frames per CPU second.

    Appends to ``checks`` the share of that CPU time spent in the tamper checks.
    """
    config = load_config(config_path)

    def run() -> float:
        with (config_path.parent / "scores.csv").open("w", newline="", encoding="utf-8") as scores:
            monitor = Monitor(
                config, config_path=config_path, realtime=False, device=str(source), listeners=[ScoreTable(scores)]
            )
            spent = [0.0]
            check = monitor.watches.check_tamper

            def timed_check(image: np.ndarray, **keywords: Any) -> Any:
                started = time.thread_time()
                try:
                    return check(image, **keywords)
                finally:
                    spent[0] += time.thread_time() - started

            monitor.watches.check_tamper = timed_check  # type: ignore[method-assign]
            started = time.process_time()
            summary = monitor.run()
            total = time.process_time() - started
            checks.append(spent[0] / total)
            return summary.frames / total

    return run


def parts(config_path: Path, frames: list[np.ndarray]) -> dict[str, Callable[[], float]]:
    """The zones' judging and the checks alone, frames/s, on frames in memory."""
    watches = Watches.load(load_config(config_path), config_path=config_path)
    check = watches.tamper
    assert check is not None
    matrix = np.float32([[1, 0, SAG[0]], [0, 1, SAG[1]]])
    size = (frames[0].shape[1], frames[0].shape[0])
    sagged = [cv2.warpAffine(f, matrix, size, borderMode=cv2.BORDER_REPLICATE) for f in frames]
    assert check.look(sagged[0], frame=0, now=0.0, live=False).aligned == SAG

    def judge() -> float:
        started = time.process_time()
        for index, frame in enumerate(frames):
            watches.judge(frame, frame=index, now=index / 10)
        return cpu_rate(len(frames), started)

    def look(images: list[np.ndarray], *, live: bool) -> Callable[[], float]:
        def run() -> float:
            started = time.process_time()
            for index, image in enumerate(images):
                check.look(image, frame=index, now=index / 10, live=live)
            return cpu_rate(len(images), started)

        return run

    return {
        "judge (the zones)": judge,
        "checks, steady camera": look(frames, live=False),
        "checks, sagged camera": look(sagged, live=False),
        "checks, live source": look(frames, live=True),
    }


def report(width: int, configs_by_name: dict[str, Path], source: Path, frames: list[np.ndarray]) -> None:
    height = width * 3 // 4
    shares: dict[str, list[float]] = {name: [] for name in configs_by_name}
    runs = {name: replay(path, source, shares[name]) for name, path in configs_by_name.items()}
    whole = interleaved(runs, rounds=ROUNDS)
    print(f"\n{width}x{height}, monitor replay of {len(FRAMES[width])} frames (median of {ROUNDS} rounds, one core)")
    print(f"{'':28} {'frames/CPU s':>12} {'ms/frame':>9} {'in checks':>10} {'share':>7} {'difference':>11}")
    for watched in ("polygon", "whole frame"):
        on, off = whole[watched], whole[f"{watched}, tamper: null"]
        share = statistics.median(shares[watched])
        difference = (1 / on - 1 / off) * on
        print(
            f"{watched + ', checks on':28} {on:12.0f} {1e3 / on:9.3f} {1e3 * share / on:10.3f} "
            f"{100 * share:6.1f}% {100 * difference:10.1f}%"
        )
        print(f"{watched + ', tamper: null':28} {off:12.0f} {1e3 / off:9.3f}")
    alone = interleaved(parts(configs_by_name["polygon"], frames), rounds=ROUNDS)
    judge = alone["judge (the zones)"]
    print(f"\n{width}x{height}, the parts alone on {len(frames)} frames in memory, polygon watched")
    print(f"{'':28} {'frames/CPU s':>12} {'ms/frame':>9} {'/ judge':>8} {'/ replay frame':>15}")
    frame_cost = 1 / whole["polygon, tamper: null"]
    for name, fps in alone.items():
        share = f"{100 * (1 / fps) / frame_cost:14.1f}%" if name != "judge (the zones)" else ""
        print(f"{name:28} {fps:12.0f} {1e3 / fps:9.3f} {100 * judge / fps:7.1f}% {share}")


def main() -> None:
    if missing(HIGHWAY):
        return
    with tempfile.TemporaryDirectory(prefix="bench-tamper-") as tmp, single_threaded():
        for width in (320, 640):
            folder = Path(tmp) / str(width)
            folder.mkdir()
            source, frames, reference = frames_at(width, FRAMES[width], folder)
            report(width, configs(folder, width, reference, source), source, frames)


if __name__ == "__main__":
    main()
