"""`monitor arm` and `monitor disarm` as real processes: with a running daemon (its control socket) and without."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from monitor.events import read_events
from tests.scenes import write_clip
from tests.test_mqtt import free_port
from tests.test_run import events_of, monitor, start_run, wait_for

RIGHT = "[[[80, 0], [160, 0], [160, 120], [80, 120]]]"
LEFT = "[[[0, 0], [80, 0], [80, 120], [0, 120]]]"


def write_config(folder: Path, *, arming: str = "arming: {state_file: state/armed.json}", port: int = 0) -> Path:
    """The cup in the right half ('door') in every frame of a looping clip; 'bench' watches the left half."""
    write_clip(folder, frames=50, changed=[range(0, 50)])
    config = folder / "config.yaml"
    config.write_text(
        f"""
source: {{kind: opencv, device: clip.avi, width: 160, height: 120, fps: 25, loop: true}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  door: {{mask: {{include: {RIGHT}}}, gpio: {{pin: 17}}}}
  bench: {{mask: {{include: {LEFT}}}, gpio: {{pin: 27}}}}
events: {{log: events.jsonl, snapshots: null}}
http: {{host: 127.0.0.1, port: {port}}}
{arming}
"""
    )
    return config


def frames_seen(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as response:
            return int(json.load(response)["frames"])
    except OSError:
        return 0


def of_door(log: Path) -> list[tuple[Any, ...]]:
    return [(e["type"], e.get("by"), e.get("reason")) for e in events_of(log) if e.get("zone") == "door"]


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert code == 0, stderr
    return stderr


def test_without_a_running_monitor_the_commands_write_the_state_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = monitor("disarm", config, "--zone", "door", "--for", "30m")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"the monitor is not running: wrote {tmp_path / 'state' / 'armed.json'}"
    assert lines[1].startswith("door: disarmed (snoozed until ") and lines[2] == "bench: armed (default)"
    door = json.loads((tmp_path / "state" / "armed.json").read_text())["zones"]["door"]
    assert door["armed"] is False and door["by"] == "cli" and door["until"] is not None

    result = monitor("arm", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[1:] == ["door: armed (manual)", "bench: armed (manual)"]


def test_command_line_mistakes_exit_2_and_write_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for args, message in [
        (
            ("disarm", config, "--zone", "shed"),
            f"monitor: error: {config}: zones.shed: no such zone (zones: door, bench)",
        ),
        (("disarm", config, "--for", "soon"), "argument --for: duration 'soon': expected a number with s, m, h or d"),
        (("disarm", config, "--for", "0"), "argument --for: duration: must be above 0"),
    ]:
        result = monitor(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    bare = write_config(tmp_path / "bare", arming="")
    result = monitor("arm", bare)
    assert result.returncode == 2 and "arming: not configured" in result.stderr
    assert not (tmp_path / "state").exists()


def test_a_running_monitor_obeys_and_a_restart_keeps_the_disarm(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    log = tmp_path / "events.jsonl"
    socket = tmp_path / "state" / "armed.sock"

    process = start_run(config)
    try:
        wait_for(lambda: of_door(log) == [("event_start", None, None)])
        assert socket.exists()
        result = monitor("disarm", config, "--zone", "door")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines() == ["door: disarmed (manual)", "bench: armed (default)"]
        wait_for(lambda: len(of_door(log)) == 3)
        assert of_door(log)[1:] == [("disarmed", "cli", "manual"), ("event_end", None, "disarmed")]
    finally:
        stderr = stop(process)
    assert "control socket on" in stderr and not socket.exists()

    # A restart: the door starts disarmed, says so, and the cup in front of it starts nothing.
    process = start_run(config)
    try:
        wait_for(lambda: len(of_door(log)) == 4)
        assert of_door(log)[3] == ("disarmed", "cli", "manual")
        seen = frames_seen(port)
        wait_for(lambda: frames_seen(port) >= seen + 50)
        assert len(of_door(log)) == 4
        status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5))
        assert status["zones"]["door"]["armed"] is False and status["zones"]["door"]["armed_reason"] == "manual"

        result = monitor("arm", config, "--zone", "door")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: len(of_door(log)) == 6)
        assert of_door(log)[4:] == [("armed", "cli", "manual"), ("event_start", None, None)]
    finally:
        process.send_signal(signal.SIGKILL)  # a crash leaves the socket behind
        process.wait(timeout=20)
        process.communicate()
    assert socket.exists()

    # Nobody listens on the socket left behind: the command writes the file, and the next start clears the socket.
    result = monitor("disarm", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the monitor is not running: wrote ")
    process = start_run(config)
    try:
        wait_for(lambda: [e["type"] for e in read_events(log)][-2:] == ["disarmed", "disarmed"])
        assert {e["by"] for e in read_events(log)[-2:]} == {"cli"}
    finally:
        stop(process)


def test_a_second_monitor_on_the_same_state_file_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = start_run(config)
    try:
        wait_for(lambda: (tmp_path / "state" / "armed.sock").exists())
        time.sleep(0.5)
        second = monitor("run", config, timeout=60)
        assert second.returncode == 1
        assert "another monitor already listens on" in second.stderr
        assert process.poll() is None
    finally:
        stop(process)
