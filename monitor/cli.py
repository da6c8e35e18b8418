"""The ``monitor`` command line: the only place that prints and picks exit codes.

Exit codes: 0 success, 1 a runtime error (camera, files), 2 an invalid config
or command line. Errors are one line, ``monitor: error: ...``; ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.exc import ConfigError, MonitorError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2

Handler = Callable[[argparse.Namespace], int]


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file: print ``ok`` or one line per problem."""
    from monitor.config import load_config
    from monitor.events import check_log_path
    from monitor.mask import zone_masks

    try:
        config = load_config(args.config)
        zone_masks(config)
        check_log_path(config.events.log)
        notify_lines = _notify_lines(config)
    except ConfigError as exc:
        name = str(args.config)
        for problem in exc.problems:
            print(problem if problem.startswith(name) else f"{name}: {problem}")
        return EXIT_CONFIG
    print("ok")
    for name, zone in config.zones.items():
        states = f" states {', '.join(zone.states)}" if zone.states else ""
        pin = "no pin" if zone.gpio.pin is None else f"pin {zone.gpio.pin}"
        print(f"zone {name}: {zone.kind}{states}, threshold {zone.detection.threshold:g}, {pin}")
    if config.events.clips is not None:
        _print_clip_plan(config)
    for line in notify_lines:
        print(line)
    missing = []
    if config.change_zones and not config.reference.path.exists():
        missing.append((config.reference.path, ""))
    for name, zone in config.zones.items():
        missing.extend(
            (path, f" --zone {name} --state {state}")
            for state, path in (zone.states or {}).items()
            if not path.exists()
        )
    for path, flags in missing:
        print(
            f"note: reference {path} does not exist yet; make it with: monitor capture-reference {args.config}{flags}",
            file=sys.stderr,
        )
    return EXIT_OK


def _print_clip_plan(config: Any) -> None:
    """The clips' frame counts, the RAM their frames may take, and the codec this OpenCV writes."""
    from monitor.clips import ClipPlan, pick_codec

    plan = ClipPlan.of(config)
    print(plan.describe(config.events.clips))
    codec = pick_codec(plan.size, plan.fps)
    print(f"clips: written as {codec.name}" if codec else "clips: this OpenCV cannot write any video here")


def _notify_lines(config: Any) -> list[str]:
    """``monitor check``'s line for each notify target, its URL file read and its URLs masked."""
    if not config.notify:
        return []
    from monitor.integrations.notify import describe, read_urls

    return [
        f"notify[{index}]: {describe(target, read_urls(target, key=f'notify[{index}]'))}"
        for index, target in enumerate(config.notify)
    ]


def cmd_compare(args: argparse.Namespace) -> int:
    """The walkthrough as a command: MSE and SSIM of two images, optionally a diff picture."""
    from monitor.drawing import annotate, side_by_side
    from monitor.exc import ComparisonError
    from monitor.images import read_gray, write_image_atomic
    from monitor.similarity import Comparator, mse

    first, second = read_gray(args.a), read_gray(args.b)
    if first.shape != second.shape:
        raise ComparisonError(
            f"{args.b}: is {second.shape[1]}x{second.shape[0]}, expected the size of {args.a} "
            f"({first.shape[1]}x{first.shape[0]})"
        )
    mask = None
    if args.mask is not None:
        mask = read_gray(args.mask) >= 128
        if mask.shape != first.shape:
            raise ComparisonError(
                f"{args.mask}: is {mask.shape[1]}x{mask.shape[0]}, expected the image size "
                f"{first.shape[1]}x{first.shape[0]}"
            )
    comparator = Comparator(first, mask=mask, method=args.method, local_level=args.local_level)
    result = comparator.compare(second)
    print(f"MSE: {mse(first, second, mask):.2f}  SSIM: {result.score:.4f}")
    if args.diff is not None:
        picture = side_by_side(
            [
                annotate(first, mask=mask, boxes=result.boxes, label=Path(args.a).name),
                annotate(second, mask=mask, boxes=result.boxes, label=f"{Path(args.b).name}  {result.score:.4f}"),
            ]
        )
        write_image_atomic(args.diff, picture)
        print(f"wrote {args.diff} ({len(result.boxes)} changed regions boxed)")
    return EXIT_OK


