"""The watched region built from polygons, exclusions and a mask image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import MaskConfig
from monitor.exc import ConfigError
from monitor.mask import build_mask


def test_no_mask_means_the_whole_frame() -> None:
    assert build_mask(MaskConfig(), width=64, height=48) is None


def test_include_minus_exclude() -> None:
    config = MaskConfig(
        include=[[(0, 0), (40, 0), (40, 40), (0, 40)]],
        exclude=[[(10, 10), (20, 10), (20, 20), (10, 20)]],
    )
    mask = build_mask(config, width=64, height=48)
    assert mask is not None and mask.shape == (48, 64)
    assert mask[5, 5] and mask[30, 30]
    assert not mask[15, 15]  # cut out
    assert not mask[45, 60]  # never included


def test_fraction_units_scale_with_the_frame() -> None:
    config = MaskConfig(units="fraction", include=[[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]])
    small = build_mask(config, width=64, height=48)
    large = build_mask(config, width=640, height=480)
    assert small is not None and large is not None
    assert small[:, 40:].all() and not small[:, :30].any()
    assert abs(large.mean() - 0.5) < 0.01
    assert abs(small.mean() - large.mean()) < 0.03


def test_exclusions_alone_watch_the_rest() -> None:
    mask = build_mask(MaskConfig(exclude=[[(0, 0), (32, 0), (32, 48), (0, 48)]]), width=64, height=48)
    assert mask is not None and mask[:, 40:].all() and not mask[:, :30].any()


def test_mask_image_combines_with_polygons(tmp_path: Path) -> None:
    image = np.zeros((48, 64), np.uint8)
    image[:, :32] = 255
    cv2.imwrite(str(tmp_path / "m.png"), image)
    config = MaskConfig(image=tmp_path / "m.png", include=[[(0, 0), (64, 0), (64, 24), (0, 24)]])
    mask = build_mask(config, width=64, height=48)
    assert mask is not None
    assert mask[:20, :30].all() and not mask[:20, 40:].any() and not mask[30:].any()


def test_mask_image_of_the_wrong_size(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ConfigError, match=r"mask.image: .*m\.png: is 10x10, expected the frame size 64x48"):
        build_mask(MaskConfig(image=tmp_path / "m.png"), width=64, height=48)


def test_missing_mask_image(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mask.image: .*gone\.png: no such file"):
        build_mask(MaskConfig(image=tmp_path / "gone.png"), width=64, height=48)
