"""Change gating: reused verdicts on still frames, and not one decision changed by them."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import HttpConfig, load_config
from monitor.daemon import Monitor
from monitor.events import ScoreTable, read_events
from monitor.exc import ConfigError
from monitor.gating import ChangeGate, Standing
from monitor.similarity import Comparator
from monitor.status import EventRecord, FrameStatus
from monitor.web.server import StatusServer
from tests.conftest import shared_data
from tests.notify_socket import NotifySocket
from tests.scenes import HEIGHT, WIDTH, background, clip_config, object_patch, other_patch, write_clip, write_scene

# -- the gate on its own: a real photo with sensor noise -------------------------------------------

SHAPE = (240, 320)


def still_scene() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.camera(), SHAPE[::-1], interpolation=cv2.INTER_AREA)


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def with_cup(image: np.ndarray, x: int, y: int) -> np.ndarray:
    cup = object_patch()
    out = image.copy()
    out[y : y + cup.shape[0], x : x + cup.shape[1]] = cup
    return out


class Watched:
    """A left-half zone judged by a real comparator, with a gate in front of it."""

    FLOOR = 0.85  # threshold 0.8, clear_threshold 0.85: under the 0.92 that sensor noise alone scores here

    def __init__(self, *, max_skip: int, floor: float = FLOOR) -> None:
        self.floor = floor
        self.scene = still_scene()
        self.mask = np.zeros(SHAPE, bool)
        self.mask[:, :160] = True
        self.comparator = Comparator(self.scene, mask=self.mask)
        self.gate = ChangeGate([self.mask], SHAPE, max_skip=max_skip)
        self.rng = np.random.default_rng(11)
        self.last: Standing | None = None

    def frame(self) -> np.ndarray:
        return noisy(self.scene, self.rng)

    def judge(self, frame: np.ndarray, *, steady: bool = True, held: bool = False) -> bool:
        """Reuse or score ``frame`` as Watches does; True when its last verdict was reused."""
        now = self.last if self.last is not None else Standing(score=float("nan"), floor=self.floor, steady=False)
        if self.gate.may_reuse(frame, [Standing(now.score, now.floor, steady and now.steady)], held=held):
            self.gate.reused()
            return True
        self.last = Standing(score=self.comparator.score(frame), floor=self.floor, steady=steady)
        self.gate.scored(frame, [self.last])
        return False

    def warm_up(self) -> None:
        """Quiet frames until one is reused: the noise is learnt, and the last scored frame is a quiet one."""
        for _ in range(100):
            if self.judge(self.frame()):
                return
        raise AssertionError("no frame of a still scene was reused")


def test_a_still_scene_is_reused_at_most_max_skip_frames_in_a_row() -> None:
    watched = Watched(max_skip=4)
    decisions = [watched.judge(watched.frame()) for _ in range(60)]
    assert not any(decisions[:9])  # the first frame, then eight quiet observations to learn the noise from
    first = decisions.index(True)
    assert decisions[first : first + 40] == ([True] * 4 + [False]) * 8
    assert watched.gate.reused_frames == sum(decisions)


def test_an_object_that_could_move_the_score_across_a_threshold_is_compared() -> None:
    far_right = 320 - object_patch().shape[1]
    watched = Watched(max_skip=1000)
    watched.warm_up()
    assert not watched.judge(with_cup(watched.frame(), 60, 100))  # inside the zone: 5 % of it
    watched.warm_up()
    assert watched.judge(with_cup(watched.frame(), 160 + 3, 100))  # in reach of 1 % of it: cannot cross 0.85
    watched.warm_up()
    assert watched.judge(with_cup(watched.frame(), far_right, 100))  # out of its reach
    # With the thresholds 0.01 under the score, the 1 % in the cup's reach (3 pixels beyond the zone's
    # edge, within the 11x11 window) could cross them, and the frame is compared; the far cup still not.
    tight = Watched(max_skip=1000, floor=0.91)  # the noisy frames score about 0.92
    tight.warm_up()
    assert tight.last is not None and tight.last.score - tight.floor < 0.02
    assert not tight.judge(with_cup(tight.frame(), 160 + 3, 100))
    tight.warm_up()
    assert tight.judge(with_cup(tight.frame(), far_right, 100))


def test_a_change_of_light_over_the_whole_zone_is_compared() -> None:
    watched = Watched(max_skip=1000)
    watched.warm_up()

    def dimmed() -> np.ndarray:
        return np.clip(watched.frame().astype(np.int16) - 6, 0, 255).astype(np.uint8)

    assert not watched.judge(dimmed())
    assert watched.judge(dimmed())  # the lamp stays dimmed: frames are like the last scored one again


def test_reuse_needs_a_steady_zone_and_no_hold_and_ends_with_a_reset() -> None:
    watched = Watched(max_skip=1000)
    watched.warm_up()
    assert not watched.judge(watched.frame(), steady=False)  # an event open, settling, or a transition
    assert not watched.judge(watched.frame())  # the frame after a transition is compared too
    assert watched.judge(watched.frame())
    assert not watched.judge(watched.frame(), held=True)
    watched.gate.reset()  # the source reopened, or the reference changed
    assert not watched.judge(watched.frame())
    assert watched.judge(watched.frame())


# -- the real pipeline: the same decisions with gating on and off ------------------------------------


class Recorder:
    """What a user sees of each frame: each zone's word, whether it counts as below, and reuse."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, tuple[tuple[str, str, bool, bool], ...]]] = []
        self.reused = 0

    def on_frame(self, status: FrameStatus) -> None:
        self.frames.append((status.frame, tuple((v.zone, v.word, v.below, v.active) for v in status.zones)))
        self.reused += any(v.reused for v in status.zones)

    def on_event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        pass


