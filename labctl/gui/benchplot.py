"""Live-plot benchmark: our LiveCurve against pymeasure's stock ResultsCurve.

One *frame* = a batch of new rows arrives (100 by default, as from a fast
acquisition) and the plot is brought up to date on screen:

* labctl: the rows are appended to the numpy buffers and the curve redrawn from
  views of them (peak downsampling, clip to view);
* pymeasure: the rows are appended to the run's CSV file (as its Worker does)
  and ``ResultsCurve.update_data()`` is called (as its PlotFrame timer does):
  ``Results.data`` re-reads the file past the rows it knows and concatenates,
  then ``setData`` hands the whole column to pyqtgraph.

Both curves sit in identical offscreen pyqtgraph PlotWidgets of the same size,
with the same pen and no antialiasing; the time of a frame includes the
synchronous repaint of the plot.  Not a test: ``labctl bench`` prints it.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _app():
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])


def _stats(what: str, unit: str, values: list[float]) -> dict:
    return {"what": what, "unit": unit, "median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values)}


def _label(n: int) -> str:
    e = int(round(np.log10(n)))
    return f"1e{e}" if 10**e == n else f"{n:g}"


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.01
    b = 1e-3 * np.sin(t / 50.0) + 2e-6 * rng.standard_normal(n)
    return t, b


def _widget(size):
    import pyqtgraph as pg

    w = pg.PlotWidget(background="w")
    w.resize(*size)
    w.show()
    return w


def _paint(widget, app) -> None:
    widget.viewport().update()
    app.processEvents()  # the one paint: prepareForPaint (auto-range) + paint of every item


def _procedure_class():
    from pymeasure.experiment import Procedure

    class BenchProcedure(Procedure):
        DATA_COLUMNS = ["Time (s)", "Field (T)"]

    return BenchProcedure


def _write_rows(path: Path, t: np.ndarray, b: np.ndarray) -> None:
    with open(path, "a", encoding="utf-8") as f:
        np.savetxt(f, np.column_stack([t, b]), delimiter=",", fmt="%.12g")


def bench_live_plot(sizes=(10_000, 100_000, 1_000_000), repeats: int = 5, batch: int = 100,
                    size=(1200, 700), fps_frames: int = 60) -> list[dict]:
    """Median/min/max time (ms) of one live-plot frame at each size, labctl vs pymeasure,
    the ratio pymeasure/labctl, and the frames/s of both at the largest size."""
    app = _app()
    import pyqtgraph as pg
    from pymeasure.display.curves import ResultsCurve
    from pymeasure.experiment import Results

    from labctl.gui.livecurve import LiveCurve

    rows: list[dict] = []
    pen = pg.mkPen("#1f77b4", width=1)
    biggest = max(sizes)
    with tempfile.TemporaryDirectory(prefix="labctl-benchplot-") as tmp:
        for n in sizes:
            t, b = _data(n + batch * (repeats + fps_frames))
            start = n - batch  # the first frame brings the curve to n points
            # ---------------------------------------------------------- labctl
            w = _widget(size)
            curve = LiveCurve(w.getPlotItem(), pen=pen)
            curve.extend(t[:start], b[:start])
            curve.redraw()
            _paint(w, app)
            ours = []
            k = start
            for _ in range(repeats):
                t0 = time.perf_counter()
                curve.extend(t[k:k + batch], b[k:k + batch])
                curve.redraw()
                _paint(w, app)
                ours.append((time.perf_counter() - t0) * 1e3)
                k += batch
            fps_ours = None
            if n == biggest:
                fps_ours = []
                for _ in range(max(1, repeats)):
                    frames = max(1, fps_frames // max(1, repeats))
                    t0 = time.perf_counter()
                    for _f in range(frames):
                        j = k % (len(t) - batch)
                        curve.extend(t[j:j + batch], b[j:j + batch])
                        curve.redraw()
                        _paint(w, app)
                        k += batch
                    fps_ours.append(frames / (time.perf_counter() - t0))
            w.close()
            w.deleteLater()
            # ------------------------------------------------------- pymeasure
            path = Path(tmp) / f"bench-{n}.csv"
            proc = _procedure_class()()
            results = Results(proc, str(path))  # writes pymeasure's header and the column line
            _write_rows(path, t[:start], b[:start])
            w = _widget(size)
            stock = ResultsCurve(results, x="Time (s)", y="Field (T)", pen=pen, antialias=False)
            stock.setSymbol(None)
            stock.setSymbolBrush(None)
            w.getPlotItem().addItem(stock)
            stock.update_data()
            _paint(w, app)
            theirs = []
            k = start
            for _ in range(repeats):
                _write_rows(path, t[k:k + batch], b[k:k + batch])  # the acquisition's writes, not timed
                t0 = time.perf_counter()
                stock.update_data()
                _paint(w, app)
                theirs.append((time.perf_counter() - t0) * 1e3)
                k += batch
            w.close()
            w.deleteLater()
            app.processEvents()
            label = _label(n)
            rows.append(_stats(f"labctl LiveCurve frame ({batch} new rows + redraw), {label} points", "ms", ours))
            rows.append(_stats(f"pymeasure ResultsCurve frame ({batch} new rows + update_data), {label} points",
                               "ms", theirs))
            mo, mt = statistics.median(ours), statistics.median(theirs)
            rows.append({"what": f"ratio pymeasure/labctl at {label}", "unit": "x", "median": mt / mo,
                         "min": min(theirs) / max(ours), "max": max(theirs) / min(ours), "n": repeats})
            if fps_ours is not None:
                rows.append(_stats(f"labctl frames/s at {label} points (target 60)", "frames/s", fps_ours))
                rows.append(_stats(f"pymeasure frames/s at {label} points", "frames/s",
                                   [1e3 / v for v in theirs]))
    return rows


def format_rows(rows: list[dict]) -> str:
    out = []
    for r in rows:
        out.append(f"{r['what']:<78} {r['median']:>10.3g} {r['unit']:<8} "
                   f"(min {r['min']:.3g}, max {r['max']:.3g}, n={r['n']})")
    return "\n".join(out)


if __name__ == "__main__":
    print(format_rows(bench_live_plot()))
