"""Shared fixtures: real photos from scikit-image, the shared data folder, config files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Return a path under ../shared/data, skipping the test where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (it lives beside the project checkout, not in it)")
    return path


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero's own mock pins, fresh for each test (reservations are kept at class level)."""
    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        Device.pin_factory = None


@pytest.fixture
def photo() -> np.ndarray:
    """A real 512x512 grayscale photo (scikit-image's camera man)."""
    from skimage import data

    return np.ascontiguousarray(data.camera())


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text to tmp_path/config.yaml and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
