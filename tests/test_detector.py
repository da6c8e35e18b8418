"""The event state machine: trigger runs, hysteresis, clearing, settling, reconfiguring."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import DetectionConfig
from monitor.detector import Detector, EventEnd, EventStart, StateDetector
from monitor.exc import ConfigError

LOW, BAND, HIGH = 0.5, 0.91, 0.99  # below threshold, in the hysteresis band, clear


def make(
    *, trigger: int = 3, clear: int = 2, settle: int = 0, threshold: float = 0.9, clear_threshold: float = 0.93
) -> Detector:
    return Detector(
        threshold=threshold,
        clear_threshold=clear_threshold,
        trigger_frames=trigger,
        clear_frames=clear,
        settle_frames=settle,
    )


def feed(
    detector: Detector, scores: Sequence[float], *, first_frame: int = 0
) -> list[tuple[int, EventStart | EventEnd]]:
    """Feed scores at 10 frames per second; return (frame, result) for every non-None result."""
    out: list[tuple[int, EventStart | EventEnd]] = []
    for offset, score in enumerate(scores):
        frame = first_frame + offset
        result = detector.update(score, frame=frame, now=frame / 10)
        if result is not None:
            out.append((frame, result))
    return out


def test_below_is_strictly_under_the_threshold() -> None:
    detector = make()
    assert detector.below(0.8999)
    assert not detector.below(0.9)
    assert not detector.below(0.95)


def test_flicker_around_the_threshold_never_triggers() -> None:
    detector = make(trigger=3)
    assert feed(detector, [LOW, HIGH] * 50) == []
    assert feed(detector, [LOW, LOW, 0.9] * 30) == []  # exactly at the threshold is not below
    assert not detector.active


def test_one_frame_dips_never_trigger() -> None:
    detector = make(trigger=2)
    assert feed(detector, [HIGH, HIGH, LOW, HIGH, HIGH, HIGH, LOW, HIGH]) == []


def test_event_starts_on_exactly_the_trigger_frame() -> None:
    detector = make(trigger=3)
    results = feed(detector, [HIGH, 0.7, 0.6, 0.8, 0.4])
    assert results == [(3, EventStart(frame=3, time=0.3, score=0.8))]
    assert detector.active


def test_two_below_frames_are_not_enough_for_three() -> None:
    detector = make(trigger=3)
    assert feed(detector, [LOW, LOW, HIGH, LOW, LOW, HIGH]) == []
    assert not detector.active


def test_event_ends_after_clear_frames_and_reports_the_lowest() -> None:
    detector = make(trigger=2, clear=3)
    results = feed(detector, [LOW, 0.6, 0.2, 0.7, HIGH, HIGH, HIGH, HIGH])
    assert results == [
        (1, EventStart(frame=1, time=0.1, score=0.6)),
        (
            6,
            EventEnd(
                start_frame=1,
                start_time=0.1,
                end_frame=6,
                end_time=0.6,
                lowest_score=0.2,
                lowest_frame=2,
                finished_early=False,
            ),
        ),
    ]
    assert not detector.active
    end = results[1][1]
    assert isinstance(end, EventEnd) and end.duration == pytest.approx(0.5)


def test_hysteresis_band_keeps_the_event_open() -> None:
    detector = make(trigger=1, clear=2)
    feed(detector, [LOW])
    assert feed(detector, [BAND] * 100, first_frame=1) == []  # above threshold, under clear_threshold
    assert detector.active
    results = feed(detector, [0.93, 0.93], first_frame=101)  # clear_threshold itself clears
    assert [type(r) for _, r in results] == [EventEnd]


def test_a_band_frame_interrupts_the_clear_run() -> None:
    detector = make(trigger=1, clear=3)
    feed(detector, [LOW])
    assert feed(detector, [HIGH, HIGH, BAND, HIGH, HIGH, LOW, HIGH, HIGH], first_frame=1) == []
    assert detector.active
    results = feed(detector, [HIGH], first_frame=9)
    assert len(results) == 1 and isinstance(results[0][1], EventEnd)
    assert results[0][1].end_frame == 9


def test_a_new_event_needs_a_fresh_trigger_run_after_the_end() -> None:
    detector = make(trigger=2, clear=1)
    results = feed(detector, [LOW, LOW, HIGH, LOW, HIGH, LOW, LOW])
    kinds = [(frame, type(r).__name__) for frame, r in results]
    assert kinds == [(1, "EventStart"), (2, "EventEnd"), (6, "EventStart")]


def test_trigger_and_clear_of_one_frame() -> None:
    detector = make(trigger=1, clear=1)
    results = feed(detector, [HIGH, LOW, HIGH, BAND, LOW, BAND, HIGH])
    kinds = [(frame, type(r).__name__) for frame, r in results]
    assert kinds == [(1, "EventStart"), (2, "EventEnd"), (4, "EventStart"), (6, "EventEnd")]


def test_finish_closes_an_open_event_early() -> None:
    detector = make(trigger=2)
    feed(detector, [LOW, LOW, 0.3, BAND])
    end = detector.finish(frame=4, now=0.45)
    assert end == EventEnd(
        start_frame=1,
        start_time=0.1,
        end_frame=4,
        end_time=0.45,
        lowest_score=0.3,
        lowest_frame=2,
        finished_early=True,
    )
    assert not detector.active
    assert detector.finish(frame=5, now=0.5) is None


def test_finish_without_an_event_resets_the_below_run() -> None:
    detector = make(trigger=3)
    feed(detector, [LOW, LOW])
    assert detector.finish(frame=2, now=0.2) is None
    assert feed(detector, [LOW, LOW], first_frame=3) == []  # the run starts again from zero


def test_settling_frames_never_start_an_event() -> None:
    detector = make(trigger=2, settle=4)
    detector.settle()
    assert detector.settling
    assert feed(detector, [LOW, LOW, LOW, LOW]) == []
    assert not detector.settling and not detector.active
    # Settle frames do not count toward the run either: two more below frames are needed.
    results = feed(detector, [LOW, LOW], first_frame=4)
    assert [(frame, type(r)) for frame, r in results] == [(5, EventStart)]


def test_settle_resets_the_below_run() -> None:
    detector = make(trigger=3, settle=0)
    feed(detector, [LOW, LOW])
    detector.settle()
    assert not detector.settling  # settle_frames 0: nothing ignored, only the run reset
    assert feed(detector, [LOW, LOW], first_frame=2) == []
    assert len(feed(detector, [LOW], first_frame=4)) == 1


def test_an_open_event_survives_a_reopen_and_settling_frames_never_end_it() -> None:
    detector = make(trigger=1, clear=2, settle=3)
    feed(detector, [LOW])
    feed(detector, [HIGH], first_frame=1)  # one clear frame; the reopen must discard it
    detector.settle()
    assert feed(detector, [HIGH, HIGH, 0.01], first_frame=2) == []  # junk: no end, no new lowest
    assert detector.active
    assert feed(detector, [HIGH], first_frame=5) == []
    results = feed(detector, [HIGH], first_frame=6)
    assert len(results) == 1
    end = results[0][1]
    assert isinstance(end, EventEnd)
    assert (end.start_frame, end.end_frame, end.lowest_score, end.lowest_frame) == (0, 6, LOW, 0)


def test_reconfigure_mid_event_keeps_it_open_and_uses_the_new_thresholds() -> None:
    detector = make(trigger=1, clear=2, threshold=0.9, clear_threshold=0.93)
    feed(detector, [LOW])
    detector.reconfigure(DetectionConfig(threshold=0.9, clear_threshold=0.995, trigger_frames=1, clear_frames=3))
    assert detector.active
    assert feed(detector, [HIGH] * 10, first_frame=1) == []  # 0.99 is in the new band
    results = feed(detector, [1.0, 1.0, 1.0], first_frame=11)
    assert [(frame, type(r)) for frame, r in results] == [(13, EventEnd)]
    end = results[0][1]
    assert isinstance(end, EventEnd) and end.start_frame == 0


def test_reconfigure_keeps_the_runs() -> None:
    detector = make(trigger=5)
    feed(detector, [LOW, LOW, LOW])
    detector.reconfigure(DetectionConfig(threshold=0.9, clear_threshold=0.93, trigger_frames=3, settle_frames=0))
    # The run of three already meets the new count: the next below frame starts the event.
    assert [(frame, type(r)) for frame, r in feed(detector, [LOW], first_frame=3)] == [(3, EventStart)]


def test_reconfigure_caps_the_frames_left_to_settle() -> None:
    detector = make(trigger=1, settle=10)
    detector.settle()
    detector.reconfigure(DetectionConfig(trigger_frames=1, settle_frames=2))
    assert feed(detector, [LOW, LOW, LOW]) == [(2, EventStart(frame=2, time=0.2, score=LOW))]


def test_from_config_and_invalid_counts() -> None:
    detector = Detector.from_config(DetectionConfig(threshold=0.8, clear_threshold=0.85, trigger_frames=4))
    assert (detector.threshold, detector.clear_threshold, detector.trigger_frames) == (0.8, 0.85, 4)
    with pytest.raises(ConfigError, match="trigger_frames"):
        make(trigger=0)
    with pytest.raises(ConfigError, match="clear_threshold"):
        make(threshold=0.9, clear_threshold=0.8)


def test_nan_scores_neither_trigger_nor_clear() -> None:
    nan = float("nan")
    detector = make(trigger=2, clear=2)
    assert feed(detector, [LOW, nan, LOW, nan]) == []
    feed(detector, [LOW, LOW], first_frame=4)
    assert detector.active
    assert feed(detector, [HIGH, nan, HIGH], first_frame=6) == []
    assert detector.active


@settings(max_examples=300, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.0, 0.5, 0.899, 0.9, 0.91, 0.93, 1.0]), max_size=80),
    reopen=st.lists(st.integers(min_value=0, max_value=79), max_size=3),
    trigger=st.integers(min_value=1, max_value=4),
    clear=st.integers(min_value=1, max_value=4),
    settle=st.integers(min_value=0, max_value=3),
)
def test_starts_and_ends_alternate_and_match(
    scores: list[float], reopen: list[int], trigger: int, clear: int, settle: int
) -> None:
    detector = make(trigger=trigger, clear=clear, settle=settle)
    open_start: EventStart | None = None
    for frame, score in enumerate(scores):
        if frame in reopen:
            detector.settle()
        result = detector.update(score, frame=frame, now=frame * 0.2)
        if isinstance(result, EventStart):
            assert open_start is None
            assert result.score < 0.9
            open_start = result
        elif isinstance(result, EventEnd):
            assert open_start is not None
            assert (result.start_frame, result.start_time) == (open_start.frame, open_start.time)
            assert open_start.frame < result.end_frame
            assert result.lowest_score <= open_start.score
            assert open_start.frame <= result.lowest_frame <= result.end_frame
            assert score >= 0.93 and not result.finished_early
            open_start = None
        assert detector.active == (open_start is not None)
    end = detector.finish(frame=len(scores), now=len(scores) * 0.2)
    if open_start is None:
        assert end is None
    else:
        assert end is not None and end.finished_early and end.start_frame == open_start.frame
    assert not detector.active


# --- StateDetector -----------------------------------------------------------------------------


def states(detector: StateDetector, frames: Sequence[dict[str, float]]) -> list[tuple[int, str, str | None]]:
    changes = []
    for index, scores in enumerate(frames):
        change = detector.update(scores, frame=index, now=float(index))
        if change is not None:
            assert change.frame == index and change.scores == scores
            changes.append((index, change.state, change.previous))
    return changes


FULL, EMPTY, NEITHER = {"full": 0.95, "empty": 0.5}, {"full": 0.6, "empty": 0.93}, {"full": 0.7, "empty": 0.72}


def test_state_detector_names_the_best_state_over_the_threshold_else_unknown() -> None:
    detector = StateDetector(threshold=0.9, trigger_frames=2, settle_frames=0)
    frames = [FULL] * 3 + [EMPTY] * 3 + [NEITHER] * 3 + [FULL] * 2
    assert states(detector, frames) == [
        (1, "full", None),
        (4, "empty", "full"),
        (7, "unknown", "empty"),
        (10, "full", "unknown"),
    ]


def test_state_detector_needs_the_candidate_for_trigger_frames_in_a_row() -> None:
    detector = StateDetector(threshold=0.9, trigger_frames=3, settle_frames=0)
    flicker = [FULL] * 3 + [EMPTY, EMPTY, FULL, EMPTY, EMPTY, NEITHER, EMPTY, EMPTY, EMPTY]
    assert states(detector, flicker) == [(2, "full", None), (11, "empty", "full")]


def test_state_detector_ignores_settle_frames_and_keeps_its_state_across_them() -> None:
    detector = StateDetector(threshold=0.9, trigger_frames=1, settle_frames=2)
    detector.settle()
    assert states(detector, [EMPTY, EMPTY, FULL]) == [(2, "full", None)]
    detector.settle()
    assert detector.settling
    assert states(detector, [EMPTY, EMPTY, FULL]) == []  # both junk frames ignored, still full
    assert detector.state == "full"


def test_a_nan_score_matches_no_state() -> None:
    detector = StateDetector(threshold=0.9, trigger_frames=1, settle_frames=0)
    assert detector.candidate({"full": float("nan"), "empty": 0.2}) == "unknown"
