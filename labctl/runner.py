"""The engine that runs one procedure on a station: limit check first, then rows
to a pymeasure-format CSV (flushed per row), the catalog and the live stream,
with pause/resume/abort and a safe end on every exit path.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from pymeasure.experiment import Results

from labctl.catalog import Catalog, sha256
from labctl.clock import Watch
from labctl.errors import InstrumentError, LabctlError, LimitError
from labctl.safety import Guard
from labctl.stream import LiveStream

log = logging.getLogger("labctl.runner")


class RunControl:
    """Pause / resume / abort requests from the CLI (Ctrl-C), the GUI or tests."""

    def __init__(self):
        self._pause = threading.Event()
        self._resume = threading.Event()
        self._abort = threading.Event()
        self.paused = threading.Event()  # set while actually paused (current at zero)
        self.on_pause = None  # callback(str) for the UI
        self.unattended = False  # nobody to press resume: an interlock pause becomes an abort

    def pause(self) -> None:
        self._resume.clear()
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()
        self._resume.set()

    def abort(self) -> None:
        self._abort.set()
        self._resume.set()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    def should_stop(self) -> bool:
        return self._abort.is_set()

    def checkpoint(self, station) -> None:
        """At a safe point: if a pause was asked, ramp the current down and wait."""
        if not self._pause.is_set() or self._abort.is_set():
            return
        actions = station.safe_shutdown("pause")
        self.paused.set()
        if self.on_pause:
            self.on_pause("paused: " + "; ".join(actions))
        log.info("paused at a safe point (%s)", "; ".join(actions))
        while not self._resume.wait(0.05):
            pass
        self.paused.clear()
        self._pause.clear()
        if not self._abort.is_set():
            log.info("resumed")


@dataclass
class StepResult:
    status: str
    reason: str
    path: Path
    rows: int
    events: list = None


def limit_violations(requests, station):
    """Yield ``(quantity, value, LimitError)`` for every request of a plan that a station
    limit refuses; quantity is "current", "temperature", "ramp" or "position"."""
    roles = station.roles
    checks = []  # the same role checks every request meets at run time
    if (cs := roles.get("current_source")) is not None:
        checks += [("current", amps, cs.check, (amps,)) for amps in requests.currents]
    if (temp := roles.get("temperature")) is not None:
        checks += [("temperature", kelvin, temp.check, (kelvin,)) for kelvin in requests.temperatures]
        checks += [("ramp", rate, temp.check, (temp.limits.min_temperature, rate))
                   for rate in requests.temperature_ramps]
    if (stage := roles.get("stage")) is not None:
        checks += [("position", pos, stage.check, (pos,)) for pos in requests.positions]
    for quantity, value, check, args in checks:
        try:
            check(*args)
        except LimitError as e:
            yield quantity, value, e


def check_requests(step: str, procedure, station) -> None:
    """Refuse a plan that asks more than the station limits allow (before anything moves)."""
    for _, _, error in limit_violations(procedure.requests(), station):
        raise LimitError(f"step {step}: {error}") from None


STOCK_PROCEDURE = "pymeasure.experiment.procedure.Procedure"


def stock_header(path: Path) -> None:
    """Name pymeasure's own base Procedure in the header, so that stock pymeasure's
    ``Results.load`` opens the file anywhere (it imports the class named there, and
    without labctl installed ours would not import); labctl's procedure stays on a
    ``#labctl procedure: <...>`` line that pymeasure skips and labctl's loader reads."""
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.startswith("#Procedure:") and STOCK_PROCEDURE not in first:
        name = first.split("<", 1)[-1].rstrip(">").strip()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"#Procedure: <{STOCK_PROCEDURE}>\n#labctl procedure: <{name}>\n{rest}", encoding="utf-8")
        os.replace(tmp, path)


