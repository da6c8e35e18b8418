"""Event clips: the seconds before a change, the event itself and the seconds after, as a video file.

:class:`ClipRecorder` is fed every frame the loop judges (through
:class:`~monitor.actions.Actions`). It keeps the last ``pre_seconds`` of them
in a RAM ring buffer; when an event starts, the ring's frames and every frame
after them go to a writer thread, until ``post_seconds`` after the last open
event ended (an event that starts meanwhile joins the clip) or until the clip
is ``max_seconds`` long. The writer draws the zones, their state and score, the
changed boxes and the time on each frame, encodes it and, once the clip is
complete and reads back whole, renames it from a hidden ``.NAME.part.mp4`` to
its final name; then it deletes the oldest clips beyond ``keep_clips`` and
``max_clip_mb``.

The ring holds the **grey frames the loop compared**, not JPEGs: the loop
already made them (each is a new array per read, so keeping one costs a
reference, no copy), while encoding each to JPEG would cost every frame CPU in
the loop, events or not. Measured at 640x480 on the development machine
(x86): a JPEG (quality 90) costs 0.55 ms to encode and ~58 KB, a grey frame
0 ms and 300 KB; a Pi Zero 2 W is roughly ten times slower, which would make
JPEG ~5 ms of every frame. The memory this costs has a cap, printed by
``monitor check`` (:meth:`ClipPlan.memory_bytes`).

Nothing here can stop the frame loop: the loop only appends to the ring and
puts frames on a queue. When the writer falls behind (a slow SD card) by more
than :attr:`ClipPlan.queue_frames` frames, clip frames are dropped, counted
and logged, never camera frames; a full disk or an unwritable folder costs the
clip, logged.

Codec: H.264 in MP4 when this OpenCV's FFmpeg can encode it, else MPEG-4
Part 2 (``mp4v``) in MP4, else MJPEG in AVI; tried once per process
(:func:`pick_codec`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from monitor.closing import Closing
from monitor.config import ClipsConfig, Config
from monitor.drawing import ZoneOutline, annotate, draw_zones, zone_contours
from monitor.images import make_folder
from monitor.status import Box, Verdict, iso_time
from monitor.throttle import Throttle

__all__ = ["CODECS", "ClipPlan", "ClipRecorder", "Codec", "clip_name", "frames_in", "is_clip_name", "pick_codec"]

_log = logging.getLogger(__name__)

QUEUE_SECONDS = 2.0  # frames the writer may fall behind by, beyond a whole pre-roll, before clip frames drop
MIN_FREE_BYTES = 1 << 20  # below this much free space in the folder a clip is given up (the disk is full)
CLOSE_SECONDS = 10.0  # how long close() waits for the writer to finish the last clip
HURRY_SECONDS = 5.0  # then how long it waits while the writer skips the frames still queued
_CLIP_NAME = re.compile(r"^\d{8}-\d{6}\.\d{3}Z-f\d+-[a-z0-9_-]+\.(mp4|avi)$")
_PART_NAME = re.compile(r"^\.\d{8}-\d{6}\.\d{3}Z-f\d+-[a-z0-9_-]+\.part\.(mp4|avi)$")

Outlines = Callable[[Sequence[Verdict]], list[ZoneOutline]]


# -- the codec -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """A FourCC OpenCV's FFmpeg writer takes, the container it goes in, and what to call it."""

    fourcc: str
    suffix: str
    name: str


CODECS = (
    Codec("avc1", ".mp4", "H.264 in MP4"),
    # Plays on phones (iOS and Android list MPEG-4 Simple Profile) but not inside desktop browsers.
    Codec("mp4v", ".mp4", "MPEG-4 Part 2 in MP4"),
    Codec("MJPG", ".avi", "MJPEG in AVI"),
)
_picked: dict[tuple[int, int], Codec | None] = {}


def pick_codec(size: tuple[int, int], fps: float) -> Codec | None:
    """The first of :data:`CODECS` that writes a ``size`` (w, h) clip OpenCV reads back; None if none does.

    Tried once per size and process, in a temporary folder. FFmpeg says why a
    codec it lacks fails on stderr (on x86 "h264_v4l2m2m: Could not find a
    valid device"), which would read like an error in the journal at every
    start: the trial runs with stderr silenced.
    """
    if size not in _picked:
        with tempfile.TemporaryDirectory(prefix="monitor-codec-") as folder, _quiet_stderr():
            _picked[size] = next((codec for codec in CODECS if _writes(codec, Path(folder), size, fps)), None)
    return _picked[size]


