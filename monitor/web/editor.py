"""The zone editor's side of the status server: read the zones, replace them, capture state pictures.

``/zones`` (static ``zones.html``/``zones.js``) reads :meth:`ZoneEditor.describe`
and sends the whole ``zones:`` mapping back to :meth:`ZoneEditor.save`, which
validates the config as it would be (the model ``monitor check`` uses, then the
reference pictures as a reload reads them), writes the file with its comments
kept and a ``.bak`` copy, and asks the monitor to reload as SIGHUP does.
Nothing here speaks HTTP: a refusal is an :class:`EditorError` carrying the
status code and the lines to show.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import UNKNOWN, ZONE_NAME, Config, DetectionConfig, load_config
from monitor.config_zones import config_zones_as_written, replace_config_zones
from monitor.exc import ConfigError, MonitorError
from monitor.images import write_image_atomic
from monitor.web.state import LiveState

__all__ = ["EditorError", "ZoneEditor"]

_log = logging.getLogger(__name__)

MAX_ZONES = 64  # each zone is a frame-sized mask in memory: a bound on what one request can ask for
MAX_DEPTH = 8  # zones > zone > mask > include > polygon > point > number is 7 deep
CAPTURE_FRAMES = 5  # a state picture is the median of this many frames (sensor noise out), as capture-reference
CAPTURE_SECONDS = 10.0  # ...or of those that arrived in this long
README_HINT = "see the README, section 'Zone editor'"


class EditorError(MonitorError):
    """A request the editor refuses: the HTTP status and one line per problem."""

    def __init__(self, status: HTTPStatus, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status = status
        self.problems = problems


class ZoneEditor:
    """Reads and replaces the ``zones:`` of the monitor's config file.

    ``config_path``: the file the monitor runs from (None: nothing to edit).
    ``reload``: asks the monitor to re-read it, as SIGHUP does; ``check``:
    raises what that reload would refuse (a picture missing), before a save. ``token_set``:
    whether the server has a token; without one the editor is read-only,
    since anyone who can reach the page could otherwise rewrite the config.
    """

    def __init__(
        self,
        config_path: Path | None,
        *,
        live: LiveState,
        reload: Callable[[], None] | None,
        token_set: bool,
        stopping: threading.Event,
        check: Callable[[Config], None] | None = None,
    ) -> None:
        self.config_path = Path(config_path) if config_path is not None else None
        self._live = live
        self._reload = reload
        self._would_load = check
        self._token_set = token_set
        self._stopping = stopping
        self._save_lock = threading.Lock()

    # -- reading ----------------------------------------------------------------

    @property
    def read_only_reason(self) -> str | None:
        """Why nothing can be changed from the page, or None."""
        if self.config_path is None:
            return "this monitor runs without a config file, so there is nothing to save the zones to"
        if not self._token_set:
            return (
                "read-only: the status server has no token. To edit the zones here, set http.token "
                "(16+ characters) or http.token_file in the config, restart the monitor, and open "
                "/zones?token=<token>"
            )
        return None

    def describe(self) -> dict[str, Any]:
        """The body of ``GET /api/config/zones``: the zones as written and what the page needs to draw them."""
        height, width = self._live.scene().picture.shape[:2]
        answer: dict[str, Any] = {
            "config": None,
            "version": None,
            "zones": {},
            "width": width,
            "height": height,
            "defaults": _detection_json(DetectionConfig()),
            "problems": [],
            "read_only": self.read_only_reason,
            "not_writable": None,
        }
        path = self.config_path
        if path is None:
            return answer
        answer["config"] = str(path)
        try:
            answer["version"] = _version(path)
            answer["zones"] = config_zones_as_written(path)
            config = load_config(path)
        except ConfigError as exc:
            answer["problems"] = exc.problems
        except OSError as exc:
            answer["problems"] = [f"{path}: cannot read: {exc.strerror or exc}"]
        else:
            answer["width"], answer["height"] = config.source.width, config.source.height
            answer["defaults"] = _detection_json(config.detection)
        answer["not_writable"] = _write_problem(path)
        return answer

    # -- writing ------------------------------------------------------------------

    def save(self, zones: Any, *, version: str | None = None) -> dict[str, Any]:
        """Replace the config's zones with ``zones`` (name -> zone, as in the file), then reload.

        ``version``: what :meth:`describe` said the file was; a file changed
        since (by hand, from another page) is not overwritten.
        """
        path = self._writable_path()
        if not isinstance(zones, dict):
            raise EditorError(
                HTTPStatus.BAD_REQUEST,
                [f"{path}: zones: expected a JSON object of zone name -> zone, got {type(zones).__name__}"],
            )
        if len(zones) > MAX_ZONES:
            raise EditorError(HTTPStatus.BAD_REQUEST, [f"{path}: zones: at most {MAX_ZONES} zones, got {len(zones)}"])
        if _deeper_than(zones, MAX_DEPTH):  # the YAML writer and the model recurse
            raise EditorError(HTTPStatus.BAD_REQUEST, [f"{path}: zones: nested more than {MAX_DEPTH} deep"])
        not_writable = _write_problem(path)
        if not_writable is not None:
            raise EditorError(HTTPStatus.CONFLICT, [not_writable])
        with self._save_lock:
            if version is not None and version != _version(path):
                raise EditorError(
                    HTTPStatus.PRECONDITION_FAILED,
                    [f"{path} changed since this page read it (edited by hand?): reload the page; nothing was written"],
                )
            try:
                backup = replace_config_zones(path, zones, check=self._check)
            except ConfigError as exc:
                raise EditorError(HTTPStatus.BAD_REQUEST, exc.problems) from None
            except OSError as exc:
                raise EditorError(HTTPStatus.CONFLICT, [_os_problem(path, exc)]) from None
            new_version = _version(path)
        _log.info("zone editor: wrote %s (zones %s; the old file is %s)", path, ", ".join(zones), backup)
        if self._reload is not None:
            self._reload()
        return {
            "saved": str(path),
            "backup": str(backup),
            "version": new_version,
            "zones": list(zones),
            "reloading": self._reload is not None,
        }

    def capture(self, request: Any) -> dict[str, Any]:
        """Save the live picture as state ``state`` of zone ``zone`` (``{"zone": ..., "state": ...}``).

        Into the file the config names for that state, or, for a state not
        in the config yet, ``<zone>-<state>.png`` beside the scene's
        reference; the answer's ``path`` is what to write under ``states:``.
        The median of a few frames, as ``monitor capture-reference`` takes it.
        """
        path = self._writable_path()
        zone, state = _capture_names(request)
        try:
            config = load_config(path)
        except ConfigError as exc:
            raise EditorError(HTTPStatus.CONFLICT, exc.problems) from None
        configured = config.zones[zone].states if zone in config.zones else None
        target = (configured or {}).get(state) or config.reference.path.parent / f"{zone}-{state}.png"
        healthy, word = self._live.health()
        if not healthy:
            raise EditorError(HTTPStatus.CONFLICT, [f"no live picture to capture: {word}"])
        frames = self._live_frames()
        picture = np.median(np.stack(frames), axis=0).astype(np.uint8)
        size = (config.source.height, config.source.width)
        if picture.shape[:2] != size:
            raise EditorError(
                HTTPStatus.CONFLICT,
                [f"the live frames are {picture.shape[1]}x{picture.shape[0]}, the config says {size[1]}x{size[0]}"],
            )
        try:
            write_image_atomic(target, picture)
        except OSError as exc:
            raise EditorError(HTTPStatus.CONFLICT, [_os_problem(Path(target), exc)]) from None
        _log.info("zone editor: captured state %s of zone %s into %s", state, zone, target)
        in_use = configured is not None and state in configured
        if in_use and self._reload is not None:
            self._reload()  # the running zone compares with the new picture from now on
        return {
            "zone": zone,
            "state": state,
            "path": _as_written(Path(target), path.parent),
            "file": str(target),
            "frames": len(frames),
            "reloading": in_use and self._reload is not None,
        }

    def _writable_path(self) -> Path:
        reason = self.read_only_reason
        if reason is not None or self.config_path is None:
            raise EditorError(HTTPStatus.FORBIDDEN, [reason or "nothing to edit"])
        return self.config_path

    def _check(self, config: Config) -> None:
        """What a reload would refuse beyond the model: masks that watch nothing, missing or odd pictures."""
        assert self.config_path is not None
        if self._would_load is None:
            return
        name = str(self.config_path)
        try:
            self._would_load(config)
        except ConfigError as exc:
            raise ConfigError([p if p.startswith(name) else f"{name}: {p}" for p in exc.problems]) from None
        except MonitorError as exc:
            raise ConfigError([f"{name}: {exc}"]) from None

    def _live_frames(self) -> list[np.ndarray]:
        frames: list[np.ndarray] = []
        seen = -1
        deadline = time.monotonic() + CAPTURE_SECONDS
        while len(frames) < CAPTURE_FRAMES and time.monotonic() < deadline and not self._stopping.is_set():
            latest = self._live.latest_image()
            if latest is not None and latest[0] != seen:
                seen = latest[0]
                frames.append(latest[1])
            else:
                self._stopping.wait(0.05)
        if not frames:
            raise EditorError(HTTPStatus.CONFLICT, ["no live picture to capture: no frame arrived"])
        return frames


def _capture_names(request: Any) -> tuple[str, str]:
    if not isinstance(request, dict) or set(request) != {"zone", "state"}:
        raise EditorError(HTTPStatus.BAD_REQUEST, ['expected {"zone": <zone name>, "state": <state name>}'])
    zone, state = request["zone"], request["state"]
    problems = [
        f"{what} {value!r}: must be 1-32 characters of a-z, 0-9, _ and -"
        for what, value in (("zone", zone), ("state", state))
        if not (isinstance(value, str) and ZONE_NAME.fullmatch(value))
    ]
    if state == UNKNOWN:
        problems.append(f"state {UNKNOWN!r}: is what a zone matching none of its states is, not a state's name")
    if problems:
        raise EditorError(HTTPStatus.BAD_REQUEST, problems)
    return zone, state


def _deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return False


def _detection_json(detection: DetectionConfig) -> dict[str, float]:
    return {"threshold": detection.threshold, "clear_threshold": detection.clear_threshold}


def _version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _as_written(target: Path, folder: Path) -> str:
    """``target`` as a config path: relative to the config's folder when inside it."""
    try:
        return str(target.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(target)


def _write_problem(path: Path) -> str | None:
    """Why the daemon could not replace ``path`` (it writes a temporary file and a .bak beside it), or None."""
    for target in (path, path.parent):
        try:
            if os.statvfs(target).f_flag & os.ST_RDONLY:
                return (
                    f"{target} is on a file system that is read-only for the monitor (the hardened systemd unit "
                    f"mounts /etc read-only): to save zones from this page, add ReadWritePaths={path.parent} "
                    f"to the unit; {README_HINT}"
                )
        except OSError as exc:
            return f"{target}: {exc.strerror or exc}"
        if not os.access(target, os.W_OK):
            return (
                f"{target} is not writable by the monitor (user {_user()}), and it needs to write "
                f"{path.name}, {path.name}.bak and a temporary file in {path.parent}; {README_HINT}"
            )
    return None


def _os_problem(path: Path, exc: OSError) -> str:
    return f"cannot write {path}: {exc.strerror or exc}. {_write_problem(path) or ''}".strip()


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