def decisions(config: Path, pins: list[int], *, max_skip: int) -> tuple[object, ...]:
    """Replay ``config`` with ``detection.max_skip_frames`` set; its events, frames, pins and reused frames."""
    data = yaml.safe_load(config.read_text())
    data.setdefault("detection", {})["max_skip_frames"] = max_skip
    log = config.parent / f"events-{max_skip}.jsonl"
    data["events"] = {"log": str(log), "snapshots": None}
    path = config.with_name(f"config-{max_skip}.yaml")
    path.write_text(yaml.safe_dump(data))
    factory = MockFactory()
    recorder = Recorder()
    try:
        Monitor(load_config(path), config_path=path, realtime=False, pin_factory=factory, listeners=[recorder]).run()
        states = {pin: [state.state for state in factory.pin(pin).states] for pin in pins}
    finally:
        factory.reset()
        factory.close()
    wall_clock = {"time", "start_time", "snapshot"}  # when the replay ran, not what it decided
    events = [{key: value for key, value in event.items() if key not in wall_clock} for event in read_events(log)]
    return events, recorder.frames, states, recorder.reused


def assert_same_decisions(config: Path, pins: list[int], *, least_reused: int) -> None:
    events, frames, states, none = decisions(config, pins, max_skip=0)
    gated_events, gated_frames, gated_states, reused = decisions(config, pins, max_skip=10)
    assert none == 0 and reused >= least_reused  # gating did reuse verdicts...
    assert gated_events == events  # ...and changed no event,
    assert gated_frames == frames  # no state of any zone on any frame,
    for pin, history in states.items():  # and no pin's history
        assert gated_states[pin] == history and len(gated_states[pin]) == len(history)


def clip_scene(folder: Path) -> tuple[Path, list[int]]:
    """The detection tests' clip: the cup comes and goes in the watched half, twice for good and once too briefly."""
    clip = write_clip(folder, frames=300, changed=[range(80, 120), range(190, 192), range(230, 260)])
    return _config(folder, clip_config(clip)), [17]


def adapting_clip_scene(folder: Path) -> tuple[Path, list[int]]:
    """The same clip with the reference adapting to the scene (a new reference about once a second)."""
    clip = write_clip(folder, frames=300, changed=[range(80, 120), range(230, 260)])
    return _config(folder, clip_config(clip, extra="reference: {path: reference.png, adapt: {enabled: true}}")), [17]


ZONES = f"""
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}
reference: reference.png
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
zones:
  gate:
    mask: {{include: [[[0, 20], [75, 20], [75, 100], [0, 100]]]}}
    gpio: {{pin: 17}}
  door:
    mask: {{include: [[[88, 18], [160, 18], [160, 102], [88, 102]]]}}
    detection: {{threshold: 0.8}}
    gpio: {{pin: 27, active_high: false}}
  porch:
    mask: {{include: [[[60, 0], [100, 0], [100, 20], [60, 20]]]}}
    detection: {{local_level: 0.4}}
    gpio: {{pin: 22}}
"""


