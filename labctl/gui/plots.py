"""The live plots: R(T), V–I (linear and log), field vs time, B vs r per current
with the models' predictions, and the field ratios vs current.

Data arrive as rows (live runs, replays) or whole columns (a recorded run
opened in the browser); both go through :meth:`LivePlots.add_columns`, which
appends to numpy-backed :class:`~labctl.gui.livecurve.LiveCurve` buffers and
marks them dirty.  The window's redraw timer calls :meth:`LivePlots.redraw`,
which touches only dirty curves, and recomputes the (small) radial reductions
at most a few times a second.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (pg.exporters.ImageExporter)
from PyQt6 import QtCore, QtGui, QtWidgets

log = logging.getLogger("labctl.gui")

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22"]
MODEL_STYLES = {  # name -> (Qt pen style, legend text)
    "uniform": (QtCore.Qt.PenStyle.DashLine, "uniform J"),
    "linear-j": (QtCore.Qt.PenStyle.DotLine, "J ∝ r"),
    "meissner": (QtCore.Qt.PenStyle.DashDotLine, "Meissner/London"),
    "bean": (QtCore.Qt.PenStyle.DashDotDotLine, "Bean"),
    "intermediate": (QtCore.Qt.PenStyle.CustomDashLine, "intermediate state"),
}
FIT_MODELS = ("meissner", "bean", "intermediate")
RADIAL_KINDS = ("radial-field", "normal-control")
PLOT_TITLES = {
    "rt": "R(T)",
    "vi": "V–I",
    "vi_log": "V–I (log–log)",
    "field_time": "Field vs time (current step)",
    "b_r": "B vs r per current",
    "ratio": "Field ratios vs current",
}
RADIAL_COLUMNS = ("Repeat", "Current (A)", "Radius (m)", "Field (T)", "Field std (T)", "Readings", "Polarity")


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class DecadeAxis(pg.AxisItem):
    """A log axis labelled at the decades only (pyqtgraph labels every minor tick, and they overlap)."""

    def logTickStrings(self, values, scale, spacing):
        decades = [abs(v - round(v)) < 1e-6 for v in values]
        if any(decades):
            return [f"10{str(int(round(v))).translate(_SUP)}" if d else "" for v, d in zip(values, decades)]
        return [f"{10 ** v:.2g}" for v in values]


def guess_kind(step: str, columns) -> str | None:
    """A step's kind from its name or, failing that, its columns."""
    name = Path(str(step)).stem
    name = name.split("-", 1)[1] if name[:2].isdigit() and "-" in name else name
    for kind in ("normal-control", "radial-field", "radial-scan", "residual", "rt", "vi"):
        if name == kind or name.endswith(kind):
            return kind
    cols = set(columns)
    if "Resistance (ohm)" in cols:
        return "rt"
    if "Field (T)" in cols and "Radius (m)" in cols:
        return "radial-field" if "Repeat" in cols else "radial-scan"
    if "Voltage (V)" in cols and "Current (A)" in cols:
        return "residual" if "Polarity" in cols else "vi"
    return None


def _column(rows: list[dict], name: str) -> np.ndarray:
    out = np.empty(len(rows))
    for k, r in enumerate(rows):
        v = r.get(name)
        try:
            out[k] = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            out[k] = math.nan
    return out