def _install_signals(monitor: Any) -> None:
    """SIGTERM/SIGINT end the loop after the current frame; SIGHUP reloads the config.

    SIGUSR1 and SIGUSR2 are ignored: their default is to end the process on the
    spot, which would leave an event open and a relay on.
    """
    signal.signal(signal.SIGTERM, lambda *_: monitor.stop())
    signal.signal(signal.SIGINT, lambda *_: monitor.stop())
    signal.signal(signal.SIGHUP, lambda *_: monitor.reload())
    for ignored in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(ignored, signal.SIG_IGN)


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: watch the configured camera until stopped (or until a recording ends)."""
    import cv2

    from monitor.arming_state import ArmingState
    from monitor.config import load_config
    from monitor.daemon import Monitor
    from monitor.integrations import build_integrations
    from monitor.systemd import Notifier

    # One OpenCV thread: the pool's workers spin on the other cores after each parallel call
    # (0.6 ms of CPU per 640x480 frame measured here), and no comparison gains from them.
    cv2.setNumThreads(1)
    config = load_config(args.config)
    with contextlib.ExitStack() as stack:
        # READY=1 after the first scored frame, WATCHDOG=1 from the frame loop, RELOADING=1 around
        # SIGHUP, STOPPING=1 on the way out; all silent when not started by systemd.
        notifier = stack.enter_context(Notifier())
        # Armed zones (None without arming:): read from the state file, shared with MQTT, the page,
        # the control socket and the button, and closed after them all.
        arming = ArmingState.from_config(config)
        if arming is not None:
            stack.callback(arming.close)
        # Built (their own config checked: token and password files) before the monitor touches
        # any file or pin; started once it stands. Closed after it, so they hear its last event.
        integrations = build_integrations(
            config,
            scene=lambda: monitor.watches.scene,
            arming=arming,
            config_path=Path(args.config),
            reload=lambda: monitor.reload(),
            check=lambda new: monitor.would_load(new),
        )
        for integration in integrations:
            stack.callback(integration.close)
        monitor = stack.enter_context(
            Monitor(
                config,
                config_path=args.config,
                realtime=True,
                listeners=[notifier, *integrations],
                on_ready=notifier.ready,
                on_reloading=notifier.reloading,
                on_stopping=notifier.stopping,
                arming=arming,
            )
        )
        for integration in integrations:
            integration.start()
        _install_signals(monitor)
        summary = monitor.run()
    logging.getLogger("monitor").info(
        "stopped after %d frames, %d events, %d skipped; change gating kept %.0f %% of the comparisons",
        summary.frames,
        summary.events,
        summary.skipped,
        100 * summary.reused_share,
    )
    return EXIT_OK


def _replay_source(config: Any) -> Any:
    """The config for replaying a recording once: make_source picks the kind from the path."""
    return config.model_copy(update={"source": config.source.model_copy(update={"loop": False})})


def cmd_replay(args: argparse.Namespace) -> int:
    """Run the same pipeline over a recording, as fast as it goes."""
    from monitor.arming_state import ArmingState
    from monitor.config import load_config
    from monitor.daemon import Monitor
    from monitor.events import ScoreTable

    config = _replay_source(load_config(args.config))
    # The schedule alone: a replay neither reads nor writes the running daemon's state file.
    arming = ArmingState.from_config(config, persist=False)
    with contextlib.ExitStack() as stack:
        listeners = []
        if args.scores:
            listeners.append(ScoreTable(stack.enter_context(open(args.scores, "w", newline="", encoding="utf-8"))))
        monitor = Monitor(
            config, config_path=args.config, realtime=False, device=args.source, listeners=listeners, arming=arming
        )
        if args.start_time is not None:
            monitor.source.start_time = _start_time(args.start_time, arming)
        _install_signals(monitor)
        summary = monitor.run()
    print(
        f"replayed {summary.frames} frames in {summary.seconds:.2f} s ({summary.fps:.1f} frames/s), "
        f"{summary.events} events"
        + (f", {summary.skipped} skipped" if summary.skipped else "")
        + (
            f"; change gating kept {100 * summary.reused_share:.0f} % of the comparisons"
            if summary.reused_share
            else ""
        )
    )
    return EXIT_OK


def cmd_capture_reference(args: argparse.Namespace) -> int:
    """Write the per-pixel median of N frames as the reference, atomically."""
    import numpy as np

    from monitor.config import load_config
    from monitor.images import make_folder, write_image_atomic
    from monitor.sources import make_source

    config = load_config(args.config)
    path = _reference_path(config, args)
    frames: list[np.ndarray] = []
    with make_source(config.source, realtime=True) as source:
        for frame in _settled_frames(source, config, camera=True):
            frames.append(frame.image)
            if len(frames) >= args.frames:
                break
    if not frames:
        raise MonitorError(f"{config.source.device}: delivered no frames to make a reference from")
    reference = np.median(np.stack(frames), axis=0).astype(np.uint8)
    make_folder(path.parent)
    write_image_atomic(path, reference)
    print(f"wrote {path} ({reference.shape[1]}x{reference.shape[0]}, median of {len(frames)} frames)")
    return EXIT_OK


def _reference_path(config: Any, args: argparse.Namespace) -> Path:
    """The file capture-reference writes: the scene's reference, or with --zone/--state a state's picture."""
    if args.zone is None and args.state is None:
        return Path(config.reference.path)
    if args.zone is None or args.state is None:
        raise ConfigError(["capture-reference: --zone and --state go together (a state zone's picture)"])
    zone = config.zones.get(args.zone)
    if zone is None:
        raise ConfigError([f"{args.config}: zones.{args.zone}: no such zone (zones: {', '.join(config.zones)})"])
    if zone.states is None or args.state not in zone.states:
        states = ", ".join(zone.states) if zone.states else "none: it is a change zone"
        raise ConfigError([f"{args.config}: zones.{args.zone}.states.{args.state}: no such state (states: {states})"])
    return Path(zone.states[args.state])


def _zone_with_pin(config: Any, args: argparse.Namespace) -> Any:
    """The zone --zone names, or the only zone with a pin."""
    if args.zone is not None:
        if args.zone not in config.zones:
            raise ConfigError([f"{args.config}: zones.{args.zone}: no such zone (zones: {', '.join(config.zones)})"])
        return args.zone, config.zones[args.zone]
    with_pins = [name for name, zone in config.zones.items() if zone.gpio.pin is not None]
    if len(with_pins) != 1:
        raise MonitorError(
            f"{args.config}: "
            + (f"zones {', '.join(with_pins)} have pins: choose one with --zone" if with_pins else "no zone has a pin")
        )
    return with_pins[0], config.zones[with_pins[0]]


def cmd_test_output(args: argparse.Namespace) -> int:
    """Switch the configured pin on and off three times, to check the wiring."""
    from monitor.config import load_config
    from monitor.outputs import make_output, test_output

    config = load_config(args.config)
    name, zone = _zone_with_pin(config, args)
    gpio = zone.gpio
    if gpio.pin is None:
        raise MonitorError(f"{args.config}: {config.zone_key(name)}gpio.pin is null: there is no pin to test")
    level = "high" if gpio.active_high else "low"
    which = "" if config.legacy_zone else f" (zone {name})"
    print(f"switching GPIO {gpio.pin}{which} on (= {level}) and off {args.times} times...")
    with make_output(gpio) as output:
        test_output(output, times=args.times, on_seconds=args.seconds, off_seconds=args.seconds)
    print("done: the pin is off")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Show the whole pipeline on a scene made from sample photos, with a mock pin."""
    from monitor import demo

    demo.use_mock_pins()
    from gpiozero import Device

    from monitor.config import load_config
    from monitor.daemon import Monitor

    folder = Path(args.out)
    scene = demo.write_demo_files(folder)
    config = load_config(scene.config)
    print(f"demo: {scene.video} ({demo.FRAMES} frames at {demo.FPS} fps), watched area {demo.WATCHED}")
    print("a cup slides into the watched area, stays, and leaves; a rocket crosses the unwatched part\n")
    monitor = Monitor(config, config_path=scene.config, realtime=not args.fast)
    gpio = config.zones["main"].gpio
    pin = Device.pin_factory.pin(gpio.pin)
    monitor.listeners.append(demo.ConsoleListener(pin_state=lambda: bool(pin.state) == gpio.active_high, write=print))
    _install_signals(monitor)
    summary = monitor.run()
    print(
        f"\n{summary.frames} frames, {summary.events} event(s); expected one, from about frame "
        f"{scene.expected_event_frames[0]} to {scene.expected_event_frames[1]}"
    )
    print(f"event log: {config.events.log}\nsnapshots: {config.events.snapshots}/")
    return EXIT_OK


