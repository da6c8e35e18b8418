"""``monitor`` against Motion on the same 640x480 recordings: CPU milliseconds per frame (issue 20).

Two recordings, 640x480 MPEG-4 at 25 frames/s, looped by both: people walking
in a tiled hall (the people-720p clip, scaled), and the same hall empty and
still (the per-pixel median of that clip) with fresh sensor noise in every
frame. Each daemon runs paced at 25 frames/s, alone, one after the other (two
rounds, alternating); its CPU is read per thread from /proc (procstat.py) over
a window that opens once it runs steadily.

Motion (Debian's ``motion`` 4.5, installed here with apt-get if missing; this
benchmark never starts or stops a system Motion service) reads the file
through ``netcam_url file://...`` with its built-in detection defaults
(threshold 1500, noise_tune on, no despeckle), and pictures, movies,
snapshots, web control and stream off. Left at its defaults it decodes at the
file's rate + 1 (``netcam_params capture_rate``) and detects at ``framerate``
15, so it skips 40 % of the frames; ``framerate 25`` with ``capture_rate=25``
makes it detect every frame. Its frames are counted, not assumed: its detection
thread (``ml1``) sleeps once per frame it processes, so its voluntary context
switches count them. Its decoding is its ``nc2`` thread, shown apart.

``monitor run`` (half the frame watched; gating on, its default) is counted by
the frame numbers of two of its ``STATUS=`` notifications, the window running
between them. It decodes in its frame loop, so its decode is measured apart:
its own source class reading the whole file unpaced, and beside it what
reading the Y plane alone would cost (OpenCV ``CAP_PROP_CONVERT_RGB`` off),
which ``monitor`` does not do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from common import CLIP_720P, MONITOR, hall_background, missing, monitor_env, write_still_clip
from procstat import Notifications, cpu_between, threads

FPS = 25
SIZE = (640, 480)
WARM_UP = 3.0  # seconds before the window opens (Motion tunes its noise level on the first frames)
WINDOW = 10.0
ROUNDS = 2
HALF = [[0, 0], [320, 0], [320, 480], [0, 480]]  # the left half of the frame


def motion_binary() -> str | None:
    """Motion, installed with apt-get if missing (its postinst may enable a service; none is started here)."""
    found = shutil.which("motion")
    if found is None and shutil.which("apt-get") is not None and os.geteuid() == 0:
        print("installing Debian's motion package (apt-get install motion)...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "motion"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=600,
        )
        found = shutil.which("motion")
    return found


def write_recording(path: Path) -> int:
    """The 720p clip as a 640x480 MPEG-4 file at FPS; returns its frame count."""
    capture = cv2.VideoCapture(str(CLIP_720P))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, SIZE)
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
        count += 1
    writer.release()
    capture.release()
    return count


def gray_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    capture.release()
    return frames


def motion_config(folder: Path, clip: Path, *, every_frame: bool = True) -> Path:
    lines = [
        "daemon off",
        "log_level 4",
        f"target_dir {folder / 'motion-out'}",
        f"netcam_url file://{clip}",
        f"width {SIZE[0]}",
        f"height {SIZE[1]}",
        "picture_output off",
        "movie_output off",
        "snapshot_interval 0",
        "webcontrol_port 0",
        "stream_port 0",
    ]
    if every_frame:
        lines += [f"framerate {FPS}", f"netcam_params capture_rate={FPS}"]
    path = folder / ("motion-every-frame.conf" if every_frame else "motion-defaults.conf")
    path.write_text("\n".join(lines) + "\n")
    return path


def monitor_config(folder: Path, clip: Path, *, name: str, detection: dict[str, object]) -> Path:
    config = {
        "source": {"kind": "opencv", "device": str(clip), "width": SIZE[0], "height": SIZE[1], "fps": FPS},
        "reference": str(folder / "reference.png"),
        "mask": {"include": [HALF]},
        "detection": detection,
        "gpio": {"pin": None},
        "events": {"log": str(folder / f"events-{name}.jsonl"), "snapshots": None},
    }
    config["source"]["loop"] = True  # type: ignore[index]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    """End a process this benchmark started, by its id."""
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure_motion(binary: str, config: Path) -> dict[str, float]:
    """CPU seconds of the whole process and of its decoding thread, and frames detected, over WINDOW."""
    process = subprocess.Popen(
        [binary, "-n", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=config.parent
    )
    try:
        time.sleep(WARM_UP)
        before, started = threads(process.pid), time.monotonic()
        time.sleep(WINDOW)
        after, seconds = threads(process.pid), time.monotonic() - started
    finally:
        stop(process, signal.SIGINT)
    spent = cpu_between(before, after)
    detection = [sleeps for name, _, sleeps in spent.values() if name.startswith("ml")]
    return {
        "cpu": sum(cpu for _, cpu, _ in spent.values()),
        "decode": sum(cpu for name, cpu, _ in spent.values() if name.startswith("nc")),
        "frames": float(sum(detection)),
        "seconds": seconds,
    }


def measure_monitor(config: Path, folder: Path) -> dict[str, float]:
    """CPU seconds of ``monitor run`` between two STATUS notifications, and the frames between them."""
    with Notifications(folder) as notes:
        process = subprocess.Popen(
            [*MONITOR, "run", str(config)],
            env=monitor_env() | {"NOTIFY_SOCKET": notes.address},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            notes.wait("READY=1", timeout=60)
            time.sleep(WARM_UP)
            notes.drain()  # the statuses sent meanwhile
            first = _frame_of(notes.wait("STATUS=", timeout=10))
            before, started = threads(process.pid), time.monotonic()
            while time.monotonic() - started < WINDOW - 1:
                last = _frame_of(notes.wait("STATUS=", timeout=10))  # every 5 s
            after, seconds = threads(process.pid), time.monotonic() - started
        finally:
            stop(process, signal.SIGTERM)
    spent = cpu_between(before, after)
    return {"cpu": sum(cpu for _, cpu, _ in spent.values()), "frames": float(last - first), "seconds": seconds}


def _frame_of(status: str) -> int:
    match = re.search(r"frame (\d+)", status)
    if match is None:
        raise RuntimeError(f"no frame number in {status!r}")
    return int(match.group(1))


def decode_cost(clip: Path, *, y_plane: bool, paced: bool) -> float:
    """CPU ms per grey frame out of the file: as monitor's source gives it, or the Y plane alone.

    monitor's source: its own class (BGR from OpenCV, then grey). The Y plane:
    ``CAP_PROP_CONVERT_RGB`` off when the capture is opened (set afterwards, it
    is not honoured), which monitor does not do. Either one pass as fast as it
    decodes, or paced at FPS for WINDOW seconds, looping, as ``monitor run``
    reads a recording or a camera delivers.
    """
    from monitor.config import SourceConfig
    from monitor.sources import make_source

    started, clock = time.process_time(), time.monotonic()
    count = 0
    if y_plane:
        capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
        while not paced or time.monotonic() - clock < WINDOW:
            ok, frame = capture.read()
            if not ok:
                if not paced:
                    break
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            frame.copy()  # the source hands out a new array per frame
            count += 1
            if paced:
                time.sleep(max(0.0, clock + count / FPS - time.monotonic()))
        capture.release()
    else:
        config = SourceConfig(kind="opencv", device=str(clip), width=SIZE[0], height=SIZE[1], fps=FPS, loop=paced)
        source = make_source(config, realtime=paced)
        source.READ_AHEAD = 0  # decoded in this thread, as monitor run does
        with source:
            while (not paced or time.monotonic() - clock < WINDOW) and source.read() is not None:
                count += 1
    return (time.process_time() - started) / count * 1e3


def contenders(folder: Path, clip: Path, *, shipped: bool) -> dict[str, tuple[str, Path]]:
    found = {"Motion, defaults, every frame (framerate 25, capture_rate=25)": ("motion", motion_config(folder, clip))}
    if shipped:
        found["Motion, defaults as shipped (framerate 15)"] = ("motion", motion_config(folder, clip, every_frame=False))
    found["monitor run, half frame, ssim"] = ("monitor", monitor_config(folder, clip, name="full", detection={}))
    found["monitor run, half frame, ssim, downscale 2"] = (
        "monitor",
        monitor_config(folder, clip, name="half", detection={"downscale": 2}),
    )
    return found


def run_all(binary: str, folder: Path, contenders: dict[str, tuple[str, Path]]) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, (kind, config) in contenders.items():
            measured = measure_motion(binary, config) if kind == "motion" else measure_monitor(config, folder)
            results[name].append(measured)
    return results


def report(title: str, results: dict[str, list[dict[str, float]]], decode: float) -> list[dict[str, object]]:
    print(title)
    print(f"  {'':58} {'frames/s':>8} {'ms/frame':>9} {'of which decode':>16}")
    rows: list[dict[str, object]] = []
    for name, runs in results.items():
        per_frame = statistics.median(r["cpu"] / r["frames"] * 1e3 for r in runs)
        rate = statistics.median(r["frames"] / r["seconds"] for r in runs)
        if "decode" in runs[0]:
            decoding = statistics.median(r["decode"] / r["frames"] * 1e3 for r in runs)  # its nc2 thread
            note = f"{decoding:9.2f} (nc2)"
        else:
            decoding = decode
            note = f"{decoding:9.2f} (apart)"
        print(f"  {name:58} {rate:8.1f} {per_frame:9.2f} {note:>16}")
        rows.append({"scene": title, "contender": name, "ms_per_frame": per_frame, "decode_ms": decoding})
    return rows


def main() -> list[dict[str, object]]:
    if missing(CLIP_720P):
        return []
    binary = motion_binary()
    if binary is None:
        print("skipped: Motion is not installed and could not be installed (Debian: apt install motion)")
        return []
    version = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    cv2.setNumThreads(1)  # as monitor run does
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        folder = Path(tmp)
        busy, still = folder / "busy" / "hall.mp4", folder / "still" / "hall.mp4"
        busy.parent.mkdir()
        still.parent.mkdir()
        (busy.parent / "motion-out").mkdir()
        (still.parent / "motion-out").mkdir()
        frames = write_recording(busy)
        empty = hall_background(SIZE)
        write_still_clip(still, empty, frames=250, fps=FPS)
        reference = np.median(np.stack(gray_frames(busy)[::5]), axis=0).astype(np.uint8)
        cv2.imwrite(str(busy.parent / "reference.png"), reference)
        cv2.imwrite(str(still.parent / "reference.png"), empty)
        busy_results = run_all(binary, busy.parent, contenders(busy.parent, busy, shipped=True))
        still_results = run_all(binary, still.parent, contenders(still.parent, still, shipped=False))
        decode = {(y, p): decode_cost(busy, y_plane=y, paced=p) for y in (False, True) for p in (False, True)}
        still_decode = decode_cost(still, y_plane=False, paced=False)
    print(f"{version}")
    print(f"CPU per frame, all threads of the process, paced at {FPS} frames/s, {WINDOW:.0f} s windows,")
    print(f"{ROUNDS} rounds alternating, medians; the recordings are {SIZE[0]}x{SIZE[1]} MPEG-4, looped")
    rows += report(f"people walking in a hall ({frames} frames):", busy_results, decode[False, False])
    rows += report("the empty hall, still, sensor noise sigma 3 (250 frames):", still_results, still_decode)
    print("  monitor's decode, measured apart, ms a frame:     as fast as it goes   paced at 25 frames/s")
    for y_plane, what in ((False, "its OpenCV source (BGR, then grey)"), (True, "the Y plane alone (not used)")):
        print(f"    {what:45} {decode[y_plane, False]:17.2f} {decode[y_plane, True]:20.2f}")
    return rows


if __name__ == "__main__":
    main()
