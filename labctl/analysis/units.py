"""Column names with units, and an explicit unit table (everything to SI).

Column names follow pymeasure's ``Name (unit)`` style; foreign files also use
``Name / unit``, ``Name/unit`` and ``Name [unit]``.  The table is deliberately
small and explicit (no pint): ``G`` is gauss (1e-4 T) here, never a
gravitational constant or a giga-anything.
"""
from __future__ import annotations

import math
import re

# SI unit of each dimension, as written in canonical column names.
SI_UNITS = {
    "voltage": "V",
    "current": "A",
    "field": "T",
    "length": "m",
    "temperature": "K",
    "resistance": "ohm",
    "time": "s",
    "frequency": "Hz",
    "angle": "deg",
    "dimensionless": "",
}

_PREFIXES = {
    "": 1.0,
    "T": 1e12,
    "G": 1e9,
    "M": 1e6,
    "k": 1e3,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
}


class UnitError(ValueError):
    """A unit string is unknown or of the wrong dimension."""


def _build_table() -> dict[str, tuple[str, float, float]]:
    """unit string -> (dimension, factor, offset); SI value = v * factor + offset."""
    table: dict[str, tuple[str, float, float]] = {}
    prefixed = {"V": "voltage", "A": "current", "T": "field", "ohm": "resistance",
                "s": "time", "Hz": "frequency"}
    for base, dim in prefixed.items():
        for p, f in _PREFIXES.items():
            if base == "T" and p in ("T", "G"):
                continue  # "TT"/"GT" are nonsense; keep the table clean
            table[p + base] = (dim, f, 0.0)
    # lengths: no "Mm"/"Gm"/"Tm"; add cm
    for p in ("", "k", "m", "u", "n", "p"):
        table[p + "m"] = ("length", _PREFIXES[p], 0.0)
    table["cm"] = ("length", 1e-2, 0.0)
    table["in"] = ("length", 0.0254, 0.0)
    # temperature: K and mK/uK (no kK); Celsius with its offset
    for p in ("", "m", "u", "n"):
        table[p + "K"] = ("temperature", _PREFIXES[p], 0.0)
    for name in ("degC", "°C", "celsius"):
        table[name] = ("temperature", 1.0, 273.15)
    # gauss and oersted (mu0 H in vacuum): 1 G = 1e-4 T
    for p in ("", "m", "k", "u"):
        table[p + "G"] = ("field", _PREFIXES[p] * 1e-4, 0.0)
    table["gauss"] = ("field", 1e-4, 0.0)
    table["Gs"] = ("field", 1e-4, 0.0)
    table["Oe"] = ("field", 1e-4, 0.0)
    table["tesla"] = ("field", 1.0, 0.0)
    # long names and odd spellings
    table.update({
        "volt": ("voltage", 1.0, 0.0), "volts": ("voltage", 1.0, 0.0),
        "amp": ("current", 1.0, 0.0), "amps": ("current", 1.0, 0.0),
        "ampere": ("current", 1.0, 0.0), "amperes": ("current", 1.0, 0.0),
        "kelvin": ("temperature", 1.0, 0.0),
        "meter": ("length", 1.0, 0.0), "metre": ("length", 1.0, 0.0),
        "sec": ("time", 1.0, 0.0), "min": ("time", 60.0, 0.0), "h": ("time", 3600.0, 0.0),
        "deg": ("angle", 1.0, 0.0), "degree": ("angle", 1.0, 0.0), "degrees": ("angle", 1.0, 0.0),
        "°": ("angle", 1.0, 0.0), "deg.": ("angle", 1.0, 0.0),
        "rad": ("angle", 180.0 / math.pi, 0.0),
        "1": ("dimensionless", 1.0, 0.0), "": ("dimensionless", 1.0, 0.0),
    })
    return table


UNIT_TABLE = _build_table()
# Case-insensitive fallback ("mv" -> mV); on a clash the lower-case prefix wins ("mv" is
# mV, not MV).  "g" stays unknown: it is gram, not gauss.
_LOWER: dict[str, str] = {}
for _k in sorted(UNIT_TABLE, key=lambda k: (not k[:1].islower(), k)):
    _LOWER.setdefault(_k.lower(), _k)
