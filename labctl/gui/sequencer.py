"""The sequencer (a grid of parameter values queued as runs, as pymeasure's ManagedWindow
sequencer does) and the estimator (how long the queue takes, when it finishes).

Values are written the way a physicist types them: ``1, 2, 5``, ``2:10:2`` (start:stop:step,
stop included), ``linspace(2, 10, 5)`` or ``arange(2, 10, 2)``; nothing is evaluated as code.
The estimate counts each run's points (the procedures' own ``points()``) times the seconds a
point takes (learned from earlier runs of the same kind in the data home, else typical
values from the virtual lab), divided by the clock's speed-up on the virtual lab.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtWidgets

log = logging.getLogger("labctl.gui")

# instrument seconds per recorded point, typical of the virtual lab's physics (data/examples)
SECONDS_PER_POINT = {"rt": 51.0, "vi": 2.6, "normal-control": 8.0, "radial-field": 11.7, "radial-scan": 2.8,
                     "residual": 60.0}
WALL_PER_POINT_MAX_SPEED = 0.02  # s per point on the virtual lab at full speed (no history yet)
MAX_RUNS = 500


class GridError(ValueError):
    pass


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise GridError(f"{text.strip()!r} is not a number") from None


def grid_values(spec: str) -> list[float]:
    """'1, 2, 5' / '2:10:2' / 'linspace(2, 10, 5)' / 'arange(2, 10, 2)' -> values (no code is run)."""
    text = spec.strip()
    if not text:
        raise GridError("no values")
    m = re.fullmatch(r"(linspace|arange)\s*\(([^)]*)\)", text)
    if m:
        args = [_num(a) for a in m.group(2).split(",") if a.strip()]
        if len(args) != 3:
            raise GridError(f"{m.group(1)}(start, stop, {'count' if m.group(1) == 'linspace' else 'step'})")
        a, b, c = args
        if m.group(1) == "linspace":
            if c < 1 or c != int(c):
                raise GridError("linspace: the count must be a whole number ≥ 1")
            values = np.linspace(a, b, int(c)).tolist()
        else:
            if c == 0 or (b - a) / c < 0:
                raise GridError("arange: the step must go from start towards stop")
            values = np.arange(a, b, c).tolist()
    elif ":" in text:
        parts = [p for p in text.split(":")]
        if len(parts) != 3:
            raise GridError("start:stop:step, e.g. 2:10:2")
        a, b, c = (_num(p) for p in parts)
        if c == 0 or (b - a) / c < 0:
            raise GridError("start:stop:step: the step must go from start towards stop")
        n = int(math.floor((b - a) / c + 1e-9)) + 1
        values = [a + k * c for k in range(n)]
    else:
        values = [_num(p) for p in re.split(r"[,;\s]+", text) if p.strip()]
    if not values:
        raise GridError("no values")
    if len(values) > MAX_RUNS:
        raise GridError(f"{len(values)} values: at most {MAX_RUNS}")
    return [float(f"{v:.12g}") for v in values]


def expand_grid(base: dict, axes: list[tuple[str, list]]) -> list[dict]:
    """Every combination of the axes' values on top of ``base`` (the first axis varies slowest)."""
    if not axes:
        return [dict(base)]
    names = [n for n, _ in axes]
    out = []
    for combo in itertools.product(*[vals for _, vals in axes]):
        out.append({**base, **dict(zip(names, combo))})
    if len(out) > MAX_RUNS:
        raise GridError(f"{len(out)} runs: at most {MAX_RUNS}")
    return out


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------
class Estimator:
    """Duration of queued jobs on a station, learning seconds per point from the data home's runs."""

    def __init__(self, station, data_dir: Path | None = None):
        self.station = station
        self.data_dir = Path(data_dir) if data_dir else None
        self._learned: dict[str, tuple[float, float | None]] | None = None
        self._learned_at = 0.0

    @property
    def speedup(self) -> float:
        s = getattr(getattr(self.station, "clock", None), "speedup", 1.0)
        try:
            return float(s)
        except (TypeError, ValueError):
            return math.inf

    def learned(self) -> dict[str, tuple[float, float | None]]:
        """kind -> (instrument seconds per point, wall seconds per point) from the latest completed runs."""
        if self._learned is not None and time.monotonic() - self._learned_at < 30:
            return self._learned
        out: dict[str, list] = {}
        cat = self.data_dir / "catalog.sqlite" if self.data_dir else None
        if cat is not None and cat.exists():
            try:
                from labctl.catalog import Catalog

                entries = [e for e in Catalog(self.data_dir).list() if e.get("status") == "completed" and e.get("parent")]
            except Exception:  # noqa: BLE001 - an estimate never breaks the window
                entries = []
            for e in entries[-40:]:
                kind = e["id"].rsplit("/", 1)[-1]
                path = Path(e.get("path") or "")
                virt = _last_time(path)
                rows = _rows(path)
                if not rows or virt is None:
                    continue
                wall = None
                try:
                    t0 = datetime.fromisoformat(e["started"])
                    t1 = datetime.fromisoformat(e["ended"])
                    wall = max(0.0, (t1 - t0).total_seconds()) / rows
                except (TypeError, ValueError, KeyError):
                    pass
                out.setdefault(kind, []).append((virt / rows, wall))
        self._learned = {k: (float(np.median([v for v, _ in vals])),
                             float(np.median([w for _, w in vals if w is not None]))
                             if any(w is not None for _, w in vals) else None)
                         for k, vals in out.items()}
        self._learned_at = time.monotonic()
        return self._learned

    def step_points(self, job) -> dict[str, int]:
        """Points per step of a job (worst-case Ic for a protocol's current steps)."""
        from labctl.protocol import Protocol, build_procedure

        out = {}
        if job.kind == "resume":
            return {}
        try:
            plan = job.plan()
            if job.kind == "protocol":
                proto = Protocol(self.station, plan)
                derived = {"tc": self.station.config.sample.expected_tc,
                           "ic": 0.7 * self.station.config.current_source.limits.max_current}
                for step in proto.steps():
                    proc = proto.procedure(step, derived)
                    proc.station = None
                    out[step] = len(proc.points())
            else:
                proc = build_procedure(job.kind, dict(job.values), job.kind)
                out[job.kind] = len(proc.points())
        except Exception as e:  # noqa: BLE001 - an unplannable job has no estimate
            log.debug("no estimate for %s: %s", job.describe(), e)
        return out

    def seconds(self, job) -> float | None:
        """Wall seconds the job will take (None: cannot tell)."""
        points = self.step_points(job)
        if not points:
            return None
        learned = self.learned()
        speed = self.speedup
        total = 0.0
        for step, n in points.items():
            virt, wall = learned.get(step, (SECONDS_PER_POINT.get(step, 10.0), None))
            if math.isfinite(speed) and speed > 0:
                total += n * virt / speed
            else:
                total += n * (wall if wall is not None else WALL_PER_POINT_MAX_SPEED)
        return total

    def queue_text(self, jobs: list, now: datetime | None = None, running_left: float | None = None) -> str:
        """'3 runs queued, about 1:23:00 — finishes about 14:32' (jobs still to run)."""
        todo = [j for j in jobs if j.status == "queued"]
        running = [j for j in jobs if j.status == "running"]
        if not todo and not running:
            return "Queue empty"
        if running and running_left is None:
            running_left = self.seconds(running[0]) or 0.0
        secs = [self.seconds(j) for j in todo]
        known = [s for s in secs if s is not None]
        total = sum(known) + (running_left or 0.0)
        now = now or datetime.now()
        finish = now + timedelta(seconds=total)
        day = "" if finish.date() == now.date() else finish.strftime(" %a %d %b")
        unknown = len(secs) - len(known)
        text = (f"{len(todo)} run{'s' if len(todo) != 1 else ''} queued" if todo else "")
        if running:
            text = "1 running" + (f" + {text}" if text else "")
        text += f", about {hms(total)} — finishes about {finish.strftime('%H:%M')}{day}"
        if unknown:
            text += f" ({unknown} without an estimate)"
        return text


