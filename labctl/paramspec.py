"""Every step's parameters as a user sees them: label, attribute name, unit, default and the
range actually allowed on a station (the parameter's own bounds narrowed by the station limits).

Shared by ``labctl params``, ``labctl protocol example`` and the GUI's range hints, so that
the terminal and the window give the same numbers ("1e-06 … 600 A" on a 600 A supply,
not the procedure's generic 1000 A).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from procedures import PROCEDURES

STEP_TITLES = {
    "rt": "R(T) through Tc",
    "vi": "V–I sweep (Ic, n)",
    "normal-control": "Normal-state control (above Tc)",
    "radial-field": "Radial field B(r1, r2, r3)",
    "radial-scan": "Radial scan B(r)",
    "residual": "Residual voltage vs I",
}
# parameters whose value is a current in A / a temperature in K / a ramp in K/min / a stage radius in mm
CURRENT_PARAMS = ("current_max", "current", "ic")
TEMPERATURE_PARAMS = ("temperature", "t_low", "t_high", "expected_tc")


@dataclass
class ParamInfo:
    step: str
    name: str  # attribute name (what --set and protocol files use)
    label: str  # pymeasure's parameter name (the CSV header's)
    kind: str  # float, integer, bool, choice, text
    units: str
    default: object  # the procedure's own default
    minimum: float | None
    maximum: float | None
    choices: tuple | None
    limit_note: str = ""  # which station limit narrowed the range

    @property
    def range_text(self) -> str:
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        if self.kind == "bool":
            return "true | false"
        if self.minimum is None or self.maximum is None:
            return ""
        unit = f" {self.units}" if self.units else ""
        return f"{self.minimum:g} … {self.maximum:g}{unit}"


def _kind(p) -> str:
    name = type(p).__name__
    return {"FloatParameter": "float", "IntegerParameter": "integer", "BooleanParameter": "bool",
            "ListParameter": "choice"}.get(name, "text")


def _station_limits(config) -> dict:
    out = {}
    if config is None:
        return out
    try:
        cs = config.current_source.limits
        out["current"] = (0.0, float(cs.max_current), "current_source.limits.max_current")
    except AttributeError:
        pass
    try:
        tl = config.temperature.limits
        out["temperature"] = (float(tl.min_temperature), float(tl.max_temperature), "temperature.limits")
        out["ramp"] = (0.0, float(tl.max_ramp_rate), "temperature.limits.max_ramp_rate")
    except AttributeError:
        pass
    return out


def step_parameters(step: str, config=None) -> list[ParamInfo]:
    """The parameters of one step, with ranges narrowed by the station ``config`` (a StationConfig) if given."""
    if step not in PROCEDURES:
        raise KeyError(step)
    limits = _station_limits(config)
    out = []
    for name, p in PROCEDURES[step]().parameter_objects().items():
        kind = _kind(p)
        lo = getattr(p, "minimum", None) if kind in ("float", "integer") else None
        hi = getattr(p, "maximum", None) if kind in ("float", "integer") else None
        units = getattr(p, "units", None) or ""
        note = ""
        which = None
        if name in CURRENT_PARAMS and units == "A":
            which = "current"
        elif name in TEMPERATURE_PARAMS and units == "K":
            which = "temperature"
        elif units == "K/min":
            which = "ramp"
        if which and which in limits and hi is not None:
            llo, lhi, note_name = limits[which]
            if lhi < hi:
                hi = lhi
                note = (f"{note_name} {llo:g}–{lhi:g} {units}" if which == "temperature"
                        else f"{note_name} = {lhi:g} {units}")
        choices = tuple(getattr(p, "choices", None) or ()) or None
        out.append(ParamInfo(step, name, p.name, kind, units, p.default, lo, hi, choices, note))
    return out


def station_defaults(station, step: str) -> dict:
    """The values a protocol run would use for ``step`` on this station (derived from its [sample])."""
    from labctl.protocol import STEPS, Plan, Protocol

    try:
        return Protocol(station, Plan(steps=list(STEPS))).defaults(step, {})
    except Exception:  # noqa: BLE001 - no [sample]: the procedure defaults stand
        return {}


def fmt_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return str(value)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
