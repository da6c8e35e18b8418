"""Judging the zones: a frame in, one :class:`~monitor.status.Verdict` per zone out.

A *change zone* is scored against the scene's reference; change zones that
compare alike (method, downscale, local level) share one
:class:`~monitor.similarity.Comparator`, so the frame is filtered once over the
box around all of them and each zone is a masked mean over that shared map. A
*state zone* has a comparator of its own holding its state references, which
shares the frame's filtered terms across them.

:class:`Watches` is the set of zones of one config, with the scene-level
lighting helpers (reference adaptation, light switch). It holds no camera, pin
or file writer: the daemon hands it frames and acts on the verdicts. Reading
the reference pictures (:func:`load_reference`, :func:`load_state_references`)
is the one thing here that touches the disk, once, when a set is built.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.adapt import LightSwitch, ReferenceAdapter
from monitor.config import Config, DetectionConfig, ZoneConfig, area_in_pixels
from monitor.detector import ActivityDetector, Detector, EventEnd, EventStart, StateDetector
from monitor.exc import ComparisonError, ConfigError, ReferenceImageError
from monitor.gating import ChangeGate, Standing
from monitor.images import ImageFileError, read_gray
from monitor.mask import zone_masks
from monitor.similarity import Comparator
from monitor.status import Scene, Verdict
from monitor.tamper import TamperCheck, TamperLook

__all__ = ["Watches", "load_reference", "load_state_references", "make_comparator"]

_log = logging.getLogger(__name__)


def _read_frame_sized(path: Path, config: Config, *, what: str, fix: str) -> np.ndarray:
    try:
        return read_gray(path, size=(config.source.width, config.source.height))
    except ImageFileError as exc:
        raise ReferenceImageError(f"{what} {exc}; {fix}") from None


def load_reference(config: Config, *, config_path: Path | str = "CONFIG") -> np.ndarray:
    """Read the scene's reference image; refuse one that is missing, unreadable or of the wrong size."""
    fix = f"capture one with: monitor capture-reference {config_path}"
    return _read_frame_sized(config.reference.path, config, what="reference", fix=fix)


def load_state_references(config: Config, name: str, *, config_path: Path | str = "CONFIG") -> dict[str, np.ndarray]:
    """Read the reference picture of each state of zone ``name``, checked like the scene's."""
    states = config.zones[name].states or {}
    return {
        state: _read_frame_sized(
            path,
            config,
            what=f"zones.{name}.states.{state}:",
            fix=f"capture it with: monitor capture-reference {config_path} --zone {name} --state {state}",
        )
        for state, path in states.items()
    }


def make_comparator(config: Config, reference: np.ndarray, mask: np.ndarray | None) -> Comparator:
    """A comparator of the top-level detection settings, for ``reference`` over ``mask``."""
    return _comparator(config.detection, reference, [mask])


def _comparator(detection: DetectionConfig, reference: np.ndarray, masks: Sequence[np.ndarray | None]) -> Comparator:
    return Comparator(
        reference,
        zones=masks,
        method=detection.method,
        local_level=detection.local_level,
        min_box_area=detection.min_box_area,
        downscale=detection.downscale,
    )


def _sharing_key(detection: DetectionConfig) -> tuple[object, ...]:
    """Change zones whose detection agrees on these share one comparator."""
    return (detection.method, detection.downscale, detection.local_level, detection.min_box_area)


@dataclass
class _ChangeGroup:
    comparator: Comparator
    names: list[str]
    gate: ChangeGate | None = None  # change gating, unless a zone of the group has max_skip_frames 0


def _watched(mask: np.ndarray | None, shape: tuple[int, int]) -> int:
    return shape[0] * shape[1] if mask is None else int(np.count_nonzero(mask))


