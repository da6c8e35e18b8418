"""Arming logic: schedule windows in local time (across midnight and daylight saving), manual commands, snoozes,
and the state file that keeps them across restarts."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.arming import Override, Policy, Schedule, arming_record, clock_text, command_fields, parse_duration
from monitor.arming_state import ArmingState, read_overrides
from monitor.config import ArmingConfig, parse_config
from monitor.exc import CommandError, ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = ["door", "bench"]


def at(text: str) -> float:
    """A Berlin wall-clock time (``2026-12-02 21:55``) as Unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def arming(*windows: dict[str, Any], default: str = "armed", **extra: Any) -> ArmingConfig:
    return ArmingConfig.model_validate(
        {"timezone": "Europe/Berlin", "default": default, "schedule": list(windows), **extra}
    )


def policy(*windows: dict[str, Any], default: str = "armed") -> Policy:
    return Policy.from_config(arming(*windows, default=default))


NIGHT = {"name": "night", "from": "22:00", "to": "06:30", "set": "disarmed"}
DAY = {
    "name": "day",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "from": "07:30",
    "to": "18:00",
    "zones": ["door"],
    "set": "disarmed",
}


# -- schedule windows ------------------------------------------------------------------


def test_a_window_crossing_midnight_rules_from_its_start_to_the_next_morning() -> None:
    rules = policy(NIGHT)
    assert rules.decide("door", at("2026-12-02 21:59:59")).armed
    late = rules.decide("door", at("2026-12-02 22:00"))
    assert not late.armed and late.by == "schedule"
    assert late.reason == 'schedule "night" until thu 06:30'  # 2026-12-02 is a Wednesday
    assert late.until == at("2026-12-03 06:30")
    early = rules.decide("door", at("2026-12-03 03:00"))
    assert not early.armed and early.reason == 'schedule "night" until 06:30'
    assert not rules.decide("door", at("2026-12-03 06:29:59")).armed
    after = rules.decide("door", at("2026-12-03 06:30"))
    assert after.armed and after.reason == "default until 22:00" and after.until == at("2026-12-03 22:00")


def test_days_name_the_day_a_window_starts_on() -> None:
    rules = policy({**NIGHT, "days": ["fri"]})
    assert not rules.decide("door", at("2026-12-05 03:00")).armed  # Saturday morning: Friday's night
    assert rules.decide("door", at("2026-12-06 03:00")).armed  # Sunday morning: Saturday has no window
    assert rules.decide("door", at("2026-12-03 23:00")).armed  # Thursday night
    # The next boundary from a Saturday is the next Friday's 22:00, a week on.
    assert rules.decide("door", at("2026-12-05 07:00")).until == at("2026-12-11 22:00")


def test_a_window_names_its_zones_and_the_others_keep_the_default() -> None:
    rules = policy(DAY)
    noon = at("2026-12-02 12:00")
    door, bench = rules.decide("door", noon), rules.decide("bench", noon)
    assert not door.armed and door.reason == 'schedule "day" until 18:00'
    assert bench.armed and bench.reason == "default" and bench.until is None
    assert rules.decide("door", at("2026-12-05 12:00")).armed  # Saturday


def test_the_later_of_two_overlapping_windows_wins() -> None:
    rules = policy(NIGHT, {"name": "party", "from": "23:00", "to": "01:00", "set": "armed"})
    assert not rules.decide("door", at("2026-12-02 22:30")).armed
    party = rules.decide("door", at("2026-12-02 23:30"))
    assert party.armed and party.reason == 'schedule "party" until thu 01:00'
    assert not rules.decide("door", at("2026-12-03 01:30")).armed


def test_a_window_without_a_name_is_named_by_its_days_and_hours() -> None:
    rules = policy({"days": ["sat", "sun"], "from": "00:00", "to": "00:00", "set": "disarmed"})
    saturday = rules.decide("door", at("2026-12-05 15:00"))
    assert not saturday.armed and saturday.reason.startswith('schedule "sat,sun 00:00-00:00"')
    assert not rules.decide("door", at("2026-12-06 23:59")).armed  # a whole day each
    assert rules.decide("door", at("2026-12-07 00:00")).armed


