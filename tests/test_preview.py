"""``monitor show``: is the mask where I think it is? And fractional masks across resolutions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import MaskConfig
from monitor.mask import build_mask, polygons_in_pixels
from monitor.preview import EXCLUDE, INCLUDE, show_picture
from monitor.similarity import Comparator
from tests.scenes import write_clip

W, H = 320, 240
GAP = 4  # drawing.side_by_side's gap between panels
CUP = (slice(100, 160), slice(200, 270))  # inside include polygon 1, rows then columns


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A real photo as the reference, and the same with a real cup in the watched area."""
    from skimage import data

    reference = cv2.resize(data.camera(), (W, H), interpolation=cv2.INTER_AREA)
    cup = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)[60:300, 150:420]
    frame = reference.copy()
    frame[CUP] = cv2.resize(cup, (70, 60), interpolation=cv2.INTER_AREA)
    return reference, frame


CONFIG = f"""
source: {{kind: opencv, device: clip.avi, width: {W}, height: {H}}}
reference: reference.png
mask:
  include: [[[180, 60], [310, 60], [310, 200], [180, 200]], [[10, 150], [120, 150], [60, 230]]]
  exclude: [[[280, 70], [305, 70], [305, 95], [280, 95]]]
gpio: {{pin: null}}
"""


def panels(picture: np.ndarray, width: int = W) -> list[np.ndarray]:
    return [picture[:, i * (width + GAP) : i * (width + GAP) + width] for i in range(3)]


def colour_count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    """Pixels close to ``colour`` (the lines are antialiased) in a grey picture."""
    near = np.abs(image.astype(int) - np.array(colour)).max(axis=2) < 40
    return int(near.sum())


