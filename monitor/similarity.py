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
Per frame, only the mask's bounding box (plus the window radius, widened to
whole 8-float vectors where the frame allows) is filtered, in float32, with
OpenCV's linear filters working in place in buffers that are reused; the
formula is arranged so that it takes three Gaussian filters and three float
buffers, besides three float32 arrays of the reference (see ``_strip_map``):
at 1280x720 a float32 frame is 3.7 MB, and a Pi Zero 2 W has 512 MB in all.
Above ``Comparator.STRIP_PIXELS`` the buffers hold a strip of rows rather than
the whole box.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    ``changed_pixels``: how many watched pixels that is, in frame pixels.
    """

    score: float
    changed_fraction: float
    boxes: list[Box] = field(default_factory=list)
    changed_pixels: int = 0


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


@dataclass(slots=True)
class _Zone:
    """Where one zone lies in the crop, and its per-frame results."""

    top: int  # its box in crop coordinates (work size)
    bottom: int
    left: int
    right: int
    weights: np.ndarray | None  # 0/1 float32 of the box, None when the zone fills its box
    mask_u8: np.ndarray | None  # 0/255 of the box, None when the zone fills its box
    watched: int
    low: np.ndarray  # uint8 of the box: 255 where the local similarity is under local_level
    total: float = 0.0
    changed: int | None = None  # changed pixels in ``low`` after the last compare, None before


@dataclass(slots=True)
class _ReferenceTerms:
    """What the per-frame formula needs of one reference, over the crop."""

    shift: int  # the reference's rounded mean over the crop
    x: np.ndarray  # reference - shift, float32: integers, exact (a product with int16 costs 2.5x as much)
    mx2: np.ndarray  # 2 E[x], float32
    vx_c2: np.ndarray  # var(x) + C2, float32
    # Kept for a state comparator only (see _state_maps): 2 ux and ux^2 + C1, float32.
    ux2: np.ndarray | None = None
    uxx_c1: np.ndarray | None = None


class Comparator:
    """Scores frames against one reference image over one or more watched zones.

    ``reference``: uint8, grayscale or BGR colour. ``mask``: bool array of the
    reference's size, True where watched; None watches the whole frame.
    ``zones``: instead of ``mask``, several such masks: the frame is filtered
    once over the box around all of them, and each zone is a masked mean over
    that shared map (:meth:`compare_zones`); zone 0 is the one :meth:`compare`
    and :meth:`score` report. ``local_level``: local similarity below which a
    pixel counts as changed. ``min_box_area``: smaller changed blobs get no box.
    ``downscale``: compare at 1/n of the size (faster, coarser; the score then
    no longer equals scikit-image's at full size).

    :meth:`of_states` makes a comparator of several references over one mask,
    which filters the frame's own terms once for all of them (:meth:`compare_references`).
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
        zones: Sequence[np.ndarray | None] | None = None,
        method: Method = "ssim",
        local_level: float = 0.5,
        min_box_area: int = 25,
        downscale: int = 1,
    ) -> None:
        self._init(
            [reference],
            zones=[mask] if zones is None else list(zones),
            method=method,
            local_level=local_level,
            min_box_area=min_box_area,
            downscale=downscale,
        )
        if zones is not None and mask is not None:
            raise ComparisonError("give either mask or zones, not both")

    @classmethod
    def of_states(
        cls,
        references: Sequence[np.ndarray],
        *,
        mask: np.ndarray | None = None,
        method: Method = "ssim",
        local_level: float = 0.5,
        downscale: int = 1,
    ) -> Comparator:
        """A comparator of one frame against each of ``references`` over ``mask`` (a state zone)."""
        if not references:
            raise ComparisonError("of_states needs at least one reference")
        comparator = cls.__new__(cls)
        comparator._init(
            list(references), zones=[mask], method=method, local_level=local_level, min_box_area=0, downscale=downscale
        )
        if method == "ssim":
            for terms in comparator._terms:
                terms.ux2 = terms.mx2 + np.float32(2 * terms.shift)
                terms.uxx_c1 = np.square(terms.ux2 * np.float32(0.5)) + np.float32(C1)
        return comparator

    def _init(
        self,
        references: list[np.ndarray],
        *,
        zones: list[np.ndarray | None],
        method: Method,
        local_level: float,
        min_box_area: int,
        downscale: int,
    ) -> None:
        if method not in METHODS:
            raise ComparisonError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not zones:
            raise ComparisonError("zones: expected at least one mask")
        checked = [self._check_reference(reference) for reference in references]
        self.method: Method = method
        self.local_level = float(local_level)
        self.min_box_area = int(min_box_area)
        self.downscale = int(downscale)
        if self.downscale < 1:
            raise ComparisonError(f"downscale must be 1 or more, got {downscale}")
        self.shape: tuple[int, int] = checked[0].shape[:2]
        for reference in checked[1:]:
            if reference.shape != self.shape:
                raise ComparisonError(
                    f"references differ in size: {self.shape[1]}x{self.shape[0]} and "
                    f"{reference.shape[1]}x{reference.shape[0]}"
                )
        self._zone_masks = [self._check_mask(mask, self.shape, index) for index, mask in enumerate(zones)]
        self._setup_geometry()
        self._terms: list[_ReferenceTerms] = []
        self.references: list[np.ndarray] = []
        for reference in checked:
            self._terms.append(self._reference_terms(reference))
            self.references.append(reference)

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
    def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], index: int) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        which = "mask" if index == 0 else f"zone {index}'s mask"
        if mask.shape != shape:
            raise ComparisonError(
                f"{which} is {mask.shape[::-1] if mask.ndim == 2 else mask.shape}, "
                f"expected the reference size {shape[1]}x{shape[0]}"
            )
        mask = mask.astype(bool)
        if not mask.any():
            raise ComparisonError(f"{which} watches no pixel: expected at least one True (white) pixel")
        return mask

    def _work_mask(self, mask: np.ndarray | None, index: int) -> np.ndarray:
        n = self.downscale
        if mask is None:
            return np.ones(self._work_size[::-1], bool)
        if n == 1:
            return mask
        small = cv2.resize(mask.astype(np.uint8) * 255, self._work_size, interpolation=cv2.INTER_AREA) >= 128
        if not small.any():
            which = "mask" if index == 0 else f"zone {index}'s mask"
            raise ComparisonError(f"{which} is too small to survive downscale {n}")
        return small

    def _setup_geometry(self) -> None:
        height, width = self.shape
        n = self.downscale
        self._work_size = (max(width // n, 2 * RADIUS + 1), max(height // n, 2 * RADIUS + 1))
        masks = [self._work_mask(mask, index) for index, mask in enumerate(self._zone_masks)]
        union = masks[0] if len(masks) == 1 else np.logical_or.reduce(masks)
        work_h, work_w = union.shape
        y0, y1, x0, x1 = _bounds(union)
        # The filters need RADIUS pixels of real context around the box; at the
        # frame's edge the reflection matches scikit-image's, so clip there.
        cy0, cy1 = max(y0 - RADIUS, 0), min(y1 + RADIUS, work_h)
        cx0, cx1 = _whole_vectors(max(x0 - RADIUS, 0), min(x1 + RADIUS, work_w), work_w)
        self._crop = (slice(cy0, cy1), slice(cx0, cx1))
        self._origin = (cx0, cy0)
        self._union = union[self._crop]
        self._zones = [self._zone_in_crop(mask[self._crop]) for mask in masks]
        crop_shape = self._union.shape
        f32 = np.float32
        self._strips = _strips(crop_shape[0], max(4 * RADIUS, self.STRIP_PIXELS // crop_shape[1]))
        strip_shape = (max(end - first for first, end, _, _ in self._strips), crop_shape[1])
        # Per-frame buffers of a strip, each reused for more than one quantity (see _strip_map);
        # several references need three more (see _state_maps), allocated when first used.
        self._a = np.empty(strip_shape, f32)
        self._b = np.empty(strip_shape, f32)
        self._c = np.empty(strip_shape, f32)
        self._more: tuple[np.ndarray, ...] | None = None
        self._small = np.empty(self._work_size[::-1], np.uint8) if n > 1 else None

    @staticmethod
    def _zone_in_crop(mask: np.ndarray) -> _Zone:
        top, bottom, left, right = _bounds(mask)
        box = mask[top:bottom, left:right]
        full = bool(box.all())
        return _Zone(
            top=top,
            bottom=bottom,
            left=left,
            right=right,
            weights=None if full else box.astype(np.float32),
            mask_u8=None if full else box.astype(np.uint8) * 255,
            watched=int(box.sum()),
            low=np.zeros(box.shape, np.uint8),
        )

    @property
    def reference(self) -> np.ndarray:
        """The (first) reference, grayscale."""
        return self.references[0]

    @property
    def zone_count(self) -> int:
        return len(self._zones)

    def set_reference(self, reference: np.ndarray) -> None:
        """Replace the (only) reference, of the same size, and recompute its statistics."""
        if len(self._terms) != 1:
            raise ComparisonError("set_reference: this comparator has several references")
        reference = self._check_reference(reference)
        if reference.shape != self.shape:
            raise ComparisonError(
                f"new reference is {reference.shape[1]}x{reference.shape[0]}, expected {self.shape[1]}x{self.shape[0]}"
            )
        self._forget_last()
        self._terms[0] = self._reference_terms(reference)
        self.references[0] = reference

    def crop_of(self, frame: np.ndarray) -> np.ndarray:
        """A copy of the part of ``frame`` this comparator looks at (its zones' box plus context, at work size).

        Keep it to hand back to :meth:`set_reference_crop` later: an activity
        zone compares each frame with one from a moment before.
        """
        self._check_frame(frame)
        return np.array(self._to_work_size(frame, out=None)[self._crop])

    def set_reference_crop(self, crop: np.ndarray) -> None:
        """Make an earlier frame's :meth:`crop_of` the (only) reference."""
        if len(self._terms) != 1:
            raise ComparisonError("set_reference_crop: this comparator has several references")
        if crop.shape != self._union.shape or crop.dtype != np.uint8:
            raise ComparisonError(f"expected a crop of shape {self._union.shape}, got {crop.dtype} {crop.shape}")
        self._forget_last()
        self._terms[0] = self._terms_of_crop(crop)

    def _reference_terms(self, reference: np.ndarray) -> _ReferenceTerms:
        return self._terms_of_crop(self._to_work_size(reference, out=None)[self._crop])

    def _terms_of_crop(self, crop: np.ndarray) -> _ReferenceTerms:
        # Second moments are taken of (pixel - shift), with the image's (rounded) mean
        # as the shift: it keeps float32 sums small, so variance = E[x^2] - E[x]^2
        # loses far fewer digits to cancellation. Frames get their own (see _strip_map).
        shift = _rounded_mean(crop)
        terms = _ReferenceTerms(
            shift=shift,
            x=np.empty(crop.shape, np.float32),
            mx2=np.empty(crop.shape, np.float32),
            vx_c2=np.empty(crop.shape, np.float32),
        )
        np.subtract(crop, shift, out=terms.x, dtype=np.float32)
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
            np.multiply(mx[delivered], np.float32(2), out=terms.mx2[out_first:out_end])
            np.subtract(np.float32(C2), e[delivered], out=terms.vx_c2[out_first:out_end])  # vx + C2
        return terms

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

    def _forget_last(self) -> None:
        for zone in self._zones:
            zone.changed = None

    def _frame_crop(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        self._check_frame(frame)
        self._forget_last()
        crop = self._to_work_size(frame, out=self._small)[self._crop]
        return crop, _rounded_mean(crop)

    def _similarity_strips(self, frame: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """The local similarity map over the crop (the zones' box plus context), strip by strip.

        Yields the first crop row of each strip and the strip's rows of the map,
        top to bottom; each is valid until the next is asked for. One reference only.
        """
        crop, t = self._frame_crop(frame)
        terms = self._terms[0]
        for first, end, out_first, out_end in self._strips:
            smap = self._strip_map(crop[first:end], slice(first, end), terms, t=t)
            yield out_first, smap[out_first - first : out_end - first]

    def _strip_map(self, frame_rows: np.ndarray, rows: slice, terms: _ReferenceTerms, *, t: int) -> np.ndarray:
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
        mx2 = terms.mx2[rows]
        cv2.subtract(frame_rows, float(t), dst=a, dtype=cv2.CV_32F)  # type: ignore[call-overload]  # y, at half the cost of NumPy's cast
        np.multiply(a, a, out=b)
        _gaussian(b, out=b, column=_COLUMN_NEG)  # -syy
        np.multiply(a, terms.x[rows], out=c)  # integers below 2^24: exact in float32
        _gaussian(c, out=c, column=_COLUMN_NEG2, delta=-C2)  # -(2 sxy + C2)
        _gaussian(a, out=a)  # my
        cv2.accumulateProduct(mx2, a, c)  # minus the contrast-structure numerator
        cv2.accumulateSquare(a, b)
        np.subtract(terms.vx_c2[rows], b, out=b)  # contrast-structure denominator
        if self.method == "ssim-structure":
            cv2.divide(c, b, dst=c, scale=-1.0)
            return c
        cv2.divide(c, b, dst=c)  # minus contrast-structure; b is free
        s = float(terms.shift)
        n = b
        np.multiply(mx2, a, out=n)
        cv2.scaleAdd(a, 2.0 * s, n, dst=n)
        cv2.addWeighted(n, 1.0, mx2, t, 2.0 * s * t + C1, dst=n)  # n
        np.multiply(c, n, out=c)
        cv2.addWeighted(mx2, 0.5, a, -1.0, s - t, dst=a)  # ux - uy; my is spent
        cv2.accumulateSquare(a, n)  # n + (ux - uy)^2
        cv2.divide(c, n, dst=c, scale=-1.0)
        return c

    def _state_maps(self, frame_rows: np.ndarray, rows: slice, *, t: int) -> Iterator[np.ndarray]:
        """The map of these rows against each reference in turn, sharing the frame's own terms.

        The frame's y, my, -vy, uy and uy^2 are made once and kept; per reference
        only the cross term is filtered, and luminance is taken in its plain form
        (2 ux uy + C1) / (ux^2 + uy^2 + C1) with 2 ux and ux^2 + C1 kept from the
        reference: nine array operations and one filter per extra state. Each
        map is in ``_c`` until the next is asked for.
        """
        count = frame_rows.shape[0]
        if self._more is None:
            self._more = tuple(np.empty_like(self._a) for _ in range(5))
        y, my, c = self._a[:count], self._b[:count], self._c[:count]
        nvy, uy, uyy, e, f = (buffer[:count] for buffer in self._more)
        np.subtract(frame_rows, np.float32(t), out=y, dtype=np.float32)
        np.multiply(y, y, out=nvy)
        _gaussian(nvy, out=nvy, column=_COLUMN_NEG)  # -syy
        _gaussian(y, out=my)
        cv2.accumulateSquare(my, nvy)  # -vy
        structure = self.method == "ssim-structure"
        if not structure:
            np.add(my, np.float32(t), out=uy)
            np.multiply(uy, uy, out=uyy)
        for terms in self._terms:
            mx2 = terms.mx2[rows]
            cv2.multiply(y, terms.x[rows], dst=c, dtype=cv2.CV_32F)
            _gaussian(c, out=c, column=_COLUMN_NEG2, delta=-C2)  # -(2 sxy + C2)
            cv2.accumulateProduct(mx2, my, c)  # minus the contrast-structure numerator
            np.subtract(terms.vx_c2[rows], nvy, out=e)  # contrast-structure denominator
            if not structure:
                assert terms.ux2 is not None and terms.uxx_c1 is not None
                cv2.multiply(terms.ux2[rows], uy, dst=f)
                np.add(f, np.float32(C1), out=f)  # luminance numerator
                c *= f
                np.add(terms.uxx_c1[rows], uyy, out=f)  # luminance denominator
                e *= f
            cv2.divide(c, e, dst=c, scale=-1.0)
            yield c

    def score(self, frame: np.ndarray) -> float:
        """Return the masked mean similarity of ``frame`` (2-D uint8, the reference's size) over zone 0."""
        zone = self._zones[0]
        zone.total = 0.0
        for first, smap in self._similarity_strips(frame):
            self._reduce(zone, first, smap, changed=False)
        return zone.total / zone.watched

    def _reduce(self, zone: _Zone, first: int, smap: np.ndarray, *, changed: bool) -> None:
        """Add these rows of the map to the zone's sum and, with ``changed``, its low pixels."""
        top, bottom = max(zone.top, first), min(zone.bottom, first + smap.shape[0])
        if top >= bottom:
            return
        part = smap[top - first : bottom - first, zone.left : zone.right]
        if zone.weights is None:
            zone.total += float(cv2.sumElems(part)[0])
        else:
            # Weights of 0 and 1: 3x faster than cv2.mean with a mask. _a is free once the map is made.
            scratch = self._scratch()[: bottom - top, : zone.right - zone.left]
            np.multiply(part, zone.weights[top - zone.top : bottom - zone.top], out=scratch)
            zone.total += float(cv2.sumElems(scratch)[0])
        if changed:
            cv2.compare(part, self.local_level, cv2.CMP_LT, dst=zone.low[top - zone.top : bottom - zone.top])  # type: ignore[call-overload]

    def _scratch(self) -> np.ndarray:
        # One reference: _a (my) is spent once the map is made. Several: _a holds y for the next one.
        return self._a if self._more is None else self._more[4]

    def _finish(self, zone: _Zone) -> Comparison:
        if zone.mask_u8 is not None:
            cv2.bitwise_and(zone.low, zone.mask_u8, dst=zone.low)
        zone.changed = cv2.countNonZero(zone.low)
        n2 = self.downscale * self.downscale
        return Comparison(
            score=zone.total / zone.watched,
            changed_fraction=zone.changed / zone.watched,
            changed_pixels=zone.changed * n2,
        )

    def compare_zones(self, frame: np.ndarray) -> list[Comparison]:
        """Score ``frame`` over every zone, with its changed share; no boxes (see :meth:`boxes_of_last`)."""
        zones = self._zones
        for zone in zones:
            zone.total = 0.0
        for first, smap in self._similarity_strips(frame):
            for zone in zones:
                self._reduce(zone, first, smap, changed=True)
        return [self._finish(zone) for zone in zones]

    def compare(self, frame: np.ndarray, *, boxes: bool = True) -> Comparison:
        """Score ``frame`` over zone 0 and find the changed share and, unless ``boxes=False``, their boxes.

        With ``boxes=False``, :meth:`boxes_of_last` can still find them afterwards.
        """
        zone = self._zones[0]
        zone.total = 0.0
        for first, smap in self._similarity_strips(frame):
            self._reduce(zone, first, smap, changed=True)
        result = self._finish(zone)
        if boxes and zone.changed:
            return Comparison(
                score=result.score,
                changed_fraction=result.changed_fraction,
                changed_pixels=result.changed_pixels,
                boxes=self._boxes(zone),
            )
        return result

    def compare_references(self, frame: np.ndarray) -> list[float]:
        """The score of ``frame`` against each reference over zone 0, in the order given."""
        zone = self._zones[0]
        crop, t = self._frame_crop(frame)
        scores = [0.0] * len(self._terms)
        for first, end, out_first, out_end in self._strips:
            delivered = slice(out_first - first, out_end - first)
            for index, smap in enumerate(self._state_maps(crop[first:end], slice(first, end), t=t)):
                zone.total = 0.0
                self._reduce(zone, out_first, smap[delivered], changed=False)
                scores[index] += zone.total
        return [total / zone.watched for total in scores]

    def boxes_of_last(self, zone: int = 0) -> list[Box]:
        """The boxes of the frame of the last compare, in that zone, without comparing it again.

        For a caller that compares every frame without boxes and wants boxes
        only for some. ComparisonError if another frame or reference was
        handed over since that compare.
        """
        found = self._zones[zone]
        if found.changed is None:
            raise ComparisonError("boxes_of_last() needs a compare() of the frame first")
        return self._boxes(found) if found.changed else []

    def _boxes(self, zone: _Zone) -> list[Box]:
        low = zone.low
        # Close small gaps so one object gives one box, not a scatter of pieces (closing
        # twice changes nothing, so boxes_of_last may be called again).
        cv2.morphologyEx(low, cv2.MORPH_CLOSE, _CLOSE, dst=low)
        count, _, stats, _ = cv2.connectedComponentsWithStats(low, connectivity=8)
        n = self.downscale
        x0, y0 = self._origin[0] + zone.left, self._origin[1] + zone.top
        found = []
        for x, y, w, h, area in stats[1:count]:
            if area * n * n >= self.min_box_area:
                found.append(((int(x) + x0) * n, (int(y) + y0) * n, int(w) * n, int(h) * n, int(area)))
        found.sort(key=lambda box: -box[4])
        return [box[:4] for box in found[:32]]

    def similarity_map(self, frame: np.ndarray) -> np.ndarray:
        """Return the full-size local similarity map; NaN outside the watched pixels (of every zone)."""
        work_h, work_w = self._work_size[1], self._work_size[0]
        full: np.ndarray = np.full((work_h, work_w), np.nan, np.float32)
        x0, y0 = self._origin
        for first, smap in self._similarity_strips(frame):
            full[y0 + first : y0 + first + smap.shape[0], x0 : x0 + smap.shape[1]] = smap
        watched = np.zeros((work_h, work_w), bool)
        watched[self._crop] = self._union
        full[~watched] = np.nan
        if self.downscale > 1:
            full = cv2.resize(full, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_NEAREST)
        return full


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Top, bottom, left, right (ends exclusive) of the True pixels."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _whole_vectors(first: int, end: int, width: int) -> tuple[int, int]:
    """Columns ``first:end`` widened, where the frame allows, to a multiple of 8.

    OpenCV's filters leave the last ``n % 8`` pixels of each row to scalar
    code, several times slower per pixel than its 8-lane vector code; more
    columns of context cost nothing else.
    """
    extra = -(end - first) % 8
    right = min(extra, width - end)
    left = min(extra - right, first)
    return first - left, end + right
