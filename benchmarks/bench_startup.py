"""Time from starting ``monitor run`` to its first scored frame, on a file source (issue 8).

``monitor run`` sends ``READY=1`` to ``$NOTIFY_SOCKET`` after the first frame
has been compared (that is what systemd's ``Type=notify`` waits for). Here the
socket is an AF_UNIX datagram socket of our own; the clock runs from just
before the process is spawned to the moment READY=1 arrives, so it includes
the interpreter's start, every import, reading the config and the reference,
opening the source and the first comparison. Then SIGTERM ends the daemon.

Also shown: where the import time goes (``python -X importtime``) for the
heavy packages, and that scikit-image and SciPy are not imported at all.
"""

from __future__ import annotations

import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import HIGHWAY, HIGHWAY_POLYGON, MONITOR, highway_reference, missing, monitor_env, write_config

RUNS = 7
TIMEOUT = 20.0


def time_to_ready(config: Path, folder: Path, *, extra: tuple[str, ...] = ()) -> tuple[float, str]:
    """Seconds from spawn to READY=1, and the daemon's stderr."""
    address = str(folder / "notify.sock")
    Path(address).unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(TIMEOUT)
        env = monitor_env() | {"NOTIFY_SOCKET": address}
        started = time.perf_counter()
        process = subprocess.Popen(
            [MONITOR[0], *extra, *MONITOR[1:], "run", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while True:
                message = sock.recv(4096).decode()
                if "READY=1" in message.split("\n"):
                    elapsed = time.perf_counter() - started
                    break
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=TIMEOUT)
    return elapsed, stderr


HEAVY = ("numpy", "cv2", "pydantic", "yaml", "gpiozero", "monitor.config", "monitor.daemon", "skimage", "scipy")


def import_breakdown(stderr: str) -> dict[str, float | None]:
    """Cumulative ms of the import of each of HEAVY (None: never imported), from ``-X importtime``."""
    found: dict[str, float | None] = dict.fromkeys(HEAVY)
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| *(\S+)$", line)
        if match and match.group(2) in found:
            found[match.group(2)] = int(match.group(1)) / 1000
    return found


def main() -> list[dict[str, object]]:
    if missing(HIGHWAY):
        return []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        source = {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240, "fps": 10}
        config = write_config(
            folder,
            reference=highway_reference(),
            source=source,
            mask={"include": [HIGHWAY_POLYGON]},
            gpio={"pin": 17},  # a gpiozero mock pin (GPIOZERO_PIN_FACTORY=mock): gpiozero's import counts
        )
        time_to_ready(config, folder)  # warm the page cache: a Pi's SD card is a different story
        times = [time_to_ready(config, folder)[0] for _ in range(RUNS)]
        _, stderr = time_to_ready(config, folder, extra=("-X", "importtime"))
    median = statistics.median(times)
    print(f"monitor run -> READY=1 (first scored frame), image folder 320x240, {RUNS} runs, warm cache")
    print(f"  median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s  (target <= 1.5 s)")
    print("  imports (python -X importtime, cumulative ms, one run; each package counted where first imported):")
    for name, ms in import_breakdown(stderr).items():
        print(f"    {name:16} {'not imported' if ms is None else f'{ms:7.1f} ms'}")
    return [{"median_s": median, "min_s": min(times), "max_s": max(times)}]


if __name__ == "__main__":
    main()