class _ChangeWatch:
    """A change zone: its score against the scene's reference, its events."""

    kind = "change"

    def __init__(self, name: str, zone: ZoneConfig, mask: np.ndarray | None, shape: tuple[int, int]) -> None:
        self.name = name
        self.zone = zone
        area = zone.detection.min_area
        self.min_area = None if area is None else area_in_pixels(area, _watched(mask, shape))
        self.detector = Detector.from_config(zone.detection, min_area=self.min_area)

    def settle(self) -> None:
        self.detector.settle()

    def take_over(self, old: _Watch) -> bool:
        """Keep a running change zone's detector (its open event), under this zone's thresholds."""
        if not isinstance(old, _ChangeWatch):
            return False
        old.detector.reconfigure(self.zone.detection, min_area=self.min_area)
        self.detector = old.detector
        return True

    def judge(
        self,
        comparator: Comparator,
        index: int,
        score: float,
        changed: tuple[float, int],
        reused: bool = False,
        *,
        frame: int,
        now: float,
        armed: bool = True,
        hold: bool = False,
    ) -> Verdict:
        detector = self.detector
        settling = detector.settling or hold
        # Disarmed, the detector is held (no run counts, no event starts); settling still counts down.
        # Held for a tamper, nothing counts at all: the camera cannot be trusted.
        counts = (armed or detector.settling) and not hold
        outcome = detector.update(score, frame=frame, now=now, changed=changed[1]) if counts else None
        started = outcome if isinstance(outcome, EventStart) else None
        boxes = comparator.boxes_of_last(index) if started is not None else []  # of this frame: no second pass
        return Verdict(
            zone=self.name,
            kind="change",
            score=score,
            state="changed" if detector.active else "unchanged",
            settling=settling,
            active=detector.active,
            threshold=detector.threshold,
            clear_threshold=detector.clear_threshold,
            below=detector.below(score, changed[1]),
            changed_fraction=changed[0],
            changed_pixels=changed[1],
            boxes=boxes,
            started=started,
            ended=outcome if isinstance(outcome, EventEnd) else None,
            armed=armed,
            reused=reused,
        )

    def standing(self, last: Verdict | None) -> Standing:
        """Where the zone stands for change gating, after its verdict ``last``."""
        detector = self.detector
        steady = (
            last is not None
            and not detector.active
            and not detector.settling
            and last.started is None
            and last.ended is None
        )
        return Standing(
            score=last.score if last is not None else float("nan"),
            floor=max(detector.threshold, detector.clear_threshold),
            steady=steady,
        )


class _StateWatch:
    """A state zone: its scores against each state's reference, its named state."""

    kind = "state"

    def __init__(
        self, name: str, zone: ZoneConfig, references: Mapping[str, np.ndarray], mask: np.ndarray | None
    ) -> None:
        self.name = name
        self.zone = zone
        self.states = list(references)
        detection = zone.detection
        self.comparator = Comparator.of_states(
            [references[state] for state in self.states],
            mask=mask,
            method=detection.method,
            local_level=detection.local_level,
            downscale=detection.downscale,
        )
        self.detector = StateDetector.from_config(detection)
        self.on_states = frozenset(zone.gpio.on_states or ())

    def settle(self) -> None:
        self.detector.settle()

    def take_over(self, old: _Watch) -> bool:
        """Keep a running state zone's state, if it has the same states, under this zone's threshold."""
        if not isinstance(old, _StateWatch) or old.states != self.states:
            return False
        old.detector.reconfigure(self.zone.detection)
        self.detector = old.detector
        return True

    def judge(self, image: np.ndarray, *, frame: int, now: float, armed: bool = True, hold: bool = False) -> Verdict:
        scores = dict(zip(self.states, self.comparator.compare_references(image), strict=True))
        detector = self.detector
        settling = detector.settling or hold
        change = None if hold else detector.update(scores, frame=frame, now=now)
        best = max(scores.values())
        return Verdict(
            zone=self.name,
            kind="state",
            score=best,
            state=detector.state,
            settling=settling,
            active=armed and detector.state in self.on_states,
            threshold=detector.threshold,
            clear_threshold=detector.threshold,
            below=not best >= detector.threshold,
            scores=scores,
            changed_to=change,
            armed=armed,
        )


