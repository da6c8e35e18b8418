"""Frame sources on real parts: video files written here, image files, an HTTP stream, a fake Pi camera."""

from __future__ import annotations

import functools
import http.server
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from monitor.config import SourceConfig
from monitor.exc import ConfigError, SourceError
from monitor.sources import (
    CameraSource,
    Frame,
    FrameSource,
    ImageFolderSource,
    PiCameraSource,
    StreamSource,
    VideoFileSource,
    make_source,
)
from tests import conftest, fake_picamera2

W, H = 160, 120


def pan(count: int, width: int = W, height: int = H, step: int = 8) -> list[np.ndarray]:
    """``count`` BGR frames of a real photo, each shifted ``step`` pixels further left."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    strip = cv2.resize(photo, (width + step * count, height), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(strip[:, step * i : step * i + width]) for i in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], *, fps: float = 25.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "this OpenCV cannot write MJPG .avi"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def gray(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def which(image: np.ndarray, expected: list[np.ndarray]) -> int:
    """The index of the expected gray image ``image`` is (after JPEG compression), or fail."""
    errors = [float(np.abs(image.astype(np.int16) - e.astype(np.int16)).mean()) for e in expected]
    best = int(np.argmin(errors))
    assert errors[best] < 8, f"matches none of the expected frames (mean errors {errors})"
    return best


def read_all(source: FrameSource, limit: int = 1000) -> list[Frame]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        assert len(frames) < limit, "the source never ended"
    return frames


def opencv_config(device: str | int, **kw: Any) -> SourceConfig:
    return SourceConfig(kind="opencv", device=device, width=W, height=H, **kw)


def images_config(device: str, **kw: Any) -> SourceConfig:
    return SourceConfig(kind="images", device=device, width=W, height=H, **kw)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """Six 160x120 frames at 25 fps."""
    return write_clip(tmp_path / "clip.avi", pan(6), fps=25)


# --- video files ---------------------------------------------------------------------------------


def test_video_file_delivers_every_frame_gray_in_order_then_ends(clip: Path) -> None:
    expected = [gray(f) for f in pan(6)]
    with make_source(opencv_config(str(clip)), realtime=False) as source:
        frames = read_all(source)
        assert source.read() is None  # stays ended
    assert len(frames) == 6
    assert [f.index for f in frames] == list(range(6))
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W)
        assert frame.image.flags.c_contiguous
    assert [which(f.image, expected) for f in frames] == list(range(6))


def test_delivered_images_are_not_overwritten_by_later_reads(clip: Path) -> None:
    with make_source(opencv_config(str(clip)), realtime=False) as source:
        first = source.read()
        assert first is not None
        kept = first.image.copy()
        read_all(source)
    assert np.array_equal(first.image, kept)


def test_video_of_another_size_is_resized(tmp_path: Path) -> None:
    big = pan(3, width=2 * W, height=2 * H, step=16)
    path = write_clip(tmp_path / "big.avi", big)
    expected = [cv2.resize(gray(f), (W, H), interpolation=cv2.INTER_AREA) for f in big]
    with make_source(opencv_config(str(path)), realtime=False) as source:
        frames = read_all(source)
    assert [f.image.shape for f in frames] == [(H, W)] * 3
    assert [which(f.image, expected) for f in frames] == [0, 1, 2]


def test_unpaced_times_come_from_the_position_in_the_file(clip: Path) -> None:
    before = time.time()
    with make_source(opencv_config(str(clip), fps=2), realtime=False) as source:
        after = time.time()
        frames = read_all(source)
    assert before <= frames[0].time <= after
    steps = np.diff([f.time for f in frames])
    assert steps == pytest.approx([1 / 25] * 5, abs=1e-6)  # the file's 25 fps, not the config's 2


def test_loop_starts_again_and_index_keeps_counting(tmp_path: Path) -> None:
    frames4 = pan(4)
    path = write_clip(tmp_path / "four.avi", frames4, fps=20)
    expected = [gray(f) for f in frames4]
    with make_source(opencv_config(str(path), loop=True), realtime=False) as source:
        frames = [source.read() for _ in range(10)]
    assert all(f is not None for f in frames)
    got = [f for f in frames if f is not None]
    assert [f.index for f in got] == list(range(10))
    assert [which(f.image, expected) for f in got] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    # Replay times keep going forward across the loop, one file frame apart.
    assert np.diff([f.time for f in got]) == pytest.approx([1 / 20] * 9, abs=1e-6)


def test_realtime_file_is_not_delivered_faster_than_fps(clip: Path) -> None:
    with make_source(opencv_config(str(clip), fps=50, loop=True), realtime=True) as source:
        start = time.monotonic()
        frames = [source.read() for _ in range(10)]
        elapsed = time.monotonic() - start
    assert all(f is not None for f in frames)
    assert elapsed >= 9 / 50 - 0.005  # a lower bound only: a loaded machine may be slower


def test_index_keeps_counting_across_reopen(clip: Path) -> None:
    source = make_source(opencv_config(str(clip)), realtime=False)
    with source:
        assert [source.read() is not None for _ in range(2)] == [True, True]
    with source:
        frame = source.read()
    assert frame is not None and frame.index == 2
    assert which(frame.image, [gray(f) for f in pan(6)]) == 0  # re-opened from the start


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "clip.avi"
    source = make_source(opencv_config(str(path)))
    with pytest.raises(SourceError, match="no such file") as info:
        source.open()
    assert str(path) in str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert not source.is_open


def test_file_that_is_not_a_video_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.avi"
    path.write_text("not a video\n" * 100)
    with pytest.raises(SourceError, match="cannot open") as info:
        make_source(opencv_config(str(path))).open()
    assert str(path) in str(info.value)


def test_absent_camera_index_is_a_source_error() -> None:
    source = make_source(opencv_config("63"))
    assert isinstance(source, CameraSource)
    with pytest.raises(SourceError, match="camera 63"):
        source.open()


def test_url_password_stays_out_of_the_error() -> None:
    source = make_source(opencv_config("rtsp://admin:hunter2@127.0.0.1:1/stream"))
    with pytest.raises(SourceError) as info:
        source.open()
    assert "hunter2" not in str(info.value)
    assert "admin:***@127.0.0.1:1" in str(info.value)


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on localhost serving tmp_path; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_stream_is_live_and_its_end_is_a_failure(clip: Path, http_folder: str) -> None:
    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV has no FFmpeg backend for streams")
    expected = [gray(f) for f in pan(6)]
    config = opencv_config(f"{http_folder}/{clip.name}", capture_timeout=2.0)
    with make_source(config, realtime=False) as source:
        frames = [source.read() for _ in range(6)]
        # A stream does not "end" like a recording: it is lost, and the daemon reconnects.
        with pytest.raises(SourceError, match="no frame"):
            source.read()
    got = [f for f in frames if f is not None]
    assert [which(f.image, expected) for f in got] == list(range(6))


def test_live_stream_drops_frames_that_come_faster_than_fps(clip: Path, http_folder: str) -> None:
    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV has no FFmpeg backend for streams")
    config = opencv_config(f"{http_folder}/{clip.name}", fps=1)
    with make_source(config, realtime=True) as source:
        first = source.read()
        assert first is not None and which(first.image, [gray(f) for f in pan(6)]) == 0
        # The other five frames arrive within a second of the first: none is due, all are dropped.
        with pytest.raises(SourceError):
            source.read()


# --- image folders -------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """c.jpg, a.png (colour), b.png, written out of name order, plus a text file."""
    frames = pan(3)
    root = tmp_path / "frames"
    root.mkdir()
    cv2.imwrite(str(root / "c.jpg"), frames[2], [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(root / "a.png"), frames[0])
    cv2.imwrite(str(root / "b.png"), gray(frames[1]))
    (root / "readme.txt").write_text("not an image")
    return root


def test_folder_in_name_order_as_gray(folder: Path) -> None:
    expected = [gray(f) for f in pan(3)]
    with ImageFolderSource(images_config(str(folder)), realtime=False) as source:
        frames = read_all(source)
        assert source.skipped == 0
    assert [which(f.image, expected) for f in frames] == [0, 1, 2]
    assert np.array_equal(frames[0].image, expected[0])  # PNG: exact, converted as BGR2GRAY
    assert all(f.image.ndim == 2 and f.image.dtype == np.uint8 for f in frames)


def test_an_image_of_another_size_is_dropped_once_without_being_decoded(
    folder: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cv2.imwrite(str(folder / "d.png"), cv2.resize(pan(1)[0], (2 * W, H)))
    decoded: list[tuple[int, ...]] = []
    real_imdecode = cv2.imdecode

    def imdecode(data: np.ndarray, flags: int) -> np.ndarray:
        image = real_imdecode(data, flags)
        decoded.append(image.shape)
        return image

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    source = ImageFolderSource(images_config(str(folder), loop=True), realtime=False)
    with caplog.at_level(logging.WARNING, logger="monitor.sources"), source:
        [source.read() for _ in range(7)]
        assert source.skipped == 1  # dropped from the list: not counted (nor warned about) on every pass
    assert all(shape[:2] == (H, W) for shape in decoded)  # the wrong one was never decoded
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"d.png: is {2 * W}x{H}, expected the frame size {W}x{H}" in warning


def test_undecodable_file_is_skipped_and_counted(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    expected = [gray(f) for f in pan(3)]
    source = ImageFolderSource(images_config(str(folder), loop=True), realtime=False)
    with caplog.at_level(logging.WARNING, logger="monitor.sources"), source:
        frames = [source.read() for _ in range(4)]
        assert source.skipped == 1  # once, not once per loop
    got = [f for f in frames if f is not None]
    assert [which(f.image, expected) for f in got] == [0, 2, 0, 2]
    assert [f.index for f in got] == [0, 1, 2, 3]
    assert any("b.png" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_skip_warnings_are_rate_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(8):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"garbage")
    cv2.imwrite(str(tmp_path / "good.png"), pan(1)[0])
    source = ImageFolderSource(images_config(str(tmp_path)), realtime=False)
    with caplog.at_level(logging.WARNING, logger="monitor.sources"), source:
        frames = read_all(source)
        assert source.skipped == 8
    assert len(frames) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == ImageFolderSource.warn_first


def test_no_readable_image_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    source = ImageFolderSource(images_config(str(tmp_path), loop=True), realtime=False)
    with source, pytest.raises(SourceError, match="none of the images"):
        source.read()


def test_glob_selects_the_files(folder: Path) -> None:
    expected = [gray(f) for f in pan(3)]
    with ImageFolderSource(images_config(str(folder / "*.png")), realtime=False) as source:
        frames = read_all(source)
    assert [which(f.image, expected) for f in frames] == [0, 1]


@pytest.mark.parametrize("name", ["empty", "missing", "empty/*.png"])
def test_no_images_is_an_error_naming_the_device(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    device = str(tmp_path / name)
    with pytest.raises(SourceError) as info:
        ImageFolderSource(images_config(device)).open()
    assert device in str(info.value)


def test_folder_loop_and_replay_times(folder: Path) -> None:
    with ImageFolderSource(images_config(str(folder), loop=True, fps=4), realtime=False) as source:
        frames = [source.read() for _ in range(7)]
    got = [f for f in frames if f is not None]
    assert [f.index for f in got] == list(range(7))
    assert np.diff([f.time for f in got]) == pytest.approx([0.25] * 6, abs=1e-6)


def reading_ahead(source: FrameSource) -> bool:
    return any(thread.name == f"read-ahead {source.name}" for thread in threading.enumerate())


def test_replay_decodes_ahead_and_delivers_the_same_frames(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def replay(ahead: int) -> list[tuple[int, float, bytes]]:
        monkeypatch.setattr(FrameSource, "READ_AHEAD", ahead)
        with ImageFolderSource(images_config(str(folder), loop=True, fps=4), realtime=False) as source:
            assert reading_ahead(source) == (ahead > 0)
            frames = [source.read() for _ in range(7)]
        return [(f.index, f.time - frames[0].time, f.image.tobytes()) for f in frames if f is not None]

    assert replay(2) == replay(0)
    assert len(replay(1)) == 7


def test_reading_ahead_ends_with_close_and_starts_again_with_open(folder: Path) -> None:
    source = ImageFolderSource(images_config(str(folder), loop=True), realtime=False)
    source.open()
    assert source.read() is not None
    source.close()  # while the thread is blocked on a full queue
    assert not reading_ahead(source)
    with source:
        frame = source.read()
        assert reading_ahead(source)
    assert frame is not None and frame.index == 1
    assert not reading_ahead(source)


def test_realtime_and_live_sources_do_not_read_ahead(folder: Path, picamera2: Any) -> None:
    with ImageFolderSource(images_config(str(folder), fps=50), realtime=True) as source:
        assert source.read() is not None
        assert not reading_ahead(source)
    with PiCameraSource(camera_config(), realtime=False) as camera:
        assert camera.read() is not None
        assert not reading_ahead(camera)


def test_realtime_folder_is_not_delivered_faster_than_fps(folder: Path) -> None:
    with ImageFolderSource(images_config(str(folder), loop=True, fps=50), realtime=True) as source:
        start = time.monotonic()
        for _ in range(10):
            assert source.read() is not None
        elapsed = time.monotonic() - start
    assert elapsed >= 9 / 50 - 0.005


def test_real_image_sequence_from_shared_data() -> None:
    folder = conftest.shared_data("cdnet-highway", "input")
    config = SourceConfig(kind="images", device=str(folder / "in00000*.jpg"), width=320, height=240)
    with make_source(config, realtime=False) as source:
        frames = read_all(source)
    assert len(frames) == 9
    assert all(f.image.shape == (240, 320) for f in frames)
    first = read_gray_reference(folder / "in000001.jpg")
    # A JPEG's own luma plane: BGR2GRAY's weights, so within a few levels of converting the colour.
    assert np.array_equal(frames[0].image, cv2.imread(str(folder / "in000001.jpg"), cv2.IMREAD_GRAYSCALE))
    assert np.abs(frames[0].image.astype(int) - first).max() <= 4


def read_gray_reference(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)


def test_real_720p_clip_from_shared_data_is_resized() -> None:
    path = conftest.shared_data("clips", "people-720p.avi")
    config = SourceConfig(kind="opencv", device=str(path), width=320, height=180)
    with make_source(config, realtime=False) as source:
        frames = [source.read() for _ in range(3)]
    got = [f for f in frames if f is not None]
    assert [f.image.shape for f in got] == [(180, 320)] * 3
    steps = np.diff([f.time for f in got])
    assert steps[0] > 0 and steps == pytest.approx([steps[0]] * 2, abs=1e-6)  # evenly spaced replay times


# --- lifecycle and the registry --------------------------------------------------------------------


def test_context_manager_closes_and_close_is_idempotent(clip: Path) -> None:
    with make_source(opencv_config(str(clip)), realtime=False) as source:
        assert source.is_open
        assert source.read() is not None
    assert not source.is_open
    source.close()
    source.close()
    with pytest.raises(SourceError, match="not open"):
        source.read()


def test_closes_when_the_block_raises(clip: Path) -> None:
    source = make_source(opencv_config(str(clip)))
    with pytest.raises(KeyError), source:
        raise KeyError("boom")
    assert not source.is_open


def test_make_source_picks_the_backend_for_the_device(clip: Path, folder: Path) -> None:
    source = make_source(SourceConfig(kind="opencv", device=str(clip)))
    assert type(source) is VideoFileSource and source.kind == "opencv" and not source.is_open
    assert type(make_source(SourceConfig(kind="opencv", device=0))) is CameraSource
    assert type(make_source(SourceConfig(kind="opencv", device="/dev/video0"))) is CameraSource
    assert type(make_source(SourceConfig(kind="opencv", device="rtsp://127.0.0.1:1/s"))) is StreamSource
    assert type(make_source(SourceConfig(kind="images", device=str(folder)))) is ImageFolderSource
    assert type(make_source(SourceConfig(kind="picamera"))) is PiCameraSource


def test_device_override_replays_a_recording_whatever_the_kind(clip: Path, folder: Path) -> None:
    camera_config = SourceConfig(kind="picamera", device=0, width=W, height=H)
    source = make_source(camera_config, realtime=False, device=str(clip))
    assert type(source) is VideoFileSource
    with source:
        assert len(read_all(source)) == 6
    assert type(make_source(camera_config, device=str(folder))) is ImageFolderSource
    assert type(make_source(camera_config, device=str(folder / "*.png"))) is ImageFolderSource
    assert type(make_source(camera_config, device=1)) is PiCameraSource


def test_importing_sources_does_not_import_picamera2() -> None:
    code = "import sys, monitor.sources; assert 'picamera2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the Pi camera, through a stand-in that follows picamera2's API ------------------------------------


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2)
    monkeypatch.setattr(fake_picamera2.Picamera2, "instances", [])
    monkeypatch.setattr(PiCameraSource, "settle_seconds", 0.1)
    return fake_picamera2


def camera_config(**kw: Any) -> SourceConfig:
    return SourceConfig(**({"kind": "picamera", "width": W, "height": H, "fps": 100} | kw))


@pytest.mark.parametrize(("width", "height"), [(160, 120), (150, 100), (101, 75)])
def test_picamera_delivers_the_luma_plane_without_padding(picamera2: Any, width: int, height: int) -> None:
    with PiCameraSource(camera_config(width=width, height=height)) as source:
        before = time.time()
        frame = source.read()
        after = time.time()
    assert frame is not None
    assert frame.image.shape == (height, width) and frame.image.dtype == np.uint8
    assert frame.image.flags.c_contiguous
    even = (width + width % 2, height + height % 2)
    assert np.array_equal(frame.image, picamera2.scene_y(*even)[:height, :width])
    assert not (frame.image[:, -4:] == picamera2.PADDING).all()  # no stride padding leaked in
    assert before <= frame.time <= after


def test_picamera_configuration_and_controls(picamera2: Any) -> None:
    config = camera_config(fps=30, controls={"Brightness": 0.2, "AwbMode": 1})
    with PiCameraSource(config) as source:
        assert source.read() is not None
        camera = picamera2.Picamera2.instances[-1]
        streams = camera.camera_configuration()
        assert streams["lores"]["size"] == (W, H) and streams["lores"]["format"] == "YUV420"
        assert streams["main"]["size"] == (W, H)
        assert camera.controls["FrameDurationLimits"] == (33333, 33333)  # picamera2's FrameRate: 30
        assert camera.controls["Brightness"] == 0.2 and camera.controls["AwbMode"] == 1
        assert camera.calls.index("set_controls") < camera.calls.index("start")
        assert camera.waits == [config.capture_timeout]
        assert camera.calls[-1] == "capture_array:lores"
    assert camera.calls[-3:] == ["cancel_all_and_flush", "stop", "close"]
    source.close()
    assert camera.calls.count("close") == 1


def test_picamera_reads_the_luma_plane_of_an_nv12_stream(picamera2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # libcamera's virtual camera (and other non-Pi pipelines) answer a YUV420 request with NV12.
    monkeypatch.setattr(picamera2, "OUTPUT_FORMATS", ("NV12",))
    with PiCameraSource(camera_config(width=150, height=100)) as source:
        frame = source.read()
        assert picamera2.Picamera2.instances[-1].camera_configuration()["lores"]["format"] == "NV12"
    assert frame is not None
    assert np.array_equal(frame.image, picamera2.scene_y(150, 100))


def test_picamera_scales_a_size_the_camera_chose_instead(picamera2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pipeline without the Pi's scaler (the virtual camera, a USB camera) offers only its own sizes.
    monkeypatch.setattr(picamera2, "OUTPUT_SIZES", ((320, 240),))
    with PiCameraSource(camera_config(width=W, height=H)) as source:
        frame = source.read()
    assert frame is not None
    expected = cv2.resize(picamera2.scene_y(320, 240), (W, H), interpolation=cv2.INTER_AREA)
    assert np.array_equal(frame.image, expected)  # the whole scene, not its top-left corner


def test_picamera_rejects_a_stream_without_a_luma_plane_first(picamera2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(picamera2, "OUTPUT_FORMATS", ("XBGR8888",))
    source = PiCameraSource(camera_config())
    with pytest.raises(SourceError, match=r"^picamera 0: the camera gives its small stream as XBGR8888, expected"):
        source.open()
    assert not picamera2.Picamera2.instances[-1].is_open


def test_picamera_unknown_control_names_it_and_the_cameras_controls(picamera2: Any) -> None:
    source = PiCameraSource(camera_config(controls={"Brightness": 0.1, "Zoom": 2}))
    with pytest.raises(ConfigError) as caught:  # no use waiting for it as for a lost camera
        source.open()
    message = str(caught.value)
    assert message.startswith("picamera 0: source.controls: this camera has no Zoom control (it has: AeEnable, ")
    assert "\n" not in message and "FrameRate" in message
    assert not picamera2.Picamera2.instances[-1].is_open


def test_picamera_without_a_frame_duration_control_runs_at_the_cameras_rate(
    picamera2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    controls = {k: v for k, v in picamera2.VIRTUAL_CONTROLS.items() if k != "FrameDurationLimits"}
    monkeypatch.setattr(picamera2, "CONTROLS", controls)
    with PiCameraSource(camera_config()) as source:
        assert source.read() is not None
        camera = picamera2.Picamera2.instances[-1]
        assert all("FrameRate" not in controls for controls in camera.control_history)


def test_picamera_timeout_is_a_source_error(picamera2: Any) -> None:
    config = camera_config(capture_timeout=0.5)
    with PiCameraSource(config) as source:
        assert source.read() is not None
        camera = picamera2.Picamera2.instances[-1]
        camera.hang = True
        with pytest.raises(SourceError, match=r"picamera 0: no frame within 0\.5 s"):
            source.read()
        assert camera.waits[-1] == 0.5
    # picamera2 would wait for ever in stop() behind the capture that timed out: it is cancelled first.
    assert camera.calls[-3:] == ["cancel_all_and_flush", "stop", "close"]
    assert not camera.is_open


def test_picamera_reopens_after_frames_stopped(picamera2: Any) -> None:
    source = PiCameraSource(camera_config(capture_timeout=0.2))
    with source:
        assert source.read() is not None
        picamera2.Picamera2.instances[-1].hang = True
        with pytest.raises(SourceError):
            source.read()
    with source:
        frame = source.read()
    assert frame is not None and frame.index == 1
    assert len(picamera2.Picamera2.instances) == 2 and not picamera2.Picamera2.instances[0].is_open


def test_picamera_lock_exposure_freezes_what_auto_exposure_found(picamera2: Any) -> None:
    with PiCameraSource(camera_config(lock_exposure=True)) as source:
        camera = picamera2.Picamera2.instances[-1]
        settled = dict(camera.last_metadata)
        locked = camera.control_history[-1]
        assert locked["AeEnable"] is False and locked["AwbEnable"] is False
        assert locked["ExposureTime"] == settled["ExposureTime"]
        assert locked["AnalogueGain"] == settled["AnalogueGain"]
        assert locked["ColourGains"] == settled["ColourGains"]
        assert camera.frames > 1  # it let frames go by before locking
        assert source.read() is not None
        assert camera.last_metadata["ExposureTime"] == settled["ExposureTime"]


def test_picamera_without_lock_exposure_leaves_auto_exposure_on(picamera2: Any) -> None:
    with PiCameraSource(camera_config()) as source:
        assert source.read() is not None
        camera = picamera2.Picamera2.instances[-1]
        assert all("AeEnable" not in controls for controls in camera.control_history)


def test_picamera_lock_exposure_without_auto_exposure_is_a_one_line_error(
    picamera2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(picamera2, "CONTROLS", picamera2.VIRTUAL_CONTROLS)
    source = PiCameraSource(camera_config(lock_exposure=True))
    with pytest.raises(ConfigError) as caught:  # not a lost camera: the daemon must not wait for it
        source.open()
    assert str(caught.value) == (
        "picamera 0: source.lock_exposure: this camera has no auto exposure to lock "
        "(libcamera advertises no AeEnable control); set lock_exposure: false"
    )
    assert not source.is_open and not picamera2.Picamera2.instances[-1].is_open


def test_picamera_lock_exposure_on_a_monochrome_camera_locks_exposure_only(
    picamera2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(picamera2, "CONTROLS", picamera2.MONO_CONTROLS)
    with PiCameraSource(camera_config(lock_exposure=True)) as source:
        camera = picamera2.Picamera2.instances[-1]
        settled = dict(camera.last_metadata)
        assert camera.control_history[-1] == {
            "AeEnable": False,
            "ExposureTime": settled["ExposureTime"],
            "AnalogueGain": settled["AnalogueGain"],
        }
        assert source.read() is not None


def test_picamera_absent_camera_names_the_device(picamera2: Any) -> None:
    source = make_source(camera_config(device=1))
    with pytest.raises(SourceError, match=r"^picamera 1: cannot start the camera: No camera number 1 found"):
        source.open()
    assert not source.is_open


def test_picamera_device_must_be_a_camera_number(picamera2: Any) -> None:
    source = PiCameraSource(camera_config(device="imx708"))
    with pytest.raises(ConfigError, match=r"^picamera imx708: source\.device must be a camera number"):
        source.open()
    assert picamera2.Picamera2.instances == []


def test_picamera_without_the_library_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 raises ImportError
    with pytest.raises(ConfigError, match="python3-picamera2"):
        PiCameraSource(camera_config()).open()
