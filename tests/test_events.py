"""The event log and the snapshot folder: format, durability, rotation, retention, disk failures."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.events import EventLog, SnapshotStore, read_events, snapshot_name
from monitor.status import EventRecord

ROOT = Path(__file__).resolve().parents[1]
WHEN = 1_795_000_000.25  # a fixed moment in November 2026
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d|Z)$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def start_record(frame: int, *, snapshot: str | None = "snapshots/x.jpg") -> EventRecord:
    return EventRecord(
        type="event_start",
        time=WHEN + frame / 5,
        frame=frame,
        score=0.7341234,
        changed_fraction=0.1234567,
        boxes=[(10, 20, 30, 40), (50, 60, 5, 6)],
        snapshot=snapshot,
    )


def raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


# --- the event log ---------------------------------------------------------------------------


def test_each_event_is_one_json_line_with_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, max_bytes=1_000_000, keep=3) as log:
        log.write(start_record(120, snapshot="snapshots/café.jpg"))
        log.write(EventRecord(type="event_end", time=WHEN + 30, frame=270, score=0.95, extra={"duration": 30.0}))
    lines = raw_lines(path)
    assert len(lines) == 2
    assert " " not in lines[0].replace("event_start", "")  # compact separators
    assert "café" in lines[0]  # ensure_ascii=False: readable, not \u escapes
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"type", "time", "frame", "score", "changed_fraction", "boxes", "snapshot"}
    assert first["type"] == "event_start" and first["frame"] == 120
    assert first["score"] == pytest.approx(0.73412) and first["changed_fraction"] == pytest.approx(0.12346)
    assert first["boxes"] == [[10, 20, 30, 40], [50, 60, 5, 6]]
    assert first["snapshot"] == "snapshots/café.jpg"
    assert ISO_WITH_ZONE.match(first["time"])
    parsed = datetime.fromisoformat(first["time"])
    assert parsed.tzinfo is not None and parsed.timestamp() == pytest.approx(WHEN + 24, abs=1e-3)
    assert second["type"] == "event_end" and second["duration"] == 30.0 and second["boxes"] == []
    assert read_events(path) == [first, second]


def test_each_event_is_also_logged_as_a_readable_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.events")
    with EventLog(tmp_path / "events.jsonl", max_bytes=10_000, keep=1) as log:
        log.write(start_record(120))
        log.write(EventRecord(type="camera_lost", time=WHEN, frame=130))
    messages = [r.getMessage() for r in caplog.records]
    assert "event start at frame 120: score 0.734, 2 changed regions, snapshot snapshots/x.jpg" in messages
    assert "camera lost at frame 130" in messages


def test_appends_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"  # the folder is created
    with EventLog(path, max_bytes=100_000, keep=2) as log:
        log.write(start_record(1))
        log.write(start_record(2))
    with EventLog(path, max_bytes=100_000, keep=2) as log:
        log.write(start_record(3))
    assert [r["frame"] for r in read_events(path)] == [1, 2, 3]


def test_records_are_on_disk_when_the_process_dies_without_closing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    result = run_python(
        f"""
        import os
        from monitor.events import EventLog
        from monitor.status import EventRecord
        log = EventLog({str(path)!r}, max_bytes=100_000, keep=2)
        for frame in range(5):
            log.write(EventRecord(type="event_start", time=1.0e9, frame=frame))
        os._exit(0)  # no close, no interpreter cleanup, no buffered data flushed at exit
        """
    )
    assert result.returncode == 0, result.stderr
    assert [r["frame"] for r in read_events(path)] == [0, 1, 2, 3, 4]


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, max_bytes=100_000, keep=2) as log:
        log.write(start_record(1))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"type":"event_start","time":"2026-11')  # a crash mid-line
    assert [r["frame"] for r in read_events(path)] == [1]
    with EventLog(path, max_bytes=100_000, keep=2) as log:
        log.write(start_record(2))
    assert [r["frame"] for r in read_events(path)] == [1, 2]
    assert len(raw_lines(path)) == 3  # the fragment kept on a line of its own


def test_rotation_keeps_keep_files_and_never_splits_a_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line_bytes = len((json.dumps(start_record(0).to_json(), separators=(",", ":")) + "\n").encode())
    max_bytes = line_bytes * 4 + line_bytes // 2  # four lines fit, a fifth does not
    with EventLog(path, max_bytes=max_bytes, keep=3) as log:
        for frame in range(100):
            log.write(start_record(frame))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    frames: list[int] = []
    for name in ["events.jsonl.3", "events.jsonl.2", "events.jsonl.1", "events.jsonl"]:
        file = tmp_path / name
        data = file.read_bytes()
        assert len(data) <= max_bytes and data.endswith(b"\n")
        lines = data.decode().splitlines()
        frames += [json.loads(line)["frame"] for line in lines]  # every line parses whole
        assert len(lines) == 4 or name == "events.jsonl"
    assert frames == list(range(100 - len(frames), 100))  # the newest records, in order, none lost between files
    assert len(frames) == 4 * 3 + len(raw_lines(path))


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, max_bytes=50, keep=2) as log:
        log.write(start_record(1))
        log.write(start_record(2))
    assert [r["frame"] for r in read_events(path)] == [2]
    assert [r["frame"] for r in read_events(tmp_path / "events.jsonl.1")] == [1]


def test_log_files_are_not_world_readable_or_writable(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, max_bytes=300, keep=2) as log:
        for frame in range(4):
            log.write(start_record(frame))
    for file in [path, tmp_path / "events.jsonl.1"]:
        mode = stat.S_IMODE(file.stat().st_mode)
        assert mode & 0o007 == 0, oct(mode)
        assert mode == 0o640


def test_a_failing_disk_drops_the_record_logs_once_a_minute_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a regular file where the log folder should be")  # fails even for root
    path = blocker / "events.jsonl"
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="monitor.events"):
        log = EventLog(path, max_bytes=10_000, keep=2, clock=clock)
        for frame in range(3):
            log.write(start_record(frame))  # must not raise
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "cannot open" in errors[0].getMessage()
        assert log.dropped == 3
        clock.now += 61
        log.write(start_record(3))
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2 and "(3 more like this" in errors[1].getMessage()
        blocker.unlink()
        blocker.mkdir()
        log.write(start_record(4))
        log.close()
        log.close()
        log.write(start_record(5))  # after close: dropped with a warning, not raised
    assert [r["frame"] for r in read_events(path)] == [4]
    assert log.dropped == 5


def test_read_events_skips_a_garbage_line_in_the_middle(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"frame": 1}\nnot json\n[1, 2]\n{"frame": 2}\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="monitor.events"):
        assert read_events(path) == [{"frame": 1}, {"frame": 2}]
    assert len(caplog.records) == 2 and "line 2" in caplog.records[0].getMessage()


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_names_sort_by_time() -> None:
    name = snapshot_name(when=WHEN, frame=120, kind="event")
    assert re.fullmatch(r"\d{8}-\d{6}\.250Z-f000120-event\.jpg", name)
    later = [snapshot_name(when=WHEN + dt, frame=frame, kind="event") for dt, frame in [(0.001, 1), (1, 0), (86400, 0)]]
    assert sorted([*later, name]) == [name, *later]
    assert snapshot_name(when=WHEN, frame=1, kind="Camera Lost!").endswith("-camera-lost.jpg")


def test_save_writes_a_jpeg(tmp_path: Path, photo: np.ndarray) -> None:
    store = SnapshotStore(tmp_path / "a" / "snapshots", keep=10, max_bytes=10_000_000)
    path = store.save(photo, when=WHEN, frame=120)
    assert path is not None and path.parent == tmp_path / "a" / "snapshots"
    assert path.name == snapshot_name(when=WHEN, frame=120, kind="event")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.shape == photo.shape
    assert np.abs(image.astype(int) - photo.astype(int)).mean() < 5  # JPEG, but the same picture
    assert store.snapshots() == [path]


def test_retention_by_count_keeps_the_newest(tmp_path: Path, photo: np.ndarray) -> None:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a snapshot: never pruned")
    store = SnapshotStore(folder, keep=3, max_bytes=100_000_000)
    saved = [store.save(photo, when=WHEN + i, frame=i) for i in range(6)]
    assert store.snapshots() == saved[3:]
    assert (folder / "notes.txt").exists()


def test_retention_by_bytes(tmp_path: Path, photo: np.ndarray) -> None:
    store = SnapshotStore(tmp_path, keep=100, max_bytes=10**9)
    first = store.save(photo, when=WHEN, frame=0)
    assert first is not None
    size = first.stat().st_size
    store.max_bytes = int(size * 2.5)
    saved = [first] + [store.save(photo, when=WHEN + i, frame=i) for i in range(1, 5)]
    assert store.snapshots() == saved[3:]
    assert sum(p.stat().st_size for p in store.snapshots()) <= store.max_bytes


def test_the_newest_snapshot_is_kept_even_alone_over_the_byte_limit(tmp_path: Path, photo: np.ndarray) -> None:
    store = SnapshotStore(tmp_path, keep=5, max_bytes=10)
    store.save(photo, when=WHEN, frame=0)
    newest = store.save(photo, when=WHEN + 1, frame=1)
    assert newest is not None and newest.exists()
    assert store.snapshots() == [newest]


def test_disabled_store_saves_nothing(tmp_path: Path, photo: np.ndarray) -> None:
    store = SnapshotStore(None, keep=5, max_bytes=10**6)
    assert not store.enabled
    assert store.save(photo, when=WHEN, frame=0) is None
    assert store.snapshots() == []


def test_unwritable_folder_returns_none_and_warns_once_a_minute(
    tmp_path: Path, photo: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a regular file: no folder can be made under it, not even by root")
    clock = FakeClock()
    store = SnapshotStore(blocker / "snapshots", keep=5, max_bytes=10**6, clock=clock)
    with caplog.at_level(logging.WARNING, logger="monitor.events"):
        assert [store.save(photo, when=WHEN + i, frame=i) for i in range(3)] == [None, None, None]
        assert len(caplog.records) == 1 and "not saved" in caplog.records[0].getMessage()
        clock.now += 60
        assert store.save(photo, when=WHEN + 3, frame=3) is None
    assert len(caplog.records) == 2 and "(2 more like this" in caplog.records[1].getMessage()
    assert blocker.is_file()


def test_a_write_that_fails_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    # RLIMIT_FSIZE makes the kernel refuse the JPEG's bytes after the temporary file exists,
    # as a full disk would; it holds for root too. A child process keeps the limit away from pytest.
    result = run_python(
        f"""
        import logging, resource
        import numpy as np
        from skimage import data
        from monitor.events import SnapshotStore
        logging.basicConfig(level=logging.WARNING)
        store = SnapshotStore({str(folder)!r}, keep=5, max_bytes=10**9)
        store.folder.mkdir()
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        print(store.save(np.ascontiguousarray(data.camera()), when=1.0e9, frame=7))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    assert "not saved" in result.stderr and "File too large" in result.stderr
    assert list(folder.iterdir()) == []  # neither the snapshot nor a .tmp remains