class _ActivityWatch:
    """An activity zone: each frame against the one ``compare_seconds`` before, moving or still.

    Keeps a small ring of the zone's crops (not whole frames), each with its
    frame time, and compares the frame with the newest one at least
    ``compare_seconds`` old. Movement is at least ``min_area`` pixels whose
    local similarity is under ``local_level``; the mean is not used.
    """

    kind = "activity"

    def __init__(
        self, name: str, zone: ZoneConfig, mask: np.ndarray | None, shape: tuple[int, int], *, fps: float
    ) -> None:
        assert zone.activity is not None
        self.name = name
        self.zone = zone
        self.activity = activity = zone.activity
        detection = zone.detection
        self.comparator = Comparator(
            np.zeros(shape, np.uint8),  # a stand-in until the first crop old enough takes its place
            mask=mask,
            method=detection.method,
            local_level=detection.local_level,
            downscale=detection.downscale,
        )
        self.min_area = area_in_pixels(activity.min_area, _watched(mask, shape))
        # A crop per frame for compare_seconds, twice over for a rate above fps; never unbounded.
        self._ring: deque[tuple[float, np.ndarray]] = deque(maxlen=math.ceil(2 * activity.compare_seconds * fps) + 2)
        self.detector = ActivityDetector(
            still_after=activity.still_after,
            trigger_frames=detection.trigger_frames,
            settle_frames=detection.settle_frames,
        )
        self.on_states = frozenset(zone.gpio.on_states or ())

    @property
    def ring_bytes(self) -> int:
        """What the ring holds now, in bytes."""
        return sum(crop.nbytes for _, crop in self._ring)

    def settle(self) -> None:
        self.detector.settle()
        self._ring.clear()  # frames from before the camera went are no measure of movement now

    def take_over(self, old: _Watch) -> bool:
        """Keep a running activity zone's state and clock, under this zone's times."""
        if not isinstance(old, _ActivityWatch):
            return False
        old.detector.reconfigure(
            still_after=self.activity.still_after,
            trigger_frames=self.zone.detection.trigger_frames,
            settle_frames=self.zone.detection.settle_frames,
        )
        self.detector = old.detector
        return True

    def judge(self, image: np.ndarray, *, frame: int, now: float, armed: bool = True, hold: bool = False) -> Verdict:
        ring = self._ring
        if (ring and now < ring[-1][0]) or hold:
            ring.clear()  # the clock stepped back, or the camera cannot be trusted (a tamper)
        due = now - self.activity.compare_seconds
        while len(ring) > 1 and ring[1][0] <= due:
            ring.popleft()  # keep the newest crop that is old enough, and those younger
        score, changed, movement = float("nan"), 0, None
        if ring and ring[0][0] <= due:
            self.comparator.set_reference_crop(ring[0][1])
            result = self.comparator.compare(image, boxes=False)
            score, changed = result.score, result.changed_pixels
            movement = changed >= self.min_area
        if not hold:
            ring.append((now, self.comparator.crop_of(image)))
        detector = self.detector
        settling = detector.settling or hold
        change = None if hold else detector.update(movement, frame=frame, now=now, scores={"changed_pixels": changed})
        return Verdict(
            zone=self.name,
            kind="activity",
            score=score,
            state=detector.state,
            settling=settling,
            active=armed and detector.state in self.on_states,
            armed=armed,
            threshold=self.zone.detection.local_level,
            clear_threshold=self.zone.detection.local_level,
            below=bool(movement),
            changed_pixels=changed,
            changed_to=change,
        )


_Watch = _ChangeWatch | _StateWatch | _ActivityWatch


