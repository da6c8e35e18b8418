"""What zones cost: several change zones in one pass, and a state zone's several references.

Issue 12's targets, measured side by side in one run (interleaved rounds, the
median per frame of the process's CPU time, so that time spent waiting for a
core this shared machine gave to another process does not count; OpenCV on one
thread as on a Pi Zero 2 W's single busy core):

- four change zones must cost at most 1.3x one zone over the same union area
  (``Comparator(zones=[...]).compare_zones`` against one comparator whose mask
  is the union of the four);
- a 3-state zone at most 2x a change zone of the same size
  (``Comparator.of_states([a, b, c]).compare_references`` against
  ``Comparator(a).compare``).

For context it also times what sharing saves: four comparators of their own,
and three comparators of their own. Real photos, 640x480 and 320x240.

Issue 23: an activity zone (each frame against the one ``compare_seconds``
before) against a change zone of the same size, both through
``Watches.judge``, and the memory of its ring of crops at 10 frames/s with
``compare_seconds: 1``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from common import cv2_threads
from skimage import data

from monitor.config import parse_config
from monitor.similarity import Comparator
from monitor.watch import Watches

SIZES = [(320, 240), (640, 480)]
ROUNDS = 15


def scene(width: int, height: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A real photo as the reference, the same with noise and a pasted cup as the frame, and two other pictures."""
    reference = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (width, height))
    rng = np.random.default_rng(1)
    frame = np.clip(reference + rng.normal(0, 4, reference.shape), 0, 255).astype(np.uint8)
    cup = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY), (width // 4, height // 4))
    frame[height // 3 : height // 3 + cup.shape[0], width // 6 : width // 6 + cup.shape[1]] = cup
    others = [cv2.resize(data.camera(), (width, height)), np.ascontiguousarray(np.fliplr(reference))]
    return reference, frame, others


def quarters(width: int, height: int) -> list[np.ndarray]:
    """Four zones in the four quarters of the frame's middle (half the frame in all), a gap between them."""
    zones = []
    for top, left in (
        (height // 4, width // 4),
        (height // 4, width // 2 + 4),
        (height // 2 + 4, width // 4),
        (height // 2 + 4, width // 2 + 4),
    ):
        mask = np.zeros((height, width), bool)
        mask[top : top + height // 4 - 4, left : left + width // 4 - 4] = True
        zones.append(mask)
    return zones


def per_frame(fns: dict[str, Callable[[], object]], frames: int = 20) -> dict[str, float]:
    """CPU seconds per call of each function, the median of its rounds, the functions interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            started = time.process_time()
            for _ in range(frames):
                fn()
            times[name].append((time.process_time() - started) / frames)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(width: int, height: int) -> dict[str, float]:
    """Seconds per frame of each way of scoring, at this size."""
    reference, frame, others = scene(width, height)
    zones = quarters(width, height)
    one = Comparator(reference, zones=[np.logical_or.reduce(zones)])
    four = Comparator(reference, zones=zones)
    apart = [Comparator(reference, mask=zone) for zone in zones]
    region = zones[0] | zones[1]  # a zone of a quarter of the frame
    change = Comparator(reference, mask=region)
    states = Comparator.of_states([reference, *others], mask=region)
    singles = [Comparator(picture, mask=region) for picture in (reference, *others)]
    return per_frame(
        {
            "one": lambda: one.compare_zones(frame),
            "four": lambda: four.compare_zones(frame),
            "apart": lambda: [c.compare(frame, boxes=False) for c in apart],
            "change": lambda: change.compare(frame, boxes=False),
            "states": lambda: states.compare_references(frame),
            "singles": lambda: [c.score(frame) for c in singles],
        }
    )


def activity_against_change(width: int, height: int) -> tuple[float, float, int]:
    """Seconds per frame of an activity zone and of a change zone over the same quarter; the ring's bytes."""
    reference, frame, _ = scene(width, height)
    polygon = [[width // 4, height // 4], [3 * width // 4, height // 4], [3 * width // 4, height // 2]]
    polygon.append([width // 4, height // 2])
    source = f"source: {{width: {width}, height: {height}, fps: 10}}\n"
    change = parse_config(source + f"zones: {{z: {{mask: {{include: [{polygon}]}}}}}}")
    activity = parse_config(
        source + f"zones: {{z: {{mask: {{include: [{polygon}]}}, activity: {{compare_seconds: 1}}}}}}"
    )
    watches = {
        "change": Watches(change, reference=reference, state_references={}),
        "activity": Watches(activity, reference=None, state_references={}),
    }
    clock = {"now": 0.0}

    def judge(name: str) -> None:
        clock["now"] += 0.1  # 10 frames/s of frame time
        watches[name].judge(frame, frame=0, now=clock["now"])

    t = per_frame({name: (lambda name=name: judge(name)) for name in watches})
    ring = watches["activity"]._watches[0].ring_bytes  # type: ignore[union-attr]
    return t["activity"], t["change"], ring


def main() -> None:
    print(f"median CPU ms per frame, OpenCV on 1 thread, {ROUNDS} interleaved rounds")
    print(
        f"{'size':>9}  {'1 zone (union)':>14} {'4 zones':>8} {'ratio':>6} {'4 apart':>8}  "
        f"{'change':>7} {'3 states':>8} {'ratio':>6} {'3 apart':>8}"
    )
    with cv2_threads(1):
        for width, height in SIZES:
            t = measure(width, height)
            ms = {name: 1000 * value for name, value in t.items()}
            print(
                f"{width}x{height}  {ms['one']:14.3f} {ms['four']:8.3f} {t['four'] / t['one']:5.2f}x "
                f"{ms['apart']:8.3f}  {ms['change']:7.3f} {ms['states']:8.3f} {t['states'] / t['change']:5.2f}x "
                f"{ms['singles']:8.3f}"
            )
        print(f"\n{'size':>9}  {'change':>7} {'activity':>9} {'ratio':>6}  ring at 10 fps, compare_seconds 1")
        for width, height in SIZES:
            activity, change, ring = activity_against_change(width, height)
            print(
                f"{width}x{height}  {1000 * change:7.3f} {1000 * activity:9.3f} {activity / change:5.2f}x  "
                f"{ring / 1e6:.2f} MB (a quarter-frame zone; a whole-frame zone about 4x that)"
            )
    print("targets: 4 zones <= 1.3x one zone over the same union; 3 states <= 2x a change zone of the same size;")
    print("         an activity zone at most one more comparison of its crop than a change zone (<= 2x)")


if __name__ == "__main__":
    main()