def _settled_frames(source: Any, config: Any, *, camera: bool) -> Iterator[Any]:
    """The source's frames until it ends; a Pi camera's first settle_frames (mis-exposed) left out."""
    skip = config.detection.settle_frames if camera and config.source.kind == "picamera" else 0
    while (frame := source.read()) is not None:
        if skip:
            skip -= 1
            continue
        yield frame


def _open_frames(config: Any, source: str | None) -> Any:
    """A source over ``source`` (a recording, read as fast as it goes) or the configured camera."""
    from monitor.sources import make_source

    if source is not None:
        return make_source(_replay_source(config).source, realtime=False, device=source)
    configured = make_source(config.source, realtime=True)
    if configured.is_recording:  # a configured file or folder too: only a live camera is worth waiting for
        configured = make_source(config.source, realtime=False)
    return configured


def _judge_frames(watches: Any, config: Any, args: argparse.Namespace) -> list[Any]:
    """The verdicts of ``--frames`` frames (or ``--seconds`` of them), one tuple per frame."""
    judged: list[Any] = []
    wrong_size = 0
    first_time: float | None = None
    with _open_frames(config, args.source) as source:
        for frame in _settled_frames(source, config, camera=args.source is None):
            if frame.image.shape != watches.shape:
                wrong_size += 1
                continue
            judged.append(watches.judge(frame.image, frame=frame.index, now=frame.time, reuse=False))
            first_time = frame.time if first_time is None else first_time
            if args.seconds is not None:
                if frame.time - first_time >= args.seconds:
                    break
            elif len(judged) >= args.frames:
                break
    if wrong_size:
        logging.getLogger("monitor").warning("skipped %d frames not of the reference's size", wrong_size)
    return judged


