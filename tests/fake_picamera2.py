"""A stand-in for the ``picamera2`` module, for machines without a Pi camera.

It follows the documented API of ``picamera2.Picamera2`` (the Picamera2
manual and ``picamera2/picamera2.py``) for the parts a frame grabber uses:
configuration dicts shaped like the real ones and checked as the real
``configure()`` checks them, ``camera_controls`` (what libcamera advertises),
``set_controls`` (``FrameRate`` becomes ``FrameDurationLimits``; a control the
camera does not advertise raises, as picamera2's ``Controls`` does),
``start``/``stop``/``close``/``cancel_all_and_flush``,
``capture_array(name, wait=...)`` and ``capture_metadata(wait=...)``. Frames
come at the configured frame rate, like a sensor's. The scene is a real photo
(scikit-image's astronaut) scaled to the stream size; a YUV420 stream is an
``(h * 3 / 2, stride)`` uint8 array whose stride is the width rounded up to 64,
padded with junk, as on a Pi; an NV12 stream is ``(h * 3 / 2, width)``, as
picamera2 slices its padding off.

Where the real stack (picamera2 0.3.38 on libcamera 0.7's virtual camera, see
tests/hardware/) showed behaviour this stand-in lacked, it now has it:
``CONTROLS`` (swap in ``VIRTUAL_CONTROLS`` or ``MONO_CONTROLS`` for a camera
without auto exposure or white balance), ``OUTPUT_FORMATS`` (``("NV12",)``: the
camera answers a YUV420 request with NV12), ``OUTPUT_SIZES`` (a camera that
gives a size of its own instead of the one asked), the "No camera number N found"
error, and a capture that timed out staying queued, so that ``stop()`` on a
camera that delivers nothing would wait for ever unless
``cancel_all_and_flush()`` came first (here it raises WouldBlockForever instead).

Install it with ``monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2)``.
Test hooks: ``Picamera2.instances`` (every camera made), ``camera.hang = True``
(captures time out), ``camera.calls`` (method names in order),
``camera.control_history`` (every ``set_controls`` argument) and
``camera.last_metadata``.
"""

from __future__ import annotations

import copy
import time
from functools import cache
from typing import Any, ClassVar

import cv2
import numpy as np

SENSOR_RESOLUTION = (4608, 2592)  # Camera Module 3 (imx708)
SENSOR_FORMAT = "SRGGB10_CSI2P"
CAMERAS = 1  # how many cameras are "connected": Picamera2(n) fails for n >= CAMERAS
PADDING = 7  # the value of the stride padding, so that a leak into a frame shows

# picamera2's camera_controls, name -> (min, max, default), roughly as a Camera Module 3 on a Pi has them.
PI_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "AeEnable": (False, True, None),
    "AeExposureMode": (0, 3, 0),
    "AeMeteringMode": (0, 3, 0),
    "AnalogueGain": (1.12, 16.0, None),
    "AwbEnable": (False, True, None),
    "AwbMode": (0, 7, 0),
    "Brightness": (-1.0, 1.0, 0.0),
    "ColourGains": (0.0, 32.0, None),
    "Contrast": (0.0, 32.0, 1.0),
    "ExposureTime": (26, 220417486, 20000),
    "ExposureValue": (-8.0, 8.0, 0.0),
    "FrameDurationLimits": (33333, 120000, 33333),
    "NoiseReductionMode": (0, 4, 0),
    "Saturation": (0.0, 32.0, 1.0),
    "ScalerCrop": ((0, 0, 64, 64), (0, 0, 4608, 2592), (576, 0, 3456, 2592)),
    "Sharpness": (0.0, 16.0, 1.0),
}
# A monochrome sensor (OV9281, the Global Shutter Camera's mono variant): no white balance.
MONO_CONTROLS = {k: v for k, v in PI_CONTROLS.items() if k not in ("AwbEnable", "AwbMode", "ColourGains")}
# libcamera's virtual camera, as picamera2 0.3.38 reports it: a frame duration, and no exposure to lock.
VIRTUAL_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "FrameDurationLimits": (33333, 200000, None),
    "FaceDetectMode": (0, 0, 0),
}
CONTROLS = PI_CONTROLS
# The formats the camera's ISP outputs; None: any format asked for (a Pi). libcamera adjusts a request
# for another one to the first of these, as the virtual camera turns YUV420 into NV12.
OUTPUT_FORMATS: tuple[str, ...] | None = None
# The sizes the camera outputs; None: any size (the Pi's ISP scales). libcamera adjusts a request for
# another size to the largest of these, as the virtual camera does.
OUTPUT_SIZES: tuple[tuple[int, int], ...] | None = None

