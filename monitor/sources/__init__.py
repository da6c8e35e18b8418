"""Where frames come from: the Pi camera, OpenCV (webcams, video files, streams), image folders.

Every source delivers 2-D uint8 grayscale :class:`Frame` objects through the
same small interface, :class:`FrameSource` (``base.py``). ``make_source(config)``
picks the backend from :data:`SOURCES` by ``config.kind``, one module per kind.
Camera libraries are imported inside the backend that needs them, so this
package imports on any machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from monitor.config import SourceConfig
from monitor.exc import ConfigError
from monitor.sources.base import Frame, FrameSource, camera_index, has_magic, is_url
from monitor.sources.images import IMAGE_SUFFIXES, ImageFolderSource
from monitor.sources.opencv import CameraSource, StreamSource, VideoFileSource, opencv_source
from monitor.sources.picamera import PiCameraSource

__all__ = [
    "IMAGE_SUFFIXES",
    "SOURCES",
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "PiCameraSource",
    "StreamSource",
    "VideoFileSource",
    "make_source",
]

SourceFactory = Callable[..., FrameSource]

# config.kind -> the backend; "opencv" picks a camera, a stream or a file from the device.
SOURCES: dict[str, SourceFactory] = {
    "picamera": PiCameraSource,
    "opencv": opencv_source,
    "images": ImageFolderSource,
}


def _kind_for_recording(device: str) -> str:
    path = Path(device).expanduser()
    if path.is_dir() or has_magic(device) or path.suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    return "opencv"


def make_source(config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> FrameSource:
    """The source ``config.kind`` names, not yet opened.

    A ``device`` that is a path, glob or URL (replaying a recording) picks its
    own kind: ``images`` for a folder, a glob or an image file, ``opencv``
    otherwise, whatever ``config.kind`` says; a camera number keeps ``config.kind``.
    """
    kind: str = config.kind
    if device is not None and camera_index(device) is None:
        kind = "opencv" if is_url(device) else _kind_for_recording(str(device))
    try:
        backend = SOURCES[kind]
    except KeyError:
        raise ConfigError([f"source.kind: unknown source {kind!r} (expected one of: {', '.join(SOURCES)})"]) from None
    return backend(config, realtime=realtime, device=device)