_LOWER.pop("g", None)
del _k


def normalize_unit(unit: str) -> str:
    """Canonical spelling of a unit string: micro as ``u``, ohm as ``ohm``."""
    u = unit.strip().strip("[]()").strip()
    u = u.replace("\u00b5", "u").replace("\u03bc", "u")  # micro sign, Greek mu
    u = u.replace("\u2126", "ohm").replace("\u03a9", "ohm")  # ohm sign, Greek Omega
    u = re.sub(r"(?i)ohms?$", "ohm", u)
    u = u.replace(" ", "")
    return u


def lookup_unit(unit: str) -> tuple[str, float, float]:
    """(dimension, factor, offset) of a unit string; UnitError if unknown."""
    u = normalize_unit(unit)
    if u in UNIT_TABLE:
        return UNIT_TABLE[u]
    low = u.lower()
    if low in _LOWER:
        return UNIT_TABLE[_LOWER[low]]
    raise UnitError(f"unknown unit {unit!r}")


def is_known_unit(unit: str) -> bool:
    try:
        lookup_unit(unit)
        return True
    except UnitError:
        return False


def to_si(values, unit: str):
    """Convert values (scalar or array) in ``unit`` to SI; returns (values, SI unit, dimension)."""
    dim, factor, offset = lookup_unit(unit)
    return values * factor + offset, SI_UNITS[dim], dim


_NAME_PATTERNS = (
    re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$"),  # Name (unit)
    re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]\s*$"),  # Name [unit]
    re.compile(r"^(?P<name>.*?\S)\s*/\s*(?P<unit>[^/\s][^/]*?)\s*$"),  # Name / unit
)


def split_column_name(column: str) -> tuple[str, str | None]:
    """``'Voltage (uV)'`` -> ``('Voltage', 'uV')``; ``'V1  -sample/ uV'`` -> ``('V1 -sample', 'uV')``.

    A trailing group is taken as a unit only when the table knows it (or it is
    the pymeasure-style parenthesis, which always holds a unit); ``'time/s'`` ->
    ``('time', 's')``.  Names without a unit give ``(name, None)``.
    """
    text = " ".join(str(column).split())
    for i, pat in enumerate(_NAME_PATTERNS):
        m = pat.match(text)
        if not m:
            continue
        name, unit = m.group("name").strip(), m.group("unit").strip()
        if not name:
            continue
        if i == 0 or is_known_unit(unit):
            return name, unit
    return text, None


def canonical_column(name: str, unit: str | None) -> str:
    """``('Voltage', 'V')`` -> ``'Voltage (V)'``; dimensionless -> bare name."""
    return f"{name} ({unit})" if unit else name


_QTY = re.compile(r"^\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*$")


def parse_quantity(text, dimension: str | None = None, default_unit: str | None = None) -> float:
    """``'12.89mm'`` -> 0.01289; ``'0.01 m'`` -> 0.01; ``0.5`` -> 0.5 (taken in SI or ``default_unit``).

    ``dimension`` (e.g. ``'length'``) checks that the unit is of that kind.
    Raises UnitError with a one-line message on any problem.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        unit = default_unit or ""
    else:
        m = _QTY.match(str(text))
        if not m:
            raise UnitError(f"cannot read a number with unit from {text!r}")
        value = float(m.group("num"))
        unit = m.group("unit") or default_unit or ""
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite number")
    if unit == "" and dimension is not None:
        return value  # plain number: already SI
    dim, factor, offset = lookup_unit(unit)
    if dimension is not None and dim != dimension:
        raise UnitError(
            f"{text!r}: unit {unit!r} is a {dim}, expected a {dimension} (e.g. {SI_UNITS[dimension]})"
        )
    return value * factor + offset


def dimension_of(unit: str | None) -> str | None:
    if unit is None:
        return None
    try:
        return lookup_unit(unit)[0]
    except UnitError:
        return None