# -- daylight saving (zoneinfo) --------------------------------------------------------


def test_a_night_window_is_shorter_when_the_clocks_go_forward() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST.
    schedule = Schedule(arming(NIGHT).schedule, tz=BERLIN)
    start = schedule.next_boundary("door", at("2026-03-28 21:00"))
    assert start == datetime(2026, 3, 28, 22, 0, tzinfo=BERLIN).timestamp()
    assert start is not None
    end = schedule.next_boundary("door", start)
    assert end == datetime(2026, 3, 29, 6, 30, tzinfo=BERLIN).timestamp()
    assert end is not None and end - start == 7.5 * 3600  # 22:00 to 06:30, one hour less than other nights
    rules = Policy(schedule)
    assert not rules.decide("door", end - 1).armed
    assert rules.decide("door", end).armed
    assert datetime.fromtimestamp(end, BERLIN).utcoffset() != datetime.fromtimestamp(start, BERLIN).utcoffset()


def test_a_night_window_is_longer_when_the_clocks_go_back() -> None:
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; the night from 22:00 to 06:30 lasts 9.5 hours.
    rules = policy(NIGHT)
    start = at("2026-10-24 22:00")
    state = rules.decide("door", start)
    assert not state.armed and state.until is not None
    assert state.until - start == 9.5 * 3600
    assert not rules.decide("door", start + 9.5 * 3600 - 1).armed
    assert rules.decide("door", start + 9.5 * 3600).armed


def test_a_window_starting_in_the_skipped_hour_still_starts_that_night() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the window starts when the clock reads 03:30 and ends at 04:00.
    rules = policy({"name": "gap", "from": "02:30", "to": "04:00", "set": "disarmed"})
    assert not rules.decide("door", datetime(2026, 3, 29, 3, 45, tzinfo=BERLIN).timestamp()).armed
    assert rules.decide("door", datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN).timestamp()).armed
    assert rules.decide("door", datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN).timestamp()).armed


# -- manual commands and snoozes ----------------------------------------------------------


def test_a_manual_command_holds_until_the_next_schedule_boundary() -> None:
    rules = policy(DAY)
    arm = Override(armed=True, by="mqtt", at=at("2026-12-02 10:00"))  # inside the day window
    held = rules.decide("door", at("2026-12-02 17:59"), arm)
    assert held.armed and held.by == "mqtt" and held.reason == "manual until 18:00"
    after = rules.decide("door", at("2026-12-02 18:00"), arm)
    assert after.armed and after.by == "schedule" and after.reason == "default until thu 07:30"

    disarm = Override(armed=False, by="http", at=at("2026-12-02 19:00"))  # outside: until the next window starts
    assert not rules.decide("door", at("2026-12-03 07:29"), disarm).armed
    morning = rules.decide("door", at("2026-12-03 07:30"), disarm)
    assert not morning.armed and morning.by == "schedule"  # the window disarms it now
    assert rules.decide("door", at("2026-12-03 18:00"), disarm).armed


def test_without_a_schedule_a_manual_command_holds_until_the_next() -> None:
    rules = policy()
    disarm = Override(armed=False, by="cli", at=at("2026-12-02 10:00"))
    state = rules.decide("door", at("2027-06-01 10:00"), disarm)
    assert not state.armed and state.reason == "manual" and state.until is None


def test_a_snooze_runs_out_then_the_schedule_rules_again() -> None:
    rules = policy(DAY)
    snooze = Override(armed=False, by="cli", at=at("2026-12-05 13:35"), until=at("2026-12-05 14:05"))  # Saturday
    state = rules.decide("door", at("2026-12-05 13:35"), snooze)
    assert not state.armed and state.reason == "snoozed until 14:05" and state.until == at("2026-12-05 14:05")
    assert not rules.decide("door", at("2026-12-05 14:04:59"), snooze).armed
    after = rules.decide("door", at("2026-12-05 14:05"), snooze)
    assert after.armed and after.by == "schedule"


def test_a_snooze_holds_across_a_boundary() -> None:
    rules = policy({**NIGHT, "set": "armed"}, default="disarmed")
    snooze = Override(armed=False, by="mqtt", at=at("2026-12-02 21:50"), until=at("2026-12-02 22:20"))
    assert not rules.decide("door", at("2026-12-02 22:05"), snooze).armed  # the night window arms at 22:00
    assert rules.decide("door", at("2026-12-02 22:20"), snooze).armed


def test_clock_text_says_the_day_when_it_is_not_today() -> None:
    now = at("2026-12-02 12:00")
    assert clock_text(at("2026-12-02 14:05"), now, BERLIN) == "14:05"
    assert clock_text(at("2026-12-04 07:30"), now, BERLIN) == "fri 07:30"
    assert clock_text(at("2026-12-20 07:30"), now, BERLIN) == "2026-12-20 07:30"


def test_durations() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90") == 90
    assert parse_duration(" 2d ") == 2 * 86400
    for bad in ("", "soon", "30x", "1h 30", "-5m", "0", "nan", "inf", "31d", "5m5"):
        with pytest.raises(CommandError):
            parse_duration(bad)


def test_command_fields_name_what_is_wrong() -> None:
    assert command_fields({"zone": "door", "for_seconds": 60}) == ("door", 60.0)
    assert command_fields({}) == (None, None)
    assert command_fields(None) == (None, None)
    for body, word in [
        ([], "body"),
        ({"zone": 3}, "zone"),
        ({"for_seconds": "1h"}, "for_seconds"),
        ({"for_seconds": True}, "for_seconds"),
        ({"for_seconds": -1}, "duration"),
        ({"zones": ["door"]}, "zones"),
    ]:
        with pytest.raises(CommandError, match=word):
            command_fields(body)


def test_the_event_line_says_who_and_until_when() -> None:
    state = policy(NIGHT).decide("door", at("2026-12-02 22:00"))
    line = arming_record("door", state, frame=7, now=at("2026-12-02 22:00")).to_json()
    assert line["type"] == "disarmed" and line["zone"] == "door" and line["by"] == "schedule" and line["frame"] == 7
    assert datetime.fromisoformat(line["until"]).timestamp() == at("2026-12-03 06:30")
    assert "score" not in line and "boxes" not in line


# -- the config -------------------------------------------------------------------------------


def test_config_errors_name_the_key() -> None:
    text = """
zones:
  door: {gpio: {pin: 22}}
arming:
  timezone: Mars/Olympus
  schedule:
    - {from: 7:30, to: "18:00", set: disarmed, zones: [door]}
    - {from: "07:30", to: "18:00", set: off}
    - {from: "07:30", to: "25:00", set: armed, dayz: [mon]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    problems = info.value.problems
    assert (
        "config.yaml: arming.timezone: unknown time zone, expected a name such as Europe/Berlin, got 'Mars/Olympus'"
        in problems
    )
    assert 'config.yaml: arming.schedule[0].from: must be a time of day in quotes, such as "07:30", got 450' in problems
    assert any(p.startswith("config.yaml: arming.schedule[1].set: must be 'armed' or 'disarmed'") for p in problems)
    assert any(p.startswith("config.yaml: arming.schedule[2].to: must be a time of day") for p in problems)
    assert "config.yaml: arming.schedule[2].dayz: unknown key (did you mean 'days'?)" in problems


def test_the_button_needs_a_pin_of_its_own_and_zones_must_exist() -> None:
    text = """
zones:
  door: {gpio: {pin: 22}}
  bench: {}
arming:
  schedule: [{from: "07:30", to: "18:00", set: disarmed, zones: [door, shed]}]
  button: {pin: GPIO22, zone: porch}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.problems == [
        "config.yaml: arming.schedule[0].zones: no zone 'shed' (zones: door, bench)",
        "config.yaml: arming.button.zone: no zone 'porch' (zones: door, bench)",
        "config.yaml: arming.button.pin: GPIO22 is already the output pin of zone 'door', "
        "and the button needs a pin of its own",
    ]


