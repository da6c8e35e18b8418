"""Frame statuses and verdicts as the frame loop makes them, for the listeners' tests.

A change zone's verdict is ``active`` exactly while its event is open (state
``changed``); a state zone's while its state is one of its on-states; the
frame's ``state`` is summed up by :meth:`FrameStatus.of`, as the loop does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from monitor.config import UNKNOWN
from monitor.status import Box, FrameStatus, Verdict


def change(
    zone: str = "main",
    *,
    score: float = 0.97,
    changed: bool = False,
    settling: bool = False,
    threshold: float = 0.9,
    clear_threshold: float = 0.93,
    boxes: Sequence[Box] = (),
) -> Verdict:
    """A change zone's verdict; ``changed`` means its event is open."""
    fraction = 0.0 if score >= threshold else 0.12
    return Verdict(
        zone=zone,
        kind="change",
        score=score,
        state="changed" if changed else "unchanged",
        settling=settling and not changed,
        active=changed,
        threshold=threshold,
        clear_threshold=clear_threshold,
        below=score < threshold,
        changed_fraction=fraction,
        changed_pixels=round(fraction * 10_000),
        boxes=list(boxes),
    )


def state(
    zone: str,
    scores: Mapping[str, float],
    *,
    current: str | None,
    threshold: float = 0.9,
    on_states: Sequence[str] = (),
) -> Verdict:
    """A state zone's verdict: ``current`` is its decided state (None before the first decision)."""
    assert current is None or current in (*scores, UNKNOWN)
    return Verdict(
        zone=zone,
        kind="state",
        score=max(scores.values()),
        state=current,
        settling=False,
        active=current in on_states,
        threshold=threshold,
        clear_threshold=threshold,
        below=max(scores.values()) < threshold,
        scores=dict(scores),
    )


def status(
    index: int,
    *verdicts: Verdict,
    time: float | None = None,
    image: np.ndarray | None = None,
    processing: float = 0.01,
) -> FrameStatus:
    """The status of frame ``index`` with these verdicts (one unchanged ``main`` zone when none)."""
    return FrameStatus.of(
        verdicts or (change(),),
        frame=index,
        time=1_800_000_000.0 + index if time is None else time,
        processing_seconds=processing,
        image=image,
    )
