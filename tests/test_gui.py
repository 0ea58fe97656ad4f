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

from PyQt6 import QtCore, QtGui, QtWidgets  # noqa: E402

from labctl.catalog import Catalog  # noqa: E402
from labctl.gui.cli import make_station  # noqa: E402
from labctl.gui.window import MainWindow  # noqa: E402

LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture
def make_window(qtbot, tmp_path):
    made: list[MainWindow] = []

    def make(speedup=100, data_dir=None, wait_connected=True, before=None, size=(1600, 1000), **sim) -> MainWindow:
        sim.setdefault("seed", 2)
        station = make_station(None, speedup=speedup, **sim)
        if before is not None:
            before(station)  # e.g. inject a fault before the window connects
        win = MainWindow(station, data_dir=data_dir or tmp_path / "runs", poll_ms=150)
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        if wait_connected:
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


# ---------------------------------------------------------------------------
# issue 15: a week in the lab
# ---------------------------------------------------------------------------
def _entry(data_dir: Path, run_id: str) -> dict:
    return Catalog(data_dir).get(run_id)


def test_results_panel_after_a_run_and_the_rehearsal_truth(qtbot, make_window):
    """After a run: Tc/Ic/ratios/verdict worded as the analysis words them; the virtual lab's field model
    stays out of the header and appears beside the verdict only once the analysis is done."""
    from labctl.analysis import analyze
    from labctl.analysis.text import ratio_short, ratio_text

    win = make_window(speedup="max", field_model="linear-j", seed=3)
    header = win.station_panel.summary.text()
    assert "linear-j" not in header and "field model hidden" in header
    queue(qtbot, win, "radial-field", ic=430.0, repeats=2)
    qtbot.mouseClick(win.run_panel.start_button, LEFT)
    qtbot.waitUntil(lambda: not win.run_active(), timeout=60000)
    assert win.last_result["status"] == "completed"
    assert not win.results.truth.isVisible()
    qtbot.waitUntil(lambda: win.last_analysis is not None, timeout=60000)
    panel = win.results
    assert win.tabs.currentWidget() is panel
    result = analyze(win.last_result["path"])
    rf = next(r for r in result["steps"].values() if r.get("kind") == "radial-field")
    pooled = panel.pooled.text()
    assert f"B2/B1 = {ratio_text(rf['ratios']['B2/B1'])}" in pooled
    assert f"B3/B1 = {ratio_text(rf['ratios']['B3/B1'])}" in pooled
    assert panel.table.rowCount() == len(rf["per_current"])
    for k, pc in enumerate(rf["per_current"]):
        assert panel.table.item(k, 2).text() == ratio_short(pc["B2/B1"])
        assert panel.table.item(k, 3).text() == ratio_short(pc["B3/B1"])
    assert rf["verdict"].split(" (")[0] in panel.verdict.text()
    assert panel.truth.isVisible() and "linear-j" in panel.truth.text()
    assert "the analysis found it" in panel.truth.text() or "best model is" in panel.truth.text()
    assert "linear-j" not in win.station_panel.summary.text()  # still hidden up there
    win.rehearsal_action.setChecked(False)  # not a rehearsal: the header may say it
    assert "field model linear-j" in win.station_panel.summary.text()


