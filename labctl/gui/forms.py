"""Parameter forms generated from the procedures' pymeasure parameters, with
the station-limit check done *before* a run is queued.

Each input is one of pymeasure's own input widgets (ScientificInput,
IntegerInput, ListInput, BooleanInput, StringInput), so units appear as the
suffix and the parameter's minimum/maximum bound the box.  Currents,
temperatures, ramp rates and stage positions a plan asks for are checked
against the station limits with the same role ``check`` calls the runner uses;
a value that fails is outlined in red with the reason under it.
"""
from __future__ import annotations

import math
import re

from pymeasure.display.inputs import (
    BooleanInput,
    IntegerInput,
    ListInput,
    ScientificInput,
    StringInput,
)
from pymeasure.experiment import parameters as P
from PyQt6 import QtCore, QtWidgets

from labctl.errors import ConfigError, LabctlError, LimitError
from labctl.protocol import PROTOCOL_OPTIONS, STEPS, Plan, Protocol, parse_sets
from labctl.runner import limit_violations
from procedures import PROCEDURES

STEP_TITLES = {
    "rt": "R(T) through Tc",
    "vi": "V–I sweep (Ic, n)",
    "normal-control": "Normal-state control (above Tc)",
    "radial-field": "Radial field B(r1, r2, r3)",
    "radial-scan": "Radial scan B(r)",
    "residual": "Residual voltage vs I",
}
# which parameters a request of each sort comes from (value matching narrows it down)
CURRENT_NAMES = ("current_max", "current", "currents", "ic")
TEMPERATURE_NAMES = ("temperature", "t_low", "t_high")
POSITION_NAMES = ("radii", "r_start", "r_stop")
ERROR_STYLE = "border: 2px solid #c62828; background: #ffebee;"


# ---------------------------------------------------------------------------
# validation (pure: usable without widgets)
# ---------------------------------------------------------------------------
def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _attribute(values: dict, candidates: tuple[str, ...], value: float | None) -> list[str]:
    present = [n for n in candidates if n in values]
    if value is not None:
        exact = [n for n in present if isinstance(values[n], (int, float)) and not isinstance(values[n], bool)
                 and _close(abs(float(values[n])), abs(value))]
        if exact:
            return exact
    return present


def _config_culprits(message: str, values: dict) -> list[str]:
    """Parameter names a ConfigError message is about ('currents: ...', 'ic is not set', ...)."""
    head = message.split(":", 1)[0].strip()
    if head in values:
        return [head]
    names = [n for n in values if re.search(rf"\b{re.escape(n)}\b", message)]
    if not names and "fraction" in message:
        names = [n for n in ("currents", "ic") if n in values]
    return names


def validate_step(kind: str, values: dict, station=None) -> dict[str, str]:
    """Problems of one procedure's parameter values: ``{parameter: reason}``; key "" for the plan as a whole.

    Checks, in order: each parameter's own type/range, the plan's consistency
    (``points()``), then every current/temperature/ramp/position it requests
    against the station's limits (the role ``check`` methods, as the runner does).
    """
    problems: dict[str, str] = {}
    proc = PROCEDURES[kind]()
    params = proc.parameter_objects()
    for name, value in values.items():
        p = params.get(name)
        if p is None:
            problems[name] = f"unknown parameter {name!r}"
            continue
        try:
            p.value = value
            setattr(proc, name, p.value)
        except (ValueError, TypeError) as e:
            rng = ""
            if getattr(p, "minimum", None) is not None and getattr(p, "maximum", None) is not None:
                rng = f" (allowed {p.minimum:g} to {p.maximum:g} {p.units or ''})".rstrip()
            reason = str(e)
            if type(p).__name__ in ("FloatParameter", "IntegerParameter") and "non-" in reason:
                reason = "not a number" if type(p).__name__ == "FloatParameter" else "not a whole number"
            for cls in ("FloatParameter", "IntegerParameter", "ListParameter", "BooleanParameter"):
                reason = reason.replace(f"{cls} ", "")
            problems[name] = f"invalid value{rng}: {reason}"
    if problems:
        return problems
    connected = station is not None and bool(getattr(station, "roles", None))
    proc.station = station if connected else None
    try:
        proc.points()
        if not connected:  # the limits live in the connected roles: checked again once connected
            return problems
        req = proc.requests()
    except ConfigError as e:
        msg = str(e)
        culprits = _config_culprits(msg, values)
        for n in culprits or [""]:
            problems[n] = msg
        return problems
    except Exception as e:  # a procedure that cannot even plan: show it, do not crash the form
        problems[""] = f"{type(e).__name__}: {e}"
        return problems
    stage = station.roles.get("stage")
    for quantity, value, error in limit_violations(req, station):
        if quantity == "current":
            names = _attribute(values, CURRENT_NAMES, value)
        elif quantity == "temperature":
            names = _attribute(values, TEMPERATURE_NAMES, value)
        elif quantity == "ramp":
            names = [k for k, p in params.items() if getattr(p, "units", None) == "K/min" and k in values]
        else:  # a stage position: attribute it through the radius it stands for
            try:
                mm = stage.radius_for_position(value) * 1e3
            except Exception:
                mm = None
            names = _attribute(values, POSITION_NAMES, mm)
        for n in names or [""]:
            problems.setdefault(n, str(error))
    return problems


