"""Exceptions raised by the monitor, rooted at :class:`MonitorError`.

Each subclass also inherits the builtin it resembles, so callers that only
know Python's own exceptions still catch them.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error the monitor raises on purpose."""


class ConfigError(MonitorError, ValueError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` holds one line per problem, each naming the file and key.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ComparisonError(MonitorError, ValueError):
    """A frame, reference or mask cannot be compared as given."""


class ReferenceImageError(MonitorError, FileNotFoundError):
    """The reference image is missing, unreadable or of the wrong size."""


class SourceError(MonitorError, RuntimeError):
    """A frame source could not be opened or stopped delivering frames."""


class OutputError(MonitorError, RuntimeError):
    """A GPIO output could not be set up."""


class CommandError(MonitorError, ValueError):
    """An arm or disarm command names no zone, or asks for an impossible duration."""
