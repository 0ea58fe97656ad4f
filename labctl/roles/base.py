"""What every role shares: its driver, its clock, its log, and I/O error wrapping."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from labctl.errors import InstrumentError

log = logging.getLogger("labctl.roles")


class Role:
    """A role (current_source, voltmeter, ...) played by one driver instance."""

    role = "role"

    def __init__(self, config, instrument, clock, name: str | None = None):
        self.config = config
        self.instrument = instrument
        self.clock = clock
        self.name = name or self.role
        self.last_command = ""

    @property
    def address(self) -> str:
        return self.config.address

    @contextmanager
    def io(self, what: str):
        """Turn any transport/driver failure into an InstrumentError naming role,
        address, what was being done and the terminations in use."""
        self.last_command = what
        try:
            yield
        except InstrumentError:
            raise
        except Exception as e:  # pyvisa.VisaIOError, ValueError from a garbled reply, OSError...
            raise InstrumentError(
                f"{self.name} at {self.address}: {what} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); "
                f"terminations read={self.config.read_termination!r} write={self.config.write_termination!r}, "
                f"timeout {self.config.timeout} ms",
                role=self.name, address=self.address, last_command=what) from e

    def identity(self) -> str:
        with self.io("*IDN?"):
            return str(self.instrument.ask("*IDN?")).strip()

    def state(self) -> dict:
        """Readings and settings for the station check and the run snapshot."""
        return {}

    def setup(self) -> None:
        """Put the instrument in the configuration the procedures assume."""

    def safe_shutdown(self) -> list[str]:
        """Leave the instrument safe; return what was done (for the log)."""
        return []
