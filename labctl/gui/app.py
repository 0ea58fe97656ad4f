"""Start the Qt application and the main window."""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path


def application():
    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("labctl")
    return app


def run(station=None, data_dir: str | Path | None = None, size=(1600, 1000)) -> int:
    app = application()
    from labctl.gui.window import MainWindow

    win = MainWindow(station, data_dir)
    win.resize(*size)
    win.show()
    with _signals_close(win):
        return int(app.exec())


@contextmanager
def _signals_close(win):
    """SIGTERM, SIGHUP and Ctrl-C close the window the safe way (run aborted, current ramped to zero)."""
    from PyQt6 import QtCore

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        QtCore.QTimer.singleShot(0, lambda: win.terminate(signal.Signals(signum).name))

    sigs = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])  # SIGHUP: terminal closed
    previous = {sig: signal.signal(sig, handler) for sig in sigs}
    wake = QtCore.QTimer()  # Python handles signals only when it runs: wake it up regularly
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        yield
    finally:
        wake.stop()
        for sig, h in previous.items():
            signal.signal(sig, h)