_YUV = ("YUV420", "YVU420", "NV12")
_RGB = {"XBGR8888": 4, "XRGB8888": 4, "BGR888": 3, "RGB888": 3}


@cache
def _photo_bgr(width: int, height: int) -> np.ndarray:
    from skimage import data

    rgb = data.astronaut()
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_AREA)


def scene_y(width: int, height: int) -> np.ndarray:
    """The luma plane the camera delivers in a ``width x height`` YUV420 stream."""
    i420 = cv2.cvtColor(_photo_bgr(width, height), cv2.COLOR_BGR2YUV_I420)
    return i420[:height].copy()


def yuv420_array(width: int, height: int, stride: int) -> np.ndarray:
    """A YUV420 frame laid out as picamera2's ``capture_array`` returns it: Y rows, then U and V packed."""
    i420 = cv2.cvtColor(_photo_bgr(width, height), cv2.COLOR_BGR2YUV_I420)
    out = np.full((height * 3 // 2, stride), PADDING, np.uint8)
    out[:height, :width] = i420[:height]
    chroma = np.full((2, height // 2, stride // 2), PADDING, np.uint8)
    planes = i420[height:].reshape(2, height // 2, width // 2)
    chroma[:, :, : width // 2] = planes
    out[height:] = chroma.reshape(height // 2, stride)
    return out


class WouldBlockForever(BaseException):
    """A call that would block for ever on the real stack; a BaseException, so that no ``except Exception`` hides it."""


def nv12_array(width: int, height: int) -> np.ndarray:
    """An NV12 frame as picamera2's ``capture_array`` returns it: Y rows, then interleaved UV, no padding."""
    i420 = cv2.cvtColor(_photo_bgr(width, height), cv2.COLOR_BGR2YUV_I420)
    planes = i420[height:].reshape(2, height // 2, width // 2)
    uv = np.stack([planes[0], planes[1]], axis=-1).reshape(height // 2, width)
    return np.concatenate([i420[:height], uv])


def _stream(defaults: dict[str, Any], updates: dict[str, Any] | None) -> dict[str, Any] | None:
    # Like Picamera2._make_initial_stream_config followed by align_stream(optimal=False).
    if updates is None:
        return None
    for key in updates:
        if key not in ("format", "size"):
            raise ValueError(f"Bad key {key!r}: valid stream configuration keys are ('format', 'size')")
    stream = defaults | updates
    width, height = stream["size"]
    stream["size"] = (width - width % 2, height - height % 2)
    return stream


class Picamera2:
    """One camera, as ``picamera2.Picamera2``."""

    instances: ClassVar[list[Picamera2]] = []

    def __init__(self, camera_num: int = 0, tuning: Any = None) -> None:
        if not 0 <= camera_num < CAMERAS:
            # What picamera2 0.3.38 raises (a str camera_num fails the same comparison with TypeError).
            raise RuntimeError(
                f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to check connected cameras'
            )
        self.camera_idx = camera_num
        self.sensor_resolution = SENSOR_RESOLUTION
        self.sensor_format = SENSOR_FORMAT
        self.camera_config: dict[str, Any] | None = None
        self.controls: dict[str, Any] = {}
        self.control_history: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.started = False
        self.is_open = True
        self.hang = False
        self.frames = 0
        self.last_metadata: dict[str, Any] = {}
        self.waits: list[Any] = []  # the wait= of every capture
        self.pending = 0  # captures that timed out: picamera2 keeps their jobs queued until a frame comes
        self.camera_controls: dict[str, tuple[Any, Any, Any]] = dict(CONTROLS)
        self._next_frame = 0.0
        type(self).instances.append(self)

    def __enter__(self) -> Picamera2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config(
        self,
        use_case: str,
        main: dict[str, Any] | None,
        lores: dict[str, Any] | None,
        raw: dict[str, Any] | None,
        *,
        main_default: dict[str, Any],
        buffer_count: int,
        controls: dict[str, Any],
        frame_durations: tuple[int, int],
        display: str | None,
        encode: str | None,
    ) -> dict[str, Any]:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_stream = _stream(main_default, main or {})
        assert main_stream is not None
        lores_stream = _stream({"format": "YUV420", "size": main_stream["size"]}, lores)
        raw_stream = _stream({"format": self.sensor_format, "size": main_stream["size"]}, raw)
        return {
            "use_case": use_case,
            "transform": "Transform(identity)",
            "colour_space": "ColorSpace.Sycc()",
            "buffer_count": buffer_count,
            "queue": True,
            "main": main_stream,
            "lores": lores_stream,
            "raw": raw_stream,
            "controls": {"NoiseReductionMode": 1, "FrameDurationLimits": frame_durations} | dict(controls),
            "display": display,
            "encode": encode,
        }

    def create_preview_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 4,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
    ) -> dict[str, Any]:
        return self._config(
            "preview",
            main,
            lores,
            {} if raw is None else raw,
            main_default={"format": "XBGR8888", "size": (640, 480)},
            buffer_count=buffer_count,
            controls=controls or {},
            frame_durations=(100, 83333),
            display=display,
            encode=encode,
        )

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
    ) -> dict[str, Any]:
        return self._config(
            "video",
            main,
            lores,
            {} if raw is None else raw,
            main_default={"format": "XBGR8888", "size": (1280, 720)},
            buffer_count=buffer_count,
            controls=controls or {},
            frame_durations=(33333, 33333),
            display=display,
            encode=encode,
        )

    def configure(self, camera_config: dict[str, Any]) -> None:
        """Check the configuration as the real ``check_camera_config`` does, then adopt it."""
        self.calls.append("configure")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        for name in ("main", "lores"):
            stream = camera_config[name]
            if stream is None:
                continue
            if stream["format"] not in _YUV and stream["format"] not in _RGB:
                raise RuntimeError(f"Bad format {stream['format']} in stream {name}")
            size = stream["size"]
            if type(size) is not tuple or len(size) != 2:
                raise RuntimeError(f"size in {name} stream should be (width, height)")
            if size[0] % 2 or size[1] % 2:
                raise RuntimeError("width and height should be even")
        lores = camera_config["lores"]
        if lores is not None:
            (main_w, main_h), (lores_w, lores_h) = camera_config["main"]["size"], lores["size"]
            if lores_w > main_w or lores_h > main_h:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] not in _YUV:
                raise RuntimeError("lores stream must be YUV")
        config = copy.deepcopy(camera_config)
        for name in ("main", "lores"):
            stream = config[name]
            if stream is not None:
                if OUTPUT_FORMATS is not None and stream["format"] not in OUTPUT_FORMATS:
                    stream["format"] = OUTPUT_FORMATS[0]  # libcamera's validate() adjusts it
                if OUTPUT_SIZES is not None and stream["size"] not in OUTPUT_SIZES:
                    stream["size"] = max(OUTPUT_SIZES, key=lambda size: size[0] * size[1])
                width = stream["size"][0]
                if stream["format"] == "NV12":
                    stream["stride"] = width  # as the virtual camera lays it out
                elif stream["format"] in _YUV:
                    stream["stride"] = -(-width // 64) * 64
                else:
                    stream["stride"] = -(-width * _RGB[stream["format"]] // 64) * 64
        self.camera_config = config
        self.controls = {k: v for k, v in config["controls"].items() if k in self.camera_controls}

    def camera_configuration(self) -> dict[str, Any] | None:
        return self.camera_config

    def set_controls(self, controls: dict[str, Any]) -> None:
        """As picamera2's ``Controls``: FrameRate is FrameDurationLimits in microseconds; others must be advertised."""
        self.calls.append("set_controls")
        self.control_history.append(dict(controls))
        for name, value in controls.items():
            if name == "FrameRate":
                name, value = "FrameDurationLimits", (int(1000000 / value), int(1000000 / value))
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            self.controls[name] = value

    def start(self, config: dict[str, Any] | None = None, show_preview: bool | None = False) -> None:
        self.calls.append("start")
        if self.camera_config is None and config is None:
            config = self.create_preview_configuration()
        if config is not None:
            self.configure(config)
        self.started = True
        self._next_frame = time.monotonic()

    def stop(self) -> None:
        self.calls.append("stop")
        if self.started and self.pending and self.hang:
            # picamera2 queues the stop behind the capture that timed out, which needs a frame.
            raise WouldBlockForever("stop() would wait for ever behind a capture that timed out: no frame comes")
        self.started = False

    def cancel_all_and_flush(self) -> None:
        self.calls.append("cancel_all_and_flush")
        self.pending = 0

    def close(self) -> None:
        self.calls.append("close")
        if not self.is_open:
            return
        if self.started:
            self.stop()
        self.is_open = False

    def _frame_duration(self) -> float:
        return float(self.controls.get("FrameDurationLimits", (33333, 33333))[0]) / 1e6

    def _wait_for_frame(self, wait: Any) -> None:
        """Block as the real camera does: until the next frame, or raise TimeoutError after ``wait`` seconds."""
        self.waits.append(wait)
        if not self.started or self.hang:
            if wait is None or wait is True:
                # The real call would block for ever; a test must not.
                raise AssertionError("capture on a camera that delivers no frames, without a timeout (wait=)")
            self.pending += 1
            raise TimeoutError
        now = time.monotonic()
        if self._next_frame > now:
            time.sleep(self._next_frame - now)
        self._next_frame = max(self._next_frame, now) + self._frame_duration()
        self.frames += 1
        self.pending = 0  # the jobs that timed out complete on this frame
        self.last_metadata = self._metadata()

    def _metadata(self) -> dict[str, Any]:
        # Auto exposure "converges" over the first 30 frames unless it has been switched off.
        auto = self.controls.get("AeEnable", True)
        exposure = 20000 + 300 * min(self.frames, 30) if auto else self.controls.get("ExposureTime", 20000)
        gain = 1.0 + 0.05 * min(self.frames, 30) if auto else self.controls.get("AnalogueGain", 1.0)
        awb = self.controls.get("AwbEnable", True)
        colour = (1.5 + 0.01 * min(self.frames, 30), 1.8) if awb else self.controls.get("ColourGains", (1.5, 1.8))
        metadata: dict[str, Any] = {"SensorTimestamp": time.monotonic_ns()}
        if "AeEnable" in self.camera_controls:
            metadata |= {
                "FrameDuration": round(self._frame_duration() * 1e6),
                "ExposureTime": exposure,
                "AnalogueGain": gain,
                "DigitalGain": 1.0,
                "Lux": 310.0,
                "AeLocked": not auto or self.frames >= 30,
            }
        if "AwbEnable" in self.camera_controls:
            metadata |= {"ColourGains": colour, "ColourTemperature": 5200}
        return metadata

    def capture_array(self, name: str = "main", wait: Any = None, signal_function: Any = None) -> np.ndarray:
        self.calls.append(f"capture_array:{name}")
        assert self.camera_config is not None
        stream = self.camera_config.get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not configured")
        self._wait_for_frame(wait)
        width, height = stream["size"]
        if stream["format"] == "NV12":
            return nv12_array(width, height)
        if stream["format"] in _YUV:
            return yuv420_array(width, height, stream["stride"])
        channels = _RGB[stream["format"]]
        bgr = _photo_bgr(width, height)
        return bgr if channels == 3 else cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)

    def capture_metadata(self, wait: Any = None, signal_function: Any = None) -> dict[str, Any]:
        self.calls.append("capture_metadata")
        self._wait_for_frame(wait)
        return dict(self.last_metadata)
