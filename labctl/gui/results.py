"""The results panel (Tc, Ic, ratios with their status, verdict) and the in-app report viewer.

Every number and ratio is worded by the analysis' own helpers (:mod:`labctl.analysis.text`,
``labctl.analysis.q``), so the window says exactly what ``labctl analyze``, the run summary
and the report say.  In a rehearsal the virtual lab's hidden truth (its field model) is
shown only here, beside the verdict, once the analysis is done.
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

log = logging.getLogger("labctl.gui")

STATUS_COLOURS = {"ok": "#2e7d32", "bound": "#ef6c00", "undefined": "#c62828"}


def _steps(result: dict) -> dict[str, dict]:
    """``{step name: analysis}`` from a run result or a single-step result."""
    if result.get("kind") == "run":
        out = {}
        for name, r in (result.get("steps") or {}).items():
            stem = Path(name).stem
            out[stem.split("-", 1)[1] if stem[:2].isdigit() and "-" in stem else stem] = r
        return out
    kind = result.get("kind") or "step"
    return {("normal-control" if result.get("control") else kind): result}


def summarize(result: dict) -> dict:
    """The headline numbers of an analysis as display strings (what the panel shows)."""
    from labctl.analysis import q
    from labctl.analysis.text import ratio_short, ratio_text

    steps = _steps(result)
    out: dict = {"tc": None, "ic": None, "radial": [], "errors": []}
    for name, r in steps.items():
        if r.get("error"):
            out["errors"].append(f"{name}: {r['error']}")
    rt = next((r for r in steps.values() if r.get("kind") == "rt" and not r.get("error")), None)
    if rt:
        out["tc"] = (f"onset {q(rt.get('tc_onset'), 'K', 5, prefix=False)}, midpoint "
                     f"{q(rt.get('tc_mid'), 'K', 5, prefix=False)}, zero {q(rt.get('tc_zero'), 'K', 5, prefix=False)}, "
                     f"10–90 % width {q(rt.get('width_10_90'), 'K', 3, prefix=False)}")
        out["tc_mid"] = rt.get("tc_mid")
    vi = next((r for r in steps.values() if r.get("kind") == "vi" and not r.get("error")), None)
    if vi:
        out["ic"] = (f"{q(vi.get('ic'), 'A', 5, vi.get('ic_err'), prefix=False)}, "
                     f"n = {q(vi.get('n'), '', 3, vi.get('n_err'), prefix=False).strip()}")
        out["ic_value"] = vi.get("ic")
    for name, r in steps.items():
        if r.get("kind") != "radial-field" or r.get("error"):
            continue
        rat = r.get("ratios") or {}
        rows = []
        for pc in r.get("per_current") or []:
            rows.append({"current": pc.get("current"),
                         "B2/B1": (ratio_short(pc.get("B2/B1")), (pc.get("B2/B1") or {}).get("status")),
                         "B3/B1": (ratio_short(pc.get("B3/B1")), (pc.get("B3/B1") or {}).get("status"))})
        out["radial"].append({"step": name, "control": bool(r.get("control")),
                              "pooled": {k: (ratio_text(rat.get(k)), (rat.get(k) or {}).get("status"))
                                         for k in ("B2/B1", "B3/B1")},
                              "per_current": rows, "best_model": r.get("best_model"),
                              "verdict": r.get("verdict") or ""})
    res = next((r for r in steps.values() if r.get("kind") == "residual" and not r.get("error")), None)
    if res:
        out["residual"] = res.get("verdict")
    return out


def truth_of(path: str | Path | None) -> dict | None:
    """The virtual lab's hidden truth recorded in a run's station.json (None for real instruments)."""
    if not path:
        return None
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    try:
        snap = json.loads((folder / "station.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sim = snap.get("sim")
    return sim if isinstance(sim, dict) and sim.get("field_model") else None


class ResultsPanel(QtWidgets.QWidget):
    """Tc, Ic, the field ratios per current with their status, the verdict, and (rehearsal) the truth."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        top = QtWidgets.QHBoxLayout()
        self.title = QtWidgets.QLabel("<b>Results</b> — finish a run, or select one in the run browser and "
                                      "press Re-analyse")
        self.title.setWordWrap(True)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: the analysis is running
        self.busy.setMaximumWidth(160)
        self.busy.setFormat("analysing…")
        self.busy.setTextVisible(True)
        self.busy.hide()
        top.addWidget(self.title, 1)
        top.addWidget(self.busy)
        lay.addLayout(top)
        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.tc = QtWidgets.QLabel("—")
        self.ic = QtWidgets.QLabel("—")
        self.pooled = QtWidgets.QLabel("—")
        for w in (self.tc, self.ic, self.pooled):
            w.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            w.setWordWrap(True)
        form.addRow("Tc (R(T)):", self.tc)
        form.addRow("Ic (V–I):", self.ic)
        form.addRow("Pooled ratios:", self.pooled)
        lay.addLayout(form)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Step", "I (A)", "B2/B1", "B3/B1"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Ratios per current as the analysis reports them: green = measured, "
                              "orange = lower bound (B1 consistent with zero), red = undefined")
        lay.addWidget(self.table, 1)
        self.verdict = QtWidgets.QLabel("")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict.setStyleSheet("QLabel { background: #f1f8e9; border-radius: 4px; padding: 6px; }")
        lay.addWidget(self.verdict)
        self.truth = QtWidgets.QLabel("")
        self.truth.setWordWrap(True)
        self.truth.setStyleSheet("QLabel { background: #ede7f6; color: #311b92; border-radius: 4px; padding: 6px; }")
        self.truth.hide()
        lay.addWidget(self.truth)
        self.errors = QtWidgets.QLabel("")
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #c62828;")
        lay.addWidget(self.errors)
        self.summary: dict | None = None
        self.path: str | None = None

    def set_busy(self, on: bool, text: str = "analysing…") -> None:
        self.busy.setFormat(text)
        self.busy.setVisible(on)

    def clear(self) -> None:
        self.summary = None
        for w in (self.tc, self.ic, self.pooled):
            w.setText("—")
        self.table.setRowCount(0)
        self.verdict.setText("")
        self.truth.hide()
        self.errors.setText("")

    def show_result(self, path: str | None, result: dict, truth: dict | None = None) -> dict:
        """Fill the panel from an ``analyze`` result; ``truth`` (a rehearsal's hidden truth) is revealed
        beside the verdict."""
        self.clear()
        self.path = path
        s = summarize(result)
        self.summary = s
        self.title.setText(f"<b>Results</b> — {html.escape(Path(path).name if path else 'analysis')}")
        self.tc.setText(s["tc"] or "not measured in this run")
        self.ic.setText(s["ic"] or "not measured in this run")
        main = next((r for r in s["radial"] if not r["control"]), s["radial"][0] if s["radial"] else None)
        if main:
            self.pooled.setText(f"B2/B1 = {main['pooled']['B2/B1'][0]}, B3/B1 = {main['pooled']['B3/B1'][0]}"
                                f"  ({main['step']})")
        else:
            self.pooled.setText("no radial-field step")
        rows = [(r["step"], pc) for r in s["radial"] for pc in r["per_current"]]
        self.table.setRowCount(len(rows))
        for k, (step, pc) in enumerate(rows):
            cur = pc["current"]
            self.table.setItem(k, 0, QtWidgets.QTableWidgetItem(step))
            self.table.setItem(k, 1, QtWidgets.QTableWidgetItem(f"{cur:.4g}" if cur is not None else ""))
            for col, key in ((2, "B2/B1"), (3, "B3/B1")):
                text, status = pc[key]
                item = QtWidgets.QTableWidgetItem(text)
                item.setForeground(QtGui.QColor(STATUS_COLOURS.get(status, "#333")))
                item.setToolTip({"ok": "measured", "bound": "lower bound: B1 consistent with zero",
                                 "undefined": "undefined: B1 and Bk consistent with zero"}.get(status, status or ""))
                self.table.setItem(k, col, item)
        verdicts = [f"<b>{html.escape(r['step'])}</b>: {html.escape(r['verdict'])}" for r in s["radial"] if r["verdict"]]
        if s.get("residual"):
            verdicts.append(f"<b>residual</b>: {html.escape(s['residual'])}")
        self.verdict.setText("<br>".join(verdicts) or "no verdict (no radial-field step analysed)")
        if truth:
            best = main["best_model"] if main else None
            model = truth.get("field_model")
            mark = ("✔ the analysis found it" if best == model else
                    f"✘ the analysis' best model is {best}" if best else "no verdict to compare")
            self.truth.setText(f"<b>Rehearsal truth revealed</b>: the virtual lab's field model was "
                               f"<b>{html.escape(str(model))}</b> (sample {html.escape(str(truth.get('sample')))}, "
                               f"seed {truth.get('seed')}) — {mark}")
            self.truth.show()
        self.errors.setText("<br>".join(html.escape(e) for e in s["errors"]))
        return s


