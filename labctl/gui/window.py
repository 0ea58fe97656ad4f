"""The main window of ``labctl gui``.

Threads: the GUI thread draws and handles clicks; a :class:`StationWorker`
thread owns the station connection and polls the readings; a
:class:`RunWorker` thread executes one queued run at a time through
:func:`labctl.protocol.execute` (the CLI's engine, with the same pause/abort
semantics); a :class:`ReplayWorker` thread replays recorded runs.  Rows reach
the GUI through a deque drained by a 30 Hz redraw timer.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
from pymeasure.display.widgets import LogWidget
from PyQt6 import QtCore, QtGui, QtWidgets

from labctl.gui.bridge import StreamBridge
from labctl.gui.browser import RunBrowser
from labctl.gui.columnplot import ColumnPlot
from labctl.gui.plots import EXPORT_FILTERS, PLOT_TITLES, LivePlots, guess_kind
from labctl.gui.results import ReportView, ResultsPanel, truth_of
from labctl.gui.runpanel import RunPanel
from labctl.gui.station_panel import StationPanel, StationWorker
from labctl.gui.workers import Job, ReplayWorker, RunWorker, submit
from labctl.runner import RunControl
from labctl.stream import LiveStream

log = logging.getLogger("labctl.gui")


class LogPanel(LogWidget):
    """pymeasure's log widget, with its blink timer per instance (the stock one is shared by the class)."""

    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    datefmt = "%H:%M:%S"

    def __init__(self, name="Log", parent=None):
        super().__init__(name, parent)
        try:
            LogWidget._blink_qtimer.timeout.disconnect(self._blink)
        except (TypeError, RuntimeError):
            pass
        self._blink_qtimer = QtCore.QTimer(self)
        self._blink_qtimer.timeout.connect(self._blink)
        self.view.setMaximumBlockCount(5000)
        self.view.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.handler.setLevel(logging.INFO)


