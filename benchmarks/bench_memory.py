"""Resident memory of ``monitor replay`` (issue 8) and of ``monitor run`` (issue 20).

``monitor replay``: the real command in a child process; its peak RSS is
``ru_maxrss`` (KiB on Linux) of ``getrusage(RUSAGE_CHILDREN)`` in a small Python
process that spawned it (see PROBE for why not from here). On the 720p clip at
full size (the biggest frames here) and on the 320x240 highway folder.

``monitor run``: the daemon as systemd starts it, on a looped recording, with
its bytecode compiled (as an installed package has it: this checkout's
environment sets PYTHONDONTWRITEBYTECODE, which would make every start compile
every module, about 1 MB more); its VmRSS, peak VmHWM and how much of it is
anonymous memory (the process's own) and file pages (shared libraries' code,
shared with any other process using them and dropped first when memory is
short) from /proc/PID/status, some seconds after its first scored frame.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from common import (
    CLIP_720P,
    HIGHWAY,
    HIGHWAY_POLYGON,
    MONITOR,
    hall_background,
    highway_reference,
    missing,
    monitor_env,
    write_config,
    write_still_clip,
)
from procstat import Notifications, memory

TARGET_MB = 150
RUN_TARGET_MB = 80
RUN_COLUMNS = (("VmRSS", 6), ("VmHWM", 6), ("RssAnon", 7), ("RssFile", 8))


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


def main_replay() -> list[dict[str, object]]:
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


def run_memory(config: Path, folder: Path) -> dict[str, int]:
    """/proc/PID/status memory of ``monitor run CONFIG`` 5 s after its first scored frame, in KiB."""
    env = monitor_env() | {"PYTHONPYCACHEPREFIX": str(folder / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with Notifications(folder) as notes:
        process = subprocess.Popen(
            [*MONITOR, "run", str(config)],
            env=env | {"NOTIFY_SOCKET": notes.address},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            notes.wait("READY=1", timeout=60)
            time.sleep(5.0)
            found = memory(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    return found


def run_cases(folder: Path) -> list[tuple[str, Path]]:
    cases = []
    if not missing(HIGHWAY):
        highway = {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240}
        place = folder / "run-highway"
        place.mkdir()
        config = write_config(
            place,
            reference=highway_reference(),
            source={**highway, "fps": 10, "loop": True},
            mask={"include": [HIGHWAY_POLYGON]},
        )
        cases.append(("highway folder, 320x240, polygon", config))
    if not missing(CLIP_720P):
        for width, height in ((320, 240), (640, 480)):
            place = folder / f"run-hall-{width}"
            place.mkdir()
            empty = hall_background((width, height))
            write_still_clip(place / "still.mp4", empty, frames=100, fps=25)
            source = {"kind": "opencv", "device": str(place / "still.mp4"), "width": width, "height": height}
            config = write_config(place, reference=empty, source={**source, "fps": 25, "loop": True})
            cases.append((f"still hall clip, {width}x{height}, whole frame", config))
    return cases


def main_run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    print(f"memory of `monitor run CONFIG` 5 s after its first scored frame (target <= {RUN_TARGET_MB} MB)")
    print(f"  {'':44} {'VmRSS':>9} {'peak':>9} {'anonymous':>10} {'file pages':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-run-") as tmp:
        folder = Path(tmp)
        cases = run_cases(folder)
        if cases:
            run_memory(cases[0][1], folder)  # compiles the bytecode and warms the page cache
        for name, config in cases:
            kib = run_memory(config, folder)
            mb = {key: value * 1024 / 1e6 for key, value in kib.items()}
            figures = " ".join(f"{mb[key]:{width}.1f} MB" for key, width in RUN_COLUMNS)
            print(f"  {name:44} {figures}")
            rows.append({"case": name, **{f"{key}_mb": value for key, value in mb.items()}})
    return rows


def main() -> list[dict[str, object]]:
    return [{"command": "replay", **row} for row in main_replay()] + [{"command": "run", **row} for row in main_run()]


if __name__ == "__main__":
    main()