class Watches:
    """Every zone of one config, judged together frame by frame.

    ``reference``: the scene's reference (None when every zone is a state
    zone). ``state_references``: zone name -> state -> picture. A set built
    for a reload takes the running set's detectors with :meth:`carry_over`
    once the reload is certain to go through.
    """

    def __init__(
        self,
        config: Config,
        *,
        reference: np.ndarray | None,
        state_references: Mapping[str, Mapping[str, np.ndarray]],
    ) -> None:
        self.config = config
        self.masks = zone_masks(config)
        if config.change_zones and reference is None:
            raise ReferenceImageError("reference: the change zones need the scene's reference")
        self.reference = reference
        self._groups: list[_ChangeGroup] = []
        self._watches: list[_Watch] = []
        self._change: dict[str, tuple[_ChangeGroup, int]] = {}
        self._last: dict[str, Verdict] = {}  # each change zone's last verdict, for change gating
        self._build(config, reference, state_references)
        self._scene: Scene | None = None
        self._blank: np.ndarray | None = None
        self.adapter = self._make_adapter(config, reference)
        self.light_switch = self._make_light_switch(config)
        self.tamper = None if config.tamper is None else TamperCheck(config.tamper, self.picture)

    @classmethod
    def load(cls, config: Config, *, config_path: Path | str = "CONFIG") -> Watches:
        """Read the reference pictures the config names and build the set."""
        reference = load_reference(config, config_path=config_path) if config.change_zones else None
        states = {
            name: load_state_references(config, name, config_path=config_path)
            for name, zone in config.zones.items()
            if zone.kind == "state"
        }
        return cls(config, reference=reference, state_references=states)

    def _build(
        self,
        config: Config,
        reference: np.ndarray | None,
        state_references: Mapping[str, Mapping[str, np.ndarray]],
    ) -> None:
        groups: dict[tuple[object, ...], list[str]] = {}
        for name, zone in config.zones.items():
            if zone.kind == "change":
                groups.setdefault(_sharing_key(zone.detection), []).append(name)
        for names in groups.values():
            assert reference is not None
            detection = config.zones[names[0]].detection
            try:
                comparator = _comparator(detection, reference, [self.masks[name] for name in names])
            except ComparisonError as exc:
                raise ConfigError([f"zones {', '.join(names)}: {exc}"]) from None
            group = _ChangeGroup(comparator, names, gate=self._gate(config, names))
            self._groups.append(group)
            for index, name in enumerate(names):
                self._change[name] = (group, index)
        shape = (config.source.height, config.source.width)
        for name, zone in config.zones.items():
            mask = self.masks[name]
            watch: _Watch
            if zone.kind == "change":
                watch = _ChangeWatch(name, zone, mask, shape)
            elif zone.kind == "activity":
                watch = _ActivityWatch(name, zone, mask, shape, fps=config.source.fps)
            else:
                watch = _StateWatch(name, zone, state_references[name], mask)
            self._watches.append(watch)

    def _gate(self, config: Config, names: list[str]) -> ChangeGate | None:
        max_skip = min(config.zones[name].detection.max_skip_frames for name in names)
        if max_skip == 0:
            return None
        return ChangeGate([self.masks[name] for name in names], self.shape, max_skip=max_skip)

    def carry_over(self, running: Watches) -> list[str]:
        """Take the running set's detectors for zones of the same name and kind (and states).

        An open event stays open and a known state stays known across a
        reload, under the new thresholds. Returns the running zones that
        have no place here (removed, or of another kind): the caller ends
        their open events.
        """
        mine = {watch.name: watch for watch in self._watches}
        dropped = []
        for old in running._watches:
            new = mine.get(old.name)
            if new is None or not new.take_over(old):
                dropped.append(old.name)
        if self.tamper is not None and running.tamper is not None:
            self.tamper.carry_over(running.tamper)
        return dropped

    @staticmethod
    def _make_adapter(config: Config, reference: np.ndarray | None) -> ReferenceAdapter | None:
        adapt = config.reference.adapt
        if not adapt.enabled or reference is None:
            return None
        # Each new reference costs the comparators a recomputation of their statistics,
        # so blend about once a second rather than every frame.
        return ReferenceAdapter(
            reference,
            rate=adapt.rate,
            every=max(1, round(config.source.fps)),
            hold_frames=max(zone.detection.clear_frames for zone in config.change_zones.values()),
        )

    @staticmethod
    def _make_light_switch(config: Config) -> LightSwitch | None:
        fraction = config.detection.lightswitch_fraction
        return None if fraction is None else LightSwitch(fraction=fraction)

    # -- what the set is --------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The zone names, in config order."""
        return [watch.name for watch in self._watches]

    @property
    def shape(self) -> tuple[int, int]:
        """The frame size the zones are judged at, (height, width)."""
        return (self.config.source.height, self.config.source.width)

    @property
    def scene(self) -> Scene:
        """The picture and the zones, for drawing; a new object whenever the reference changes."""
        if self._scene is None or self._scene.picture is not self.picture:
            kinds = {watch.name: watch.kind for watch in self._watches}
            self._scene = Scene(picture=self.picture, masks=dict(self.masks), kinds=kinds)
        return self._scene

    @property
    def picture(self) -> np.ndarray:
        """The picture to draw the zones on: the scene's reference, else the first state reference."""
        if self.reference is not None:
            return self.reference
        first = next((watch for watch in self._watches if isinstance(watch, _StateWatch)), None)
        if first is None:  # activity zones only: no picture of how it should look
            if self._blank is None:
                self._blank = np.full(self.shape, 64, np.uint8)
            return self._blank
        return first.comparator.reference

    @property
    def active(self) -> bool:
        """True while any change zone has an event open."""
        return any(isinstance(w, _ChangeWatch) and w.detector.active for w in self._watches)

    @property
    def settling(self) -> bool:
        """True while any zone still ignores frames after a (re)open."""
        return any(watch.detector.settling for watch in self._watches)

    @property
    def union_mask(self) -> np.ndarray | None:
        """Every pixel some zone watches (None: the whole frame)."""
        masks = [mask for mask in self.masks.values() if mask is not None]
        if len(masks) < len(self.masks):
            return None
        return np.logical_or.reduce(masks)

    def similarity_map(self, image: np.ndarray) -> np.ndarray:
        """The full-size local similarity map, NaN outside every zone (``monitor show``).

        Change zones are compared with the scene's reference, state zones with
        their best-matching state's picture.
        """
        full = np.full(image.shape, np.nan, np.float32)
        for watch in self._watches:
            if isinstance(watch, _ActivityWatch):
                continue  # compared with a moment before, not with a picture
            if isinstance(watch, _ChangeWatch):
                assert self.reference is not None
                reference = self.reference
            else:
                scores = watch.comparator.compare_references(image)
                reference = watch.comparator.references[int(np.argmax(scores))]
            detection = watch.zone.detection
            local = Comparator(
                reference, mask=self.masks[watch.name], method=detection.method, downscale=detection.downscale
            ).similarity_map(image)
            watched = np.isfinite(local)
            full[watched] = local[watched]
        return full

    def state_picture(self, name: str, state: str) -> np.ndarray:
        """The reference picture of ``state`` of state zone ``name``."""
        watch = self._watch(name)
        if not isinstance(watch, _StateWatch):
            raise KeyError(f"{name} is not a state zone")
        return watch.comparator.references[watch.states.index(state)]

    def state_names(self, name: str) -> list[str]:
        """The state names of state zone ``name`` (empty for a change zone)."""
        watch = self._watch(name)
        return list(watch.states) if isinstance(watch, _StateWatch) else []

    def _watch(self, name: str) -> _Watch:
        for watch in self._watches:
            if watch.name == name:
                return watch
        raise KeyError(name)

    # -- per frame ----------------------------------------------------------------

    def judge(
        self,
        image: np.ndarray,
        *,
        frame: int,
        now: float,
        disarmed: Collection[str] = (),
        hold: bool = False,
        reuse: bool = True,
    ) -> tuple[Verdict, ...]:
        """Score ``image`` in every zone and feed the detectors; one verdict per zone, in config order.

        A zone in ``disarmed`` is scored all the same, but its change detector
        is held (a state zone still follows its state) and its verdict is not
        ``active``. ``hold``: the camera cannot be trusted (a tamper): score,
        but start, end and change nothing; the verdicts say ``settling``. A
        group of change zones whose gate finds the frame like the last fully
        scored one keeps the last scores instead (monitor/gating.py); never
        with ``reuse=False`` nor while held.
        """
        results: dict[str, tuple[Comparator, int, float, tuple[float, int], bool]] = {}
        compared = []
        reuse = reuse and not hold
        for group in self._groups:
            if self._reusable(group, image, allowed=reuse):
                for index, name in enumerate(group.names):
                    last = self._last[name]
                    changed = (last.changed_fraction or 0.0, last.changed_pixels or 0)
                    results[name] = (group.comparator, index, last.score, changed, True)
                continue
            compared.append(group)
            for index, (name, comparison) in enumerate(
                zip(group.names, group.comparator.compare_zones(image), strict=True)
            ):
                changed = (comparison.changed_fraction, comparison.changed_pixels)
                results[name] = (group.comparator, index, comparison.score, changed, False)
        verdicts = []
        for watch in self._watches:
            armed = watch.name not in disarmed
            if isinstance(watch, _ChangeWatch):
                verdicts.append(watch.judge(*results[watch.name], frame=frame, now=now, armed=armed, hold=hold))
                self._last[watch.name] = verdicts[-1]
            else:
                verdicts.append(watch.judge(image, frame=frame, now=now, armed=armed, hold=hold))
        for group in compared:
            if group.gate is not None:
                group.gate.scored(image, [self._standing(name) for name in group.names])
        return tuple(verdicts)

    def _reusable(self, group: _ChangeGroup, image: np.ndarray, *, allowed: bool) -> bool:
        gate = group.gate
        if gate is None:
            return False
        if not gate.may_reuse(image, [self._standing(name) for name in group.names], held=not allowed):
            return False
        gate.reused()
        return True

    def _standing(self, name: str) -> Standing:
        watch = self._watch(name)
        assert isinstance(watch, _ChangeWatch)
        return watch.standing(self._last.get(name))

    @property
    def reused_share(self) -> float:
        """The share of comparisons change gating saved: over every group of change zones that share one."""
        gates = [group.gate for group in self._groups if group.gate is not None]
        frames = sum(gate.frames for gate in gates)
        return sum(gate.reused_frames for gate in gates) / frames if frames else 0.0

    def settle(self) -> None:
        """The source just (re)opened: every zone ignores its next settle_frames frames."""
        for watch in self._watches:
            watch.settle()
        self._reset_gates()

    def _reset_gates(self) -> None:
        for group in self._groups:
            if group.gate is not None:
                group.gate.reset()

    def finish(self, *, frame: int, now: float) -> list[tuple[str, EventEnd]]:
        """Close every open event because frames stopped; (zone, end) for each."""
        ended = []
        for watch in self._watches:
            if isinstance(watch, _ChangeWatch):
                end = watch.detector.finish(frame=frame, now=now)
                if end is not None:
                    ended.append((watch.name, end))
        return ended

    def finish_zone(self, name: str, *, frame: int, now: float) -> list[tuple[str, EventEnd]]:
        """Close zone ``name``'s open event, if any (the zone is leaving on a reload)."""
        watch = self._watch(name)
        end = watch.detector.finish(frame=frame, now=now) if isinstance(watch, _ChangeWatch) else None
        return [] if end is None else [(name, end)]

    def set_reference(self, reference: np.ndarray) -> None:
        """A new scene reference (adapted, or re-seeded after a light switch) for every change zone."""
        for group in self._groups:
            group.comparator.set_reference(reference)
        self.reference = reference
        if self.tamper is not None:
            self.tamper.set_reference(reference)
        self._reset_gates()

    # -- lighting ---------------------------------------------------------------

    def see_lighting(self, image: np.ndarray, *, frame: int) -> bool:
        """Before judging a frame: notice a light switch, finish re-seeding after one.

        Returns True when the scene's reference changed.
        """
        if self.light_switch is not None and self.light_switch.update(image):
            self._light_switched(frame)
        adapter = self.adapter
        if adapter is not None and adapter.reseeding and adapter.reseed(image, final=not self.settling):
            self.set_reference(adapter.reference)
            _log.info("frame %d: the reference now shows the new light", frame)
            return True
        return False

    def _light_switched(self, frame: int) -> None:
        """Nearly the whole frame changed at once: a lighting change, not an event."""
        assert self.light_switch is not None
        _log.warning(
            "frame %d: light switch (%.0f%% of the whole frame changed at once): not judging the next %d frames",
            frame,
            100 * self.light_switch.changed_fraction,
            self.config.detection.settle_frames,
        )
        self.settle()
        if self.adapter is None:
            _log.warning(
                "the reference still shows the old light: if events follow, use detection.method: ssim-structure "
                "or reference.adapt.enabled: true, or capture a new reference"
            )
        elif self.active:
            _log.warning("an event is open: the reference is not re-seeded, so what changed is not learned")
        else:
            self.adapter.begin_reseed()

    def learn(self, image: np.ndarray, verdicts: Sequence[Verdict]) -> bool:
        """After judging: blend a quiet frame into the reference when one is due; True when it changed.

        Quiet: no change zone settling, in an event or under its clear_threshold.
        """
        adapter = self.adapter
        if adapter is None:
            return False
        quiet = all(
            v.kind != "change" or (not v.active and not v.settling and v.score >= v.clear_threshold) for v in verdicts
        )
        if adapter.update(image, unchanged=quiet):
            self.set_reference(adapter.reference)
            return True
        return False

    def reset_lighting(self) -> None:
        """The source re-opened: the light switch has no previous frame to compare with."""
        if self.light_switch is not None:
            self.light_switch.reset()

    # -- tamper -----------------------------------------------------------------

    def check_tamper(self, image: np.ndarray, *, frame: int, now: float, live: bool) -> TamperLook:
        """Before judging a frame: is the camera covered, moved, blurred or frozen? (``tamper: null``: never)

        The look's ``image`` is the frame to judge: shifted back when the
        camera sagged within ``tamper.moved_pixels``.
        """
        if self.tamper is None:
            return TamperLook(image=image)
        return self.tamper.look(image, frame=frame, now=now, live=live)
