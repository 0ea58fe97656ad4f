"""The run browser: the catalog's runs, filterable; plot, re-analyse, open the
report folder, or replay a run into the live plots."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from labctl.catalog import STATUSES

log = logging.getLogger("labctl.gui")

SPEEDS = {"1×": 1.0, "10×": 10.0, "100×": 100.0, "max": None}
STATUS_COLOURS = {"completed": "#2e7d32", "running": "#0277bd", "aborted": "#c62828", "failed": "#c62828",
                  "interrupted": "#ef6c00"}
COLUMNS = ["Run", "Kind", "Status", "Started", "Ended", "Reason"]


class RunBrowser(QtWidgets.QWidget):
    plot_requested = QtCore.pyqtSignal(str)  # path
    replay_requested = QtCore.pyqtSignal(str, object)  # path, speed (None = max)
    stop_replay_requested = QtCore.pyqtSignal()
    analyse_requested = QtCore.pyqtSignal(str)
    report_requested = QtCore.pyqtSignal(str)

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
        self.replay_button = QtWidgets.QPushButton("Replay")
        self.speed = QtWidgets.QComboBox()
        for text, value in SPEEDS.items():
            self.speed.addItem(text, value)
        self.speed.setCurrentIndex(1)
        self.stop_button = QtWidgets.QPushButton("Stop replay")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.plot_button, 0, 0)
        buttons.addWidget(self.analyse_button, 0, 1)
        buttons.addWidget(self.report_button, 1, 0)
        buttons.addWidget(self.make_report_button, 1, 1)
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
        self.summary.setPlaceholderText("Re-analyse shows the analysis summary here.")
        rl.addWidget(self.summary, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([640, 540])
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
                hay = " ".join(str(e.get(k) or "") for k in ("id", "kind", "status", "reason", "parameters", "path"))
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
        item = QtWidgets.QTreeWidgetItem([label, e.get("kind") or "", e.get("status") or "",
                                          _short_time(e.get("started")),
                                          _short_time(e.get("ended"), same_day_as=e.get("started")),
                                          e.get("reason") or ""])
        item.setData(0, QtCore.Qt.ItemDataRole.UserRole, e)
        colour = STATUS_COLOURS.get(e.get("status"), "#333")
        item.setForeground(2, QtGui.QBrush(QtGui.QColor(colour)))
        item.setToolTip(0, run_id)
        item.setToolTip(5, e.get("reason") or "")
        return item

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
        p = Path(p)
        rep = p / "report" if p.is_dir() else p.parent / f"{p.stem}-report"  # where labctl.report writes
        return rep if rep.is_dir() else None

    def _on_select(self) -> None:
        e = self.selected()
        has = e is not None and bool(e.get("path")) and Path(e["path"]).exists()
        for b in (self.plot_button, self.analyse_button, self.replay_button, self.make_report_button):
            b.setEnabled(has)
        self.report_button.setEnabled(self.report_dir() is not None)
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
        self.details.setText(f"<b>{e['id']}</b> — {e.get('kind')}, <b>{e.get('status')}</b> ({sim})<br>"
                             f"{e.get('path') or ''}<br><span style='color:#555'>{ptxt}</span>"
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
            QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(rep)))

    def _make_report(self) -> None:
        p = self.selected_path()
        if p:
            self.report_requested.emit(p)

    def set_replaying(self, on: bool) -> None:
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