def _chosen_zones(config: Any, args: argparse.Namespace) -> list[str]:
    if args.zone is None:
        return list(config.zones)
    if args.zone not in config.zones:
        raise ConfigError([f"{args.config}: zones.{args.zone}: no such zone (zones: {', '.join(config.zones)})"])
    return [args.zone]


def cmd_tune(args: argparse.Namespace) -> int:
    """Score frames in every zone; suggest each change zone's thresholds, show each state zone's margin."""
    from monitor.config import load_config, update_config_file
    from monitor.tuning import area_spread, state_margin
    from monitor.watch import Watches

    config = load_config(args.config)
    names = _chosen_zones(config, args)
    watches = Watches.load(config, config_path=args.config)
    where = args.source if args.source is not None else f"{config.source.kind} {config.source.device}"
    amount = f"{args.seconds:g} s" if args.seconds is not None else f"{args.frames} frames"
    print(f"scoring {amount} from {where} with {config.detection.method}...", flush=True)
    judged = _judge_frames(watches, config, args)
    updates: dict[str, float] = {}
    for name in names:
        zone = config.zones[name]
        verdicts = [frame_verdicts[watches.names.index(name)] for frame_verdicts in judged]
        if not config.legacy_zone:
            print(f"\nzone {name} ({zone.kind}):")
        if zone.kind == "state":
            print(state_margin([v.scores for v in verdicts], threshold=zone.detection.threshold).explanation())
            continue
        if zone.activity is not None:
            moved = [v.changed_pixels or 0 for v in verdicts if v.score == v.score]  # frames with an earlier one
            print(f"changed pixels against the frame {zone.activity.compare_seconds:g} s before: {area_spread(moved)}")
            continue
        found = _tune_zone(name, [v.score for v in verdicts], zone.detection, args, several=len(names) > 1)
        quiet = [v.changed_pixels or 0 for v in verdicts if v.score >= found.threshold]
        print(f"changed pixels on the frames scored unchanged: {area_spread(quiet)} (pick min_area above it)")
        key = config.zone_key(name)
        updates[f"{key}detection.threshold"] = found.threshold
        updates[f"{key}detection.clear_threshold"] = found.clear_threshold
    if args.write and updates:
        backup = update_config_file(args.config, updates)
        print(f"updated {args.config} (the previous version is {backup}); a running daemon takes it on SIGHUP")
    return EXIT_OK


