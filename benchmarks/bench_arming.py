"""What arming costs the frame loop (issue 14), side by side with what judging a frame costs.

1. ``ArmingState.evaluate`` as the loop calls it, once a frame at 5 frames/s
   over a simulated week with a schedule of four windows and three zones: a
   cached answer on most frames, a recomputation at each boundary.
2. One recomputation (every zone decided against every window).
3. The whole replay of the highway recording (400 frames, 320x240, one zone)
   through ``Monitor``: without an ``arming:`` section, with one that keeps
   the zone armed, and with one whose schedule disarms it from the 100th
   frame (no events, so no snapshots, after that): frames/s, rounds
   alternating, medians, and the ratio of the first two.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import HIGHWAY, HIGHWAY_POLYGON, highway_reference, interleaved, missing, write_config

from monitor.arming_state import ArmingState
from monitor.config import ArmingConfig, load_config
from monitor.daemon import Monitor

ROUNDS = 5
SCHEDULE = [
    {"name": "day", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "07:30", "to": "18:00", "set": "disarmed",
     "zones": ["door"]},
    {"name": "night", "from": "22:00", "to": "06:30", "set": "armed"},
    {"name": "lunch", "from": "12:00", "to": "13:00", "set": "disarmed", "zones": ["bench"]},
    {"name": "weekend", "days": ["sat", "sun"], "from": "00:00", "to": "00:00", "set": "disarmed", "zones": ["shed"]},
]  # fmt: skip
ZONES = ["door", "bench", "shed"]


def evaluate_per_frame() -> tuple[float, float, int]:
    """µs per frame of evaluate() over a week at 5 frames/s, µs per recomputation, and how many there were."""
    config = ArmingConfig.model_validate({"timezone": "Europe/Berlin", "schedule": SCHEDULE})
    state = ArmingState(config, ZONES, persist=False)
    start = 1_796_245_200.0  # 2026-12-02 (a Wednesday), 22:00 in Berlin
    frames = 7 * 86400 * 5
    seen, recomputed = None, 0
    began = time.perf_counter()
    for index in range(frames):
        states = state.evaluate(start + index * 0.2)
        if states is not seen:
            seen, recomputed = states, recomputed + 1
    per_frame = (time.perf_counter() - began) / frames * 1e6
    policy = state._policy
    began = time.perf_counter()
    for index in range(2000):
        for zone in ZONES:
            policy.decide(zone, start + index * 37.0)
    per_decision = (time.perf_counter() - began) / 2000 * 1e6
    return per_frame, per_decision, recomputed


def replay(config_path: Path, frames: Path, *, start: float | None = None) -> float:
    config = load_config(config_path)
    arming = ArmingState.from_config(config, persist=False)
    monitor = Monitor(config, config_path=config_path, realtime=False, device=str(frames), arming=arming)
    monitor.source.start_time = start
    return monitor.run().fps


def main() -> None:
    per_frame, per_decision, recomputed = evaluate_per_frame()
    print(f"evaluate, once a frame for a week at 5 fps: {per_frame:.2f} µs per frame ({recomputed} recomputations)")
    print(f"one recomputation (3 zones x 4 windows): {per_decision:.0f} µs")
    if missing(HIGHWAY):
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        frames = folder / "frames"
        frames.mkdir()
        for number in range(470, 870):
            (frames / f"in{number:06d}.jpg").symlink_to(HIGHWAY / "input" / f"in{number:06d}.jpg")
        source = {"kind": "images", "device": str(frames), "width": 320, "height": 240, "fps": 5}
        mask = {"include": [HIGHWAY_POLYGON]}
        plain = write_config(folder, reference=highway_reference(), source=source, mask=mask)
        armed_folder = folder / "armed"
        armed_folder.mkdir()
        arming = {"state_file": str(armed_folder / "armed.json"), "timezone": "Europe/Berlin",
                  "schedule": [{"from": "22:00", "to": "06:30", "set": "disarmed"}]}  # fmt: skip
        with_arming = write_config(armed_folder, reference=highway_reference(), source=source, mask=mask, arming=arming)
        night = 1_796_245_200.0  # 22:00 in Berlin: the window starts
        rates = interleaved(
            {
                "without arming": lambda: replay(plain, frames),
                "with arming, armed throughout": lambda: replay(with_arming, frames, start=night - 3600),
                "with arming, disarmed from frame 100": lambda: replay(with_arming, frames, start=night - 20),
            },
            rounds=ROUNDS,
        )
    for name, value in rates.items():
        print(f"replay, highway 400 frames 320x240, {name}: {value:.0f} frames/s (median of {ROUNDS})")
    ratio = rates["with arming, armed throughout"] / rates["without arming"]
    print(f"ratio armed throughout / without arming: {ratio:.3f}")


if __name__ == "__main__":
    main()
