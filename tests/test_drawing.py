"""Pictures for people: annotated frames, composed side by side."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from monitor.drawing import CHANGED, annotate, panels, side_by_side


def photo() -> np.ndarray:
    return cv2.resize(data.camera(), (320, 240), interpolation=cv2.INTER_AREA)


def test_panels_are_places_on_one_canvas() -> None:
    canvas, (left, right) = panels([(240, 320), (200, 100)], gap=4)
    assert canvas.shape == (240, 424, 3)
    assert left.shape == (240, 320, 3) and right.shape == (200, 100, 3)
    right[...] = 7
    assert (canvas[:200, 324:] == 7).all()
    assert (canvas[:, 320:324] == 40).all()  # the gap keeps the dark background
    assert (canvas[200:, 324:] == 40).all()  # so does the space below a shorter panel


def test_annotate_draws_into_its_place_on_the_canvas() -> None:
    gray = photo()
    canvas, (_, right) = panels([gray.shape, gray.shape])
    drawn = annotate(gray, boxes=[(100, 80, 50, 40)], label="frame 7", out=right)
    assert np.shares_memory(drawn, canvas)
    # The same picture as annotating into a new array, placed on the right.
    np.testing.assert_array_equal(canvas[:, 324:], annotate(gray, boxes=[(100, 80, 50, 40)], label="frame 7"))
    assert tuple(canvas[120, 324 + 100]) == CHANGED  # the box's left edge
    assert (canvas[:, :320] == 40).all()  # the left place untouched


def test_side_by_side_places_gray_and_colour_pictures() -> None:
    gray = photo()
    colour = annotate(gray, boxes=[(10, 10, 30, 30)])
    canvas = side_by_side([gray, colour])
    assert canvas.shape == (240, 644, 3)
    np.testing.assert_array_equal(canvas[:, :320], cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    np.testing.assert_array_equal(canvas[:, 324:], colour)
