"""I/O trace: every command sent to an instrument and every reply, with a
timestamp and the role, so a lab can send us what its instruments said.

One line per message::

    2026-11-29T12:31:04.112 t=+0012.500 current_source      > PV 5
    2026-11-29T12:31:04.113 t=+0012.500 current_source      < OK
    2026-11-29T12:31:04.120 t=+0012.500 current_source      ! read failed: VisaIOError ...

``>`` is a command written, ``<`` a reply read, ``!`` a failed write or read
(time-out, lost link), ``#`` a note (a driver opened, with its terminations).  The first column is wall time, ``t=`` the station
clock (the virtual clock in the virtual lab).  Control characters in a message
are shown escaped, so a line is always one line.

The trace wraps the pymeasure adapter of a driver (``install``), so it records
exactly what crossed the wire, whatever the driver or role did; the virtual
lab's server records the same from the instrument's side (``exchange``).  A
trace may start before its file is known (the run folder is made after the
instruments are connected): lines are kept in memory until ``attach(path)``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as _dt
import logging
import threading
from pathlib import Path
from typing import Callable

FILENAME = "io-trace.log"


def _escape(text: str) -> str:
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


class IOTrace:
    """Thread-safe line recorder, written to every attached file (``attach``).

    ``follow_runs``: when a run folder's ``run.log`` handler appears on the ``labctl``
    logger (a run has started), the trace attaches ``io-trace.log`` in that folder too,
    with everything recorded since the station connected.
    """

    MAX_LINES = 500_000  # kept in memory for late attachment (about 50 MB at most)

    def __init__(self, path: str | Path | None = None, clock=None, follow_runs: bool = False):
        self.clock = clock
        self.lock = threading.Lock()
        self.lines: collections.deque[str] = collections.deque(maxlen=self.MAX_LINES)
        self._files: dict[Path, object] = {}
        self.follow_runs = follow_runs
        self._run_log: str | None = None
        self.path: Path | None = None
        if path is not None:
            self.attach(path)

    # ------------------------------------------------------------ output
    def attach(self, path: str | Path, history: bool = True) -> Path:
        """Also write to ``path`` (appending); with ``history``, the lines recorded so far
        first.  A directory means ``<dir>/io-trace.log``."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            if path.resolve() in self._files:
                return path
            f = open(path, "a", encoding="utf-8")
            if history:
                for line in self.lines:
                    f.write(line + "\n")
                f.flush()
            self._files[path.resolve()] = f
            self.path = path
        return path

    def detach(self, path: str | Path) -> None:
        with self.lock:
            f = self._files.pop(Path(path).resolve(), None)
        if f is not None:
            f.close()

    def close(self) -> None:
        with self.lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def _follow(self) -> None:
        """Attach io-trace.log next to a run.log the labctl logger has just started writing."""
        for h in logging.getLogger("labctl").handlers:
            name = getattr(h, "baseFilename", "")
            if name.endswith("run.log") and name != self._run_log:
                self._run_log = name
                self.attach(Path(name).parent / FILENAME)
                return

    # ------------------------------------------------------------ record
    def record(self, role: str, direction: str, text: str) -> None:
        if self.follow_runs:
            self._follow()
        wall = _dt.datetime.now().isoformat(timespec="milliseconds")
        t = ""
        if self.clock is not None:
            try:
                t = f" t={self.clock.now():+010.3f}"
            except Exception:
                t = ""
        line = f"{wall}{t} {role:<19} {direction} {_escape(text)}"
        with self.lock:
            self.lines.append(line)
            for f in self._files.values():
                f.write(line + "\n")
                f.flush()

    def exchange(self, role: str, message: str, reply: str | None) -> None:
        """Instrument side (the virtual lab's server): a message received and its reply."""
        self.record(role, ">", message.strip())
        if reply is not None:
            self.record(role, "<", reply)

    def for_role(self, role: str) -> Callable[[str, str | None], None]:
        return lambda message, reply: self.exchange(role, message, reply)

    # ------------------------------------------------------------ install
    def opened(self, role: str, config, instrument) -> None:
        """A driver was opened for ``role``: note it (with the terminations) and trace it."""
        note = (f"opened {config.address} with driver {config.driver}, read_termination="
                f"{config.read_termination!r} write_termination={config.write_termination!r}")
        if config.driver == "genesys":
            note += f"; the driver sent ADR {config.options.get('address', 6)} and read OK while opening"
        self.record(role, "#", note)
        self.install(instrument, role)

    def install(self, instrument, role: str) -> None:
        """Wrap the driver's adapter so every write and read is recorded under ``role``."""
        adapter = getattr(instrument, "adapter", None)
        if adapter is None or getattr(adapter, "_labctl_trace", None) is self:
            return
        write, read = adapter._write, adapter._read

        def traced_write(command, **kwargs):
            try:
                write(command, **kwargs)
            except Exception as e:
                self.record(role, "!", f"write {command!r} failed: {type(e).__name__}: {e}")
                raise
            self.record(role, ">", command)

        def traced_read(**kwargs):
            try:
                reply = read(**kwargs)
            except Exception as e:
                self.record(role, "!", f"read failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                raise
            self.record(role, "<", reply)
            return reply

        adapter._write, adapter._read = traced_write, traced_read
        adapter._labctl_trace = self


def parse(line: str) -> tuple[str, str, str] | None:
    """``(role, direction, text)`` of one trace line, None if it is not one."""
    parts = line.split(" ", 1)
    if len(parts) < 2:
        return None
    rest = parts[1]
    if rest.startswith("t="):
        rest = rest.split(" ", 1)[1] if " " in rest else ""
    bits = rest.split(None, 2)
    if len(bits) < 2 or bits[1] not in (">", "<", "!", "#"):
        return None
    return bits[0], bits[1], bits[2] if len(bits) > 2 else ""


def commands(lines: list[str], role: str | None = None, direction: str = ">") -> list[str]:
    """The commands (``>`` lines) of a trace, optionally of one role: for tests and checks."""
    out = []
    for line in lines:
        p = parse(line)
        if p and p[1] == direction and (role is None or p[0] == role):
            out.append(p[2])
    return out


_REQUESTED: list = []  # the command line's --trace while its command runs (see TraceAction)


@contextlib.contextmanager
def requested(target):
    """While the block runs, stations without a trace of their own get one: ``target`` True
    (into each run folder) or a file path (that file, and the run folder of a run)."""
    _REQUESTED.append(target)
    try:
        yield
    finally:
        _REQUESTED.remove(target)


def station_trace(station):
    """The station's trace: ``station.trace`` if set, else one made for the command line's
    ``--trace`` or the station file's ``[station] trace`` (True: in memory and the run
    folder; a path: that file too).  None when nobody asked for a trace."""
    trace = getattr(station, "trace", None)
    if trace is None:
        wanted = _REQUESTED[-1] if _REQUESTED else getattr(station.config.station, "trace", None)
        if wanted:
            trace = IOTrace(None if wanted is True else wanted, clock=station.clock, follow_runs=True)
            station.trace = trace
    return trace


class TraceAction(argparse.Action):
    """``--trace [FILE]`` for a verb: the verb's function runs with ``requested(FILE or True)``,
    so the station it connects records its I/O (no change to the verb's own code)."""

    def __call__(self, parser, namespace, values, option_string=None):
        target = values if values not in (None, "") else True
        setattr(namespace, self.dest, target)
        func = getattr(namespace, "func", None)
        if func is not None and not getattr(func, "_traced", False):
            def traced(args, _func=func, _target=target):
                with requested(_target):
                    return _func(args)

            traced._traced = True
            namespace.func = traced


def attach_run(station, run_dir: str | Path) -> Path | None:
    """Write the station's trace to ``<run_dir>/io-trace.log`` (history included)."""
    trace = getattr(station, "trace", None)
    return trace.attach(Path(run_dir) / FILENAME) if trace is not None else None


def read_trace(path: str | Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()
