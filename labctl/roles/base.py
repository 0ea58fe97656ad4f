"""What every role shares: its driver, its clock, its log, and I/O error wrapping."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from labctl.clock import instrument_io
from labctl.errors import InstrumentError

log = logging.getLogger("labctl.roles")


def strict_bool(value) -> bool:
    """pymeasure returns the raw reply string when it cannot convert it (and
    ``bool("#$%")`` is True): refuse it, so a garbled reply is retried, never believed."""
    if isinstance(value, str):
        raise ValueError(f"unexpected reply {value!r}")
    return bool(value)


class Role:
    """A role (current_source, voltmeter, ...) played by one driver instance."""

    role = "role"

    def __init__(self, config, instrument, clock, name: str | None = None):
        self.config = config
        self.instrument = instrument
        self.clock = clock
        self.name = name or self.role
        self.last_command = ""
        # one conversation at a time: a GUI poller and a procedure may share a role
        self.lock = threading.RLock()
        self.retries = 2  # bounded retries of idempotent reads after a transient I/O error
        self.reopen = None  # callable -> a freshly opened driver (installed by the station)
        self.retry_backoff = 0.05  # s, doubled at each retry

    @property
    def address(self) -> str:
        return self.config.address

    @contextmanager
    def io(self, what: str):
        """Turn any transport/driver failure into an InstrumentError naming role,
        address, what was being done and the terminations in use."""
        self.last_command = what
        try:
            with self.lock, instrument_io():
                yield
        except InstrumentError:
            raise
        except Exception as e:  # pyvisa.VisaIOError, ValueError from a garbled reply, OSError...
            raise InstrumentError(
                f"{self.name} at {self.address}: {what} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); "
                f"terminations read={self.config.read_termination!r} write={self.config.write_termination!r}, "
                f"timeout {self.config.timeout} ms",
                role=self.name, address=self.address, last_command=what) from e

    def query(self, what: str, fn):
        """Run an idempotent query ``fn``; retry transient failures (time-out, garbled
        reply) with back-off; a lost connection or persistent failure raises."""
        for attempt in range(self.retries + 1):
            try:
                with self.io(what):
                    return fn()
            except InstrumentError as e:
                cause = e.__cause__
                transient = (isinstance(cause, (ValueError, KeyError, TypeError)) or "TMO" in str(cause)
                             or "imeout" in str(cause)) and "CONN_LOST" not in str(cause)
                if attempt >= self.retries or not transient:
                    raise
                log.warning("%s: %s failed (%s); retry %d of %d", self.name, what, cause, attempt + 1, self.retries)
                self._flush()
                time.sleep(self.retry_backoff * 2**attempt)  # real time: the link needs real time

    def _flush(self) -> None:
        """Discard a late or garbled reply before retrying (bounded: see labctl.transport)."""
        try:
            self.instrument.adapter.flush_read_buffer()
        except Exception:
            pass

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
