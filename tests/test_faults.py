"""The fault table: one test per row, each the behaviour a user relies on after months unattended.

Real parts throughout: gpiozero's MockFactory pins, the picamera2 stand-in
(tests/fake_picamera2.py) for a camera that hangs and comes back, real video
files and images, real subprocesses killed mid-write. The daemon as a
supervised subprocess (exit codes, watchdog) is in tests/test_service.py;
the event log and snapshot store on their own are in tests/test_events.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from gpiozero import Device, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from monitor import cli
from monitor.config import load_config
from monitor.daemon import Monitor
from monitor.events import read_events
from monitor.exc import SourceError
from monitor.integrations.hooks import HookRunner
from monitor.status import EventRecord, FrameStatus
from tests import fake_picamera2
from tests.scenes import clip_config, object_patch, write_clip

ROOT = Path(__file__).resolve().parents[1]
W, H = 160, 120
SCENE = fake_picamera2.scene_y(W, H)  # what the stand-in camera shows at 160x120
ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """Mock pins, also as gpiozero's default (``monitor run`` in-process picks them up)."""
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    factory.close()
    Device.pin_factory = None


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The picamera2 stand-in as ``picamera2``."""
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2)
    monkeypatch.setattr(fake_picamera2.Picamera2, "instances", [])
    return fake_picamera2


def levels(factory: MockFactory, number: int = 17) -> list[bool]:
    return [bool(s.state) for s in factory.pin(number).states]


def write_config(folder: Path, **sections: Any) -> Path:
    """config.yaml for the stand-in camera at 160x120; each of ``sections`` updates its section."""
    config: dict[str, Any] = {
        "source": {
            "kind": "picamera",
            "width": W,
            "height": H,
            "fps": 100,
            "capture_timeout": 0.2,
            "give_up_seconds": 60,
        },
        "reference": "reference.png",
        "detection": {
            "threshold": 0.85,
            "clear_threshold": 0.9,
            "trigger_frames": 2,
            "clear_frames": 2,
            "settle_frames": 3,
        },
        "gpio": {"pin": 17},
        "events": {"log": "events.jsonl", "snapshots": "snapshots"},
    }
    for key, value in sections.items():
        config[key] = config.get(key, {}) | value if isinstance(value, dict) else value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> int:
    """``monitor ARGS`` in this process (pins from the factory fixture), without touching pytest's signals."""
    monkeypatch.setattr(cli, "_install_signals", lambda monitor: None)
    return cli.main([str(arg) for arg in args])


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


