"""The station panel and the worker that owns the station's connection.

:class:`StationWorker` lives in its own QThread: it connects the roles, reads
their identities, polls their readings (each role's lock is held for the whole
``state()`` call, so it never interleaves with a procedure's conversation) and,
at the end, shuts the station down safely and closes it.  The GUI thread only
receives dicts through signals; it never talks to an instrument.
"""
from __future__ import annotations

import logging
import math
import time

from PyQt6 import QtCore, QtGui, QtWidgets

from labctl.config import ROLES
from labctl.errors import InstrumentError

log = logging.getLogger("labctl.gui")

ROLE_TITLES = {"current_source": "Current source", "voltmeter": "Voltmeter", "temperature": "Temperature",
               "gaussmeter": "Gaussmeter", "stage": "Stage"}


class StationWorker(QtCore.QObject):
    connected = QtCore.pyqtSignal(dict)  # role -> {"identity", "driver", "address", "error"}; "_sim": description
    readings = QtCore.pyqtSignal(dict)  # role -> {"state": dict, "error": str | None}; "_t": wall time
    stopped = QtCore.pyqtSignal(list)  # safe-shutdown actions

    def __init__(self, station, interval_ms: int = 400):
        super().__init__()
        self.station = station
        self.interval_ms = interval_ms
        self.run_active = False  # set by the GUI: skip the voltmeter (the procedure's readings are shown)
        self._timer: QtCore.QTimer | None = None
        self.is_connected = False
        self.polls = 0
        self._last: dict[str, str] = {}  # role -> last polling error

    @QtCore.pyqtSlot()
    def start(self) -> None:
        st = self.station
        try:
            if not st.roles:
                st.connect(tolerant=True)
        except Exception as e:  # a station that cannot even start: every role reports it
            for role in ROLES:
                st.errors.setdefault(role, InstrumentError(str(e)))
        info = self._describe()
        self.is_connected = True
        self.connected.emit(info)
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(self.interval_ms)
        self.poll()

    def _describe(self, roles=ROLES, info: dict | None = None) -> dict:
        """Identity of each role, or the CLI's diagnostic detail (role, address, command sent, terminations)."""
        st = self.station
        info = dict(info or {})
        for role in roles:
            rc = getattr(st.config, role)
            entry = {"driver": rc.driver, "address": rc.address, "identity": "", "error": None,
                     "terminations": f"read={rc.read_termination!r} write={rc.write_termination!r}",
                     "timeout_ms": rc.timeout, "command": ""}
            if role in st.errors:
                entry["error"] = str(st.errors[role])
                entry["command"] = getattr(st.errors[role], "last_command", "") or ""
            elif role in st.roles:
                obj = st.roles[role]
                try:
                    with obj.lock:
                        entry["identity"] = obj.identity()
                except Exception as e:
                    entry["error"] = str(e)
                    entry["command"] = getattr(e, "last_command", "") or ""
            else:
                entry["error"] = "not connected"
            info[role] = entry
        if st.lab is not None:
            try:
                d = st.lab.world.describe()
                speed = getattr(st.clock, "speedup", 1.0)
                # the field model is the rehearsal's hidden truth: sent apart, shown only when asked
                info["_sim"] = (f"virtual lab: {d.get('sample')}, Tc {d.get('tc', float('nan')):.3g} K, speed-up "
                                f"{'max' if speed == float('inf') else f'{speed:g}×'}")
                info["_truth"] = {"field_model": d.get("field_model"), "sample": d.get("sample"),
                                  "seed": getattr(getattr(st.config, "sim", None), "seed", None)}
            except Exception:
                info["_sim"] = "virtual lab"
        return info

    @QtCore.pyqtSlot()
    def reconnect(self) -> None:
        """Open again every role that failed (queries only, as at start) and report the result."""
        st = self.station
        failed = [r for r in ROLES if r in st.errors or r not in st.roles or self._last.get(r)]
        for role in failed:
            old = st.roles.pop(role, None)
            if old is not None:
                try:
                    old.instrument.adapter.close()
                except Exception:  # noqa: BLE001
                    pass
            st.errors.pop(role, None)
            try:
                st.connect_role(role)
            except InstrumentError as e:
                st.errors[role] = e
            except Exception as e:  # noqa: BLE001
                st.errors[role] = InstrumentError(f"{role}: {type(e).__name__}: {e}", role=role)
        info = self._describe()
        self._last = {}
        self.connected.emit(info)
        self.poll()

    @QtCore.pyqtSlot()
    def poll(self) -> None:
        out: dict = {"_t": time.time()}
        for role, obj in list(self.station.roles.items()):
            if role == "voltmeter" and self.run_active:
                last = getattr(obj, "last_voltage", None)
                out[role] = {"state": {"voltage_V": last} if last is not None else {}, "error": None, "cached": True}
                continue
            try:
                with obj.lock:  # the whole state() at once: never interleaved with a procedure's I/O
                    out[role] = {"state": obj.state(), "error": None}
            except Exception as e:
                out[role] = {"state": {}, "error": str(e)}
                self._last[role] = str(e)
                continue
            self._last.pop(role, None)
        self.polls += 1
        self.readings.emit(out)

    @QtCore.pyqtSlot()
    def stop(self) -> None:
        """Stop polling, ramp the current to zero, turn the output off, close; then end the thread."""
        if self._timer is not None:
            self._timer.stop()
        actions: list[str] = []
        if self.station.roles:
            try:
                actions = self.station.safe_shutdown("GUI closed")
            except Exception as e:
                actions = [f"safe shutdown failed: {e}"]
                log.critical("safe shutdown at GUI close failed: %s", e)
            self.station.close()
        self.stopped.emit(actions)
        QtCore.QThread.currentThread().quit()


