"""Instructions per frame at 320x240, full-frame mask, counted by valgrind's callgrind (issue 8).

A child Python compares FRAMES in-memory frames (a real photo with sensor-like
noise; every 8th with an object pasted in) with ``Comparator.compare(frame,
boxes=False)`` and feeds each score to ``Detector.update``: what the daemon
does per frame once the camera has delivered the Y plane. The same script
with zero frames (interpreter start, imports, set-up) is counted too; the
difference divided by FRAMES is the cost of one frame. Instruction counts do
not depend on this machine's load, unlike times.

OpenCV and OpenBLAS run single-threaded (idle pool threads would add spinning
instructions). valgrind emulates up to AVX2, so OpenCV and NumPy take their
AVX2 code paths; benchmarks/README.md turns the count into Pi estimates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

FRAMES = 200
TARGET = 10e6

CHILD = """
import sys
import cv2
import numpy as np
from skimage import data

from monitor.config import DetectionConfig
from monitor.detector import Detector
from monitor.similarity import Comparator

cv2.setNumThreads(1)
count = int(sys.argv[1])
reference = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (320, 240))
cup = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY), (80, 60))
rng = np.random.default_rng(1)
frames = []
for i in range(8):
    frame = np.clip(reference + rng.normal(0, 4, reference.shape), 0, 255).astype(np.uint8)
    if i == 7:
        frame[80:140, 60:140] = cup
    frames.append(frame)
comparator = Comparator(reference)
detector = Detector.from_config(DetectionConfig())
detector.update(comparator.compare(frames[0], boxes=False).score, frame=0, now=0.0)
for i in range(count):
    detector.update(comparator.compare(frames[i % 8], boxes=False).score, frame=i + 1, now=(i + 1) * 0.1)
"""


def callgrind(script: Path, frames: int, out: Path) -> tuple[int, dict[str, int]]:
    """Total instructions of one run, and instructions per shared object."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script), str(frames)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)], check=True, capture_output=True, text=True
    ).stdout
    total = int(re.search(r"^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", report, re.M).group(1).replace(",", ""))  # type: ignore[union-attr]
    by_object: dict[str, int] = defaultdict(int)
    for match in re.finditer(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S.*?\[(.+?)\]\s*$", report, re.M):
        by_object[_library(match.group(2))] += int(match.group(1).replace(",", ""))
    return total, by_object


def _library(path: str) -> str:
    name = Path(path).name
    for key, label in (
        ("cv2", "OpenCV"),
        ("_multiarray_umath", "NumPy"),
        ("libpython", "Python interpreter"),
        ("libc.so", "libc"),
        ("libm.so", "libm"),
    ):
        if key in name:
            return label
    return "other"


def main() -> list[dict[str, object]]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("skipped: valgrind (callgrind) is not installed; on Debian: apt install valgrind")
        return []
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        folder = Path(tmp)
        script = folder / "frames.py"
        script.write_text(CHILD, encoding="utf-8")
        empty, empty_parts = callgrind(script, 0, folder / "zero.out")
        full, full_parts = callgrind(script, FRAMES, folder / "frames.out")
    per_frame = (full - empty) / FRAMES
    print(f"callgrind, Comparator.compare(boxes=False) + Detector.update, 320x240, full-frame mask, {FRAMES} frames")
    print(f"  {full:,} - {empty:,} instructions (with and without the frames) = {per_frame / 1e6:.2f} M per frame")
    print(f"  target <= {TARGET / 1e6:.0f} M per frame: {'met' if per_frame <= TARGET else 'NOT met'}")
    print("  per frame, by where the instructions run:")
    for name in sorted(full_parts, key=lambda n: -(full_parts[n] - empty_parts.get(n, 0))):
        part = (full_parts[name] - empty_parts.get(name, 0)) / FRAMES
        print(f"    {name:20} {part / 1e6:6.2f} M")
    return [{"instructions_per_frame": per_frame}]


if __name__ == "__main__":
    main()