def zones_scene(folder: Path) -> tuple[Path, list[int]]:
    """Three zones (two sharing one comparison): the cup in the door, something else in the gate, both at once."""
    cup, other = object_patch(), other_patch()
    write_scene(
        folder,
        frames=300,
        placements=[
            (range(60, 100), (100, 40), cup),
            (range(150, 190), (10, 40), other),
            (range(240, 270), (100, 40), cup),
        ],
    )
    cv2.imwrite(str(folder / "reference.png"), background())
    return _config(folder, ZONES), [17, 27, 22]


RIGHT_HALF = f"""
source: {{kind: opencv, device: scene.avi, width: {WIDTH}, height: {HEIGHT}, fps: 25}}
reference: reference.png
mask: {{include: [[[80, 0], [160, 0], [160, 120], [80, 120]]]}}
detection: {{threshold: 0.85, clear_threshold: 0.9, trigger_frames: 3, clear_frames: 3, settle_frames: 2}}
gpio: {{pin: 17}}
"""


def sliding_scene(folder: Path) -> tuple[Path, list[int]]:
    """The cup creeping into the watched half from its right edge, 2 pixels a frame: the hard case for a gate."""
    cup = object_patch()
    width = cup.shape[1]
    placements = [(range(100 + step, 101 + step), (160 - 2 * step, 60), cup[:, : 2 * step]) for step in range(1, 25)]
    placements += [(range(125, 200), (160 - width, 60), cup)]
    write_scene(folder, frames=300, placements=placements)
    cv2.imwrite(str(folder / "reference.png"), background())
    return _config(folder, RIGHT_HALF), [17]


def fading_scene(folder: Path) -> tuple[Path, list[int]]:
    """The cup fading in over 30 frames and out again, with no hysteresis: each frame a little more than the last."""
    cup = object_patch().astype(np.float32)
    x, y = 160 - cup.shape[1], 60
    empty = background()[y : y + cup.shape[0], x : x + cup.shape[1]].astype(np.float32)

    def blend(alpha: float) -> np.ndarray:
        return np.clip((1 - alpha) * empty + alpha * cup, 0, 255).astype(np.uint8)

    placements = [(range(100 + k, 101 + k), (x, y), blend(k / 30)) for k in range(30)]
    placements += [(range(130, 170), (x, y), blend(1.0))]
    placements += [(range(170 + k, 171 + k), (x, y), blend(1 - k / 30)) for k in range(30)]
    write_scene(folder, frames=300, placements=placements)
    cv2.imwrite(str(folder / "reference.png"), background())
    return _config(folder, RIGHT_HALF.replace("clear_threshold: 0.9", "clear_threshold: 0.85")), [17]