class StepWriter:
    """Appends rows to the step's CSV as they come (flush per row) and records
    completed points in a side file, so a crash loses at most the row being written."""

    def __init__(self, procedure, path: Path, resume: bool = False):
        self.path = Path(path)
        self.points_path = self.path.with_suffix(".points")
        if resume and self.path.exists():
            self.done = self._completed_points()
            self._prune_incomplete()
        else:
            self.done = set()
            if self.path.exists():
                self.path.unlink()
            self.points_path.unlink(missing_ok=True)
        new = not self.path.exists()
        self.results = Results(procedure, str(self.path))  # writes pymeasure's header when new
        if new:
            stock_header(self.path)
        self.columns = procedure.DATA_COLUMNS
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.points_file = open(self.points_path, "a", encoding="utf-8")
        self.rows = 0

    def _completed_points(self) -> set[int]:
        if not self.points_path.exists():
            return set()
        out = set()
        for line in self.points_path.read_text().splitlines():
            if line.strip().isdigit():
                out.add(int(line))
        return out

    def _prune_incomplete(self) -> None:
        """Drop rows of points that did not complete (and a torn last line); keep
        the header, the column line and '# EVENT' lines where they are."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep, col, seen_labels = [], None, False
        for ln in lines:
            if not ln.endswith("\n"):
                continue  # torn write
            if ln.startswith("#"):
                keep.append(ln)
            elif not seen_labels:
                seen_labels = True
                labels = ln.strip().split(",")
                col = labels.index("Point") if "Point" in labels else None
                keep.append(ln)
            else:
                cells = ln.rstrip("\n").split(",")
                try:
                    if col is None or int(float(cells[col])) in self.done:
                        keep.append(ln)
                except (ValueError, IndexError):
                    continue
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(keep), encoding="utf-8")
        tmp.replace(self.path)

    def row(self, data: dict) -> None:
        values = [data.get(c, math.nan) for c in self.columns]
        if all(type(v) in (float, int) for v in values):  # plain numbers: same text as pymeasure's formatter
            line = ",".join(map(str, values))
        else:
            line = self.results.format(data)
        self._append(line + "\n")
        self.rows += 1

    def event(self, event: dict) -> None:
        """A safety event, as a comment line that every CSV reader skips."""
        self._append("# EVENT " + json.dumps(event, default=str) + "\n")

    def _append(self, text: str) -> None:
        """One line, whole or not at all: a failed or short write (disk full) is cut back off."""
        data = text.encode("utf-8")
        size = os.fstat(self.fd).st_size
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(28, f"short write ({written} of {len(data)} bytes)")
        except OSError as e:
            try:
                os.ftruncate(self.fd, size)
            except OSError:
                pass
            raise OSError(e.errno, f"cannot write to {self.path}: {e.strerror or e}") from None

    def point_done(self, index: int) -> None:
        self.done.add(index)
        self.points_file.write(f"{index}\n")
        self.points_file.flush()

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        try:
            self.points_file.close()
        except OSError:
            pass


class Runner:
    """Runs procedures on one connected station."""

    def __init__(self, station, catalog: Catalog, stream: LiveStream | None = None,
                 control: RunControl | None = None):
        self.station = station
        self.catalog = catalog
        self.stream = stream or LiveStream()
        self.control = control or RunControl()

    def run_step(self, name: str, procedure, path: Path, step_id: str, parent: str | None = None,
                 resume: bool = False) -> StepResult:
        """Run one procedure into ``path``; always ends with the current at zero."""
        station, control, stream = self.station, self.control, self.stream
        procedure.station = station
        check_requests(name, procedure, station)
        try:
            writer = StepWriter(procedure, path, resume=resume)
        except OSError as e:
            raise LabctlError(f"step {name}: cannot write its data file {path} ({e.strerror or e}); "
                              "choose a writable data folder with --data-dir") from None
        procedure.done_points = frozenset(writer.done)
        params = {k: getattr(procedure, k) for k in procedure.parameter_objects()}
        if resume and self.catalog.get(step_id):
            self.catalog.reopen(step_id)
        else:
            self.catalog.start(step_id, procedure.KIND, station.is_sim, params, str(path), parent=parent)
        stream.publish("step", {"step": name, "kind": procedure.KIND, "status": "running", "path": str(path)})

        def emit(topic, record):
            if topic == "results":
                writer.row(record)
                stream.publish("row", {"step": name, "row": record})
            elif topic == "point_done":
                writer.point_done(record)
            elif topic == "progress":
                stream.publish("progress", {"step": name, "percent": float(record)})

        events: list[dict] = []

        def on_event(event):
            events.append(event)
            writer.event(event)
            stream.publish("event", {"step": name, **event})

        guard = Guard(station, on_event=on_event)
        guard.control = None if control.unattended else control
        guard.quench_detection = getattr(procedure, "QUENCH_DETECTION", True)
        procedure.emit = emit
        procedure.should_stop = control.should_stop
        procedure.checkpoint = lambda: control.checkpoint(station)
        procedure.guard_tick = guard.tick
        source = station.roles.get("current_source")
        if source is not None:
            source.monitor = guard.tick
        # the guard also watches during every reading and wait while current flows
        station.clock.watch = Watch(guard.watch_tick, station.config.station.guard_period)
        if station.lock is not None:
            station.lock.describe(run=step_id)
        status, reason = "completed", ""
        t0 = time.perf_counter()
        try:
            procedure.startup()
            procedure.execute()
            if control.aborted:
                status, reason = "aborted", "aborted by the user"
        except KeyboardInterrupt as e:
            status, reason = "aborted", f"interrupted ({e or 'Ctrl-C'})"
        except LabctlError as e:
            status, reason = "failed", str(e)
            _log_instrument(name, e)
        except OSError as e:  # disk full, folder gone: the rows so far are whole (StepWriter)
            status, reason = "failed", str(e.strerror or e) if e.strerror and "cannot write" in e.strerror else str(e)
            log.error("step %s failed: %s", name, reason)
        except Exception as e:  # a bug or an unexpected driver error: record it, never lose the rows
            status, reason = "failed", f"{type(e).__name__}: {e}"
            log.error("step %s failed: %s", name, reason)  # one line on the terminal,
            log.info("step %s: traceback for the developers:\n%s", name, traceback.format_exc())  # all in run.log
        finally:
            station.clock.watch = None
            if source is not None:
                source.monitor = None
            writer.close()
            try:
                actions = station.safe_shutdown(f"end of step {name}")
                log.info("step %s: %s", name, "; ".join(actions))
            except LabctlError as e:
                status, reason = "failed", (reason + "; " if reason else "") + str(e)
                _log_instrument(name, e)
            try:
                checksum = sha256(path) if path.exists() else None
                self.catalog.finish(step_id, status, reason, checksum)
            except Exception as e:  # the catalog's disk failing must not hide the step's outcome
                log.error("step %s: could not record its status %s in the catalog (%s)", name, status, e)
            stream.publish("step", {"step": name, "kind": procedure.KIND, "status": status, "reason": reason,
                                    "rows": writer.rows, "path": str(path), "events": events,
                                    "wall_s": time.perf_counter() - t0})
            log.info("step %s %s (%d rows)%s", name, status, writer.rows, f": {reason}" if reason else "")
        return StepResult(status, reason, path, writer.rows, events)


def _log_instrument(step: str, error: Exception) -> None:
    """run.log names the instrument, its address and the last command sent (the catalog keeps one line)."""
    if isinstance(error, InstrumentError):
        log.error("step %s: instrument %s at %s failed; last command %r: %s", step, error.role or "?",
                  error.address or "?", error.last_command or "", error)


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
