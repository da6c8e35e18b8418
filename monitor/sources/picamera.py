"""The Raspberry Pi camera through picamera2 (imported only when this source opens)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import cv2
import numpy as np

from monitor.config import SourceConfig
from monitor.exc import ConfigError, SourceError
from monitor.sources.base import FrameSource, camera_index, one_line

__all__ = ["PiCameraSource"]

_log = logging.getLogger(__name__)

# 4:2:0 formats whose first plane is the full-size Y plane. A Pi's ISP gives the YUV420 asked for;
# other libcamera pipelines (USB cameras, libcamera's virtual camera) may answer with NV12.
LUMA_FIRST_FORMATS = frozenset({"YUV420", "YVU420", "NV12", "NV21"})


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2, reading the luma plane of a small YUV stream.

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
        # picamera2 rounds odd sizes down, so the even size at or above width x height is asked for.
        self._asked = (config.width + config.width % 2, config.height + config.height % 2)
        self._lores_size = self._asked

    def _start(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise ConfigError(
                [
                    f"{self.name}: picamera2 is not installed (on the Pi: sudo apt install python3-picamera2, "
                    "and make the venv with --system-site-packages)"
                ]
            ) from exc
        index = camera_index(self.device)
        if index is None:
            # picamera2 takes the camera's number in its sorted list, not a name or a path.
            raise ConfigError([f"{self.name}: source.device must be a camera number (0, 1, ...) for a picamera source"])
        size = self._asked
        with self._camera_errors("cannot start the camera"):
            self._camera = camera = Picamera2(index)
            camera.configure(
                camera.create_video_configuration(
                    # lores must not exceed main, so main is made as small as lores.
                    main={"size": size, "format": "YUV420"},
                    lores={"size": size, "format": "YUV420"},
                    buffer_count=self.buffer_count,
                )
            )
            advertised: Mapping[str, Any] = camera.camera_controls
        controls = self._start_controls(advertised)
        with self._camera_errors("cannot start the camera"):
            camera.set_controls(controls)
            camera.start()
            stream = dict(camera.camera_configuration()["lores"])
        self._use_stream(stream)
        if self.config.lock_exposure:
            self._lock_exposure(advertised)

    @contextlib.contextmanager
    def _camera_errors(self, doing: str) -> Iterator[None]:
        """Turn what picamera2 or libcamera raise into a one-line SourceError naming the camera."""
        try:
            yield
        except (SourceError, ConfigError):
            raise
        except Exception as exc:
            raise SourceError(f"{self.name}: {doing}: {one_line(exc)}") from exc

    def _start_controls(self, advertised: Mapping[str, Any]) -> dict[str, Any]:
        """``FrameRate`` from ``source.fps`` plus ``source.controls``, checked against what the camera has."""
        # FrameRate is picamera2's name for FrameDurationLimits.
        known = set(advertised) | ({"FrameRate"} if "FrameDurationLimits" in advertised else set())
        unknown = [name for name in self.config.controls if name not in known]
        if unknown:
            raise ConfigError(
                [
                    f"{self.name}: source.controls: this camera has no {', '.join(unknown)} control "
                    f"(it has: {', '.join(sorted(known))})"
                ]
            )
        controls: dict[str, Any] = {}
        if "FrameDurationLimits" in advertised:
            controls["FrameRate"] = self.config.fps
        else:
            _log.info("%s: the camera sets its own frame rate (it has no FrameDurationLimits control)", self.name)
        return controls | dict(self.config.controls)

    def _use_stream(self, stream: Mapping[str, Any]) -> None:
        fmt = str(stream["format"])
        if fmt not in LUMA_FIRST_FORMATS:
            raise SourceError(
                f"{self.name}: the camera gives its small stream as {fmt}, expected one of "
                f"{', '.join(sorted(LUMA_FIRST_FORMATS))}"
            )
        lores_w, lores_h = stream["size"]
        self._lores_size = (int(lores_w), int(lores_h))
        _log.info("%s: %s stream %dx%d, stride %s", self.name, fmt, *self._lores_size, stream.get("stride"))
        if self._lores_size != self._asked:
            _log.info(
                "%s: the camera chose a %dx%d stream, scaled to %dx%d",
                self.name,
                *self._lores_size,
                self.config.width,
                self.config.height,
            )

    def _lock_exposure(self, advertised: Mapping[str, Any]) -> None:
        """Let auto exposure and white balance settle, then freeze them at the values they reached."""
        if "AeEnable" not in advertised:
            raise ConfigError(
                [
                    f"{self.name}: source.lock_exposure: this camera has no auto exposure to lock "
                    "(libcamera advertises no AeEnable control); set lock_exposure: false"
                ]
            )
        deadline = time.monotonic() + self.settle_seconds
        while time.monotonic() < deadline:
            self._capture("capture_metadata")
        metadata = self._capture("capture_metadata")
        controls: dict[str, Any] = {"AeEnable": False}
        if "AwbEnable" in advertised:  # a monochrome sensor has no white balance
            controls["AwbEnable"] = False
        for key in ("ExposureTime", "AnalogueGain", "ColourGains"):
            if key in metadata and key in advertised:
                controls[key] = metadata[key]
        with self._camera_errors("cannot lock the exposure"):
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
        """The Y plane of a 4:2:0 array of shape ``(h * 3 / 2, stride or width)``, without the padding."""
        lores_w, lores_h = self._lores_size
        width, height = self.config.width, self.config.height
        if array.ndim != 2 or array.shape[0] < lores_h or array.shape[1] < lores_w:
            raise SourceError(f"{self.name}: unexpected lores array of shape {array.shape} for {lores_w}x{lores_h}")
        luma = array[:lores_h, :lores_w]
        if self._lores_size == self._asked:  # at most an extra row or column from rounding up to even
            return luma[:height, :width].copy()  # contiguous, and not a view into the capture
        # Another size the camera chose (a pipeline without a scaler offers only its own sizes).
        return cv2.resize(luma, (width, height), interpolation=cv2.INTER_AREA)

    def _stop(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        # A capture that timed out stays queued in picamera2, and stop() waits behind it for a frame
        # that may never come (a loose cable): cancel it first, as picamera2's manual advises.
        for step in ("cancel_all_and_flush", "stop", "close"):
            try:
                getattr(camera, step)()
            except Exception as exc:  # closing must go on: the daemon re-opens after a failure
                _log.warning("%s: %s() failed while closing: %s", self.name, step, one_line(exc))
