"""The watched region as a boolean array, built from the config's polygons and image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from monitor.config import Config, MaskConfig, ZoneConfig, area_in_pixels
from monitor.exc import ConfigError
from monitor.images import ImageFileError, read_gray

__all__ = ["build_mask", "polygons_in_pixels", "zone_masks"]

Polygon = Sequence[tuple[float, float]]


def polygons_in_pixels(polygons: Sequence[Polygon], *, units: str, width: int, height: int) -> list[np.ndarray]:
    """Return each polygon as an int32 (N, 2) array of frame pixels."""
    sx, sy = (width, height) if units == "fraction" else (1.0, 1.0)
    return [np.rint(np.asarray(p, dtype=np.float64) * (sx, sy)).astype(np.int32) for p in polygons]


def build_mask(config: MaskConfig, *, width: int, height: int) -> np.ndarray | None:
    """Return the watched pixels as a (height, width) bool array, or None for the whole frame.

    Include polygons (or the whole frame when there are none), intersected with
    the white part of ``config.image`` when given, minus the exclude polygons.
    """
    if not config.include and not config.exclude and config.image is None:
        return None
    watched = np.zeros((height, width), np.uint8)
    if config.include:
        for polygon in polygons_in_pixels(config.include, units=config.units, width=width, height=height):
            cv2.fillPoly(watched, [polygon], 255)
    else:
        watched[:] = 255
    if config.image is not None:
        try:
            image = read_gray(config.image, size=(width, height))
        except ImageFileError as exc:
            raise ConfigError([f"mask.image: {exc}"]) from None
        watched[image < 128] = 0
    for polygon in polygons_in_pixels(config.exclude, units=config.units, width=width, height=height):
        cv2.fillPoly(watched, [polygon], 0)
    if not watched.any():
        # Said here, at load time (`monitor check`), rather than by the comparator at start.
        raise ConfigError(
            [
                "mask: watches no pixel (the include polygons cover none, or the exclude polygons "
                "and mask.image remove them all)"
            ]
        )
    return watched > 0


def zone_masks(config: Config) -> dict[str, np.ndarray | None]:
    """Every zone's mask, in config order; ConfigError naming each zone's key for every problem."""
    width, height = config.source.width, config.source.height
    masks: dict[str, np.ndarray | None] = {}
    problems: list[str] = []
    for name, zone in config.zones.items():
        try:
            masks[name] = mask = build_mask(zone.mask, width=width, height=height)
        except ConfigError as exc:
            problems.extend(f"{config.zone_key(name)}{problem}" for problem in exc.problems)
            continue
        watched = width * height if mask is None else int(np.count_nonzero(mask))
        for key, area in (("detection.min_area", zone.detection.min_area), ("activity.min_area", _activity_area(zone))):
            if area is not None and area_in_pixels(area, watched) > watched:
                problems.append(
                    f"{config.zone_key(name)}{key}: {area} pixels is more than the {watched} pixels the zone watches"
                )
    if problems:
        raise ConfigError(problems)
    return masks


def _activity_area(zone: ZoneConfig) -> int | str | None:
    return None if zone.activity is None else zone.activity.min_area
