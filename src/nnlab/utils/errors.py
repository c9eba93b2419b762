"""Errors a user can fix.

Every ``NnlabError`` carries ONE line: what was wrong and how to fix it. The entry points
(train.py, eval.py, scripts) print that line to stderr and exit non-zero; the traceback goes
to the run's log file only.
"""

from __future__ import annotations

from collections.abc import Iterable


class NnlabError(Exception):
    """Base class for errors whose message is a single actionable line."""

    exit_code = 2


class ConfigError(NnlabError, ValueError):
    """A config value is unknown, out of range or incompatible with another one."""


class DataError(NnlabError):
    """A dataset is missing, unreachable, undecodable or malformed."""


class CheckpointError(NnlabError):
    """A checkpoint is missing, truncated, tampered with or belongs to another model/vocabulary."""


class TrainingError(NnlabError):
    """Training cannot go on (for example a NaN or infinite loss)."""


def check_rate(key: str, value: float) -> float:
    """A dropout-like probability: ``value`` if it is in [0, 1), else the standard one-line error."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value} must be in [0, 1)")
    return float(value)


def choice_error(key: str, value: object, choices: Iterable[str]) -> ConfigError:
    """The standard message for an unknown choice, listing the valid ones."""
    return ConfigError(f"{key}={value!r} is not a valid choice; choose one of: {', '.join(sorted(choices))}")
