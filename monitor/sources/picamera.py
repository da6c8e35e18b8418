"""The Raspberry Pi camera through picamera2 (imported only when this source opens)."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import cv2
import numpy as np

from monitor.config import SourceConfig
from monitor.exc import SourceError
from monitor.sources.base import FrameSource, camera_index, one_line

__all__ = ["PiCameraSource"]

_log = logging.getLogger(__name__)


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2, reading the luma plane of a small YUV420 stream.

    The ISP scales the sensor image down to ``width x height`` in hardware (the
    ``lores`` stream); only its Y plane is copied out, which is the grayscale
    image, so no colour conversion runs on the CPU.
    """

    kind = "picamera"
    settle_seconds: ClassVar[float] = 2.0  # how long AE/AWB run before lock_exposure freezes them
    buffer_count: ClassVar[int] = 4  # fewer than picamera2's 6: CMA memory is scarce on a Pi Zero 2 W

    def __init__(self, config: SourceConfig, *, realtime: bool = True, device: int | str | None = None) -> None:
        super().__init__(config, realtime=realtime, device=device)
        self._camera: Any = None
        self._lores_size = (config.width, config.height)

    def _start(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"{self.name}: picamera2 is not installed (on the Pi: sudo apt install python3-picamera2, "
                "and make the venv with --system-site-packages)"
            ) from exc
        index = camera_index(self.device)
        width, height = self.config.width, self.config.height
        # picamera2 rounds odd sizes down; ask for the even size above and crop the extra row/column.
        size = (width + width % 2, height + height % 2)
        try:
            self._camera = Picamera2(self.device if index is None else index)
            camera = self._camera
            camera.configure(
                camera.create_video_configuration(
                    # lores must not exceed main, so main is made as small as lores.
                    main={"size": size, "format": "YUV420"},
                    lores={"size": size, "format": "YUV420"},
                    buffer_count=self.buffer_count,
                )
            )
            camera.set_controls({"FrameRate": self.config.fps} | dict(self.config.controls))
            camera.start()
            lores_w, lores_h = camera.camera_configuration()["lores"]["size"]
            self._lores_size = (int(lores_w), int(lores_h))
        except Exception as exc:
            raise SourceError(f"{self.name}: cannot start the camera: {one_line(exc)}") from exc
        if self._lores_size != size:
            _log.info(
                "%s: the camera chose a %dx%d stream, scaled to %dx%d", self.name, *self._lores_size, width, height
            )
        if self.config.lock_exposure:
            self._lock_exposure()

    def _lock_exposure(self) -> None:
        """Let auto exposure and white balance settle, then freeze them at the values they reached."""
        deadline = time.monotonic() + self.settle_seconds
        while time.monotonic() < deadline:
            self._capture("capture_metadata")
        metadata = self._capture("capture_metadata")
        controls: dict[str, Any] = {"AeEnable": False, "AwbEnable": False}
        for key in ("ExposureTime", "AnalogueGain", "ColourGains"):
            if key in metadata:  # a monochrome sensor reports no ColourGains
                controls[key] = metadata[key]
        self._camera.set_controls(controls)
        _log.info("%s: exposure locked: %s", self.name, controls)

    def _capture(self, method: str, *args: Any) -> Any:
        timeout = self.config.capture_timeout
        try:
            return getattr(self._camera, method)(*args, wait=timeout)
        except TimeoutError:
            raise SourceError(f"{self.name}: no frame within {timeout:g} s (source.capture_timeout)") from None
        except Exception as exc:
            raise SourceError(f"{self.name}: capture failed: {one_line(exc)}") from exc

    def _next(self) -> tuple[np.ndarray, float]:
        array = self._capture("capture_array", "lores")
        stamp = time.time()
        return self._luma(array), stamp

    def _luma(self, array: np.ndarray) -> np.ndarray:
        """The Y plane of a YUV420 array of shape ``(h * 3 / 2, stride)``, without the stride padding."""
        lores_w, lores_h = self._lores_size
        width, height = self.config.width, self.config.height
        if array.ndim != 2 or array.shape[0] < lores_h or array.shape[1] < lores_w:
            raise SourceError(f"{self.name}: unexpected lores array of shape {array.shape} for {lores_w}x{lores_h}")
        luma = array[:lores_h, :lores_w]
        if lores_w >= width and lores_h >= height:
            return luma[:height, :width].copy()  # contiguous, and not a view into the capture
        return cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)

    def _stop(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in ("stop", "close"):
            try:
                getattr(camera, step)()
            except Exception as exc:  # closing must go on: the daemon re-opens after a failure
                _log.warning("%s: %s() failed while closing: %s", self.name, step, one_line(exc))
