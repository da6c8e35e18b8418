"""Print what the container tests measured (run times, the exposure score) after the results."""

from __future__ import annotations

import pytest

from tests.container.machine import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("measured in the containers")
        for line in FIGURES:
            terminalreporter.write_line(line)
