"""Suggested thresholds: robust to a minority of changed frames; ``monitor tune`` end to end on real video."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import load_config
from monitor.events import read_events
from monitor.exc import MonitorError
from monitor.preview import CLEAR, THRESHOLD
from monitor.similarity import Comparator
from monitor.tuning import suggest_thresholds
from tests.scenes import HEIGHT, WIDTH, Clip, write_clip


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def changed_ranges(share: float, frames: int) -> list[range]:
    """``share`` of the frames changed, as two visits (a car passing twice)."""
    count = round(share * frames)
    return [range(10, 10 + count // 2), range(60, 60 + count - count // 2)] if count else []


def clip_scores(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    """Real scores of the clip's frames (right half watched) and which frames have the cup."""
    reference = cv2.imread(str(clip.reference), cv2.IMREAD_GRAYSCALE)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[:, 80:] = True
    comparator = Comparator(reference, mask=mask)
    capture = cv2.VideoCapture(str(clip.video))
    scores = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        scores.append(comparator.score(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
    capture.release()
    changed = np.array([any(i in r for r in clip.changed) for i in range(len(scores))])
    return np.array(scores), changed


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3])
def test_suggestion_separates_changed_frames_of_a_real_clip(tmp_path: Path, share: float) -> None:
    clip = write_clip(tmp_path, frames=100, changed=changed_ranges(share, 100))
    scores, changed = clip_scores(clip)
    assert changed.mean() == pytest.approx(share)
    found = suggest_thresholds(scores)
    unchanged = scores[~changed]
    assert unchanged.min() >= found.threshold  # no false alarm in the tuning run
    assert found.threshold < found.clear_threshold < found.unchanged_median
    if share:
        assert scores[changed].max() < found.threshold  # every cup frame is below
        assert found.changed == changed.sum()
    # The cup does not drag the threshold down: it is where a quiet run puts it.
    quiet = suggest_thresholds(unchanged)
    assert found.threshold == pytest.approx(quiet.threshold, abs=0.005)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_suggestion_is_robust_to_changed_frames_anywhere_below(share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = 300
    n_changed = round(share * count)
    unchanged = np.clip(rng.normal(0.95, 0.004, count - n_changed), 0, 1)
    changed = rng.uniform(0.5, 0.9, n_changed)  # a car partly or wholly in the watched area
    scores = rng.permutation(np.concatenate([unchanged, changed]))
    found = suggest_thresholds(scores)
    assert changed.max(initial=0.0) < found.threshold < unchanged.min()
    assert 0.92 <= found.threshold <= 0.93  # 0.95 - max(6 sigma, 0.02), for every share
    assert found.clear_threshold == pytest.approx((found.threshold + 0.95) / 2, abs=0.002)


def test_a_noisier_scene_gets_a_wider_margin() -> None:
    rng = np.random.default_rng(4)
    calm = suggest_thresholds(np.clip(rng.normal(0.97, 0.002, 200), 0, 1))
    noisy = suggest_thresholds(np.clip(rng.normal(0.97, 0.01, 200), 0, 1))
    assert calm.threshold == pytest.approx(0.95, abs=0.002)  # the 0.02 margin
    assert noisy.threshold == pytest.approx(0.97 - 6 * 0.01, abs=0.01)
    assert noisy.spread == pytest.approx(0.01, rel=0.2)


def test_explanation_says_how_and_warns_when_too_much_changed() -> None:
    rng = np.random.default_rng(5)
    found = suggest_thresholds(np.concatenate([rng.normal(0.97, 0.003, 90), [0.6] * 10]))
    line = found.explanation()
    assert f"{found.unchanged_median:.4f}" in line and "6 x robust spread" in line and "margin 0.02" in line
    assert "10 of 100 frames (10%)" in line and "quieter" not in line
    busy = suggest_thresholds(np.concatenate([rng.normal(0.97, 0.003, 60), [0.6] * 40]))
    assert "more than 30%" in busy.explanation()


def test_too_few_scores_is_an_error_and_nan_is_ignored() -> None:
    with pytest.raises(MonitorError, match="at least 10 scored frames to suggest thresholds, got 9"):
        suggest_thresholds([0.97] * 9 + [float("nan")] * 5)
    found = suggest_thresholds([0.97] * 20 + [float("nan")])
    assert found.count == 20 and found.threshold == pytest.approx(0.95)


# -- monitor tune --------------------------------------------------------------------

CONFIG = """\
# My porch camera.
source:
  kind: opencv
  device: clip.avi        # the recording
  width: 160
  height: 120
  fps: 25
reference: reference.png
mask:
  include: [[[80, 0], [160, 0], [160, 120], [80, 120]]]   # right half
detection:
  method: ssim            # keep this comment
  threshold: 0.5          # far too low
  clear_threshold: 0.6
  trigger_frames: 3
  clear_frames: 3
  settle_frames: 2
gpio: {pin: null}
events: {log: events.jsonl, snapshots: null}
"""


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return float(found.group(1))


def test_tune_writes_the_config_in_place_and_the_tuned_config_finds_the_change(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=100, changed=changed_ranges(0.1, 100))
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    result = run(
        "tune", config, "--source", clip.video, "--frames", "80", "--write", "--plot", "scores.png", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "80 frames: min " in out and " 1%: " in out and " 5%: " in out and " median " in out
    threshold = number(r"suggested: threshold (\d\.\d+)", out)
    clear = number(r"clear_threshold (\d\.\d+)", out)
    assert "unchanged median" in out and "10 of 80 frames (12%)" in out  # all 10 cup frames are in the first 80

    # In place: only the two values changed; comments and key order kept; the old file backed up.
    assert (tmp_path / "config.yaml.bak").read_text() == CONFIG
    expected = CONFIG.replace("threshold: 0.5          #", f"threshold: {threshold:g}".ljust(24) + "#")
    expected = expected.replace("clear_threshold: 0.6", f"clear_threshold: {clear:g}")
    assert config.read_text() == expected
    detection = load_config(config).detection
    assert (detection.threshold, detection.clear_threshold) == (threshold, clear)

    # The plot: both thresholds drawn across, clear above threshold.
    plot = cv2.imread(str(tmp_path / "scores.png"))
    assert plot is not None and plot.shape == (360, 900, 3)
    rows = {name: line_rows(plot, colour) for name, colour in (("threshold", THRESHOLD), ("clear", CLEAR))}
    assert rows["threshold"] and rows["clear"] and max(rows["clear"]) < min(rows["threshold"])

    # The tuned config turns the recording's two visits into two events.
    replayed = run("replay", config, "--source", clip.video, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    starts = [e["frame"] for e in read_events(tmp_path / "events.jsonl") if e["type"] == "event_start"]
    assert starts == [12, 62]


def line_rows(picture: np.ndarray, colour: tuple[int, int, int]) -> list[int]:
    """Rows where most of the picture's width has exactly ``colour``."""
    hits = np.all(picture == np.array(colour, np.uint8), axis=2).sum(axis=1)
    return [int(row) for row in np.flatnonzero(hits > picture.shape[1] * 0.6)]


def test_tune_by_seconds_and_from_the_configured_source(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=60, changed=[])
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    # A recording's time is its position: one second of a 25 fps clip is 26 frames.
    by_seconds = run("tune", config, "--source", clip.video, "--seconds", "1")
    assert by_seconds.returncode == 0, by_seconds.stderr
    assert "26 frames: min" in by_seconds.stdout
    configured = run("tune", config, "--frames", "12")
    assert configured.returncode == 0, configured.stderr
    assert "12 frames: min" in configured.stdout and "0 of 12 frames (0%)" in configured.stdout
    assert not (tmp_path / "config.yaml.bak").exists() and config.read_text() == CONFIG  # no --write


def test_tune_reads_a_configured_recording_without_pacing_it(tmp_path: Path) -> None:
    write_clip(tmp_path, frames=40, changed=[])
    config = tmp_path / "config.yaml"
    # At 0.5 fps, pacing 30 frames would take a minute: a recording is read as fast as it goes.
    config.write_text(CONFIG.replace("fps: 25", "fps: 0.5"))
    result = run("tune", config, "--frames", "30", timeout=40)
    assert result.returncode == 0, result.stderr
    assert "30 frames: min" in result.stdout


def test_tune_with_too_few_frames_is_one_error_line(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=5, changed=[])
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    result = run("tune", config, "--source", clip.video)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "monitor: error: need at least 10 scored frames to suggest thresholds, got 5"
    )


def test_writing_the_shipped_config_changes_exactly_the_two_values(tmp_path: Path) -> None:
    from monitor.config import update_config_file

    shipped = (Path(__file__).resolve().parents[1] / "config.yaml").read_text()
    path = tmp_path / "config.yaml"
    path.write_text(shipped)
    path.chmod(0o600)
    backup = update_config_file(path, {"detection.threshold": 0.951, "detection.clear_threshold": 0.967})
    assert backup.read_text() == shipped
    before, after = shipped.splitlines(), path.read_text().splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == ["threshold: 0.951", "clear_threshold: 0.967"]
    assert all(a.split("#")[1] == b.split("#")[1] for a, b in changed)  # the comments stay
    assert path.stat().st_mode & 0o777 == 0o600  # a config may hold a token: its mode is kept


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to one this user is not in needs root")
def test_writing_keeps_the_files_owner_and_group(tmp_path: Path) -> None:
    # An installed config is root:monitor 0640; `sudo monitor tune --write` must leave the
    # service able to read it (a new root:root file would make the next reload fail).
    from monitor.config import update_config_file

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(0o640)
    os.chown(path, 0, 1)  # group 1 (daemon): any group but root's
    update_config_file(path, {"detection.threshold": 0.5})
    assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o777) == (0, 1, 0o640)


def test_an_invalid_result_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    from monitor.config import update_config_file
    from monitor.exc import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match="clear_threshold: must be at or above threshold"):
        update_config_file(path, {"detection.threshold": 0.8})  # above the configured clear_threshold 0.6
    assert path.read_text() == CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