def validate_protocol(options: dict, overrides_text: str, station=None, derived: dict | None = None) -> dict[str, str]:
    """Problems of a whole-protocol plan (options, ``step.param=value`` lines) against the station."""
    problems: dict[str, str] = {}
    steps = list(STEPS)
    try:
        overrides, more = parse_sets([ln.strip() for ln in overrides_text.splitlines()
                                      if ln.strip() and not ln.strip().startswith("#")], steps)
    except ConfigError as e:
        return {"overrides": str(e)}
    opts = {**options, **more}
    if station is None:
        return problems
    try:
        Protocol(station, Plan(steps=steps, overrides=overrides, options=opts)).check(dict(derived or {}))
    except LimitError as e:
        problems[""] = str(e)
    except ConfigError as e:
        msg = str(e)
        key = next((k for k in options if re.search(rf"\b{k}\b", msg)), None)
        problems[key or "overrides"] = msg
    except LabctlError as e:
        problems[""] = str(e)
    return problems


# ---------------------------------------------------------------------------
# widgets
# ---------------------------------------------------------------------------
def input_for(parameter):
    """pymeasure's input widget for a parameter (as its InputsWidget chooses it)."""
    if getattr(parameter, "ui_class", None) is not None:
        return parameter.ui_class(parameter)
    if isinstance(parameter, P.FloatParameter):
        return ScientificInput(parameter)
    if isinstance(parameter, P.IntegerParameter):
        return IntegerInput(parameter)
    if isinstance(parameter, P.BooleanParameter):
        return BooleanInput(parameter)
    if isinstance(parameter, P.ListParameter):
        return ListInput(parameter)
    return StringInput(parameter)


def _range_text(p) -> str:
    lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
    if lo is None or hi is None:
        if getattr(p, "choices", None):
            return ""
        return ""
    return f"{lo:g} … {hi:g}"


def _changed_signal(widget):
    for name in ("valueChanged", "currentIndexChanged", "stateChanged", "textChanged"):
        sig = getattr(widget, name, None)
        if sig is not None:
            return sig
    return None


class _FormBase(QtWidgets.QWidget):
    """Rows of label / input / range, each with an error line; ``problems`` after every edit."""

    validated = QtCore.pyqtSignal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.inputs: dict[str, QtWidgets.QWidget] = {}
        self.errors: dict[str, QtWidgets.QLabel] = {}
        self.problems: dict[str, str] = {}
        self.touched: set[str] = set()
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(2, 2, 2, 2)
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(3)
        self._grid.setColumnStretch(1, 1)
        self._row = 0
        self.general = QtWidgets.QLabel()
        self.general.setWordWrap(True)
        self.general.setStyleSheet("color: #c62828;")
        self.general.hide()
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self.revalidate)

    def _add_row(self, name: str, label: str, widget: QtWidgets.QWidget, hint: str = "", tooltip: str = ""):
        lab = QtWidgets.QLabel(label)
        lab.setToolTip(tooltip or label)
        widget.setToolTip(tooltip or label)
        widget.setMinimumWidth(110)
        self._grid.addWidget(lab, self._row, 0)
        self._grid.addWidget(widget, self._row, 1)
        h = QtWidgets.QLabel(hint)
        h.setStyleSheet("color: #666;")
        self._grid.addWidget(h, self._row, 2)
        err = QtWidgets.QLabel()
        err.setWordWrap(True)
        err.setStyleSheet("color: #c62828;")
        err.hide()
        self._grid.addWidget(err, self._row + 1, 0, 1, 3)
        self._row += 2
        self.inputs[name] = widget
        self.errors[name] = err
        sig = _changed_signal(widget)
        if sig is not None:
            sig.connect(lambda *_a, n=name: self._edited(n))

    def _finish(self):
        self._grid.addWidget(self.general, self._row, 0, 1, 3)
        self._grid.setRowStretch(self._row + 1, 1)

    def _edited(self, name: str) -> None:
        self.touched.add(name)
        self._timer.start()

    def show_problems(self, problems: dict[str, str]) -> None:
        self.problems = problems
        for name, widget in self.inputs.items():
            err = self.errors[name]
            reason = problems.get(name)
            if reason:
                widget.setStyleSheet(ERROR_STYLE)
                err.setText(reason)
                err.show()
            else:
                widget.setStyleSheet("")
                err.hide()
        general = problems.get("")
        self.general.setText(general or "")
        self.general.setVisible(bool(general))
        self.validated.emit(not problems)

    @property
    def valid(self) -> bool:
        return not self.problems

    def revalidate(self) -> dict[str, str]:
        raise NotImplementedError

    def set_value(self, name: str, value) -> None:
        w = self.inputs[name]
        if isinstance(w, BooleanInput):
            w.setChecked(bool(value))
        elif isinstance(w, ListInput):
            w.setValue(value)
        elif isinstance(w, StringInput) or isinstance(w, QtWidgets.QLineEdit):
            w.setText(str(value))
        elif isinstance(w, QtWidgets.QPlainTextEdit):
            w.setPlainText(str(value))
        else:
            w.setValue(value)
        self.touched.add(name)
        self.revalidate()

    def value(self, name: str):
        w = self.inputs[name]
        if isinstance(w, QtWidgets.QPlainTextEdit):
            return w.toPlainText()
        if isinstance(w, QtWidgets.QCheckBox):
            return w.isChecked()
        return w.value()


