"""Choose the protocol or one procedure, edit its parameters, queue runs, and
start / pause / resume / abort them."""
from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from labctl.gui.forms import STEP_TITLES, ProcedureForm, ProtocolForm
from labctl.gui.workers import Job
from labctl.protocol import STEPS

STATE_STYLES = {
    "idle": ("#eeeeee", "#333"),
    "running": ("#e3f2fd", "#0d47a1"),
    "pausing": ("#fff3e0", "#e65100"),
    "paused": ("#fff8e1", "#8d6e00"),
    "aborting": ("#ffebee", "#b71c1c"),
    "replay": ("#ede7f6", "#4527a0"),
    "danger": ("#c0392b", "#ffffff"),  # the supply's state is unknown: the operator must act
}


class RunPanel(QtWidgets.QGroupBox):
    start_requested = QtCore.pyqtSignal()
    pause_requested = QtCore.pyqtSignal()
    resume_requested = QtCore.pyqtSignal()
    abort_requested = QtCore.pyqtSignal()

    def __init__(self, station, parent=None):
        super().__init__("Protocol and procedures", parent)
        self.station = station
        self.connected = False
        self.state = "idle"
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.chooser = QtWidgets.QComboBox()
        self.chooser.addItem("Whole protocol (all steps)", "protocol")
        for step in STEPS:
            self.chooser.addItem(f"{step}: {STEP_TITLES.get(step, step)}", step)
        lay.addWidget(self.chooser)
        self.stack = QtWidgets.QStackedWidget()
        self.forms: dict[str, object] = {}
        self.forms["protocol"] = ProtocolForm(station)
        defaults = self._defaults_from_station()
        for step in STEPS:
            self.forms[step] = ProcedureForm(step, station, defaults.get(step, {}))
        for kind, form in self.forms.items():
            scroll = QtWidgets.QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            scroll.setWidget(form)
            scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.stack.addWidget(scroll)
            form.validated.connect(lambda ok, k=kind: self._on_validated(k, ok))
        self.stack.setMinimumHeight(140)
        lay.addWidget(self.stack, 3)
        self.chooser.currentIndexChanged.connect(self._on_choose)

        who = QtWidgets.QHBoxLayout()
        self.operator = QtWidgets.QLineEdit()
        self.operator.setPlaceholderText("operator (default: login name)")
        self.note = QtWidgets.QLineEdit()
        self.note.setPlaceholderText("note for the runs queued next, e.g. probe re-glued")
        self.operator.setMaximumWidth(150)
        who.addWidget(self.operator)
        who.addWidget(self.note, 1)
        lay.addLayout(who)
        row = QtWidgets.QHBoxLayout()
        self.add_button = QtWidgets.QPushButton("Add to queue")
        self.add_button.setToolTip("Check the parameters against the station limits and queue the run")
        self.sequence_button = QtWidgets.QPushButton("Sequence…")
        self.sequence_button.setToolTip("Queue a grid of runs: every combination of chosen parameter values")
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.clear_button.setToolTip("Clear the queue (a running job stays)")
        for b in (self.add_button, self.sequence_button, self.remove_button, self.clear_button):
            b.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
            row.addWidget(b)
        lay.addLayout(row)
        self.queue = QtWidgets.QListWidget()
        self.queue.setMinimumHeight(60)
        self.queue.setAlternatingRowColors(True)
        self.queue.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.queue.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.queue.setUniformItemSizes(True)
        lay.addWidget(self.queue, 1)
        self.estimate = QtWidgets.QLabel("Queue empty")
        self.estimate.setWordWrap(True)
        self.estimate.setStyleSheet("color: #444;")
        self.estimate.setToolTip("Estimated from each run's points and the seconds a point took in earlier runs "
                                 "of the same kind (virtual lab: divided by its speed-up)")
        lay.addWidget(self.estimate)
        self.jobs: list[Job] = []
        self.estimator = None  # set by the window (needs the data home)

        ctl = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.abort_button = QtWidgets.QPushButton("Abort")
        self.abort_button.setStyleSheet("QPushButton:enabled { color: #b71c1c; font-weight: bold; }")
        self.pause_button.setToolTip("Pause at the next safe point: the current is ramped to zero first")
        self.abort_button.setToolTip("Stop the run: the current is ramped to zero and the output turned off")
        for b in (self.start_button, self.pause_button, self.resume_button, self.abort_button):
            ctl.addWidget(b)
        lay.addLayout(ctl)
        self.banner = QtWidgets.QLabel("Idle")
        self.banner.setWordWrap(True)
        self.banner.setMinimumHeight(30)
        self.banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.banner)
        self.set_state("idle", "Idle — queue a run and press Start")

        self.add_button.clicked.connect(self.add_current)
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button.clicked.connect(self.clear_queue)
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.abort_button.clicked.connect(self.abort_requested)
        self._update_buttons()

    # ------------------------------------------------------------------ forms
    def _defaults_from_station(self) -> dict:
        from labctl.protocol import Plan, Protocol

        out = {}
        try:
            proto = Protocol(self.station, Plan(steps=list(STEPS)))
        except Exception:
            return out
        for step in STEPS:
            try:
                out[step] = proto.defaults(step, {})
            except Exception:
                out[step] = {}
        return out

    def apply_derived(self, derived: dict) -> None:
        """Tc and Ic from the latest R(T) / V–I runs: fill the derived defaults not yet edited."""
        from labctl.protocol import Plan, Protocol

        if not derived:
            return
        try:
            proto = Protocol(self.station, Plan(steps=list(STEPS)))
        except Exception:
            return
        for step in STEPS:
            if step in ("rt", "vi"):
                continue
            try:
                d = proto.defaults(step, derived)
            except Exception:
                continue
            keep = {k: v for k, v in d.items() if k in ("ic", "currents", "current_mode", "current", "temperature")}
            self.forms[step].apply_defaults(keep)

    def revalidate_all(self) -> None:
        for form in self.forms.values():
            form.revalidate()

    def choose(self, kind: str) -> None:
        idx = self.chooser.findData(kind)
        self.chooser.setCurrentIndex(idx)

    def _on_choose(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        self.form().revalidate()
        self._update_buttons()

    def form(self, kind: str | None = None):
        return self.forms[kind or self.chooser.currentData()]

    def _on_validated(self, kind: str, ok: bool) -> None:
        if kind == self.chooser.currentData():
            self._update_buttons()

    # ------------------------------------------------------------------ queue
    def add_current(self) -> Job | None:
        form = self.form()
        if form.revalidate():
            return None
        kind = form.kind
        if kind == "protocol":
            job = Job("protocol", options=form.options(), overrides_text=form.overrides_text(), label=form.describe())
        else:
            job = Job(kind, values=form.values(), label=form.describe())
        return self.enqueue(job)

    def add_job(self, kind: str, values: dict, label: str | None = None) -> Job:
        """Queue one procedure run with these values (the sequencer's grid points)."""
        if label is None:
            form = self.forms[kind]
            changed = {k: v for k, v in values.items() if form.values().get(k) != v}
            label = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())
            label = label or form.describe()
        return self.enqueue(Job(kind, values=dict(values), label=label))

    def enqueue(self, job: Job) -> Job:
        job.operator = self.operator.text().strip() or None
        job.notes = [self.note.text().strip()] if self.note.text().strip() else []
        self.jobs.append(job)
        self.queue.addItem(QtWidgets.QListWidgetItem())
        self.refresh_queue()
        self._update_buttons()
        return job

    def remove_selected(self) -> None:
        for item in self.queue.selectedItems():
            row = self.queue.row(item)
            if self.jobs[row].status == "running":
                continue
            self.queue.takeItem(row)
            self.jobs.pop(row)
        self._update_buttons()

    def clear_queue(self) -> None:
        keep = [(j) for j in self.jobs if j.status == "running"]
        self.jobs = keep
        self.queue.clear()
        for _ in keep:
            self.queue.addItem(QtWidgets.QListWidgetItem())
        self.refresh_queue()
        self._update_buttons()

    def next_job(self) -> Job | None:
        return next((j for j in self.jobs if j.status == "queued"), None)

    def refresh_queue(self) -> None:
        marks = {"queued": "○", "running": "▶", "completed": "✔", "aborted": "■", "failed": "✖", "refused": "✖",
                 "interrupted": "■"}
        for k, job in enumerate(self.jobs):
            item = self.queue.item(k)
            if item is None:
                continue
            shown = job.display if job.status == "running" and job.display else job.status
            mark = {"paused": "⏸", "pausing": "⏸", "aborting": "■"}.get(shown, marks.get(job.status, "?"))
            item.setText(f"{mark} [{shown}] {job.describe()}")
            tip = job.describe()
            if job.result and job.result.get("reason"):
                tip += "\n" + job.result["reason"]
            if job.result and job.result.get("path"):
                tip += "\n" + str(job.result["path"])
            item.setToolTip(tip)
        self.update_estimate()

    def update_estimate(self, running_left: float | None = None) -> None:
        if self.estimator is None:
            return
        try:
            self.estimate.setText(self.estimator.queue_text(self.jobs, running_left=running_left))
        except Exception as e:  # noqa: BLE001 - an estimate never breaks the queue
            self.estimate.setText(f"no estimate ({e})")

    # ------------------------------------------------------------------ state
    def set_state(self, state: str, text: str) -> None:
        self.state = state
        bg, fg = STATE_STYLES.get(state, STATE_STYLES["idle"])
        self.banner.setText(text)
        self.banner.setStyleSheet(f"QLabel {{ background: {bg}; color: {fg}; border-radius: 4px; padding: 4px; "
                                  f"font-weight: bold; }}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = getattr(self, "state", "idle")
        busy = state in ("running", "pausing", "paused", "aborting")
        self.add_button.setEnabled(self.form().valid if hasattr(self.form(), "valid") else True)
        self.sequence_button.setEnabled(self.form().kind != "protocol")
        self.start_button.setEnabled(self.connected and not busy and state != "replay"
                                     and self.next_job() is not None)
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state in ("pausing", "paused"))
        self.abort_button.setEnabled(state in ("running", "pausing", "paused"))
