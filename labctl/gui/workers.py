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
    run_dir: str | None = None  # kind "resume": the run folder to continue
    display: str | None = None  # shown instead of the status while running (paused, pausing, aborting)
    operator: str | None = None
    notes: list = field(default_factory=list)

    def plan(self):
        from labctl.protocol import STEPS, Plan, parse_sets

        if self.kind == "resume":
            return resume_plan(Path(self.run_dir))[0]
        if self.kind == "protocol":
            steps = list(STEPS)
            lines = [ln.strip() for ln in self.overrides_text.splitlines() if ln.strip() and not ln.startswith("#")]
            overrides, more = parse_sets(lines, steps)
            return Plan(steps=steps, overrides=overrides, options={**self.options, **more})
        return Plan(steps=[self.kind], overrides={self.kind: dict(self.values)}, options={"scan": True})

    def describe(self) -> str:
        if self.kind == "resume":
            return f"resume {Path(str(self.run_dir)).name}" + (f" — {self.label}" if self.label else "")
        return f"{self.kind}" + (f" — {self.label}" if self.label else "")


def resume_plan(run_dir: Path):
    """(plan, state) of a run folder to resume, as ``labctl resume`` reads them (same checks, same errors)."""
    from labctl.errors import ConfigError
    from labctl.protocol import STEPS, Plan, RunFolder, parse_sets

    run_dir = Path(run_dir)
    if not (run_dir / "parameters.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no parameters.json)")
    folder = RunFolder(run_dir)
    state = folder.read_state()
    p = state["plan"]
    try:
        steps = [s for s in p["steps"] if s in STEPS]
        if not steps or len(steps) != len(p["steps"]):
            raise ValueError("unknown steps")
        overrides, options = parse_sets([f"{step}.{k}={v}" for step, vals in dict(p.get("overrides") or {}).items()
                                         for k, v in dict(vals).items()]
                                        + [f"protocol.{k}={v}" for k, v in dict(p.get("options") or {}).items()],
                                        steps)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{folder.params_path}: the recorded plan is not valid ({e})") from None
    return Plan(steps=steps, overrides=overrides, options=options), state


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
        from labctl.errors import ConfigError
        from labctl.protocol import RunFolder, execute
        from labctl.runner import Runner

        from labctl import provenance as prov

        final: dict
        try:
            record = prov.collect(self.station.config, self.job.operator, self.job.notes,
                                  command=["labctl", "gui"] + (["resume", str(self.job.run_dir)]
                                                               if self.job.kind == "resume" else []),
                                  data_home=str(self.data_dir))
            if self.job.kind == "resume":  # the engine of `labctl resume`: the station in force applies
                run_dir = Path(self.job.run_dir)
                plan, state = resume_plan(run_dir)
                entry = Catalog(run_dir.parent).get(state["id"])
                status = entry["status"] if entry else state.get("status")
                if status == "completed":
                    raise ConfigError(f"run {state['id']} is already completed; nothing to resume")
                if status == "running":
                    raise ConfigError(f"run {state['id']} is still running (pid {entry.get('pid')})")
                snapshot = (RunFolder(run_dir).read_snapshot() or {}).get("config")
                if isinstance(snapshot, dict):
                    diffs = prov.config_differences(snapshot, self.station.config.model_dump(mode="json"))
                    if diffs:
                        state.setdefault("station_differences", []).append(diffs)
                        log.warning("station in force differs from the run's snapshot (the station in force "
                                    "applies): %s", "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else ""))
                state["station_file"] = self.station.config.source_path
                runner = Runner(self.station, Catalog(run_dir.parent), self.stream, self.control)
                final = execute(self.station, plan, run_dir.parent, runner, state=state, run_dir=run_dir,
                                provenance=record)
            else:
                catalog = Catalog(self.data_dir)
                runner = Runner(self.station, catalog, self.stream, self.control)
                final = execute(self.station, self.job.plan(), self.data_dir, runner, provenance=record)
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

    def __init__(self, path: str | Path, stream, speed: float | str | None = "auto", parent=None):
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
