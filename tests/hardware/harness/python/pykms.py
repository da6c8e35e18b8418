"""A stand-in for pykms (kms++'s DRM bindings), which Debian does not package.

picamera2 imports it at load time for its DRM preview window and reads a few
pixel format names into a class attribute; the monitor never opens a preview,
so names are all that is needed. Anything that would touch a display fails.
Test harness only: it is on the path inside the test root, never in the product.
"""

from __future__ import annotations

from typing import Any


class _Names(type):
    """Attribute access on the class gives the attribute's name (``PixelFormat.NV12 == "NV12"``)."""

    def __getattr__(cls, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class PixelFormat(metaclass=_Names):
    pass


class PlaneType(metaclass=_Names):
    pass


def __getattr__(name: str) -> Any:
    def no_display(*args: object, **kwargs: object) -> Any:
        raise RuntimeError(f"pykms.{name}: no DRM display in the test root (pykms is a stand-in)")

    return no_display
