"""Change gating: when a group of change zones may keep its last verdicts instead of a new comparison.

Most frames of a watched scene are like the one before. Before the full
comparison, :class:`ChangeGate` compares the frame with the last fully scored
one: their absolute difference, averaged over blocks of 8x8 pixels by three
halvings (a reused frame costs 0.21 M instructions at 320x240, a twelfth of a
half-frame comparison: benchmarks/README.md). The zone's *noise level*
is the median block of that difference, learnt (as the median of the last
observations) from fully scored frames while the zone was quiet: no event,
not settling, no transition, its score above both thresholds. Taking the
median block of each observation keeps a car somewhere in the zone out of it.

The last verdicts stand for this frame only when, in every zone of the group:

- no event is open, the zone is not settling and its last frame made no
  transition (:class:`Standing` ``steady``), and its noise level is known;
- the frame's median block is within the noise level (nothing changed all
  over the zone, as light or gain would);
- the blocks that differ by more than noise, with the blocks around them
  (a pixel's similarity depends on an 11x11 window), hold a share of the
  zone that could not move its score across a threshold even if every one
  of those pixels went from fully similar to fully dissimilar (2 x share),
  with a margin on top for the score's own noise between quiet frames;
- fewer than ``max_skip`` frames in a row have been reused.

:meth:`ChangeGate.reset` (the source reopened, a new reference) makes the next
frame a full one; the noise levels are kept, since they describe the camera
and the scene, not the reference. The gate takes arrays and numbers and
holds no clock, camera or detector.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ChangeGate", "Standing"]

HALVINGS = 3
BLOCK = 2**HALVINGS  # pixels on a side of the blocks compared
REACH = 5  # pixels beyond a zone that its comparison sees (the Gaussian window's radius)
HISTORY = 32  # quiet observations kept per zone
MIN_OBSERVATIONS = 8  # before any frame is reused
# A frame is like the last one over the whole zone while its median block is within
# 1.25 x the noise level + 0.5 levels, and a block differs where it is over 1.5 x + 2 levels
# (the halvings round to whole levels three times).
WHOLE_FACTOR, WHOLE_SLACK = 1.25, 0.5
BLOCK_FACTOR, BLOCK_SLACK = 1.5, 2.0
MARGIN_FACTOR, MIN_MARGIN = 8.0, 0.002  # the score's own noise: 8 x its median step between quiet frames
_AROUND = np.ones((3, 3), np.uint8)  # a block and its neighbours: REACH < BLOCK


@dataclass(frozen=True, slots=True)
class Standing:
    """What the gate needs to know of a zone after its last frame.

    ``score``: the last score. ``floor``: the higher of the zone's threshold
    and clear threshold. ``steady``: no event open, not settling, and no
    transition on that frame.
    """

    score: float
    floor: float
    steady: bool

    @property
    def quiet(self) -> bool:
        return self.steady and self.score >= self.floor


class _Zone:
    """One zone's blocks and what it has shown while quiet."""

    def __init__(self, seen: np.ndarray, watched: np.ndarray) -> None:
        self.blocks = _halved(seen.astype(np.float32)) > 0  # blocks its comparison sees
        pixels = _halved(watched.astype(np.float32))  # its share of each block
        self.share = pixels / pixels.sum()  # of the zone, per block
        self._levels: deque[float] = deque(maxlen=HISTORY)  # median blocks of quiet observations
        self._steps: deque[float] = deque(maxlen=HISTORY)  # score steps between quiet full frames
        self.whole = self.block = self.margin = float("inf")  # from the medians of those, once known

    def learn(self, median: float, step: float) -> None:
        self._levels.append(median)
        self._steps.append(step)
        if len(self._levels) >= MIN_OBSERVATIONS:
            level = statistics.median(self._levels)
            self.whole = WHOLE_FACTOR * level + WHOLE_SLACK
            self.block = BLOCK_FACTOR * level + BLOCK_SLACK
            self.margin = max(MIN_MARGIN, MARGIN_FACTOR * statistics.median(self._steps))

    def median(self, small: np.ndarray) -> float:
        """The median of the blocks the zone's comparison sees, in a difference of two frames."""
        seen = small[self.blocks]
        half = seen.size // 2
        return float(np.partition(seen, half)[half])  # a third of np.median's time on a few hundred blocks

    def drop(self, small: np.ndarray) -> float:
        """The most the blocks differing by more than noise could lower the zone's score."""
        changed = np.logical_and(small > self.block, self.blocks)
        if not changed.any():
            return 0.0
        affected = cv2.dilate(changed.view(np.uint8), _AROUND) > 0
        return 2.0 * float(self.share[affected].sum())


