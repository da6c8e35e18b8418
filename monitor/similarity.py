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
in float32, with OpenCV's separable filters into buffers that are reused; the
formula is arranged so that it takes three filters, fifteen array operations
and four frame-sized float buffers (see ``_similarity_map``): at 1280x720
every float buffer is 3.7 MB, and a Pi Zero 2 W has 512 MB in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
_KERNEL_X2 = 2 * _KERNEL  # filters to 2*E[xy] in one pass
_KERNEL_NEG = -_KERNEL  # filters to -E[y^2], so that adding my^2 needs no temporary

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
    def _check_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
        if mask is None:
            return np.ones(shape, bool)
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
        mask = self._full_mask
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
        # Per-frame buffers, each reused for more than one quantity (see _similarity_map).
        self._y = np.empty(crop_shape, f32)
        self._my = np.empty(crop_shape, f32)
        self._syy = np.empty(crop_shape, f32)
        self._sxy = np.empty(crop_shape, f32)
        self._low = np.empty(crop_shape, np.uint8)
        self._small = np.empty(self._work_size[::-1], np.uint8) if n > 1 else None

    def set_reference(self, reference: np.ndarray) -> None:
        """Replace the reference (same size) and recompute its statistics."""
        reference = self._check_reference(reference)
        if reference.shape != self.shape:
            raise ComparisonError(
                f"new reference is {reference.shape[1]}x{reference.shape[0]}, expected {self.shape[1]}x{self.shape[0]}"
            )
        self.reference = reference
        work = self._to_work_size(reference, out=None)
        crop = work[self._crop]
        # Second moments are taken of (pixel - shift), with the reference's mean
        # as the shift: it keeps float32 sums small, so variance = E[x^2] - E[x]^2
        # loses far fewer digits to cancellation.
        self._shift = shift = np.float32(round(float(crop.mean())))
        x = crop.astype(np.float32) - shift
        mx = cv2.sepFilter2D(x, -1, _KERNEL, _KERNEL, borderType=_BORDER)
        sxx = cv2.sepFilter2D(x * x, -1, _KERNEL, _KERNEL, borderType=_BORDER)
        self._x = x  # reference - shift, over the crop
        # Frame-independent parts of the SSIM formula (see _similarity_map).
        self._mx = mx
        self._vx_c2 = np.subtract(sxx, mx * mx, out=sxx)
        self._vx_c2 += np.float32(C2)
        self._lum_k = mx * np.float32(2 * shift)
        self._lum_k += np.float32(2 * shift * shift + C1)

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

    def _similarity_map(self, frame: np.ndarray) -> np.ndarray:
        """Fill and return the local similarity map over the crop (the mask's box plus context).

        With x, y the reference and frame less ``shift``, and mx, my, sxx, syy,
        sxy their Gaussian-filtered means and second moments (ux = mx + shift,
        uy = my + shift the true means):

        - contrast-structure = (2 sxy - 2 mx my + C2) / (sxx - mx^2 + C2 + syy - my^2);
          the filter makes 2 sxy + C2 directly (kernel times 2, ``delta=C2``);
        - luminance = (2 ux uy + C1) / (ux^2 + uy^2 + C1) = n / (n + (mx - my)^2), where
          n = 2 ux uy + C1 = 2 mx my + 2 shift my + (2 shift mx + 2 shift^2 + C1).

        The result is returned in the ``_sxy`` buffer, valid until the next call.
        """
        self._check_frame(frame)
        work = self._to_work_size(frame, out=self._small)
        y, my, syy, sxy = self._y, self._my, self._syy, self._sxy
        np.subtract(work[self._crop], self._shift, out=y, dtype=np.float32)
        cv2.sepFilter2D(y, -1, _KERNEL, _KERNEL, dst=my, borderType=_BORDER)
        np.multiply(y, y, out=sxy)
        cv2.sepFilter2D(sxy, -1, _KERNEL_NEG, _KERNEL, dst=syy, borderType=_BORDER)  # -syy
        np.multiply(y, self._x, out=y)
        cv2.sepFilter2D(y, -1, _KERNEL_X2, _KERNEL, dst=sxy, delta=C2, borderType=_BORDER)  # 2 sxy + C2

        two_mx_my = y
        cv2.multiply(self._mx, my, dst=two_mx_my, scale=2.0)
        sxy -= two_mx_my  # contrast-structure numerator
        cv2.accumulateSquare(my, syy)
        np.subtract(self._vx_c2, syy, out=syy)  # contrast-structure denominator
        if self.method == "ssim":
            lum = two_mx_my
            lum += self._lum_k
            cv2.scaleAdd(my, 2.0 * float(self._shift), lum, dst=lum)  # luminance numerator
            np.subtract(self._mx, my, out=my)
            my *= my
            my += lum  # luminance denominator
            sxy *= lum
            syy *= my
        sxy /= syy
        return sxy

    def score(self, frame: np.ndarray) -> float:
        """Return the masked mean similarity of ``frame`` (2-D uint8, the reference's size)."""
        smap = self._similarity_map(frame)
        return self._masked_mean(smap)

    def _masked_mean(self, smap: np.ndarray) -> float:
        if self._weights is None:
            return float(cv2.mean(smap)[0])
        # Weights of 0 and 1 and a double-precision sum: 3x faster than cv2.mean with a mask.
        weighted = np.multiply(smap, self._weights, out=self._my)  # _my is free once the map is made
        return float(cv2.sumElems(weighted)[0]) / self._watched

    def compare(self, frame: np.ndarray, *, boxes: bool = True) -> Comparison:
        """Score ``frame`` and find the changed share and, unless ``boxes=False``, their boxes."""
        smap = self._similarity_map(frame)
        score = self._masked_mean(smap)
        low = self._low
        cv2.compare(smap, self.local_level, cv2.CMP_LT, dst=low)  # type: ignore[call-overload]
        if self._mask_u8 is not None:
            cv2.bitwise_and(low, self._mask_u8, dst=low)
        changed = cv2.countNonZero(low)
        found = self._boxes(low) if boxes and changed else []
        return Comparison(score=score, changed_fraction=changed / self._watched, boxes=found)

    def _boxes(self, low: np.ndarray) -> list[Box]:
        # Close small gaps so one object gives one box, not a scatter of pieces.
        closed = cv2.morphologyEx(low, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5)))
        count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
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
        smap = self._similarity_map(frame)
        work_h, work_w = self._work_size[1], self._work_size[0]
        full: np.ndarray = np.full((work_h, work_w), np.nan, np.float32)
        x0, y0 = self._origin
        full[y0 : y0 + smap.shape[0], x0 : x0 + smap.shape[1]] = smap
        if self.downscale > 1:
            full = cv2.resize(full, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_NEAREST)
        full[~self._full_mask] = np.nan
        return full
