"""``labctl gui``: PyQt6 + pyqtgraph window over the same station, runner and
live stream as the CLI.

The acquisition never runs on the GUI thread and the GUI thread never talks to
an instrument: a station thread connects and polls the roles, a run thread
executes queued runs with :func:`labctl.protocol.execute`, a replay thread
streams recorded runs, and the GUI drains their rows on a 30 Hz redraw timer.

    from labctl.gui.window import MainWindow   # MainWindow(station=None, data_dir=None)
"""
