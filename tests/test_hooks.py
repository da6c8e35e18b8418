"""Event hooks: real shell scripts started without a shell, fed through environment variables."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import HooksConfig
from monitor.integrations.hooks import HookRunner, hook_environment
from monitor.status import EventRecord

WAIT = 20.0

Script = Callable[[str, str], Path]


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def script(tmp_path: Path) -> Script:
    """Write an executable /bin/sh script and return its path."""

    def write(name: str, body: str) -> Path:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
        path.chmod(0o755)
        return path

    return write


def dump_env(script: Script) -> Path:
    """A hook that writes its environment, NUL-separated, to the file named by its first argument."""
    return script("dump-env", 'env -0 > "$1.tmp" && mv "$1.tmp" "$1"')


def read_env(path: Path) -> dict[str, str]:
    wait_until(path.exists, what=f"{path.name} from the hook")
    entries = path.read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if entry)


def record(kind: str = "event_start", **fields: object) -> EventRecord:
    values: dict[str, object] = {
        "time": 1_800_000_000.25,
        "frame": 42,
        "score": 0.61234567,
        "changed_fraction": 0.25,
        "boxes": [(1, 2, 30, 40), (50, 60, 7, 8)],
        "snapshot": "/var/lib/monitor/snapshots/42.jpg",
    }
    values.update(fields)
    return EventRecord(type=kind, **values)  # type: ignore[arg-type]


def test_event_fields_arrive_as_environment_variables(
    tmp_path: Path, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_TEST_INHERITED", "from the monitor")
    out = tmp_path / "env.txt"
    runner = HookRunner(HooksConfig(on_event_start=[str(dump_env(script)), str(out)]))
    event = record(extra={"camera": "porch", "lightswitch": True})
    runner.on_event(event)
    env = read_env(out)
    runner.close()

    assert env["MONITOR_EVENT"] == "event_start"
    assert env["MONITOR_TIME"] == event.to_json()["time"]
    assert env["MONITOR_TIMESTAMP"] == "1800000000.250"
    assert env["MONITOR_FRAME"] == "42"
    assert float(env["MONITOR_SCORE"]) == pytest.approx(0.61235)
    assert float(env["MONITOR_CHANGED_FRACTION"]) == 0.25
    assert json.loads(env["MONITOR_BOXES"]) == [[1, 2, 30, 40], [50, 60, 7, 8]]
    assert env["MONITOR_SNAPSHOT"] == "/var/lib/monitor/snapshots/42.jpg"
    assert env["MONITOR_CAMERA"] == "porch"
    assert env["MONITOR_LIGHTSWITCH"] == "true"
    assert env["MONITOR_TEST_INHERITED"] == "from the monitor"
    assert env["PATH"] == os.environ["PATH"]


def test_unknown_values_are_empty() -> None:
    env = hook_environment(record("camera_lost", score=None, changed_fraction=None, snapshot=None, boxes=[]), base={})
    assert env["MONITOR_SCORE"] == env["MONITOR_CHANGED_FRACTION"] == env["MONITOR_SNAPSHOT"] == ""
    assert env["MONITOR_BOXES"] == "[]"


def test_hostile_values_stay_literal_and_run_nothing(tmp_path: Path, script: Script) -> None:
    pwned = tmp_path / "pwned"
    hostile = f"x; rm -rf {tmp_path}/victim; $(touch {pwned}) `touch {pwned}` && touch {pwned}"
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "env.txt"
    runner = HookRunner(HooksConfig(on_event_start=[str(dump_env(script)), str(out)]))
    runner.on_event(record(snapshot=hostile, extra={"note": hostile, "bad key; $(x)": "y"}))
    env = read_env(out)
    runner.close()

    assert env["MONITOR_SNAPSHOT"] == hostile
    assert env["MONITOR_NOTE"] == hostile
    assert env["MONITOR_BAD_KEY____X_"] == "y"
    assert not pwned.exists()
    assert victim.is_dir()


def test_on_event_returns_while_the_hook_is_still_running(tmp_path: Path, script: Script) -> None:
    gate, marker = tmp_path / "gate", tmp_path / "marker"
    waits = script("waits", 'while [ ! -e "$1" ]; do sleep 0.05; done\ntouch "$2"')
    runner = HookRunner(HooksConfig(on_event_start=[str(waits), str(gate), str(marker)], timeout=WAIT))
    runner.on_event(record())
    # Had on_event waited for the hook, it would have waited for a gate nobody had opened yet.
    assert not marker.exists()
    gate.touch()
    wait_until(marker.exists, what="the hook to finish after the gate opened")
    runner.close()


def test_a_hanging_hook_is_killed_with_its_children_after_the_timeout(
    tmp_path: Path, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "child.pid"
    hangs = script("hangs", 'sleep 60 &\necho $! > "$1"\necho "still busy" >&2\nwait')
    runner = HookRunner(HooksConfig(on_event_end=[str(hangs), str(pid_file)], timeout=0.5))
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.hooks"):
        runner.on_event(record("event_end"))
        wait_until(lambda: "killed" in caplog.text, what="the timeout warning")
    runner.close()

    message = caplog.records[-1].getMessage()
    assert "event_end hook" in message and "hangs" in message
    assert "hooks.timeout" in message
    assert "still busy" in message
    child = int(pid_file.read_text())
    wait_until(lambda: not _alive(child), what="the hook's child process to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only its parent (init here) has yet to reap it.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ", 1)[1][0] != "Z"


def test_non_zero_exit_is_logged_with_code_and_stderr(
    tmp_path: Path, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    noisy = "x" * 2000
    fails = script("fails", f'echo "{noisy}" >&2\necho "the relay is unplugged" >&2\nexit 3')
    runner = HookRunner(HooksConfig(on_event_start=[str(fails), "--flag"]))
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.hooks"):
        runner.on_event(record())
        runner.close()
    [warning] = caplog.records
    message = warning.getMessage()
    assert "exited with code 3" in message
    assert f"{tmp_path}/fails --flag" in message
    assert "the relay is unplugged" in message
    assert len(message) < 1000  # only the tail of stderr


def test_a_missing_or_unexecutable_program_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_executable = tmp_path / "not-executable.sh"
    not_executable.write_text("#!/bin/sh\ntrue\n", encoding="utf-8")
    config = HooksConfig(on_event_start=[str(tmp_path / "no-such-program")], on_event_end=[str(not_executable)])
    runner = HookRunner(config)
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.hooks"):
        runner.on_event(record("event_start"))
        runner.on_event(record("event_end"))
        runner.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "no-such-program" in messages[0] and "could not start" in messages[0]
    assert "not-executable.sh" in messages[1] and "could not start" in messages[1]


def test_camera_lost_and_found_run_their_own_hooks(tmp_path: Path, script: Script) -> None:
    append = str(script("append", 'echo "$MONITOR_EVENT $MONITOR_SCORE." >> "$1"'))
    lost, found = tmp_path / "lost.log", tmp_path / "found.log"
    runner = HookRunner(HooksConfig(on_camera_lost=[append, str(lost)], on_camera_found=[append, str(found)]))
    for kind in ("event_start", "camera_lost", "event_end", "camera_found"):
        runner.on_event(record(kind, score=None, snapshot=None))
    runner.close()
    assert lost.read_text() == "camera_lost .\n"
    assert found.read_text() == "camera_found .\n"


def test_hooks_past_the_queue_bound_are_dropped_with_a_warning(
    tmp_path: Path, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    gate, log = tmp_path / "gate", tmp_path / "ran.log"
    waits = script("waits", 'echo "$MONITOR_FRAME" >> "$2"\nwhile [ ! -e "$1" ]; do sleep 0.05; done')
    runner = HookRunner(HooksConfig(on_event_start=[str(waits), str(gate), str(log)], timeout=WAIT), queue_size=1)
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.hooks"):
        runner.on_event(record(frame=1))
        wait_until(log.exists, what="the first hook to start")
        runner.on_event(record(frame=2))  # waits in the queue
        runner.on_event(record(frame=3))  # no room: dropped
        gate.touch()
        runner.close()
    assert log.read_text().split() == ["1", "2"]
    [warning] = caplog.records
    assert "dropped" in warning.getMessage()


def test_close_kills_a_hook_that_outlives_the_grace_period(
    tmp_path: Path, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "ran.log"
    hangs = script("hangs", 'echo "$MONITOR_FRAME" >> "$1"\nsleep 60')
    runner = HookRunner(HooksConfig(on_event_start=[str(hangs), str(log)], timeout=WAIT))
    with caplog.at_level(logging.WARNING, logger="monitor.integrations.hooks"):
        runner.on_event(record(frame=1))
        wait_until(log.exists, what="the hook to start")
        runner.on_event(record(frame=2))
        runner.close(timeout=0.2)
        runner.close()  # idempotent
    assert log.read_text().split() == ["1"]
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "monitor is stopping" in messages
    assert "1 queued hook(s) were not run" in messages
