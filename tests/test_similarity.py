"""The comparator against scikit-image's reference implementation, on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage import data
from skimage.metrics import structural_similarity

from monitor.exc import ComparisonError
from monitor.similarity import Comparator, mse

TOLERANCE = 1e-4


def skimage_map(ref: np.ndarray, frame: np.ndarray) -> np.ndarray:
    _, full = structural_similarity(
        ref, frame, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True
    )
    return full


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def pasted(image: np.ndarray, x: int, y: int) -> np.ndarray:
    """The photo with a real object (the coffee cup) pasted at (x, y)."""
    cup = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)[100:220, 150:300]
    out = image.copy()
    h, w = cup.shape
    out[y : y + h, x : x + w] = cup[: out.shape[0] - y, : out.shape[1] - x]
    return out


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def brighter(image: np.ndarray, offset: int) -> np.ndarray:
    return np.clip(image.astype(np.int16) + offset, 0, 255).astype(np.uint8)


def polygon_mask(shape: tuple[int, int], points: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return mask.astype(bool)


CHANGES = {
    "noise": lambda img: noisy(img, 10),
    "shift": lambda img: shifted(img, 3, -2),
    "pasted object": lambda img: pasted(img, 200, 150),
    "pasted at the corner": lambda img: pasted(img, 400, 420),
    "brighter": lambda img: brighter(img, 40),
    "darker": lambda img: brighter(img, -60),
}


def masks_for(shape: tuple[int, int]) -> dict[str, np.ndarray | None]:
    h, w = shape
    left = np.zeros(shape, bool)
    left[:, : w // 2] = True
    corner = np.zeros(shape, bool)
    corner[h - 60 :, w - 80 :] = True
    ring = np.zeros(shape, bool)
    cv2.circle(ring.view(np.uint8), (w // 2, h // 2), 150, 1, -1)
    cv2.circle(ring.view(np.uint8), (w // 2, h // 2), 60, 0, -1)
    return {
        "whole frame": None,
        "left half (touches three borders)": left,
        "bottom-right corner": corner,
        "ring with a hole": ring,
        "triangle": polygon_mask(shape, [(10, 10), (w - 20, 40), (w // 3, h - 5)]),
        "single pixel at the edge": _single(shape, 0, w - 1),
    }


def _single(shape: tuple[int, int], y: int, x: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y, x] = True
    return mask


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("mask_name", list(masks_for((512, 512))))
def test_score_matches_skimage_masked_mean(photo: np.ndarray, change: str, mask_name: str) -> None:
    frame = CHANGES[change](photo)
    mask = masks_for(photo.shape)[mask_name]
    expected_map = skimage_map(photo, frame)
    expected = expected_map.mean() if mask is None else expected_map[mask].mean()
    assert Comparator(photo, mask=mask).score(frame) == pytest.approx(expected, abs=TOLERANCE)


def test_colour_reference_is_converted_like_bgr2gray() -> None:
    colour = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    frame = noisy(gray, 12)
    expected = skimage_map(gray, frame).mean()
    assert Comparator(colour).score(frame) == pytest.approx(expected, abs=TOLERANCE)


def test_non_square_frame_matches_skimage() -> None:
    reference = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)  # 600x400
    frame = pasted(noisy(reference, 5), 350, 250)
    assert Comparator(reference).score(frame) == pytest.approx(skimage_map(reference, frame).mean(), abs=TOLERANCE)


def test_pasted_object_scores_lower_than_sensor_noise(photo: np.ndarray) -> None:
    watched = np.zeros(photo.shape, bool)
    watched[100:320, 150:400] = True  # the region the cup lands in
    comparator = Comparator(photo, mask=watched)
    assert comparator.score(pasted(photo, 200, 150)) < comparator.score(noisy(photo, 3)) - 0.1


def test_change_outside_the_mask_is_ignored(photo: np.ndarray) -> None:
    mask = np.zeros(photo.shape, bool)
    mask[:200, :200] = True
    frame = pasted(photo, 300, 300)  # the cup lands far from the watched square
    assert Comparator(photo, mask=mask).score(frame) == pytest.approx(1.0, abs=1e-5)
    assert Comparator(photo).score(frame) < 0.97


def test_structure_method_shrugs_off_brightness_that_ssim_sees(photo: np.ndarray) -> None:
    frame = brighter(photo, 50)
    ssim = Comparator(photo, method="ssim").score(frame)
    structure = Comparator(photo, method="ssim-structure").score(frame)
    assert structure > 0.97
    assert ssim < structure - 0.03
    # ...but it still sees an object.
    assert Comparator(photo, method="ssim-structure").score(pasted(photo, 200, 150)) < 0.95


def test_structure_method_is_the_contrast_structure_factor(photo: np.ndarray) -> None:
    frame = pasted(noisy(photo, 6), 100, 100)
    x, y = photo.astype(np.float64), frame.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - ux * ux, blur(y * y) - uy * uy, blur(x * y) - ux * uy
    c2 = (0.03 * 255) ** 2
    expected = ((2 * vxy + c2) / (vx + vy + c2)).mean()
    assert Comparator(photo, method="ssim-structure").score(frame) == pytest.approx(expected, abs=TOLERANCE)


def test_compare_boxes_the_pasted_object(photo: np.ndarray) -> None:
    frame = pasted(photo, 200, 150)  # a 150x120 cup at (200, 150)
    result = Comparator(photo).compare(frame)
    assert result.boxes, "expected at least one box"
    x, y, w, h = result.boxes[0]
    # The largest box overlaps the pasted area and is about its size.
    assert x < 350 and x + w > 200 and y < 270 and y + h > 150
    assert 0.5 < (w * h) / (150 * 120) < 2.0
    assert 0.02 < result.changed_fraction < 0.2


def test_compare_of_identical_images_finds_nothing(photo: np.ndarray) -> None:
    result = Comparator(photo).compare(photo)
    assert result.score == pytest.approx(1.0, abs=1e-5)
    assert result.changed_fraction == 0.0
    assert result.boxes == []


def test_boxes_of_last_are_the_boxes_compare_would_find(photo: np.ndarray) -> None:
    frame = pasted(photo, 200, 150)
    comparator = Comparator(photo)
    expected = Comparator(photo).compare(frame).boxes
    assert comparator.compare(frame, boxes=False).boxes == []
    assert comparator.boxes_of_last() == expected
    assert comparator.boxes_of_last() == expected  # asking again finds the same
    assert comparator.compare(photo, boxes=False).changed_fraction == 0.0
    assert comparator.boxes_of_last() == []


def test_boxes_of_last_refuses_after_another_frame(photo: np.ndarray) -> None:
    comparator = Comparator(photo)
    with pytest.raises(ComparisonError, match="compare"):
        comparator.boxes_of_last()
    comparator.compare(pasted(photo, 200, 150), boxes=False)
    comparator.score(photo)
    with pytest.raises(ComparisonError, match="compare"):
        comparator.boxes_of_last()


@pytest.mark.parametrize("mask_name", ["whole frame", "ring with a hole", "bottom-right corner"])
def test_large_frames_filtered_in_strips_give_the_same_map(
    photo: np.ndarray, mask_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask = masks_for(photo.shape)[mask_name]
    frame = pasted(noisy(photo, 5), 200, 150)
    whole = Comparator(photo, mask=mask)
    monkeypatch.setattr(Comparator, "STRIP_PIXELS", 512 * 37)  # strips of 37 rows or so, 5 of context
    strips = Comparator(photo, mask=mask)
    np.testing.assert_array_equal(strips.similarity_map(frame), whole.similarity_map(frame))
    # The same map, summed strip by strip: on arm64 NumPy's sums differ from the whole frame's by 2e-12.
    assert strips.score(frame) == pytest.approx(whole.score(frame), abs=1e-9)
    expected = whole.compare(frame)
    result = strips.compare(frame)
    assert result.score == pytest.approx(expected.score, abs=1e-9)
    assert (result.changed_fraction, result.boxes) == (expected.changed_fraction, expected.boxes)
    strips.set_reference(frame)
    assert strips.score(frame) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("before", "after"), [(70, 255), (250, 3), (128, 128)])
def test_flat_frame_far_from_a_flat_reference_matches_skimage(before: int, after: int) -> None:
    # A light switched on over a blank wall: the frame's variance must not drown in float32 rounding.
    reference, frame = np.full((40, 56), before, np.uint8), np.full((40, 56), after, np.uint8)
    assert Comparator(reference).score(frame) == pytest.approx(skimage_map(reference, frame).mean(), abs=1e-6)
    assert Comparator(frame).score(reference) == pytest.approx(skimage_map(frame, reference).mean(), abs=1e-6)


def test_boxes_are_in_frame_pixels_with_a_mask(photo: np.ndarray) -> None:
    mask = np.zeros(photo.shape, bool)
    mask[300:, 300:] = True
    result = Comparator(photo, mask=mask).compare(pasted(photo, 350, 350))
    x, y, w, h = result.boxes[0]
    assert x >= 300 and y >= 300 and x + w <= 512 and y + h <= 512


def test_set_reference_recomputes_statistics(photo: np.ndarray) -> None:
    frame = pasted(photo, 200, 150)
    comparator = Comparator(photo)
    assert comparator.score(frame) < 0.95
    comparator.set_reference(frame)
    assert comparator.score(frame) == pytest.approx(1.0, abs=1e-5)


def test_downscale_keeps_the_ranking(photo: np.ndarray) -> None:
    watched = np.zeros(photo.shape, bool)
    watched[100:320, 150:400] = True
    small = Comparator(photo, mask=watched, downscale=2)
    assert small.score(photo) == pytest.approx(1.0, abs=1e-5)
    assert small.score(pasted(photo, 200, 150)) < small.score(noisy(photo, 3)) - 0.1
    x, y, w, h = small.compare(pasted(photo, 200, 150)).boxes[0]
    assert x < 350 and x + w > 200 and y < 270 and y + h > 150


def test_similarity_map_is_nan_outside_the_mask(photo: np.ndarray) -> None:
    mask = masks_for(photo.shape)["triangle"]
    frame = noisy(photo, 8)
    smap = Comparator(photo, mask=mask).similarity_map(frame)
    assert smap.shape == photo.shape
    assert np.isnan(smap[~mask]).all()
    np.testing.assert_allclose(smap[mask], skimage_map(photo, frame)[mask], atol=1e-3)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((100, 100), np.uint8), "frame is 100x100, expected the reference size 512x512"),
        (np.zeros((512, 512, 3), np.uint8), "expected a 2-D grayscale frame"),
        (np.zeros((512, 512), np.float32), "expected a uint8 frame"),
    ],
)
def test_bad_frames_say_what_was_expected(photo: np.ndarray, frame: np.ndarray, message: str) -> None:
    with pytest.raises(ComparisonError, match=message):
        Comparator(photo).score(frame)


def test_empty_mask_is_refused(photo: np.ndarray) -> None:
    with pytest.raises(ComparisonError, match="mask watches no pixel"):
        Comparator(photo, mask=np.zeros(photo.shape, bool))


def test_mask_of_another_size_is_refused(photo: np.ndarray) -> None:
    with pytest.raises(ComparisonError, match="expected the reference size 512x512"):
        Comparator(photo, mask=np.ones((10, 10), bool))


def test_mse_over_the_mask() -> None:
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    b[:10] = 10
    mask = np.zeros(a.shape, bool)
    mask[:10] = True
    assert mse(a, b) == 50.0
    assert mse(a, b, mask) == 100.0


# -- properties ---------------------------------------------------------------

images = arrays(np.uint8, st.tuples(st.integers(11, 40), st.integers(11, 40)))


@settings(max_examples=60, deadline=None)
@given(image=images)
def test_identical_images_score_one(image: np.ndarray) -> None:
    assert Comparator(image).score(image) == pytest.approx(1.0, abs=1e-4)
    assert Comparator(image, method="ssim-structure").score(image) == pytest.approx(1.0, abs=1e-4)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_score_is_symmetric_and_matches_skimage(data: st.DataObject) -> None:
    a = data.draw(images)
    b = data.draw(arrays(np.uint8, a.shape))
    ab, ba = Comparator(a).score(b), Comparator(b).score(a)
    assert ab == pytest.approx(ba, abs=1e-4)
    assert ab == pytest.approx(skimage_map(a, b).mean(), abs=TOLERANCE)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_masked_score_is_the_mean_over_the_mask(data: st.DataObject) -> None:
    a = data.draw(images)
    b = data.draw(arrays(np.uint8, a.shape))
    mask = data.draw(arrays(np.bool_, a.shape).filter(lambda m: m.any()))
    expected = skimage_map(a, b)[mask].mean()
    assert Comparator(a, mask=mask).score(b) == pytest.approx(expected, abs=TOLERANCE)


# --- zones: one pass over several masks, several references over one mask ---------------------


@pytest.mark.parametrize("method", ["ssim", "ssim-structure"])
def test_each_zone_of_a_shared_pass_scores_what_its_own_comparator_scores(photo: np.ndarray, method: str) -> None:
    frame = noisy(pasted(photo, 200, 150), 6)
    zones = [mask for mask in masks_for(photo.shape).values() if mask is not None]
    shared = Comparator(photo, zones=zones, method=method).compare_zones(frame)
    for index, (zone, result) in enumerate(zip(zones, shared, strict=True)):
        alone = Comparator(photo, mask=zone, method=method).compare(frame)
        # Each zone's box is a part of the shared crop, whose frame mean differs: float32 rounding only.
        assert result.score == pytest.approx(alone.score, abs=1e-5), index
        assert result.changed_pixels == pytest.approx(alone.changed_pixels, abs=2), index


def test_a_zone_of_a_shared_pass_boxes_only_its_own_change(photo: np.ndarray) -> None:
    left, right = np.zeros(photo.shape, bool), np.zeros(photo.shape, bool)
    left[:, :250] = True
    right[:, 260:] = True
    comparator = Comparator(photo, zones=[left, right])
    first, second = comparator.compare_zones(pasted(photo, 300, 200))  # the cup lies in the right zone only
    assert first.changed_pixels == 0 and comparator.boxes_of_last(0) == []
    [(x, y, w, h)] = comparator.boxes_of_last(1)[:1]
    assert 280 <= x <= 310 and 180 <= y <= 210 and w > 100 and h > 80
    assert first.score > 0.99 > 0.9 > second.score


def test_each_reference_of_a_state_comparator_scores_as_a_comparator_of_its_own(photo: np.ndarray) -> None:
    mask = masks_for(photo.shape)["triangle"]
    references = [photo, pasted(photo, 120, 100), shifted(photo, 4, 1), brighter(photo, 30)]
    frame = noisy(pasted(photo, 120, 100), 4)
    for method in ("ssim", "ssim-structure"):
        states = Comparator.of_states(references, mask=mask, method=method).compare_references(frame)
        alone = [Comparator(reference, mask=mask, method=method).score(frame) for reference in references]
        assert states == pytest.approx(alone, abs=1e-6)
        assert int(np.argmax(states)) == 1  # the cup's picture matches the frame with the cup


def test_zones_and_references_must_fit_the_frame(photo: np.ndarray) -> None:
    small = np.ones((10, 10), bool)
    with pytest.raises(ComparisonError, match=r"zone 1's mask is \(10, 10\), expected the reference size 512x512"):
        Comparator(photo, zones=[None, small])
    with pytest.raises(ComparisonError, match="references differ in size: 512x512 and 256x256"):
        Comparator.of_states([photo, photo[:256, :256].copy()])


def test_scores_agree_with_another_machine() -> None:
    """The scores of tests/score_cases.py here equal another machine's (x86 against arm64's NEON code)."""
    import json
    import os
    from pathlib import Path

    from tests.score_cases import score_cases

    path = os.environ.get("MONITOR_SCORES_FROM")
    if not path:
        pytest.skip("MONITOR_SCORES_FROM names no other machine's scores (make test-arm64 sets it)")
    theirs = json.loads(Path(path).read_text())
    ours = score_cases()
    assert sorted(ours) == sorted(theirs["scores"])
    worst = max(ours, key=lambda key: abs(ours[key] - theirs["scores"][key]))
    difference = abs(ours[worst] - theirs["scores"][worst])
    assert difference <= 1e-4, f"{worst}: {ours[worst]} here, {theirs['scores'][worst]} on {theirs['machine']}"
