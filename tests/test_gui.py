"""The GUI (``labctl gui``), driven offscreen with pytest-qt on the in-process virtual lab.

Runs use a scaled virtual clock (100x) so that a step lasts a few seconds: long
enough to pause or abort it mid-step, short enough for the suite.  Every wait
is a ``qtbot.waitUntil`` on an observable condition, never a fixed sleep.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from PyQt6 import QtCore, QtGui  # noqa: E402

from labctl.catalog import Catalog  # noqa: E402
from labctl.gui.cli import make_station  # noqa: E402
from labctl.gui.window import MainWindow  # noqa: E402

LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture
def make_window(qtbot, tmp_path):
    made: list[MainWindow] = []

    def make(speedup=100, data_dir=None, **sim) -> MainWindow:
        sim.setdefault("seed", 2)
        station = make_station(None, speedup=speedup, **sim)
        win = MainWindow(station, data_dir=data_dir or tmp_path / "runs", poll_ms=150)
        qtbot.addWidget(win)
        win.resize(1600, 1000)
        win.show()
        qtbot.waitUntil(lambda: win.connected, timeout=15000)
        made.append(win)
        return win

    yield make
    for win in made:
        win.confirm_close = lambda: True
        if win.run_active():
            win.abort()
            qtbot.waitUntil(lambda w=win: not w.run_active(), timeout=30000)
        win.close()
        assert win._shut_down


def queue(qtbot, win, kind: str, **values):
    rp = win.run_panel
    rp.choose(kind)
    form = rp.form()
    for name, value in values.items():
        form.set_value(name, value)
    assert form.problems == {}, form.problems
    n = len(rp.jobs)
    qtbot.mouseClick(rp.add_button, LEFT)
    assert len(rp.jobs) == n + 1
    return rp.jobs[-1]


def world_current(win) -> float:
    return win.station.lab.world.current


def test_radial_field_rows_plots_pause_resume(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    assert win.station_panel.connection == {r: "connected" for r in win.station_panel.connection}
    job = queue(qtbot, win, "radial-field", ic=430.0, repeats=1, settle_current=1.0)
    qtbot.mouseClick(rp.start_button, LEFT)
    # rows arrive in the plots and keep arriving, with current flowing
    qtbot.waitUntil(lambda: win.plots.points("field_time") >= 4, timeout=20000)
    first = win.plots.points("field_time")
    qtbot.waitUntil(lambda: win.plots.points("field_time") > first, timeout=20000)
    qtbot.waitUntil(lambda: abs(world_current(win)) > 1.0, timeout=20000)
    assert win.plots.points("b_r") > 0  # B vs r per current is drawn live (points + model lines)

    qtbot.mouseClick(rp.pause_button, LEFT)
    assert rp.state in ("pausing", "paused")
    qtbot.waitUntil(lambda: win.control.paused.is_set(), timeout=20000)
    assert world_current(win) == 0.0  # the virtual lab's truth: nothing flows while paused
    qtbot.waitUntil(lambda: "Paused — current at 0 A" in rp.banner.text(), timeout=10000)
    assert rp.resume_button.isEnabled() and not rp.pause_button.isEnabled()
    held = win.plots.points("field_time")

    qtbot.mouseClick(rp.resume_button, LEFT)
    qtbot.waitUntil(lambda: not win.run_active(), timeout=30000)
    assert win.last_result["status"] == "completed", win.last_result
    assert job.status == "completed"
    assert win.step_status == {"radial-field": "completed"}
    assert win.plots.points("field_time") > held
    csv = Path(win.last_result["path"]) / "01-radial-field.csv"
    assert win.plots.points("field_time") == len(pd.read_csv(csv, comment="#"))
    assert world_current(win) == 0.0
    assert "completed" in rp.banner.text()


def test_abort_mid_step_ramps_down(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    queue(qtbot, win, "vi", current_step=4.0)
    qtbot.mouseClick(rp.start_button, LEFT)
    qtbot.waitUntil(lambda: win.plots.points("vi") >= 3, timeout=20000)
    seen = win.plots.points("vi")
    assert win.plots.points("vi_log") > 0
    qtbot.mouseClick(rp.abort_button, LEFT)
    qtbot.waitUntil(lambda: not win.run_active(), timeout=30000)
    assert win.step_status["vi"] == "aborted"
    assert win.last_result["status"] == "aborted"
    assert world_current(win) == 0.0
    entry = Catalog(win.data_dir).get(win.last_result["id"] + "/vi")
    assert entry["status"] == "aborted"
    assert win.plots.points("vi") >= seen
    assert rp.start_button.isEnabled() is False  # nothing left in the queue


def test_out_of_limit_values_are_red_before_queueing(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    rp.choose("vi")
    form = rp.form()
    form.set_value("current_max", 700.0)  # the station allows 600 A
    assert "current_max" in form.problems and "max_current" in form.problems["current_max"]
    assert "c62828" in form.inputs["current_max"].styleSheet()
    assert form.errors["current_max"].isVisibleTo(form)
    assert "current_step" not in form.problems  # only the culprit is marked
    assert not rp.add_button.isEnabled()
    n = len(rp.jobs)
    rp.add_current()
    assert len(rp.jobs) == n  # refused: nothing queued
    form.set_value("temperature", 350.0)  # window is 1-320 K
    assert "temperature" in form.problems
    form.set_value("current_max", 500.0)
    form.set_value("temperature", 6.8)
    assert form.problems == {} and rp.add_button.isEnabled()
    assert form.inputs["current_max"].styleSheet() == ""

    rp.choose("radial-field")
    form = rp.form()
    form.set_value("ic", 1000.0)  # 0.8 x 1000 A = 800 A > 600 A
    assert {"currents", "ic"} <= set(form.problems)
    assert not rp.add_button.isEnabled()
    form.set_value("ic", 0.0)  # fractions of an unknown Ic: a plan error, named
    assert "ic" in form.problems or "currents" in form.problems
    form.set_value("ic", 430.0)
    assert form.problems == {}

    rp.choose("protocol")
    pform = rp.form()
    pform.set_value("overrides", "vi.current_max=650")
    assert "" in pform.problems and "max_current" in pform.problems[""]
    pform.set_value("overrides", "")
    assert pform.problems == {}


def _recorded_run(data_dir: Path) -> dict:
    """A completed radial-field run, recorded headless at full speed (the browser's input)."""
    from labctl.protocol import Plan, execute
    from labctl.runner import RunControl, Runner
    from labctl.station import Station
    from labctl.stream import LiveStream

    station = Station.from_file(None, seed=3, field_model="linear-j")
    runner = Runner(station, Catalog(data_dir), LiveStream(), RunControl())
    plan = Plan(["radial-field"], {"radial-field": {"ic": 430.0, "repeats": 2}}, {"scan": True})
    with station.session():
        return execute(station, plan, data_dir, runner)


def test_run_browser_plot_analyse_replay(qtbot, make_window, tmp_path, monkeypatch):
    data_dir = tmp_path / "recorded"
    state = _recorded_run(data_dir)
    assert state["status"] == "completed"
    rows = len(pd.read_csv(Path(state["path"]) / "01-radial-field.csv", comment="#"))
    win = make_window(speedup="max", data_dir=data_dir)
    br = win.browser
    win.tabs.setCurrentWidget(br)
    br.refresh()
    assert state["id"] in br.visible_ids()
    # filters: kind, status, text
    br.kind_filter.setCurrentIndex(br.kind_filter.findData("vi"))
    assert br.visible_ids() == []
    br.kind_filter.setCurrentIndex(br.kind_filter.findData("radial-field"))
    assert br.visible_ids() == [state["id"]]
    br.kind_filter.setCurrentIndex(0)
    br.status_filter.setCurrentIndex(br.status_filter.findData("aborted"))
    assert br.visible_ids() == []
    br.status_filter.setCurrentIndex(0)
    br.text_filter.setText("no-such-run")
    assert br.visible_ids() == []
    br.text_filter.setText(state["id"][:8])
    assert br.visible_ids() == [state["id"]]

    assert br.select(state["id"])
    assert not br.report_button.isEnabled()  # no report folder yet
    (Path(state["path"]) / "report").mkdir()  # as `labctl report` leaves it
    br.refresh()
    assert br.report_button.isEnabled()
    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    qtbot.mouseClick(br.report_button, LEFT)
    assert opened == [str(Path(state["path"]) / "report")]
    qtbot.mouseClick(br.plot_button, LEFT)
    qtbot.waitUntil(lambda: win.plots.points("field_time") == rows, timeout=10000)
    assert win.plots.points("b_r") > 0 and win.plots.points("ratio") > 0
    drawn = win.plots.points("b_r")
    win.model_boxes["bean"].setChecked(True)  # the fitted models, dashed, one more line per current
    assert win.plots.points("b_r") > drawn
    png = win.plots.export_png("b_r", tmp_path / "b_r.png")
    assert png.stat().st_size > 5000
    table = win.plots.radial["01-radial-field.csv"].table
    ratio = table.groupby("radius")["field"].mean()
    assert ratio.iloc[2] / ratio.iloc[0] == pytest.approx(4.0, rel=0.15)  # the J ∝ r truth, B3/B1 ≈ 4

    qtbot.mouseClick(br.analyse_button, LEFT)
    qtbot.waitUntil(lambda: "radial field" in br.summary.toPlainText(), timeout=20000)
    assert "B3/B1" in br.summary.toPlainText() or "ratio" in br.summary.toPlainText().lower()

    pytest.importorskip("labctl.replay")
    br.speed.setCurrentIndex(br.speed.findText("max"))
    qtbot.mouseClick(br.replay_button, LEFT)
    qtbot.waitUntil(lambda: win.last_replay is not None, timeout=20000)
    assert win.last_replay["status"] == "completed", win.last_replay
    qtbot.waitUntil(lambda: win.plots.points("field_time") == rows, timeout=5000)
    assert win.plots.points("b_r") > 0


def test_close_during_run_asks_then_aborts_safely(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    queue(qtbot, win, "radial-field", ic=430.0, repeats=2)
    qtbot.mouseClick(rp.start_button, LEFT)
    qtbot.waitUntil(lambda: abs(world_current(win)) > 1.0, timeout=20000)
    asked = []
    win.confirm_close = lambda: asked.append(1) or False  # "No": keep running
    win.close()
    assert asked and win.isVisible() and win.run_active() and not win.control.aborted
    win.confirm_close = lambda: asked.append(1) or True  # "Yes": abort safely, then close
    win.close()
    assert win.control.aborted
    qtbot.waitUntil(lambda: win._shut_down, timeout=30000)
    assert not win.isVisible()
    assert world_current(win) == 0.0
    assert win.last_result["status"] == "aborted"
    assert Catalog(win.data_dir).get(win.last_result["id"])["status"] == "aborted"


def test_live_curve_growing_buffer_and_dirty_redraw(qtbot):
    import pyqtgraph as pg

    from labctl.gui.livecurve import GrowingBuffer, LiveCurve

    buf = GrowingBuffer(2, 16)
    for k in range(100):
        buf.append(k, 2 * k)
    buf.extend(np.arange(100, 1000), 2 * np.arange(100, 1000))
    assert len(buf) == 1000 and buf.capacity >= 1000
    assert np.array_equal(buf.column(1), 2 * np.arange(1000))
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    c = LiveCurve(w.getPlotItem(), "x")
    assert c.item.opts["autoDownsample"] and c.item.opts["clipToView"]
    assert c.item.opts["downsampleMethod"] == "peak"
    assert not c.redraw()  # nothing new: no work
    c.extend(np.arange(10.0), np.arange(10.0))
    assert c.redraw() and not c.redraw()
    assert len(c) == 10


def test_cli_registers_gui_and_bench_runs(qtbot):
    from labctl.cli import build_parser
    from labctl.gui.benchplot import bench_live_plot

    args = build_parser().parse_args(["gui", "--speedup", "50", "--field-model", "bean"])
    assert args.speedup == 50.0 and args.field_model == "bean"
    rows = bench_live_plot(sizes=(2000,), repeats=2)
    whats = [r["what"] for r in rows]
    assert any("labctl" in w for w in whats) and any("pymeasure" in w for w in whats)
    assert any(r["unit"] == "x" for r in rows)
    assert all({"what", "unit", "median", "min", "max", "n"} <= set(r) for r in rows)


def test_sigterm_closes_safely_without_asking(qtbot, make_window):
    """SIGTERM / Ctrl-C in the terminal (MainWindow.terminate): run aborted, current ramped down, closed."""
    win = make_window()
    queue(qtbot, win, "vi", current_step=4.0)
    qtbot.mouseClick(win.run_panel.start_button, LEFT)
    qtbot.waitUntil(lambda: abs(world_current(win)) > 1.0, timeout=20000)
    win.confirm_close = lambda: pytest.fail("must not ask")
    win.terminate("SIGTERM")
    qtbot.waitUntil(lambda: win._shut_down, timeout=30000)
    assert world_current(win) == 0.0
    assert win.last_result["status"] == "aborted"


def test_lost_supply_shows_danger_not_a_safe_state(qtbot, make_window):
    """A supply that stops answering mid-run: the window says DANGER in red and never
    'Current at 0 A, output off' (issue 11)."""
    win = make_window()
    queue(qtbot, win, "vi", current_step=4.0)
    qtbot.mouseClick(win.run_panel.start_button, LEFT)
    qtbot.waitUntil(lambda: abs(world_current(win)) > 20.0, timeout=20000)
    win.station.lab.inject("current_source", "drop")
    qtbot.waitUntil(lambda: not win.run_active(), timeout=60000)
    assert win.last_result["status"] == "failed"
    assert "DANGER" in win.last_result["reason"]
    assert win.status_state.text() == "DANGER: current source state unknown"
    assert "background: #c0392b" in win.status_state.styleSheet()
    assert "output off" not in win.run_panel.banner.text() and "UNKNOWN" in win.run_panel.banner.text()
    win.station.lab.clear_faults()
