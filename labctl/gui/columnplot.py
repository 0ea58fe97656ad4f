"""A plot of any two columns of a step, chosen by the user (pymeasure's X/Y axis choosers),
fed by the same rows as the live plots; exports the plot (PNG/SVG/PDF) and the step's data (CSV)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from labctl.gui.plots import EXPORT_FILTERS, export_plot

log = logging.getLogger("labctl.gui")

PREFERRED = {"rt": ("Temperature (K)", "Resistance (ohm)"), "vi": ("Current (A)", "Voltage (V)"),
             "residual": ("Current (A)", "Voltage (V)"), "radial-field": ("Time (s)", "Field (T)"),
             "normal-control": ("Time (s)", "Field (T)"), "radial-scan": ("Radius (m)", "Field (T)")}


class ColumnPlot(QtWidgets.QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        bar = QtWidgets.QHBoxLayout()
        self.step_box = QtWidgets.QComboBox()
        self.x_box = QtWidgets.QComboBox()
        self.y_box = QtWidgets.QComboBox()
        for w in (self.step_box, self.x_box, self.y_box):
            w.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.export_plot_button = QtWidgets.QPushButton("Export plot…")
        self.export_plot_button.setToolTip("PNG, SVG or PDF (vector), or the plotted x/y as CSV")
        self.export_data_button = QtWidgets.QPushButton("Export data CSV…")
        self.export_data_button.setToolTip("Every column of the selected step, as a CSV file")
        bar.addWidget(QtWidgets.QLabel("Step"))
        bar.addWidget(self.step_box)
        bar.addWidget(QtWidgets.QLabel("X"))
        bar.addWidget(self.x_box)
        bar.addWidget(QtWidgets.QLabel("Y"))
        bar.addWidget(self.y_box)
        bar.addStretch(1)
        bar.addWidget(self.export_plot_button)
        bar.addWidget(self.export_data_button)
        lay.addLayout(bar)
        self.widget = pg.PlotWidget()
        self.plot = self.widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1.5), symbol="o", symbolSize=5,
                                    symbolBrush="#1f77b4", symbolPen=None)
        lay.addWidget(self.widget, 1)
        self.data: dict[str, dict[str, list]] = {}
        self.kinds: dict[str, str | None] = {}
        self.dirty = False
        self.step_box.currentIndexChanged.connect(self._on_step)
        self.x_box.currentIndexChanged.connect(self.redraw_now)
        self.y_box.currentIndexChanged.connect(self.redraw_now)
        self.export_plot_button.clicked.connect(self._export_plot_dialog)
        self.export_data_button.clicked.connect(self._export_data_dialog)

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        self.data.clear()
        self.kinds.clear()
        self.step_box.blockSignals(True)
        self.step_box.clear()
        self.step_box.blockSignals(False)
        self.x_box.clear()
        self.y_box.clear()
        self.curve.setData([], [])

    def begin_step(self, step: str, kind: str | None = None) -> None:
        if step not in self.data:
            self.data[step] = {}
            self.kinds[step] = kind
            self.step_box.addItem(Path(str(step)).stem, step)
            self.step_box.setCurrentIndex(self.step_box.count() - 1)  # follow the newest step

    def add_rows(self, step: str, rows: list[dict]) -> None:
        if not rows:
            return
        self.begin_step(step)
        cols = self.data[step]
        n0 = len(next(iter(cols.values()))) if cols else 0
        for row in rows:
            for name in row:
                if name not in cols:
                    cols[name] = [np.nan] * n0
            for name, col in cols.items():
                col.append(row.get(name, np.nan))
            n0 += 1
        self._columns_changed(step)

    def add_columns(self, step: str, columns: dict, kind: str | None = None) -> None:
        self.begin_step(step, kind)
        cols = self.data[step]
        for name, values in columns.items():
            cols.setdefault(name, []).extend(list(values))
        self._columns_changed(step)

    def _columns_changed(self, step: str) -> None:
        self.dirty = True
        if step == self.step_box.currentData() and self.x_box.count() != len(self.data[step]):
            self._fill_axes(step)

    def _on_step(self) -> None:
        step = self.step_box.currentData()
        if step is not None:
            self._fill_axes(step)

    def _fill_axes(self, step: str) -> None:
        names = [n for n, v in self.data.get(step, {}).items() if _numeric(v)]
        keep_x, keep_y = self.x_box.currentText(), self.y_box.currentText()
        kind = self.kinds.get(step) or _kind_of(step)
        px, py = PREFERRED.get(kind, (None, None))
        for box, keep, pref, fallback in ((self.x_box, keep_x, px, 0), (self.y_box, keep_y, py, 1)):
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            for choice in (keep, pref):
                if choice and choice in names:
                    box.setCurrentText(choice)
                    break
            else:
                if names:
                    box.setCurrentIndex(min(fallback, len(names) - 1))
            box.blockSignals(False)
        self.redraw_now()

    def choose(self, x: str, y: str, step: str | None = None) -> None:
        if step is not None:
            self.step_box.setCurrentIndex(self.step_box.findData(step))
        self.x_box.setCurrentText(x)
        self.y_box.setCurrentText(y)
        self.redraw_now()

    # ------------------------------------------------------------------ drawing
    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        cols = self.data.get(self.step_box.currentData(), {})
        x, y = cols.get(self.x_box.currentText()), cols.get(self.y_box.currentText())
        if x is None or y is None:
            return np.array([]), np.array([])
        return _floats(x), _floats(y)

    def redraw(self) -> None:
        if self.dirty:
            self.redraw_now()

    def redraw_now(self) -> None:
        self.dirty = False
        x, y = self.xy()
        ok = np.isfinite(x) & np.isfinite(y)
        self.curve.setData(x[ok], y[ok])
        xn, yn = self.x_box.currentText(), self.y_box.currentText()
        self.plot.setLabel("bottom", xn)
        self.plot.setLabel("left", yn)
        self.plot.setTitle(f"{yn} vs {xn} — {self.step_box.currentText()}" if xn and yn else "", size="10pt")

    def points(self) -> int:
        x, _ = self.curve.getData()
        return 0 if x is None else len(x)

    # ------------------------------------------------------------------ export
    def export_plot(self, path: str | Path) -> Path:
        return export_plot(self.plot, self.widget, path)

    def export_data(self, path: str | Path) -> Path:
        import pandas as pd

        cols = self.data.get(self.step_box.currentData(), {})
        path = Path(path)
        pd.DataFrame({k: pd.Series(v) for k, v in cols.items()}).to_csv(path, index=False)
        return path

    def _export_plot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the plot", "plot.png", EXPORT_FILTERS)
        if path:
            log.info("saved %s", self.export_plot(path))

    def _export_data_dialog(self) -> None:
        name = f"{self.step_box.currentText() or 'data'}.csv"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the step's data", name, "CSV (*.csv)")
        if path:
            log.info("saved %s", self.export_data(path))


def _numeric(values: list) -> bool:
    for v in values[:20]:
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                return False
    return True


def _floats(values: list) -> np.ndarray:
    out = np.empty(len(values))
    for k, v in enumerate(values):
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = np.nan
    return out


def _kind_of(step: str) -> str | None:
    from labctl.gui.plots import guess_kind

    return guess_kind(step, [])