class ChangeGate:
    """Decides, frame by frame, whether a group of change zones may reuse its last verdicts.

    ``masks``: each zone's watched pixels (None: the whole frame), frame-sized.
    ``max_skip``: how many frames in a row may be reused (0: never).
    Per frame, :meth:`may_reuse` says whether the last verdicts stand; if so
    :meth:`reused` is called, else the zones are compared and :meth:`scored`
    is called with where they stand after that.
    """

    def __init__(self, masks: Sequence[np.ndarray | None], shape: tuple[int, int], *, max_skip: int) -> None:
        height, width = shape
        watched = [np.ones(shape, bool) if mask is None else mask.astype(bool) for mask in masks]
        seen = [_grown(mask) for mask in watched]
        union = np.logical_or.reduce(seen)
        rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
        top, bottom = _whole_blocks(int(rows[0]), int(rows[-1]) + 1, height)
        left, right = _whole_blocks(int(cols[0]), int(cols[-1]) + 1, width)
        self._box = (slice(top, bottom), slice(left, right))
        self._zones = [_Zone(s[self._box], w[self._box]) for s, w in zip(seen, watched, strict=True)]
        self.max_skip = max_skip
        self._last: np.ndarray | None = None  # the box of the last fully scored frame
        self._standing: list[Standing] = []  # the zones after it
        self._small: np.ndarray | None = None  # this frame's difference from it, in blocks, once taken
        self._run = 0  # frames reused in a row
        self.frames = 0
        self.reused_frames = 0

    def _difference(self, image: np.ndarray) -> np.ndarray:
        if self._small is None:
            assert self._last is not None
            self._small = _halved(cv2.absdiff(image[self._box], self._last))
        return self._small

    def may_reuse(self, image: np.ndarray, standing: Sequence[Standing], *, held: bool = False) -> bool:
        """True when every zone's last verdict may stand for ``image``; never when ``held``.

        The cheap conditions come first: the frame is looked at only when
        they hold.
        """
        self.frames += 1
        self._small = None
        if held or self._last is None or self._run >= self.max_skip:
            return False
        pairs = list(zip(self._zones, standing, self._standing, strict=True))
        if not all(now.steady and before.score >= before.floor + zone.margin for zone, now, before in pairs):
            return False
        small = self._difference(image)
        return all(
            zone.median(small) <= zone.whole and before.score - zone.drop(small) >= before.floor + zone.margin
            for zone, _, before in pairs
        )

    def reused(self) -> None:
        """The frame just asked about kept the last verdicts."""
        self._run += 1
        self.reused_frames += 1

    def scored(self, image: np.ndarray, standing: Sequence[Standing]) -> None:
        """The frame just asked about was compared in full: learn from it and make it the one to compare with."""
        if self._last is not None:
            for zone, now, before in zip(self._zones, standing, self._standing, strict=True):
                if now.quiet and before.quiet:
                    zone.learn(zone.median(self._difference(image)), abs(now.score - before.score))
        box = image[self._box]
        if self._last is None:
            self._last = np.empty_like(box)
        cv2.copyTo(box, None, self._last)  # type: ignore[call-overload]  # a fifth of NumPy's copy
        self._standing = list(standing)
        self._small = None
        self._run = 0

    def reset(self) -> None:
        """The frames to come are not to be compared with the last one (source reopened, new reference)."""
        self._last = None
        self._small = None
        self._run = 0


def _grown(mask: np.ndarray) -> np.ndarray:
    """The pixels a zone's comparison sees: the zone and the window's reach around it."""
    size = 2 * REACH + 1
    return cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8)) > 0


def _whole_blocks(first: int, end: int, length: int) -> tuple[int, int]:
    """``first:end`` grown to whole blocks inside ``0:length`` (at the edge of a frame whose size
    is not a multiple of BLOCK, the last block is a partial one)."""
    return first // BLOCK * BLOCK, min(-(-end // BLOCK) * BLOCK, length)


def _halved(image: np.ndarray) -> np.ndarray:
    """Means over blocks of BLOCK x BLOCK pixels (partial ones at the edges) by successive halvings.

    OpenCV's area resampling by exactly 2 runs in vector code: three halvings
    cost a third of one resampling by 8.
    """
    for _ in range(HALVINGS):
        height, width = image.shape
        image = cv2.resize(image, (-(-width // 2), -(-height // 2)), interpolation=cv2.INTER_AREA)
    return image