def rows_to_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """A batch of row dicts as numpy columns (text columns kept as object arrays)."""
    if not rows:
        return {}
    names = list(rows[0].keys())
    cols = {}
    for name in names:
        sample = rows[0].get(name)
        if isinstance(sample, str) and not _is_number(sample):
            cols[name] = np.array([r.get(name) for r in rows], dtype=object)
        else:
            cols[name] = _column(rows, name)
    return cols


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class RadialData:
    """Growing radial-field rows of one step and their (throttled) reduction."""

    def __init__(self, step: str, kind: str, radius: float = 0.01):
        from labctl.gui.livecurve import GrowingBuffer

        self.step, self.kind, self.radius = step, kind, radius
        self.buf = GrowingBuffer(len(RADIAL_COLUMNS), 256)
        self.dirty = False
        self.table = None
        self.fits: list[dict] | None = None
        self.fits_n = -1
        self.last_reduce = 0.0

    def extend(self, cols: dict[str, np.ndarray], n: int) -> None:
        arrays = []
        for name in RADIAL_COLUMNS:
            c = cols.get(name)
            if c is None or c.dtype == object:
                default = 1.0 if name == "Polarity" else (0.0 if name in ("Repeat",) else math.nan)
                if name == "Readings":
                    default = 1.0
                if name == "Current (A)":
                    default = math.nan
                c = np.full(n, default)
            arrays.append(c)
        self.buf.extend(*arrays)
        self.dirty = True

    def frame(self):
        import pandas as pd

        n = len(self.buf)
        data = {name: self.buf.column(k).copy() for k, name in enumerate(RADIAL_COLUMNS)}
        frame = pd.DataFrame(data)
        if n and np.all(np.isnan(frame["Field std (T)"])):
            frame = frame.drop(columns=["Field std (T)"])
        if n and np.all(np.isnan(frame["Current (A)"])):
            frame = frame.drop(columns=["Current (A)"])
        return frame

    def reduce(self):
        from labctl.analysis.radial import reduce_fields

        self.dirty = False
        self.last_reduce = time.monotonic()
        if len(self.buf) == 0:
            self.table = None
            return None
        try:
            table, _notes = reduce_fields(self.frame())
        except Exception:  # not enough rows yet (no non-zero current)
            table = None
        self.table = table
        return table

    def fit(self) -> list[dict] | None:
        """Every model fitted to the fields (calibration k and its own parameter)."""
        from labctl.analysis.radial import compare_models

        if self.table is None or len(self.table) < 3:
            return None
        if self.fits_n == len(self.buf):
            return self.fits
        from labctl.analysis.radial import DEFAULT_POSITION_ERR

        t = self.table.copy()
        t.attrs.setdefault("position_err", DEFAULT_POSITION_ERR)
        err = t["err"].to_numpy(float)
        good = np.isfinite(err) & (err > 0)
        if not good.all():
            floor = np.nanmedian(err[good]) if good.any() else max(1e-9, 1e-3 * np.nanmax(np.abs(t["field"])))
            t.loc[~good, "err"] = floor
        try:
            self.fits = compare_models(t, self.radius)
        except Exception as e:
            log.debug("model fit failed: %s", e)
            self.fits = None
        self.fits_n = len(self.buf)
        return self.fits