def test_resume_an_aborted_run_from_the_browser(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    queue(qtbot, win, "vi", current_step=4.0)
    qtbot.mouseClick(rp.start_button, LEFT)
    qtbot.waitUntil(lambda: win.plots.points("vi") >= 3, timeout=20000)
    qtbot.mouseClick(rp.abort_button, LEFT)
    qtbot.waitUntil(lambda: not win.run_active(), timeout=30000)
    run_id = win.last_result["id"]
    assert win.last_result["status"] == "aborted"
    assert win.status_eta.text() == ""  # no ETA left over after an abort
    br = win.browser
    br.refresh()
    assert br.select(run_id)
    assert br.resume_button.isEnabled()
    qtbot.mouseClick(br.resume_button, LEFT)
    qtbot.waitUntil(lambda: win.run_active(), timeout=10000)
    assert rp.jobs[-1].kind == "resume" and "resume" in rp.queue.item(len(rp.jobs) - 1).text()
    qtbot.waitUntil(lambda: not win.run_active(), timeout=60000)
    assert win.last_result["id"] == run_id and win.last_result["status"] == "completed", win.last_result
    assert Catalog(win.data_dir).get(run_id)["status"] == "completed"
    assert "resumes" in __import__("json").loads((Path(win.last_result["path"]) / "parameters.json").read_text())
    br.refresh()
    br.select(run_id)
    assert not br.resume_button.isEnabled()  # completed: nothing to resume


def test_station_not_answering_shows_the_cli_detail_and_reconnects(qtbot, make_window):
    win = make_window(wait_connected=False, before=lambda st: st.lab.inject("gaussmeter", "timeout"))
    sp = win.station_panel
    qtbot.waitUntil(lambda: bool(sp.info), timeout=30000)
    assert not win.connected
    assert sp.problem_box.isVisibleTo(win)
    text = sp.problems.text()
    rc = win.station.config.gaussmeter
    assert "gaussmeter" in text and rc.address in text and "*IDN?" in text
    assert f"read={rc.read_termination!r}" in text and f"{rc.timeout} ms" in text
    assert "not answering" in win.run_panel.banner.text()
    win.station.lab.clear_faults()
    qtbot.mouseClick(sp.reconnect_button, LEFT)
    qtbot.waitUntil(lambda: win.connected, timeout=30000)
    assert not sp.problem_box.isVisibleTo(win)
    assert sp.connection["gaussmeter"] == "connected"


def test_report_in_the_app_with_a_busy_sign_and_an_absolute_folder(qtbot, make_window, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_dir = Path("rel") / "runs"  # a relative data home, as `--data-dir data/runs`
    state = _recorded_run(data_dir)
    win = make_window(speedup="max", data_dir=data_dir)
    br = win.browser
    br.refresh()
    assert br.select(state["id"])
    qtbot.mouseClick(br.make_report_button, LEFT)
    assert br.busy.isVisibleTo(br) and "report" in br.busy.format()  # the busy sign, at once
    assert not br.make_report_button.isEnabled()
    qtbot.waitUntil(lambda: win.last_report is not None, timeout=120000)
    assert not br.busy.isVisibleTo(br)
    assert win.tabs.currentWidget() is win.report_view
    assert "radial" in win.report_view.view.toPlainText().lower()
    assert win.report_view.path.is_absolute() and win.report_view.path.name == "report.html"
    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    br.refresh()
    br.select(state["id"])
    qtbot.mouseClick(br.report_button, LEFT)
    assert opened == [str((tmp_path / data_dir / Path(state["path"]).name / "report").resolve())]
    assert Path(opened[0]).is_absolute()
    # re-analyse: busy sign, then the results panel (not a text dump)
    qtbot.mouseClick(br.analyse_button, LEFT)
    assert br.busy.isVisibleTo(br) and win.results.busy.isVisibleTo(win.results)
    qtbot.waitUntil(lambda: win.last_analysis is not None, timeout=60000)
    assert not br.busy.isVisibleTo(br)
    assert win.results.table.rowCount() > 0 and "B2/B1" in win.results.pooled.text()


def test_sequencer_queues_a_grid_and_the_estimator_says_when_it_ends(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    rp.choose("vi")
    dlg = win.open_sequencer()
    dlg.set_axis(0, "current_step", "2:6:2")
    dlg.set_axis(1, "temperature", "6.5, 6.8")
    assert len(dlg.runs) == 6 and not dlg.problems
    assert "6 run(s) to queue, about" in dlg.status.text()
    dlg.set_axis(2, "current_max", "500, 700")  # 700 A > the station's 600 A: refused, shown red
    assert len(dlg.runs) == 6 and len(dlg.problems) == 6
    dlg.set_axis(2, "current_max", "linspace(400, 500, 2)")
    assert len(dlg.runs) == 12
    dlg.queue_button.click()
    assert len(rp.jobs) == 12 and all(j.kind == "vi" for j in rp.jobs)
    assert {(j.values["current_step"], j.values["temperature"], j.values["current_max"]) for j in rp.jobs} == {
        (c, t, m) for c in (2.0, 4.0, 6.0) for t in (6.5, 6.8) for m in (400.0, 500.0)}
    assert "current_step=2, temperature=6.5, current_max=400" in rp.queue.item(0).text()
    assert all("current_step=" in rp.queue.item(k).text() and "temperature=" in rp.queue.item(k).text()
               for k in range(12))  # every grid point says all its values
    text = rp.estimate.text()
    assert text.startswith("12 runs queued, about") and "finishes about" in text
    import re

    from labctl.gui.sequencer import GridError, grid_values

    assert grid_values("1, 2, 5") == [1.0, 2.0, 5.0] and grid_values("arange(0, 1, 0.25)") == [0, 0.25, 0.5, 0.75]
    with pytest.raises(GridError):
        grid_values("__import__('os')")
    one = win.estimator.seconds(rp.jobs[0])
    assert one and one > 0 and re.search(r"about \d+:\d\d", text)
    rp.clear_queue()
    assert rp.estimate.text() == "Queue empty"


def test_browser_context_menu_use_reveal_export_notes_delete(qtbot, make_window, tmp_path, monkeypatch):
    data_dir = tmp_path / "recorded"
    state = _recorded_run(data_dir)
    win = make_window(speedup="max", data_dir=data_dir)
    br = win.browser
    br.refresh()
    assert br.select(state["id"])
    entry = br.selected()
    menu = br.menu_for(entry)
    texts = [a.text() for a in menu.actions() if a.text()]
    for want in ("Plot", "Results (re-analyse)", "Make and view report", "Replay", "Use these parameters",
                 "Resume run", "Reveal in folder", "Export", "Notes…", "Delete…"):
        assert want in texts, texts
    act = {a.text(): a for a in menu.actions()}
    assert not act["Resume run"].isEnabled()  # completed
    # use these parameters: the form is filled with the run's values
    act["Use these parameters"].trigger()
    assert win.run_panel.chooser.currentData() == "radial-field"
    values = win.run_panel.form().values()
    assert values["ic"] == pytest.approx(430.0) and values["repeats"] == 2
    # reveal in folder: the absolute folder
    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    act["Reveal in folder"].trigger()
    assert opened == [str(Path(state["path"]).resolve())]
    # export: NeXus beside the run
    exp = next(a for a in menu.actions() if a.text() == "Export").menu()
    next(a for a in exp.actions() if "NeXus" in a.text()).trigger()
    qtbot.waitUntil(lambda: win.last_export is not None, timeout=60000)
    assert win.last_export.suffix == ".nxs" and win.last_export.is_file()
    # notes
    monkeypatch.setattr(br, "ask_notes", lambda e: "probe re-glued before this run")
    act["Notes…"].trigger()
    assert Catalog(data_dir).get(state["id"])["notes"] == "probe re-glued before this run"
    assert "probe re-glued" in (Path(state["path"]) / "notes.txt").read_text()
    br.text_filter.setText("re-glued")
    assert br.visible_ids() == [state["id"]]
    br.text_filter.setText("")
    # delete: asks first; "No" keeps everything
    monkeypatch.setattr(br, "confirm_delete", lambda e: False)
    assert not br.delete(br.selected())
    assert Catalog(data_dir).get(state["id"]) is not None
    monkeypatch.setattr(br, "confirm_delete", lambda e: True)
    assert br.delete(Catalog(data_dir).get(state["id"]))
    assert Catalog(data_dir).get(state["id"]) is None and Catalog(data_dir).list() == []
    assert not Path(state["path"]).exists() and (data_dir / ".trash" / Path(state["path"]).name).is_dir()
    assert state["id"] not in br.visible_ids()


def test_catalog_columns_tell_runs_apart(qtbot, make_window, tmp_path):
    data_dir = tmp_path / "recorded"
    state = _recorded_run(data_dir)
    win = make_window(speedup="max", data_dir=data_dir)
    br = win.browser
    br.refresh()
    header = [br.tree.headerItem().text(k) for k in range(br.tree.columnCount())]
    for col in ("Sample", "Station", "Lab", "Tc (K)", "Ic (A)", "Operator"):
        assert col in header
    br.select(state["id"])
    item = br.tree.currentItem()
    cell = {h: item.text(k) for k, h in enumerate(header)}
    entry = Catalog(data_dir).get(state["id"])
    assert cell["Sample"] == "Pb" and cell["Station"] == entry["station"] and cell["Lab"] == "sim"
    assert cell["Ic (A)"] == "430"  # the Ic this run used
    # a run started from the window records its operator
    win2 = make_window(speedup="max", data_dir=tmp_path / "gui")
    win2.run_panel.operator.setText("alice")
    win2.run_panel.note.setText("first cool-down")
    queue(qtbot, win2, "vi", current_step=10.0)
    qtbot.mouseClick(win2.run_panel.start_button, LEFT)
    qtbot.waitUntil(lambda: not win2.run_active(), timeout=60000)
    e = Catalog(tmp_path / "gui").get(win2.last_result["id"])
    assert e["operator"] == "alice" and e["notes"] == "first cool-down"
    win2.browser.refresh()
    win2.browser.select(e["id"])
    item = win2.browser.tree.currentItem()
    assert item.text(header.index("Operator")) == "alice" and item.text(header.index("Ic (A)")) != ""


def test_column_choice_and_plot_and_data_export(qtbot, make_window, tmp_path):
    data_dir = tmp_path / "recorded"
    state = _recorded_run(data_dir)
    rows = len(pd.read_csv(Path(state["path"]) / "01-radial-field.csv", comment="#"))
    win = make_window(speedup="max", data_dir=data_dir)
    win.open_run(state["path"])
    cp = win.column_plot
    qtbot.waitUntil(lambda: cp.step_box.count() == 1, timeout=20000)
    assert cp.x_box.currentText() == "Time (s)" and cp.y_box.currentText() == "Field (T)"
    assert cp.points() == rows
    cp.choose("Current (A)", "Field (T)")
    x, y = cp.curve.getData()
    frame = pd.read_csv(Path(state["path"]) / "01-radial-field.csv", comment="#")
    assert np.allclose(x, frame["Current (A)"]) and np.allclose(y, frame["Field (T)"])
    for suffix in ("png", "svg", "pdf"):
        p = cp.export_plot(tmp_path / f"col.{suffix}")
        assert p.stat().st_size > 1000, suffix
    assert (tmp_path / "col.pdf").read_bytes()[:4] == b"%PDF"
    assert "<svg" in (tmp_path / "col.svg").read_text()[:2000]
    data = cp.export_data(tmp_path / "step.csv")
    back = pd.read_csv(data)
    assert len(back) == rows and len(back.columns) == len(frame.columns)  # as loaded (SI units: Position (m))
    assert np.allclose(back["Field (T)"], frame["Field (T)"])
    for suffix in ("svg", "pdf", "csv"):  # the six live plots too
        p = win.plots.export("b_r", tmp_path / f"b_r.{suffix}")
        assert p.stat().st_size > 100, suffix


def test_protocol_mode_has_per_step_forms(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    rp.choose("protocol")
    form = rp.form()
    assert set(form.step_forms) == {"rt", "vi", "normal-control", "radial-field", "radial-scan", "residual"}
    assert form.overrides_text() == ""  # nothing changed: every value derived
    form.set_step_value("vi", "current_step", 2.0)
    form.set_step_value("radial-field", "repeats", 5)
    text = form.overrides_text()
    assert "vi.current_step=2.0" in text and "radial-field.repeats=5" in text
    assert form.problems == {}
    assert form.step_tabs.tabText(1) == "vi *"
    job = rp.add_current()
    plan = job.plan()
    assert plan.overrides["vi"]["current_step"] == "2.0" and plan.overrides["radial-field"]["repeats"] == "5"
    form.set_step_value("vi", "current_max", 700.0)  # over the station's 600 A: the plan is refused
    assert form.problems and "max_current" in " ".join(form.problems.values())
    assert not rp.add_button.isEnabled()


def test_queue_says_paused_and_range_hints_follow_the_station(qtbot, make_window):
    win = make_window()
    rp = win.run_panel
    rp.choose("vi")
    form = rp.form()
    row = [form._grid.itemAtPosition(r, 2) for r in range(form._grid.rowCount())]
    hints = {form._grid.itemAtPosition(r, 0).widget().text(): row[r].widget().text() for r in range(0, len(row), 2)
             if row[r] is not None and form._grid.itemAtPosition(r, 0) is not None
             and isinstance(form._grid.itemAtPosition(r, 0).widget(), QtWidgets.QLabel)}
    assert hints["Maximum current"] == "1e-06 … 600"  # the station allows 600 A, not the procedure's 1000 A
    assert "600 A" in form.inputs["current_max"].toolTip() or "600" in form.inputs["current_max"].toolTip()
    queue(qtbot, win, "radial-field", ic=430.0, repeats=2)
    qtbot.mouseClick(rp.start_button, LEFT)
    qtbot.waitUntil(lambda: abs(world_current(win)) > 1.0, timeout=20000)
    assert "[running]" in rp.queue.item(0).text()
    qtbot.waitUntil(lambda: win.status_eta.text().startswith("step ETA"), timeout=20000)
    qtbot.mouseClick(rp.pause_button, LEFT)
    qtbot.waitUntil(lambda: win.control.paused.is_set(), timeout=20000)
    qtbot.waitUntil(lambda: "[paused]" in rp.queue.item(0).text(), timeout=5000)
    qtbot.mouseClick(rp.abort_button, LEFT)
    qtbot.waitUntil(lambda: not win.run_active(), timeout=30000)
    assert "[aborted]" in rp.queue.item(0).text()
    assert win.status_eta.text() == ""


def test_layout_at_1280x720_nothing_overlaps(qtbot, make_window):
    win = make_window(size=(1280, 720))
    qtbot.waitUntil(lambda: win.left_scroll.widget().height() > 0, timeout=5000)
    rp = win.run_panel
    QtWidgets.QApplication.processEvents()

    def rect(w):
        return QtCore.QRect(w.mapTo(win, QtCore.QPoint(0, 0)), w.size())

    widgets = [rp.chooser, rp.stack, rp.add_button, rp.sequence_button, rp.queue, rp.estimate, rp.start_button,
               rp.abort_button, rp.banner, win.station_panel.table]
    for k, a in enumerate(widgets):
        for b in widgets[k + 1:]:
            if {a, b} == {rp.start_button, rp.abort_button} or {a, b} == {rp.add_button, rp.sequence_button}:
                continue
            assert not rect(a).intersects(rect(b)), (a, b)
    # and everything is on screen without scrolling at 1280×720
    bottom = rect(rp.banner).bottom()
    assert bottom <= rect(win.centralWidget()).bottom()
    assert win.left_scroll.verticalScrollBar().maximum() == 0
    assert rect(rp.add_button).right() < rect(win.tabs).left()


def test_replay_defaults_to_about_a_minute_with_progress_and_eta(qtbot, make_window, monkeypatch):
    import labctl.replay as R

    monkeypatch.setattr(R, "DEFAULT_DURATION", 4.0)  # the same rule, a shorter target for the test
    example = Path(__file__).resolve().parents[1] / "data" / "examples" / "protocol_Pb_meissner"
    win = make_window(speedup="max")
    br = win.browser
    assert br.speed.currentData() == "auto"
    assert win.replay(str(example), br.speed.currentData())
    qtbot.waitUntil(lambda: win.status_eta.text().startswith("replay ETA"), timeout=10000)
    qtbot.waitUntil(lambda: "rows replayed" in win.status_rows.text()
                    and int(win.status_rows.text().split()[0]) > 1, timeout=10000)
    assert win.status_progress.value() > 0
    qtbot.waitUntil(lambda: win.last_replay is not None, timeout=60000)
    assert win.last_replay["status"] == "completed" and win.last_replay["rows"] == 401
    assert win.status_eta.text() == ""


def test_an_instrument_that_stops_answering_while_idle_is_named_and_reconnected(qtbot, make_window):
    win = make_window()
    sp = win.station_panel
    win.station.lab.inject("stage", "timeout")
    qtbot.waitUntil(lambda: sp.problem_box.isVisibleTo(win), timeout=60000)
    rc = win.station.config.stage
    assert "stage" in sp.problems.text() and rc.address in sp.problems.text()
    assert f"read={rc.read_termination!r}" in sp.problems.text()
    win.station.lab.clear_faults()
    qtbot.mouseClick(sp.reconnect_button, LEFT)
    qtbot.waitUntil(lambda: not sp.problem_box.isVisibleTo(win), timeout=60000)
    assert win.connected
