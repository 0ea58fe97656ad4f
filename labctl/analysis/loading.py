"""Load our runs, pymeasure-format CSV files and foreign CSV/TSV files as SI tables.

Nothing named in a file is ever imported or executed: the ``#Procedure: <...>``
line of a pymeasure header is read as text and mapped through an allow-list
(:data:`PROCEDURE_KINDS`).  pymeasure's ``Results.load``/``parse_header`` import
the named module, so they are never called here.

Every problem with a file is a :class:`LoadError` whose message is one line
naming the file; rows that cannot be used are dropped and counted in
``Dataset.warnings``.
"""
from __future__ import annotations

import codecs
import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labctl.analysis import units as U
from labctl.errors import LabctlError

KINDS = ("rt", "vi", "radial-field", "radial-scan", "residual")

# Allow-list: the only procedure names we recognise.  Never imported.
PROCEDURE_KINDS = {
    "procedures.rt.ResistanceVsTemperature": "rt",
    "procedures.vi.VISweep": "vi",
    "procedures.radial_field.RadialField": "radial-field",
    "procedures.normal_control.NormalStateControl": "radial-field",
    "procedures.radial_scan.RadialScan": "radial-scan",
    "procedures.residual.ResidualVoltage": "residual",
}
NORMAL_CONTROL_PROCEDURE = "procedures.normal_control.NormalStateControl"

# Step files of a run folder: NN-<name>.csv -> kind
FILE_KIND_HINTS = {
    "rt": "rt",
    "vi": "vi",
    "normal-control": "radial-field",
    "radial-field": "radial-field",
    "radial-scan": "radial-scan",
    "residual": "residual",
}

REQUIRED = {
    "rt": ["Temperature (K)", "Resistance (ohm)"],
    "vi": ["Current (A)", "Voltage (V)"],
    "radial-field": ["Current (A)", "Radius (m)", "Field (T)"],
    "radial-scan": ["Radius (m)", "Field (T)"],
    "residual": ["Current (A)", "Voltage (V)"],
}
OPTIONAL = {
    "rt": ["Voltage (V)", "Current (A)", "Direction", "Sweep"],
    "vi": ["Polarity"],
    "radial-field": ["Repeat", "Field std (T)", "Temperature (K)", "Polarity"],
    "radial-scan": ["Field std (T)", "Current (A)", "Polarity", "Repeat"],
    "residual": ["Polarity", "Voltage std (V)"],
}
OVERLOAD = 9.0e37  # SCPI instruments report overflow as +-9.9E37
# Columns whose rows are dropped when not finite (besides the required ones).
_ROW_KEYS = ("Polarity", "Repeat")

# Canonical quantity names and their dimensions.
CANONICAL = {
    "Temperature": "temperature",
    "Resistance": "resistance",
    "Current": "current",
    "Voltage": "voltage",
    "Field": "field",
    "Field std": "field",
    "Voltage std": "voltage",
    "Radius": "length",
    "Time": "time",
    "Repeat": None,
    "Polarity": None,
    "Direction": None,
    "Sweep": None,
}
_ALIASES_CI = {  # case-insensitive spellings -> canonical
    "temperature": "Temperature", "temp": "Temperature", "sample temperature": "Temperature",
    "resistance": "Resistance",
    "current": "Current",
    "voltage": "Voltage",
    "field": "Field", "magnetic field": "Field", "b field": "Field",
    "field std": "Field std", "field_std": "Field std", "field sd": "Field std", "b std": "Field std",
    "voltage std": "Voltage std", "voltage_std": "Voltage std", "v std": "Voltage std",
    "radius": "Radius",
    "time": "Time",
    "repeat": "Repeat", "polarity": "Polarity", "direction": "Direction", "sweep": "Sweep",
}
_ALIASES_CS = {"T": "Temperature", "R": "Resistance", "I": "Current", "V": "Voltage",
               "B": "Field", "r": "Radius", "t": "Time"}


class LoadError(LabctlError):
    """A data file cannot be read as the data asked for (one-line message, exit 2)."""

    exit_code = 2


class AnalysisError(LabctlError):
    """The data loaded but cannot be analysed as asked (one-line message, exit 2)."""

    exit_code = 2


