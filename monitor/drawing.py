"""Pictures for people: frames with the watched area outlined and changes boxed."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["annotate", "put_label", "side_by_side"]

WATCHED = (0, 200, 255)  # amber outline of the watched area (BGR)
CHANGED = (0, 0, 255)  # red boxes around changed regions


def annotate(
    gray: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    boxes: Sequence[Sequence[int]] = (),
    label: str | None = None,
) -> np.ndarray:
    """Return a BGR copy of ``gray`` with the mask's outline, the boxes and a label drawn on."""
    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
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
    bgr = [cv2.cvtColor(i, cv2.COLOR_GRAY2BGR) if i.ndim == 2 else i for i in images]
    height = max(i.shape[0] for i in bgr)
    width = sum(i.shape[1] for i in bgr) + gap * (len(bgr) - 1)
    canvas = np.full((height, width, 3), 40, np.uint8)
    x = 0
    for image in bgr:
        canvas[: image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas
