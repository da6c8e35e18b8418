"""The figures of issue 20 (a Pi Zero 2 W budget) in one table, from the rows the benchmarks return."""

from __future__ import annotations

import platform
from collections.abc import Iterator, Mapping, Sequence

from procstat import cpu_model

Row = Mapping[str, object]
WIDTHS = (72, 9, 38, 7)


def print_budget(results: Mapping[str, Sequence[Row]]) -> None:
    """Print the table (only the figures whose benchmarks ran)."""
    import cv2
    import numpy

    versions = f"Python {platform.python_version()}, OpenCV {cv2.__version__}, NumPy {numpy.__version__}"
    print(f"\n== issue 20, a Pi Zero 2 W budget: {cpu_model()}; {versions} ==")
    print(_line("figure", "target", "measured", ""))
    print("|" + "|".join("-" * (width + 2) for width in WIDTHS) + "|")
    for line in (
        *_instructions(results.get("bench_callgrind.py", []), results.get("bench_aarch64.py", [])),
        *_memory(results.get("bench_memory.py", [])),
        *_gating(results.get("bench_gating.py", [])),
        *_peers(results.get("bench_peers.py", [])),
    ):
        print(line)


def _line(figure: str, target: str, measured: str, verdict: str) -> str:
    cells = (figure, target, measured, verdict)
    return "| " + " | ".join(f"{cell:{width}}" for cell, width in zip(cells, WIDTHS, strict=True)) + " |"


def _met(value: float, limit: float) -> str:
    return "met" if value <= limit else "NOT met"


def _number(row: Row, key: str) -> float:
    value = row[key]
    assert isinstance(value, int | float)
    return float(value)


def _instructions(x86: Sequence[Row], arm: Sequence[Row]) -> Iterator[str]:
    titles = {
        "half": "instructions/frame, comparator, 320x240, half-frame mask",
        "whole": "  same, whole frame",
        "gate": "  a frame whose verdict is reused (the gate), half-frame mask",
    }
    for row in sorted(x86, key=lambda row: list(titles).index(str(row["case"]))):
        value = _number(row, "instructions_per_frame")
        half = row["case"] == "half"
        yield _line(
            titles[str(row["case"])],
            "<= 3.0 M" if half else "",
            f"{value / 1e6:.2f} M (x86-64, AVX2)",
            _met(value, 3.0e6) if half else "",
        )
    for row in arm:
        yield _line(f"  the same on aarch64 under qemu: {row['case']}", "", str(row["measured"]), "")


def _memory(rows: Sequence[Row]) -> Iterator[str]:
    for row in rows:
        if row.get("command") == "run":
            rss, anon = _number(row, "VmRSS_mb"), _number(row, "RssAnon_mb")
            yield _line(
                f"RSS of monitor run, {row['case']}",
                "<= 80 MB",
                f"{rss:.1f} MB, {anon:.1f} MB of it anonymous",
                _met(rss, 80.0),
            )


def _gating(rows: Sequence[Row]) -> Iterator[str]:
    for row in rows:
        share, off, on = _number(row, "reused_share"), _number(row, "ms_per_frame_off"), _number(row, "ms_per_frame_on")
        same = "same" if row["same_decisions"] else "DIFFER"
        yield _line(f"gating, {row['scene']}", "", f"{share:.1%} reused; CPU {off:.2f} -> {on:.2f} ms/frame", f"{same}")


def _peers(rows: Sequence[Row]) -> Iterator[str]:
    for scene in dict.fromkeys(str(row["scene"]) for row in rows):
        mine = [row for row in rows if row["scene"] == scene]
        motion = next((_number(r, "ms_per_frame") for r in mine if "every frame" in str(r["contender"])), None)
        for row in mine:
            value, decode = _number(row, "ms_per_frame"), _number(row, "decode_ms")
            name = str(row["contender"])
            compared = motion is not None and name.startswith("monitor")
            yield _line(
                f"{scene.split(' (')[0].split(',')[0]}: {name}"[: WIDTHS[0]],
                "<= Motion" if compared else "",
                f"{value:.2f} ms/frame CPU, decode {decode:.2f}",
                _met(value, motion) if compared and motion is not None else "",
            )