def _fmt(value, unit: str, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    v = float(value)
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(v) >= factor or factor == 1e-9:
            if abs(v) >= 1 or v == 0:
                return f"{v:.{digits}g} {unit}"
            return f"{v / factor:.{digits}g} {prefix}{unit}"
    return f"{v:.{digits}g} {unit}"


def describe_reading(role: str, state: dict) -> str:
    if not state:
        return "—"
    if role == "current_source":
        out = "output ON" if state.get("output") else "output off"
        return f"{_fmt(state.get('current_A'), 'A')}, {out}"
    if role == "temperature":
        t = next((v for k, v in state.items() if k.startswith("T_")), None)
        return f"{_fmt(t, 'K', 5)} → {_fmt(state.get('setpoint_K'), 'K', 5)}"
    if role == "gaussmeter":
        return _fmt(state.get("field_T"), "T")
    if role == "stage":
        r = state.get("radius_m")
        return f"r = {_fmt(r * 1e3 if r is not None else None, 'mm', 4)}"
    if role == "voltmeter":
        return _fmt(state.get("voltage_V"), "V")
    return ", ".join(f"{k}={v}" for k, v in state.items())


class _Tile(QtWidgets.QFrame):
    def __init__(self, title: str):
        super().__init__()
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame { background: #f7f7f7; border-radius: 4px; }")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 3, 6, 3)
        lay.setSpacing(0)
        t = QtWidgets.QLabel(title)
        t.setStyleSheet("color: #555; font-size: 8pt; background: transparent;")
        self.value = QtWidgets.QLabel("—")
        f = self.value.font()
        f.setPointSize(12)
        f.setBold(True)
        self.value.setFont(f)
        self.value.setStyleSheet("background: transparent;")
        lay.addWidget(t)
        lay.addWidget(self.value)


class StationPanel(QtWidgets.QGroupBox):
    """Live readings, identity and connection state of every role."""

    def __init__(self, station, parent=None):
        super().__init__("Station", parent)
        self.station = station
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.summary = QtWidgets.QLabel(f"{station.config.station.name} — connecting…")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: #333;")
        lay.addWidget(self.summary)
        tiles = QtWidgets.QGridLayout()
        tiles.setSpacing(4)
        self.tiles = {"current": _Tile("Current I"), "temperature": _Tile("Sample T"), "field": _Tile("Field B"),
                      "position": _Tile("Probe position")}
        for k, tile in enumerate(self.tiles.values()):
            tiles.addWidget(tile, k // 2, k % 2)
        lay.addLayout(tiles)
        self.table = QtWidgets.QTableWidget(len(ROLES), 3)
        self.table.setHorizontalHeaderLabels(["Role", "Instrument", "Reading"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(1, 120)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().setMinimumSectionSize(18)
        self.table.setFixedHeight(20 * len(ROLES) + 26)
        self.table.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for row, role in enumerate(ROLES):
            item = QtWidgets.QTableWidgetItem("●  " + ROLE_TITLES[role])
            item.setForeground(QtGui.QColor("#999"))
            self.table.setItem(row, 0, item)
            self.table.setItem(row, 1, QtWidgets.QTableWidgetItem("…"))
            self.table.setItem(row, 2, QtWidgets.QTableWidgetItem("—"))
        lay.addWidget(self.table)
        self.problem_box = QtWidgets.QFrame()
        self.problem_box.setStyleSheet("QFrame { background: #ffebee; border-radius: 4px; }")
        pb = QtWidgets.QVBoxLayout(self.problem_box)
        pb.setContentsMargins(6, 4, 6, 4)
        self.problems = QtWidgets.QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.setStyleSheet("color: #b71c1c; background: transparent;")
        self.reconnect_button = QtWidgets.QPushButton("Reconnect")
        self.reconnect_button.setToolTip("Open the instruments that did not answer again (queries only)")
        pb.addWidget(self.problems)
        pb.addWidget(self.reconnect_button, 0, QtCore.Qt.AlignmentFlag.AlignRight)
        self.problem_box.hide()
        lay.addWidget(self.problem_box)
        self.show_truth = False  # rehearsal: the virtual lab's field model stays hidden
        self.info: dict = {}
        self.last: dict = {}
        self.connection: dict[str, str] = {role: "connecting" for role in ROLES}

    def _set_state(self, row: int, role: str, ok: bool | None, tip: str) -> None:
        item = self.table.item(row, 0)
        colour = {True: "#2e7d32", False: "#c62828", None: "#999"}[ok]
        item.setForeground(QtGui.QColor(colour))
        item.setToolTip(tip)
        self.connection[role] = {True: "connected", False: "error", None: "connecting"}[ok]

    def header_text(self) -> str:
        info = self.info
        cfg = self.station.config
        ok = sum(1 for r in ROLES if not info.get(r, {}).get("error"))
        text = info.get("_sim") or f"{cfg.station.name} (backend {cfg.station.backend or 'system VISA'!r})"
        truth = info.get("_truth")
        if truth:
            text += (f", field model {truth.get('field_model')}" if self.show_truth
                     else " (rehearsal: field model hidden until the analysis)")
        return f"{text} — {ok}/{len(ROLES)} roles connected"

    def set_show_truth(self, on: bool) -> None:
        self.show_truth = on
        if self.info:
            self.summary.setText(self.header_text())

    def diagnostics(self) -> list[str]:
        """One line per role that does not answer: role, driver, address, command sent, terminations, time-out."""
        out = []
        for role in ROLES:
            e = self.info.get(role, {})
            if not e.get("error"):
                continue
            detail = [f"driver {e.get('driver')}", f"address {e.get('address')}"]
            if e.get("command"):
                detail.append(f"command sent {e['command']!r}")
            detail.append(f"terminations {e.get('terminations')}")
            detail.append(f"time-out {e.get('timeout_ms')} ms")
            out.append(f"{ROLE_TITLES[role]} ({role}) not answering: {e['error']} [{'; '.join(detail)}]")
        return out

    def on_connected(self, info: dict) -> None:
        self.info = info
        self.summary.setText(self.header_text())
        lines = self.diagnostics()
        self.problems.setText("\n".join(lines) + ("\nCheck the address, the cable and the terminations "
                                                  "(the usual cause of time-outs), then Reconnect." if lines else ""))
        self.problem_box.setVisible(bool(lines))
        for row, role in enumerate(ROLES):
            e = info.get(role, {})
            ident = e.get("identity") or ("NOT ANSWERING" if e.get("error") else "")
            cell = self.table.item(row, 1)
            cell.setText(ident)
            cell.setToolTip(f"{e.get('driver')} at {e.get('address')}\n{e.get('identity') or ''}"
                            + (f"\n{e['error']}" if e.get("error") else ""))
            self._set_state(row, role, not e.get("error"),
                            f"{ROLE_TITLES[role]}: {'connected' if not e.get('error') else e.get('error')}")

    def on_readings(self, data: dict) -> None:
        self.last = data
        for row, role in enumerate(ROLES):
            entry = data.get(role)
            if entry is None:
                continue
            item = self.table.item(row, 2)
            if entry.get("error"):
                item.setText("error")
                item.setToolTip(entry["error"])
                item.setForeground(QtGui.QColor("#c62828"))
                self._set_state(row, role, False, entry["error"])
            else:
                item.setText(describe_reading(role, entry["state"]))
                item.setToolTip(", ".join(f"{k} = {v}" for k, v in entry["state"].items()))
                item.setForeground(QtGui.QColor("#000"))
                if self.connection.get(role) != "connected" and not self.info.get(role, {}).get("error"):
                    self._set_state(row, role, True, f"{ROLE_TITLES[role]}: connected")
        polling = []
        for role in ROLES:
            err = (data.get(role) or {}).get("error")
            if err:
                rc = getattr(self.station.config, role)
                polling.append(f"{ROLE_TITLES[role]} ({role}) stopped answering: {err} [driver {rc.driver}; address "
                               f"{rc.address}; terminations read={rc.read_termination!r} "
                               f"write={rc.write_termination!r}; time-out {rc.timeout} ms]")
        lines = self.diagnostics() + polling
        if lines or self.problem_box.isVisible():
            self.problems.setText("\n".join(lines) + ("\nCheck the address, the cable and the terminations "
                                                      "(the usual cause of time-outs), then Reconnect." if lines else ""))
            self.problem_box.setVisible(bool(lines))
        cs = data.get("current_source", {}).get("state", {})
        tc = data.get("temperature", {}).get("state", {})
        gm = data.get("gaussmeter", {}).get("state", {})
        sg = data.get("stage", {}).get("state", {})
        if cs:
            self.tiles["current"].value.setText(_fmt(cs.get("current_A"), "A"))
            on = abs(cs.get("current_A") or 0.0) > 1e-6 or cs.get("output")
            self.tiles["current"].value.setStyleSheet("background: transparent; color: %s;"
                                                      % ("#c62828" if on else "#222"))
        if tc:
            self.tiles["temperature"].value.setText(_fmt(next((v for k, v in tc.items() if k.startswith("T_")), None),
                                                         "K", 5))
        if gm:
            self.tiles["field"].value.setText(_fmt(gm.get("field_T"), "T"))
        if sg:
            self.tiles["position"].value.setText(_fmt(sg.get("position_mm"), "mm", 5))

    def current(self) -> float | None:
        return self.last.get("current_source", {}).get("state", {}).get("current_A")
