"""Peak resident memory of ``monitor replay`` (issue 8).

The real command in a child process; its peak RSS is ``ru_maxrss`` (KiB on Linux)
of ``getrusage(RUSAGE_CHILDREN)`` in a small Python process that spawned it
(see PROBE for why not from here). On the 720p clip at full size (the biggest frames here) and on
the 320x240 highway folder; each also at ``detection.downscale: 2``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
from common import (
    CLIP_720P,
    HIGHWAY,
    HIGHWAY_POLYGON,
    MONITOR,
    highway_reference,
    missing,
    monitor_env,
    write_config,
)

TARGET_MB = 150


# Linux carries a process's peak RSS across exec, and a child spawned from this (by now large)
# process starts out sharing its memory: measured from here, every child would "peak" at our
# size. So a small Python in between spawns the command and reports its children's peak.
PROBE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_kib(config: Path, source: Path, scores: Path) -> int:
    """Peak RSS in KiB of one ``monitor replay`` run."""
    command = [*MONITOR, "replay", str(config), "--source", str(source), "--scores", str(scores)]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *command], env=monitor_env(), check=True, capture_output=True, text=True
    )
    return int(probe.stdout)


def first_frame_gray(path: Path) -> object:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f"{path}: no frame")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def main() -> list[dict[str, object]]:
    cases = []
    if not missing(CLIP_720P):
        clip = {"kind": "opencv", "device": str(CLIP_720P), "width": 1280, "height": 720}
        cases.append(("people-720p.avi, 1280x720, full frame", CLIP_720P, clip, {}, first_frame_gray(CLIP_720P)))
        cases.append(("people-720p.avi, downscale 2", CLIP_720P, clip, {"downscale": 2}, first_frame_gray(CLIP_720P)))
    if not missing(HIGHWAY):
        highway = {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240}
        reference = highway_reference()
        cases.append(("cdnet-highway, 320x240, polygon", HIGHWAY / "input", highway, {}, reference))
    rows: list[dict[str, object]] = []
    print(f"peak RSS of `monitor replay CONFIG --source ... --scores ...` (ru_maxrss; target <= {TARGET_MB} MB)")
    print("  (MiB = 2^20 bytes, what top and /usr/bin/time count in; MB = 10^6 bytes)")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for index, (name, source, source_config, detection, reference) in enumerate(cases):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            mask = {"include": [HIGHWAY_POLYGON]} if source == HIGHWAY / "input" else {}
            config = write_config(
                folder,
                reference=reference,
                source=source_config,
                mask=mask,
                detection=detection,  # type: ignore[arg-type]
            )
            kib = peak_rss_kib(config, source, folder / "scores.csv")
            print(f"  {name:40} {kib / 1024:7.1f} MiB {kib * 1024 / 1e6:7.1f} MB")
            rows.append({"case": name, "peak_rss_mib": kib / 1024, "peak_rss_mb": kib * 1024 / 1e6})
    return rows


if __name__ == "__main__":
    main()