def _tune_zone(name: str, scores: list[float], detection: Any, args: argparse.Namespace, *, several: bool) -> Any:
    """Print the score spread and the suggestion for one change zone (and plot it); return the suggestion."""
    from monitor.images import write_image_atomic
    from monitor.preview import score_plot
    from monitor.tuning import suggest_thresholds

    found = suggest_thresholds(scores)
    print(
        f"{found.count} frames: min {found.minimum:.4f}  1%: {found.p1:.4f}  5%: {found.p5:.4f}  "
        f"median {found.median:.4f}"
    )
    print(
        f"suggested: threshold {found.threshold:.3f}  clear_threshold {found.clear_threshold:.3f}  "
        f"(configured: {detection.threshold:g}, {detection.clear_threshold:g})"
    )
    print(found.explanation())
    if args.plot is not None:
        plot = Path(args.plot)
        if several:
            plot = plot.with_name(f"{plot.stem}-{name}{plot.suffix}")
        picture = score_plot(
            scores,
            threshold=found.threshold,
            clear_threshold=found.clear_threshold,
            title=f"{name}: {detection.method} score per frame",
        )
        write_image_atomic(plot, picture)
        print(f"wrote {plot}")
    return found


def cmd_show(args: argparse.Namespace) -> int:
    """One picture: the reference with every zone's numbered polygons, a frame, and the local SSIM map."""
    from monitor.config import load_config
    from monitor.drawing import ZoneOutline, zone_colour
    from monitor.exc import ComparisonError
    from monitor.images import read_gray, write_image_atomic
    from monitor.mask import polygons_in_pixels
    from monitor.preview import show_picture
    from monitor.watch import Watches

    config = load_config(args.config)
    watches = Watches.load(config, config_path=args.config)
    reference = watches.picture
    height, width = watches.shape
    if args.frame is not None:
        frame, label = read_gray(args.frame), Path(args.frame).name
        if frame.shape != reference.shape:
            raise ComparisonError(
                f"{args.frame}: is {frame.shape[1]}x{frame.shape[0]}, expected the frame size {width}x{height}"
            )
    else:
        frame, label = _grab_frame(config, watches.shape), "current frame"
    verdicts = watches.judge(frame, frame=0, now=0.0, reuse=False)
    include: list[Any] = []
    exclude: list[Any] = []
    include_labels: list[str] = []
    exclude_labels: list[str] = []
    for name, zone in config.zones.items():
        units = zone.mask.units
        prefix = "" if config.legacy_zone else f"{name} "
        for group, labels, polygons, mark in (
            (include, include_labels, zone.mask.include, ""),
            (exclude, exclude_labels, zone.mask.exclude, "x"),
        ):
            group.extend(polygons_in_pixels(polygons, units=units, width=width, height=height))
            labels.extend(f"{prefix}{mark}{number}" for number in range(1, len(polygons) + 1))
    outlines = []
    if not config.legacy_zone:
        outlines = [
            ZoneOutline(f"{v.zone} {v.word} {v.score:.3f}", watches.masks[v.zone], zone_colour(index))
            for index, v in enumerate(verdicts)
        ]
    picture = show_picture(
        reference,
        frame,
        watches.similarity_map(frame),
        include=include,
        exclude=exclude,
        include_labels=include_labels,
        exclude_labels=exclude_labels,
        mask=watches.union_mask,
        score=verdicts[0].score if len(verdicts) == 1 else None,
        frame_label=label,
        zones=outlines,
    )
    write_image_atomic(args.out, picture)
    print(
        f"wrote {args.out}: reference with {len(include)} include and {len(exclude)} "
        f"exclude polygons | {label} | local SSIM (blue = like the reference, red = changed)"
    )
    return EXIT_OK