def test_show_draws_the_polygons_the_frame_and_where_it_changed(tmp_path: Path) -> None:
    reference, frame = scene()
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    (tmp_path / "config.yaml").write_text(CONFIG)
    result = run("show", "config.yaml", "--frame", "frame.png", "--out", "preview.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote preview.png" in result.stdout and "2 include and 1 exclude" in result.stdout
    picture = cv2.imread(str(tmp_path / "preview.png"))
    assert picture is not None and picture.shape == (H, 3 * W + 2 * GAP, 3)
    left, middle, right = panels(picture)

    # Left: the reference, with the include polygons in green and the exclusion in red.
    assert colour_count(left, INCLUDE) > 300 and colour_count(left, EXCLUDE) > 50
    assert np.array_equal(left[215:235, 200:300, 0], reference[215:235, 200:300])  # untouched elsewhere

    # Middle: the frame itself, cup included.
    assert np.array_equal(middle[CUP][:, :, 1], frame[CUP])

    # Right: red where the cup is, blue where the watched scene is as it was, grey outside the mask.
    b, g, r = (right[:, :, i].astype(int) for i in range(3))
    cup_rows, cup_cols = CUP
    red = (r > 150) & (b < 100)
    blue = (b > 100) & (g < 100) & (r < 60)
    assert red[cup_rows, cup_cols].mean() > 0.5
    assert blue[170:195, 185:200].mean() > 0.9  # watched, unchanged
    assert not blue[80:95, 285:300].any()  # the excluded square
    grey = (b == g) & (g == r)
    assert grey[30:50, 20:150].all()  # never watched: the dimmed reference
    assert (right[30:50, 20:150, 0] <= reference[30:50, 20:150] // 3 + 1).all()


def test_show_takes_a_frame_from_the_configured_source(tmp_path: Path) -> None:
    clip = write_clip(tmp_path, frames=3, changed=[])
    (tmp_path / "config.yaml").write_text(
        "source: {kind: opencv, device: clip.avi, width: 160, height: 120}\nreference: reference.png\n"
        "mask: {units: fraction, include: [[[0.5, 0], [1, 0], [1, 1], [0.5, 1]]]}\ngpio: {pin: null}\n"
    )
    assert clip.reference.name == "reference.png"
    result = run("show", tmp_path / "config.yaml", "--out", tmp_path / "p.png")
    assert result.returncode == 0, result.stderr
    assert "current frame" in result.stdout
    picture = cv2.imread(str(tmp_path / "p.png"))
    assert picture.shape == (120, 3 * 160 + 2 * GAP, 3)
    right = panels(picture, 160)[2]
    blue = (right[:, :, 0] > 100) & (right[:, :, 1] < 100) & (right[:, :, 2] < 60)
    assert blue[30:110, 90:150].mean() > 0.95  # the same scene: blue all over the watched half
    assert not blue[30:110, :70].any()


def test_show_with_a_frame_of_another_size_is_one_error_line(tmp_path: Path) -> None:
    reference, _ = scene()
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    cv2.imwrite(str(tmp_path / "small.png"), reference[:100, :100])
    (tmp_path / "config.yaml").write_text(CONFIG)
    result = run("show", "config.yaml", "--frame", "small.png", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "monitor: error: small.png: is 100x100, expected the frame size 320x240"
    ]
    assert not (tmp_path / "preview.png").exists()


FRACTION = MaskConfig(
    units="fraction",
    include=[[(0.55, 0.25), (0.95, 0.25), (0.95, 0.85), (0.55, 0.85)]],
    exclude=[[(0.8, 0.3), (0.9, 0.3), (0.9, 0.45)]],
)


@pytest.mark.parametrize("size", [(640, 480), (320, 240)])
def test_a_fractional_mask_watches_the_same_part_at_any_resolution(size: tuple[int, int]) -> None:
    width, height = size
    mask = build_mask(FRACTION, width=width, height=height)
    assert mask is not None and mask.shape == (height, width)
    # The same share of the frame, at the same place as at 640x480 scaled down.
    large = build_mask(FRACTION, width=640, height=480)
    assert large is not None
    scaled = cv2.resize(large.astype(np.uint8), (width, height), interpolation=cv2.INTER_AREA) > 0
    agreement = (scaled == mask).mean()
    assert agreement > 0.99
    # And it watches the same thing in the picture: a cup there drops the score, one elsewhere does not.
    reference, frame = scene()  # the cup is at x 200-270, y 100-160 of 320x240: inside the fraction
    reference = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    comparator = Comparator(reference, mask=mask)
    assert comparator.score(cv2.resize(frame, size, interpolation=cv2.INTER_AREA)) < 0.85
    elsewhere = cv2.resize(np.fliplr(frame).copy(), size, interpolation=cv2.INTER_AREA)
    flipped_reference = cv2.resize(np.fliplr(scene()[0]).copy(), size, interpolation=cv2.INTER_AREA)
    assert Comparator(flipped_reference, mask=mask).score(elsewhere) > 0.999
    # The preview draws the polygons at the same place too.
    include = polygons_in_pixels(FRACTION.include, units="fraction", width=width, height=height)
    assert include[0].tolist() == [[round(x * width), round(y * height)] for x, y in FRACTION.include[0]]


def test_show_picture_numbers_each_polygon() -> None:
    reference, frame = scene()
    mask = build_mask(FRACTION, width=W, height=H)
    assert mask is not None
    comparator = Comparator(reference, mask=mask)
    include = polygons_in_pixels(FRACTION.include, units="fraction", width=W, height=H)
    exclude = polygons_in_pixels(FRACTION.exclude, units="fraction", width=W, height=H)
    with_numbers = show_picture(
        reference, frame, comparator.similarity_map(frame), include=include, exclude=exclude, mask=mask
    )
    without = show_picture(reference, frame, comparator.similarity_map(frame), mask=mask)
    left_with, left_without = panels(with_numbers)[0], panels(without)[0]
    # The numbers sit on dark patches: near the include's top-left corner and in the exclusion.
    differs = np.any(left_with != left_without, axis=2)
    assert differs[80:110, 180:215].sum() > 100  # "1" a quarter of the way in from (176, 60)
    assert differs[75:100, 260:295].sum() > 50  # "x1" at the exclusion's centre
    assert np.array_equal(panels(with_numbers)[2], panels(without)[2])
