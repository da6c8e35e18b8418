"""Telling a covered, moved, blurred or frozen camera from a change in the scene.

:class:`TamperCheck` looks at every whole frame, before the zones are judged,
and compares a few numbers with the reference's:

- *covered*: the frame's structure (the standard deviation of a small copy)
  is under ``covered_level`` of the reference's: a hand or a cap on the lens;
- *defocused*: its sharpness (the variance of the Laplacian of that copy,
  over its own variance, so that a darker scene is not a blurred one) is
  under ``defocus_ratio`` of the reference's: fog, a smeared or turned lens;
- *moved*: the whole picture moved more than ``moved_pixels`` against the
  reference (phase correlation of a smaller copy): the camera was knocked;
- *frozen*: a live source delivered bit-identical frames for
  ``frozen_seconds`` (a stream repeating its last frame). Recordings are not
  checked: a replay may hold a still scene.

A frame that reads as any of these is *suspect*; a tamper starts on the
``trigger_frames``-th suspect frame in a row and ends on the ``clear_frames``-th
clean one. A shift within ``moved_pixels`` is no tamper: with ``align`` the
frame is shifted back by whole pixels (refined on the frame itself, since SSIM
drops by about 0.07 for a one-pixel miss) so that a camera sagging in the heat
gives no false events.

Pure logic: arrays, frame numbers and times in, values out; no camera, pin or
clock of its own.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from monitor.config import TamperConfig

__all__ = ["REASONS", "Reading", "Reason", "TamperCheck", "TamperEnd", "TamperLook", "TamperStart", "align"]

_log = logging.getLogger(__name__)

Reason = Literal["frozen", "covered", "defocused", "moved"]
# The order a frame is read in: a frozen frame says nothing more, a covered one has no
# sharpness and no position to speak of, and a blurred one no reliable position.
REASONS: tuple[Reason, ...] = ("frozen", "covered", "defocused", "moved")

WORK_WIDTH = 200  # the structure, sharpness and frozen checks run on a copy at most this wide
SHIFT_WIDTH = 100  # the phase correlation on one at most this wide (the middle 64x48 of 80x60 at 320x240, 640x480)
MIN_PEAK = 0.05  # a phase-correlation peak under this finds no shift (the scene is unlike the reference)
MIN_STRUCTURE = 2.0  # a reference flatter than this (grey levels of std) has nothing to compare with
MATCH_LEVEL = 0.3  # a shift past moved_pixels counts when the moved gradients correlate this well
REFINE_POINTS = 400  # the whole-pixel refinement compares about this many points of the frame
REFINE_CLIMB = 4  # ...and follows the best neighbour at most this many times


@dataclass(frozen=True, slots=True)
class Reading:
    """One frame's whole-frame measures against the reference's.

    ``structure`` and ``sharpness`` are ratios to the reference's (1.0: as
    sharp, as contrasty); ``shift`` is how far the picture moved, in frame
    pixels (x right, y down); ``peak`` the phase correlation's confidence
    in it (0-1); ``still_seconds`` how long a live source has delivered this
    very frame (0 for recordings).
    """

    structure: float
    sharpness: float
    shift: tuple[float, float]
    peak: float
    still_seconds: float

    @property
    def shift_pixels(self) -> float:
        """The length of the shift, in pixels."""
        return math.hypot(*self.shift)

    def measure(self, reason: Reason) -> float:
        """The number that tells ``reason``."""
        return {
            "frozen": self.still_seconds,
            "covered": self.structure,
            "defocused": self.sharpness,
            "moved": self.shift_pixels,
        }[reason]


@dataclass(frozen=True, slots=True)
class TamperStart:
    """A tamper was declared on ``frame`` (the trigger frame) at ``time``; ``measure`` tripped it."""

    reason: Reason
    frame: int
    time: float
    measure: float


@dataclass(frozen=True, slots=True)
class TamperEnd:
    """The tamper that started on ``start_frame`` is over; ``measure`` is the clearing frame's.

    ``measure`` is None when the check itself was switched off (a reload).
    """

    reason: Reason
    frame: int
    time: float
    measure: float | None
    start_frame: int
    start_time: float


@dataclass(frozen=True, slots=True)
class TamperLook:
    """What the check made of one frame.

    ``image``: the frame to judge the zones on (shifted back by ``aligned``
    when the camera sagged within ``moved_pixels``, else the frame itself).
    ``suspect``: what this frame alone reads as (None: nothing). ``reason``:
    the tamper on after this frame (None: none). ``started``/``ended``: the
    transition this frame made.
    """

    image: np.ndarray
    reading: Reading | None = None
    suspect: Reason | None = None
    reason: Reason | None = None
    started: TamperStart | None = None
    ended: TamperEnd | None = None
    aligned: tuple[int, int] = (0, 0)

    @property
    def blind(self) -> bool:
        """The zones learn nothing from this frame: a tamper is on, or the frame looks like one."""
        return self.reason is not None or self.suspect is not None


def align(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` shifted back by a picture that moved ``(dx, dy)`` pixels; the uncovered edge repeats.

    A crop and a border in one OpenCV call: no interpolation, so nothing is
    blurred, and several times cheaper than ``warpAffine``.
    """
    if dx == 0 and dy == 0:
        return image
    height, width = image.shape
    crop = image[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)]
    return cv2.copyMakeBorder(crop, max(-dy, 0), max(dy, 0), max(-dx, 0), max(dx, 0), cv2.BORDER_REPLICATE)


