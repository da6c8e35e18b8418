"""Instructions per frame at 320x240, counted by valgrind's callgrind (issues 8 and 20).

A child Python compares FRAMES in-memory frames (a real photo with sensor-like
noise; every 8th with an object pasted in) with ``Comparator.compare(frame,
boxes=False)`` and feeds each score to ``Detector.update``: what the daemon
does per frame once the camera has delivered the Y plane. The same script
with zero frames (interpreter start, imports, set-up) is counted too; the
difference divided by FRAMES is the cost of one frame. Instruction counts do
not depend on this machine's load, unlike times.

Three cases: the whole frame watched, the left half watched, and the change
gate (``ChangeGate.may_reuse``) on a still noisy frame of the left half, i.e.
what a frame costs when its verdict is reused.

OpenCV and OpenBLAS run single-threaded (idle pool threads would add spinning
instructions). valgrind emulates up to AVX2, so OpenCV and NumPy take their
AVX2 code paths; benchmarks/README.md turns the count into Pi estimates.
``bench_aarch64.py`` counts the same child on arm64 under qemu.
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
TARGET = 3.0e6  # issue 20: at 320x240 with a half-frame mask (issue 8's 10 M was for the whole frame)

# No scikit-image import in the child (it would double the interpreter's start-up to count):
# its sample photos are read from where the package keeps them.
CHILD = """
import importlib.util
import sys

import cv2
import numpy as np

from monitor.config import DetectionConfig
from monitor.detector import Detector
from monitor.gating import ChangeGate, Standing
from monitor.similarity import Comparator

cv2.setNumThreads(1)
count, case, photos = int(sys.argv[1]), sys.argv[2], sys.argv[3]
reference = cv2.resize(cv2.imread(photos + "/astronaut.png", cv2.IMREAD_GRAYSCALE), (320, 240))
cup = cv2.resize(cv2.imread(photos + "/coffee.png", cv2.IMREAD_GRAYSCALE), (80, 60))
rng = np.random.default_rng(1)
frames = []
for i in range(8):
    frame = np.clip(reference + rng.normal(0, 4, reference.shape), 0, 255).astype(np.uint8)
    if i == 7 and case != "gate":
        frame[80:140, 60:140] = cup
    frames.append(frame)
mask = None
if case != "whole":
    mask = np.zeros(reference.shape, bool)
    mask[:, :160] = True
if case == "gate":
    gate = ChangeGate([mask], reference.shape, max_skip=10**9)
    standing = [Standing(score=0.99, floor=0.9, steady=True)]
    for i in range(12):
        gate.may_reuse(frames[i % 8], standing)
        gate.scored(frames[i % 8], standing)
    for i in range(count):
        assert gate.may_reuse(frames[i % 8], standing)
else:
    comparator = Comparator(reference, mask=mask)
    detector = Detector.from_config(DetectionConfig())
    detector.update(comparator.compare(frames[0], boxes=False).score, frame=0, now=0.0)
    for i in range(count):
        detector.update(comparator.compare(frames[i % 8], boxes=False).score, frame=i + 1, now=(i + 1) * 0.1)
"""

CASES = {
    "whole": "Comparator.compare + Detector.update, whole frame",
    "half": "Comparator.compare + Detector.update, left half",
    "gate": "ChangeGate.may_reuse (a reused frame), left half",
}


def photos_folder() -> str:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations is not None
    return str(Path(spec.submodule_search_locations[0]) / "data")


def callgrind(script: Path, frames: int, case: str, out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script)]
    return subprocess.Popen(
        [*command, str(frames), case, photos_folder()], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def totals(out: Path) -> tuple[int, dict[str, int]]:
    """Total instructions of one run, and instructions per shared object."""
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
    rows: list[dict[str, object]] = []
    print(f"callgrind, 320x240, {FRAMES} frames minus none, instructions per frame (x86-64, AVX2):")
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        folder = Path(tmp)
        script = folder / "frames.py"
        script.write_text(CHILD, encoding="utf-8")
        for case, title in CASES.items():
            # The two runs of a case side by side: this machine has two cores.
            runs = [callgrind(script, n, case, folder / f"{case}-{n}.out") for n in (0, FRAMES)]
            for run in runs:
                if run.wait() != 0:
                    raise RuntimeError(f"valgrind failed on the {case} case")
            (empty, empty_parts), (full, full_parts) = (totals(folder / f"{case}-{n}.out") for n in (0, FRAMES))
            per_frame = (full - empty) / FRAMES
            parts = {name: (full_parts[name] - empty_parts.get(name, 0)) / FRAMES for name in full_parts}
            shown = ", ".join(f"{name} {value / 1e6:.2f}" for name, value in sorted(parts.items(), key=lambda p: -p[1]))
            print(f"  {title:52} {per_frame / 1e6:5.2f} M  ({shown})")
            rows.append({"case": case, "instructions_per_frame": per_frame})
    half = next(row["instructions_per_frame"] for row in rows if row["case"] == "half")
    verdict = "met" if float(half) <= TARGET else "NOT met"  # type: ignore[arg-type]
    print(f"  target <= {TARGET / 1e6:.1f} M per frame with the half-frame mask: {verdict}")
    return rows


if __name__ == "__main__":
    main()