def test_a_legacy_config_with_arming_has_its_one_zone() -> None:
    config = parse_config('arming: {schedule: [{from: "22:00", to: "06:30", set: disarmed, zones: [main]}]}')
    assert config.arming is not None and config.arming.schedule[0].zones == ["main"]
    assert parse_config("source: {}").arming is None


def test_a_time_zone_is_known_on_a_system_without_a_time_zone_database(tmp_path: Path) -> None:
    # A minimal Debian (or a container) has no /usr/share/zoneinfo; PYTHONTZPATH pointing nowhere
    # makes zoneinfo see this machine the same way. The tzdata package answers instead.
    config = tmp_path / "config.yaml"
    config.write_text('arming: {timezone: Europe/Berlin, schedule: [{from: "22:00", to: "06:30", set: disarmed}]}\n')
    env = {**os.environ, "PYTHONTZPATH": str(tmp_path / "no-zoneinfo")}
    code = (
        "import sys; from monitor.config import load_config; from monitor.arming import Schedule; "
        "s = Schedule.from_config(load_config(sys.argv[1]).arming); print(s.tz)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Europe/Berlin"


# -- the state: threads, the file, restarts -----------------------------------------------------


def state_config(tmp_path: Path, *windows: dict[str, Any], **extra: Any) -> ArmingConfig:
    return arming(*windows, state_file=str(tmp_path / "armed.json"), **extra)


def test_a_restart_keeps_a_manual_disarm(tmp_path: Path) -> None:
    config = state_config(tmp_path)
    first = ArmingState(config, ZONES)
    first.command(armed=False, zone="door", by="cli", now=at("2026-12-02 10:00"))
    first.close()
    again = ArmingState(config, ZONES)  # a new process reads the file
    states = again.evaluate(at("2026-12-09 10:00"))
    assert not states["door"].armed and states["door"].by == "cli" and states["door"].reason == "manual"
    assert states["bench"].armed
    document = json.loads((tmp_path / "armed.json").read_text())
    assert document["version"] == 1 and list(document["zones"]) == ["door"]
    assert document["zones"]["door"]["armed"] is False and document["zones"]["door"]["until"] is None


def test_a_snooze_survives_a_restart_and_runs_out_on_time(tmp_path: Path) -> None:
    config = state_config(tmp_path)
    ArmingState(config, ZONES).command(armed=False, by="http", for_seconds=1800, now=at("2026-12-02 13:35"))
    again = ArmingState(config, ZONES)
    assert [s.reason for s in again.evaluate(at("2026-12-02 14:00")).values()] == ["snoozed until 14:05"] * 2
    assert all(s.armed for s in again.evaluate(at("2026-12-02 14:05")).values())


def test_the_file_is_replaced_whole_and_not_readable_by_everyone(tmp_path: Path) -> None:
    state = ArmingState(state_config(tmp_path), ZONES)
    for index in range(5):
        state.command(armed=index % 2 == 0, zone="door", by="button", now=at("2026-12-02 10:00") + index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["armed.json"]  # no temporary file left behind
    assert stat.S_IMODE(os.stat(tmp_path / "armed.json").st_mode) == 0o640
    assert ArmingState(state_config(tmp_path), ZONES).evaluate(at("2026-12-02 11:00"))["door"].armed


def test_a_toggle_of_the_whole_monitor_disarms_while_anything_is_armed(tmp_path: Path) -> None:
    state = ArmingState(state_config(tmp_path, DAY), ZONES)
    noon = at("2026-12-02 12:00")  # door disarmed by the day window, bench armed
    assert [s.armed for s in state.evaluate(noon).values()] == [False, True]
    assert [s.armed for s in state.command(armed=None, by="button", now=noon).values()] == [False, False]
    assert [s.armed for s in state.command(armed=None, by="button", now=noon + 1).values()] == [True, True]


def test_commands_name_unknown_zones_and_sources(tmp_path: Path) -> None:
    state = ArmingState(state_config(tmp_path), ZONES)
    with pytest.raises(CommandError, match="zone 'shed': no such zone"):
        state.command(armed=False, zone="shed", by="cli")
    with pytest.raises(CommandError, match="by:"):
        state.command(armed=False, by="schedule")
    with pytest.raises(CommandError, match="duration"):
        state.command(armed=False, by="cli", for_seconds=float("inf"))
    assert not (tmp_path / "armed.json").exists()


def test_a_broken_state_file_is_one_warning_and_the_schedule_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "armed.json"
    config = state_config(tmp_path, default="disarmed")
    for content, words in [
        (b"{not json", "not valid JSON"),
        (b'{"version": 2, "zones": {}}', '"version": 1'),
        (b"\xff\xfe", "not valid JSON"),
        (b" " * 70_000, "not a state file"),
    ]:
        path.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="monitor.arming_state"):
            state = ArmingState(config, ZONES)
        assert [r.getMessage() for r in caplog.records if words in r.getMessage() and str(path) in r.getMessage()]
        assert [s.armed for s in state.evaluate(at("2026-12-02 10:00")).values()] == [False, False]
    state.command(armed=True, zone="bench", by="cli")  # the next command writes a good file
    assert not ArmingState(config, ZONES).evaluate(at("2026-12-02 10:00"))["door"].armed


def test_bad_entries_are_left_out_one_by_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "armed.json"
    good = {"armed": False, "by": "mqtt", "at": "2026-12-02T10:00:00+01:00", "until": None}
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "zones": {
                    "door": good,
                    "bench": {**good, "armed": "no"},
                    "shed": good,  # a zone the config no longer has
                },
            }
        )
    )
    with caplog.at_level(logging.INFO, logger="monitor.arming_state"):
        overrides = read_overrides(path, ZONES)
    assert list(overrides) == ["door"] and overrides["door"].at == at("2026-12-02 10:00")
    messages = [r.getMessage() for r in caplog.records]
    assert any("zones.bench: armed: expected true or false" in m for m in messages)
    assert any("zones.shed: no such zone any more" in m for m in messages)