class LivePlots(QtWidgets.QWidget):
    """Six plots in a grid, fed incrementally, redrawn only where something changed."""

    REDUCE_INTERVAL = 0.25  # s between radial reductions while data stream in

    def __init__(self, parent=None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="w", foreground="#222")
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(6)
        self.widgets: dict[str, pg.PlotWidget] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        layout = [("rt", 0, 0), ("vi", 0, 1), ("vi_log", 0, 2), ("field_time", 1, 0), ("b_r", 1, 1), ("ratio", 1, 2)]
        for name, row, col in layout:
            axes = {"bottom": DecadeAxis("bottom"), "left": DecadeAxis("left")} if name == "vi_log" else None
            w = pg.PlotWidget(axisItems=axes)
            w.setMinimumSize(260, 200)
            p = w.getPlotItem()
            p.setTitle(PLOT_TITLES[name], size="10pt")
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setDownsampling(auto=True, mode="peak")
            p.setClipToView(True)
            for axis in ("left", "bottom"):
                ax = p.getAxis(axis)
                ax.setStyle(tickFont=QtGui.QFont("DejaVu Sans", 8))
            self.widgets[name] = w
            self.plots[name] = p
            grid.addWidget(w, row, col)
        for c in range(3):
            grid.setColumnStretch(c, 1)
        lab = {"color": "#222", "font-size": "9pt"}
        P = self.plots
        P["rt"].setLabel("bottom", "Temperature", units="K", **lab)
        P["rt"].setLabel("left", "Resistance", units="Ω", **lab)
        P["vi"].setLabel("bottom", "Current", units="A", **lab)
        P["vi"].setLabel("left", "Voltage", units="V", **lab)
        P["vi_log"].setLogMode(x=True, y=True)
        for axis in ("left", "bottom"):
            P["vi_log"].getAxis(axis).enableAutoSIPrefix(False)
        P["vi_log"].setLabel("bottom", "Current (A)", **lab)
        P["vi_log"].setLabel("left", "|Voltage| (V)", **lab)
        P["field_time"].setLabel("bottom", "Time in step", units="s", **lab)
        P["field_time"].setLabel("left", "Field B", units="T", **lab)
        P["b_r"].setLabel("bottom", "Radius r", units="m", **lab)
        P["b_r"].setLabel("left", "Field B", units="T", **lab)
        P["ratio"].setLabel("bottom", "Current", units="A", **lab)
        P["ratio"].setLabel("left", "Ratio Bk/B1", **lab)
        self.legends = {name: p.addLegend(offset=(8, 8), labelTextSize="8pt", brush=(255, 255, 255, 200),
                                          pen=(180, 180, 180), verSpacing=-6)
                        for name, p in P.items() if name != "field_time"}  # one step shown: its title says which
        self.legends["b_r"].setColumnCount(2)
        self.legends["ratio"].anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-8, -8))
        self._link_vi()
        self.curves: dict[tuple[str, str], object] = {}  # (plot, key) -> LiveCurve
        self.step_kind: dict[str, str] = {}
        self.step_index: dict[str, int] = {}
        self.step_radius: dict[str, float] = {}
        self.radial: dict[str, RadialData] = {}
        self.latest_radial: str | None = None
        self.latest_scan: str | None = None
        self._radial_items: list = []
        self._ratio_items: list = []
        self._ratio_refs: list = []
        self.shown_models = {"uniform": True, "linear-j": True, "meissner": False, "bean": False,
                             "intermediate": False}
        self.redraws = 0
        self._add_ratio_references()

    # ------------------------------------------------------------------ setup
    def _link_vi(self) -> None:
        """The two V–I views show the same current window: zooming one moves the other."""
        lin, log_ = self.plots["vi"].getViewBox(), self.plots["vi_log"].getViewBox()
        self._vi_sync = False

        def lin_changed(_vb, rng):
            if self._vi_sync or not lin.state["mouseEnabled"][0] or lin.state["autoRange"][0]:
                return
            lo, hi = rng
            if hi <= 0:
                return
            self._vi_sync = True
            try:
                lo = max(lo, hi * 1e-4)
                log_.setXRange(math.log10(lo), math.log10(hi), padding=0)
            finally:
                self._vi_sync = False

        def log_changed(_vb, rng):
            if self._vi_sync or log_.state["autoRange"][0]:
                return
            self._vi_sync = True
            try:
                lin.setXRange(10 ** rng[0], 10 ** rng[1], padding=0)
            finally:
                self._vi_sync = False

        lin.sigXRangeChanged.connect(lin_changed)
        log_.sigXRangeChanged.connect(log_changed)

    def _add_ratio_references(self) -> None:
        p = self.plots["ratio"]
        for value, text in ((math.sqrt(2), "√2  uniform B2/B1"), (2.0, "2  uniform B3/B1, J∝r B2/B1"),
                            (4.0, "4  J∝r B3/B1")):
            line = pg.InfiniteLine(pos=value, angle=0, pen=pg.mkPen("#999", width=1, style=QtCore.Qt.PenStyle.DashLine),
                                   label=text, labelOpts={"position": 0.02, "color": "#777",
                                                          "anchors": [(0, 1), (0, 1)], "fill": None})
            line.label.setFont(QtGui.QFont("DejaVu Sans", 7))
            p.addItem(line)
            self._ratio_refs.append(line)
        p.setYRange(0, 4.6)

    # ------------------------------------------------------------------ curves
    def _color(self, key: str) -> str:
        if key not in self.step_index:
            self.step_index[key] = len(self.step_index)
        return PALETTE[self.step_index[key] % len(PALETTE)]

    def curve(self, plot: str, key: str, label: str | None = None, color: str | None = None, symbol=None,
              finite: bool = False, width: float = 1.5):
        from labctl.gui.livecurve import LiveCurve

        c = self.curves.get((plot, key))
        if c is None:
            color = color or self._color(key)
            pen = pg.mkPen(color, width=width) if symbol != "only" else None
            if plot == "field_time":  # field vs time of the current step only
                for (p2, _k2), other in self.curves.items():
                    if p2 == "field_time":
                        other.item.setVisible(False)
                self.plots[plot].setTitle(f"Field vs time — {label or key}", size="10pt")
                label = None
            c = LiveCurve(self.plots[plot], name=label if plot == "field_time" else (label or key), pen=pen,
                          symbol=None if symbol in (None,) else ("o" if symbol == "only" else symbol),
                          symbol_size=5, symbol_brush=pg.mkBrush(color), finite=finite)
            self.curves[(plot, key)] = c
        return c

    def points(self, plot: str) -> int:
        """How many data points the plot's curves hold (tests, status)."""
        if plot in ("b_r", "ratio"):
            items = self._radial_items if plot == "b_r" else self._ratio_items
            return sum(len(i.getData()[0]) for i in items
                       if isinstance(i, pg.PlotDataItem) and i.getData()[0] is not None)
        return sum(len(c) for (p, _k), c in self.curves.items() if p == plot)

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        for c in self.curves.values():
            c.remove()
        self.curves.clear()
        for name, leg in self.legends.items():
            leg.clear()
            leg.setVisible(False)
        for it in self._radial_items:
            self.plots["b_r"].removeItem(it)
        for it in self._ratio_items:
            self.plots["ratio"].removeItem(it)
        self._radial_items.clear()
        self._ratio_items.clear()
        self.step_kind.clear()
        self.step_index.clear()
        self.step_radius.clear()
        self.radial.clear()
        self.latest_radial = self.latest_scan = None
        for p in self.plots.values():
            p.enableAutoRange()
        self.plots["ratio"].setYRange(0, 4.6)
        self.plots["field_time"].setTitle(PLOT_TITLES["field_time"], size="10pt")

    def begin_step(self, step: str, kind: str | None, path: str | None = None, radius: float | None = None) -> None:
        kind = kind or guess_kind(step, [])
        self.step_kind[step] = kind
        if radius is None and path:
            radius = header_parameter(path, "Sample radius")
        if radius:
            self.step_radius[step] = radius
        if kind in RADIAL_KINDS:
            self.radial[step] = RadialData(step, kind, radius or 0.01)
            self.latest_radial = step
        elif kind == "radial-scan":
            self.radial[step] = RadialData(step, kind, radius or 0.01)
            self.latest_scan = step

    def add_rows(self, step: str, rows: list[dict], kind: str | None = None) -> None:
        if rows:
            self.add_columns(step, rows_to_columns(rows), kind)

    def add_columns(self, step: str, cols: dict[str, np.ndarray], kind: str | None = None) -> None:
        """Append a batch of one step's data (numeric numpy columns) to its curves."""
        if not cols:
            return
        n = len(next(iter(cols.values())))
        if n == 0:
            return
        if step not in self.step_kind or (kind and self.step_kind[step] is None):
            self.begin_step(step, kind or guess_kind(step, cols.keys()))
        kind = self.step_kind[step]
        label = _short(step)
        if kind == "rt":
            t, r = cols.get("Temperature (K)"), cols.get("Resistance (ohm)")
            if t is None or r is None:
                return
            direction = cols.get("Direction")
            if direction is not None and direction.dtype == object:
                for d in ("cooling", "warming"):
                    m = direction == d
                    if m.any():
                        colour = "#1f77b4" if d == "cooling" else "#d62728"
                        self.curve("rt", f"{step}:{d}", f"{label} {d}", colour, symbol="o").extend(t[m], r[m])
                rest = ~np.isin(direction, ["cooling", "warming"])
                if rest.any():
                    self.curve("rt", step, label, symbol="o").extend(t[rest], r[rest])
            else:
                self.curve("rt", step, label, symbol="o").extend(t, r)
        elif kind in ("vi", "residual"):
            i, v = cols.get("Current (A)"), cols.get("Voltage (V)")
            if i is None or v is None:
                return
            colour = "#2ca02c" if kind == "residual" else None
            sym = "o" if kind == "residual" else None
            self.curve("vi", step, label, colour, symbol=sym).extend(i, v)
            if kind == "vi":
                av = np.abs(v)
                ok = (av > 0) & (i > 0)
                self.curve("vi_log", step, label).extend(i[ok], av[ok])
        elif kind in RADIAL_KINDS or kind == "radial-scan":
            t, b = cols.get("Time (s)"), cols.get("Field (T)")
            if b is not None:
                if t is None:
                    start = len(self.curves[("field_time", step)]) if ("field_time", step) in self.curves else 0
                    t = np.arange(start, start + n, dtype=float)
                ok = np.isfinite(t) & np.isfinite(b)  # the curve skips pyqtgraph's finite check: keep it true
                self.curve("field_time", step, label, finite=True, width=1.2).extend(t[ok], b[ok])
            rd = self.radial.get(step)
            if rd is None:
                self.begin_step(step, kind, radius=self.step_radius.get(step))
                rd = self.radial[step]
            if "Radius (m)" in cols and b is not None:
                rd.extend(cols, n)
        else:
            t = cols.get("Time (s)")
            for name in ("Field (T)", "Voltage (V)"):
                if name in cols and t is not None:
                    ok = np.isfinite(t) & np.isfinite(cols[name])
                    self.curve("field_time", step, label, finite=True).extend(t[ok], cols[name][ok])
                    break

    def end_step(self, step: str) -> None:
        """A step finished: final reduction and all five models fitted."""
        rd = self.radial.get(step)
        if rd is not None:
            rd.reduce()
            if rd.kind in RADIAL_KINDS:
                rd.fit()
            self._draw_radial()

    # ------------------------------------------------------------------ redraw
    def redraw(self, force: bool = False) -> int:
        """Redraw dirty curves; recompute radial reductions if due.  Returns curves redrawn."""
        n = 0
        for c in self.curves.values():
            n += c.redraw()
        now = time.monotonic()
        radial_changed = False
        for rd in self.radial.values():
            if rd.dirty and (force or now - rd.last_reduce >= self.REDUCE_INTERVAL):
                rd.reduce()
                radial_changed = True
        if radial_changed:
            self._draw_radial()
            n += 1
        if n:
            for leg in self.legends.values():
                leg.setVisible(bool(leg.items))
            for (plot, _key), c in self.curves.items():
                if plot == "field_time":
                    few = len(c) <= 400
                    if few != bool(c.item.opts.get("symbol")):
                        c.item.setSymbol("o" if few else None)
                        c.item.setSymbolSize(4)
                        c.item.setSymbolPen(None)
                        c.item.setSymbolBrush(c.item.opts["pen"].color() if hasattr(c.item.opts["pen"], "color")
                                              else "k")
        self.redraws += bool(n)
        return n

    def set_models(self, **shown: bool) -> None:
        self.shown_models.update(shown)
        for name in FIT_MODELS:
            if self.shown_models.get(name):
                for rd in self.radial.values():
                    if rd.kind in RADIAL_KINDS and rd.table is not None:
                        rd.fit()
        self._draw_radial()

    def _draw_radial(self) -> None:
        from labctl.analysis.radial import DEFAULT_POSITION_ERR, model_field, per_current_ratios

        pb, pr = self.plots["b_r"], self.plots["ratio"]
        for it in self._radial_items:
            pb.removeItem(it)
        for it in self._ratio_items:
            pr.removeItem(it)
        self._radial_items.clear()
        self._ratio_items.clear()
        leg_b, leg_r = self.legends["b_r"], self.legends["ratio"]
        leg_b.clear()
        leg_r.clear()
        # --- B vs r: the latest radial step, one colour per current, models dashed
        rd = self.radial.get(self.latest_radial) if self.latest_radial else None
        if rd is not None and rd.table is not None and len(rd.table):
            table = rd.table
            R = rd.radius
            rgrid = np.linspace(0.0, R, 60)
            currents = sorted(table["current"].unique())
            fits = {m["name"]: m for m in (rd.fits or [])} if any(self.shown_models.get(m) for m in FIT_MODELS) else {}
            for k, cur in enumerate(currents):
                colour = PALETTE[k % len(PALETTE)]
                g = table[table["current"] == cur].sort_values("radius")
                r, b, e = (g[c].to_numpy(float) for c in ("radius", "field", "err"))
                pts = pg.PlotDataItem(r, b, pen=None, symbol="o", symbolSize=7, symbolBrush=colour, symbolPen=None,
                                      name=f"I = {cur:.4g} A")
                pb.addItem(pts)
                self._radial_items.append(pts)
                ok = np.isfinite(e)
                if ok.any():
                    eb = pg.ErrorBarItem(x=r[ok], y=b[ok], height=2 * e[ok], beam=0.0003, pen=pg.mkPen(colour))
                    pb.addItem(eb)
                    self._radial_items.append(eb)
                outer = g[np.isclose(g["radius"], table["radius"].max())]
                for name in ("uniform", "linear-j"):
                    if not self.shown_models.get(name) or outer.empty:
                        continue
                    r_out, b_out = float(outer["radius"].iloc[0]), float(outer["field"].iloc[0])
                    f_out = float(model_field(name, [r_out], [cur], R)[0])
                    if f_out == 0 or not math.isfinite(b_out):
                        continue
                    y = b_out / f_out * model_field(name, rgrid, np.full_like(rgrid, cur), R)
                    self._model_line(pb, rgrid, y, colour, name)
                for name in FIT_MODELS:
                    m = fits.get(name)
                    if not self.shown_models.get(name) or m is None:
                        continue
                    key = next((k2 for k2 in m["params"] if k2 != "k"), None)
                    param = m["params"][key]["value"] if key else None
                    try:
                        y = m["params"]["k"]["value"] * model_field(name, rgrid, np.full_like(rgrid, cur), R, param)
                    except Exception:
                        continue
                    self._model_line(pb, rgrid, y, colour, name)
            for name, (style, text) in MODEL_STYLES.items():
                if self.shown_models.get(name) and (name in ("uniform", "linear-j") or name in fits):
                    sample = pg.PlotDataItem([], [], pen=pg.mkPen("#444", width=1.5, style=style))
                    if style == QtCore.Qt.PenStyle.CustomDashLine:
                        sample.opts["pen"].setDashPattern([8, 3, 1, 3, 1, 3])
                    leg_b.addItem(sample, text + (" fit" if name in FIT_MODELS else ""))
            pb.setTitle(f"B vs r per current — {_short(rd.step)}", size="10pt")
        # radial scan as a line
        sd = self.radial.get(self.latest_scan) if self.latest_scan else None
        if sd is not None and sd.table is not None and len(sd.table):
            for cur, g in sd.table.groupby("current"):
                g = g.sort_values("radius")
                line = pg.PlotDataItem(g["radius"].to_numpy(float), g["field"].to_numpy(float),
                                       pen=pg.mkPen("#555", width=1.5), symbol="s", symbolSize=4,
                                       symbolBrush="#555", symbolPen=None, name=f"scan, I = {cur:.4g} A")
                pb.addItem(line)
                self._radial_items.append(line)
        # --- ratios vs current: every radial step
        sym = {"B2/B1": "o", "B3/B1": "s"}
        for k, (step, data) in enumerate((s, d) for s, d in self.radial.items() if d.kind in RADIAL_KINDS):
            if data.table is None or not len(data.table):
                continue
            colour = PALETTE[k % len(PALETTE)]
            radii = sorted(data.table["radius"].unique())
            if len(radii) < 2:
                continue
            series = {"B2/B1": ([], [], []), "B3/B1": ([], [], [])}
            bounds = {"B2/B1": ([], []), "B3/B1": ([], [])}
            # the analysis' own per-current ratios (noise model, probe position, Fieller): the same statuses
            # as the summary, the report and the JSON; no uncertainty means no ratio drawn
            table = data.table.copy()
            table.attrs.setdefault("position_err", DEFAULT_POSITION_ERR)
            try:
                per_current = per_current_ratios(table, data.radius or 0.010)
            except Exception as e:  # noqa: BLE001 - a live plot must not stop the run
                log.debug("ratios failed: %s", e)
                per_current = []
            for pc in per_current:
                cur = pc["current"]
                for key in ("B2/B1", "B3/B1"):
                    q = pc.get(key)
                    if not q:
                        continue
                    if q["status"] == "ok":
                        series[key][0].append(cur)
                        series[key][1].append(q["value"])
                        series[key][2].append(q["err"] or 0.0)
                    elif q["status"] == "bound":
                        bounds[key][0].append(cur)
                        bounds[key][1].append(q["value"])
            for key, (x, y, e) in series.items():
                if x:
                    item = pg.PlotDataItem(x, y, pen=pg.mkPen(colour, width=1), symbol=sym[key], symbolSize=7,
                                           symbolBrush=colour, symbolPen=None, name=f"{key} {_short(step)}")
                    pr.addItem(item)
                    self._ratio_items.append(item)
                    eb = pg.ErrorBarItem(x=np.array(x), y=np.array(y), height=2 * np.array(e), beam=0,
                                         pen=pg.mkPen(colour))
                    pr.addItem(eb)
                    self._ratio_items.append(eb)
            for key, (x, y) in bounds.items():
                if x:
                    item = pg.PlotDataItem(x, np.clip(y, None, 4.5), pen=None, symbol="t1", symbolSize=9,
                                           symbolBrush=None, symbolPen=pg.mkPen(colour, width=1.5),
                                           name=f"{key} lower bound (B1 ≈ 0), {_short(step)}")
                    pr.addItem(item)
                    self._ratio_items.append(item)

        for leg in (leg_b, leg_r):
            leg.setVisible(bool(leg.items))

    def _model_line(self, plot, x, y, colour, name) -> None:
        style = MODEL_STYLES[name][0]
        pen = pg.mkPen(colour, width=1.2, style=style)
        if style == QtCore.Qt.PenStyle.CustomDashLine:
            pen.setDashPattern([8, 3, 1, 3, 1, 3])
        item = pg.PlotDataItem(x, y, pen=pen)
        plot.addItem(item)
        self._radial_items.append(item)

    # ------------------------------------------------------------------ export
    def export_png(self, plot: str, path: str | Path, width: int = 1200) -> Path:
        return export_plot(self.plots[plot], self.widgets[plot], Path(path).with_suffix(".png")
                           if not str(path).lower().endswith(".png") else path, width)

    def export(self, plot: str, path: str | Path, width: int = 1200) -> Path:
        """One plot as PNG, SVG, PDF (vector) or CSV (its curves' data), by the file's suffix."""
        return export_plot(self.plots[plot], self.widgets[plot], path, width)

    def export_all(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return [self.export_png(name, folder / f"{name}.png") for name in self.plots]


EXPORT_FILTERS = "PNG image (*.png);;SVG vector image (*.svg);;PDF document (*.pdf);;CSV data of the curves (*.csv)"


def export_plot(plot_item, widget, path: str | Path, width: int = 1200) -> Path:
    """A pyqtgraph plot to ``path``: .png (raster), .svg / .pdf (vector), .csv (the curves' x/y data)."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        exporter = pg.exporters.ImageExporter(plot_item)
        exporter.parameters()["width"] = width
        exporter.export(str(path))
    elif suffix == ".svg":  # Qt's own SVG generator (pyqtgraph's SVGExporter trips over Qt 6 path data)
        from PyQt6.QtSvg import QSvgGenerator

        source = plot_item.sceneBoundingRect()
        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(QtCore.QSize(int(source.width()), int(source.height())))
        gen.setViewBox(QtCore.QRectF(0, 0, source.width(), source.height()))
        gen.setTitle(plot_item.titleLabel.text if hasattr(plot_item, "titleLabel") else "plot")
        gen.setDescription("exported by labctl")
        painter = QtGui.QPainter(gen)
        try:
            plot_item.scene().render(painter, QtCore.QRectF(0, 0, source.width(), source.height()), source)
        finally:
            painter.end()
    elif suffix == ".csv":
        pg.exporters.CSVExporter(plot_item).export(str(path))
    elif suffix == ".pdf":
        source = plot_item.sceneBoundingRect()
        writer = QtGui.QPdfWriter(str(path))
        writer.setResolution(300)
        mm = 25.4 / 96.0  # the plot's on-screen size, at 96 dpi
        writer.setPageSize(QtGui.QPageSize(QtCore.QSizeF(max(60.0, source.width() * mm),
                                                         max(40.0, source.height() * mm)),
                                           QtGui.QPageSize.Unit.Millimeter))
        writer.setPageMargins(QtCore.QMarginsF(0, 0, 0, 0))
        painter = QtGui.QPainter(writer)
        try:
            target = QtCore.QRectF(0, 0, writer.width(), writer.height())
            plot_item.scene().render(painter, target, source)
        finally:
            painter.end()
    else:
        raise ValueError(f"{path.name}: export as .png, .svg, .pdf or .csv")
    return path


def _short(step: str) -> str:
    return Path(str(step)).stem


def header_parameter(path: str | Path, name: str) -> float | None:
    """One SI parameter (e.g. 'Sample radius') from a pymeasure CSV header; reads only the header lines."""
    from labctl.analysis.units import UnitError, parse_quantity

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("#"):
                    break
                text = line.lstrip("#").strip()
                if text.startswith(name + ":"):
                    value = text.split(":", 1)[1].strip()
                    try:
                        return float(parse_quantity(value, "length"))
                    except (UnitError, ValueError):
                        try:
                            return float(value.split()[0])
                        except (ValueError, IndexError):
                            return None
    except OSError:
        return None
    return None