class Cable:
    """The stand-in camera's cable, and a listener that sees every frame.

    Pulled out after frame ``pull_at`` (the open camera stops delivering and no
    new one can be opened); pushed back in during the back-off sleep that
    follows ``failed_opens`` failed re-opens (never, if None). It is also the
    monitor's ``sleep``: it records each back-off delay and the pin level
    meanwhile, and waits only if ``real``.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        factory: MockFactory,
        *,
        pull_at: int,
        failed_opens: int | None,
        stop_at: int | None = None,
        real: bool = False,
    ) -> None:
        self._monkeypatch = monkeypatch
        self._pin = factory.pin(17)
        self.pull_at, self.failed_opens, self.stop_at, self.real = pull_at, failed_opens, stop_at, real
        self.monitor: Monitor | None = None
        self.states: list[str] = []
        self.delays: list[float] = []
        self.pin_meanwhile: list[bool] = []

    def on_frame(self, status: FrameStatus) -> None:
        self.states.append(status.state)
        if status.frame == self.pull_at:
            fake_picamera2.Picamera2.instances[-1].hang = True
            self._monkeypatch.setattr(fake_picamera2, "CAMERAS", 0)
        if status.frame == self.stop_at and self.monitor is not None:
            self.monitor.stop()

    def on_event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.pin_meanwhile.append(bool(self._pin.state))
        if self.failed_opens is not None and len(self.delays) > self.failed_opens:
            self._monkeypatch.setattr(fake_picamera2, "CAMERAS", 1)
        if self.real:
            time.sleep(seconds)


STARTEND = ("event_start", "event_end")
# A hook that appends "<event> <frame>" to the file it is given.
HOOK = "import os, sys; print(os.environ['MONITOR_EVENT'], os.environ['MONITOR_FRAME'], file=open(sys.argv[1], 'a'))"


# --- camera read fails or times out ------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_fault", "event_open", "pin_meanwhile", "expected_levels"),
    [
        ("off", True, False, [False, True, False, True, False]),
        ("on", True, True, [False, True, False]),
        ("keep", True, True, [False, True, False]),
        ("off", False, False, [False]),
        ("on", False, True, [False, True, False]),
        ("keep", False, False, [False]),
    ],
)
def test_camera_lost_is_reopened_with_capped_backoff_and_found_again(
    tmp_path: Path,
    camera: Any,
    factory: MockFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    on_fault: str,
    event_open: bool,
    pin_meanwhile: bool,
    expected_levels: list[bool],
) -> None:
    # A mirrored reference makes every frame a change: an event is open when the camera goes.
    cv2.imwrite(str(tmp_path / "reference.png"), SCENE[:, ::-1] if event_open else SCENE)
    hooks = tmp_path / "hooks.txt"
    hook = [sys.executable, "-c", HOOK, str(hooks)]
    path = write_config(tmp_path, gpio={"on_fault": on_fault}, hooks={"on_camera_lost": hook, "on_camera_found": hook})
    cable = Cable(monkeypatch, factory, pull_at=8, failed_opens=8, stop_at=14)
    config = load_config(path)
    runner = HookRunner(config.hooks)
    monitor = Monitor(config, config_path=path, pin_factory=factory, listeners=[cable, runner], sleep=cable.sleep)
    cable.monitor = monitor
    with caplog.at_level(logging.INFO, logger="monitor"), runner:
        monitor.run()

    events = read_events(tmp_path / "events.jsonl")
    kinds = [(e["type"], e["frame"]) for e in events]
    camera_trouble = [("camera_lost", 8), ("camera_found", 8)]
    if event_open:
        assert kinds == [("event_start", 4), *camera_trouble, ("event_end", 14)]
        assert events[-1]["reason"] == "stopped"
    else:
        assert kinds == camera_trouble
    lost = next(e for e in events if e["type"] == "camera_lost")
    assert lost["error"] == "picamera 0: no frame within 0.2 s (source.capture_timeout)"
    assert hooks.read_text().splitlines() == ["camera_lost 8", "camera_found 8"]
    # Eight failed re-opens: the back-off doubles from 0.5 s and stops at 30 s.
    assert cable.delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("camera still lost (picamera 0: cannot start the camera" in m for m in messages) == 8
    assert any(m.startswith("camera found again after") for m in messages)
    # on_fault decides the pin while the camera is away; after, the event logic does.
    assert cable.pin_meanwhile == [pin_meanwhile] * 9
    assert levels(factory) == expected_levels
    # The frames after the re-open settle, as the first ones after the start did.
    assert len(cable.states) == 15
    if not event_open:
        assert "settling" in cable.states[:3] and cable.states[9:12] == cable.states[:3]
        assert cable.states[3:9] == ["unchanged"] * 6 and cable.states[12:] == ["unchanged"] * 3
    assert len(camera.Picamera2.instances) == 2  # the first camera, and the one that came back


# --- camera never comes back -----------------------------------------------------------------


def test_camera_that_never_comes_back_gives_up_with_the_pin_inactive(
    tmp_path: Path, camera: Any, factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exit code of `monitor run` when this happens: tests/test_service.py.
    cv2.imwrite(str(tmp_path / "reference.png"), SCENE)
    path = write_config(tmp_path, gpio={"on_fault": "on"}, source={"give_up_seconds": 1.2})
    cable = Cable(monkeypatch, factory, pull_at=5, failed_opens=None, real=True)
    monitor = Monitor(load_config(path), config_path=path, pin_factory=factory, listeners=[cable], sleep=cable.sleep)
    with pytest.raises(SourceError) as info:
        monitor.run()
    assert str(info.value).startswith("camera lost for ")
    assert "(source.give_up_seconds is 1.2): giving up; last error: picamera 0: cannot start the camera" in str(
        info.value
    )
    assert [e["type"] for e in read_events(tmp_path / "events.jsonl")] == ["camera_lost"]
    assert cable.delays[0] == 0.5 and all(delay > 0 for delay in cable.delays)
    assert sum(cable.delays) <= 1.2 + 1e-9  # the last wait is cut to the time left, not a whole back-off step
    assert cable.pin_meanwhile == [True] * len(cable.delays)
    assert levels(factory) == [False, True, False]  # on_fault: on while lost, inactive once given up
    assert not monitor.actions.outputs["main"].is_active


# --- a frame of the wrong size, empty, or undecodable --------------------------------------------


def test_bad_frames_are_skipped_with_a_warning_and_counted(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(12):
        image = SCENE.copy()
        if 4 <= index < 9:
            image[60:100, 90:140] = object_patch()
        cv2.imwrite(str(frames / f"f{index:03d}.png"), image)
    good_png = (frames / "f000.png").read_bytes()
    bad = {
        "f001a.png": b"",  # empty
        "f002a.png": good_png[: len(good_png) // 2],  # truncated
        "f003a.jpg": np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "f004a.png": b"P5\n100000 100000\n255\n" + bytes(64),  # a header too big to decode
        "f005a.png": b"not an image at all\n",
    }
    for name, data in bad.items():
        (frames / name).write_bytes(data)
    cv2.imwrite(str(frames / "f006a.tif"), SCENE.astype(np.float32))  # decodes, but not 8-bit
    cv2.imwrite(str(frames / "f007a.png"), SCENE[:50, :50])  # the wrong size
    cv2.imwrite(str(tmp_path / "reference.png"), SCENE)
    path = write_config(
        tmp_path,
        source={"kind": "images", "device": "frames"},
        detection={"settle_frames": 1},
        mask={"include": [[[80, 0], [160, 0], [160, 120], [80, 120]]]},
    )
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory)
    with caplog.at_level(logging.WARNING):
        summary = monitor.run()
    assert summary.frames == 12
    assert summary.skipped == 7
    assert [e["type"] for e in read_events(tmp_path / "events.jsonl")] == ["event_start", "event_end"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "f001a.png" in warnings[0] and "f002a.png" in warnings[1] and "f003a.jpg" in warnings[2]
    # The one of another size is dropped by the folder from its header: never decoded nor handed to the loop.
    assert not any(m.startswith("skipped frame") for m in warnings)
    assert levels(factory) == [False, True, False]


# --- reference missing, unreadable, or of another size ------------------------------------------


def make_unreadable(path: Path) -> None:
    """A file this process may not read: mode 000, or for root (who reads anything) a write-only kernel file."""
    if os.geteuid() == 0:
        path.symlink_to("/proc/sys/vm/drop_caches")
    else:
        cv2.imwrite(str(path), SCENE)
        path.chmod(0)


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing", "no such file"),
        ("a folder", "not a file"),
        ("not an image", "not a readable image"),
        ("truncated", "not a readable image"),
        ("unreadable", "cannot read: Permission denied"),
        ("16-bit float", "expected an 8-bit image, got float32"),
        ("another size", "is 20x10, expected the frame size 160x120 (source.width x source.height)"),
    ],
)
def test_bad_reference_refuses_to_start_naming_the_file_and_the_fix(
    tmp_path: Path,
    factory: MockFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    problem: str,
) -> None:
    reference = tmp_path / "reference.png"
    if case == "a folder":
        reference.mkdir()
    elif case == "not an image":
        reference.write_text("this is not an image\n")
    elif case == "truncated":
        cv2.imwrite(str(reference), SCENE)
        reference.write_bytes(reference.read_bytes()[:300])
    elif case == "unreadable":
        make_unreadable(reference)
    elif case == "16-bit float":
        reference = tmp_path / "reference.tif"
        cv2.imwrite(str(reference), SCENE.astype(np.float32))
    elif case == "another size":
        cv2.imwrite(str(reference), np.zeros((10, 20), np.uint8))
    config = write_config(tmp_path, reference=reference.name)
    before = listing(tmp_path) if case != "unreadable" else None

    assert run_cli(monkeypatch, "run", config) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"monitor: error: reference {reference.resolve()}: ")
    assert problem in lines[0]
    assert lines[0].endswith(f"; capture one with: monitor capture-reference {config}")
    assert factory.pins == {}  # the pin was never set up
    if before is not None:
        assert listing(tmp_path) == before


# --- invalid config at start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {
                "detection": {"threshold": 1.4},
                "gpio": {"pin": 99},
                "source": {"fps": 0},
                "evnets": {"log": "x.jsonl"},
            },
            [
                "source.fps: must be a number above 0, got 0",
                "detection.threshold: must be between 0 and 1, got 1.4",
                "gpio.pin: must be a BCM pin number between 0 and 53, got 99",
                "evnets: unknown key (did you mean 'events'?)",
            ],
        ),
        ({"mask": {"image": "mask.png"}}, ["mask.image: {folder}/mask.png: no such file"]),
        ({"http": {"token_file": "token"}}, ["http.token_file: cannot read {folder}/token: No such file or directory"]),
        (
            {"mqtt": {"host": "127.0.0.1", "username": "cam", "password_file": "secret"}},
            ["mqtt.password_file: cannot read {folder}/secret: No such file or directory"],
        ),
    ],
    ids=["schema", "mask image", "token file", "password file"],
)
def test_invalid_config_at_start_exits_2_with_one_line_per_problem_touching_nothing(
    tmp_path: Path,
    factory: MockFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sections: dict[str, Any],
    expected: list[str],
) -> None:
    cv2.imwrite(str(tmp_path / "reference.png"), SCENE)
    config = write_config(tmp_path, events={"log": "logs/events.jsonl", "snapshots": "snaps"}, **sections)
    before = listing(tmp_path)

    assert run_cli(monkeypatch, "run", config) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    problems = [line.format(folder=tmp_path) for line in expected]
    assert len(lines) == len(problems), lines
    for line, problem in zip(lines, problems, strict=True):
        assert line in (f"monitor: error: {config}: {problem}", f"monitor: error: {problem}")
    assert listing(tmp_path) == before  # no event log, no folder, no snapshot
    assert factory.pins == {}


# --- invalid config on SIGHUP -------------------------------------------------------------------


class ReloadAt:
    """A listener that rewrites the config file and asks for a reload at one frame, and stops at another."""

    def __init__(self, path: Path, text: str, *, at: int, stop_at: int) -> None:
        self.path, self.text, self.at, self.stop_at = path, text, at, stop_at
        self.monitor: Monitor | None = None

    def on_frame(self, status: FrameStatus) -> None:
        assert self.monitor is not None
        if status.frame == self.at:
            self.path.write_text(self.text)
            self.monitor.reload()
        if status.frame == self.stop_at:
            self.monitor.stop()

    def on_event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("case", "refusals", "starts"),
    [
        (
            "two problems",
            ["detection.threshold: must be between 0 and 1", "gpio.mode: must be 'hold' or 'pulse'"],
            None,
        ),
        ("reference of another size", ["is 20x10, expected the frame size 160x120"], None),
        ("pin in use", ["gpio.pin 27: already in use"], None),
        # The old file source is opened again, from its start: the cup comes 6 frames later.
        ("source that cannot open", ["opencv ", "missing.avi: no such file"], [18, 58]),
    ],
)
def test_invalid_config_on_reload_keeps_the_old_one_and_logs_each_problem(
    tmp_path: Path,
    factory: MockFactory,
    caplog: pytest.LogCaptureFixture,
    case: str,
    refusals: list[str],
    starts: list[int] | None,
) -> None:
    clip = write_clip(tmp_path, frames=40, changed=[range(10, 25)])
    path = tmp_path / "config.yaml"
    good = clip_config(clip, loop=True)
    path.write_text(good)
    # Each new config would also lower the threshold to 0.3 (no events at all) if it were taken.
    bad = good.replace("threshold: 0.85", "threshold: 0.3")
    if case == "two problems":
        bad = good.replace("threshold: 0.85", "threshold: 1.85").replace("pin: 17", "pin: 17, mode: blink")
    elif case == "reference of another size":
        cv2.imwrite(str(tmp_path / "small.png"), np.zeros((10, 20), np.uint8))
        bad = bad.replace("reference: reference.png", "reference: small.png")
    elif case == "pin in use":
        bad = bad.replace("pin: 17", "pin: 27")
    else:
        bad = bad.replace("device: clip.avi", "device: missing.avi")
    other = DigitalOutputDevice(27, pin_factory=factory) if case == "pin in use" else None
    reloader = ReloadAt(path, bad, at=5, stop_at=89)
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory, listeners=[reloader])
    reloader.monitor = monitor
    with caplog.at_level(logging.INFO, logger="monitor"):
        summary = monitor.run()
    if other is not None:
        other.close()

    assert summary.frames == 90  # it kept running to the end
    assert monitor.config.detection.threshold == 0.85
    refused = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert len(refused) == len(refusals) if case == "two problems" else len(refused) == 1
    for part in refusals:
        assert any(part in message for message in refused), (part, refused)
    assert all(r.levelno == logging.ERROR for r in caplog.records if "reload refused" in r.getMessage())
    assert not any(r.getMessage().startswith("reloaded") for r in caplog.records)
    events = read_events(tmp_path / "events.jsonl")
    assert [e["frame"] for e in events if e["type"] == "event_start"] == (starts or [12, 52])
    assert levels(factory) == [False, True, False, True, False]


# --- snapshot folder missing, read-only, or full ------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` refuse new files, for root too (the immutable attribute) where chmod would not."""
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("root, and this file system has no immutable attribute to make a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


DISK_FULL_RUN = """
import json, logging, resource, sys
from gpiozero.pins.mock import MockFactory
from monitor.config import load_config
from monitor.daemon import Monitor
logging.basicConfig(level=logging.WARNING)
path = sys.argv[1]
monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=MockFactory())
# The kernel refuses file bytes past 8 kB, as a full disk would, for root too: the event log's
# few lines fit, a snapshot does not.
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
summary = monitor.run()
print(json.dumps([summary.frames, summary.events, monitor.actions.outputs["main"].device is None]))
"""


@pytest.mark.parametrize("case", ["deleted while running", "cannot be created", "read-only", "disk full"])
def test_snapshot_folder_trouble_costs_only_the_snapshot(
    tmp_path: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    clip = write_clip(tmp_path, frames=60, changed=[range(10, 20), range(35, 45)])
    snapshots = tmp_path / "snapshots"
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))

    class DeleteFolderAfterFirstEvent:
        def on_frame(self, status: FrameStatus) -> None:
            if status.frame == 25:
                shutil.rmtree(snapshots)

        def on_event(self, record: EventRecord) -> None:
            pass

        def close(self) -> None:
            pass

    if case == "disk full":
        result = subprocess.run(
            [sys.executable, "-c", DISK_FULL_RUN, str(path)], capture_output=True, text=True, env=ENV, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[60, 2, true]"
        warnings = [line for line in result.stderr.splitlines() if "not saved" in line]
        assert len(warnings) == 1 and "File too large" in warnings[0]  # once, not once per event
    else:
        listeners = [DeleteFolderAfterFirstEvent()] if case == "deleted while running" else []
        if case == "cannot be created":
            snapshots.write_text("a file where the folder should be")
        with contextlib.ExitStack() as stack:
            if case == "read-only":
                stack.enter_context(read_only(snapshots))
            monitor = Monitor(
                load_config(path), config_path=path, realtime=False, pin_factory=factory, listeners=listeners
            )
            with caplog.at_level(logging.WARNING):
                summary = monitor.run()
        assert summary.frames == 60 and summary.events == 2
        warnings = [r.getMessage() for r in caplog.records if "not saved" in r.getMessage()]
        assert len(warnings) == (0 if case == "deleted while running" else 1)
        assert levels(factory) == [False, True, False, True, False]

    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"] * 2
    saved = [e["snapshot"] for e in events if e["type"] == "event_start"]
    if case == "deleted while running":
        assert all(saved)
        assert [p.name for p in snapshots.iterdir()] == [Path(saved[1]).name]  # the folder was made again
    else:
        assert saved == [None, None]
        if snapshots.is_dir():
            assert list(snapshots.iterdir()) == []  # no partial file, no temporary left behind


# --- the event log grows ------------------------------------------------------------------------


def test_event_log_rotates_at_max_log_mb_keeping_keep_logs_files(tmp_path: Path, factory: MockFactory) -> None:
    changed = [range(10 + 20 * k, 18 + 20 * k) for k in range(6)]
    clip = write_clip(tmp_path, frames=130, changed=changed)
    path = tmp_path / "config.yaml"
    max_bytes = 800  # a few records a file
    path.write_text(
        clip_config(clip).replace("snapshots: snapshots}", "snapshots: null, max_log_mb: 0.0008, keep_logs: 2}")
    )
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory)
    assert monitor.run().events == 6

    kept = sorted(p.name for p in tmp_path.glob("events.jsonl*"))
    assert kept == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    records = []
    for name in ["events.jsonl.2", "events.jsonl.1", "events.jsonl"]:
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= max_bytes and data.endswith(b"\n")
        in_file = read_events(tmp_path / name)
        assert len(in_file) == len(data.splitlines())  # every line is a whole record
        records += in_file
    # The newest of the twelve records, in order, none split or lost between the files kept.
    written = [(kind, 12 + 20 * k if kind == "event_start" else 20 + 20 * k) for k in range(6) for kind in STARTEND]
    got = [(r["type"], r["frame"]) for r in records]
    assert 4 < len(got) < len(written) and got == written[-len(got) :]