def _config(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("scene", [clip_scene, adapting_clip_scene, zones_scene, sliding_scene, fading_scene])
def test_gating_changes_no_decision_on_the_detection_clips(
    tmp_path: Path, scene: Callable[[Path], tuple[Path, list[int]]]
) -> None:
    config, pins = scene(tmp_path)
    assert_same_decisions(config, pins, least_reused=30)


def test_gating_changes_no_decision_on_the_highway(tmp_path: Path) -> None:
    highway = shared_data("cdnet-highway")
    frames = [cv2.imread(str(highway / "input" / f"in{n:06d}.jpg"), cv2.IMREAD_GRAYSCALE) for n in range(1, 470, 3)]
    cv2.imwrite(str(tmp_path / "reference.png"), np.median(np.stack(frames), axis=0).astype(np.uint8))
    config = {
        "source": {"kind": "images", "device": str(highway / "input"), "width": 320, "height": 240},
        "reference": "reference.png",
        "mask": {"include": [[[205, 40], [262, 40], [252, 230], [120, 230]]]},  # benchmarks/README.md
        "detection": {"threshold": 0.9667, "clear_threshold": 0.9717},
        "gpio": {"pin": 17},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # A busy road: cars are in view nearly all the time, so few frames are like the last scored one.
    assert_same_decisions(tmp_path / "config.yaml", [17], least_reused=1)


# -- the commands and the config -------------------------------------------------------------------

ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}


def test_replay_scores_mark_the_reused_rows(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=120, changed=[range(70, 90)])
    (tmp_path / "config.yaml").write_text(clip_config(clip))
    command = [sys.executable, "-m", "monitor", "replay", "config.yaml", "--source", "clip.avi"]
    done = subprocess.run(
        [*command, "--scores", "scores.csv"],
        cwd=tmp_path,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    with open(tmp_path / "scores.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header[-1] == "reused"
    reused = [index for index, row in enumerate(rows) if row[-1] == "1"]
    assert len(reused) >= 40
    # The closing line says how much gating saved, as the rows show it.
    assert f"change gating kept {round(100 * len(reused) / len(rows))} % of the comparisons" in done.stdout
    assert all(rows[index][3] == rows[index - 1][3] for index in reused)  # the last score, kept
    assert not any(70 <= int(rows[index][0]) < 93 for index in reused)  # never while the cup is there or the event open


def test_the_status_page_and_metrics_show_what_gating_kept(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=120, changed=[range(70, 90)])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip))
    table = io.StringIO()
    server = StatusServer(HttpConfig(host="127.0.0.1", port=0), scene=lambda: monitor.watches.scene, snapshot_dir=None)
    listeners = [ScoreTable(table), server]
    monitor = Monitor(
        load_config(path), config_path=path, realtime=False, pin_factory=MockFactory(), listeners=listeners
    )
    server.start()
    try:
        with monitor:
            summary = monitor.run()
        host, port = server.address
        status = json.loads(urllib.request.urlopen(f"http://{host}:{port}/api/status", timeout=10).read())
        metrics = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read().decode()
    finally:
        server.close()
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    reused = sum(row["reused"] == "1" for row in rows)
    assert reused >= 40
    assert status["reused_share"] == pytest.approx(reused / len(rows), abs=1e-4)
    assert summary.reused_share == pytest.approx(reused / len(rows))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    zone = rows[0]["zone"]
    assert samples[("monitor_zone_reused_frames_total", (("zone", zone),))] == reused
    assert status["zones"][zone]["reused"] is (rows[-1]["reused"] == "1")


def test_max_skip_frames_is_checked_and_zero_turns_gating_off(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=1, changed=[])
    path = tmp_path / "config.yaml"
    path.write_text(clip_config(clip).replace("settle_frames: 2}", "settle_frames: 2, max_skip_frames: -1}"))
    with pytest.raises(ConfigError, match=r"yaml: detection.max_skip_frames: must be greater than or equal to 0"):
        load_config(path)
    path.write_text(clip_config(clip).replace("settle_frames: 2}", "settle_frames: 2, max_skip_frames: 0}"))
    monitor = Monitor(load_config(path), config_path=path, realtime=False, pin_factory=MockFactory())
    with monitor:
        assert monitor.watches.reused_share == 0.0
        assert all(group.gate is None for group in monitor.watches._groups)


# -- what the frame loop loads -----------------------------------------------------------------------

NOT_IN_THE_LOOP = ("skimage", "scipy", "matplotlib", "PIL", "monitor.tuning", "monitor.preview", "monitor.demo")


def test_monitor_run_loads_nothing_the_frame_loop_does_not_use(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(5):
        cv2.imwrite(str(folder / f"{index:03d}.png"), noisy(background(), rng))
    cv2.imwrite(str(tmp_path / "reference.png"), background())
    source = f"{{kind: images, device: frames, width: {WIDTH}, height: {HEIGHT}, fps: 20, loop: true}}"
    (tmp_path / "config.yaml").write_text(f"source: {source}\nreference: reference.png\ngpio: {{pin: 17}}\n")
    with NotifySocket() as sd:
        # -X importtime writes one line per module imported, as it is imported.
        command = [sys.executable, "-X", "importtime", "-m", "monitor", "run", "config.yaml"]
        process = subprocess.Popen(command, cwd=tmp_path, env={**ENV, **sd.env()}, stderr=subprocess.PIPE, text=True)
        try:
            sd.wait_for("READY=1", timeout=60)  # sent after the first scored frame
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    loaded = {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    assert "monitor.daemon" in loaded and "cv2" in loaded
    assert not {name for name in loaded if name.split(".")[0] in NOT_IN_THE_LOOP or name in NOT_IN_THE_LOOP}
