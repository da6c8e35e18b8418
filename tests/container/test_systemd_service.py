"""The service under a real systemd: PID 1 of a booted Debian bookworm container.

One container for the module, set up as the README says: `make install` from a copy of the
project, the config edited, `capture-reference` run as the service user, then `systemctl`. The
tests run in order, each on what the one before left (the README's own sequence).

The source is a video file (the demo's scene, looped: a cup comes into the watched area every
15 s and leaves again). There is no GPIO in a container: a drop-in written by the test, not by
the project, sets GPIOZERO_PIN_FACTORY=mock. The mock pin lives inside the daemon, so the pin
is observed as the product exposes it: ``/api/status`` says ``changed`` exactly while a ``hold``
pin is on, and at a stop the event log's ``event_end`` with reason ``stopped`` is written as the
pin is switched off (the daemon's way out closes the open event and then the pin, inactive).

Run with `make test-systemd` (root; builds or reuses the root under /var/cache/monitor-ci).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.container.machine import CACHE, PROJECT, Container, build_root, free_port, report, require, wait_for

require("systemd")

VENV = "/opt/monitor/venv"
CONFIG = "/etc/monitor/config.yaml"
STATE = "/var/lib/monitor"
CLIP = "/srv/clips/scene.avi"  # outside the state folder: read-only for the service, as a camera is
MOCK_PIN = "[Service]\n# Written by the test: no GPIO in a container.\nEnvironment=GPIOZERO_PIN_FACTORY=mock\n"
STATUS_LINE = re.compile(r"^(settling|unchanged|changed): score \d\.\d{4} \(threshold (\d\.\d\d)\), frame \d+$")


def config_text(*, state: str, port: int, threshold: str = "0.80") -> str:
    """The config a user would write for the demo clip; data paths as install.sh renders them."""
    return f"""\
# Edited for the test: the demo's scene as the camera, its right half watched.
source: {{kind: opencv, device: {CLIP}, width: 320, height: 240, fps: 10, loop: true}}
reference:
  path: {state}/reference.png
  adapt: {{enabled: true, save_seconds: 2}}   # the daemon writes the reference too
mask: {{include: [[[170, 60], [310, 60], [310, 230], [170, 230]]]}}
detection: {{threshold: {threshold}, clear_threshold: 0.85, trigger_frames: 3, clear_frames: 5, settle_frames: 5}}
gpio: {{pin: 17, mode: hold}}
events: {{log: {state}/events.jsonl, snapshots: {state}/snapshots}}
http: {{host: 127.0.0.1, port: {port}}}
"""


def status(port: int) -> dict[str, Any] | None:
    """/api/status of the daemon on ``port``, or None while nobody answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as response:
            return dict(json.load(response))
    except OSError:
        return None


def events(pi: Container, path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in pi.read(path).splitlines() if line.strip()]


def main_pid(pi: Container, unit: str) -> int:
    return int(pi.show(unit, "MainPID")["MainPID"])


def active(pi: Container, unit: str) -> bool:
    return pi.show(unit, "ActiveState")["ActiveState"] == "active"