# --- SIGTERM while a snapshot or the reference is being written ----------------------------------


# Runs `monitor ...` with fsync of temporary files held up, so a signal lands mid-write, every time.
SLOW_WRITES = """
import os, sys, time
real_fsync = os.fsync
def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
        print("writing", os.readlink(f"/proc/self/fd/{fd}"), flush=True)
        time.sleep(float(os.environ["FSYNC_PAUSE"]))
    real_fsync(fd)
os.fsync = fsync
from monitor.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_slow_writer(*args: str | Path, pause: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITES, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "FSYNC_PAUSE": str(pause)},
    )


def wait_for_write(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("writing "):
            return line.split(" ", 1)[1].strip()
    raise AssertionError(f"the child never started writing: {process.communicate()[1]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("existing", [True, False], ids=["replacing", "first"])
def test_signal_while_the_reference_is_written_leaves_no_partial_file(
    tmp_path: Path, signum: int, existing: bool
) -> None:
    clip = write_clip(tmp_path, frames=12, changed=[])
    reference = clip.reference
    old = reference.read_bytes()
    if not existing:
        reference.unlink()
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip, fps=100))
    process = start_slow_writer("capture-reference", config, "--frames", "5", pause=60)
    try:
        temporary = wait_for_write(process)
        assert Path(temporary).parent == tmp_path and Path(temporary).name.startswith(".reference.png.")
        process.send_signal(signum)
        assert process.wait(timeout=30) == -signum
    finally:
        process.kill()
        process.communicate()
    if existing:
        assert reference.read_bytes() == old  # the previous reference, whole
    else:
        assert not reference.exists()
    # Anything left behind is a hidden temporary, never the final name.
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(name.startswith(".reference.png.") and name.endswith(".tmp") for name in left)


def test_sigterm_while_a_snapshot_is_written_finishes_it_then_stops(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=40, changed=[range(5, 40)])
    config = tmp_path / "config.yaml"
    config.write_text(clip_config(clip, fps=50, loop=True))
    process = start_slow_writer("run", config, pause=3.0)
    try:
        temporary = wait_for_write(process)
        assert Path(temporary).parent == tmp_path / "snapshots"
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert code == 0, stderr
    events = read_events(tmp_path / "events.jsonl")
    assert [e["type"] for e in events] == ["event_start", "event_end"]
    assert events[1]["reason"] == "stopped"
    snapshot = Path(str(events[0]["snapshot"]))
    assert [p.name for p in (tmp_path / "snapshots").iterdir()] == [snapshot.name]  # no temporary left
    picture = cv2.imread(str(snapshot))
    assert picture is not None and picture.shape[0] == H and picture.shape[1] > 2 * W  # whole, decodable


# --- SIGKILL or crash with the pin on -----------------------------------------------------------


@pytest.mark.parametrize("active_high", [True, False])
def test_a_pin_left_active_by_a_killed_monitor_is_driven_inactive_at_start(
    tmp_path: Path, factory: MockFactory, active_high: bool
) -> None:
    # The previous owner switched the pin on and died: its device went without being switched off.
    previous = DigitalOutputDevice(17, active_high=active_high, initial_value=False, pin_factory=factory)
    previous.on()
    previous.close()
    pin = factory.pin(17)
    left = len(pin.states)
    assert pin.state == active_high  # still at its active level

    clip = write_clip(tmp_path, frames=5, changed=[])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip).replace("pin: 17", f"pin: 17, active_high: {str(active_high).lower()}"))
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory)
    assert pin.state == (not active_high)  # inactive before the first frame is read
    assert len(pin.states) == left + 1
    monitor.run()
    assert pin.state == (not active_high)

    wiring = (ROOT / "README.md").read_text(encoding="utf-8").split("## Wiring", 1)[1].split("\n## ", 1)[0]
    assert "killed or crashes with the pin on" in wiring
    assert "drives it inactive first" in wiring
    assert "pull-down resistor from the relay input to GND" in wiring


# --- security: what the daemon creates is not world-writable -------------------------------------


def test_files_the_daemon_creates_are_not_world_writable(
    tmp_path: Path, factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_clip(tmp_path, frames=60, changed=[range(10, 20), range(35, 45)])
    path = tmp_path / "config.yaml"
    path.write_text(
        clip_config(clip, fps=100)
        .replace("reference: reference.png", "reference: refs/new/reference.png")
        .replace(
            "events: {log: events.jsonl, snapshots: snapshots}",
            "events: {log: logs/events.jsonl, snapshots: media/snapshots, max_log_mb: 0.0008}",
        )
    )
    ours = set(listing(tmp_path))
    previous = os.umask(0)  # the worst umask a service could be started with
    try:
        assert run_cli(monkeypatch, "capture-reference", path, "--frames", "3") == 0
        Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory).run()
    finally:
        os.umask(previous)
    created = [tmp_path / name for name in set(listing(tmp_path)) - ours]
    names = {p.relative_to(tmp_path).as_posix() for p in created}
    assert {"refs/new/reference.png", "logs/events.jsonl", "logs/events.jsonl.1"} <= names
    assert any(name.startswith("media/snapshots/") for name in names)
    for created_path in created:
        mode = stat.S_IMODE(created_path.stat().st_mode)
        assert not mode & stat.S_IWOTH, f"{created_path} is world-writable ({oct(mode)})"
    assert stat.S_IMODE((tmp_path / "logs" / "events.jsonl").stat().st_mode) & 0o007 == 0
