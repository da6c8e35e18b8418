"""Change gating: the share of frames whose verdicts are reused, and the CPU per frame, on and off (issue 20).

Three replays, each run with ``detection.max_skip_frames`` 0 (gating off) and
10 (the default), alternating, three rounds, medians:

- the CDnet highway (a busy road), 320x240, the accuracy benchmark's polygon
  and threshold (0.9667, clear 0.9717);
- a still indoor scene with sensor noise: the people-720p hall with nobody in
  it (the per-pixel median of the clip) and fresh Gaussian noise (sigma 3) in
  every frame, 600 frames of MPEG-4 at 640x480 and again at 320x240, the left
  half watched, default thresholds.

The real pipeline runs in this process (``Monitor(realtime=False)``, the
``--scores`` table as a listener, OpenCV on one thread as ``monitor run``
sets it); CPU is ``time.process_time()`` (every thread) over the run, divided
by the frames. The source's decoding alone (the same source class reading the
whole recording) is shown apart: it is the floor gating cannot go below. Each
pair of runs is also checked for identical decisions (every event record but
its wall-clock times, and every frame's state word).
"""

from __future__ import annotations

import csv
import io
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import yaml
from common import (
    CLIP_720P,
    HIGHWAY,
    HIGHWAY_POLYGON,
    hall_background,
    highway_reference,
    missing,
    write_still_clip,
)

ROUNDS = 3
WALL_CLOCK = {"time", "start_time", "snapshot"}


def replay(config: Path, *, max_skip: int) -> tuple[float, int, float, list[object]]:
    """CPU seconds, frames, reused share and the decisions of one replay."""
    from monitor.config import load_config
    from monitor.daemon import Monitor
    from monitor.events import ScoreTable, read_events

    data = yaml.safe_load(config.read_text())
    data["detection"] = {**data.get("detection", {}), "max_skip_frames": max_skip}
    log = config.parent / f"events-{max_skip}.jsonl"
    log.unlink(missing_ok=True)
    data["events"] = {"log": str(log), "snapshots": None}
    path = config.with_name(f"gating-{max_skip}.yaml")
    path.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    monitor = Monitor(load_config(path), realtime=False, listeners=[ScoreTable(out)])
    started = time.process_time()
    summary = monitor.run()
    cpu = time.process_time() - started
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    reused = sum(row["reused"] == "1" for row in rows) / len(rows)
    events = [{k: v for k, v in e.items() if k not in WALL_CLOCK} for e in read_events(log)] if log.exists() else []
    decisions = [events, [(row["frame"], row["zone"], row["state"], row["below"]) for row in rows]]
    return cpu, summary.frames, reused, decisions


def decode_cost(config: Path) -> float:
    """CPU ms per frame of the source alone, reading the whole recording."""
    from monitor.config import load_config
    from monitor.sources import make_source

    source = make_source(load_config(config).source, realtime=False)
    started, count = time.process_time(), 0
    with source:
        while source.read() is not None:
            count += 1
    return (time.process_time() - started) / count * 1e3


def scenes(folder: Path) -> dict[str, Path]:
    found = {}
    if not missing(HIGHWAY):
        place = folder / "highway"
        place.mkdir()
        cv2.imwrite(str(place / "reference.png"), highway_reference())
        found["CDnet highway, busy road, 320x240, polygon"] = _config(
            place,
            {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240},
            mask=HIGHWAY_POLYGON,
            detection={"threshold": 0.9667, "clear_threshold": 0.9717},
        )
    if not missing(CLIP_720P):
        for width, height in ((640, 480), (320, 240)):
            place = folder / f"hall-{width}"
            place.mkdir()
            empty = hall_background((width, height))
            cv2.imwrite(str(place / "reference.png"), empty)
            write_still_clip(place / "still.mp4", empty, frames=600, fps=25)
            source = {"kind": "opencv", "device": str(place / "still.mp4"), "width": width, "height": height}
            half = [[0, 0], [width // 2, 0], [width // 2, height], [0, height]]
            found[f"still indoor hall, sensor noise, {width}x{height}, left half"] = _config(place, source, mask=half)
    return found


def _config(folder: Path, source: dict[str, object], *, mask: list[list[int]], **sections: object) -> Path:
    config = {"source": source, "reference": str(folder / "reference.png"), "mask": {"include": [mask]}}
    config["gpio"] = {"pin": None}
    config.update(sections)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> list[dict[str, object]]:
    cv2.setNumThreads(1)  # as monitor run does
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gating-") as tmp:
        found = scenes(Path(tmp))
        if not found:
            return []
        print("change gating: monitor's pipeline in this process, OpenCV on one thread, medians of 3 rounds")
        print(
            f"  {'':52} {'reused':>7} {'decode':>8} {'CPU ms/frame, gating off':>25} {'on':>7} {'same decisions':>15}"
        )
        for name, config in found.items():
            runs: dict[int, list[tuple[float, int, float, list[object]]]] = {0: [], 10: []}
            for _ in range(ROUNDS):
                for max_skip in runs:
                    runs[max_skip].append(replay(config, max_skip=max_skip))
            per_frame = {k: statistics.median(cpu / frames * 1e3 for cpu, frames, _, _ in v) for k, v in runs.items()}
            share = runs[10][0][2]
            same = runs[10][0][3] == runs[0][0][3]
            decode = statistics.median(decode_cost(config) for _ in range(ROUNDS))
            print(f"  {name:52} {share:7.1%} {decode:8.3f} {per_frame[0]:25.3f} {per_frame[10]:7.3f} {same!s:>6}")
            rows.append(
                {
                    "scene": name,
                    "reused_share": share,
                    "decode_ms": decode,
                    "ms_per_frame_off": per_frame[0],
                    "ms_per_frame_on": per_frame[10],
                    "same_decisions": same,
                }
            )
    print("  (decode: the source alone reading the recording, the floor of the CPU per frame with gating on)")
    return rows


if __name__ == "__main__":
    main()
