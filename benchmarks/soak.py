"""Soak: a looped clip through the whole pipeline for 50,000 frames, events firing; does anything grow?

The clip is 160x120, made from scikit-image's camera man with sensor noise,
and a cup (scikit-image's coffee) sits in the watched area for 30 of every
100 frames: one event, one snapshot, two hooks and four MQTT messages per
loop. The pipeline is ``monitor run``'s: ``Monitor`` with the integrations ``monitor run`` builds
with hooks (``true``), the status page (polled by a client thread), MQTT
(to a local mosquitto, when one is installed), a snapshot folder pruned to
20 files and an event log rotated every few hundred records; the pin is a
gpiozero mock pin. Frames are read as fast as they decode (``replay``).

Resident memory (``/proc/self/statm``) and open descriptors
(``/proc/self/fd``) are sampled at the first frame, after a warm-up of
10,000 frames (threads, connections and caches are set up, and the status
page's bounded 300 s score history, in clip time, is full), every 5,000
frames and at the end (descriptors there as the least of a few looks
over half a second, so that the pipes of a hook in flight do not count).
The mock pin's record of its own changes (a real pin keeps none) is
cleared at each sample. Targets: RSS growth from the warm-up to the end
under 5 MB, and no more descriptors at the end than after the warm-up.
Exits 1 when a target is missed.

    python benchmarks/soak.py [--frames 50000]

About 15 s on a desktop core, so ``make bench`` runs it too (50,000 frames).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.integrations import build_integrations
from monitor.status import EventRecord, FrameStatus

WIDTH, HEIGHT = 160, 120
LOOP = 100  # frames in the clip
CUP_FRAMES = range(40, 70)  # the cup is in the watched area for these frames of each loop
WARMUP = 10_000  # the status page's 300 s score history fills in 7,500 frames of the 25 fps clip
SAMPLE_EVERY = 5_000
RSS_TARGET_MB = 5.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / 1e6


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds() -> int:
    """Open descriptors, not counting the pipes of a hook that happens to be running: the least of a few looks."""
    counts = []
    for _ in range(10):
        counts.append(open_fds())
        time.sleep(0.05)
    return min(counts)


def write_clip(folder: Path) -> Path:
    """The looped clip (MJPG) and its reference; returns the clip's path."""
    from skimage import data

    base = cv2.resize(data.camera(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    cup = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)[60:300, 150:420], (50, 40))
    rng = np.random.default_rng(7)
    clip = folder / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 25, (WIDTH, HEIGHT), isColor=False)
    for index in range(LOOP):
        frame = base.astype(np.float32) + rng.normal(0, 1.5, base.shape).astype(np.float32)
        if index in CUP_FRAMES:
            frame[60:100, 90:140] = cup
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    cv2.imwrite(str(folder / "reference.png"), base)
    return clip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def mosquitto(folder: Path) -> Iterator[int | None]:
    """A local broker on a free port, or None when mosquitto is not installed."""
    program = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if program is None:
        yield None
        return
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([program, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.05)
        yield port
    finally:
        broker.terminate()
        broker.wait(timeout=10)


class Probe:
    """A listener that samples memory and descriptors, and stops the monitor after ``frames`` frames."""

    def __init__(self, frames: int, pin: Any) -> None:
        self.frames = frames
        self.pin = pin
        self.monitor: Monitor | None = None
        self.samples: list[tuple[int, float, int]] = []
        self.events = 0

    def sample(self, frame: int) -> None:
        self.pin.clear_states()
        fds = settled_fds() if frame in (WARMUP, self.frames - 1) else open_fds()
        self.samples.append((frame, rss_mb(), fds))
        frame_, mb, fds = self.samples[-1]
        print(f"  frame {frame_:>6}: RSS {mb:7.2f} MB, {fds:3d} open descriptors", flush=True)

    def on_frame(self, status: FrameStatus) -> None:
        if status.frame in (0, WARMUP) or status.frame % SAMPLE_EVERY == 0 or status.frame == self.frames - 1:
            self.sample(status.frame)
        if status.frame == self.frames - 1 and self.monitor is not None:
            self.monitor.stop()

    def on_event(self, record: EventRecord) -> None:
        self.events += record.type == "event_start"

    def close(self) -> None:
        pass


def poll_status_page(port: int, stop: threading.Event) -> None:
    """A client reading the JSON status twice a second, as a dashboard would."""
    while not stop.wait(0.5):
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5):
            pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from gpiozero.pins.mock import MockFactory

    with tempfile.TemporaryDirectory(prefix="soak-") as name, mosquitto(Path(name)) as mqtt_port:
        folder = Path(name)
        clip = write_clip(folder)
        http_port = free_port()
        config = {
            "source": {"kind": "opencv", "device": clip.name, "width": WIDTH, "height": HEIGHT, "loop": True},
            "reference": "reference.png",
            "mask": {"include": [[[80, 0], [160, 0], [160, 120], [80, 120]]]},
            "detection": {"threshold": 0.85, "clear_threshold": 0.9, "trigger_frames": 3, "clear_frames": 3},
            "gpio": {"pin": 17},
            "events": {
                "log": "events.jsonl",
                "snapshots": "snapshots",
                "keep_snapshots": 20,
                "max_log_mb": 0.1,
                "keep_logs": 2,
            },
            "hooks": {"on_event_start": ["true"], "on_event_end": ["true"]},
            "http": {"host": "127.0.0.1", "port": http_port},
        }
        if mqtt_port is not None:
            config["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "score_interval": 1.0}
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config))

        factory = MockFactory()
        probe = Probe(args.frames, factory.pin(17))
        soak_config = load_config(path)
        integrations = build_integrations(soak_config, scene=lambda: monitor.watches.scene)
        monitor = Monitor(
            soak_config, config_path=path, realtime=False, pin_factory=factory, listeners=[probe, *integrations]
        )
        for integration in integrations:
            integration.start()
        probe.monitor = monitor
        stop_polling = threading.Event()
        poller = threading.Thread(target=poll_status_page, args=(http_port, stop_polling), daemon=True)
        print(
            f"soak: {args.frames} frames of a {LOOP}-frame {WIDTH}x{HEIGHT} loop; hooks, status page, "
            + ("MQTT, " if mqtt_port is not None else "no MQTT (mosquitto not installed), ")
            + "snapshots, rotated event log",
            flush=True,
        )
        poller.start()
        started = time.perf_counter()
        try:
            summary = monitor.run()
        finally:
            stop_polling.set()
            poller.join(timeout=10)
            for integration in integrations:
                integration.close()
        seconds = time.perf_counter() - started
        snapshots = len(list((folder / "snapshots").glob("*.jpg")))
        logs = sorted(p.name for p in folder.glob("events.jsonl*"))
        last = read_events(folder / "events.jsonl")

    first = probe.samples[0]
    warm = next(sample for sample in probe.samples if sample[0] == WARMUP)
    end = probe.samples[-1]
    growth = end[1] - warm[1]
    fd_growth = end[2] - warm[2]
    print(
        f"\n{summary.frames} frames in {seconds:.0f} s ({summary.frames / seconds:.0f} frames/s), "
        f"{probe.events} events; {snapshots} snapshots kept, event logs {logs} ({len(last)} records in the live one)"
    )
    print(f"RSS: {first[1]:.2f} MB at frame 0, {warm[1]:.2f} MB after {WARMUP} frames, {end[1]:.2f} MB at the end")
    print(f"open descriptors: {first[2]} at frame 0, {warm[2]} after {WARMUP} frames, {end[2]} at the end")
    ok_rss, ok_fds = growth < RSS_TARGET_MB, fd_growth <= 0
    print(
        f"RSS growth {growth:+.2f} MB (target < {RSS_TARGET_MB:g}): {'ok' if ok_rss else 'MISSED'}; "
        f"descriptor growth {fd_growth:+d} (target 0): {'ok' if ok_fds else 'MISSED'}"
    )
    return 0 if ok_rss and ok_fds and summary.frames == args.frames else 1


if __name__ == "__main__":
    # Under benchmarks/run.py the command line is run.py's (benchmark file names), and a success
    # must not end its run.
    code = main([arg for arg in sys.argv[1:] if not arg.endswith(".py")])
    if code:
        sys.exit(code)
