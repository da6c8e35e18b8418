"""Pictures for people: frames with the watched area outlined and changes boxed."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["annotate", "panels", "put_label", "side_by_side"]

WATCHED = (0, 200, 255)  # amber outline of the watched area (BGR)
CHANGED = (0, 0, 255)  # red boxes around changed regions


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