class ProcedureForm(_FormBase):
    """The form of one procedure (a protocol step)."""

    def __init__(self, kind: str, station=None, defaults: dict | None = None, parent=None):
        super().__init__(parent)
        self.kind = kind
        self.station = station
        self._procedure = PROCEDURES[kind]()
        self.parameters = self._procedure.parameter_objects()
        from labctl.paramspec import step_parameters

        config = getattr(station, "config", None)
        self.ranges = {pi.name: pi for pi in step_parameters(kind, config)}  # narrowed by the station limits
        for name, p in self.parameters.items():
            if name in (defaults or {}):
                try:
                    p.value = defaults[name]
                except (ValueError, TypeError):
                    pass
            widget = input_for(p)
            label = p.name if not isinstance(widget, BooleanInput) else ""
            tip = f"{p.name} ({name})"
            info = self.ranges.get(name)
            rng = _range_text(info or p)
            if rng:
                tip += f": {rng} {getattr(p, 'units', '') or ''}"
            if info is not None and info.limit_note:
                tip += f" (station limit: {info.limit_note})"
            self._add_row(name, label, widget, rng, tip)
        self._finish()

    def values(self) -> dict:
        return {name: self.value(name) for name in self.inputs}

    def apply_defaults(self, defaults: dict, only_untouched: bool = True) -> None:
        """Fill in derived defaults (e.g. Ic from the latest V–I run) the user has not edited."""
        for name, value in defaults.items():
            if name in self.inputs and (not only_untouched or name not in self.touched):
                w = self.inputs[name]
                w.blockSignals(True)
                try:
                    if isinstance(w, BooleanInput):
                        w.setChecked(bool(value))
                    elif isinstance(w, (StringInput,)):
                        w.setText(str(value))
                    else:
                        w.setValue(value)
                except (ValueError, TypeError):
                    pass
                finally:
                    w.blockSignals(False)
        self.revalidate()

    def revalidate(self) -> dict[str, str]:
        problems = validate_step(self.kind, self.values(), self.station)
        self.show_problems(problems)
        return problems

    def describe(self) -> str:
        """A short summary for the queue: the currents and temperature the run will use."""
        v = self.values()
        parts = []
        if "currents" in v:
            if v.get("current_mode") == "fraction of Ic":
                parts.append(f"{v['currents']} × Ic (Ic = {v.get('ic', 0):g} A)")
            else:
                parts.append(f"{v['currents']} A")
        for k in ("current_max", "current"):
            if k in v:
                parts.append(f"{k.replace('_', ' ')} {v[k]:g} A")
        if "t_low" in v and "t_high" in v:
            parts.append(f"{v['t_high']:g} → {v['t_low']:g} K")
        if v.get("temperature"):
            parts.append(f"{v['temperature']:g} K")
        if "repeats" in v:
            parts.append(f"{v['repeats']}×")
        return ", ".join(parts)