class ReportView(QtWidgets.QWidget):
    """A run's HTML report (``labctl report --format html``) inside the window."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        bar = QtWidgets.QHBoxLayout()
        self.label = QtWidgets.QLabel("No report shown. Select a run in the browser and press Make report.")
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(180)
        self.busy.setFormat("making the report…")
        self.busy.setTextVisible(True)
        self.busy.hide()
        self.folder_button = QtWidgets.QPushButton("Open report folder")
        self.folder_button.setEnabled(False)
        bar.addWidget(self.label, 1)
        bar.addWidget(self.busy)
        bar.addWidget(self.folder_button)
        lay.addLayout(bar)
        self.view = QtWidgets.QTextBrowser()
        self.view.setOpenExternalLinks(True)
        lay.addWidget(self.view, 1)
        self.path: Path | None = None
        self.folder_button.clicked.connect(self.open_folder)

    def set_busy(self, on: bool) -> None:
        self.busy.setVisible(on)

    def show_report(self, html_path: str | Path) -> None:
        p = Path(html_path).resolve()
        self.path = p
        self.view.setSearchPaths([str(p.parent)])
        self.view.setSource(QtCore.QUrl.fromLocalFile(str(p)))
        self.label.setText(f"Report: {p}")
        self.folder_button.setEnabled(True)

    def open_folder(self) -> None:
        if self.path is not None:
            open_folder(self.path.parent)


def open_folder(path: str | Path) -> bool:
    """Open a folder in the desktop's file manager by its absolute path."""
    p = Path(path).expanduser().resolve()
    url = QtCore.QUrl.fromLocalFile(str(p))
    ok = QtGui.QDesktopServices.openUrl(url)
    if not ok:
        log.error("could not open %s (no file manager answered)", p)
    return bool(ok)
