"""The sd_notify client against a real notify socket; the unit file and the installer."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.status import EventRecord, FrameStatus, Listener
from monitor.systemd import Notifier
from tests import statuses
from tests.notify_socket import NotifySocket

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "monitor.service"
TEMPLATE = ROOT / "systemd" / "monitor@.service"
INSTALL = ROOT / "systemd" / "install.sh"


class FakeClock:
    """Seconds of a monotonic clock that only moves when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sd(tmp_path: Path) -> Iterator[NotifySocket]:
    with NotifySocket(tmp_path) as sock:
        yield sock


def frame_status(frame: int, *, score: float = 0.97, state: str = "unchanged") -> FrameStatus:
    return statuses.status(frame, statuses.change(score=score, changed=state == "changed"))


# --- the protocol ---


def test_ready_status_and_stopping_arrive_as_exact_datagrams_from_this_process(sd: NotifySocket) -> None:
    with Notifier(environ=sd.env()) as notifier:
        assert notifier.enabled
        notifier.ready()
        notifier.ready("watching 640x480")
        notifier.status("two\nlines")
        notifier.stopping()

    assert sd.receive_with_pid() == ("READY=1", os.getpid())
    assert sd.receive() == "READY=1\nSTATUS=watching 640x480"
    assert sd.receive() == "STATUS=two lines"
    assert sd.receive() == "STOPPING=1"
    assert sd.drain() == []