class ProtocolForm(_FormBase):
    """The whole protocol: its options and free ``step.param=value`` overrides."""

    def __init__(self, station=None, parent=None):
        super().__init__(parent)
        self.kind = "protocol"
        self.station = station
        self.derived: dict = {}
        note = QtWidgets.QLabel("R(T) → Tc, V–I → Ic, normal-state control, radial field at fractions of the "
                                "measured Ic, radial scan, residual voltage. Step parameters are derived from "
                                "the sample and from earlier steps.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #444;")
        self._grid.addWidget(note, self._row, 0, 1, 3)
        self._row += 1
        for name, (typ, default, help_text) in PROTOCOL_OPTIONS.items():
            if typ is bool:
                w = QtWidgets.QCheckBox(help_text)
                w.setChecked(bool(default))
                label = ""
            elif typ is float:
                w = QtWidgets.QDoubleSpinBox()
                w.setDecimals(3)
                w.setRange(0.0, 100.0)
                w.setSingleStep(0.05)
                w.setValue(float(default))
                label = name.replace("_", " ")
            else:
                w = QtWidgets.QLineEdit(str(default))
                label = name.replace("_", " ")
            self._add_row(name, label, w, "", help_text)
        ov = QtWidgets.QPlainTextEdit()
        ov.setPlaceholderText("step overrides, one per line, e.g.\nvi.current_step=2\nradial-field.repeats=5")
        ov.setFixedHeight(54)
        self._add_row("overrides", "overrides", ov, "", "one --set per line: step.parameter=value")
        # per-step forms: only the values changed here become overrides; the rest stay derived
        self.step_tabs = QtWidgets.QTabWidget()
        self.step_tabs.setDocumentMode(True)
        self.step_tabs.setUsesScrollButtons(True)
        self.step_forms: dict[str, StepOverrideForm] = {}
        from labctl.paramspec import station_defaults

        for step in STEPS:
            form = StepOverrideForm(step, station, station_defaults(station, step) if station else {})
            form.validated.connect(lambda _ok: self._timer.start())
            self.step_forms[step] = form
            self.step_tabs.addTab(form, step)
        hint = QtWidgets.QLabel("Step parameters: only what you change here is applied (bold tab = changed); "
                                "the rest is derived from the sample and from earlier steps.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #555;")
        self._grid.addWidget(hint, self._row, 0, 1, 3)
        self._row += 1
        self._grid.addWidget(self.step_tabs, self._row, 0, 1, 3)
        self._row += 1
        self._finish()

    def options(self) -> dict:
        out = {}
        for name in PROTOCOL_OPTIONS:
            w = self.inputs[name]
            if isinstance(w, QtWidgets.QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QtWidgets.QDoubleSpinBox):
                out[name] = float(w.value())
            else:
                out[name] = w.text()
        return out

    def overrides_text(self) -> str:
        """The free override lines plus one line per value changed in the per-step forms."""
        lines = [self.inputs["overrides"].toPlainText().rstrip()]
        for step, form in getattr(self, "step_forms", {}).items():
            for name, value in form.changed().items():
                lines.append(f"{step}.{name}={value}")
        return "\n".join(ln for ln in lines if ln)

    def set_step_value(self, step: str, name: str, value) -> None:
        self.step_forms[step].set_value(name, value)
        self.revalidate()

    def revalidate(self) -> dict[str, str]:
        problems = validate_protocol(self.options(), self.overrides_text(), self.station, self.derived)
        for step, form in getattr(self, "step_forms", {}).items():
            for name, reason in form.problems.items():
                problems.setdefault("overrides", f"{step}.{name}: {reason}")
        if hasattr(self, "step_forms"):
            self.revalidate_tabs()
        self.show_problems(problems)
        return problems

    def revalidate_tabs(self) -> None:
        for k, step in enumerate(self.step_forms):
            font = self.step_tabs.tabBar().font()
            changed = bool(self.step_forms[step].changed())
            self.step_tabs.setTabText(k, step + (" *" if changed else ""))

    def describe(self) -> str:
        o = self.options()
        text = f"fractions {o['fractions']}, scan {'on' if o['scan'] else 'off'}"
        n = len([ln for ln in self.overrides_text().splitlines() if ln.strip()])
        return text + (f", {n} override(s)" if n else "")


class StepOverrideForm(ProcedureForm):
    """One step's parameters inside the protocol form: shows the values the protocol would use;
    a value the user changes becomes a ``step.parameter=value`` override (type- and range-checked
    here, the whole plan checked against the station by the protocol form)."""

    def __init__(self, kind: str, station=None, defaults: dict | None = None, parent=None):
        self._ready = False
        super().__init__(kind, station, defaults, parent)
        self.initial = dict(self.values())
        self._ready = True

    def changed(self) -> dict:
        if not self._ready:
            return {}
        now = self.values()
        return {n: now[n] for n in self.touched if n in now and now[n] != self.initial.get(n)}

    def revalidate(self) -> dict[str, str]:
        if not getattr(self, "_ready", False):
            return {}
        problems: dict[str, str] = {}
        params = self.parameters
        for name, value in self.changed().items():
            p = params[name]
            try:
                p.value = value
            except (ValueError, TypeError) as e:
                rng = _range_text(self.ranges.get(name) or p)
                problems[name] = f"invalid value{f' (allowed {rng})' if rng else ''}: {e}"
        self.show_problems(problems)
        return problems