def _writes(codec: Codec, folder: Path, size: tuple[int, int], fps: float) -> bool:
    path = folder / f"probe-{codec.fourcc}{codec.suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec.fourcc), fps, size)
    try:
        if not writer.isOpened():
            return False
        frame = np.full((size[1], size[0], 3), 128, np.uint8)
        for _ in range(2):
            writer.write(frame)
    finally:
        writer.release()
    return frames_in(path) >= 2


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    opencv_log = getattr(getattr(cv2, "utils", None), "logging", None)
    log_level = opencv_log.getLogLevel() if opencv_log is not None else None
    if opencv_log is not None:
        opencv_log.setLogLevel(opencv_log.LOG_LEVEL_SILENT)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if opencv_log is not None:
            opencv_log.setLogLevel(log_level)


def frames_in(path: Path) -> int:
    """How many frames the video file at ``path`` says it holds (0 when OpenCV cannot open it)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
    finally:
        capture.release()


# -- names -------------------------------------------------------------------------


def clip_name(*, when: float, frame: int, zone: str, suffix: str) -> str:
    """A file name that sorts by time, like a snapshot's: ``20261129-120000.123Z-f000120-door.mp4`` (UTC)."""
    stamp = datetime.fromtimestamp(when, UTC)
    return f"{stamp:%Y%m%d-%H%M%S}.{stamp.microsecond // 1000:03d}Z-f{frame:06d}-{zone}{suffix}"


def is_clip_name(name: str) -> bool:
    """Whether ``name`` is a finished clip's name as :func:`clip_name` makes them (no path, no partial file)."""
    return bool(_CLIP_NAME.fullmatch(name))


def _part_path(path: Path) -> Path:
    # The suffix stays last: FFmpeg picks the container from it.
    return path.with_name(f".{path.stem}.part{path.suffix}")


# -- the plan: frame counts and memory ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClipPlan:
    """The frame counts an ``events.clips`` section comes to, and what they cost in memory.

    ``frame_size`` (w, h) is the compared frame's; ``size`` the clip's (even
    sides, which H.264 needs). ``queue_frames`` frames may wait for the writer;
    beyond that clip frames are dropped.
    """

    fps: float
    pre_frames: int
    post_frames: int
    max_frames: int
    queue_frames: int
    frame_size: tuple[int, int]
    size: tuple[int, int]

    @classmethod
    def of(cls, config: Config) -> ClipPlan:
        """The plan for ``config.events.clips`` (which must be set) with the source's frame size and rate."""
        clips = config.events.clips
        assert clips is not None
        fps = clips.fps or config.source.fps
        pre = round(clips.pre_seconds * fps)
        frame_size = (config.source.width, config.source.height)
        width, height = clips.size or frame_size
        return cls(
            fps=fps,
            pre_frames=pre,
            post_frames=round(clips.post_seconds * fps),
            max_frames=max(1, round(clips.max_seconds * fps)),
            queue_frames=pre + math.ceil(QUEUE_SECONDS * fps),
            frame_size=frame_size,
            size=(max(2, width - width % 2), max(2, height - height % 2)),
        )

    @property
    def memory_bytes(self) -> int:
        """The most the grey frames held for clips take: the ring plus the frames waiting for the writer.

        The two overlap while a clip is written (the same arrays), so this is a cap, not the usual figure.
        """
        width, height = self.frame_size
        return (self.pre_frames + self.queue_frames) * width * height

    def describe(self, config: ClipsConfig) -> str:
        """One line for ``monitor check``."""
        width, height = self.frame_size
        return (
            f"clips: {config.folder}: {self.pre_frames} frames before and {self.post_frames} after each event "
            f"at {self.fps:g} fps, at most {self.max_frames}; RAM for grey {width}x{height} frames: "
            f"up to {self.memory_bytes / 1e6:.1f} MB ({self.pre_frames} in the ring buffer + "
            f"{self.queue_frames} waiting for the writer)"
        )


# -- what goes from the loop to the writer -------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    image: np.ndarray
    index: int
    time: float
    verdicts: Sequence[Verdict]
    boxes: tuple[Box, ...]


@dataclass(frozen=True, slots=True)
class _Begin:
    path: Path
    frames: list[_Frame]


@dataclass(frozen=True, slots=True)
class _End:
    path: Path
    reason: str


@dataclass(slots=True)
class _Clip:
    """A clip being recorded, as the loop sees it."""

    path: Path
    zones: set[str] = field(default_factory=set)
    post_until: int | None = None  # the last frame index of the post-roll, once no event is open in it
    frames: int = 0


# -- the loop's side ---------------------------------------------------------------------