class FitScrollArea(QtWidgets.QScrollArea):
    """Gives its widget the viewport's height, or its minimum height when the window is smaller
    (then it scrolls): widgets never overlap, whatever the window size (1280×720 and up)."""

    def _fit(self) -> None:
        w = self.widget()
        if w is None:
            return
        vp = self.viewport()
        w.resize(vp.width(), max(vp.height(), w.minimumSizeHint().height()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit()


class MainWindow(QtWidgets.QMainWindow):
    """``MainWindow(station=None, data_dir=None)``: None = the built-in virtual lab, in-process."""

    REDRAW_HZ = 30

    def __init__(self, station=None, data_dir: str | Path | None = None, poll_ms: int = 400, parent=None):
        super().__init__(parent)
        if station is None:
            from labctl.station import Station

            station = Station.from_file(None)
        self.station = station
        from labctl import datadir

        self.data_dir = datadir.resolve(data_dir, station.config).path
        self.setWindowTitle(f"labctl — {station.config.station.name}")
        self.control = RunControl()
        self.stream = LiveStream()
        self.replay_stream = LiveStream()
        self.bridge = StreamBridge()
        self.stream.subscribe(self.bridge.subscriber("run"))
        self.replay_stream.subscribe(self.bridge.subscriber("replay"))
        self.worker: RunWorker | None = None
        self.replayer: ReplayWorker | None = None
        self.current_job: Job | None = None
        self.last_result: dict | None = None
        self.last_replay: dict | None = None
        self.step_status: dict[str, str] = {}
        self.step_rows: dict[str, int] = {}
        self.current_step: str | None = None
        self.step_total = 0
        self.step_index = 0
        self._step_t0 = 0.0
        self._percent = 0.0
        self._close_after_run = False
        self._force_close = False
        self._shut_down = False
        self.analysis_text = ""
        self.last_analysis: dict | None = None
        self.last_report = None
        self.last_export = None
        self._replay_eta: float | None = None
        self._run_t0 = 0.0

        self._build_ui()
        self._build_menus()
        self._attach_log()

        # the station's own thread: connect, identify, poll, and finally shut down safely
        self.station_thread = QtCore.QThread(self)
        self.station_worker = StationWorker(station, poll_ms)
        self.station_worker.moveToThread(self.station_thread)
        self.station_thread.started.connect(self.station_worker.start)
        self.station_worker.connected.connect(self._on_connected)
        self.station_worker.readings.connect(self.station_panel.on_readings)
        self.station_worker.readings.connect(lambda _d: self._update_state())
        self.station_worker.stopped.connect(self._on_station_stopped)
        self._stop_station.connect(self.station_worker.stop)
        self._reconnect_station.connect(self.station_worker.reconnect)
        self.station_panel.reconnect_button.clicked.connect(self.reconnect)
        self.station_thread.start()

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(1000 / self.REDRAW_HZ))
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        self.browser.refresh()
        self._refresh_derived()

    _stop_station = QtCore.pyqtSignal()
    _reconnect_station = QtCore.pyqtSignal()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        self.station_panel = StationPanel(self.station)
        self.run_panel = RunPanel(self.station)
        from labctl.gui.sequencer import Estimator

        self.estimator = Estimator(self.station, self.data_dir)
        self.run_panel.estimator = self.estimator
        column = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(column)
        ll.setContentsMargins(4, 4, 4, 4)
        ll.addWidget(self.station_panel)
        ll.addWidget(self.run_panel, 1)
        # the left column scrolls instead of squeezing its widgets on top of each other (1280×720)
        left = FitScrollArea()
        left.setWidget(column)
        left.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        left.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setMinimumWidth(440)
        left.setMaximumWidth(580)
        self.left_scroll = left

        self.plots = LivePlots()
        live = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(live)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(2)
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 0)
        bar.addWidget(QtWidgets.QLabel("Models on B(r):"))
        self.model_boxes: dict[str, QtWidgets.QCheckBox] = {}
        for name in ("uniform", "linear-j", "meissner", "bean", "intermediate"):
            box = QtWidgets.QCheckBox(name)
            box.setChecked(self.plots.shown_models[name])
            box.toggled.connect(lambda on, n=name: self.plots.set_models(**{n: on}))
            self.model_boxes[name] = box
            bar.addWidget(box)
        bar.addStretch(1)
        self.clear_on_run = QtWidgets.QCheckBox("Clear plots for each new run")
        self.clear_on_run.setChecked(True)
        bar.addWidget(self.clear_on_run)
        clear = QtWidgets.QPushButton("Clear plots")
        clear.clicked.connect(self.clear_plots)
        export = QtWidgets.QPushButton("Export plots…")
        export.setToolTip("Every plot as PNG, SVG, PDF or CSV into a folder (one plot: the Plots menu)")
        export.clicked.connect(self.export_plots_dialog)
        bar.addWidget(clear)
        bar.addWidget(export)
        lv.addLayout(bar)
        lv.addWidget(self.plots, 1)

        self.browser = RunBrowser(self.data_dir)
        self.browser.plot_requested.connect(self.open_run)
        self.browser.analyse_requested.connect(self.analyse)
        self.browser.replay_requested.connect(self.replay)
        self.browser.stop_replay_requested.connect(self.stop_replay)
        self.browser.report_requested.connect(self.make_report)
        self.browser.resume_requested.connect(self.resume_run)
        self.browser.use_parameters_requested.connect(self.use_parameters)
        self.browser.export_requested.connect(self.export_run)
        self.column_plot = ColumnPlot()
        self.results = ResultsPanel()
        self.report_view = ReportView()

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(live, "Live plots")
        self.tabs.addTab(self.column_plot, "Columns")
        self.tabs.addTab(self.results, "Results")
        self.tabs.addTab(self.browser, "Run browser")
        self.tabs.addTab(self.report_view, "Report")

        self.bottom = QtWidgets.QTabWidget()
        self.log_panel = LogPanel("Log")
        self.bottom.addTab(self.log_panel, "Log")

        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.tabs)
        right.addWidget(self.bottom)
        right.setStretchFactor(0, 5)
        right.setStretchFactor(1, 1)
        right.setSizes([800, 150])
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([440, 1160])
        self.setCentralWidget(split)

        sb = self.statusBar()
        self.status_state = QtWidgets.QLabel("idle")
        self.status_step = QtWidgets.QLabel("")
        self.status_progress = QtWidgets.QProgressBar()
        self.status_progress.setRange(0, 1000)
        self.status_progress.setFixedWidth(220)
        self.status_progress.setFormat("%p %")
        self.status_rows = QtWidgets.QLabel("")
        self.status_eta = QtWidgets.QLabel("")
        self.status_state.setMinimumWidth(160)
        for w in (self.status_state, self.status_step):
            sb.addWidget(w)
            w.setStyleSheet("padding: 0 10px; border-right: 1px solid #bbb;")
        sb.addPermanentWidget(self.status_rows)
        sb.addPermanentWidget(self.status_progress)
        sb.addPermanentWidget(self.status_eta)

        rp = self.run_panel
        rp.sequence_button.clicked.connect(self.open_sequencer)
        rp.start_requested.connect(self.start)
        rp.pause_requested.connect(self.pause)
        rp.resume_requested.connect(self.resume)
        rp.abort_requested.connect(self.abort)

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        act = m.addAction("Open run folder…")
        act.triggered.connect(self._open_folder_dialog)
        act = m.addAction("Export all plots…")
        act.triggered.connect(self.export_plots_dialog)
        m.addSeparator()
        act = m.addAction("Quit")
        act.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        pm = self.menuBar().addMenu("&Plots")
        for name, title in PLOT_TITLES.items():
            act = pm.addAction(f"Save “{title}” as PNG, SVG, PDF or CSV…")
            act.triggered.connect(lambda _c=False, n=name: self._export_one_dialog(n))
        rm = self.menuBar().addMenu("&Run")
        for text, slot in (("Start", self.start), ("Pause", self.pause), ("Resume", self.resume),
                           ("Abort", self.abort)):
            rm.addAction(text).triggered.connect(slot)
        rm.addSeparator()
        rm.addAction("Sequence…").triggered.connect(self.open_sequencer)
        vm = self.menuBar().addMenu("&View")
        self.rehearsal_action = vm.addAction("Rehearsal: hide the virtual lab's truth until the analysis")
        self.rehearsal_action.setCheckable(True)
        self.rehearsal_action.setChecked(True)
        self.rehearsal_action.toggled.connect(lambda on: self.station_panel.set_show_truth(not on))

    def _attach_log(self) -> None:
        self._log_handler = self.log_panel.handler
        logger = logging.getLogger("labctl")
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self._log_handler)

    # ------------------------------------------------------------------ station
    def _on_connected(self, info: dict) -> None:
        self.station_panel.on_connected(info)
        self.station_panel.reconnect_button.setEnabled(True)
        bad = [r for r, e in info.items() if not r.startswith("_") and e.get("error")]
        self.run_panel.connected = not bad
        if bad:
            self.run_panel.set_state("idle", f"Station incomplete: {', '.join(bad)} not answering — runs disabled "
                                             "(details and Reconnect in the station panel)")
            for line in self.station_panel.diagnostics():
                log.error("station: %s", line)
        else:
            if self.run_panel.state == "idle" and "Station incomplete" in self.run_panel.banner.text():
                self.run_panel.set_state("idle", "Station connected — queue a run and press Start")
            log.info("station connected: %s", info.get("_sim") or self.station.config.station.name)
        self.run_panel.revalidate_all()
        self.run_panel._update_buttons()

    def _on_station_stopped(self, actions: list) -> None:
        for a in actions:
            log.info("GUI closed: %s", a)

    @property
    def connected(self) -> bool:
        return self.run_panel.connected

    def reconnect(self) -> None:
        """Open the roles that did not answer again (in the station thread; queries only)."""
        if self.run_active():
            log.warning("reconnect refused: a run is in progress")
            return
        self.station_panel.reconnect_button.setEnabled(False)
        self.station_panel.summary.setText(f"{self.station.config.station.name} — reconnecting…")
        log.info("reconnecting the instruments that did not answer")
        self._reconnect_station.emit()

    # ------------------------------------------------------------------ runs
    def run_active(self) -> bool:
        return self.worker is not None  # cleared once the run's end has been handled

    def start(self) -> bool:
        """Start the next queued run (if none is running)."""
        if self.run_active() or not self.connected:
            return False
        job = self.run_panel.next_job()
        if job is None:
            return False
        if self.replayer is not None and self.replayer.isRunning():
            self.stop_replay()
        self.control = RunControl()
        self.control.on_pause = lambda msg: self.bridge.put("run", "paused", msg)
        job.status = "running"
        self.current_job = job
        self.run_panel.refresh_queue()
        if self.clear_on_run.isChecked():
            self.plots.clear()
        self.step_status.clear()
        self.step_rows.clear()
        self.current_step = None
        try:
            plan = job.plan()
        except Exception as e:  # noqa: BLE001 - e.g. a resume of a folder that is no longer a run
            job.status, job.result = "refused", {"reason": str(e)}
            self.current_job = None
            log.error("%s not started: %s", job.describe(), e)
            self.run_panel.refresh_queue()
            self.run_panel.set_state("idle", f"{job.describe()} refused: {e}")
            return False
        self.step_total = len([s for s in plan.steps if s != "radial-scan" or plan.options.get("scan", True)])
        self._job_estimate = self.estimator.seconds(job)
        self.step_index = 0
        self.worker = RunWorker(self.station, self.data_dir, job, self.stream, self.control, self)
        self.worker.finished_run.connect(self._on_run_finished)
        self.station_worker.run_active = True
        self._run_t0 = time.monotonic()
        self.column_plot.clear() if self.clear_on_run.isChecked() else None
        self.run_panel.set_state("running", f"Running {job.describe()} — starting…")
        log.info("starting %s", job.describe())
        self.worker.start()
        self.tabs.setCurrentIndex(0)
        return True

    def pause(self) -> None:
        if self.run_active() and self.run_panel.state == "running":
            self.control.pause()
            log.info("pause requested: the current is ramped to zero at the next safe point")
            self._update_state()

    def resume(self) -> None:
        if self.run_active() and self.run_panel.state in ("pausing", "paused"):
            self.control.resume()
            log.info("resume requested")
            self.run_panel.set_state("running", f"Running {self.current_step or ''}")
            self._update_state()

    def abort(self) -> None:
        if self.run_active():
            self.control.abort()
            log.warning("abort requested: ramping the current to zero")
            self._update_state()

    def _on_run_finished(self, final: dict) -> None:
        self.tick()  # the last rows and step events
        job = self.current_job
        self.last_result = final
        if job is not None:
            job.status = final.get("status", "failed")
            job.result = final
        self.station_worker.run_active = False
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.wait(5000)
        if job is not None:
            job.display = None
        self._percent = 0.0
        self.status_eta.setText("")  # no ETA once a run has ended (completed, aborted or failed)
        self.status_progress.setValue(0)
        self.run_panel.refresh_queue()
        status = final.get("status")
        msg = f"run {final.get('id') or job.kind if job else ''} {status}" + (
            f": {final.get('reason')}" if final.get("reason") else "")
        reason = final.get("reason") or ""
        danger = "DANGER" in reason or "UNVERIFIED" in reason
        (log.critical if danger else log.info if status == "completed" else log.warning)(msg)
        # never claim a safe supply when the shutdown could not be confirmed
        safe = (" Current state UNKNOWN: switch the supply off at the instrument." if danger
                else ". Current at 0 A, output off.")
        self.run_panel.set_state("danger" if danger else "idle",
                                 f"Last run {status}" + (f" — {reason}" if reason else "") + safe)
        self.status_state.setText("DANGER: current source state unknown" if danger else f"last run {status}")
        self.status_state.setStyleSheet("color: white; background: #c0392b; font-weight: bold;" if danger else "")
        self.browser.refresh()
        self._refresh_derived()
        if self._close_after_run:
            QtCore.QTimer.singleShot(0, self.close)
            return
        if final.get("path") and status in ("completed", "aborted", "failed") and not danger:
            self.analyse(final["path"], show=status == "completed")
        if status == "completed" and self.run_panel.next_job() is not None:
            QtCore.QTimer.singleShot(0, self.start)

    def _refresh_derived(self) -> None:
        from labctl.catalog import Catalog
        from labctl.protocol import latest_results

        if not (self.data_dir / Catalog.FILENAME).exists():
            return

        def done(derived, error):
            if error is None and derived and not self._shut_down:
                self.run_panel.apply_derived(derived)

        cfg = self.station.config  # only this sample on this station: never another sample's Ic
        sample = cfg.sample.name if cfg.sample else None
        submit(lambda: latest_results(Catalog(self.data_dir), sample=sample, station=cfg.station.name), on_done=done)

    def _update_state(self) -> None:
        """The banner: running / pausing (current ramping to zero) / paused (current at 0 A) / aborting."""
        if self._shut_down:
            return
        rp = self.run_panel
        current = self.station_panel.current()
        cur = f"I = {current:.3g} A" if isinstance(current, (int, float)) else ""
        if self.run_active():
            step = self.current_step or (self.current_job.kind if self.current_job else "")
            job = self.current_job
            shown = ("aborting" if self.control.aborted else "paused" if self.control.paused.is_set()
                     else "pausing" if self.control.pause_requested else None)
            if job is not None and job.display != shown:
                job.display = shown
                self.run_panel.refresh_queue()
            if self.control.aborted:
                rp.set_state("aborting", f"Aborting — current is ramping to zero ({cur})")
                self.status_state.setText("aborting")
            elif self.control.paused.is_set():
                at_zero = current is None or abs(current) < 1e-3
                rp.set_state("paused", ("Paused — current at 0 A, output off. Resume or Abort." if at_zero
                                        else f"Paused — current ramping to zero ({cur})"))
                self.status_state.setText("paused, current at 0 A" if at_zero else "paused, ramping down")
            elif self.control.pause_requested:
                rp.set_state("pausing", f"Pausing — current is ramping to zero at the next safe point ({cur})")
                self.status_state.setText("pausing")
            else:
                rows = self.step_rows.get(self.current_step, 0) if self.current_step else 0
                rp.set_state("running", f"Running {step} — {rows} rows ({cur})")
                self.status_state.setText("running")
        elif self.replayer is not None and self.replayer.isRunning():
            rp.set_state("replay", f"Replaying {Path(str(self.replayer.path)).name}")
            self.status_state.setText("replaying")

    # ------------------------------------------------------------------ the stream
    def tick(self) -> None:
        """Drain the stream, feed the plots, redraw dirty curves, update the status line."""
        if self._shut_down:
            return
        events = self.bridge.drain()
        pending: dict[str, list] = {}

        def flush(step: str | None = None):
            for s in ([step] if step else list(pending)):
                rows = pending.pop(s, None)
                if rows:
                    self.plots.add_rows(s, rows)
                    self.column_plot.add_rows(s, rows)

        for source, topic, payload in events:
            if topic == "row":
                step = payload.get("step")
                pending.setdefault(step, []).append(payload.get("row", {}))
                self.step_rows[step] = self.step_rows.get(step, 0) + 1
            elif topic == "step":
                step = payload.get("step")
                flush(step)
                status = payload.get("status")
                if status == "running":
                    self.plots.begin_step(step, payload.get("kind") or guess_kind(step, []), payload.get("path"))
                    self.column_plot.begin_step(step, payload.get("kind"))
                    self.current_step = step
                    self.step_index += 1
                    self._step_t0 = time.monotonic()
                    self._percent = 0.0
                    self.step_rows.setdefault(step, 0)
                    self.step_status[step] = "running"
                else:
                    self.plots.end_step(step)
                    self.step_status[step] = status
                    if status not in ("completed",) and payload.get("reason"):
                        log.warning("step %s %s: %s", step, status, payload.get("reason"))
            elif topic == "progress":
                self._percent = float(payload.get("percent") or 0.0)
                if source == "replay" and payload.get("overall") is not None:
                    self._percent = float(payload["overall"])
                    self._replay_eta = payload.get("eta_s")
            elif topic == "event":
                log.warning("safety event in %s: %s", payload.get("step"),
                            payload.get("message") or payload.get("kind") or payload)
            elif topic == "paused":
                log.info("%s", payload)
        flush()
        self.plots.redraw()
        self.column_plot.redraw()
        if events or self.run_active():
            self._update_status_bar()
            self._update_state()

    def _update_status_bar(self) -> None:
        step = self.current_step
        if step:
            k = f" ({self.step_index}/{self.step_total})" if self.step_total > 1 else ""
            self.status_step.setText(f"step {step}{k}")
        self.status_progress.setValue(int(10 * self._percent))
        replaying = self.replayer is not None and self.replayer.isRunning()
        if replaying:
            total = sum(self.step_rows.values())
            self.status_rows.setText(f"{total} rows replayed")
        else:
            self.status_rows.setText(f"{self.step_rows.get(step, 0)} rows" if step else "")
        p = self._percent
        if replaying and self._replay_eta is not None:
            self.status_eta.setText(f"replay ETA {_hms(self._replay_eta)}")
        elif step and 0 < p < 100 and self.run_active() and not self.control.aborted:
            elapsed = time.monotonic() - self._step_t0
            eta = elapsed * (100 - p) / p
            self.status_eta.setText(f"step ETA {_hms(eta)}")
        else:
            self.status_eta.setText("")
        if self.run_active() and getattr(self, "_job_estimate", None):
            left = max(0.0, self._job_estimate - (time.monotonic() - self._run_t0))
            if int(time.monotonic() * 2) % 2 == 0:  # twice a second is plenty
                self.run_panel.update_estimate(running_left=left)

    # ------------------------------------------------------------------ browser
    def open_run(self, path: str) -> None:
        """Plot a recorded run (folder or file); loading runs on a pool thread."""
        from labctl.analysis import load, load_run

        p = Path(path)

        def work():
            if p.is_dir():
                return [(name, ds) for name, ds in load_run(p).steps]
            return [(p.name, load(p))]

        def done(steps, error):
            if error is not None:
                log.error("cannot plot %s: %s", path, error)
                return
            self.plot_datasets(steps)
            log.info("plotted %s", path)

        submit(work, on_done=done)

    def clear_plots(self) -> None:
        self.plots.clear()
        self.column_plot.clear()

    def plot_datasets(self, steps: list) -> None:
        self.plots.clear()
        self.column_plot.clear()
        for name, ds in steps:
            if isinstance(ds, Exception) or not hasattr(ds, "frame"):
                log.warning("%s: %s", name, ds)
                continue
            kind = guess_kind(name, ds.frame.columns) or ds.kind
            try:
                radius = ds.parameter("Sample radius", "length")
            except Exception:
                radius = None
            cols = {}
            for c in ds.frame.columns:
                s = ds.frame[c]
                if s.dtype == object or str(s.dtype).startswith(("string", "str")):
                    cols[c] = s.astype(object).to_numpy()
                else:
                    cols[c] = s.to_numpy(dtype=float, na_value=np.nan)
            self.plots.begin_step(name, kind, radius=radius)
            self.plots.add_columns(name, cols, kind)
            self.plots.end_step(name)
            self.column_plot.add_columns(name, cols, kind)
        self.plots.redraw(force=True)
        self.opened = [name for name, _ in steps]
        self.tabs.setCurrentIndex(0)

    def analyse(self, path: str, show: bool = True) -> None:
        """Analyse a run on a pool thread (busy indicator); the Results tab gets Tc, Ic, ratios, verdict
        and, for a rehearsal, the virtual lab's truth beside the verdict."""
        import warnings

        from labctl.analysis import analyze, summary_text

        def work():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = analyze(path)
            return result, summary_text(result)

        def done(out, error):
            if self._shut_down:
                return
            self.browser.set_busy("analyse", None)
            self.results.set_busy(False)
            if error is not None:
                text = f"analysis failed: {error}"
                self.results.errors.setText(text)
                log.error("analysis of %s failed: %s", path, error)
            else:
                result, text = out
                self.last_analysis = self.results.show_result(path, result, truth_of(path))
                if show:
                    self.tabs.setCurrentWidget(self.results)
            self.analysis_text = text
            self.browser.summary.setPlainText(text)

        self.browser.set_busy("analyse", "analysing…")
        self.results.set_busy(True)
        self.browser.summary.setPlainText("analysing…")
        submit(work, on_done=done)

    def make_report(self, path: str) -> None:
        """Write the HTML report (figures included) on a pool thread and show it in the Report tab."""
        def work():
            import warnings

            from labctl.report import build_report

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return build_report(path, fmt="html")

        def done(result, error):
            if self._shut_down:
                return
            self.browser.set_busy("report", None)
            self.report_view.set_busy(False)
            QtWidgets.QApplication.restoreOverrideCursor()
            if error is not None:
                log.error("report of %s failed: %s", path, error)
                self.report_view.label.setText(f"report failed: {error}")
            else:
                self.last_report = result
                log.info("report written: %s", getattr(result, "path", result))
                self.report_view.show_report(result.path)
                self.tabs.setCurrentWidget(self.report_view)
            self.browser._on_select()

        self.browser.set_busy("report", "making the report…")
        self.report_view.set_busy(True)
        self.report_view.label.setText(f"Making the report of {Path(path).name}…")
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.BusyCursor)
        submit(work, on_done=done)

    def export_run(self, path: str, fmt: str, output: str | None = None) -> None:
        """``labctl export`` from the browser (beside the run unless ``output``), with a busy indicator."""
        from labctl.export import export

        def done(result, error):
            if self._shut_down:
                return
            self.browser.set_busy(f"export-{fmt}", None)
            if error is not None:
                log.error("export of %s as %s failed: %s", path, fmt, error)
            else:
                self.last_export = result
                log.info("exported %s as %s: %s", Path(path).name, fmt, result)
                self.statusBar().showMessage(f"exported {fmt}: {result}", 15000)

        self.browser.set_busy(f"export-{fmt}", f"exporting {fmt}…")
        submit(lambda: export(path, fmt, output), on_done=done)

    # ------------------------------------------------------------------ resume, parameters, sequencer
    def resume_run(self, run_dir: str) -> bool:
        """Queue ``labctl resume`` of an aborted/failed/interrupted run and start it (same engine)."""
        from labctl.gui.workers import Job

        job = self.run_panel.enqueue(Job("resume", run_dir=str(run_dir), label="continue from the last point"))
        log.info("queued: resume %s", Path(run_dir).name)
        if not self.run_active():
            return self.start()
        return True

    def use_parameters(self, entry: dict) -> bool:
        """Fill the protocol or procedure form with a recorded run's parameters."""
        import json

        path = Path(entry.get("path") or "")
        folder = path if path.is_dir() else path.parent
        try:
            state = json.loads((folder / "parameters.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.error("no parameters for %s: %s", entry.get("id"), e)
            return False
        rp = self.run_panel
        steps = (state.get("plan") or {}).get("steps") or []
        step = entry["id"].rsplit("/", 1)[-1] if entry.get("parent") else (steps[0] if len(steps) == 1 else None)
        if step and step in rp.forms:
            values = ((state.get("steps") or {}).get(step) or {}).get("parameters") or {}
            rp.choose(step)
            form = rp.forms[step]
            for name, value in values.items():
                if name in form.inputs:
                    try:
                        form.set_value(name, value)
                    except (ValueError, TypeError):
                        log.warning("parameter %s=%r not applied", name, value)
        else:
            rp.choose("protocol")
            form = rp.forms["protocol"]
            plan = state.get("plan") or {}
            for name, value in (plan.get("options") or {}).items():
                if name in form.inputs:
                    form.set_value(name, value)
            lines = [f"{s}.{k}={v}" for s, vals in (plan.get("overrides") or {}).items() for k, v in vals.items()]
            form.set_value("overrides", "\n".join(lines))
        form.revalidate()
        log.info("parameters of %s loaded into the %s form", entry.get("id"), step or "protocol")
        return True

    def open_sequencer(self):
        from labctl.gui.sequencer import SequencerDialog

        if self.run_panel.form().kind == "protocol":
            log.warning("the sequencer queues runs of one procedure: choose a step first")
            return None
        dlg = SequencerDialog(self.run_panel, self.estimator, self)
        self.sequencer = dlg
        dlg.open()
        return dlg

    def replay(self, path: str, speed: float | str | None = "auto") -> bool:
        """Replay a recorded run into the live plots (speed: 'auto' = about a minute, 1, 10, ... or None = max)."""
        if self.run_active():
            log.warning("a run is in progress: replay refused")
            return False
        if self.replayer is not None and self.replayer.isRunning():
            self.stop_replay()
        self.plots.clear()
        self.column_plot.clear()
        self.step_status.clear()
        self.step_rows.clear()
        self.step_total = 0
        self.step_index = 0
        self._percent = 0.0
        self._replay_eta = None
        self.replayer = ReplayWorker(path, self.replay_stream, speed, self)
        self.replayer.finished_replay.connect(self._on_replay_finished)
        self.browser.set_replaying(True)
        rate = "max" if speed is None else ("auto (about a minute)" if speed == "auto" else f"{speed:g}×")
        self.run_panel.set_state("replay", f"Replaying {Path(path).name} at {rate}")
        self.replayer.start()
        self.tabs.setCurrentIndex(0)
        log.info("replaying %s at %s", path, rate)
        return True

    def stop_replay(self) -> None:
        if self.replayer is not None:
            self.replayer.stop()
            self.replayer.wait(5000)

    def _on_replay_finished(self, result: dict) -> None:
        self.tick()
        self.plots.redraw(force=True)
        self._replay_eta = None
        self.status_eta.setText("")
        self.last_replay = result
        self.browser.set_replaying(False)
        text = f"Replay {result.get('status')} ({result.get('rows', 0)} rows)"
        if result.get("reason"):
            text += f": {result['reason']}"
            log.error("%s", text)
        else:
            log.info("%s", text)
        if not self.run_active():
            self.run_panel.set_state("idle", text)

    # ------------------------------------------------------------------ export / dialogs
    def export_plots_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export all plots into…", str(Path.cwd()))
        if not folder:
            return
        fmt, ok = QtWidgets.QInputDialog.getItem(self, "Format", "Export every plot as:", ["png", "svg", "pdf", "csv"],
                                                 0, False)
        if ok:
            paths = [self.plots.export(name, Path(folder) / f"{name}.{fmt}") for name in self.plots.plots]
            log.info("exported %d plots to %s", len(paths), folder)

    def _export_one_dialog(self, name: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Save {PLOT_TITLES[name]}", f"{name}.png",
                                                        EXPORT_FILTERS)
        if path:
            self.plots.export(name, path)
            log.info("saved %s", path)

    def _open_folder_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a run folder", str(self.data_dir))
        if folder:
            self.open_run(folder)

    def confirm_close(self) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self, "A run is in progress",
            "A run is in progress.\n\nAbort it (the current is ramped to zero and the output turned off) "
            "and close the window?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self._shut_down:
            event.accept()
            return
        if self.run_active():
            if self._close_after_run:  # already aborting: keep waiting for the safe end
                event.ignore()
                return
            if not self._force_close and not self.confirm_close():
                event.ignore()
                return
            self._close_after_run = True
            log.warning("window closing: aborting the run (current ramped to zero first)")
            self.control.abort()
            self._update_state()
            event.ignore()  # closes itself when the run has ended safely
            return
        self.shutdown()
        event.accept()

    def terminate(self, reason: str = "terminated") -> None:
        """SIGTERM / Ctrl-C in the terminal: abort any run safely (no question asked), then close."""
        log.warning("%s: closing the window (a run in progress is aborted, current ramped to zero)", reason)
        self._force_close = True
        self.close()

    def shutdown(self) -> None:
        """Stop the replay and the poller; the station is ramped down, turned off and closed in its thread."""
        if self._shut_down:
            return
        if self.run_active():
            self.control.abort()
            self.worker.wait(60000)
        self.stop_replay()
        self.timer.stop()
        if self.station_thread.isRunning():
            self._stop_station.emit()
            if not self.station_thread.wait(30000):
                log.critical("the station thread did not stop")
        self._shut_down = True
        logging.getLogger("labctl").removeHandler(self._log_handler)
        QtCore.QThreadPool.globalInstance().waitForDone(10000)


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