def _grab_frame(config: Any, shape: tuple[int, int]) -> Any:
    """One frame of the reference's size from the configured source, after the camera settles."""
    with _open_frames(config, None) as source:
        for frame in _settled_frames(source, config, camera=True):
            if frame.image.shape == shape:
                return frame.image
    raise MonitorError(f"{config.source.device}: delivered no frame of the size {shape[1]}x{shape[0]}")


# -- arm and disarm (issue 14) ---------------------------------------------------------


def cmd_arm(args: argparse.Namespace) -> int:
    """Arm a zone or every zone, in the running daemon or, when none runs, in the state file."""
    return _arming_command(args, armed=True)


def cmd_disarm(args: argparse.Namespace) -> int:
    """Disarm a zone or every zone (``--for``: a snooze), in the running daemon or in the state file."""
    return _arming_command(args, armed=False)


def _arming_command(args: argparse.Namespace, *, armed: bool) -> int:
    from monitor.arming_state import ArmingState
    from monitor.config import load_config
    from monitor.integrations.control import control_path, send_command

    config = load_config(args.config)
    if config.arming is None:
        raise ConfigError([f"{args.config}: arming: not configured; add an arming: section (see README.md)"])
    if args.zone is not None and args.zone not in config.zones:
        raise ConfigError([f"{args.config}: zones.{args.zone}: no such zone (zones: {', '.join(config.zones)})"])
    seconds = getattr(args, "duration", None)
    request = {"command": "arm" if armed else "disarm", "zone": args.zone, "for_seconds": seconds}
    reply = send_command(control_path(config.arming.state_file), request)
    if reply is None:
        # Nothing listens there: the daemon is not running, and will start from the file.
        state = ArmingState(config.arming, list(config.zones))
        states = state.command(armed=armed, zone=args.zone, for_seconds=seconds, by="cli")
        if state.save_error is not None:
            raise MonitorError(state.save_error)
        print(f"the monitor is not running: wrote {config.arming.state_file}")
        zones = {name: zone.to_json() for name, zone in states.items()}
    elif not reply.get("ok"):
        raise MonitorError(f"the running monitor refused: {reply.get('error')}")
    else:
        zones = reply["zones"]
        if reply.get("warning"):
            print(f"warning: {reply['warning']}", file=sys.stderr)
    for name, zone in zones.items():
        print(f"{name}: {'armed' if zone['armed'] else 'disarmed'} ({zone['reason']})")
    return EXIT_OK