class ClipRecorder(Closing):
    """The ring buffer and the clip being recorded; every method returns at once (the writer is a thread).

    ``outlines(verdicts)`` gives the zones as drawn on a frame (run in the
    writer thread). Call :meth:`event_started` and :meth:`event_ended` on the
    transitions of a frame, then :meth:`feed` with the frame.
    """

    def __init__(self, config: ClipsConfig, plan: ClipPlan, *, outlines: Outlines) -> None:
        self.config = config
        self.plan = plan
        self.folder = config.folder
        self.codec = pick_codec(plan.size, plan.fps)
        self.dropped = 0  # clip frames the writer had no room for
        self._ring: deque[_Frame] = deque(maxlen=plan.pre_frames)
        self._clip: _Clip | None = None
        self._paths: dict[str, Path] = {}  # zone -> the clip of its open event
        self._boxes: dict[str, list[Box]] = {}
        self._all_boxes: tuple[Box, ...] = ()
        self._last_index = -1
        self._sent = 0
        self._drop_warning = Throttle(_log)
        self._closed = False
        self._queue: queue.SimpleQueue[_Begin | _Frame | _End | None] = queue.SimpleQueue()
        self._writer = _ClipWriter(self._queue, config, plan, self.codec, outlines=outlines)
        if self.codec is None:
            _log.error("clips: this OpenCV can write none of %s; no clips", ", ".join(c.name for c in CODECS))
        else:
            _log.info("clips: %s, %dx%d at %g fps, in %s", self.codec.name, *plan.size, plan.fps, self.folder)
            _remove_parts(self.folder)
        self._writer.start()

    @classmethod
    def of(cls, config: Config, *, outlines: Outlines) -> ClipRecorder | None:
        """The recorder ``config.events.clips`` asks for, or None when it is absent."""
        if config.events.clips is None:
            return None
        return cls(config.events.clips, ClipPlan.of(config), outlines=outlines)

    # -- per frame ------------------------------------------------------------

    def feed(self, image: np.ndarray, verdicts: Sequence[Verdict], *, frame: int, now: float) -> None:
        """Keep the frame in the ring; while a clip is recorded, hand it to the writer.

        ``image`` is kept, not copied: the caller must not change it later.
        """
        item = _Frame(image, frame, now, verdicts, self._all_boxes)
        self._ring.append(item)
        self._last_index = frame
        clip = self._clip
        if clip is None:
            return
        self._send(item)
        clip.frames += 1
        if clip.frames >= self.plan.max_frames:
            self._finish(clip, "cut at max_seconds")
        elif clip.post_until is not None and frame >= clip.post_until:
            self._finish(clip, "complete")

    def event_started(self, zone: str, *, frame: int, now: float, boxes: Sequence[Box] = ()) -> None:
        """An event started in ``zone`` on ``frame``: begin a clip with the ring's frames, or join the one recorded."""
        self._set_boxes(zone, list(boxes))
        if self.codec is None or self._closed:
            return
        clip = self._clip
        if clip is None:
            clip = self._begin(zone, frame=frame, now=now)
        clip.zones.add(zone)
        clip.post_until = None
        self._paths[zone] = clip.path

    def event_ended(self, zone: str, *, frame: int) -> str | None:
        """The event in ``zone`` ended on ``frame``: the final path of its clip (None when it has none).

        The clip is complete ``post_seconds`` later; until then (and if it is
        lost: a full disk) nothing is at that path, never a partial file.
        """
        self._set_boxes(zone, [])
        path = self._paths.pop(zone, None)
        clip = self._clip
        if clip is not None and zone in clip.zones:
            clip.zones.discard(zone)
            if not clip.zones:
                clip.post_until = frame + self.plan.post_frames
                if self._last_index >= clip.post_until:
                    self._finish(clip, "complete")
        if path is None or path in self._writer.failed:
            return None
        return str(path)

    def _set_boxes(self, zone: str, boxes: list[Box]) -> None:
        if boxes:
            self._boxes[zone] = boxes
        else:
            self._boxes.pop(zone, None)
        self._all_boxes = tuple(box for zone_boxes in self._boxes.values() for box in zone_boxes)

    def _begin(self, zone: str, *, frame: int, now: float) -> _Clip:
        assert self.codec is not None
        path = self.folder / clip_name(when=now, frame=frame, zone=zone, suffix=self.codec.suffix)
        clip = _Clip(path)
        self._clip = clip
        pre_roll = [item for item in self._ring if item.index >= frame - self.plan.pre_frames]
        room = max(0, self.plan.queue_frames - self._in_flight)
        if len(pre_roll) > room:
            self._dropped(len(pre_roll) - room)
            pre_roll = pre_roll[len(pre_roll) - room :]
        self._sent += len(pre_roll)
        clip.frames = len(pre_roll)
        self._queue.put(_Begin(path, pre_roll))
        return clip

    def _send(self, item: _Frame) -> None:
        if self._in_flight >= self.plan.queue_frames:
            self._dropped(1)
            return
        self._sent += 1
        self._queue.put(item)

    @property
    def _in_flight(self) -> int:
        # _sent is only written here and _writer.done only by the writer, so neither update is lost.
        return self._sent - self._writer.done

    def _dropped(self, count: int) -> None:
        self.dropped += count
        self._drop_warning(
            logging.WARNING,
            "clips: the writer is %d frames behind (a slow disk?); %d clip frames dropped so far",
            self._in_flight,
            self.dropped,
        )

    def _finish(self, clip: _Clip, reason: str) -> None:
        self._queue.put(_End(clip.path, reason))
        self._clip = None

    # -- the end ------------------------------------------------------------------

    def close(self, *, timeout: float = CLOSE_SECONDS) -> None:
        """Finish the clip being recorded with the frames it has and stop the writer, within a bounded time.

        After ``timeout`` seconds the writer skips the frames still queued and
        finishes the clip with those it wrote; a writer stuck in the disk for
        ``HURRY_SECONDS`` more is left behind (a daemon thread), its partial
        file removed at the next start.
        """
        if self._closed:
            return
        self._closed = True
        if self._clip is not None:
            self._finish(self._clip, "stopped")
        self._queue.put(None)
        self._writer.join(timeout)
        if self._writer.is_alive():
            _log.warning("clips: the writer is still busy after %g s; skipping the frames it has not written", timeout)
            self._writer.hurry = True
            self._writer.join(HURRY_SECONDS)
        if self._writer.is_alive():
            _log.error("clips: the writer did not finish; the clip it writes is lost")


