"""Lighting: a reference that follows slow drift, and spotting a light switched on or off.

Pure: frames in, decisions and images out. The daemon hands the new reference
to the comparator and saves it.

:class:`ReferenceAdapter` blends the reference slowly toward the frames of an
unchanged scene, so that daylight and seasons, which move the whole picture a
little every minute, never end in a permanent alarm. It blends only frames
the caller vouches for (no event open, score at or above ``clear_threshold``)
and only after ``hold_frames`` of them in a row, so an object that arrived
during an event is never learned, and neither are the frames just after one.
Blending happens once every ``every`` frames (about once a second in the
daemon), because each new reference costs the comparator a recomputation of
the reference statistics. What is blended in is the mean of the qualifying
frames since the last blend (summing a frame is cheap), so the reference does
not collect one frame's sensor noise: ``rate`` is that mean's share.

:class:`LightSwitch` notices nearly the whole frame changing between two
consecutive frames: a light switched, an IR filter flipping, auto-exposure
jumping. It compares 1/4-size copies of consecutive frames pixel by pixel (a
uniform brightness step barely moves local SSIM, so SSIM would miss it).
"""

from __future__ import annotations

import cv2
import numpy as np

from monitor.exc import ComparisonError

__all__ = ["LIGHTSWITCH_LEVEL", "LightSwitch", "ReferenceAdapter"]

LIGHTSWITCH_LEVEL = 16  # grey levels a 1/4-size pixel must move by to count as changed
_RESEED_WEIGHT = 0.5  # each new frame's weight while re-seeding: the last few frames count most


class ReferenceAdapter:
    """Holds the reference as a float32 accumulator and blends unchanged frames into it.

    ``rate``: share of the new frames' mean blended in per blend (0 keeps the
    reference as it is). ``every``: qualifying frames averaged per blend.
    ``hold_frames``: qualifying frames in a row that are only counted, not
    used, after any frame that did not qualify.
    """

    def __init__(self, reference: np.ndarray, *, rate: float, every: int = 1, hold_frames: int = 0) -> None:
        if reference.ndim != 2 or reference.dtype != np.uint8:
            raise ComparisonError(f"reference must be a 2-D uint8 image, got {reference.dtype} {reference.shape}")
        if not 0.0 <= rate <= 1.0:
            raise ComparisonError(f"rate must be between 0 and 1, got {rate:g}")
        if every < 1 or hold_frames < 0:
            raise ComparisonError(f"every must be 1 or more and hold_frames 0 or more, got {every}, {hold_frames}")
        self.rate = float(rate)
        self.every = int(every)
        self.hold_frames = int(hold_frames)
        self._accumulator = reference.astype(np.float32)
        self._reference = reference.copy()
        self._quiet = 0
        self._sum = np.zeros(reference.shape, np.float32)
        self._summed = 0
        self._reseed: np.ndarray | None = None
        self._reseeding = False
        self.dirty = False
        self.blends = 0

    @property
    def reference(self) -> np.ndarray:
        """The current reference, uint8 (a new array after each change; do not modify it)."""
        return self._reference

    @property
    def reseeding(self) -> bool:
        """True between :meth:`begin_reseed` and the final :meth:`reseed` frame."""
        return self._reseeding

    def update(self, frame: np.ndarray, *, unchanged: bool) -> bool:
        """Count one frame; blend it in when it is due. Return True when the reference changed.

        ``unchanged``: the caller judged this frame to show the scene as it
        should be (no event open, not settling, a score at or above
        ``clear_threshold``). Any other frame restarts the count.
        """
        if self._reseeding or not unchanged:
            self._quiet = self._summed = 0
            return False
        self._quiet += 1
        if self._quiet <= self.hold_frames or self.rate == 0:
            return False
        self._check(frame)
        if self._summed == 0:
            self._sum[:] = frame
        else:
            cv2.accumulate(frame, self._sum)
        self._summed += 1
        if self._summed < self.every:
            return False
        self._sum *= np.float32(1 / self._summed)
        cv2.accumulateWeighted(self._sum, self._accumulator, self.rate)
        self._summed = 0
        return self._publish()

    def begin_reseed(self) -> None:
        """Start replacing the reference with the frames that follow (after a light switch)."""
        self._reseeding = True
        self._reseed = None
        self._quiet = self._summed = 0

    def reseed(self, frame: np.ndarray, *, final: bool) -> bool:
        """Take one frame of the new scene; on the ``final`` one make them the reference.

        Frames are averaged with weights that halve with age, so the noise of
        one frame is smoothed but the early frames of an exposure still
        settling hardly count. Returns True when the reference changed.
        """
        if not self._reseeding:
            return False
        self._check(frame)
        if self._reseed is None:
            self._reseed = frame.astype(np.float32)
        else:
            cv2.accumulateWeighted(frame, self._reseed, _RESEED_WEIGHT)
        if not final:
            return False
        self._accumulator = self._reseed
        self._reseed = None
        self._reseeding = False
        return self._publish()

    def saved(self) -> None:
        """The caller stored the current reference: it is no longer dirty."""
        self.dirty = False

    def _check(self, frame: np.ndarray) -> None:
        if frame.shape != self._reference.shape or frame.dtype != np.uint8:
            raise ComparisonError(
                f"frame is {frame.dtype} {frame.shape}, expected uint8 of the reference's shape {self._reference.shape}"
            )

    def _publish(self) -> bool:
        reference = np.clip(np.rint(self._accumulator), 0, 255).astype(np.uint8)
        if np.array_equal(reference, self._reference):
            return False
        self._reference = reference
        self.dirty = True
        self.blends += 1
        return True


class LightSwitch:
    """Spots nearly the whole frame changing at once between two consecutive frames.

    ``fraction``: share of the (1/4-size) frame that must move by more than
    ``level`` grey levels. :meth:`update` is True only on the first frame of
    such a change, not on the frames of the same switch that follow.
    """

    def __init__(self, *, fraction: float, level: int = LIGHTSWITCH_LEVEL, downscale: int = 4) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ComparisonError(f"fraction must be above 0 and at most 1, got {fraction:g}")
        self.fraction = float(fraction)
        self.level = int(level)
        self.downscale = int(downscale)
        self.changed_fraction = 0.0
        self._previous: np.ndarray | None = None
        self._switching = False

    def reset(self) -> None:
        """Forget the previous frame (the source re-opened: there is nothing to compare with)."""
        self._previous = None
        self._switching = False
        self.changed_fraction = 0.0

    def update(self, frame: np.ndarray) -> bool:
        """Compare ``frame`` with the previous one; True when a switch starts on this frame."""
        height, width = frame.shape[:2]
        size = (max(width // self.downscale, 1), max(height // self.downscale, 1))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            self.changed_fraction = 0.0
            self._switching = False
            return False
        moved = cv2.absdiff(small, previous)
        self.changed_fraction = cv2.countNonZero((moved > self.level).astype(np.uint8)) / moved.size
        switching = self.changed_fraction >= self.fraction
        started = switching and not self._switching
        self._switching = switching
        return started