def _duration(text: str) -> float:
    """An argparse type: a snooze such as 30m, 2h or 1h30m, as seconds."""
    from monitor.arming import parse_duration

    try:
        return parse_duration(text)
    except MonitorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _iso_time(text: str) -> Any:
    """An argparse type: an ISO-8601 time such as 2026-12-02T21:55 (local unless it says its offset)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time such as 2026-12-02T21:55, got {text!r}") from None


def _start_time(when: Any, arming: Any) -> float:
    """A --start-time as Unix seconds: without an offset, in the schedule's time zone (else the system's)."""
    if when.tzinfo is None and arming is not None and arming.timezone is not None:
        when = when.replace(tzinfo=arming.timezone)
    return float(when.timestamp())


def cmd_test_notify(args: argparse.Namespace) -> int:
    """Send one message with the current frame to every notify URL; say per URL whether it went through."""
    import dataclasses
    import socket
    import tempfile
    import time

    from monitor.config import load_config
    from monitor.images import write_image_atomic
    from monitor.integrations.notify import render, sample_record, send, services
    from monitor.watch import Watches

    config = load_config(args.config)
    if not config.notify:
        raise MonitorError(f"{args.config}: notify: is not set, so there is nothing to test")
    zone = _chosen_zones(config, args)[0]
    targets = [(index, target) for index, target in enumerate(config.notify) if zone in (target.zones or [zone])]
    if not targets:
        raise MonitorError(f"{args.config}: no notify target tells of zone {zone!r} (see their zones:)")
    prepared = [(index, target, services(target, key=f"notify[{index}]")) for index, target in targets]
    watches = Watches.load(config, config_path=args.config)
    frame = _grab_frame(config, watches.shape)
    now = time.time()
    verdicts = watches.judge(frame, frame=0, now=now, reuse=False)
    sent = failed = 0
    with tempfile.TemporaryDirectory(prefix="monitor-test-notify-") as folder:
        path = write_image_atomic(Path(folder) / "test-notify.jpg", _test_picture(watches, frame, verdicts, zone, now))
        record = sample_record(next(v for v in verdicts if v.zone == zone), now=now, snapshot=path)
        for index, target, prepared_services in prepared:
            message = render(target, record, host=socket.gethostname())
            message = dataclasses.replace(message, title=f"test: {message.title}")
            for service in prepared_services:
                delivery = send(service, message)
                sent, failed = sent + delivery.ok, failed + (not delivery.ok)
                outcome = f"sent   notify[{index}] {delivery.service}"
                print(outcome if delivery.ok else f"FAILED notify[{index}] {delivery.service}: {delivery.reason}")
    print(f"{sent} of {sent + failed} sent" + ("; see the reasons above" if failed else ""))
    return EXIT_OK if failed == 0 else EXIT_ERROR


def _test_picture(watches: Any, frame: Any, verdicts: Any, zone: str, now: float) -> Any:
    """The frame with every zone outlined (``zone`` bold) and the time, as test-notify sends it."""
    from monitor.drawing import ZoneOutline, annotate, draw_zones, zone_colour
    from monitor.status import iso_time

    picture = annotate(frame, label=f"monitor test-notify  {iso_time(now)[:19]}")
    outlines = [
        ZoneOutline(f"{v.zone} {v.word} {v.score:.2f}", watches.masks[v.zone], zone_colour(i), bold=v.zone == zone)
        for i, v in enumerate(verdicts)
    ]
    draw_zones(picture, outlines)
    return picture


def _count(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch a camera for change against a reference image (SSIM) and switch a GPIO pin.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config", type=Path)
    check.set_defaults(handler=cmd_check)

    compare = sub.add_parser("compare", help="compare two images: MSE and SSIM")
    compare.add_argument("a", type=Path, help="first image (the reference)")
    compare.add_argument("b", type=Path, help="second image")
    compare.add_argument("--mask", type=Path, help="PNG of the same size, white = watched")
    compare.add_argument("--method", choices=["ssim", "ssim-structure"], default="ssim")
    compare.add_argument("--diff", type=Path, help="write both images with changed regions boxed")
    compare.add_argument(
        "--local-level", type=float, default=0.5, help="local SSIM below which a pixel is changed (0.5)"
    )
    compare.set_defaults(handler=cmd_compare)

    run = sub.add_parser("run", help="watch the camera and switch the pin (the daemon)")
    run.add_argument("config", type=Path)
    run.set_defaults(handler=cmd_run)

    replay = sub.add_parser("replay", help="run the same pipeline over a video file or image folder")
    replay.add_argument("config", type=Path)
    replay.add_argument("--source", required=True, help="video file, image folder or glob")
    replay.add_argument("--scores", type=Path, help="write one CSV row per frame here")
    replay.add_argument(
        "--start-time",
        type=_iso_time,
        help="the time of the recording's first frame, e.g. 2026-12-02T21:55 (local), to check a schedule",
    )
    replay.set_defaults(handler=cmd_replay)

    capture = sub.add_parser("capture-reference", help="save the median of N frames as the reference")
    capture.add_argument("config", type=Path)
    capture.add_argument("--frames", type=_count, default=10, help="frames to take the median of (10)")
    capture.add_argument("--zone", help="with --state: write this state zone's picture of that state")
    capture.add_argument("--state", help="the state the zone is in now (with --zone)")
    capture.set_defaults(handler=cmd_capture_reference)

    test = sub.add_parser("test-output", help="switch the pin on and off to check the wiring")
    test.add_argument("config", type=Path)
    test.add_argument("--zone", help="the zone whose pin to switch (needed when several zones have pins)")
    test.add_argument("--times", type=int, default=3)
    test.add_argument("--seconds", type=float, default=0.5, help="seconds on, then off (0.5)")
    test.set_defaults(handler=cmd_test_output)

    demo = sub.add_parser("demo", help="show the monitor at work on a made-up scene, no camera needed")
    demo.add_argument("--out", default="demo-output", help="folder for the scene, event log and snapshots")
    demo.add_argument("--fast", action="store_true", help="do not pace the video at its frame rate")
    demo.set_defaults(handler=cmd_demo)

    tune = sub.add_parser("tune", help="score frames and suggest threshold and clear_threshold")
    tune.add_argument("config", type=Path)
    tune.add_argument("--source", help="score this video file, image folder or glob instead of the camera")
    amount = tune.add_mutually_exclusive_group()
    amount.add_argument("--frames", type=_count, default=300, help="frames to score (300)")
    amount.add_argument("--seconds", type=float, help="score this many seconds of frames instead")
    tune.add_argument("--zone", help="tune only this zone")
    tune.add_argument("--write", action="store_true", help="put the suggestion into CONFIG (keeps a .bak copy)")
    tune.add_argument("--plot", type=Path, help="write a PNG of the score over time with both thresholds")
    tune.set_defaults(handler=cmd_tune)

    show = sub.add_parser("show", help="one picture: reference with the mask, a frame, the local SSIM map")
    show.add_argument("config", type=Path)
    show.add_argument("--out", type=Path, default=Path("preview.png"), help="the picture to write (preview.png)")
    show.add_argument("--frame", type=Path, help="compare this image instead of a frame from the camera")
    show.set_defaults(handler=cmd_show)

    for name, verb in (("arm", "arm"), ("disarm", "disarm")):
        command = sub.add_parser(name, help=f"{verb} a zone or the whole monitor (running or not)")
        command.add_argument("config", type=Path)
        command.add_argument("--zone", help="only this zone (default: every zone)")
        if name == "disarm":
            command.add_argument(
                "--for", dest="duration", type=_duration, help="a snooze: only this long, e.g. 30m, 2h, 1h30m"
            )
        command.set_defaults(handler=cmd_arm if name == "arm" else cmd_disarm)
    notify = sub.add_parser("test-notify", help="send a message with the current frame to every notify URL")
    notify.add_argument("config", type=Path)
    notify.add_argument("--zone", help="the zone the message names (default: the first zone)")
    notify.set_defaults(handler=cmd_test_notify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        if args.debug:
            raise
        for problem in exc.problems:
            print(f"monitor: error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except MonitorError as exc:
        if args.debug:
            raise
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