def copy_checkout(target: Path) -> None:
    """Copy what a clone of the project holds to ``target``: tracked and new files, no .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout
    packed = subprocess.run(
        ["tar", "--null", "--files-from=-", "--ignore-failed-read", "-cf", "-"],
        cwd=PROJECT,
        input=files,
        capture_output=True,
        check=True,
    ).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(target), "-xf", "-"], input=packed, check=True)


@pytest.fixture(scope="module")
def pi() -> Iterator[Container]:
    root = build_root("bookworm-systemd")
    with Container(root, name="monitor-systemd", binds=[f"{CACHE / 'pip'}:/root/.cache/pip"]) as container:
        container.boot()
        copy_checkout(container.merged / "root" / "monitor")
        yield container


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


def test_make_install_enables_the_unit_and_writes_the_config_under_the_state_folder(pi: Container) -> None:
    started = time.monotonic()
    out = pi.run("cd /root/monitor && make install", timeout=900)
    report(f"make install in the container: {time.monotonic() - started:.0f} s")
    assert "enabled, not started: the daemon needs a reference picture first" in out.stdout, out.stdout
    assert pi.run(["systemctl", "is-enabled", "monitor"]).stdout.strip() == "enabled"
    assert pi.run(["systemctl", "is-active", "monitor"], check=False).stdout.strip() == "inactive"
    # The service user reads the config (group monitor), other users do not.
    assert pi.run(["stat", "-c", "%U:%G %a", CONFIG]).stdout.split() == ["root:monitor", "640"]
    paths = pi.run(
        [
            f"{VENV}/bin/python",
            "-c",
            "from monitor.config import load_config; c = load_config('/etc/monitor/config.yaml'); "
            "print(c.reference.path, c.events.log, c.events.snapshots)",
        ]
    ).stdout.split()
    assert paths == [f"{STATE}/reference.png", f"{STATE}/events.jsonl", f"{STATE}/snapshots"]
    assert pi.run(["test", "-f", "/etc/systemd/system/monitor@.service"], check=False).returncode == 0


def test_the_readme_steps_after_install_make_a_reference_as_the_service_user(pi: Container, port: int) -> None:
    # The clip: the demo's scene, made with the installed package.
    pi.run(
        f"mkdir -p /srv/clips && {VENV}/bin/python -c 'from pathlib import Path; from monitor.demo import "
        'write_demo_files; write_demo_files(Path("/srv/clips"))\''
    )
    pi.write(CONFIG, config_text(state=STATE, port=port))  # sudoedit: same file, owner and mode
    out = pi.run(["sudo", "-u", "monitor", f"{VENV}/bin/monitor", "capture-reference", CONFIG])
    assert f"wrote {STATE}/reference.png" in out.stdout
    assert pi.run(["stat", "-c", "%U", f"{STATE}/reference.png"]).stdout.strip() == "monitor"
    pi.run("mkdir -p /etc/systemd/system/monitor.service.d")
    pi.write("/etc/systemd/system/monitor.service.d/test-mock-pin.conf", MOCK_PIN)
    pi.run(["systemctl", "daemon-reload"])


def test_the_unit_is_active_only_after_ready_and_shows_the_status_line(pi: Container, port: int) -> None:
    # Freeze the daemon as soon as it exists, before it can have sent READY=1: a Type=notify
    # unit must stay "activating" (a Type=simple one would be "active" at once).
    for _attempt in range(3):
        frozen = pi.run(
            "systemctl start --no-block monitor; i=0; pid=0\n"
            'while [ "$pid" = 0 ] && [ $i -lt 3000 ]; do pid=$(systemctl show -P MainPID monitor); i=$((i+1)); done\n'
            '[ "$pid" != 0 ] && kill -s STOP "$pid"; echo "$pid"; systemctl show -P ActiveState monitor'
        ).stdout.split()
        pid, state_when_frozen = int(frozen[0]), frozen[1]
        if state_when_frozen == "activating":
            break
        # The daemon was quicker than the loop: stop it and try again.
        pi.run(f"kill -s CONT {pid}; systemctl stop monitor")
    else:
        pytest.fail("could not catch the daemon before READY=1 in three starts")
    time.sleep(5)
    assert pi.show("monitor", "ActiveState")["ActiveState"] == "activating"
    assert (status(port) or {}).get("frames", 0) == 0  # frozen before its first frame
    pi.run(f"kill -s CONT {pid}")
    wait_for(lambda: active(pi, "monitor"), timeout=60, what="monitor.service to become active")
    assert main_pid(pi, "monitor") == pid
    text = pi.show("monitor", "StatusText")["StatusText"]
    assert STATUS_LINE.match(text), text
    journal = pi.journal("monitor")
    # systemd says Started only after the daemon's own start-up lines (then READY=1).
    assert journal.index("Started monitor.service") > journal.index("status page on http://127.0.0.1")


def test_an_event_reaches_the_journal_and_the_hardened_unit_writes_the_state_folder(pi: Container, port: int) -> None:
    since = time.time()
    wait_for(
        lambda: "event end at frame" in pi.journal("monitor", since=since),
        timeout=60,
        what="an event to start and end in the journal",
    )
    journal = pi.journal("monitor", since=since)
    assert re.search(
        r"main: event start at frame \d+: score 0\.\d+, 1 changed region, snapshot /var/lib/monitor/", journal
    )
    records = events(pi, f"{STATE}/events.jsonl")
    starts = [r for r in records if r["type"] == "event_start"]
    assert starts and starts[-1]["snapshot"].startswith(f"{STATE}/snapshots/")
    # Written by the sandboxed daemon as user monitor; UMask=0027: nothing for other users.
    for path in (f"{STATE}/events.jsonl", starts[-1]["snapshot"]):
        owner, mode = pi.run(["stat", "-c", "%U %a", path]).stdout.split()
        assert (owner, int(mode, 8) & 0o007) == ("monitor", 0), (path, owner, mode)
    wait_for(
        lambda: f"saved the adapted reference to {STATE}/reference.png" in pi.journal("monitor", since=since),
        timeout=30,
        what="the daemon to save the adapted reference",
    )
    now = status(port)
    assert now is not None and now["frames"] > 0 and now["threshold"] == 0.8


def test_reload_applies_a_changed_threshold_and_a_broken_config_keeps_the_old_one(pi: Container, port: int) -> None:
    pid = main_pid(pi, "monitor")
    since = time.time()
    pi.write(CONFIG, config_text(state=STATE, port=port, threshold="0.70"))
    pi.run(["systemctl", "reload", "monitor"])
    wait_for(lambda: (status(port) or {}).get("threshold") == 0.7, timeout=30, what="threshold 0.7 in /api/status")
    assert "reloaded /etc/monitor/config.yaml: threshold 0.700" in pi.journal("monitor", since=since)
    wait_for(
        lambda: "(threshold 0.70)" in pi.show("monitor", "StatusText")["StatusText"],
        timeout=30,
        what="the status line to show threshold 0.70",
    )

    since = time.time()
    pi.write(CONFIG, config_text(state=STATE, port=port, threshold="1.5"))
    pi.run(["systemctl", "reload", "monitor"])
    wait_for(
        lambda: "reload refused, keeping the running config" in pi.journal("monitor", since=since),
        timeout=30,
        what="the refused reload in the journal",
    )
    assert "detection.threshold: must be between 0 and 1, got 1.5" in pi.journal("monitor", since=since)
    assert (status(port) or {}).get("threshold") == 0.7
    assert active(pi, "monitor") and main_pid(pi, "monitor") == pid
    pi.write(CONFIG, config_text(state=STATE, port=port))
    pi.run(["systemctl", "reload", "monitor"])
    wait_for(lambda: (status(port) or {}).get("threshold") == 0.8, timeout=30, what="threshold 0.8 again")


def test_a_stopped_frame_loop_is_killed_by_the_watchdog_and_restarted(pi: Container) -> None:
    settings = pi.show("monitor", "WatchdogUSec", "RestartUSec", "NRestarts")
    watchdog = int(settings["WatchdogUSec"].removesuffix("s"))  # "30s"
    restart = int(settings["RestartUSec"].removesuffix("s"))
    restarts = int(settings["NRestarts"])
    pid = main_pid(pi, "monitor")
    since = time.time()
    pi.run(f"kill -s STOP {pid}")
    stopped = time.monotonic()
    wait_for(
        lambda: main_pid(pi, "monitor") not in (0, pid) and active(pi, "monitor"),
        timeout=watchdog + restart + 60,
        what="a new daemon after the watchdog",
        interval=0.5,
    )
    took = time.monotonic() - stopped
    report(f"frame loop stopped -> killed by the watchdog -> active again: {took:.1f} s (WatchdogSec={watchdog})")
    # The last ping may have come just before the stop: the kill comes at most WatchdogSec later.
    assert took <= watchdog + restart + 10
    journal = pi.journal("monitor", since=since)
    assert f"Watchdog timeout (limit {watchdog}s)!" in journal
    assert f"Killing process {pid} (python) with signal SIGABRT" in journal
    assert int(pi.show("monitor", "NRestarts")["NRestarts"]) == restarts + 1


def test_stop_during_an_event_switches_the_pin_off_and_exits_0(pi: Container, port: int) -> None:
    # hold mode: the pin is on exactly while the daemon reports "changed".
    wait_for(lambda: (status(port) or {}).get("state") == "changed", timeout=60, what="an event (pin on)")
    since = time.time()
    pi.run(["systemctl", "stop", "monitor"], timeout=120)
    result = pi.show("monitor", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert result == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}
    last = events(pi, f"{STATE}/events.jsonl")[-1]
    assert (last["type"], last["reason"]) == ("event_end", "stopped")
    assert re.search(r"stopped after \d+ frames, \d+ events", pi.journal("monitor", since=since))
    assert status(port) is None  # the status page went with it


def test_the_exposure_score_of_the_installed_units(pi: Container) -> None:
    for unit in ("monitor.service", "monitor@garage.service"):
        out = pi.run(["systemd-analyze", "security", "--no-pager", unit]).stdout
        score = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d) (\w+)", out)
        assert score, out
        report(f"systemd-analyze security {unit}: {score.group(1)} {score.group(2)}")
        assert float(score.group(1)) <= 2.0, out


def test_two_cameras_run_side_by_side_under_the_template_unit(pi: Container) -> None:
    ports = {}
    for name in ("garage", "porch"):
        out = pi.run(["bash", "/root/monitor/systemd/install.sh", "add-camera", name]).stdout
        assert f"writing /etc/monitor/{name}.yaml (data paths under {STATE}/{name}" in out, out
        # The config add-camera wrote: data in the camera's folder, a status port of its own.
        written = pi.run(
            [
                f"{VENV}/bin/python",
                "-c",
                f"from monitor.config import load_config; c = load_config('/etc/monitor/{name}.yaml'); "
                "print(c.reference.path, c.events.log, c.http.port)",
            ]
        ).stdout.split()
        assert written[:2] == [f"{STATE}/{name}/reference.png", f"{STATE}/{name}/events.jsonl"]
        ports[name] = int(written[2])
    assert ports == {"garage": 8081, "porch": 8082}

    # The test moves them to ports free on this shared machine, as a user would edit them.
    ports = {name: free_port() for name in ports}
    for name, port in ports.items():
        pi.write(f"/etc/monitor/{name}.yaml", config_text(state=f"{STATE}/{name}", port=port))
        pi.run(["sudo", "-u", "monitor", f"{VENV}/bin/monitor", "capture-reference", f"/etc/monitor/{name}.yaml"])
    pi.run("mkdir -p /etc/systemd/system/monitor@.service.d")
    pi.write("/etc/systemd/system/monitor@.service.d/test-mock-pin.conf", MOCK_PIN)
    pi.run(["systemctl", "daemon-reload"])
    pi.run(["systemctl", "enable", "--now", "monitor@garage", "monitor@porch"], timeout=120)

    for name, port in ports.items():
        unit = f"monitor@{name}"
        assert active(pi, unit)
        assert pi.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
        assert STATUS_LINE.match(pi.show(unit, "StatusText")["StatusText"])
        assert f"status page on http://127.0.0.1:{port}/" in pi.journal(unit)
        wait_for(lambda port=port: (status(port) or {}).get("frames", 0) > 0, timeout=30, what=f"{unit}'s page")
    assert main_pid(pi, "monitor@garage") != main_pid(pi, "monitor@porch")
    for name in ports:
        wait_for(
            lambda name=name: any(r["type"] == "event_end" for r in events(pi, f"{STATE}/{name}/events.jsonl")),
            timeout=60,
            what=f"an event in {name}'s own event log",
        )
        snapshots = pi.run(["ls", f"{STATE}/{name}/snapshots"]).stdout.split()
        assert snapshots and all(s.endswith("-event.jpg") for s in snapshots)

    # A reload reaches its own camera only.
    pi.write("/etc/monitor/garage.yaml", config_text(state=f"{STATE}/garage", port=ports["garage"], threshold="0.70"))
    pi.run(["systemctl", "reload", "monitor@garage"])
    wait_for(lambda: (status(ports["garage"]) or {}).get("threshold") == 0.7, timeout=30, what="garage at 0.7")
    assert (status(ports["porch"]) or {}).get("threshold") == 0.8

    # Stopping one leaves the other running.
    pi.run(["systemctl", "stop", "monitor@garage"], timeout=120)
    assert pi.show("monitor@garage", "Result", "ExecMainStatus") == {"Result": "success", "ExecMainStatus": "0"}
    assert active(pi, "monitor@porch")
    assert (status(ports["porch"]) or {}).get("frames", 0) > 0


def test_make_uninstall_removes_units_instances_and_user_but_keeps_config_and_data(pi: Container) -> None:
    pi.run("cd /root/monitor && make uninstall", timeout=300)
    assert pi.run(["systemctl", "is-active", "monitor@porch"], check=False).stdout.strip() == "inactive"
    listed = pi.run(["systemctl", "list-unit-files", "--no-legend", "monitor*"], check=False)
    assert (listed.returncode, listed.stdout.strip()) == (1, ""), listed.stdout  # 1: no unit matches
    assert pi.run(["getent", "passwd", "monitor"], check=False).returncode == 2
    for kept in (CONFIG, "/etc/monitor/garage.yaml", f"{STATE}/events.jsonl", f"{STATE}/porch/events.jsonl"):
        assert pi.run(["test", "-f", kept], check=False).returncode == 0, kept
