"""Pictures that answer set-up questions: is my mask where I think it is, how wide is my margin?

:func:`show_picture` (``monitor show``) puts three panels side by side: the
reference with the include and exclude polygons drawn and numbered, a frame
with the watched outline and its score, and the local similarity map as a heat
view (blue = like the reference, red = changed, grey outside the mask).
:func:`score_plot` (``monitor tune --plot``) draws scores over time with both
thresholds. Both return BGR arrays; drawn with OpenCV, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import cv2
import numpy as np

from monitor.drawing import WATCHED, ZoneOutline, annotate, draw_zones, put_label, side_by_side

__all__ = ["heat_view", "score_plot", "show_picture"]

INCLUDE = (80, 200, 60)  # green include polygons (BGR)
EXCLUDE = (60, 60, 230)  # red exclude polygons
THRESHOLD = (40, 40, 220)
CLEAR = WATCHED
SCORE = (200, 120, 20)


def show_picture(
    reference: np.ndarray,
    frame: np.ndarray,
    similarity: np.ndarray,
    *,
    include: Sequence[np.ndarray] = (),
    exclude: Sequence[np.ndarray] = (),
    mask: np.ndarray | None = None,
    score: float | None = None,
    frame_label: str = "frame",
    include_labels: Sequence[str] | None = None,
    exclude_labels: Sequence[str] | None = None,
    zones: Sequence[ZoneOutline] = (),
) -> np.ndarray:
    """Reference with numbered polygons | frame with outline and score | heat view, one BGR picture.

    ``include``/``exclude``: int (N, 2) pixel polygons (``mask.polygons_in_pixels``),
    labelled 1, 2, ... and x1, x2, ... unless ``include_labels``/``exclude_labels``
    name them. ``similarity``: the full-size local map, NaN outside the watched
    pixels (``Comparator.similarity_map``). ``zones``: outlines to draw on the
    frame, labelled, instead of the plain outline of ``mask``.
    """
    left = annotate(reference)
    _fitting_label(left, f"reference: {len(include)} include, {len(exclude)} exclude", "reference")
    thickness = max(1, round(max(reference.shape) / 320))
    for group, names, colour, prefix in (
        (include, include_labels, INCLUDE, ""),
        (exclude, exclude_labels, EXCLUDE, "x"),
    ):
        for number, polygon in enumerate(group, start=1):
            cv2.polylines(left, [polygon.reshape(-1, 1, 2)], True, colour, thickness, cv2.LINE_AA)
            # Include numbers in a corner, exclude numbers in the middle: exclusions
            # usually sit inside an include polygon, and the labels must not cover each other.
            text = names[number - 1] if names is not None else f"{prefix}{number}"
            _number(left, text, polygon, colour, corner=not prefix)
    middle = annotate(frame, mask=None if zones else mask)
    draw_zones(middle, zones)
    scored = "" if score is None else f"  score {score:.4f}"
    _fitting_label(middle, frame_label + scored, ("frame" + scored) if scored else "frame")
    right = heat_view(similarity, background=reference, mask=mask)
    return side_by_side([left, middle, right])


def heat_view(similarity: np.ndarray, *, background: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The local similarity map in colour (1 blue ... 0 or less red), the dimmed background where NaN."""
    watched = np.isfinite(similarity)
    level = np.clip(np.nan_to_num(similarity, nan=1.0), 0.0, 1.0)
    heat = cv2.applyColorMap(((1.0 - level) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    dimmed = cv2.cvtColor((background // 3).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    picture = np.where(watched[:, :, None], heat, dimmed)
    if mask is not None:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, (255, 255, 255), 1)
    _fitting_label(picture, "local SSIM: blue = same, red = changed", "local SSIM")
    return picture


def _fitting_label(image: np.ndarray, text: str, short: str) -> None:
    """Label ``image`` with ``text``, or with ``short`` where ``text`` would run off a small frame."""
    scale = max(0.4, image.shape[0] / 600)  # as put_label draws it
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    put_label(image, text if width + 12 <= image.shape[1] else short)


def _number(image: np.ndarray, text: str, polygon: np.ndarray, colour: tuple[int, int, int], *, corner: bool) -> None:
    """Write ``text`` near the polygon's top-left corner or at its centre, in its colour on a dark patch."""
    scale = max(0.5, image.shape[0] / 400)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    points = np.asarray(polygon, np.float64)
    cx, cy = centre = points.mean(axis=0)
    if corner:  # a quarter of the way from the top-left vertex to the centre
        top_left = points[np.argmin(points.sum(axis=1))]
        cx, cy = top_left + 0.25 * (centre - top_left)
    x = int(np.clip(cx - w / 2, 0, image.shape[1] - w))
    y = int(np.clip(cy + h / 2, h, image.shape[0] - base))
    cv2.rectangle(image, (x - 3, y - h - 3), (x + w + 3, y + base + 1), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)


def score_plot(
    scores: Sequence[float] | np.ndarray,
    *,
    threshold: float,
    clear_threshold: float,
    width: int = 900,
    height: int = 360,
    title: str = "score per frame",
) -> np.ndarray:
    """Scores over frames as a line, with ``threshold`` and ``clear_threshold`` drawn across.

    Frames under ``threshold`` are marked red, so the margin left to the
    unchanged frames is visible at a glance.
    """
    values = np.asarray(scores, dtype=np.float64)
    finite = values[np.isfinite(values)]
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 64, 150, 34, 34  # the thresholds are named in the right margin
    plot_w, plot_h = width - left - right, height - top - bottom
    low = min(threshold, float(finite.min(initial=1.0)))
    high = max(clear_threshold, float(finite.max(initial=0.0)))
    pad = max((high - low) * 0.08, 0.002)
    low, high = low - pad, high + pad

    def y_of(value: float) -> int:
        return round(top + (high - value) / (high - low) * plot_h)

    def x_of(index: float) -> int:
        return round(left + index / max(len(values) - 1, 1) * plot_w)

    font, small = cv2.FONT_HERSHEY_SIMPLEX, 0.42
    for tick in np.linspace(low + pad, high - pad, 5):
        y = y_of(float(tick))
        cv2.line(image, (left, y), (left + plot_w, y), (225, 225, 225), 1)
        cv2.putText(image, f"{tick:.3f}", (4, y + 4), font, small, (90, 90, 90), 1, cv2.LINE_AA)
    for tick in range(0, len(values), _tick_step(len(values))):
        x = x_of(tick)
        cv2.line(image, (x, top + plot_h), (x, top + plot_h + 4), (90, 90, 90), 1)
        cv2.putText(image, str(tick), (x - 8, height - 10), font, small, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (150, 150, 150), 1)

    for value, colour, name in ((clear_threshold, CLEAR, "clear_threshold"), (threshold, THRESHOLD, "threshold")):
        y = y_of(value)
        cv2.line(image, (left, y), (left + plot_w, y), colour, 2, cv2.LINE_AA)
        # Close thresholds would print their names on top of each other: clear above, threshold below.
        offset = -3 if name == "clear_threshold" else 11
        cv2.putText(image, f"{name} {value:.3f}", (left + plot_w + 6, y + offset), font, small, colour, 1, cv2.LINE_AA)

    points = [(x_of(i), y_of(float(v))) for i, v in enumerate(values) if np.isfinite(v)]
    if len(points) > 1:
        cv2.polylines(image, [np.array(points, np.int32).reshape(-1, 1, 2)], False, SCORE, 1, cv2.LINE_AA)
    for (x, y), value in zip(points, finite, strict=True):
        if value < threshold:
            cv2.circle(image, (x, y), 2, THRESHOLD, -1, cv2.LINE_AA)
    cv2.putText(image, f"{title} ({len(values)} frames)", (left, 22), font, 0.55, (40, 40, 40), 1, cv2.LINE_AA)
    return image


def _tick_step(count: int) -> int:
    """A round frame-number step (1, 2, 5, 10, 20, 50, ...) giving at most about 8 ticks."""
    step = 1
    for factor in itertools.cycle((2, 2.5, 2)):
        if count / step <= 8:
            break
        step = int(step * factor)
    return step