@dataclass
class Dataset:
    """One table in SI units plus what the file said about itself."""

    frame: pd.DataFrame
    kind: str | None = None
    procedure: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    source_columns: dict[str, str] = field(default_factory=dict)  # canonical -> as in the file
    control: bool = False  # normal-state control data (T > Tc)

    @property
    def name(self) -> str:
        return self.path.name if self.path else "<data>"

    def parameter(self, name: str, dimension: str | None = None) -> float | None:
        """A header parameter as an SI float (``'Tap spacing: 0.01 m'`` -> 0.01), or None.

        Matches the parameter name case-insensitively, with or without a unit in
        the name (``'Temperature (K)'``, ``'field / T'``).
        """
        want = name.strip().lower()
        for key, raw in self.parameters.items():
            base, unit = U.split_column_name(key)
            if base.strip().lower() != want and key.strip().lower() != want:
                continue
            try:
                return U.parse_quantity(raw, dimension, default_unit=unit)
            except U.UnitError:
                return None
        return None

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def values(self, column: str) -> np.ndarray:
        return self.frame[column].to_numpy(dtype=float)


@dataclass
class Run:
    """A run folder: its steps in order (a Dataset, or the LoadError that stopped it)."""

    path: Path
    steps: list[tuple[str, Dataset | LoadError]]
    station: dict | None = None
    parameters: dict | None = None
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# text level
# ---------------------------------------------------------------------------
_DELIMS = (",", "\t", ";", "|", None)  # None = runs of white space
_DELIM_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "bar", None: "white space"}
_DEC_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")


def _to_float(cell: str, decimal_comma: bool) -> float | None:
    s = cell.strip().strip('"').strip()
    if not s:
        return None
    if decimal_comma and _DEC_COMMA.match(s):
        s = s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return None


def _split(line: str, delim: str | None) -> list[str]:
    if delim is None:
        fields = line.split()
    else:
        try:
            fields = next(csv.reader([line], delimiter=delim, skipinitialspace=True))
        except (csv.Error, StopIteration):
            fields = line.split(delim)
    fields = [f.strip() for f in fields]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _line_score(fields: list[str], delim: str | None) -> tuple[int, int]:
    """(numeric cells, non-numeric non-empty cells)."""
    dc = delim != ","
    num = bad = 0
    for f in fields:
        if not f:
            continue
        if _to_float(f, dc) is None:
            bad += 1
        else:
            num += 1
    return num, bad


def _is_data_like(fields: list[str], delim: str | None) -> bool:
    num, bad = _line_score(fields, delim)
    return num >= 1 and num >= bad


def _choose_delimiter(lines: list[str]) -> tuple[str | None, int]:
    """Pick the delimiter under which the lines look most like a numeric table."""
    sample = lines[:300] + lines[-100:] if len(lines) > 400 else lines
    return _delimiter_from_sample(sample)


def _delimiter_from_sample(sample: list[str]) -> tuple[str | None, int]:
    best = (None, 1, -math.inf)
    for delim in _DELIMS:
        split = [_split(s, delim) for s in sample]
        counts: dict[int, int] = {}
        for f in split:
            if _is_data_like(f, delim):
                counts[len(f)] = counts.get(len(f), 0) + 1
        if not counts:
            continue
        m = max(counts, key=lambda k: (counts[k], k))
        score = 0
        for f in split:
            if len(f) == m and _is_data_like(f, delim):
                num, bad = _line_score(f, delim)
                score += num - bad
        if m < 2:
            score *= 0.5
        if score > best[2]:
            best = (delim, m, score)
    if best[2] == -math.inf:
        return None, 0
    return best[0], best[1]