def _remove_parts(folder: Path) -> None:
    """Delete partial clips a killed monitor left behind."""
    try:
        parts = [path for path in folder.iterdir() if _PART_NAME.fullmatch(path.name)]
        for path in parts:
            path.unlink(missing_ok=True)
            _log.info("clips: removed %s, left unfinished by an earlier run", path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _log.warning("clips: cannot tidy %s: %s", folder, exc)


# -- the writer thread -----------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    path: Path
    part: Path
    writer: cv2.VideoWriter
    written: int = 0


class _ClipWriter(threading.Thread):
    """Draws, encodes and files the clips the recorder hands over, one message at a time.

    ``done`` counts the frames taken off the queue (written or not); ``failed``
    holds the paths of clips given up. Any failure costs the clip, never the thread.
    """

    def __init__(
        self,
        messages: queue.SimpleQueue[_Begin | _Frame | _End | None],
        config: ClipsConfig,
        plan: ClipPlan,
        codec: Codec | None,
        *,
        outlines: Outlines,
    ) -> None:
        super().__init__(name="clip-writer", daemon=True)
        self._messages = messages
        self._config = config
        self._plan = plan
        self._codec = codec
        self._outlines = outlines
        self._open: _Open | None = None
        self._canvas: np.ndarray | None = None
        self._contours: dict[int | tuple[int, ...], tuple[np.ndarray | None, Sequence[np.ndarray]]] = {}
        self._report = Throttle(_log, first=3)
        self.done = 0
        self.failed: set[Path] = set()
        self.hurry = False

    def run(self) -> None:
        while (message := self._messages.get()) is not None:
            try:
                if isinstance(message, _Frame):
                    self._write(message)
                elif isinstance(message, _Begin):
                    self._begin(message)
                else:
                    self._end(message)
            except Exception as exc:  # cv2.error, OSError, a bug: the clip is lost, the thread goes on
                if self._open is not None:
                    self._give_up(f"{type(exc).__name__}: {exc}")
                else:
                    self._report(logging.WARNING, "clips: %s failed: %s", type(message).__name__, exc, exc_info=True)

    def _begin(self, message: _Begin) -> None:
        if self._open is not None:
            self._end(_End(self._open.path, "replaced"))
        try:
            self._start(message.path)
        except Exception as exc:  # no folder, no permission: the clip is lost, its frames still counted off
            self.failed.add(message.path)
            self._report(logging.WARNING, "clip %s: not recorded: %s", message.path, exc)
        for item in message.frames:
            self._write(item)

    def _start(self, path: Path) -> None:
        assert self._codec is not None
        make_folder(path.parent)
        free = _free_bytes(path.parent)
        if free < MIN_FREE_BYTES:
            self.failed.add(path)
            self._report(logging.WARNING, "clip %s: not recorded: only %d KB free in %s", path, free >> 10, path.parent)
            return
        part = _part_path(path)
        fourcc = cv2.VideoWriter.fourcc(*self._codec.fourcc)
        writer = cv2.VideoWriter(str(part), fourcc, self._plan.fps, self._plan.size)
        if not writer.isOpened():
            writer.release()
            part.unlink(missing_ok=True)
            self.failed.add(path)
            self._report(logging.WARNING, "clip %s: not recorded: OpenCV cannot write %s there", path, self._codec.name)
            return
        self._open = _Open(path, part, writer)
        _log.info("clip %s: recording", path)

    def _write(self, item: _Frame) -> None:
        try:
            clip = self._open
            if clip is None or self.hurry:
                return
            if _free_bytes(clip.part.parent) < MIN_FREE_BYTES:
                self._give_up("the disk is full")
                return
            clip.writer.write(self._compose(item))
            clip.written += 1
        finally:
            self.done += 1

    def _end(self, message: _End) -> None:
        clip = self._open
        if clip is None or clip.path != message.path:
            return
        self._open = None
        clip.writer.release()
        readable = frames_in(clip.part)
        if clip.written == 0 or readable < clip.written:
            # A full disk shows here: FFmpeg's failed writes only print a warning.
            self._lost(clip, f"it reads back with {readable} of its {clip.written} frames (a full disk?)")
            return
        with open(clip.part, "rb") as handle:
            os.fsync(handle.fileno())  # on disk before it has its name: a power cut leaves no torn clip
        os.replace(clip.part, clip.path)
        _log.info("clip %s: %d frames, %s (%s)", clip.path, clip.written, message.reason, _size(clip.path))
        self._prune(keep=clip.path)

    def _give_up(self, reason: str) -> None:
        clip = self._open
        assert clip is not None
        self._open = None
        with contextlib.suppress(Exception):
            clip.writer.release()
        self._lost(clip, reason)

    def _lost(self, clip: _Open, reason: str) -> None:
        self.failed.add(clip.path)
        with contextlib.suppress(OSError):
            clip.part.unlink(missing_ok=True)
        self._report(logging.WARNING, "clip %s: lost: %s", clip.path, reason)

    # -- a frame as drawn ----------------------------------------------------------------

    def _compose(self, item: _Frame) -> np.ndarray:
        """The grey frame in colour with the zones, their state and score, the changed boxes and the time."""
        image = item.image
        shape = (*image.shape[:2], 3)
        if self._canvas is None or self._canvas.shape != shape:
            self._canvas = np.empty(shape, np.uint8)
        canvas = self._canvas
        annotate(image, boxes=item.boxes, label=f"{iso_time(item.time)[:19]}  frame {item.index}", out=canvas)
        draw_zones(canvas, [replace(z, contours=self._outline(z.mask, shape)) for z in self._outlines(item.verdicts)])
        if (shape[1], shape[0]) != self._plan.size:
            return cv2.resize(canvas, self._plan.size, interpolation=cv2.INTER_AREA)
        return canvas

    def _outline(self, mask: np.ndarray | None, shape: tuple[int, ...]) -> Sequence[np.ndarray]:
        # Finding a mask's outline costs ~0.5 ms at 640x480: once per mask (a reload brings new ones).
        key: int | tuple[int, ...] = id(mask) if mask is not None else shape
        cached = self._contours.get(key)
        if cached is None or cached[0] is not mask:
            if len(self._contours) > 64:
                self._contours.clear()
            cached = (mask, zone_contours(mask, shape))
            self._contours[key] = cached
        return cached[1]

    # -- retention -----------------------------------------------------------------------

    def _prune(self, *, keep: Path) -> None:
        """Delete the oldest clips beyond keep_clips and max_clip_mb; ``keep`` (the newest) stays."""
        try:
            sized = sorted((path, path.stat().st_size) for path in keep.parent.iterdir() if is_clip_name(path.name))
        except OSError as exc:
            self._report(logging.WARNING, "clips: cannot list %s for retention: %s", keep.parent, exc)
            return
        count, total = len(sized), sum(size for _, size in sized)
        max_bytes = self._config.max_clip_mb * 1e6
        for path, size in sized:
            if count <= self._config.keep_clips and total <= max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            count, total = count - 1, total - size
            _log.info("clip %s: deleted (retention)", path)


def _free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        return "size unknown"
