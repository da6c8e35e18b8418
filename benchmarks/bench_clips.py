"""What event clips cost per frame: the ring buffer, and the writer, side by side with clips off (issue 15).

The real ``people-720p.avi`` (682 frames of people crossing a hall) replayed
through ``Monitor(..., realtime=False)`` at 640x480, three ways, alternating,
ROUNDS times each (medians reported):

- clips off: no ``events.clips``;
- ring only: clips on, thresholds at 0 so that no event ever starts: every frame
  goes into the ring buffer and nothing is written (the cost every frame pays);
- recording: clips on, thresholds at 1 so that one event lasts the whole
  recording: every frame is also drawn and encoded by the writer thread.

The figure is process CPU time (``time.process_time``, every thread: decode,
read-ahead, compare, the clip writer) from ``Monitor`` construction to the end
of ``run()``, which joins the writer, divided by the frames; the clip's cost is
the difference to clips off. A replay runs faster than the camera would, so
the writer's queue is made long enough (``QUEUE_SECONDS``) for it to write
every frame rather than drop most: the figure is per frame written. Beside it, what the rejected alternative would
cost in the loop: JPEG-encoding each grey frame for the ring; and the ring's
own cost per frame, ``ClipRecorder.feed`` timed alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from common import CLIP_720P, missing, write_config

from monitor import clips
from monitor.clips import ClipPlan, ClipRecorder, frames_in, pick_codec
from monitor.config import load_config
from monitor.daemon import Monitor

ROUNDS = 3
WIDTH, HEIGHT, FPS = 640, 480, 25.0


def reference() -> np.ndarray:
    """The hall's per-pixel median over the clip: people move, the floor stays."""
    capture = cv2.VideoCapture(str(CLIP_720P))
    frames = []
    while len(frames) < 60:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
        for _ in range(10):
            capture.grab()
    capture.release()
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def configs(folder: Path) -> dict[str, Path]:
    picture = reference()
    source = {"kind": "opencv", "device": str(CLIP_720P), "width": WIDTH, "height": HEIGHT, "fps": FPS}
    made = {}
    for name, threshold, section in [
        ("clips off", 0.0, None),
        ("ring only (no event)", 0.0, {"folder": str(folder / "ring"), "pre_seconds": 3, "post_seconds": 3}),
        ("recording (one long event)", 1.0, {"folder": str(folder / "rec"), "pre_seconds": 3, "post_seconds": 3}),
    ]:
        (folder / name).mkdir()
        events: dict[str, object] = {"log": str(folder / name / "events.jsonl"), "snapshots": None}
        if section is not None:
            events["clips"] = section
        detection = {"threshold": threshold, "clear_threshold": threshold, "settle_frames": 0}
        made[name] = write_config(folder / name, reference=picture, source=source, events=events, detection=detection)
    return made


def cpu_per_frame(config_path: Path) -> Callable[[], float]:
    """One replay; returns CPU milliseconds per frame, every thread of the process counted."""
    config = load_config(config_path)

    def run() -> float:
        started = time.process_time()
        monitor = Monitor(config, config_path=config_path, realtime=False)
        summary = monitor.run()  # its close() finishes the clip: the writer's work is inside
        return (time.process_time() - started) * 1000 / summary.frames

    return run


def feed_cost(config_path: Path, frames: list[np.ndarray]) -> float:
    """Microseconds of CPU per ClipRecorder.feed with no event: what every frame pays, measured alone."""
    recorder = ClipRecorder.of(load_config(config_path), outlines=lambda verdicts: [])
    assert recorder is not None
    count = 20_000
    try:
        started = time.process_time()
        for number in range(count):
            recorder.feed(frames[number % len(frames)], (), frame=number, now=float(number))
        return (time.process_time() - started) * 1e6 / count
    finally:
        recorder.close()


def jpeg_ring_cost(frames: list[np.ndarray]) -> tuple[float, float]:
    """CPU ms and KB per frame of keeping JPEGs (quality 90) in the ring instead of the grey frames."""
    started = time.process_time()
    sizes = [len(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for frame in frames]
    return (time.process_time() - started) * 1000 / len(frames), statistics.mean(sizes) / 1024


def main() -> None:
    if missing(CLIP_720P):
        return
    with tempfile.TemporaryDirectory(prefix="bench-clips-") as name:
        folder = Path(name)
        paths = configs(folder)
        plan = ClipPlan.of(load_config(paths["recording (one long event)"]))  # with the real queue, for its line
        clips.QUEUE_SECONDS = 1000.0
        runs = {label: cpu_per_frame(path) for label, path in paths.items()}
        results: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(ROUNDS):
            for label, run in runs.items():
                results[label].append(run())
        medians = {label: statistics.median(values) for label, values in results.items()}
        off = medians["clips off"]
        config = load_config(paths["recording (one long event)"])
        codec = pick_codec(plan.size, plan.fps)
        written = sorted((folder / "rec").glob("*.mp4")) + sorted((folder / "rec").glob("*.avi"))
        print(f"people-720p.avi replayed at {WIDTH}x{HEIGHT}, {ROUNDS} rounds alternating, medians; codec: {codec}")
        print(f"{'':30s} {'CPU ms/frame':>12s} {'clip cost':>10s}")
        for label, value in medians.items():
            extra = "" if label == "clips off" else f"{value - off:+9.2f}"
            print(f"{label:30s} {value:12.2f} {extra:>10s}")
        if written:
            print(f"clip written: {frames_in(written[-1])} frames, {written[-1].stat().st_size / 1e6:.1f} MB")
        capture = cv2.VideoCapture(str(CLIP_720P))
        grey = []
        while len(grey) < 200:
            ok, bgr = capture.read()
            if not ok:
                break
            grey.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (WIDTH, HEIGHT)))
        capture.release()
        print(f"ClipRecorder.feed alone, no event: {feed_cost(paths['ring only (no event)'], grey):.1f} us/frame")
        jpeg_ms, jpeg_kb = jpeg_ring_cost(grey)
        print(
            f"the alternative, JPEG (q90) in the ring: {jpeg_ms:.2f} ms/frame in the loop, {jpeg_kb:.0f} KB/frame "
            f"(grey: 0 ms, {WIDTH * HEIGHT / 1024:.0f} KB/frame)"
        )
        print(plan.describe(config.events.clips))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
