"""Suggest ``threshold`` and ``clear_threshold`` from the scores of a tuning run.

Pure: takes scores, returns numbers. ``monitor tune`` gathers the scores.

The scores of an unchanged scene form one tight cluster just under 1; a car
driving by while you tune adds a tail of lower scores. The suggestion must not
let that tail drag the threshold down, so the unchanged cluster is measured on
its top quarter only, where changed frames are not:

1. for a normal cluster the 75th and 90th percentiles lie 0.674 and 1.282
   standard deviations above its centre, so spread = (p90 - p75) / 0.607 and
   centre = p75 - 0.674 * spread;
2. scores more than ``k`` spreads under the centre are changed frames: leave
   them out and repeat until nothing more is left out.

Changed frames only lower the percentiles a little as long as they are a
minority: with 30 % of them the first pass puts the centre 0.4 spreads low and
the spread 15 % wide (with 50 %: 0.9 low, 40 % wide), which still leaves them
below the cut; the next pass, without them, measures the unchanged cluster
alone. Then
``threshold = centre - max(k * spread, margin)`` and ``clear_threshold`` lies
halfway from it back to the centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.exc import MonitorError

__all__ = ["MIN_SCORES", "StateMargin", "Suggestion", "area_spread", "state_margin", "suggest_thresholds"]

MIN_SCORES = 10
ROBUST_FRACTION = 0.3  # share of changed frames the suggestion is built to withstand
_Z75, _Z90 = 0.6745, 1.2816  # standard normal 75th and 90th percentiles


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Suggested thresholds with the score distribution they came from.

    ``unchanged_median`` and ``spread`` describe the cluster of unchanged
    frames; ``changed`` counts the frames under the suggested ``threshold``.
    """

    threshold: float
    clear_threshold: float
    count: int
    minimum: float
    p1: float
    p5: float
    median: float
    unchanged_median: float
    spread: float
    changed: int
    k: float
    margin: float

    @property
    def changed_share(self) -> float:
        """Share of the scored frames under the suggested threshold."""
        return self.changed / self.count

    def explanation(self) -> str:
        """One line saying how the thresholds were chosen."""
        line = (
            f"threshold = unchanged median {self.unchanged_median:.4f} - max({self.k:g} x robust spread "
            f"{self.spread:.4f}, margin {self.margin:g}); clear_threshold halfway back to that median; "
            f"{self.changed} of {self.count} frames ({self.changed_share:.0%}) scored under the threshold"
        )
        if self.changed_share > ROBUST_FRACTION:
            line += (
                f" (more than {ROBUST_FRACTION:.0%}: tune on a quieter stretch, or capture a new reference "
                "if the scene itself changed)"
            )
        return line


def suggest_thresholds(
    scores: Sequence[float] | np.ndarray, *, k: float = 6.0, margin: float = 0.02, max_passes: int = 10
) -> Suggestion:
    """Suggest thresholds that separate the unchanged frames from up to ~30 % changed ones.

    ``k``: spreads of the unchanged cluster between its centre and the
    threshold. ``margin``: the least distance between them, for scenes whose
    tuning run was quieter than their future. NaN scores are ignored.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < MIN_SCORES:
        raise MonitorError(f"need at least {MIN_SCORES} scored frames to suggest thresholds, got {values.size}")
    if not (k > 0 and margin >= 0):
        raise MonitorError(f"k must be above 0 and margin 0 or more, got k={k:g}, margin={margin:g}")
    kept = values
    centre, spread = _upper_cluster(kept)
    for _ in range(max_passes):
        still = values[values >= centre - k * spread]
        if still.size == kept.size:
            break
        kept = still
        centre, spread = _upper_cluster(kept)
    threshold = min(max(centre - max(k * spread, margin), 0.0), 1.0)
    threshold = math.floor(threshold * 1000) / 1000
    clear_threshold = min(max(round((threshold + centre) / 2, 3), threshold), 1.0)
    p1, p5, median = np.percentile(values, [1, 5, 50])
    return Suggestion(
        threshold=threshold,
        clear_threshold=clear_threshold,
        count=int(values.size),
        minimum=float(values.min()),
        p1=float(p1),
        p5=float(p5),
        median=float(median),
        unchanged_median=centre,
        spread=spread,
        changed=int(np.count_nonzero(values < threshold)),
        k=k,
        margin=margin,
    )


def _upper_cluster(values: np.ndarray) -> tuple[float, float]:
    """Centre and spread of a normal cluster, from its 75th and 90th percentiles only."""
    p75, p90 = np.percentile(values, [75, 90])
    spread = float(p90 - p75) / (_Z90 - _Z75)
    return float(p75) - _Z75 * spread, spread


@dataclass(frozen=True, slots=True)
class StateMargin:
    """How far apart a state zone's states score over a tuning run.

    ``matched``: frames whose best state scored at or above ``threshold``, by
    state; ``unknown``: frames where none did. ``best`` and ``runner_up``:
    median scores of the best and the second-best state; ``margin``: the 5th
    percentile of (best - second best), the gap a user can count on.
    """

    count: int
    threshold: float
    matched: dict[str, int]
    unknown: int
    best: float
    runner_up: float | None
    margin: float | None

    def explanation(self) -> str:
        """A few lines a user can act on."""
        matched = ", ".join(f"{name} {frames}" for name, frames in self.matched.items() if frames) or "none"
        lines = [f"{self.count} frames: matched {matched}, unknown {self.unknown} (threshold {self.threshold:g})"]
        if self.runner_up is None or self.margin is None:
            lines.append(f"best state's median score {self.best:.4f}; one state only, so no margin to another")
        else:
            lines.append(
                f"best state's median score {self.best:.4f}, the next best's {self.runner_up:.4f}: "
                f"margin {self.margin:.4f} (5th percentile of best - next best)"
            )
            if self.margin < 0.05:
                lines.append(
                    "the states look alike here: watch a smaller area where they differ, or take their pictures again"
                )
        return "\n".join(lines)


def state_margin(scores: Sequence[Mapping[str, float] | None], *, threshold: float) -> StateMargin:
    """Summarise a state zone's per-frame state scores (see :class:`StateMargin`)."""
    frames = [frame for frame in scores if frame]
    if not frames:
        raise MonitorError("no frame was scored: nothing to say about the states")
    names = list(frames[0])
    matched = dict.fromkeys(names, 0)
    unknown = 0
    best, second = [], []
    for frame in frames:
        ranked = sorted(frame.values(), reverse=True)
        top = max(frame, key=lambda name: frame[name])
        if frame[top] >= threshold:
            matched[top] += 1
        else:
            unknown += 1
        best.append(ranked[0])
        if len(ranked) > 1:
            second.append(ranked[1])
    gaps = np.subtract(best, second) if second else None
    return StateMargin(
        count=len(frames),
        threshold=threshold,
        matched=matched,
        unknown=unknown,
        best=float(np.median(best)),
        runner_up=float(np.median(second)) if second else None,
        margin=float(np.percentile(gaps, 5)) if gaps is not None else None,
    )


def area_spread(pixels: Sequence[int]) -> str:
    """The spread of changed-pixel counts in a few words: median, 99th percentile, max."""
    if not pixels:
        return "no frames"
    p50, p99 = np.percentile(np.asarray(pixels, dtype=np.float64), [50, 99])
    return f"median {p50:.0f}, 99% {p99:.0f}, max {max(pixels)} over {len(pixels)} frames"
