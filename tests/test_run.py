"""`monitor` commands as real subprocesses: run with signals, replay, capture-reference, demo."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.events import read_events
from tests.notify_socket import NotifySocket
from tests.scenes import clip_config, write_clip

ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}


def monitor(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=ENV,
    )


def start_run(config: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`monitor run CONFIG` in the background, with mock pins (and ``env`` added)."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **(env or {})},
    )


def wait_for(predicate: object, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def events_of(path: Path) -> list[dict[str, object]]:
    return read_events(path) if path.exists() else []


def test_run_reloads_on_sighup_and_ends_cleanly_on_sigterm(tmp_path: Path) -> None:
    # The cup sits in the watched area the whole time: scores around 0.7.
    clip = write_clip(tmp_path, frames=50, changed=[range(0, 50)])
    config = tmp_path / "config.yaml"
    config.write_text(
        clip_config(clip, loop=True, fps=50).replace(
            "threshold: 0.85, clear_threshold: 0.9", "threshold: 0.3, clear_threshold: 0.35"
        )
    )
    log = tmp_path / "events.jsonl"
    with NotifySocket(tmp_path) as sd:
        process = start_run(config, env=sd.env())
        try:
            # READY=1 comes with the first scored frame: the signal handlers are in place by then (a
            # SIGHUP before them would end the process, as its default does, on a slow machine).
            deadline = time.monotonic() + 60
            while sd.receive(timeout=max(0.1, deadline - time.monotonic())) != "READY=1":
                pass
            time.sleep(1.0)  # frames flow; at threshold 0.3 nothing is below
            assert process.poll() is None
            assert events_of(log) == []
            config.write_text(clip_config(clip, loop=True, fps=50))  # threshold 0.85: now it is a change
            process.send_signal(signal.SIGHUP)
            wait_for(lambda: any(e["type"] == "event_start" for e in events_of(log)))
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = process.wait(timeout=10)
            stopped_in = time.monotonic() - started
        finally:
            process.kill()
            _, stderr = process.communicate()
    assert code == 0, stderr
    assert stopped_in < 2.0
    events = events_of(log)
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert events[1]["reason"] == "stopped"
    assert "reloaded" in stderr and "threshold 0.850" in stderr
    assert "gpio pin 17" in stderr.lower()


def test_run_ends_with_the_recording(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=20, changed=[range(10, 20)])
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip, fps=100))
    result = monitor("run", config)
    assert result.returncode == 0, result.stderr
    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert events[1]["reason"] == "source ended"


def test_run_without_a_reference_names_the_command_that_makes_it(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=5, changed=[])
    clip.reference.unlink()
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip))
    result = monitor("run", config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("monitor: error: reference ")
    assert f"capture one with: monitor capture-reference {config}" in lines[-1]


def test_replay_prints_a_summary_and_writes_scores(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=40, changed=[range(10, 25)])
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip))
    result = monitor("replay", config, "--source", clip.video, "--scores", tmp_path / "scores.csv")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    gating = r"(; change gating kept \d+ % of the comparisons)?"
    pattern = r"replayed 40 frames in [\d.]+ s \([\d.]+ frames/s\), 1 events" + gating
    assert re.fullmatch(pattern, summary), summary
    rows = list(csv.DictReader((tmp_path / "scores.csv").read_text().splitlines()))
    assert len(rows) == 40 and sum(int(r["below"]) for r in rows) == 15


def test_capture_reference_is_the_median_and_atomic(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=15, changed=[range(3, 5)])  # a brief passer-by the median removes
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip).replace("reference: reference.png", "reference: captured/ref.png"))
    result = monitor("capture-reference", config, "--frames", "9")
    assert result.returncode == 0, result.stderr
    captured = cv2.imread(str(tmp_path / "captured" / "ref.png"), cv2.IMREAD_UNCHANGED)
    truth = cv2.imread(str(clip.reference), cv2.IMREAD_GRAYSCALE)
    assert captured.shape == truth.shape and captured.ndim == 2
    assert np.abs(captured.astype(int) - truth.astype(int)).mean() < 3  # the cup is gone, noise averaged
    assert sorted(p.name for p in (tmp_path / "captured").iterdir()) == ["ref.png"]


def test_test_output_switches_the_pin_three_times(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=2, changed=[])
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip))
    result = monitor("test-output", config, "--seconds", "0.05")
    assert result.returncode == 0, result.stderr
    assert "switching GPIO 17 on (= high) and off 3 times" in result.stdout
    assert result.stdout.strip().endswith("done: the pin is off")


@pytest.mark.slow
def test_demo_ends_by_itself_with_one_event(tmp_path: Path) -> None:
    result = monitor("demo", "--out", tmp_path / "demo", "--fast", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "GPIO17 -> ON" in result.stdout and "GPIO17 -> OFF" in result.stdout
    assert "150 frames, 1 event(s)" in result.stdout
    events = read_events(tmp_path / "demo" / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert 30 <= int(events[0]["frame"]) <= 45 and 90 <= int(events[1]["frame"]) <= 105  # type: ignore[call-overload]
    assert Path(str(events[0]["snapshot"])).is_file()