def _decode(raw: bytes, path: Path) -> tuple[str, list[str]]:
    warnings = []
    if b"\x00" in raw[:4096]:
        raise LoadError(f"{path}: not a text file (binary content)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        warnings.append("file is not UTF-8; read as Latin-1")
    return text, warnings


_PROC_RE = re.compile(r"^Procedure:\s*<\s*(?P<name>[^>]*?)\s*>\s*$")
# labctl's run files name pymeasure's own base Procedure (so stock pymeasure opens them
# anywhere) and keep labctl's procedure on a line of their own, which pymeasure skips
_LABCTL_PROC_RE = re.compile(r"^labctl procedure:\s*<\s*(?P<name>[^>]*?)\s*>\s*$")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    try:
        return codecs.decode(value.encode("latin-1", "backslashreplace"), "unicode_escape")
    except Exception:  # noqa: BLE001 - keep the raw text
        return value


def _parse_comment_header(comments: list[str]) -> tuple[str | None, dict[str, str]]:
    """Procedure name and parameters of a pymeasure header (pure text parsing)."""
    procedure = None
    labctl_procedure = None
    params: dict[str, str] = {}
    section = None
    for line in comments:
        body = line.lstrip()[1:]  # drop '#'
        stripped = body.strip()
        m = _PROC_RE.match(stripped) or _LABCTL_PROC_RE.match(stripped)
        if m:
            if stripped.startswith("labctl"):
                labctl_procedure = m.group("name")
            else:
                procedure = m.group("name")
            continue
        if stripped in ("Parameters:", "Metadata:"):
            section = stripped[:-1].lower()
            continue
        if stripped == "Data:":
            section = None
            continue
        if section and ":" in stripped:
            key, _, value = stripped.partition(":")
            params[key.strip()] = _unescape(value.strip())
    return labctl_procedure or procedure, params


def _parse_preamble(lines: list[str], delim: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        fields = [f for f in re.split(r"\t|;|,(?!\d)", line) if f.strip()]
        if len(fields) >= 2:
            out[fields[0].strip()] = fields[1].strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            if key.strip() and value.strip():
                out[key.strip()] = value.strip()
    return out


def _parse_mapping(mapping) -> dict[str, str]:
    """``{'Current (A)': 'I_src'}`` or ``['Current (A)=I_src', ...]`` -> dict target -> source."""
    if not mapping:
        return {}
    if isinstance(mapping, dict):
        return {str(k).strip(): str(v).strip() for k, v in mapping.items()}
    if isinstance(mapping, str):
        mapping = [mapping]
    out = {}
    for item in mapping:
        if "=" not in item:
            raise LoadError(f"--map {item!r}: expected TARGET=SOURCE, e.g. 'Current (A)=I_src'")
        target, _, source = item.partition("=")
        if not target.strip() or not source.strip():
            raise LoadError(f"--map {item!r}: expected TARGET=SOURCE, e.g. 'Current (A)=I_src'")
        out[target.strip()] = source.strip()
    return out


def _parse_columns_option(columns) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [c for c in (p.strip() for p in columns.split(",")) if c]
    return [str(c).strip() for c in columns]


# ---------------------------------------------------------------------------
# column level
# ---------------------------------------------------------------------------
def _canonical_base(base: str) -> str | None:
    if base in _ALIASES_CS:
        return _ALIASES_CS[base]
    return _ALIASES_CI.get(" ".join(base.lower().replace("_", " ").split())) or _ALIASES_CI.get(base.lower())


def _numeric_column(cells: pd.Series, decimal_comma: bool) -> tuple[pd.Series, bool]:
    if cells.dtype.kind == "f":  # parsed by the fast path: every cell was a number
        return cells.where(~(cells.abs() >= OVERLOAD), np.inf), True
    s = cells.astype(str).str.strip().str.strip('"')
    if decimal_comma:
        s = s.where(~s.str.match(_DEC_COMMA), s.str.replace(",", ".", regex=False))
    num = pd.to_numeric(s, errors="coerce").astype(float)
    nonempty = (s != "") & (s.str.lower() != "none")
    n_nonempty = int(nonempty.sum())
    is_numeric = n_nonempty == 0 or num[nonempty].notna().sum() >= 0.5 * n_nonempty
    num = num.where(~(num.abs() >= OVERLOAD), np.inf)  # SCPI overload (+9.9E37): not a reading
    return num, is_numeric


def _find_source(source: str, raw_names: list[str]) -> int | None:
    for i, n in enumerate(raw_names):
        if n == source:
            return i
    for i, n in enumerate(raw_names):
        if n.strip().lower() == source.strip().lower():
            return i
    norm = " ".join(source.split()).lower()
    hits = [i for i, n in enumerate(raw_names) if " ".join(n.split()).lower() == norm]
    if len(hits) == 1:
        return hits[0]
    hits = [i for i, n in enumerate(raw_names) if U.split_column_name(n)[0].lower() == norm]
    return hits[0] if len(hits) == 1 else None


def _convert_columns(raw: pd.DataFrame | list[pd.Series], raw_names: list[str], mapping: dict[str, str],
                     decimal_comma: bool, where: str, warnings: list[str]):
    """Name, convert to SI and type every column.  Returns (frame, source_columns, notes)."""
    out: dict[str, pd.Series] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []  # dimension mismatches, for the missing-column message
    targets_for: dict[int, str] = {}
    for target, source in mapping.items():
        idx = _find_source(source, raw_names)
        if idx is None:
            raise LoadError(
                f"{where}: --map source column {source!r} not found; columns found: "
                f"{', '.join(repr(n) for n in raw_names)}"
            )
        targets_for[idx] = target

    def put(name: str, series: pd.Series, src: str):
        if name in out:
            k = 2
            while f"{name} #{k}" in out:
                k += 1
            same = series.equals(out[name])
            warnings.append(
                f"column {name!r} appears more than once ({sources[name]!r} and {src!r}); "
                f"using the first{' (identical values)' if same else ''}, the other is {name + ' #' + str(k)!r}"
            )
            name = f"{name} #{k}"
        out[name] = series
        sources[name] = src

    for i, rawname in enumerate(raw_names):
        cells = raw[i] if isinstance(raw, list) else raw.iloc[:, i]
        num, is_numeric = _numeric_column(cells, decimal_comma)
        if i in targets_for:
            target = targets_for[i]
            tbase, tunit = U.split_column_name(target)
            _sbase, sunit = U.split_column_name(rawname)
            canon = _canonical_base(tbase) or tbase
            tdim = U.dimension_of(tunit) if tunit else CANONICAL.get(canon)
            # The source's own unit wins unless the target declares a non-SI unit
            # ('Voltage (uV)=V1' says "V1 is in uV").
            sdim = U.dimension_of(sunit)
            unit = tunit
            if sdim is not None and (tdim is None or sdim == tdim) and (
                tunit is None or tunit == U.SI_UNITS.get(sdim)
            ):
                unit = sunit
            if unit is None and tdim:
                unit = U.SI_UNITS[tdim]
            if not is_numeric:
                if tdim:
                    raise LoadError(f"{where}: mapped column {rawname!r} holds text, not numbers")
                put(canon, cells.astype(str).str.strip(), rawname)
                continue
            if unit:
                try:
                    vals, si, dim = U.to_si(num, unit)
                except U.UnitError:
                    raise LoadError(f"{where}: --map {target!r}: unknown unit {unit!r}") from None
                if tdim and dim != tdim:
                    raise LoadError(f"{where}: --map {target!r}={rawname!r}: unit {unit!r} is a {dim}, not a {tdim}")
                put(U.canonical_column(canon, si), vals, rawname)
            else:
                put(canon, num, rawname)
            continue

        base, unit = U.split_column_name(rawname)
        canon = _canonical_base(base)
        if not is_numeric:
            put(canon or base, cells.astype(str).str.strip(), rawname)
            continue
        if canon is not None and CANONICAL.get(canon) is not None:
            want = CANONICAL[canon]
            if unit is None:
                warnings.append(f"column {rawname!r} has no unit; taken as {U.SI_UNITS[want]}")
                unit = U.SI_UNITS[want]
            try:
                vals, si, dim = U.to_si(num, unit)
            except U.UnitError:
                warnings.append(f"column {rawname!r}: unknown unit {unit!r}; values kept as they are")
                notes.append(f"{rawname!r} has unknown unit {unit!r}")
                put(f"{base} ({unit})", num, rawname)
                continue
            if dim != want:
                notes.append(f"{rawname!r} has a {dim} unit, not a {want} unit")
                put(U.canonical_column(base, si), vals, rawname)
                continue
            put(U.canonical_column(canon, si), vals, rawname)
        elif canon is not None:  # dimensionless canonical (Repeat, Polarity, ...)
            put(canon, num, rawname)
        elif unit is not None:
            try:
                vals, si, _dim = U.to_si(num, unit)
                put(U.canonical_column(base, si), vals, rawname)
            except U.UnitError:
                warnings.append(f"column {rawname!r}: unknown unit {unit!r}; values kept as they are")
                put(f"{base} ({unit})", num, rawname)
        else:
            put(base, num, rawname)
    frame = pd.DataFrame(out)
    return frame, sources, notes


def _dimension_of_column(col: str) -> str | None:
    return U.dimension_of(U.split_column_name(col)[1])


def _infer_missing(frame: pd.DataFrame, kind: str, sources: dict[str, str],
                   warnings: list[str]) -> pd.DataFrame:
    """Fill a missing required column from the one numeric column of the same dimension."""
    needed = REQUIRED[kind] + OPTIONAL[kind]
    for col in REQUIRED[kind]:
        if col in frame.columns:
            continue
        if kind == "rt" and col == "Resistance (ohm)":
            continue  # handled from V and I below
        dim = _dimension_of_column(col)
        if dim is None:
            continue
        cands = [c for c in frame.columns
                 if c not in needed and _dimension_of_column(c) == dim
                 and _canonical_base(U.split_column_name(c)[0]) is None
                 and frame[c].dtype.kind == "f" and not c.endswith(tuple(f"#{k}" for k in range(2, 10)))]
        if len(cands) == 1:
            src = cands[0]
            warnings.append(f"using column {sources.get(src, src)!r} as {col!r}")
            frame = frame.rename(columns={src: col})
            sources[col] = sources.pop(src, src)
    return frame


def detect_kind(frame: pd.DataFrame) -> str | None:
    """Guess the kind of data from the (canonical) columns."""
    cols = set(frame.columns)
    dims = {}
    for c in frame.columns:
        d = _dimension_of_column(c)
        if d and frame[c].dtype.kind == "f":
            dims.setdefault(d, []).append(c)
    has = cols.__contains__
    if has("Radius (m)") and has("Field (T)"):
        radii = np.unique(np.round(frame["Radius (m)"].dropna().to_numpy(float), 9))
        if has("Repeat") or (len(radii) <= 5 and has("Current (A)")):
            return "radial-field"
        return "radial-scan"
    if has("Temperature (K)") and has("Resistance (ohm)"):
        return "rt"
    if has("Temperature (K)") and has("Voltage (V)") and has("Current (A)"):
        t = frame["Temperature (K)"].to_numpy(float)
        i = np.abs(frame["Current (A)"].to_numpy(float))
        t_span = np.nanmax(t) - np.nanmin(t) if np.isfinite(t).any() else 0.0
        i_span = np.nanmax(i) - np.nanmin(i) if np.isfinite(i).any() else 0.0
        if t_span > 0.05 * abs(np.nanmean(t)) and i_span <= 0.1 * max(np.nanmax(i), 1e-300):
            return "rt"  # temperature sweep at a fixed current
    if "temperature" in dims and "resistance" in dims:
        return "rt"
    if has("Current (A)") and has("Voltage (V)"):
        n_currents = len(np.unique(np.round(np.abs(frame["Current (A)"].to_numpy(float)), 6)))
        if has("Polarity") and n_currents <= 30:
            return "residual"
        return "vi"
    if "current" in dims and "voltage" in dims and "temperature" not in dims:
        return "vi"
    return None


# ---------------------------------------------------------------------------
# fast path for large, clean comma-separated tables (pymeasure files)
# ---------------------------------------------------------------------------
FAST_TABLES = True  # tests switch it off to compare with the general path
_FAST_MIN_CHARS = 1 << 20  # bytes; below ~1 MB the general path is fast enough
_FAST_HEAD = 256 * 1024  # bytes searched for the header and the start of the table
_FAST_TAIL = 64 * 1024  # bytes giving the last 100 lines (delimiter sample)
# Bytes that would make the general path split or strip a data line differently
# from pandas' C tokenizer: white space other than line ends, quotes, comments, NUL.
_FAST_FORBIDDEN = (b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f", b'"', b"#", b"\x00")


@dataclass
class _FastTable:
    comments: list[str]  # every comment line (all lie before the table)
    content: list[str]  # the content lines before the table (preamble, header row)
    delim: str
    m: int
    start: int  # index of the first data line in the content lines
    columns: list[pd.Series]  # the data columns: float64, or object of non-empty text


def _fast_table(raw: bytes, delimiter: str | None) -> _FastTable | None:
    """The table of a large comma-separated file parsed by pandas' C reader, or None.

    Taken only when the result is provably what the general path gives: the head
    decodes as UTF-8 and everything from the first data line on is ASCII (so the
    file is UTF-8, as ``_decode`` finds); the delimiter, the column count and the
    start of the table are found exactly as there, from the same sample lines;
    from the first data line on there is no white space other than line ends, no
    quote, no '#' and no NUL, so splitting on commas is what ``_split`` does and no
    line is a comment; every row has the same number of non-empty cells; the
    numbers pandas parses equal those of ``pd.to_numeric``, and cells it leaves as
    text go through ``_numeric_column`` as in the general path.  Else: None.
    """
    if len(raw) < _FAST_MIN_CHARS or delimiter not in (None, ",") or b"\x00" in raw[:4096]:
        return None
    head_end = raw.rfind(b"\n", 0, _FAST_HEAD) + 1  # '\n' never occurs inside a UTF-8 sequence
    tail_start = raw.find(b"\n", max(len(raw) - _FAST_TAIL, head_end)) + 1
    if head_end == 0 or tail_start == 0 or tail_start <= head_end:
        return None  # the head and the tail windows must not overlap
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        head = raw[bom:head_end].decode("utf-8")
        tail_text = raw[tail_start:].decode("ascii")
    except UnicodeDecodeError:
        return None
    comments: list[str] = []
    content: list[str] = []
    offsets: list[int] = []  # char offset of each content line in ``head``
    pos = 0
    for ln in head.splitlines(keepends=True):  # whole lines: the head ends with a line end
        body = ln.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        if body.lstrip().startswith("#"):
            comments.append(body)
        elif body.strip():
            content.append(body)
            offsets.append(pos)
        pos += len(ln)
    tail = [ln for ln in tail_text.splitlines() if ln.strip()]
    if len(content) < 300 or len(tail) < 100:
        return None
    head300 = content[:300]
    if delimiter is None:
        delim, m = _delimiter_from_sample(head300 + tail[-100:])
    else:
        delim = ","
        counts: dict[int, int] = {}
        for s in head300:
            f = _split(s, delim)
            if _is_data_like(f, delim):
                counts[len(f)] = counts.get(len(f), 0) + 1
        if not counts:
            return None
        m = max(counts, key=lambda k: (counts[k], k))
    if delim != "," or m < 1:
        return None
    # start of the table: the first good line, if the next two are good too
    start = None
    for i, s in enumerate(content[:-2]):
        if all(len(f) == m and _is_data_like(f, delim) for f in (_split(x, delim) for x in content[i:i + 3])):
            start = i
            break
        f = _split(s, delim)
        if len(f) == m and _is_data_like(f, delim):
            return None  # a shorter first run: let the general path decide
    if start is None:
        return None
    byte_off = bom + len(head[:offsets[start]].encode("utf-8"))
    if int(np.frombuffer(raw, dtype=np.uint8, offset=byte_off).max()) >= 128:
        return None  # not ASCII
    for b in _FAST_FORBIDDEN:
        if raw.find(b, byte_off) != -1:
            return None
    import io
    import warnings as _warnings

    def read(low_memory: bool) -> pd.DataFrame | None:
        buffer = io.BytesIO(raw)  # shares raw's memory; read from the first data line
        buffer.seek(byte_off)
        try:
            with _warnings.catch_warnings():  # mixed types across chunks: read again below, silently
                _warnings.simplefilter("ignore", pd.errors.DtypeWarning)
                return pd.read_csv(buffer, header=None, sep=",", engine="c", na_filter=False,
                                   skip_blank_lines=True, low_memory=low_memory, quoting=csv.QUOTE_NONE)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, MemoryError):
            return None

    # In chunks first (faster); a column that is not numeric in every chunk may mix
    # types across chunks, so then the whole table is read again in one piece.
    frame = read(low_memory=True)
    if frame is not None and any(frame[c].dtype.kind not in "fiu" for c in frame.columns):
        frame = read(low_memory=False)
    if frame is None or frame.shape[1] != m or len(frame) < 3:
        return None
    cols = []
    for k in range(m):
        col = frame.iloc[:, k]
        if col.dtype.kind in "fiu":
            cols.append(col.astype(float))
        elif col.dtype.kind in "OUT" or isinstance(col.dtype, pd.StringDtype):
            obj = col.astype(object)
            if pd.api.types.infer_dtype(obj, skipna=False) != "string" or (obj == "").any():
                return None  # a missing cell: short rows are counted by the general path
            cols.append(obj)
        else:
            return None  # e.g. booleans: the text is gone
    return _FastTable(comments, content[:start], delim, m, start, cols)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def load(path, *, kind: str | None = None, mapping=None, columns=None, skip_rows: int | None = None,
         delimiter: str | None = None, kind_hint: str | None = None) -> Dataset:
    """Load one data file as a :class:`Dataset` in SI units.

    ``mapping``: ``{target: source}`` or ``['Current (A)=I_src', ...]``; a unit in
    the target (``'Voltage (uV)=V1'``) declares the source's unit.  ``columns``:
    names for a file without a header row (``'Temperature (K),Resistance (mohm)'``),
    or to replace the header row.  ``skip_rows``: drop that many lines first.
    ``delimiter``: force one (``','``, ``'\\t'``, ``';'``, ``' '`` for white space).
    """
    path = Path(path)
    where = str(path)
    if kind is not None and kind not in KINDS:
        raise LoadError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if path.is_dir():
        raise LoadError(f"{where}: is a folder; load it with load_run()")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(f"{where}: no such file") from None
    except OSError as exc:
        raise LoadError(f"{where}: cannot read ({exc.strerror or exc})") from None
    fast = _fast_table(raw, delimiter) if FAST_TABLES and not skip_rows else None
    if fast is not None:  # a large clean table (UTF-8): the same result, parsed by pandas
        warnings: list[str] = []
        comments, content = fast.comments, fast.content
    else:
        text, warnings = _decode(raw, path)
        lines = text.splitlines()
        if skip_rows:
            if skip_rows < 0:
                raise LoadError("--skip-rows must be >= 0")
            lines = lines[skip_rows:]
        comments = [ln for ln in lines if ln.lstrip().startswith("#")]
        content = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    procedure, parameters = _parse_comment_header(comments)

    # kind from the procedure (allow-list only: never imported)
    proc_kind = None
    control = False
    if procedure is not None:
        proc_kind = PROCEDURE_KINDS.get(procedure)
        if proc_kind is None:
            warnings.append(
                f"unknown procedure {procedure!r} in the header: loaded as data only (nothing imported)"
            )
        control = procedure == NORMAL_CONTROL_PROCEDURE
    if kind_hint == "normal-control":
        control = True

    if fast is not None:
        delim, m, start = fast.delim, fast.m, fast.start
        before = _split(content[start - 1], delim) if start > 0 else None
    else:
        if not content:
            raise LoadError(f"{where}: no data rows (empty file or comments only)")
        if delimiter is not None:
            delim = None if delimiter in (" ", "whitespace", "space") else delimiter.replace("\\t", "\t")
            counts = {}
            for s in content[:300]:
                f = _split(s, delim)
                if _is_data_like(f, delim):
                    counts[len(f)] = counts.get(len(f), 0) + 1
            if not counts:
                raise LoadError(f"{where}: no numeric rows when split by {_DELIM_NAMES.get(delim, repr(delim))}")
            m = max(counts, key=lambda k: (counts[k], k))
        else:
            delim, m = _choose_delimiter(content)
            if m == 0:
                raise LoadError(f"{where}: no numeric data rows found (is it a data table?)")
        split = [_split(s, delim) for s in content]
        good = [len(f) == m and _is_data_like(f, delim) for f in split]
        # start of the table: first run of >= min(3, longest run) good rows
        runs, i = [], 0
        while i < len(good):
            if good[i]:
                j = i
                while j < len(good) and good[j]:
                    j += 1
                runs.append((i, j - i))
                i = j
            else:
                i += 1
        if not runs:
            raise LoadError(f"{where}: no numeric data rows found")
        longest = max(n for _, n in runs)
        start = next(s for s, n in runs if n >= min(3, longest))
        before = split[start - 1] if start > 0 else None

    header_fields = None
    if start > 0 and not _is_data_like(before, delim):
        header_fields = before
        if len(header_fields) != m and delim is None:
            header_fields = [f.strip() for f in re.split(r"\t|\s{2,}", content[start - 1].strip()) if f.strip()]
        pre = content[: start - 1]
    else:
        pre = content[:start]
    if pre:
        parameters.update(_parse_preamble(pre, delim))
        warnings.append(f"{len(pre)} line(s) before the table were read as metadata, not data")

    names = _parse_columns_option(columns)
    if names is not None:
        if len(names) != m:
            raise LoadError(f"{where}: --columns gives {len(names)} names but the rows have {m} values")
        if header_fields is not None:
            warnings.append("the header row was replaced by --columns")
    elif header_fields is not None:
        if len(header_fields) != m:
            raise LoadError(
                f"{where}: the header row has {len(header_fields)} names but the rows have {m} values "
                f"(delimiter: {_DELIM_NAMES.get(delim, repr(delim))}); give the names with --columns"
            )
        names = [h if h else f"column {k + 1}" for k, h in enumerate(header_fields)]
    else:
        guess_kind = kind or (FILE_KIND_HINTS.get(kind_hint) if kind_hint else None) or proc_kind
        if guess_kind and len(REQUIRED[guess_kind]) == m:
            names = list(REQUIRED[guess_kind])
            warnings.append(f"no header row: columns taken as {', '.join(names)} (SI units assumed)")
        else:
            raise LoadError(
                f"{where}: no header row; give the column names with --columns, "
                f"e.g. --columns 'Temperature (K),Resistance (ohm)' ({m} values per row)"
            )

    # rows
    if fast is not None:
        raw_frame = fast.columns  # every row had m non-empty cells
    else:
        rows = split[start:]
        bad_shape = 0
        fixed = []
        for f in rows:
            if len(f) != m:
                bad_shape += 1
                f = (f + [""] * m)[:m]
            fixed.append(f)
        if bad_shape:
            warnings.append(f"{bad_shape} row(s) with a wrong number of values (truncated or extra cells)")
        raw_frame = pd.DataFrame(fixed, dtype=object)
    frame, sources, notes = _convert_columns(raw_frame, names, _parse_mapping(mapping), delim != ",",
                                             where, warnings)

    # kind
    hint_kind = FILE_KIND_HINTS.get(kind_hint) if kind_hint else None
    chosen = kind or proc_kind or hint_kind
    if chosen is None:
        chosen = detect_kind(frame)
        if chosen is None:
            raise LoadError(
                f"{where}: cannot tell what kind of data this is from its columns "
                f"({', '.join(repr(c) for c in frame.columns)}); give --kind "
                f"({'|'.join(KINDS)}) and, if needed, --map TARGET=SOURCE"
            )
    frame = _infer_missing(frame, chosen, sources, warnings)
    if chosen == "rt" and "Resistance (ohm)" not in frame.columns and {
        "Voltage (V)", "Current (A)"
    } <= set(frame.columns):
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["Resistance (ohm)"] = frame["Voltage (V)"] / frame["Current (A)"]
        warnings.append("no resistance column: R = V / I computed")
    missing = [c for c in REQUIRED[chosen] if c not in frame.columns]
    if missing:
        extra = f" ({'; '.join(notes)})" if notes else ""
        raise LoadError(
            f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} for {chosen} data; "
            f"columns found: {', '.join(repr(sources.get(c, c)) for c in frame.columns)}{extra}; "
            f"needed: {', '.join(repr(c) for c in REQUIRED[chosen])}; "
            f"map one with --map 'TARGET=SOURCE'"
        )
    for c in REQUIRED[chosen]:
        if frame[c].dtype.kind != "f":
            raise LoadError(f"{where}: column {sources.get(c, c)!r} holds text, not numbers")

    # bad rows
    keys = REQUIRED[chosen] + [c for c in _ROW_KEYS if c in frame.columns and frame[c].dtype.kind == "f"]
    arr = frame[keys].to_numpy(dtype=float)
    ok = np.isfinite(arr).all(axis=1)
    nbad = int((~ok).sum())
    if nbad:
        first = int(np.flatnonzero(~ok)[0])
        warnings.append(
            f"dropped {nbad} of {len(frame)} row(s) with missing, non-numeric or non-finite values "
            f"(first: data row {first + 1})"
        )
        frame = frame[ok].reset_index(drop=True)
    for c in frame.columns:
        if frame[c].dtype.kind == "f" and c not in keys:
            col = frame[c].to_numpy(dtype=float)
            if not np.isfinite(col).all():
                frame[c] = np.where(np.isfinite(col), col, np.nan)
    if len(frame) == 0:
        raise LoadError(f"{where}: no usable data rows (all {nbad} rows were bad)")

    return Dataset(frame=frame, kind=chosen, procedure=procedure, parameters=parameters, path=path,
                   warnings=warnings, source_columns=sources, control=control)


_STEP_RE = re.compile(r"^\d+-(?P<kind>[A-Za-z][A-Za-z0-9_-]*)\.(csv|tsv|txt)$")


def step_kind_hint(filename: str) -> str | None:
    m = _STEP_RE.match(filename)
    return m.group("kind").lower() if m else None


def load_run(folder, **options) -> Run:
    """Load every step ``NN-<kind>.csv`` of a run folder (errors are kept per step)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(f"{folder}: not a run folder")
    warnings: list[str] = []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv"))
    if not files:
        raise LoadError(f"{folder}: no data files (*.csv) in the run folder")
    steps: list[tuple[str, Dataset | LoadError]] = []
    for f in files:
        hint = step_kind_hint(f.name)
        try:
            steps.append((f.name, load(f, kind_hint=hint, **options)))
        except LoadError as exc:
            steps.append((f.name, exc))
    meta = {}
    for name in ("station.json", "parameters.json"):
        p = folder / name
        if p.is_file():
            try:
                meta[name] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                warnings.append(f"{name}: unreadable ({exc.__class__.__name__})")
    return Run(path=folder, steps=steps, station=meta.get("station.json"),
               parameters=meta.get("parameters.json"), warnings=warnings)


def as_dataset(obj, **options) -> Dataset:
    """A Dataset as it is, or a path loaded with ``options``; a DataFrame is taken as SI already."""
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, pd.DataFrame):
        kind = options.get("kind") or detect_kind(obj)
        return Dataset(frame=obj.copy(), kind=kind)
    return load(obj, **options)
