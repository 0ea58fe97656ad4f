"""Acquisition-side threads: runs, replays and analyses never run on the GUI thread."""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PyQt6 import QtCore

from labctl.errors import LabctlError

log = logging.getLogger("labctl.gui")


@dataclass
class Job:
    """One queued run: the whole protocol or one procedure with its parameter values."""

    kind: str  # "protocol" or a step name
    values: dict = field(default_factory=dict)  # single step: parameter -> value
    options: dict = field(default_factory=dict)  # protocol options
    overrides_text: str = ""  # protocol: step.param=value lines
    label: str = ""
    status: str = "queued"
    result: dict | None = None

    def plan(self):
        from labctl.protocol import STEPS, Plan, parse_sets

        if self.kind == "protocol":
            steps = list(STEPS)
            lines = [ln.strip() for ln in self.overrides_text.splitlines() if ln.strip() and not ln.startswith("#")]
            overrides, more = parse_sets(lines, steps)
            return Plan(steps=steps, overrides=overrides, options={**self.options, **more})
        return Plan(steps=[self.kind], overrides={self.kind: dict(self.values)}, options={"scan": True})

    def describe(self) -> str:
        return f"{self.kind}" + (f" — {self.label}" if self.label else "")


class RunWorker(QtCore.QThread):
    """Executes one job with :func:`labctl.protocol.execute`; always ends with the station safe."""

    finished_run = QtCore.pyqtSignal(dict)

    def __init__(self, station, data_dir: Path, job: Job, stream, control, parent=None):
        super().__init__(parent)
        self.station, self.data_dir, self.job = station, Path(data_dir), job
        self.stream, self.control = stream, control
        self.result: dict | None = None

    def run(self) -> None:
        from labctl.catalog import Catalog
        from labctl.protocol import execute
        from labctl.runner import Runner

        final: dict
        try:
            catalog = Catalog(self.data_dir)
            runner = Runner(self.station, catalog, self.stream, self.control)
            final = execute(self.station, self.job.plan(), self.data_dir, runner)
        except LabctlError as e:  # refused before anything moved (limits, parameters) or failed
            log.error("run %s not done: %s", self.job.kind, e)
            final = {"id": None, "status": "refused" if e.exit_code == 2 else "failed", "reason": str(e),
                     "path": None, "steps": {}}
        except Exception as e:  # a bug: keep the GUI alive, say it loudly
            log.error("run %s failed: %s\n%s", self.job.kind, e, traceback.format_exc())
            final = {"id": None, "status": "failed", "reason": f"{type(e).__name__}: {e}", "path": None, "steps": {}}
        finally:
            try:
                actions = self.station.safe_shutdown("end of run (GUI)")
                log.info("end of run: %s", "; ".join(actions))
            except Exception as e:
                log.critical("safe shutdown after the run failed: %s", e)
        self.result = final
        self.finished_run.emit(final)


class ReplayWorker(QtCore.QThread):
    """Streams a recorded run through a LiveStream with :func:`labctl.replay.replay`."""

    finished_replay = QtCore.pyqtSignal(dict)

    def __init__(self, path: str | Path, stream, speed: float | None, parent=None):
        super().__init__(parent)
        self.path, self.stream, self.speed = Path(path), stream, speed
        self._stop = False
        self.rows = 0

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        try:
            from labctl.replay import replay
        except ImportError as e:
            self.finished_replay.emit({"status": "failed", "reason": f"replay is not available ({e})", "rows": 0})
            return
        try:
            self.rows = int(replay(self.path, self.stream, self.speed, should_stop=lambda: self._stop) or 0)
            status = "stopped" if self._stop else "completed"
            self.finished_replay.emit({"status": status, "reason": "", "rows": self.rows})
        except Exception as e:
            log.error("replay of %s failed: %s", self.path, e)
            self.finished_replay.emit({"status": "failed", "reason": str(e), "rows": self.rows})


class _TaskSignals(QtCore.QObject):
    done = QtCore.pyqtSignal(object, object)  # (result, error)


class Task(QtCore.QRunnable):
    """A function run on the global thread pool; ``done(result, error)`` arrives on the GUI thread."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = _TaskSignals()

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as e:  # reported to the GUI, never raised in the pool
            self.signals.done.emit(None, e)
            return
        self.signals.done.emit(result, None)


def submit(fn, *args, on_done=None, **kwargs) -> Task:
    task = Task(fn, *args, **kwargs)
    if on_done is not None:
        task.signals.done.connect(on_done)
    QtCore.QThreadPool.globalInstance().start(task)
    return task
