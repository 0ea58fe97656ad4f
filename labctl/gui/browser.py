"""The run browser: the catalog's runs, filterable; plot, re-analyse, open the
report folder, or replay a run into the live plots."""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from labctl.catalog import STATUSES

log = logging.getLogger("labctl.gui")

SPEEDS = {"auto (≈1 min)": "auto", "1×": 1.0, "10×": 10.0, "100×": 100.0, "max": None}
STATUS_COLOURS = {"completed": "#2e7d32", "running": "#0277bd", "aborted": "#c62828", "failed": "#c62828",
                  "interrupted": "#ef6c00"}
COLUMNS = ["Run", "Kind", "Status", "Sample", "Station", "Lab", "Tc (K)", "Ic (A)", "Operator", "Started", "Ended",
           "Reason"]
RESUMABLE = ("aborted", "interrupted", "failed")
EXPORT_FORMATS = {"NeXus / HDF5 (.nxs)": "nexus", "bluesky event documents (.jsonl)": "events",
                  "CSV for stock pymeasure (folder)": "csv"}


class RunBrowser(QtWidgets.QWidget):
    plot_requested = QtCore.pyqtSignal(str)  # path
    replay_requested = QtCore.pyqtSignal(str, object)  # path, speed (None = max)
    stop_replay_requested = QtCore.pyqtSignal()
    analyse_requested = QtCore.pyqtSignal(str)
    report_requested = QtCore.pyqtSignal(str)
    resume_requested = QtCore.pyqtSignal(str)  # run folder
    use_parameters_requested = QtCore.pyqtSignal(dict)  # catalog entry
    export_requested = QtCore.pyqtSignal(str, str)  # path, format

    def __init__(self, data_dir: Path, parent=None):
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        filters = QtWidgets.QHBoxLayout()
        self.kind_filter = QtWidgets.QComboBox()
        self.kind_filter.addItem("all kinds", "")
        for k in ("protocol", "rt", "vi", "normal-control", "radial-field", "radial-scan", "residual"):
            self.kind_filter.addItem(k, k)
        self.status_filter = QtWidgets.QComboBox()
        self.status_filter.addItem("any status", "")
        for s in STATUSES:
            self.status_filter.addItem(s, s)
        self.text_filter = QtWidgets.QLineEdit()
        self.text_filter.setPlaceholderText("filter: id, kind, reason, parameters…")
        self.text_filter.setClearButtonEnabled(True)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        filters.addWidget(QtWidgets.QLabel("Kind"))
        filters.addWidget(self.kind_filter)
        filters.addWidget(QtWidgets.QLabel("Status"))
        filters.addWidget(self.status_filter)
        filters.addWidget(self.text_filter, 1)
        filters.addWidget(self.refresh_button)
        lay.addLayout(filters)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setAlternatingRowColors(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setStretchLastSection(True)
        for col in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        split.addWidget(self.tree)

        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(4, 0, 0, 0)
        buttons = QtWidgets.QGridLayout()
        self.plot_button = QtWidgets.QPushButton("Plot")
        self.plot_button.setToolTip("Load the run's data into the plots")
        self.analyse_button = QtWidgets.QPushButton("Re-analyse")
        self.report_button = QtWidgets.QPushButton("Open report folder")
        self.make_report_button = QtWidgets.QPushButton("Make report")
        self.make_report_button.setToolTip("Write the HTML report with its figures and show it in the Report tab")
        self.resume_button = QtWidgets.QPushButton("Resume run")
        self.resume_button.setToolTip("Continue an aborted, failed or interrupted run from its last completed "
                                      "point (as `labctl resume`; the station in force applies)")
        self.replay_button = QtWidgets.QPushButton("Replay")
        self.speed = QtWidgets.QComboBox()
        for text, value in SPEEDS.items():
            self.speed.addItem(text, value)
        self.speed.setCurrentIndex(0)
        self.speed.setToolTip("auto: the whole run in about a minute")
        self.stop_button = QtWidgets.QPushButton("Stop replay")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.plot_button, 0, 0)
        buttons.addWidget(self.analyse_button, 0, 1)
        buttons.addWidget(self.report_button, 1, 0)
        buttons.addWidget(self.make_report_button, 1, 1)
        buttons.addWidget(self.resume_button, 0, 2)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: something long is running
        self.busy.setTextVisible(True)
        self.busy.hide()
        buttons.addWidget(self.busy, 1, 2)
        rep = QtWidgets.QHBoxLayout()
        rep.addWidget(self.replay_button)
        rep.addWidget(QtWidgets.QLabel("speed"))
        rep.addWidget(self.speed)
        rep.addWidget(self.stop_button)
        rl.addLayout(buttons)
        rl.addLayout(rep)
        self.details = QtWidgets.QLabel("Select a run.")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setStyleSheet("color: #333;")
        rl.addWidget(self.details)
        self.summary = QtWidgets.QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(9)
        self.summary.setFont(font)
        self.summary.setPlaceholderText("Re-analyse shows the full analysis text here (the headline numbers "
                                        "are in the Results tab).")
        rl.addWidget(self.summary, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([760, 420])
        lay.addWidget(split, 1)

        self.entries: list[dict] = []
        self.refresh_button.clicked.connect(self.refresh)
        self.kind_filter.currentIndexChanged.connect(self.apply_filter)
        self.status_filter.currentIndexChanged.connect(self.apply_filter)
        self.text_filter.textChanged.connect(self.apply_filter)
        self.tree.itemSelectionChanged.connect(self._on_select)
        self.tree.itemDoubleClicked.connect(lambda *_: self.plot_selected())
        self.plot_button.clicked.connect(self.plot_selected)
        self.analyse_button.clicked.connect(self.analyse_selected)
        self.report_button.clicked.connect(self.open_report)
        self.make_report_button.clicked.connect(self._make_report)
        self.replay_button.clicked.connect(lambda: self.replay_selected())
        self.resume_button.clicked.connect(self.resume_selected)
        self._busy_tasks: dict[str, str] = {}
        self._run_info: dict[str, tuple[float, dict]] = {}
        self.stop_button.clicked.connect(self.stop_replay_requested)
        self._on_select()

    # ------------------------------------------------------------------ listing
    def refresh(self) -> None:
        from labctl.catalog import Catalog

        selected = self.selected_id()
        if (self.data_dir / Catalog.FILENAME).exists():
            try:
                self.entries = Catalog(self.data_dir).list(parent=False)
            except Exception as e:
                log.error("cannot read the catalog in %s: %s", self.data_dir, e)
                self.entries = []
        else:
            self.entries = []
        self.apply_filter()
        if selected:
            self.select(selected)

    def apply_filter(self) -> None:
        kind = self.kind_filter.currentData()
        status = self.status_filter.currentData()
        text = self.text_filter.text().strip().lower()
        self.tree.clear()
        tops = [e for e in self.entries if not e.get("parent")]
        children: dict[str, list[dict]] = {}
        for e in self.entries:
            if e.get("parent"):
                children.setdefault(e["parent"], []).append(e)

        def matches(e: dict) -> bool:
            if kind and e.get("kind") != kind:
                return False
            if status and e.get("status") != status:
                return False
            if text:
                hay = " ".join(str(e.get(k) or "") for k in ("id", "kind", "status", "reason", "parameters", "path",
                                                             "sample", "station", "operator", "notes"))
                if text not in hay.lower():
                    return False
            return True

        for e in sorted(tops, key=lambda e: e.get("started") or "", reverse=True):
            kids = children.get(e["id"], [])
            hit_kids = [c for c in kids if matches(c)]
            if not matches(e) and not hit_kids:
                continue
            item = self._item(e)
            for c in kids:
                item.addChild(self._item(c))
            self.tree.addTopLevelItem(item)
            if hit_kids and not matches(e):
                item.setExpanded(True)

    def _item(self, e: dict) -> QtWidgets.QTreeWidgetItem:
        run_id = e["id"]
        label = run_id.split("/", 1)[1] if "/" in run_id else run_id
        tc, ic, where = self.tc_ic(e)
        item = QtWidgets.QTreeWidgetItem([label, e.get("kind") or "", e.get("status") or "",
                                          e.get("sample") or "", e.get("station") or "",
                                          "sim" if e.get("sim") else "real",
                                          f"{tc:.4g}" if tc is not None else "",
                                          f"{ic:.4g}" if ic is not None else "",
                                          e.get("operator") or "",
                                          _short_time(e.get("started")),
                                          _short_time(e.get("ended"), same_day_as=e.get("started")),
                                          e.get("reason") or ""])
        item.setData(0, QtCore.Qt.ItemDataRole.UserRole, e)
        colour = STATUS_COLOURS.get(e.get("status"), "#333")
        item.setForeground(2, QtGui.QBrush(QtGui.QColor(colour)))
        item.setForeground(5, QtGui.QBrush(QtGui.QColor("#6a1b9a" if e.get("sim") else "#1b5e20")))
        item.setToolTip(0, run_id + (f"\nnotes: {e['notes']}" if e.get("notes") else ""))
        item.setToolTip(5, "virtual lab (rehearsal)" if e.get("sim") else "real instruments")
        for col in (6, 7):
            item.setToolTip(col, where)
        item.setToolTip(COLUMNS.index("Reason"), e.get("reason") or "")
        return item

    def tc_ic(self, e: dict) -> tuple[float | None, float | None, str]:
        """Tc and Ic of a run, from its parameters.json ('derived': measured in the run, or borrowed)."""
        path = e.get("path")
        if not path:
            return None, None, ""
        p = Path(path)
        folder = p if p.is_dir() else p.parent
        f = folder / "parameters.json"
        try:
            mtime = f.stat().st_mtime
        except OSError:
            return None, None, ""
        cached = self._run_info.get(str(f))
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, json.loads(f.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                cached = (mtime, {})
            self._run_info[str(f)] = cached
        derived = cached[1].get("derived") or {}
        step = e["id"].rsplit("/", 1)[-1] if e.get("parent") else None
        tc, ic = derived.get("tc"), derived.get("ic")
        given = ""
        if ic is None:  # a step run with Ic given by the user (--set ic=..., the form)
            for name, info in (cached[1].get("steps") or {}).items():
                value = (info.get("parameters") or {}).get("ic")
                if isinstance(value, (int, float)) and value > 0 and (step is None or step == name):
                    ic, given = value, "Ic given as a parameter"
                    break
        if step == "rt":
            ic = None
        elif step in ("vi",):
            tc = None
        where = []
        for key, name in (("rt_source", "Tc"), ("vi_source", "Ic")):
            src = derived.get(key)
            if isinstance(src, dict) and src.get("run"):
                where.append(f"{name} borrowed from run {src['run']}")
        if given:
            where.append(given)
        return (tc if isinstance(tc, (int, float)) else None, ic if isinstance(ic, (int, float)) else None,
                "; ".join(where) or "measured in this run")

    def visible_ids(self) -> list[str]:
        out = []
        for k in range(self.tree.topLevelItemCount()):
            out.append(self.tree.topLevelItem(k).data(0, QtCore.Qt.ItemDataRole.UserRole)["id"])
        return out

    # ------------------------------------------------------------------ selection
    def select(self, run_id: str) -> bool:
        it = QtWidgets.QTreeWidgetItemIterator(self.tree)
        while it.value():
            item = it.value()
            if item.data(0, QtCore.Qt.ItemDataRole.UserRole)["id"] == run_id:
                self.tree.setCurrentItem(item)
                return True
            it += 1
        return False

    def selected(self) -> dict | None:
        items = self.tree.selectedItems()
        return items[0].data(0, QtCore.Qt.ItemDataRole.UserRole) if items else None

    def selected_id(self) -> str | None:
        e = self.selected()
        return e["id"] if e else None

    def selected_path(self) -> str | None:
        e = self.selected()
        return e.get("path") if e else None

    def report_dir(self) -> Path | None:
        p = self.selected_path()
        if not p:
            return None
        p = Path(p).expanduser().resolve()  # absolute: a relative data home must not reach the file manager
        rep = p / "report" if p.is_dir() else p.parent / f"{p.stem}-report"  # where labctl.report writes
        return rep if rep.is_dir() else None

    def run_folder(self, e: dict | None = None) -> Path | None:
        e = e or self.selected()
        if not e or not e.get("path"):
            return None
        p = Path(e["path"]).expanduser().resolve()
        return p if p.is_dir() else p.parent

    def _on_select(self) -> None:
        e = self.selected()
        has = e is not None and bool(e.get("path")) and Path(e["path"]).exists()
        busy = bool(self._busy_tasks) if hasattr(self, "_busy_tasks") else False
        for b in (self.plot_button, self.replay_button):
            b.setEnabled(has)
        for b in (self.analyse_button, self.make_report_button):
            b.setEnabled(has and not busy)
        self.report_button.setEnabled(self.report_dir() is not None)
        self.resume_button.setEnabled(self.resumable(e))
        if e is None:
            self.details.setText("Select a run.")
            return
        try:
            params = json.loads(e.get("parameters") or "{}")
        except ValueError:
            params = {}
        if isinstance(params, dict) and "steps" in params:
            ptxt = "steps: " + ", ".join(params.get("steps") or [])
        else:
            ptxt = ", ".join(f"{k}={_fmt(v)}" for k, v in list(params.items())[:8]) if isinstance(params, dict) else ""
        sim = "virtual lab" if e.get("sim") else "real instruments"
        who = ", ".join(x for x in (f"sample {e['sample']}" if e.get("sample") else "",
                                    f"station {e['station']}" if e.get("station") else "",
                                    f"operator {e['operator']}" if e.get("operator") else "") if x)
        notes = e.get("notes") or ""
        self.details.setText(f"<b>{e['id']}</b> — {e.get('kind')}, <b>{e.get('status')}</b> ({sim})<br>"
                             + (f"{html.escape(who)}<br>" if who else "")
                             + f"{e.get('path') or ''}<br><span style='color:#555'>{ptxt}</span>"
                             + (f"<br><i>notes: {html.escape(notes)}</i>" if notes else "")
                             + (f"<br><span style='color:#c62828'>{e['reason']}</span>" if e.get("reason") else ""))

    # ------------------------------------------------------------------ actions
    def plot_selected(self) -> None:
        p = self.selected_path()
        if p:
            self.plot_requested.emit(p)

    def analyse_selected(self) -> None:
        p = self.selected_path()
        if p:
            self.summary.setPlainText("analysing…")
            self.analyse_requested.emit(p)

    def replay_selected(self, speed: float | None | str = "ui") -> None:
        p = self.selected_path()
        if p:
            self.replay_requested.emit(p, self.speed.currentData() if speed == "ui" else speed)

    def open_report(self) -> None:
        rep = self.report_dir()
        if rep is not None:
            from labctl.gui.results import open_folder

            open_folder(rep)

    def resumable(self, e: dict | None) -> bool:
        return (e is not None and not e.get("parent") and e.get("status") in RESUMABLE
                and self.run_folder(e) is not None and (self.run_folder(e) / "parameters.json").is_file())

    def resume_selected(self) -> None:
        e = self.selected()
        if self.resumable(e):
            self.resume_requested.emit(str(self.run_folder(e)))

    # ------------------------------------------------------------------ busy indicator
    def set_busy(self, key: str, text: str | None) -> None:
        """Show (text) or clear (None) a busy indicator for a long action (report, re-analysis, export)."""
        if text:
            self._busy_tasks[key] = text
        else:
            self._busy_tasks.pop(key, None)
        if self._busy_tasks:
            self.busy.setFormat(" · ".join(self._busy_tasks.values()))
            self.busy.show()
        else:
            self.busy.hide()
        self._on_select()

    def is_busy(self, key: str | None = None) -> bool:
        return bool(self._busy_tasks) if key is None else key in self._busy_tasks

    # ------------------------------------------------------------------ context menu
    def menu_for(self, e: dict) -> QtWidgets.QMenu:
        """The actions on one run (right click on a row)."""
        menu = QtWidgets.QMenu(self)
        has = bool(e.get("path")) and Path(e["path"]).exists()
        path = e.get("path") or ""

        def add(text, slot, enabled=True, tip=""):
            act = menu.addAction(text)
            act.setEnabled(bool(enabled))
            if tip:
                act.setToolTip(tip)
            act.triggered.connect(slot)
            return act

        add("Plot", lambda: self.plot_requested.emit(path), has)
        add("Results (re-analyse)", lambda: self.analyse_requested.emit(path), has and not self.is_busy("analyse"))
        add("Make and view report", lambda: self.report_requested.emit(path), has and not self.is_busy("report"))
        add("Replay", lambda: self.replay_requested.emit(path, self.speed.currentData()), has)
        menu.addSeparator()
        add("Use these parameters", lambda: self.use_parameters_requested.emit(dict(e)), has,
            "Fill the form with this run's parameters, ready to queue again")
        add("Resume run", lambda: self.resume_requested.emit(str(self.run_folder(e))), self.resumable(e))
        menu.addSeparator()
        add("Reveal in folder", lambda: self.reveal(e), has)
        exp = menu.addMenu("Export")
        exp.setEnabled(has)
        for text, fmt in EXPORT_FORMATS.items():
            act = exp.addAction(text)
            act.triggered.connect(lambda _c=False, f=fmt: self.export_requested.emit(path, f))
        add("Notes…", lambda: self.edit_notes(e), not e.get("parent"))
        menu.addSeparator()
        add("Delete…", lambda: self.delete(e), not e.get("parent") and e.get("status") != "running",
            "Move the run folder to the data home's .trash and remove it from the catalog")
        return menu

    def _context_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        self.tree.setCurrentItem(item)
        e = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        self.menu_for(e).exec(self.tree.viewport().mapToGlobal(pos))

    def reveal(self, e: dict) -> bool:
        from labctl.gui.results import open_folder

        folder = self.run_folder(e)
        return open_folder(folder) if folder is not None else False

    # notes and delete: the catalog's own file, written in short transactions like labctl.catalog does
    def confirm_delete(self, e: dict) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self, "Delete run", f"Delete run {e['id']}?\n\nIts folder is moved to {self.data_dir / '.trash'} "
                                f"and its catalog entry removed.",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def delete(self, e: dict) -> bool:
        from labctl.gui.runstore import delete_run

        if not self.confirm_delete(e):
            return False
        try:
            where = delete_run(self.data_dir, e)
        except Exception as exc:  # noqa: BLE001
            log.error("cannot delete %s: %s", e["id"], exc)
            return False
        log.info("deleted run %s (folder moved to %s)", e["id"], where)
        self.refresh()
        return True

    def ask_notes(self, e: dict) -> str | None:
        text, ok = QtWidgets.QInputDialog.getMultiLineText(self, f"Notes on {e['id']}", "Notes:", e.get("notes") or "")
        return text if ok else None

    def edit_notes(self, e: dict) -> bool:
        from labctl.gui.runstore import save_notes

        text = self.ask_notes(e)
        if text is None:
            return False
        save_notes(self.data_dir, e, text)
        log.info("notes saved for run %s", e["id"])
        self.refresh()
        self.select(e["id"])
        return True

    def _make_report(self) -> None:
        p = self.selected_path()
        if p:
            self.report_requested.emit(p)

    def set_replaying(self, on: bool) -> None:  # noqa: D401
        self.stop_button.setEnabled(on)
        self.replay_button.setEnabled(not on and self.selected() is not None)


def _short_time(iso: str | None, same_day_as: str | None = None) -> str:
    """'2026-11-21T11:32:23+01:00' -> '2026-11-21 11:32:23' (just the time when on the same day)."""
    if not iso:
        return ""
    text = iso.replace("T", " ")[:19]
    if same_day_as and same_day_as[:10] == iso[:10]:
        return text[11:]
    return text


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
