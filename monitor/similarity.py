"""Masked structural similarity (SSIM) between a fixed reference and each frame.

The score of ``method="ssim"`` is the mean, over the watched pixels, of the
local SSIM map of Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
population covariances, K1=0.01, K2=0.03 and a data range of 255: exactly the
map that ``skimage.metrics.structural_similarity(ref, frame,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
full=True)`` returns as its second value. scikit-image's own scalar leaves out
a 5-pixel border of the map; ours does not, so a change at the frame's edge
counts.

``method="ssim-structure"`` keeps only the contrast-structure factor
``(2*cov + C2) / (var_ref + var_frame + C2)`` and drops the luminance factor,
so a global brightness change (sun, clouds, auto-exposure) barely moves it.

Everything that depends only on the reference and the mask is computed once.
Per frame, only the mask's bounding box (plus the window radius) is filtered,
in float32, with OpenCV's linear filters working in place in buffers that are
reused; the formula is arranged so that it takes three Gaussian filters and
three float buffers, besides two float32 arrays and one int16 array of the
reference (see ``_strip_map``): at 1280x720 a float32 frame is 3.7 MB, and a
Pi Zero 2 W has 512 MB in all. Above ``Comparator.STRIP_PIXELS`` the buffers
hold a strip of rows rather than the whole box.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import ClassVar, Literal

import cv2
import numpy as np

from monitor.exc import ComparisonError

__all__ = ["METHODS", "Comparator", "Comparison", "mse", "to_gray"]

METHODS = ("ssim", "ssim-structure")
Method = Literal["ssim", "ssim-structure"]

SIGMA = 1.5
TRUNCATE = 3.5  # scipy.ndimage / scikit-image default: radius = int(3.5 * 1.5 + 0.5) = 5
RADIUS = int(TRUNCATE * SIGMA + 0.5)
DATA_RANGE = 255.0
C1 = (0.01 * DATA_RANGE) ** 2
C2 = (0.03 * DATA_RANGE) ** 2
_BORDER = cv2.BORDER_REFLECT  # scipy's "reflect", which scikit-image uses: d c b a | a b c d


def _gaussian_kernel() -> np.ndarray:
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / SIGMA) ** 2)
    return (weights / weights.sum()).astype(np.float32).reshape(-1, 1)


_KERNEL = _gaussian_kernel()
# The two passes of each Gaussian filter as filter2D kernels (a row, then a column):
# about 8 % faster here than sepFilter2D, and both work in place. Folding a factor
# into the column pass makes the filter yield -E[y^2] and -2 E[xy] directly.
_ROW = _KERNEL.reshape(1, -1)
_COLUMN = _KERNEL.copy()
_COLUMN_NEG = -_KERNEL
_COLUMN_NEG2 = -2 * _KERNEL
_CLOSE = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))


def _strips(height: int, rows: int) -> list[tuple[int, int, int, int]]:
    """Split ``height`` rows into strips of at most about ``rows``, top to bottom.

    Each is (first, end) of the rows it filters, with RADIUS rows of context
    where it meets another strip, and (first, end) of the rows it delivers.
    """
    count = -(-height // rows)
    bounds = [round(k * height / count) for k in range(count + 1)]
    return [(max(top - RADIUS, 0), min(bottom + RADIUS, height), top, bottom) for top, bottom in pairwise(bounds)]


def _rounded_mean(image: np.ndarray) -> int:
    return round(cv2.sumElems(image)[0] / image.size)


def _gaussian(image: np.ndarray, *, out: np.ndarray, column: np.ndarray = _COLUMN, delta: float = 0.0) -> None:
    """Filter ``image`` into ``out`` (which may be ``image``) with the Gaussian window, times ``column``'s factor."""
    cv2.filter2D(image, -1, _ROW, dst=out, borderType=_BORDER)
    cv2.filter2D(out, -1, column, dst=out, delta=delta, borderType=_BORDER)


Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One frame against the reference.

    ``score``: the masked mean of the local similarity map (1 = identical).
    ``changed_fraction``: share of watched pixels whose local similarity is
    below the comparator's ``local_level``.
    ``boxes``: ``(x, y, w, h)`` frame-pixel boxes around those pixels, largest first.
    """

    score: float
    changed_fraction: float
    boxes: list[Box] = field(default_factory=list)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as 2-D uint8; colour is converted as OpenCV's BGR2GRAY."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2:
        raise ComparisonError(f"expected a 2-D grayscale or 3-channel colour image, got shape {image.shape}")
    return image


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error between two grayscale images, over ``mask`` when given."""
    if a.shape != b.shape:
        raise ComparisonError(f"images differ in size: {a.shape[::-1]} and {b.shape[::-1]}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    sq = diff * diff
    return float(sq[mask].mean() if mask is not None else sq.mean())


class Comparator:
    """Scores frames against one reference image over a watched mask.

    ``reference``: uint8, grayscale or BGR colour. ``mask``: bool array of the
    reference's size, True where watched; None watches the whole frame.
    ``local_level``: local similarity below which a pixel counts as changed in
    :meth:`compare`. ``min_box_area``: smaller changed blobs get no box.
    ``downscale``: compare at 1/n of the size (faster, coarser; the score then
    no longer equals scikit-image's at full size).
    """

    # A crop of more pixels is filtered in strips of rows (each with RADIUS rows of context
    # above and below), so that the per-frame buffers hold a strip, not the whole crop:
    # at 1280x720, two strips and 5.3 MB less resident memory, for 1.4 % more rows to filter.
    STRIP_PIXELS: ClassVar[int] = 1 << 19

    def __init__(
        self,
        reference: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        method: Method = "ssim",
        local_level: float = 0.5,
        min_box_area: int = 25,
        downscale: int = 1,
    ) -> None:
        if method not in METHODS:
            raise ComparisonError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        reference = self._check_reference(reference)
        self.method: Method = method
        self.local_level = float(local_level)
        self.min_box_area = int(min_box_area)
        self.downscale = int(downscale)
        if self.downscale < 1:
            raise ComparisonError(f"downscale must be 1 or more, got {downscale}")
        self.shape: tuple[int, int] = reference.shape[:2]
        self._full_mask = self._check_mask(mask, self.shape)
        self._setup_geometry()
        self.set_reference(reference)

    # -- set-up ---------------------------------------------------------------

    @staticmethod
    def _check_reference(reference: np.ndarray) -> np.ndarray:
        if not isinstance(reference, np.ndarray) or reference.dtype != np.uint8:
            raise ComparisonError("reference must be a uint8 image array")
        reference = to_gray(reference)
        if min(reference.shape) < 2 * RADIUS + 1:
            raise ComparisonError(
                f"reference is {reference.shape[1]}x{reference.shape[0]}, expected at least "
                f"{2 * RADIUS + 1} pixels on each side"
            )
        return reference

    @staticmethod
    def _check_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise ComparisonError(
                f"mask is {mask.shape[::-1] if mask.ndim == 2 else mask.shape}, "
                f"expected the reference size {shape[1]}x{shape[0]}"
            )
        mask = mask.astype(bool)
        if not mask.any():
            raise ComparisonError("mask watches no pixel: expected at least one True (white) pixel")
        return mask

    def _setup_geometry(self) -> None:
        height, width = self.shape
        n = self.downscale
        self._work_size = (max(width // n, 2 * RADIUS + 1), max(height // n, 2 * RADIUS + 1))
        mask = self._full_mask if self._full_mask is not None else np.ones(self.shape, bool)
        if n > 1:
            mask = cv2.resize(mask.astype(np.uint8) * 255, self._work_size, interpolation=cv2.INTER_AREA) >= 128
            if not mask.any():
                raise ComparisonError(f"mask is too small to survive downscale {n}")
        work_h, work_w = mask.shape
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # The filters need RADIUS pixels of real context around the box; at the
        # frame's edge the reflection matches scikit-image's, so clip there.
        cy0, cy1 = max(y0 - RADIUS, 0), min(y1 + RADIUS, work_h)
        cx0, cx1 = max(x0 - RADIUS, 0), min(x1 + RADIUS, work_w)
        self._crop = (slice(cy0, cy1), slice(cx0, cx1))
        self._origin = (cx0, cy0)
        # The map is computed over the whole crop (contiguous arrays are about twice as
        # fast as strided views of the box); the ring of context pixels is masked out.
        crop_mask = mask[self._crop]
        self._mask_u8: np.ndarray | None = None if crop_mask.all() else crop_mask.astype(np.uint8) * 255
        self._watched = int(crop_mask.sum())
        self._weights = None if self._mask_u8 is None else crop_mask.astype(np.float32)
        crop_shape = crop_mask.shape
        f32 = np.float32
        self._strips = _strips(crop_shape[0], max(4 * RADIUS, self.STRIP_PIXELS // crop_shape[1]))
        strip_shape = (max(end - first for first, end, _, _ in self._strips), crop_shape[1])
        # Per-frame buffers of a strip, each reused for more than one quantity (see _strip_map).
        self._a = np.empty(strip_shape, f32)
        self._b = np.empty(strip_shape, f32)
        self._c = np.empty(strip_shape, f32)
        # Statistics of the reference, filled by set_reference.
        self._x = np.empty(crop_shape, np.int16)  # reference - its mean: exact, half the size of float32
        self._mx2 = np.empty(crop_shape, f32)
        self._vx_c2 = np.empty(crop_shape, f32)
        self._low = np.empty(crop_shape, np.uint8)
        self._last_changed: int | None = None  # changed pixels in _low, from the last compare()
        self._small = np.empty(self._work_size[::-1], np.uint8) if n > 1 else None

    def set_reference(self, reference: np.ndarray) -> None:
        """Replace the reference (same size) and recompute its statistics."""
        reference = self._check_reference(reference)
        if reference.shape != self.shape:
            raise ComparisonError(
                f"new reference is {reference.shape[1]}x{reference.shape[0]}, expected {self.shape[1]}x{self.shape[0]}"
            )
        self.reference = reference
        self._last_changed = None
        crop = self._to_work_size(reference, out=None)[self._crop]
        # Second moments are taken of (pixel - shift), with the image's (rounded) mean
        # as the shift: it keeps float32 sums small, so variance = E[x^2] - E[x]^2
        # loses far fewer digits to cancellation. Frames get their own (see _strip_map).
        self._shift = shift = _rounded_mean(crop)
        np.subtract(crop, shift, out=self._x, dtype=np.int16)
        # Strip by strip in the per-frame buffers, into the arrays the comparator keeps.
        for first, end, out_first, out_end in self._strips:
            rows = end - first
            x, mx, e = self._a[:rows], self._b[:rows], self._c[:rows]
            np.subtract(crop[first:end], np.float32(shift), out=x, dtype=np.float32)
            _gaussian(x, out=mx)
            np.multiply(x, x, out=e)
            _gaussian(e, out=e, column=_COLUMN_NEG)  # -E[x^2]
            cv2.accumulateSquare(mx, e)  # mx^2 - E[x^2] = -vx
            delivered = slice(out_first - first, out_end - first)
            np.multiply(mx[delivered], np.float32(2), out=self._mx2[out_first:out_end])
            np.subtract(np.float32(C2), e[delivered], out=self._vx_c2[out_first:out_end])  # vx + C2

    def _to_work_size(self, image: np.ndarray, *, out: np.ndarray | None) -> np.ndarray:
        if self.downscale == 1:
            return image
        return cv2.resize(image, self._work_size, dst=out, interpolation=cv2.INTER_AREA)

    # -- per frame ------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> None:
        if not isinstance(frame, np.ndarray) or frame.ndim != 2:
            shape = getattr(frame, "shape", None)
            raise ComparisonError(f"expected a 2-D grayscale frame, got shape {shape}")
        if frame.shape != self.shape:
            raise ComparisonError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, expected the reference size "
                f"{self.shape[1]}x{self.shape[0]}"
            )
        if frame.dtype != np.uint8:
            raise ComparisonError(f"expected a uint8 frame, got {frame.dtype}")

    def _similarity_strips(self, frame: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """The local similarity map over the crop (the mask's box plus context), strip by strip.

        Yields the first crop row of each strip and the strip's rows of the map,
        top to bottom; each is valid until the next is asked for.
        """
        self._check_frame(frame)
        self._last_changed = None
        work = self._to_work_size(frame, out=self._small)
        crop = work[self._crop]
        s, t = float(self._shift), _rounded_mean(crop)
        for first, end, out_first, out_end in self._strips:
            smap = self._strip_map(crop[first:end], slice(first, end), s=s, t=t)
            yield out_first, smap[out_first - first : out_end - first]

    def _strip_map(self, frame_rows: np.ndarray, rows: slice, *, s: float, t: int) -> np.ndarray:
        """Fill and return the local similarity map of these rows of the crop.

        With x the reference less its mean s and y the frame less its mean t
        (rounded, over the crop), and mx, my, syy, sxy their Gaussian-filtered
        means and second moments (ux = mx + s, uy = my + t the true means):

        - contrast-structure = (2 sxy - 2 mx my + C2) / (vx + C2 + syy - my^2), with
          vx + C2 and 2 mx kept from the reference; the filters make -syy and
          -(2 sxy + C2) directly, so that OpenCV's accumulate functions add
          my^2 and 2 mx my in place (covariances do not depend on the shifts);
        - luminance = (2 ux uy + C1) / (ux^2 + uy^2 + C1) = n / (n + (ux - uy)^2), where
          n = 2 mx my + 2 s my + 2 t mx + 2 s t + C1 and ux - uy = mx - my + s - t.

        A frame shifted by its own mean keeps a flat frame far brighter than
        the reference from losing the digits of its variance (a light switched on).

        The result is returned in the ``_c`` buffer. Only rows at least RADIUS
        from an edge of the strip that is not an edge of the crop are right.
        """
        count = frame_rows.shape[0]
        a, b, c = self._a[:count], self._b[:count], self._c[:count]
        mx2 = self._mx2[rows]
        np.subtract(frame_rows, np.float32(t), out=a, dtype=np.float32)  # y
        np.multiply(a, a, out=b)
        _gaussian(b, out=b, column=_COLUMN_NEG)  # -syy
        cv2.multiply(a, self._x[rows], dst=c, dtype=cv2.CV_32F)  # integers below 2^24: exact in float32
        _gaussian(c, out=c, column=_COLUMN_NEG2, delta=-C2)  # -(2 sxy + C2)
        _gaussian(a, out=a)  # my
        cv2.accumulateProduct(mx2, a, c)  # minus the contrast-structure numerator
        cv2.accumulateSquare(a, b)
        np.subtract(self._vx_c2[rows], b, out=b)  # contrast-structure denominator
        if self.method == "ssim-structure":
            cv2.divide(c, b, dst=c, scale=-1.0)
            return c
        cv2.divide(c, b, dst=c)  # minus contrast-structure
        cv2.multiply(mx2, a, dst=b)
        cv2.scaleAdd(a, 2.0 * s, b, dst=b)
        cv2.addWeighted(b, 1.0, mx2, t, 2.0 * s * t + C1, dst=b)  # n
        c *= b
        cv2.addWeighted(mx2, 1.0, a, -2.0, 2.0 * (s - t), dst=a)  # 2 (ux - uy)
        a *= a
        cv2.scaleAdd(b, 4.0, a, dst=a)  # 4 (n + (ux - uy)^2)
        cv2.divide(c, a, dst=c, scale=-4.0)
        return c

    def score(self, frame: np.ndarray) -> float:
        """Return the masked mean similarity of ``frame`` (2-D uint8, the reference's size)."""
        return sum(self._watched_sum(first, smap) for first, smap in self._similarity_strips(frame)) / self._watched

    def _watched_sum(self, first: int, smap: np.ndarray) -> float:
        """The sum of these rows of the map over the watched pixels, in double precision."""
        if self._weights is None:
            return float(cv2.sumElems(smap)[0])
        # Weights of 0 and 1: 3x faster than cv2.mean with a mask. _a is free once the map is made.
        weights = self._weights[first : first + smap.shape[0]]
        return float(cv2.sumElems(np.multiply(smap, weights, out=self._a[: smap.shape[0]]))[0])

    def compare(self, frame: np.ndarray, *, boxes: bool = True) -> Comparison:
        """Score ``frame`` and find the changed share and, unless ``boxes=False``, their boxes.

        With ``boxes=False``, :meth:`boxes_of_last` can still find them afterwards.
        """
        low = self._low
        total = 0.0
        for first, smap in self._similarity_strips(frame):
            total += self._watched_sum(first, smap)
            cv2.compare(smap, self.local_level, cv2.CMP_LT, dst=low[first : first + smap.shape[0]])  # type: ignore[call-overload]
        if self._mask_u8 is not None:
            cv2.bitwise_and(low, self._mask_u8, dst=low)
        changed = cv2.countNonZero(low)
        self._last_changed = changed
        found = self._boxes() if boxes and changed else []
        return Comparison(score=total / self._watched, changed_fraction=changed / self._watched, boxes=found)

    def boxes_of_last(self) -> list[Box]:
        """The boxes of the frame of the last :meth:`compare`, without comparing it again.

        For a caller that compares every frame with ``boxes=False`` and wants
        boxes only for some. ComparisonError if another frame or reference was
        handed over since that compare.
        """
        if self._last_changed is None:
            raise ComparisonError("boxes_of_last() needs a compare() of the frame first")
        return self._boxes() if self._last_changed else []

    def _boxes(self) -> list[Box]:
        low = self._low
        # Close small gaps so one object gives one box, not a scatter of pieces (closing
        # twice changes nothing, so boxes_of_last may be called again).
        cv2.morphologyEx(low, cv2.MORPH_CLOSE, _CLOSE, dst=low)
        # The labels go into a float buffer that the map no longer needs (4 bytes a pixel
        # too), when it holds the whole crop: 1.2 MB less to allocate at 640x480.
        labels = self._a.view(np.int32) if self._a.shape == low.shape else None
        count, _, stats, _ = cv2.connectedComponentsWithStats(low, labels=labels, connectivity=8)
        n = self.downscale
        x0, y0 = self._origin
        found = []
        for x, y, w, h, area in stats[1:count]:
            if area * n * n >= self.min_box_area:
                found.append(((int(x) + x0) * n, (int(y) + y0) * n, int(w) * n, int(h) * n, int(area)))
        found.sort(key=lambda box: -box[4])
        return [box[:4] for box in found[:32]]

    def similarity_map(self, frame: np.ndarray) -> np.ndarray:
        """Return the full-size local similarity map; NaN outside the watched pixels."""
        work_h, work_w = self._work_size[1], self._work_size[0]
        full: np.ndarray = np.full((work_h, work_w), np.nan, np.float32)
        x0, y0 = self._origin
        for first, smap in self._similarity_strips(frame):
            full[y0 + first : y0 + first + smap.shape[0], x0 : x0 + smap.shape[1]] = smap
        if self.downscale > 1:
            full = cv2.resize(full, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_NEAREST)
        if self._full_mask is not None:
            full[~self._full_mask] = np.nan
        return full