def _last_time(path: Path) -> float | None:
    try:
        import pandas as pd

        frame = pd.read_csv(path, comment="#", usecols=["Time (s)"])
        return float(frame["Time (s)"].max()) if len(frame) else None
    except Exception:  # noqa: BLE001
        return None


def _rows(path: Path) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return max(0, sum(1 for line in f if not line.startswith("#")) - 1)
    except OSError:
        return 0


def hms(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ---------------------------------------------------------------------------
# the dialog
# ---------------------------------------------------------------------------
class SequencerDialog(QtWidgets.QDialog):
    """Queue a grid of runs of one procedure: up to three parameters, each with a list of values."""

    AXES = 3

    def __init__(self, run_panel, estimator: Estimator | None = None, parent=None):
        super().__init__(parent)
        from labctl.gui.forms import STEP_TITLES

        self.run_panel = run_panel
        self.estimator = estimator
        self.form = run_panel.form()
        self.kind = self.form.kind
        self.setWindowTitle(f"Sequencer — {STEP_TITLES.get(self.kind, self.kind)}")
        lay = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel("Every combination of the values below is queued as one run; the other "
                                 "parameters keep the form's values. Values: <tt>1, 2, 5</tt> or "
                                 "<tt>2:10:2</tt> (start:stop:step) or <tt>linspace(2, 10, 5)</tt>.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        grid = QtWidgets.QGridLayout()
        self.params: list[QtWidgets.QComboBox] = []
        self.values: list[QtWidgets.QLineEdit] = []
        numeric = [(n, p) for n, p in getattr(self.form, "parameters", {}).items()
                   if type(p).__name__ in ("FloatParameter", "IntegerParameter")]
        for k in range(self.AXES):
            combo = QtWidgets.QComboBox()
            combo.addItem("—", None)
            for name, p in numeric:
                combo.addItem(f"{p.name} ({name}{', ' + p.units if getattr(p, 'units', None) else ''})", name)
            edit = QtWidgets.QLineEdit()
            edit.setPlaceholderText("values, e.g. 2:10:2")
            grid.addWidget(QtWidgets.QLabel(f"Parameter {k + 1}"), k, 0)
            grid.addWidget(combo, k, 1)
            grid.addWidget(edit, k, 2)
            combo.currentIndexChanged.connect(self.preview)
            edit.textChanged.connect(self.preview)
            self.params.append(combo)
            self.values.append(edit)
        grid.setColumnStretch(2, 1)
        lay.addLayout(grid)
        self.preview_list = QtWidgets.QListWidget()
        self.preview_list.setMinimumHeight(140)
        lay.addWidget(self.preview_list, 1)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        buttons = QtWidgets.QDialogButtonBox()
        self.queue_button = buttons.addButton("Queue runs", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept_grid)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.runs: list[dict] = []
        self.problems: list[str] = []
        self.queued: list = []
        self.resize(620, 460)
        self.preview()

    def set_axis(self, k: int, name: str, spec: str) -> None:
        self.params[k].setCurrentIndex(self.params[k].findData(name))
        self.values[k].setText(spec)
        self.preview()

    def axes(self) -> list[tuple[str, list]]:
        out = []
        for combo, edit in zip(self.params, self.values):
            name = combo.currentData()
            if name is None or not edit.text().strip():
                continue
            out.append((name, grid_values(edit.text())))
        return out

    def preview(self) -> None:
        from labctl.gui.forms import validate_step
        from labctl.gui.workers import Job

        self.preview_list.clear()
        self.runs, self.problems = [], []
        try:
            axes = self.axes()
            runs = expand_grid(self.form.values(), axes)
        except GridError as e:
            self.status.setText(f"<span style='color:#c62828'>{e}</span>")
            self.queue_button.setEnabled(False)
            return
        names = [n for n, _ in axes]
        total = 0.0
        for values in runs:
            probs = validate_step(self.kind, values, self.run_panel.station)
            label = ", ".join(f"{n} = {values[n]:g}" for n in names) or "the form's values"
            item = QtWidgets.QListWidgetItem(label + (f" — refused: {next(iter(probs.values()))}" if probs else ""))
            if probs:
                item.setForeground(QtCore.Qt.GlobalColor.red)
                self.problems.append(label)
            else:
                self.runs.append(values)
                if self.estimator is not None:
                    total += self.estimator.seconds(Job(self.kind, values=values)) or 0.0
            self.preview_list.addItem(item)
        text = f"{len(self.runs)} run(s) to queue"
        if self.estimator is not None and self.runs:
            text += f", about {hms(total)}"
        if self.problems:
            text += f"; {len(self.problems)} refused by the parameter ranges or the station limits (red)"
        self.status.setText(text)
        self.queue_button.setEnabled(bool(self.runs))

    def accept_grid(self) -> None:
        names = [n for n, _ in self.axes()]
        self.queued = [self.run_panel.add_job(self.kind, values, label=_label(values, names) or None)
                       for values in self.runs]
        log.info("sequencer: queued %d %s run(s)", len(self.queued), self.kind)
        self.accept()


def _label(values: dict, names: list[str]) -> str:
    return ", ".join(f"{n}={values[n]:g}" if isinstance(values[n], float) else f"{n}={values[n]}" for n in names)


def jobs_json(jobs: list) -> str:
    return json.dumps([{"kind": j.kind, "values": j.values} for j in jobs])
