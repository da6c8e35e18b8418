"""What the live view costs (issue 17): nothing without a viewer, one JPEG per streamed frame with any.

A real :class:`~monitor.web.server.StatusServer` on 127.0.0.1 is fed 640x480
frames at 10 frames/s, as ``monitor run`` feeds it, while 0, 1 or 3 ``curl``
processes watch ``/stream.mjpg`` (their CPU is theirs, not this process's).
Measured per round, the rounds of each contender alternated and the medians
taken: this process's CPU time per second of feeding (the frame loop's
``on_frame`` plus the HTTP threads), how many frames were JPEG-encoded per
second, and the median time of one ``on_frame`` call (what the frame loop
itself pays).
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

import monitor.web.state as state_module
from monitor.config import HttpConfig
from monitor.status import FrameStatus, Scene, Verdict
from monitor.web.server import StatusServer

WIDTH, HEIGHT = 640, 480
FEED_FPS = 10.0
SECONDS = 5.0
ROUNDS = 3
VIEWERS = (0, 1, 3)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def frames() -> list[np.ndarray]:
    from skimage import data

    base = cv2.resize(data.camera(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32)
    rng = np.random.default_rng(1)
    return [np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8) for _ in range(20)]


def status(index: int, image: np.ndarray) -> FrameStatus:
    verdict = Verdict(
        zone="main", kind="change", score=0.97, state="unchanged", settling=False, active=False,
        threshold=0.9, clear_threshold=0.93, changed_fraction=0.0, changed_pixels=0,
    )  # fmt: skip
    return FrameStatus.of([verdict], frame=index, time=time.time(), processing_seconds=0.01, image=image)


class Encodes:
    """Counts the JPEG encodings of the live state (the one costly step of the live view)."""

    def __init__(self) -> None:
        self.count = 0
        self._encode: Callable[[np.ndarray], bytes] = state_module._encode

    def __call__(self, image: np.ndarray) -> bytes:
        self.count += 1
        return self._encode(image)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def one_round(server: StatusServer, viewers: int, pictures: list[np.ndarray], encodes: Encodes) -> dict[str, float]:
    host, port = server.address
    url = f"http://{host}:{port}/stream.mjpg"
    curls = [
        subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--max-time", str(SECONDS + 10), url])
        for _ in range(viewers)
    ]
    try:
        wait_until(lambda: server.streams.count == viewers)
        calls: list[float] = []
        encoded_before, cpu_before = encodes.count, cpu_seconds()
        started = time.perf_counter()
        index = 0
        while time.perf_counter() - started < SECONDS:
            picture = pictures[index % len(pictures)]
            begin = time.perf_counter()
            server.on_frame(status(index, picture))
            calls.append(time.perf_counter() - begin)
            index += 1
            time.sleep(max(0.0, started + index / FEED_FPS - time.perf_counter()))
        elapsed = time.perf_counter() - started
        return {
            "cpu_ms_per_s": (cpu_seconds() - cpu_before) / elapsed * 1000,
            "encodes_per_s": (encodes.count - encoded_before) / elapsed,
            "on_frame_us": statistics.median(calls) * 1e6,
        }
    finally:
        for curl in curls:
            curl.terminate()
            curl.wait(timeout=10)
        wait_until(lambda: server.streams.count == 0, timeout=15)


def main() -> None:
    if shutil.which("curl") is None:
        print("skipped: curl is needed for the viewers")
        return
    pictures = frames()
    encodes = Encodes()
    state_module._encode = encodes  # type: ignore[assignment]
    scene = Scene(picture=pictures[0], masks={"main": None}, kinds={"main": "change"})
    server = StatusServer(HttpConfig(host="127.0.0.1", port=0), scene=scene, snapshot_dir=None)
    results: dict[int, list[dict[str, float]]] = {n: [] for n in VIEWERS}
    with server:
        for _ in range(ROUNDS):
            for viewers in VIEWERS:
                results[viewers].append(one_round(server, viewers, pictures, encodes))
    print(
        f"{WIDTH}x{HEIGHT} frames fed at {FEED_FPS:g}/s for {SECONDS:g} s a round, {ROUNDS} rounds, "
        f"http.stream_fps {server.live.config.stream_fps:g}; medians"
    )
    print("viewers | CPU of this process, ms per s | frames encoded per s | one on_frame call, us")
    medians: dict[int, dict[str, Any]] = {}
    for viewers in VIEWERS:
        median = {key: statistics.median(r[key] for r in results[viewers]) for key in results[viewers][0]}
        medians[viewers] = median
        print(
            f"{viewers:7d} | {median['cpu_ms_per_s']:30.1f} | {median['encodes_per_s']:20.2f} | "
            f"{median['on_frame_us']:21.0f}"
        )
    one = medians[1]
    extra = one["cpu_ms_per_s"] - medians[0]["cpu_ms_per_s"]
    print(f"a viewer adds {extra:.1f} ms of CPU a second: {extra / one['encodes_per_s']:.2f} ms per streamed frame")


if __name__ == "__main__":
    main()