def _halve_to(image: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """Halve ``image`` (area average) until it is at most ``width`` wide; returns it and the factor."""
    factor = 1
    while image.shape[1] > width and min(image.shape) >= 4:
        # Exact halvings take OpenCV's fast path: two of them cost less than one resize by 4.
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        factor *= 2
    return image, factor


def _quick_size(size: int) -> int:
    """The largest size not above ``size`` of the form 2^k or 3 * 2^k, which OpenCV's DFT does quickest."""
    best = 1
    for base in (1, 3):
        power = base
        while power * 2 <= size:
            power *= 2
        best = max(best, power if power <= size else 1)
    return best


def _sharpness(work: np.ndarray, std: float) -> float:
    """The variance of the Laplacian over the variance of the picture: blur lowers it, dimming does not."""
    if std <= 0:
        return 0.0
    _, laplacian = cv2.meanStdDev(cv2.Laplacian(work, cv2.CV_16S))
    return (float(laplacian[0, 0]) / std) ** 2


def _peak_offset(before: float, peak: float, after: float) -> float:
    """Sub-pixel position of a phase-correlation peak from its neighbours (Foroosh et al. 2002).

    The peak is a sampled sinc, not a parabola: the larger neighbour's share
    of the two gives the offset.
    """
    if after >= before:
        return after / (after + peak) if after > 0 else 0.0
    return -before / (before + peak) if before > 0 else 0.0


class _Reference:
    """What the checks need of the reference, computed once per reference picture.

    ``margin``: the largest shift that is aligned (the refinement's points
    keep that far from the edges, so that every candidate stays inside the
    frame).
    """

    def __init__(self, picture: np.ndarray, *, margin: int) -> None:
        work, self.work_factor = _halve_to(picture, WORK_WIDTH)
        self.work_shape = work.shape
        self.std = float(cv2.meanStdDev(work)[1][0, 0])
        self.sharpness = _sharpness(work, self.std)
        self.usable = self.std >= MIN_STRUCTURE
        small, factor = _halve_to(work, SHIFT_WIDTH)
        self._halvings = factor.bit_length() - 1
        self.shift_factor = self.work_factor * factor
        # The middle of the small copy at a size the DFT is quickest at (64x48 of 80x60): the
        # window leaves little of the edges anyway.
        height, width = _quick_size(small.shape[0]), _quick_size(small.shape[1])
        top, left = (small.shape[0] - height) // 2, (small.shape[1] - width) // 2
        self._crop = (slice(top, top + height), slice(left, left + width))
        self.window = cv2.createHanningWindow((width, height), cv2.CV_32F)
        self.spectrum = cv2.dft(small[self._crop].astype(np.float32) * self.window, flags=cv2.DFT_COMPLEX_OUTPUT)
        self._buffer = np.empty((height, width), np.float32)
        self.margin = margin
        self.points = _sample_points(picture, margin=margin)
        self.values = _zero_mean(picture.reshape(-1)[self.points].astype(np.float32))
        # A shift past moved_pixels is confirmed on the gradients at points kept a quarter of
        # the frame from its edges (plus one pixel for the differences).
        self.wide = max(1, min(picture.shape) // 4 - 1)
        self.wide_points = _sample_points(picture, margin=self.wide + 1)
        self.wide_gradients = _gradients(picture, self.wide_points)

    def shift_of(self, work: np.ndarray) -> tuple[float, float, float]:
        """(dx, dy, peak): how far ``work`` moved against the reference, in frame pixels; peak 0-1."""
        small = work
        for _ in range(self._halvings):
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        cv2.multiply(small[self._crop], self.window, dst=self._buffer, dtype=cv2.CV_32F)
        spectrum = cv2.dft(self._buffer, flags=cv2.DFT_COMPLEX_OUTPUT)
        cross = cv2.mulSpectrums(spectrum, self.spectrum, 0, conjB=True)
        # Only the phase: each element times the inverse of its magnitude, as complex numbers
        # (a complex divided by a real, or a float32 pair by a broadcast magnitude, is 3-4x slower).
        phase = cross.view(np.complex64)[..., 0]
        inverse = np.abs(phase)
        inverse += 1e-6  # an all-flat frame has no phase to speak of
        np.reciprocal(inverse, out=inverse)
        np.multiply(phase, inverse, out=phase)
        surface = cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
        height, width = surface.shape
        _, peak, _, (px, py) = cv2.minMaxLoc(surface)
        x = px + _peak_offset(float(surface[py, px - 1]), peak, float(surface[py, (px + 1) % width]))
        y = py + _peak_offset(float(surface[py - 1, px]), peak, float(surface[(py + 1) % height, px]))
        if x > width / 2:
            x -= width
        if y > height / 2:
            y -= height
        return x * self.shift_factor, y * self.shift_factor, float(peak)

    def whole_pixels(
        self, image: np.ndarray, dx: float, dy: float, *, previous: tuple[int, int] = (0, 0)
    ) -> tuple[int, int]:
        """The whole-pixel shift near the estimate that matches the reference best; (0, 0) if none beats it.

        The estimate from the small copy can be a pixel or two off, and SSIM
        loses about 0.07 for one pixel: from the better of the estimate and the
        ``previous`` frame's shift (a sag stays), each best neighbour is
        followed on the sample points of the frame itself, and the winner must
        match better than no shift at all.
        """
        flat, width = image.reshape(-1), image.shape[1]

        def mismatch(candidates: np.ndarray) -> np.ndarray:
            offsets = candidates[:, 1] * width + candidates[:, 0]
            seen = flat[self.points[None, :] + offsets[:, None]].astype(np.float32)
            seen -= seen.mean(axis=1, keepdims=True)  # a change of exposure is not a shift
            seen -= self.values
            return np.einsum("ij,ij->i", seen, seen)

        starts = np.array([(round(dx), round(dy)), previous, (0, 0)], np.intp)
        if np.abs(starts).max() + 1 > self.margin:
            starts[np.abs(starts).max(axis=1) + 1 > self.margin] = 0
        costs = mismatch(starts)
        start = starts[int(np.argmin(costs[:2]))]
        best = _climb(mismatch, (int(start[0]), int(start[1])), limit=self.margin, better=np.argmin)
        if best is None or best[1] >= costs[2]:
            return (0, 0)
        return best[0]

    def confirms(self, image: np.ndarray, dx: float, dy: float) -> bool:
        """Whether ``image`` is the reference moved by about (dx, dy), not another scene.

        Phase correlation finds some peak between any two pictures: the
        gradients at the wide points must match well there (normalised
        correlation at least MATCH_LEVEL), and better than with no shift.
        """
        flat, width = image.reshape(-1), image.shape[1]
        reference = self.wide_gradients

        def match(candidates: np.ndarray) -> np.ndarray:
            offsets = candidates[:, 1] * width + candidates[:, 0]
            seen = _gradients_flat(flat, self.wide_points[None, :] + offsets[:, None], width)
            norms = np.sqrt(np.einsum("ij,ij->i", seen, seen) * float(reference @ reference)) + 1e-9
            return np.asarray(seen @ reference / norms)

        best = _climb(match, (round(dx), round(dy)), limit=self.wide, better=np.argmax)
        if best is None:
            return False
        _, level = best
        return level >= MATCH_LEVEL and level > match(np.zeros((1, 2), np.intp))[0]


# The estimate first, so that a tie keeps it.
_NEIGHBOURS = np.array([(0, 0)] + [(mx, my) for my in (-1, 0, 1) for mx in (-1, 0, 1) if mx or my], np.intp)


def _climb(
    score: Callable[[np.ndarray], np.ndarray],
    start: tuple[int, int],
    *,
    limit: int,
    better: Callable[[np.ndarray], Any],
) -> tuple[tuple[int, int], float] | None:
    """Follow the best of each 3x3 neighbourhood from ``start``; (shift, its score), None past ``limit``."""
    x, y = start
    for _ in range(REFINE_CLIMB):
        if max(abs(x), abs(y)) + 1 > limit:
            return None
        scores = score(_NEIGHBOURS + np.array((x, y), np.intp))
        index = int(better(scores))
        if index == 0:
            break
        x, y = x + int(_NEIGHBOURS[index, 0]), y + int(_NEIGHBOURS[index, 1])
    else:
        scores = score(np.array([(x, y)], np.intp))
        index = 0
    return (x, y), float(scores[index])


def _sample_points(picture: np.ndarray, *, margin: int) -> np.ndarray:
    """Flat indices of about REFINE_POINTS textured pixels of ``picture``, ``margin`` or more from its edges.

    The strongest-gradient pixel of each cell of a grid: spread out, so that
    no single edge (which could slide along itself) decides.
    """
    height, width = picture.shape
    inner = picture[margin : height - margin, margin : width - margin]
    if inner.size == 0:
        return np.zeros(0, np.intp)
    cell = max(2, round(math.sqrt(inner.size / REFINE_POINTS)))
    rows, cols = inner.shape[0] // cell, inner.shape[1] // cell
    if rows == 0 or cols == 0:
        return np.zeros(0, np.intp)
    gx = cv2.Sobel(inner, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(inner, cv2.CV_32F, 0, 1)
    energy = (gx * gx + gy * gy)[: rows * cell, : cols * cell]
    cells = energy.reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3).reshape(rows * cols, cell * cell)
    best = np.argmax(cells, axis=1)
    y = (np.arange(rows * cols) // cols) * cell + best // cell + margin
    x = (np.arange(rows * cols) % cols) * cell + best % cell + margin
    return (y * width + x).astype(np.intp)


def _zero_mean(values: np.ndarray) -> np.ndarray:
    return values - float(values.mean()) if values.size else values


def _gradients(picture: np.ndarray, points: np.ndarray) -> np.ndarray:
    return _gradients_flat(picture.reshape(-1), points, picture.shape[1])


def _gradients_flat(flat: np.ndarray, points: np.ndarray, width: int) -> np.ndarray:
    """Central differences across and down at ``points`` (any shape), side by side on the last axis."""
    across = flat[points + 1].astype(np.float32) - flat[points - 1]
    down = flat[points + width].astype(np.float32) - flat[points - width]
    return np.concatenate([across, down], axis=-1)


@dataclass
class _Runs:
    """The trigger/clear counting and the frozen bookkeeping: what a reload carries over."""

    reason: Reason | None = None
    start_frame: int = 0
    start_time: float = 0.0
    suspects: list[Reason] = field(default_factory=list)
    clear: int = 0
    previous: np.ndarray | None = None  # the last frame of a live source, and its small copy
    previous_work: np.ndarray | None = None
    still_since: float | None = None
    aligned: tuple[int, int] = (0, 0)  # the last frame's whole-pixel shift


class TamperCheck:
    """The whole-frame checks of one ``tamper:`` section against one reference picture."""

    def __init__(self, config: TamperConfig, reference: np.ndarray) -> None:
        self.config = config
        self._margin = _margin(config, reference.shape)
        self._reference = _Reference(reference, margin=self._margin)
        if not self._reference.usable:
            _log.warning(
                "tamper: the reference is almost flat (std %.1f grey levels): only the frozen check runs",
                self._reference.std,
            )
        self._runs = _Runs()

    @property
    def reason(self) -> Reason | None:
        """The tamper that is on, or None."""
        return self._runs.reason

    def set_reference(self, reference: np.ndarray) -> None:
        """A new reference picture (adapted, or re-seeded after a light switch)."""
        self._reference = _Reference(reference, margin=self._margin)

    def carry_over(self, running: TamperCheck) -> None:
        """Take the running check's counts and open tamper (a reload), under this config."""
        self._runs = running._runs
        del self._runs.suspects[self.config.trigger_frames :]

    def finish(self, *, frame: int, now: float) -> TamperEnd | None:
        """Close the open tamper because the check goes away (a reload switched it off); None if none is on."""
        runs = self._runs
        if runs.reason is None:
            return None
        end = TamperEnd(
            reason=runs.reason,
            frame=frame,
            time=now,
            measure=None,
            start_frame=runs.start_frame,
            start_time=runs.start_time,
        )
        runs.reason, runs.clear = None, 0
        return end

    def look(self, image: np.ndarray, *, frame: int, now: float, live: bool) -> TamperLook:
        """Check one frame; ``live``: the source is a camera or stream (only those can freeze)."""
        reading = self.read(image, now=now, live=live)
        suspect = self.suspect(reading)
        started, ended = self._count(suspect, reading, frame=frame, now=now)
        judged, aligned = image, (0, 0)
        if suspect is None and self.config.align and self._reference.usable:
            judged, aligned = self._aligned(image, reading)
        return TamperLook(
            image=judged,
            reading=reading,
            suspect=suspect,
            reason=self._runs.reason,
            started=started,
            ended=ended,
            aligned=aligned,
        )

    def read(self, image: np.ndarray, *, now: float, live: bool) -> Reading:
        """The measures of one frame (``now`` and ``live`` for the frozen check)."""
        reference = self._reference
        work, _ = _halve_to(image, WORK_WIDTH)
        still = self._still_seconds(image, work, now=now) if live else 0.0
        if not reference.usable or work.shape != reference.work_shape:
            return Reading(structure=1.0, sharpness=1.0, shift=(0.0, 0.0), peak=0.0, still_seconds=still)
        std = float(cv2.meanStdDev(work)[1][0, 0])
        structure = std / reference.std
        sharpness = _sharpness(work, std) / reference.sharpness if reference.sharpness > 0 else 1.0
        dx, dy, peak = reference.shift_of(work)
        if peak < MIN_PEAK or (math.hypot(dx, dy) > self._moved_limit and not reference.confirms(image, dx, dy)):
            dx = dy = 0.0  # another scene, not this one moved: for the zones to judge
        return Reading(structure=structure, sharpness=sharpness, shift=(dx, dy), peak=peak, still_seconds=still)

    def suspect(self, reading: Reading) -> Reason | None:
        """What one frame reads as, in the order of :data:`REASONS`; None when it reads as fine."""
        config = self.config
        if config.frozen_seconds is not None and reading.still_seconds >= config.frozen_seconds:
            return "frozen"
        if config.covered_level is not None and reading.structure < config.covered_level:
            return "covered"
        if config.defocus_ratio is not None and reading.sharpness < config.defocus_ratio:
            return "defocused"
        if config.moved_pixels is not None and reading.shift_pixels > config.moved_pixels:
            return "moved"
        return None

    def _still_seconds(self, image: np.ndarray, work: np.ndarray, *, now: float) -> float:
        runs = self._runs
        # The small copies differ for nearly every pair of live frames (sensor noise): only
        # equal ones are worth comparing in full. The frame itself is kept, not copied: a
        # source hands out a new array for every frame.
        same = (
            runs.previous is not None
            and runs.previous_work is not None
            and runs.previous_work.shape == work.shape
            and np.array_equal(runs.previous_work, work)
            and np.array_equal(runs.previous, image)
        )
        if not same or runs.still_since is None:
            runs.still_since = now
        runs.previous, runs.previous_work = image, work
        return max(0.0, now - runs.still_since)

    def _aligned(self, image: np.ndarray, reading: Reading) -> tuple[np.ndarray, tuple[int, int]]:
        runs = self._runs
        dx, dy = reading.shift
        if max(abs(dx), abs(dy)) < 0.5 or reading.shift_pixels > self._moved_limit:
            runs.aligned = (0, 0)
            return image, (0, 0)  # most frames: the camera has not moved
        found = self._reference.whole_pixels(image, dx, dy, previous=runs.aligned)
        if math.hypot(*found) > self._moved_limit:
            found = (0, 0)
        runs.aligned = found
        return (image, found) if found == (0, 0) else (align(image, *found), found)

    @property
    def _moved_limit(self) -> float:
        moved = self.config.moved_pixels
        return float(self._margin) if moved is None else moved

    def _count(
        self, suspect: Reason | None, reading: Reading, *, frame: int, now: float
    ) -> tuple[TamperStart | None, TamperEnd | None]:
        runs, config = self._runs, self.config
        if runs.reason is None:
            if suspect is None:
                runs.suspects.clear()
                return None, None
            runs.suspects.append(suspect)
            if len(runs.suspects) < config.trigger_frames:
                return None, None
            reason = _most_common(runs.suspects)
            runs.suspects.clear()
            runs.reason, runs.start_frame, runs.start_time, runs.clear = reason, frame, now, 0
            return TamperStart(reason=reason, frame=frame, time=now, measure=reading.measure(reason)), None
        if suspect is not None:
            runs.clear = 0
            return None, None
        runs.clear += 1
        if runs.clear < config.clear_frames:
            return None, None
        end = TamperEnd(
            reason=runs.reason,
            frame=frame,
            time=now,
            measure=reading.measure(runs.reason),
            start_frame=runs.start_frame,
            start_time=runs.start_time,
        )
        runs.reason, runs.clear = None, 0
        return None, end


def _most_common(suspects: list[Reason]) -> Reason:
    """The reason most of the run read as; a tie goes to the one earlier in :data:`REASONS`."""
    counts = Counter(suspects)
    return max(REASONS, key=lambda reason: (counts[reason], -REASONS.index(reason)))


def _margin(config: TamperConfig, shape: tuple[int, ...]) -> int:
    """The largest shift that is aligned: moved_pixels (rounded up), kept inside a quarter of the frame."""
    moved = config.moved_pixels if config.moved_pixels is not None else 8.0
    return max(1, min(math.ceil(moved) + 1, min(shape[:2]) // 4))
