"""Pictures for people: frames with the watched area outlined and changes boxed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "ZoneOutline",
    "annotate",
    "draw_zones",
    "panels",
    "put_label",
    "side_by_side",
    "zone_colour",
    "zone_contours",
]

WATCHED = (0, 200, 255)  # amber outline of the watched area (BGR)
CHANGED = (0, 0, 255)  # red boxes around changed regions
# One colour per zone, in config order (BGR); the first is the one-zone amber.
ZONE_COLOURS = (WATCHED, (255, 160, 0), (80, 200, 60), (230, 80, 230), (60, 220, 220), (200, 120, 255), (255, 255, 90))


def zone_colour(index: int) -> tuple[int, int, int]:
    """The colour of the zone at ``index`` in config order."""
    return ZONE_COLOURS[index % len(ZONE_COLOURS)]


@dataclass(frozen=True, slots=True)
class ZoneOutline:
    """A zone as drawn: its name (with a word such as its state), its mask, its colour, bold or not."""

    label: str
    mask: np.ndarray | None
    colour: tuple[int, int, int]
    bold: bool = False
    contours: Sequence[np.ndarray] | None = None  # the mask's outline, when already found (see zone_contours)


def draw_zones(image: np.ndarray, zones: Sequence[ZoneOutline]) -> None:
    """Outline each zone on BGR ``image`` in its colour, labelled at its top-left corner, in place.

    A zone without a mask (the whole frame) is outlined along the frame's edge.
    """
    thin = max(1, round(max(image.shape[:2]) / 400))
    scale = max(0.35, image.shape[0] / 900)
    for zone in zones:
        contours = zone.contours if zone.contours is not None else zone_contours(zone.mask, image.shape[:2])
        cv2.drawContours(image, contours, -1, zone.colour, thin * 3 if zone.bold else thin)
        x, y, _, _ = cv2.boundingRect(np.concatenate(contours))
        (w, h), base = cv2.getTextSize(zone.label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = min(max(x + 3, 0), max(image.shape[1] - w - 3, 0))
        y = min(max(y + 3, 0), max(image.shape[0] - h - base - 3, 0))
        cv2.rectangle(image, (x, y), (x + w + 4, y + h + base + 2), (0, 0, 0), -1)
        cv2.putText(image, zone.label, (x + 2, y + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, zone.colour, 1, cv2.LINE_AA)


def zone_contours(mask: np.ndarray | None, shape: tuple[int, ...]) -> Sequence[np.ndarray]:
    """The outline of ``mask`` (None: a frame of ``shape``) as :func:`draw_zones` draws it.

    Finding it costs about as much as encoding a frame: whoever draws the
    same mask on every frame finds it once and passes it in ``ZoneOutline.contours``.
    """
    if mask is None:
        mask = np.ones(shape[:2], bool)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return tuple(contours)


def annotate(
    gray: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    boxes: Sequence[Sequence[int]] = (),
    label: str | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Return a BGR copy of ``gray`` with the mask's outline, the boxes and a label drawn on.

    ``out``: a BGR array of ``gray``'s size to draw into instead of a new one,
    such as a place on a canvas from :func:`panels`.
    """
    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR, dst=out)
    thickness = max(1, round(max(gray.shape) / 400))
    if mask is not None:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, WATCHED, thickness)
    for x, y, w, h in boxes:
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), CHANGED, thickness + 1)
    if label:
        put_label(image, label)
    return image


def put_label(image: np.ndarray, text: str, *, origin: tuple[int, int] = (6, 6)) -> None:
    """Draw ``text`` in white on a dark band at ``origin`` (top-left corner), in place."""
    scale = max(0.4, image.shape[0] / 600)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x - 3, y - 3), (x + w + 3, y + h + base + 3), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def side_by_side(images: Sequence[np.ndarray], *, gap: int = 4) -> np.ndarray:
    """Place BGR or gray images of equal height left to right on one canvas."""
    canvas, places = panels([image.shape[:2] for image in images], gap=gap)
    for image, place in zip(images, places, strict=True):
        if image.ndim == 2:
            cv2.cvtColor(image, cv2.COLOR_GRAY2BGR, dst=place)
        else:
            place[...] = image
    return canvas


def panels(sizes: Sequence[tuple[int, int]], *, gap: int = 4) -> tuple[np.ndarray, list[np.ndarray]]:
    """A dark BGR canvas for pictures of these ``(height, width)`` left to right, and a view of each place.

    Drawing straight into the places (``annotate(..., out=place)``) composes
    a picture without a full-size copy of each part: at 1280x720 each would
    be 2.8 MB.
    """
    height = max(size[0] for size in sizes)
    width = sum(size[1] for size in sizes) + gap * (len(sizes) - 1)
    canvas = np.full((height, width, 3), 40, np.uint8)
    places = []
    x = 0
    for size_h, size_w in sizes:
        places.append(canvas[:size_h, x : x + size_w])
        x += size_w + gap
    return canvas, places