def test_a_file_that_cannot_be_written_is_reported_and_the_command_still_holds(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state file's folder should be")
    config = arming(state_file=str(blocker / "armed.json"))
    state = ArmingState(config, ZONES)
    states = state.command(armed=False, zone="door", by="http")
    assert not states["door"].armed
    assert state.save_error is not None and "armed.json" in state.save_error and not state.saved


def test_evaluate_is_computed_again_only_at_a_boundary_or_a_command(tmp_path: Path) -> None:
    state = ArmingState(state_config(tmp_path, NIGHT), ZONES, persist=False)
    first = state.evaluate(at("2026-12-02 21:00"))
    assert state.evaluate(at("2026-12-02 21:00:30")) is first
    assert state.evaluate(at("2026-12-02 22:00")) is not first  # the window starts
    assert not state.evaluate(at("2026-12-02 22:00"))["door"].armed
    before = state.evaluate(at("2026-12-02 22:00:10"))
    state.command(armed=True, zone="door", by="cli", now=at("2026-12-02 22:00:10"))
    after = state.evaluate(at("2026-12-02 22:00:10"))
    assert after is not before and after["door"].armed and not (tmp_path / "armed.json").exists()


def test_a_config_without_zones_gets_one_switch_and_a_config_with_zones_one_more_per_zone() -> None:
    from monitor.integrations.mqtt_switches import switch_discovery, switch_payload, switch_topics

    assert [(s.zone, s.command_topic) for s in switch_topics("monitor/pi", None)] == [(None, "monitor/pi/armed/set")]
    switches = switch_topics("monitor/pi", ["door", "armed"])  # a zone may even be called "armed"
    topics = [s.command_topic for s in switches] + [s.state_topic for s in switches]
    assert len(set(topics)) == 6
    configs = dict(switch_discovery(discovery_prefix="homeassistant", node="pi", switches=switches))
    assert sorted(configs) == [
        "homeassistant/switch/pi/armed/config",
        "homeassistant/switch/pi/armed_armed/config",
        "homeassistant/switch/pi/door_armed/config",
    ]
    assert [switch_payload(p) for p in (b"ON", b" off\n", b"on", b"1", b"true", b"", b"O" * 100)] == [
        True, False, True, None, None, None, None,
    ]  # fmt: skip
