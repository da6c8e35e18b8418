"""Makes libcamera's virtual camera behave like a camera sensor where the tests need it to.

The virtual pipeline handler (a software camera playing image files) differs
from a Raspberry Pi camera in four ways that matter here, and each is bridged
on ``libcamera`` in the test root, never in the product:

- It refuses the ``Raw`` stream role, which ``Picamera2()`` asks for to list the
  sensor modes, so picamera2 cannot open it at all. Here a refused ``Raw`` role
  is answered with the processed formats, as libcamera's UVC (USB camera)
  pipeline answers it.
- It writes its NV12 frames through one mapping per buffer plane (Y, then UV)
  and aborts on a buffer of one plane, which is what picamera2's allocator
  makes (one dma-buf for the whole frame, as the Pi's pipeline takes it). Here
  such a buffer is described to libcamera as its two planes in the one dma-buf.
- It fills a buffer the moment a request is queued, ignoring
  ``FrameDurationLimits`` (picamera2's ``FrameRate``): it would run flat out on
  a core. Here requests are queued no faster than the frame duration the
  application asked for at ``start()``, or the camera's advertised minimum.
- Its frames never stop. While the file named by ``MONITOR_TEST_CAMERA_HANG``
  exists, requests are held back instead of queued, so no frame comes, as when
  a ribbon cable works loose; ``stop()`` drops them, and frames flow again
  after the next ``start()`` once the file is gone.

``sitecustomize`` (beside this file, on ``PYTHONPATH`` in the test root) calls
:func:`install` when ``libcamera`` is first imported.
"""

from __future__ import annotations

import os
import threading
import time
from types import ModuleType
from typing import Any

HANG_FILE_VARIABLE = "MONITOR_TEST_CAMERA_HANG"


class _Pace:
    """The frame period of one started camera and when its next frame is due."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.due = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.due > now:
                time.sleep(self.due - now)
                now = self.due
            self.due = now + self.period


def _frame_duration_us(camera: Any, controls: Any) -> float:
    for control, value in dict(controls or {}).items():
        if getattr(control, "name", None) == "FrameDurationLimits":
            return float(value[0])
    for control, info in camera.controls.items():
        if control.name == "FrameDurationLimits":
            return float(info.min)
    return 33333.0


def _hung() -> bool:
    path = os.environ.get(HANG_FILE_VARIABLE)
    return bool(path) and os.path.exists(path)


def _describe_planes(libcamera: ModuleType) -> None:
    frame_buffer = libcamera.FrameBuffer

    def nv12_frame_buffer(planes: Any, *args: Any, **kwargs: Any) -> Any:
        planes = list(planes)
        if len(planes) == 1 and planes[0].length % 3 == 0:
            # NV12 with the stride equal to the width, as this camera makes it. The Y plane keeps the
            # Plane object picamera2 made: its fd is the one picamera2 keys its buffers by.
            luma, chroma = planes[0], frame_buffer.Plane()
            chroma.fd, chroma.offset, chroma.length = luma.fd, luma.offset + luma.length * 2 // 3, luma.length // 3
            luma.length = luma.length * 2 // 3
            planes = [luma, chroma]
        return frame_buffer(planes, *args, **kwargs)

    nv12_frame_buffer.Plane = frame_buffer.Plane  # type: ignore[attr-defined]
    libcamera.FrameBuffer = nv12_frame_buffer


def install(libcamera: ModuleType) -> None:
    camera_class = libcamera.Camera
    if getattr(camera_class, "_monitor_virtual_sensor", False):
        return
    _describe_planes(libcamera)
    raw_role = libcamera.StreamRole.Raw
    viewfinder_role = libcamera.StreamRole.Viewfinder
    generate_configuration = camera_class.generate_configuration
    start = camera_class.start
    stop = camera_class.stop
    queue_request = camera_class.queue_request
    paces: dict[str, _Pace] = {}
    held: dict[str, list[Any]] = {}

    def generate_configuration_raw_as_uvc(self: Any, roles: Any) -> Any:
        config = generate_configuration(self, roles)
        if config is None and list(roles) == [raw_role]:
            config = generate_configuration(self, [viewfinder_role])
        return config

    def start_paced(self: Any, *args: Any, **kwargs: Any) -> Any:
        controls = args[0] if args else kwargs.get("controls")
        paces[self.id] = _Pace(_frame_duration_us(self, controls) / 1e6)
        held[self.id] = []
        return start(self, *args, **kwargs)

    def stop_dropping_held(self: Any, *args: Any, **kwargs: Any) -> Any:
        held.pop(self.id, None)
        paces.pop(self.id, None)
        return stop(self, *args, **kwargs)

    def queue_request_paced(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if _hung():
            held.setdefault(self.id, []).append(request)  # keeps the request alive, never queued
            return None
        pace = paces.get(self.id)
        if pace is not None:
            pace.wait()
        return queue_request(self, request, *args, **kwargs)

    camera_class.generate_configuration = generate_configuration_raw_as_uvc
    camera_class.start = start_paced
    camera_class.stop = stop_dropping_held
    camera_class.queue_request = queue_request_paced
    camera_class._monitor_virtual_sensor = True
