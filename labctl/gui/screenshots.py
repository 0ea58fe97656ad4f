"""Screenshots of the real window for the docs (``python -m labctl.gui.screenshots``).

* ``main-window.png``: the whole protocol running live on the virtual lab
  (Pb sample, J ∝ r truth), grabbed while the radial-field step is half done.
  To catch that moment at full simulation speed the acquisition thread is held
  for the instant of the grab (a stream subscriber waits on an Event).
* ``run-browser.png``: the run browser with the protocol run selected and its
  analysis summary.
* ``results-panel.png``: the results tab after the run (Tc, Ic, ratios with their
  status, verdict, and the rehearsal's truth revealed beside it).
* ``browser-context-menu.png``: the actions on a run (right click in the browser).
* ``sequencer.png``: a grid of V–I runs being queued, with the estimate.
* ``layout-1280x720.png``: the whole window at 1280×720.

Works offscreen (``QT_QPA_PLATFORM=offscreen``) or on a real display (Xvfb).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path


def _wait(app, cond, timeout=120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("screenshot: the window did not reach the expected state")


def _settle(app, seconds=0.4) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def _history(data_dir: Path) -> None:
    """Two earlier runs for the browser: a completed V–I and an aborted radial-field."""
    from labctl.catalog import Catalog
    from labctl.protocol import Plan, execute
    from labctl.runner import RunControl, Runner
    from labctl.station import Station
    from labctl.stream import LiveStream

    for step, values, abort_after in (("vi", {}, None), ("radial-field", {"ic": 430.0}, 12)):
        station = Station.from_file(None, seed=5, field_model="linear-j")
        stream, control = LiveStream(), RunControl()
        if abort_after:
            seen = [0]

            def on(topic, payload, seen=seen, control=control, n=abort_after):
                if topic == "row":
                    seen[0] += 1
                    if seen[0] >= n:
                        control.abort()

            stream.subscribe(on)
        runner = Runner(station, Catalog(data_dir), stream, control)
        with station.session():
            execute(station, Plan([step], {step: values}, {"scan": True}), data_dir, runner)


def take_screenshots(out_dir: str | Path = "docs/screenshots", data_dir: str | Path | None = None,
                     size=(1600, 1000), hold_at_rows: int = 38) -> list[Path]:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from labctl.gui.app import application

    app = application()
    from labctl.gui.cli import make_station
    from labctl.gui.window import MainWindow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="labctl-shots-")
        data_dir = Path(tmp.name) / "runs"
    data_dir = Path(data_dir)
    _history(data_dir)

    station = make_station(None, seed=3, field_model="linear-j", speedup="max")
    win = MainWindow(station, data_dir=data_dir, poll_ms=200)
    win.resize(*size)
    win.show()
    _wait(app, lambda: win.connected)

    # hold the acquisition for the grab once the radial-field step is well under way
    hold, release, count = threading.Event(), threading.Event(), [0]

    def on(topic, payload):
        if topic == "row" and payload.get("step") == "radial-field":
            count[0] += 1
            if count[0] == hold_at_rows:
                hold.set()
                release.wait(60)

    win.stream.subscribe(on)
    rp = win.run_panel
    rp.choose("protocol")
    rp.add_current()
    win.start()
    _wait(app, hold.is_set, timeout=300)
    _settle(app, 0.8)  # rows drained, plots and the polled readings up to date
    paths = [out / "main-window.png"]
    win.grab().save(str(paths[0]))
    release.set()
    _wait(app, lambda: not win.run_active(), timeout=300)
    # the run's own analysis (started when it ended) fills the results tab first
    _wait(app, lambda: win.last_analysis is not None and not win.results.busy.isVisible(), timeout=120)

    br = win.browser
    win.tabs.setCurrentWidget(br)
    br.refresh()
    run_id = win.last_result["id"]
    br.select(run_id)
    item = br.tree.currentItem()
    if item is not None:
        item.setExpanded(True)
    win.analyse(win.last_result["path"], show=False)
    _wait(app, lambda: "radial field" in br.summary.toPlainText(), timeout=120)
    _settle(app, 0.3)
    paths.append(out / "run-browser.png")
    win.grab().save(str(paths[1]))

    # the results panel (the run's own analysis, started when it ended)
    _wait(app, lambda: win.last_analysis is not None and not win.results.busy.isVisible(), timeout=120)
    win.tabs.setCurrentWidget(win.results)
    _settle(app, 0.3)
    paths.append(out / "results-panel.png")
    win.grab().save(str(paths[-1]))

    # the browser's context menu, drawn over the window (a popup is its own window)
    from PyQt6 import QtCore, QtGui

    win.tabs.setCurrentWidget(br)
    br.refresh()
    br.select(run_id)
    _settle(app, 0.2)
    item = br.tree.currentItem()
    rect = br.tree.visualItemRect(item)
    menu = br.menu_for(br.selected())
    at = br.tree.viewport().mapTo(win, rect.center() + QtCore.QPoint(40, 6))
    menu.popup(br.tree.viewport().mapToGlobal(rect.center() + QtCore.QPoint(40, 6)))
    exp = next(a for a in menu.actions() if a.text() == "Export")
    menu.setActiveAction(exp)
    _settle(app, 0.3)
    shot = win.grab()
    painter = QtGui.QPainter(shot)
    painter.drawPixmap(at, menu.grab())
    sub = exp.menu()
    sub.popup(menu.mapToGlobal(menu.actionGeometry(exp).topRight()))
    _settle(app, 0.2)
    painter.drawPixmap(at + menu.actionGeometry(exp).topRight(), sub.grab())
    painter.end()
    sub.close()
    menu.close()
    paths.append(out / "browser-context-menu.png")
    shot.save(str(paths[-1]))

    # the sequencer: V–I at three current steps and two temperatures, with the queue's estimate
    rp.choose("vi")
    dlg = win.open_sequencer()
    dlg.set_axis(0, "current_step", "2:6:2")
    dlg.set_axis(1, "temperature", "6.5, 6.8")
    _settle(app, 0.3)
    shot = win.grab()
    painter = QtGui.QPainter(shot)
    pos = QtCore.QPoint((shot.width() - dlg.width()) // 2, (shot.height() - dlg.height()) // 2)
    title_h = 26  # a title bar, as the window manager would draw it
    painter.fillRect(QtCore.QRect(pos.x() - 1, pos.y() - title_h, dlg.width() + 2, title_h), QtGui.QColor("#37474f"))
    painter.setPen(QtGui.QColor("white"))
    painter.drawText(QtCore.QRect(pos.x() + 10, pos.y() - title_h, dlg.width() - 20, title_h),
                     int(QtCore.Qt.AlignmentFlag.AlignVCenter), dlg.windowTitle())
    painter.drawPixmap(pos, dlg.grab())
    painter.setPen(QtGui.QPen(QtGui.QColor("#37474f"), 1))
    painter.drawRect(QtCore.QRect(pos.x() - 1, pos.y() - title_h, dlg.width() + 1, dlg.height() + title_h))
    painter.end()
    dlg.queue_button.click()
    paths.append(out / "sequencer.png")
    shot.save(str(paths[-1]))

    # the whole window at 1280x720, with the run's data plotted and the queue filled
    win.resize(1280, 720)
    win.open_run(win.last_result["path"])
    _wait(app, lambda: win.plots.points("b_r") > 0, timeout=60)
    win.tabs.setCurrentIndex(0)
    _settle(app, 0.6)
    paths.append(out / "layout-1280x720.png")
    win.grab().save(str(paths[-1]))
    win.close()
    _settle(app, 0.2)
    if tmp is not None:
        tmp.cleanup()
    return paths


if __name__ == "__main__":
    for p in take_screenshots(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"):
        print(p)
