"""The comparator against scikit-image, side by side in one run.

For each size (320x240, 640x480, 1280x720) and mask (full frame, left half),
time ``Comparator.score`` and ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255, full=True)`` on the same real photo pair, interleaved, and
report the ratio of their median times. Ratios, not absolute times: this
machine is shared and noisy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data
from skimage.metrics import structural_similarity

from monitor.similarity import Comparator

SIZES = [(320, 240), (640, 480), (1280, 720)]


def scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A real photo as reference and the same with noise and a pasted object as the frame."""
    reference = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (width, height))
    rng = np.random.default_rng(1)
    frame = np.clip(reference + rng.normal(0, 4, reference.shape), 0, 255).astype(np.uint8)
    cup = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY), (width // 4, height // 4))
    frame[height // 3 : height // 3 + cup.shape[0], width // 6 : width // 6 + cup.shape[1]] = cup
    return reference, frame


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def compare_once(width: int, height: int, half: bool, rounds: int = 7) -> tuple[float, float]:
    reference, frame = scene(width, height)
    mask = None
    if half:
        mask = np.zeros((height, width), bool)
        mask[:, : width // 2] = True
    comparator = Comparator(reference, mask=mask)

    def ours() -> float:
        return comparator.score(frame)

    def theirs() -> object:
        return structural_similarity(
            reference, frame, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True
        )

    ours()
    theirs()
    inner = max(3, int(2e5 / (width * height) * 10))
    mine, ref = [], []
    for _ in range(rounds):  # interleave, so both see the same machine load
        mine += timed(ours, inner * 5)
        ref += timed(theirs, inner)
    return statistics.median(mine), statistics.median(ref)


def main() -> list[dict[str, object]]:
    rows = []
    default_threads = cv2.getNumThreads()
    # scikit-image (SciPy's ndimage) runs on one core; OpenCV may use several. One thread is
    # the honest ratio for a Pi Zero 2 W, whose cores are weak and which has other work to do.
    for threads in (default_threads, 1):
        cv2.setNumThreads(threads)
        print(f"\ncomparator vs scikit-image, OpenCV {threads} thread(s) (median per call, ratio = skimage / ours)")
        print(f"{'size':>10} {'mask':>10} {'ours ms':>9} {'skimage ms':>11} {'ratio':>7}")
        for width, height in SIZES:
            for half in (False, True):
                mine, ref = compare_once(width, height, half)
                label = "half" if half else "full"
                print(f"{width}x{height:<5} {label:>10} {mine * 1e3:9.2f} {ref * 1e3:11.2f} {ref / mine:7.1f}x")
                rows.append({"threads": threads, "size": f"{width}x{height}", "mask": label, "ratio": ref / mine})
    cv2.setNumThreads(default_threads)
    return rows


if __name__ == "__main__":
    main()