def test_reloading_sends_the_time_of_the_reload_in_clock_monotonic_microseconds(sd: NotifySocket) -> None:
    Notifier(environ=sd.env(), clock=FakeClock(1234.5678901)).reloading()
    assert sd.receive() == "RELOADING=1\nMONOTONIC_USEC=1234567890"

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(environ=sd.env()).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    key, value = sd.receive().split("\n")[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_an_abstract_socket_address_is_reached(tmp_path: Path) -> None:
    with NotifySocket(abstract=True) as sd:
        assert sd.address.startswith("@")
        with Notifier(environ=sd.env()) as notifier:
            notifier.ready()
        assert sd.receive() == "READY=1"


def test_watchdog_pings_at_most_every_half_watchdog_usec_while_frames_arrive(sd: NotifySocket) -> None:
    clock = FakeClock()
    notifier = Notifier(environ=sd.env(watchdog_usec=30_000_000), clock=clock)
    assert notifier.watchdog_interval == 15.0

    sent = []
    for seconds in [0.0, 0.2, 10.0, 14.9, 15.0, 15.1, 29.9, 30.0, 100.0]:
        clock.now = 1000.0 + seconds
        notifier.frame_arrived()
        sent.append(len(sd.drain()))
    assert sent == [1, 0, 0, 0, 1, 0, 0, 1, 1]


def test_no_frames_no_pings(sd: NotifySocket) -> None:
    clock = FakeClock()
    notifier = Notifier(environ=sd.env(watchdog_usec=2_000_000), clock=clock)
    notifier.frame_arrived()
    assert sd.drain() == ["WATCHDOG=1"]
    clock.now += 3600  # the loop hangs: nothing calls frame_arrived, nothing is sent
    notifier.status_every(lambda: "still here")  # a status is not a ping
    assert sd.drain() == ["STATUS=still here"]


def test_without_watchdog_usec_frames_send_nothing(sd: NotifySocket) -> None:
    notifier = Notifier(environ=sd.env(), clock=FakeClock())
    assert notifier.watchdog_interval is None
    for _ in range(5):
        notifier.frame_arrived()
    assert sd.drain() == []


@pytest.mark.parametrize(("watchdog_pid", "interval"), [(1, None), (os.getpid(), 0.5)])
def test_watchdog_pid_names_the_process_the_watchdog_is_for(
    sd: NotifySocket, watchdog_pid: int, interval: float | None
) -> None:
    notifier = Notifier(environ=sd.env(watchdog_usec=1_000_000, watchdog_pid=watchdog_pid), clock=FakeClock())
    assert notifier.watchdog_interval == interval
    notifier.frame_arrived()
    assert sd.drain() == ([] if interval is None else ["WATCHDOG=1"])


def test_status_every_builds_the_text_only_when_a_status_is_due(sd: NotifySocket) -> None:
    clock = FakeClock()
    notifier = Notifier(environ=sd.env(), clock=clock)
    calls = []

    def text() -> str:
        calls.append(clock.now)
        return f"t={clock.now:g}"

    for seconds in [0, 1, 2, 4.9, 5, 6, 10]:
        clock.now = seconds
        notifier.status_every(text, seconds=5.0)
    assert calls == [0, 5, 10]
    assert sd.drain() == ["STATUS=t=0", "STATUS=t=5", "STATUS=t=10"]


def test_as_a_listener_frames_ping_and_report_and_events_show_at_once(sd: NotifySocket) -> None:
    clock = FakeClock(0.0)
    notifier = Notifier(environ=sd.env(watchdog_usec=2_000_000), clock=clock)
    listener: Listener = notifier

    listener.on_frame(frame_status(1))
    assert sd.drain() == ["WATCHDOG=1", "STATUS=unchanged: score 0.9700 (threshold 0.90), frame 1"]
    clock.now = 0.5
    listener.on_frame(frame_status(2))
    assert sd.drain() == []

    listener.on_event(EventRecord(type="event_start", time=1.0, frame=3, score=0.81234))
    assert sd.drain() == ["STATUS=event start at frame 3, score 0.8123"]
    clock.now = 1.0
    listener.on_frame(frame_status(4, score=0.8, state="changed"))
    assert sd.drain() == ["WATCHDOG=1"]  # the event's status stays up for a while
    clock.now = 5.5
    listener.on_frame(frame_status(5, score=0.8, state="changed"))
    assert sd.drain() == ["WATCHDOG=1", "STATUS=changed: score 0.8000 (threshold 0.90), frame 5"]

    listener.close()
    listener.on_frame(frame_status(6))
    assert sd.drain() == []


# --- when there is no systemd, or it is gone ---


def test_without_notify_socket_everything_is_a_silent_noop(sd: NotifySocket, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.systemd")
    with Notifier(environ={"WATCHDOG_USEC": "1000000"}) as notifier:
        assert not notifier.enabled
        assert notifier.watchdog_interval is None
        notifier.ready("x")
        notifier.reloading()
        notifier.status("x")
        notifier.frame_arrived()
        notifier.status_every(lambda: pytest.fail("text_fn called with nowhere to send it"))
        notifier.on_frame(frame_status(1))
        notifier.on_event(EventRecord(type="camera_lost", time=1.0, frame=1))
        notifier.stopping()
    assert caplog.records == []
    assert sd.drain() == []


@pytest.mark.parametrize("value", ["relative/notify", "vsock:2:1234"])
def test_an_unusable_notify_socket_turns_notifications_off_with_a_warning(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert value in caplog.records[0].getMessage()


@pytest.mark.parametrize("unlink", [True, False], ids=["socket file removed", "nobody listening"])
def test_a_vanished_socket_never_raises_warns_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unlink: bool
) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.systemd")
    clock = FakeClock()
    sd = NotifySocket(tmp_path)
    notifier = Notifier(environ=sd.env(watchdog_usec=1_000_000), clock=clock)
    notifier.ready()
    assert sd.receive() == "READY=1"

    if unlink:
        sd.close()
    else:
        sd._sock.close()
    for _ in range(5):
        clock.now += 1
        notifier.frame_arrived()
        notifier.status("still going")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert str(tmp_path) in warnings[0].getMessage()

    if not unlink:
        (tmp_path / "notify").unlink()
    with NotifySocket(tmp_path) as again:  # systemd re-executed: the same path, a new socket
        notifier.status("back")
        assert again.receive() == "STATUS=back"
    assert "works again" in caplog.records[-1].getMessage()


def test_a_receiver_that_stops_reading_does_not_block_the_frame_loop(
    sd: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(environ=sd.env())

    # The kernel queues only a few datagrams per socket (net.unix.max_dgram_qlen); a
    # blocking send would hang here for good.
    def flood() -> None:
        for n in range(500):
            notifier.status(f"n={n}")

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    sender.join(timeout=60)
    assert not sender.is_alive()
    assert sd.receive() == "STATUS=n=0"
    assert any("cannot notify systemd" in r.getMessage() for r in caplog.records)


def test_from_os_environ_the_variables_are_not_passed_on_to_child_processes(
    sd: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sd.env(watchdog_usec=4_000_000, watchdog_pid=os.getpid()).items():
        monkeypatch.setenv(name, value)
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.watchdog_interval == 2.0

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if 'NOTIFY' in k or 'WATCHDOG' in k))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "[]"
    notifier.ready()
    assert sd.receive() == "READY=1"


# --- the unit file ---


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> values, in order (unit files repeat keys)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


def installer_constant(name: str) -> str:
    text = INSTALL.read_text(encoding="utf-8")
    match = re.search(rf"^readonly {name}=(\S+)$", text, re.MULTILINE)
    assert match, f"{INSTALL}: no readonly {name}="
    value = match.group(1)
    for other in re.findall(r"\$(\w+)", value):
        value = value.replace(f"${other}", installer_constant(other))
    return value


def test_the_unit_runs_what_the_installer_installs_where_it_installs_it() -> None:
    unit = unit_settings(UNIT.read_text(encoding="utf-8"))
    venv, config = installer_constant("VENV"), installer_constant("CONFIG")
    assert unit["Service.ExecStart"] == [f"{venv}/bin/python -m monitor run {config}"]
    assert unit["Service.User"] == [installer_constant("SERVICE_USER")]
    state_dir = installer_constant("STATE_DIR")
    assert unit["Service.WorkingDirectory"] == [state_dir]
    assert [f"/var/lib/{name}" for name in unit["Service.StateDirectory"]] == [state_dir]
    # lgpio's pipe files must land in the one other writable place.
    assert [f"LG_WD=/run/{name}" for name in unit["Service.RuntimeDirectory"]] == unit["Service.Environment"]
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    # The frame loop needs the devices: a closed list, not PrivateDevices.
    assert "Service.PrivateDevices" not in unit
    assert unit["Service.DevicePolicy"] == ["closed"]


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed")
    return path


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    # The venv's python exists only on an installed Pi; everything else must be clean.
    as_installed = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True)
    complaints = [line for line in (as_installed.stdout + as_installed.stderr).splitlines() if line.strip()]
    assert all("/opt/monitor/venv/bin/python" in line for line in complaints), complaints

    here = tmp_path / "monitor.service"
    here.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/monitor/venv/bin/python", sys.executable))
    result = subprocess.run([analyze, "verify", str(here)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_sandbox_keeps_the_exposure_score_low() -> None:
    analyze = systemd_analyze()
    # Scored 1.6 when written; 2.0 leaves room for a deliberate change, not for dropping a
    # protection by accident.
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
    )
    if "Unknown option" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot score a unit file offline: {result.stderr.strip()}")
    score = re.search(r"Overall exposure level for monitor.service: (\d+\.\d)", result.stdout)
    assert score, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {score.group(1)} > 2.0:\n{result.stdout}"


def test_reload_needs_nothing_beyond_the_shell() -> None:
    # /bin/kill is procps's, absent from minimal systems: reloads failed there with 203/EXEC.
    unit = unit_settings(UNIT.read_text(encoding="utf-8"))
    assert unit["Service.ExecReload"] == ["/bin/sh -c 'kill -HUP \"$$MAINPID\"'"]


def test_the_template_unit_is_the_unit_with_per_camera_config_and_folders() -> None:
    unit = unit_settings(UNIT.read_text(encoding="utf-8"))
    template = unit_settings(TEMPLATE.read_text(encoding="utf-8"))
    per_camera = {
        "Unit.Description": ["Camera change monitor %i (SSIM against a reference picture, GPIO output)"],
        "Service.ExecStart": [f"{installer_constant('VENV')}/bin/python -m monitor run /etc/monitor/%i.yaml"],
        "Service.StateDirectory": ["monitor/%i"],
        "Service.WorkingDirectory": ["/var/lib/monitor/%i"],
        # Not under /run/monitor, which stopping monitor.service removes with all it holds.
        "Service.RuntimeDirectory": ["monitor-%i"],
        "Service.Environment": ["LG_WD=/run/monitor-%i"],
    }
    assert {key: template[key] for key in per_camera} == per_camera
    # Everything else, the sandbox above all, is the same.
    assert {k: v for k, v in template.items() if k not in per_camera} == {
        k: v for k, v in unit.items() if k not in per_camera
    }


def test_systemd_analyze_verify_and_security_accept_an_instance_of_the_template(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    (tmp_path / "monitor@.service").write_text(
        TEMPLATE.read_text(encoding="utf-8").replace("/opt/monitor/venv/bin/python", sys.executable)
    )
    instance = tmp_path / "monitor@garage.service"
    instance.symlink_to("monitor@.service")
    result = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(instance)],
        capture_output=True,
        text=True,
    )
    if "Unknown option" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot score a unit file offline: {result.stderr.strip()}")
    assert re.search(r"Overall exposure level for monitor@garage.service: (\d+\.\d)", result.stdout), result.stdout
    assert result.returncode == 0, result.stdout


# --- the installer ---


def test_install_script_is_valid_bash_and_passes_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def render_config(path: Path) -> str:
    result = subprocess.run(
        ["bash", str(INSTALL), "render-config", str(path)], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_the_installed_config_keeps_its_data_in_the_state_directory() -> None:
    example = ROOT / "config.yaml"
    rendered = render_config(example)
    config = parse_config(rendered, base_dir=Path("/etc/monitor"))
    assert config.reference.path == Path("/var/lib/monitor/reference.png")
    assert config.events.log == Path("/var/lib/monitor/events.jsonl")
    assert config.events.snapshots == Path("/var/lib/monitor/snapshots")
    # Only those three lines change: the comments that explain every key stay.
    changed = [
        (old, new)
        for old, new in zip(example.read_text().splitlines(), rendered.splitlines(), strict=True)
        if old != new
    ]
    assert len(changed) == 3


def test_absolute_paths_null_snapshots_and_the_long_reference_form_are_handled(tmp_path: Path) -> None:
    source = tmp_path / "config.yaml"
    source.write_text(
        "reference:   # the long form\n"
        "  path: scene/reference.png\n"
        "mask:\n"
        "  image: mask.png\n"
        "events:\n"
        "  log: /srv/monitor/events.jsonl\n"
        "  snapshots: null\n"
    )
    config = parse_config(render_config(source), base_dir=Path("/etc/monitor"))
    assert config.reference.path == Path("/var/lib/monitor/scene/reference.png")
    assert config.zones["main"].mask.image == Path("/etc/monitor/mask.png")  # read-only input: stays beside the config
    assert config.events.log == Path("/srv/monitor/events.jsonl")
    assert config.events.snapshots is None


def test_a_camera_config_keeps_its_data_in_its_own_state_folder() -> None:
    # `install.sh add-camera garage` renders the example into /var/lib/monitor/garage.
    result = subprocess.run(
        ["bash", str(INSTALL), "render-config", str(ROOT / "config.yaml"), "/var/lib/monitor/garage"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = parse_config(result.stdout, base_dir=Path("/etc/monitor"))
    assert config.reference.path == Path("/var/lib/monitor/garage/reference.png")
    assert config.events.log == Path("/var/lib/monitor/garage/events.jsonl")
    assert config.events.snapshots == Path("/var/lib/monitor/garage/snapshots")
