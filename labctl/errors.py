"""Exceptions the product reports to users as one line (no traceback)."""
from __future__ import annotations


class LabctlError(Exception):
    """Base class: str(error) is a complete one-line message for the user."""

    exit_code = 1


class ConfigError(LabctlError):
    """A station or protocol file, or a command-line value, is wrong (exit 2)."""

    exit_code = 2


class LimitError(LabctlError):
    """A request exceeds a station limit; it is refused before anything is sent (exit 2)."""

    exit_code = 2


class InstrumentError(LabctlError):
    """An instrument did not answer or answered nonsense (exit 1)."""

    def __init__(self, message: str, role: str = "", address: str = "", last_command: str = ""):
        super().__init__(message)
        self.role = role
        self.address = address
        self.last_command = last_command


class Paused(Exception):
    """Raised inside a point when a pause was requested mid-point; the point is redone on resume."""


class AbortRequested(LabctlError):
    """The user asked to abort the run."""
