"""``labctl export RUN --format nexus|csv|events``: a run in the formats other communities open.

* ``nexus``: one NeXus/HDF5 file; one NXentry per step with NXdata (every column, with its
  unit), the step's parameters (NXparameters), the sample (NXsample), the operator (NXuser),
  labctl (NXprocess) and the station snapshot (NXinstrument: one NXcollection per role with
  driver, address, identity and the configuration values, plus station.json verbatim).
  The R(T) and V–I steps are laid out after the FAIRmat NXiv_temp application definition
  (``definition = NXiv_temp``; NXenvironment with ``temperature_controller``,
  ``voltage_controller`` and ``current_sensor`` NXsensors; NXdata with ``temperature``,
  ``voltage`` and ``current``).  In this experiment the current is sourced and the voltage
  measured; the sensors' ``run_control`` / ``measurement`` fields say so.
* ``events``: bluesky event-model documents as JSON lines (``[name, document]`` per line):
  one RunStart, one EventDescriptor per step (stream = the step's name), one Event per row,
  one RunStop.  Composed with event-model's own ``compose_*`` (schema-validated).
* ``csv``: a folder of pymeasure-format CSVs that stock pymeasure's ``Results.load`` opens
  without labctl installed (the header names ``pymeasure.experiment.procedure.Procedure``;
  labctl's procedure is kept in a ``#labctl procedure:`` comment line, which pymeasure skips),
  with station.json and parameters.json beside them.

Reading a run never imports or runs code named in it (the header is parsed as text).
"""
from __future__ import annotations

import json
import math
import re
import shutil
from datetime import datetime
from pathlib import Path

from labctl.errors import ConfigError
from labctl.runner import STOCK_PROCEDURE  # the header the runner writes

FORMATS = ("nexus", "csv", "events")
_COL_RE = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
IV_STEPS = ("rt", "vi")
ATOMS = {"Pb": "Pb", "Sn": "Sn", "In": "In", "Al": "Al", "Nb": "Nb", "MgB2": "Mg,B", "YBCO": "Y,Ba,Cu,O",
         "Bi-2223": "Bi,Sr,Ca,Cu,O", "Hg-1223": "Hg,Ba,Ca,Cu,O"}
UNIT_NAMES = {"ohm": "ohm", "Ω": "ohm", "µT": "uT", "µV": "uV"}


# ---------------------------------------------------------------------------
# reading a run (text only)
# ---------------------------------------------------------------------------
class StepData:
    def __init__(self, name: str, path: Path, procedure: str | None, parameters: dict[str, str],
                 frame, info: dict | None):
        self.name, self.path, self.procedure, self.parameters = name, path, procedure, parameters
        self.frame, self.info = frame, info or {}

    @property
    def kind(self) -> str:
        """The step's kind: parameters.json, else the procedure named in the header (allow-list, never imported)."""
        from labctl.analysis.loading import NORMAL_CONTROL_PROCEDURE, PROCEDURE_KINDS

        if self.info.get("kind"):
            return self.info["kind"]
        if self.procedure == NORMAL_CONTROL_PROCEDURE:
            return "normal-control"
        return PROCEDURE_KINDS.get(self.procedure or "") or self.name


def split_column(column: str) -> tuple[str, str]:
    """'Temperature (K)' -> ('Temperature', 'K'); 'Direction' -> ('Direction', '')."""
    m = _COL_RE.match(column)
    return (m.group("name"), m.group("unit")) if m else (column, "")


def field_name(label: str) -> str:
    """A NeXus/HDF5-safe field name: 'Field std' -> 'field_std', 'V+' -> 'v_plus'."""
    text = label.replace("+", "_plus").replace("-", "_minus") if label in ("V+", "V-") else label
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return text or "column"


def read_header(path: Path) -> tuple[str | None, dict[str, str], int]:
    """(procedure named in the header, parameters 'Label' -> 'value unit', header line count)."""
    procedure, params, n = None, {}, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            n += 1
            text = line[1:].rstrip("\r\n")
            if text.startswith(("Procedure:", "labctl procedure:")):
                m = re.search(r"<([^>]*)>", text)
                if m and (text.startswith("labctl") or procedure is None):  # labctl's own name wins
                    procedure = m.group(1)
            elif text.startswith("\t") and ": " in text:
                key, _, value = text[1:].partition(": ")
                params[key] = value
    return procedure, params, n


def read_step(path: Path, name: str, info: dict | None = None) -> StepData:
    import pandas as pd

    procedure, params, _ = read_header(path)
    try:
        frame = pd.read_csv(path, comment="#")
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    return StepData(name, path, procedure, params, frame, info)


def read_run(path: Path) -> tuple[list[StepData], dict, dict]:
    """(steps, parameters.json, station.json) of a run folder or a single data file."""
    path = Path(path)
    if path.is_file():
        from labctl.analysis.loading import step_kind_hint

        step = read_step(path, step_kind_hint(path.name) or path.stem)
        step.name = step.kind if step.kind != step.name else step.name
        return [step], {}, {}
    state = _json(path / "parameters.json")
    station = _json(path / "station.json")
    by_file = {info.get("file"): (name, info) for name, info in (state.get("steps") or {}).items()}
    steps = []
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv"):
        name, info = by_file.get(f.name, (re.sub(r"^\d+-", "", f.stem), {}))
        steps.append(read_step(f, name, info))
    if not steps:
        raise ConfigError(f"{path}: no step files (*.csv) to export")
    return steps, state, station


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _numeric(series) -> bool:
    return series.dtype.kind in "fiub"


def _run_times(state: dict, folder: Path) -> tuple[str | None, str | None]:
    """ISO start/end (with UTC offset) from run.log or the catalog entry next to the run."""
    start = end = None
    log = folder / "run.log" if folder.is_dir() else None
    if log is not None and log.is_file():
        stamps = []
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)", line)
            if m:
                stamps.append(m.group(1).replace(" ", "T"))
        if stamps:
            tz = datetime.now().astimezone().strftime("%z")
            tz = tz[:3] + ":" + tz[3:]
            start, end = stamps[0] + tz, stamps[-1] + tz
    return start, end


# ---------------------------------------------------------------------------
# NeXus
# ---------------------------------------------------------------------------
def _str(group, name: str, value) -> None:
    group.create_dataset(name, data=str(value))


def _write_column(group, label: str, unit: str, series, used: set) -> str | None:
    import numpy as np

    name = field_name(label)
    base, k = name, 2
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    if _numeric(series):
        ds = group.create_dataset(name, data=series.to_numpy(dtype=float))
        if unit:
            ds.attrs["units"] = UNIT_NAMES.get(unit, unit)
    else:
        values = np.array([str(v) for v in series.fillna("").tolist()], dtype=object)
        import h5py

        ds = group.create_dataset(name, data=values, dtype=h5py.string_dtype())
    ds.attrs["long_name"] = f"{label} ({unit})" if unit else label
    return name


def _sensor(env, name: str, role: str, station: dict, measurement: str, run_control: str, value=None,
            unit: str = "") -> None:
    s = env.create_group(name)
    s.attrs["NX_class"] = "NXsensor"
    inst = (station.get("instruments") or {}).get(role, {})
    cfg = (station.get("config") or {}).get(role, {})
    _str(s, "name", f"{role}: {inst.get('identity') or cfg.get('driver') or role}")
    _str(s, "model", cfg.get("driver") or inst.get("driver") or "")
    _str(s, "measurement", measurement)
    _str(s, "run_control", run_control)
    if value is not None:
        ds = s.create_dataset("value", data=value)
        if unit:
            ds.attrs["units"] = unit


def _station_snapshot(inst, station: dict) -> None:
    """One NXcollection per role: driver, address, identity, every configuration value; station.json verbatim."""
    _str(inst, "name", (station.get("config") or {}).get("station", {}).get("name", "station"))
    coll = inst.create_group("station_snapshot")
    coll.attrs["NX_class"] = "NXcollection"
    _str(coll, "station_json", json.dumps(station, indent=1, default=str))
    config = station.get("config") or {}
    instruments = station.get("instruments") or {}
    for role in ("current_source", "voltmeter", "temperature", "gaussmeter", "stage"):
        cfg = config.get(role)
        if not isinstance(cfg, dict):
            continue
        g = coll.create_group(role)
        g.attrs["NX_class"] = "NXcollection"
        ident = (instruments.get(role) or {}).get("identity")
        if ident:
            _str(g, "identity", ident)
        _flatten_into(g, cfg)


_CONFIG_UNITS = {"max_current": "A", "max_ramp_rate": None, "emergency_ramp_rate": "A/s", "ramp_step": "A",
                 "compliance_voltage": "V", "timeout": "ms", "quench_voltage": "V", "min_temperature": "K",
                 "max_temperature": "K", "max_field": "T", "min_position": "mm", "max_position": "mm",
                 "max_velocity": "mm/s", "velocity": "mm/s", "radius_offset": "mm"}


def _flatten_into(group, cfg: dict, prefix: str = "") -> None:
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten_into(group, value, name + "_")
            continue
        if isinstance(value, bool) or value is None or isinstance(value, (list, str)):
            _str(group, field_name(name), json.dumps(value) if not isinstance(value, str) else value)
            continue
        ds = group.create_dataset(field_name(name), data=value)
        unit = _CONFIG_UNITS.get(key)
        if key == "max_ramp_rate":
            unit = "K/min" if "temperature" in group.name else "A/s"
        if unit:
            ds.attrs["units"] = unit


def _parameters(entry, step: StepData) -> None:
    g = entry.create_group("parameters")
    g.attrs["NX_class"] = "NXparameters"
    used: set = set()
    for label, text in step.parameters.items():
        name = field_name(label)
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        parts = text.split(" ", 1)
        try:
            value = float(parts[0])
            ds = g.create_dataset(name, data=value)
            if len(parts) > 1 and parts[1].strip():
                ds.attrs["units"] = parts[1].strip()
        except ValueError:
            ds = g.create_dataset(name, data=text)
        ds.attrs["long_name"] = label


def write_nexus(folder: Path, out: Path) -> Path:
    import h5py
    import numpy as np

    steps, state, station = read_run(folder)
    sample = (station.get("config") or {}).get("sample") or {}
    sample_name = sample.get("name") or (station.get("sim") or {}).get("sample") or "sample"
    start, end = _run_times(state, Path(folder))
    from labctl.cli_params import _version

    operator = ((state.get("provenance") or {}).get("operator")
                or ((station.get("provenance") or {}).get("operator")) or "")
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["file_name"] = out.name
        f.attrs["file_time"] = datetime.now().astimezone().isoformat(timespec="seconds")
        f.attrs["creator"] = f"labctl {_version()}"
        f.attrs["HDF5_Version"] = h5py.version.hdf5_version
        f.attrs["h5py_version"] = h5py.version.version
        first = None
        for k, step in enumerate(steps, 1):
            name = f"entry{k}_{field_name(step.name)}"
            first = first or name
            e = f.create_group(name)
            e.attrs["NX_class"] = "NXentry"
            e.attrs["default"] = "data"
            iv = step.kind in IV_STEPS
            _str(e, "definition", "NXiv_temp" if iv else "NXsensor_scan")
            _str(e, "title", f"{state.get('id') or Path(folder).name} — {step.name}")
            _str(e, "identifier_experiment", state.get("id") or Path(folder).name)
            _str(e, "experiment_description",
                 {"rt": "four-probe R(T) through Tc (current reversal cancels thermal EMFs)",
                  "vi": "V–I sweep at the working temperature (Ic by Ec = 1 µV/cm, n-value)",
                  "normal-control": "B at r1, r2, r3 above Tc (uniform current: ratios √2 and 2)",
                  "radial-field": "B at r1, r2, r3 below Tc per current, reversed to cancel the Hall offset",
                  "radial-scan": "B(r) at many radii (J(r) by inversion)",
                  "residual": "residual tap voltage vs total current"}.get(step.kind, step.kind))
            _str(e, "status", step.info.get("status") or state.get("status") or "")
            if start:
                _str(e, "start_time", start)
            if end:
                _str(e, "end_time", end)
            proc = e.create_group("process")
            proc.attrs["NX_class"] = "NXprocess"
            ds = proc.create_dataset("program", data="labctl")
            ds.attrs["version"] = _version()
            _str(proc, "procedure", step.procedure or "")
            user = e.create_group("user")
            user.attrs["NX_class"] = "NXuser"
            _str(user, "name", operator or "unknown")
            s = e.create_group("sample")
            s.attrs["NX_class"] = "NXsample"
            _str(s, "name", sample_name)
            _str(s, "atom_types", ATOMS.get(sample_name, sample_name))
            for key, unit in (("radius", "m"), ("tap_spacing", "m"), ("expected_tc", "K")):
                if isinstance(sample.get(key), (int, float)):
                    ds = s.create_dataset(key, data=float(sample[key]))
                    ds.attrs["units"] = unit
            inst = e.create_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            _station_snapshot(inst, station)
            frame = step.frame
            cols = {split_column(c)[0]: (c, split_column(c)[1]) for c in frame.columns}
            if iv:
                env = inst.create_group("environment")
                env.attrs["NX_class"] = "NXenvironment"
                t = cols.get("Temperature")
                v = cols.get("Voltage")
                i = cols.get("Current read") or cols.get("Current")
                _sensor(env, "temperature_controller", "temperature", station, "temperature",
                        "independent: setpoint held (V–I) or ramped (R(T)), sample temperature read",
                        frame[t[0]].to_numpy(float) if t else None, "K")
                _sensor(env, "voltage_controller", "voltmeter", station, "voltage",
                        "measured across the voltage taps (this experiment sources the current)",
                        frame[v[0]].to_numpy(float) if v else None, "V")
                _sensor(env, "current_sensor", "current_source", station, "current",
                        "sourced and read back by the current source",
                        frame[i[0]].to_numpy(float) if i else None, "A")
                _str(env, "independent_controllers", "temperature_controller current_sensor")
                _str(env, "measurement_sensors", "voltage_controller")
            note = e.create_group("notes")
            note.attrs["NX_class"] = "NXnote"
            _str(note, "type", "text/plain")
            notes = (state.get("provenance") or {}).get("notes") or []
            _str(note, "data", "\n".join(notes) if isinstance(notes, list) else str(notes))
            _parameters(e, step)
            d = e.create_group("data")
            d.attrs["NX_class"] = "NXdata"
            used: set = set()
            names = {}
            for col in frame.columns:
                label, unit = split_column(col)
                names[label] = _write_column(d, label, unit, frame[col], used)
            signal, axis = {"rt": ("resistance", "temperature"), "vi": ("voltage", "current"),
                            "radial-field": ("field", "radius"), "normal-control": ("field", "radius"),
                            "radial-scan": ("field", "radius"), "residual": ("voltage", "current")}.get(
                step.kind, (None, None))
            if signal not in used:
                signal = next((n for n in names.values() if n and d[n].dtype.kind == "f"), None)
            if axis not in used:
                axis = None
            if signal:
                d.attrs["signal"] = signal
            if axis:
                d.attrs["axes"] = axis
                d.attrs[f"{axis}_indices"] = 0
            if iv:  # NXiv_temp requires temperature, voltage and current in NXdata
                for req, label in (("temperature", "Temperature"), ("voltage", "Voltage"), ("current", "Current")):
                    if req not in d:
                        ds = d.create_dataset(req, data=np.full(len(frame), np.nan))
                        ds.attrs["long_name"] = f"{label} (not recorded by this step)"
        if first:
            f.attrs["default"] = first
    return out


# ---------------------------------------------------------------------------
# bluesky event-model documents
# ---------------------------------------------------------------------------
def _dtype(series) -> str:
    if series.dtype.kind in "iu":
        return "integer"
    if series.dtype.kind == "f":
        return "number"
    if series.dtype.kind == "b":
        return "boolean"
    return "string"


def _value(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def event_documents(folder: Path) -> list[tuple[str, dict]]:
    """The run as event-model documents, composed (and schema-validated) by event-model itself."""
    import time as _time

    import event_model

    steps, state, station = read_run(folder)
    start_iso, _end = _run_times(state, Path(folder))
    t0 = _time.time()
    if start_iso:
        try:
            t0 = datetime.fromisoformat(start_iso).timestamp()
        except ValueError:
            pass
    sample = (station.get("config") or {}).get("sample") or {}
    meta = {"plan_name": f"labctl {state.get('kind') or 'run'}", "labctl_run_id": state.get("id") or Path(folder).name,
            "sample": sample.get("name") or (station.get("sim") or {}).get("sample"),
            "station": (station.get("config") or {}).get("station", {}).get("name"),
            "labctl_status": state.get("status"), "labctl_reason": state.get("reason") or "",
            "derived": state.get("derived") or {}, "plan": state.get("plan") or {},
            "operator": (state.get("provenance") or {}).get("operator")}
    meta = json.loads(json.dumps(meta, default=str))
    bundle = event_model.compose_run(time=t0, metadata={k: v for k, v in meta.items() if v is not None})
    docs: list[tuple[str, dict]] = [("start", bundle.start_doc)]
    config = station.get("config") or {}
    last = t0
    for step in steps:
        frame = step.frame
        if frame.empty:
            continue
        keys = {}
        fields = {}
        for col in frame.columns:
            label, unit = split_column(col)
            key = field_name(label)
            base, k = key, 2
            while key in fields.values():
                key, k = f"{base}_{k}", k + 1
            fields[col] = key
            dk = {"source": f"labctl:{step.name}:{col}", "dtype": _dtype(frame[col]), "shape": []}
            if unit:
                dk["units"] = unit
            keys[key] = dk
        configuration = {"station": {"data": {role: json.dumps(config.get(role), default=str)
                                              for role in ("current_source", "voltmeter", "temperature",
                                                           "gaussmeter", "stage") if role in config},
                                     "timestamps": {}, "data_keys": {}},
                         "parameters": {"data": dict(step.parameters), "timestamps": {}, "data_keys": {}}}
        for block in configuration.values():
            block["timestamps"] = {k: t0 for k in block["data"]}
            block["data_keys"] = {k: {"source": "labctl", "dtype": "string", "shape": []} for k in block["data"]}
        desc = bundle.compose_descriptor(name=step.name, data_keys=keys, configuration=configuration,
                                         hints={step.name: {"fields": list(keys)[:4]}}, time=last)
        docs.append(("descriptor", desc.descriptor_doc))
        times = frame["Time (s)"].to_numpy(float) if "Time (s)" in frame.columns else None
        step_t0 = last
        for k, row in enumerate(frame.itertuples(index=False, name=None)):
            t = step_t0 + (float(times[k]) if times is not None and math.isfinite(times[k]) else k)
            last = max(last, t)
            data = {fields[c]: _value(v) for c, v in zip(frame.columns, row)}
            data = {key: ("" if v is None and keys[key]["dtype"] == "string" else v) for key, v in data.items()}
            docs.append(("event", desc.compose_event(data=data, timestamps={key: t for key in data}, time=t,
                                                     seq_num=k + 1)))
    status = state.get("status")
    exit_status = {"completed": "success", "aborted": "abort", "failed": "fail", "interrupted": "fail"}.get(
        status, "success")
    docs.append(("stop", bundle.compose_stop(exit_status=exit_status, reason=state.get("reason") or "", time=last)))
    return docs


def write_events(folder: Path, out: Path) -> Path:
    docs = event_documents(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for name, doc in docs:
            f.write(json.dumps([name, doc], default=str, allow_nan=False) + "\n")
    return out


# ---------------------------------------------------------------------------
# stock-pymeasure CSV
# ---------------------------------------------------------------------------
def stock_csv_text(path: Path) -> str:
    """The file with a header stock pymeasure's ``Results.load`` opens anywhere (no labctl needed)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("#Procedure:"):
            m = re.search(r"<([^>]*)>", line)
            out.append(f"#Procedure: <{STOCK_PROCEDURE}>\n")
            if m and m.group(1) != STOCK_PROCEDURE:
                out.append(f"#labctl procedure: <{m.group(1)}>\n")
            continue
        out.append(line)
    return "".join(out)


def write_csv(folder: Path, out: Path) -> Path:
    folder = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv")
    for f in files:
        (out / f.name).write_text(stock_csv_text(f), encoding="utf-8")
    if folder.is_dir():
        for extra in ("station.json", "parameters.json", "run.log"):
            if (folder / extra).is_file():
                shutil.copy2(folder / extra, out / extra)
    return out


def export(run, fmt: str = "nexus", output=None, data_dir=None) -> Path:
    """Export a run folder / file / run id / 'latest' as ``fmt``; returns the path written."""
    fmt = (fmt or "nexus").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose nexus, csv or events")
    path = Path(run)
    if not path.exists():
        from labctl.report import resolve_run

        path = resolve_run(run, data_dir)
    stem = path.name if path.is_dir() else path.stem
    default = {"nexus": path.parent / f"{stem}.nxs", "events": path.parent / f"{stem}.events.jsonl",
               "csv": path.parent / f"{stem}-csv"}[fmt]
    out = Path(output) if output else default
    if fmt == "nexus":
        return write_nexus(path, out)
    if fmt == "events":
        return write_events(path, out)
    return write_csv(path, out)


def _cli(args) -> int:
    written = []
    for fmt in args.format or ["nexus"]:
        out = args.output
        if out and len(args.format or []) > 1:
            out = None  # several formats: each beside the run
        written.append(export(args.run, fmt, out, args.data_dir))
    for p in written:
        print(p)
    return 0


def register(sub) -> None:
    import argparse

    p = sub.add_parser("export", help="write a run as NeXus/HDF5, bluesky event documents or stock-pymeasure CSV",
                       description="Export a run for other tools: nexus (HDF5, NXentry/NXdata with units and "
                                   "the station snapshot; R(T) and V–I after NXiv_temp), events (bluesky "
                                   "event-model documents, JSON lines), csv (pymeasure CSVs that stock "
                                   "pymeasure opens without labctl).",
                       epilog="examples:\n  labctl export latest --format nexus\n"
                              "  labctl export data/examples/protocol_Pb_meissner --format events -o run.jsonl\n"
                              "  labctl export RUN --format csv --format nexus",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder, data file, run id in the data home, or 'latest'")
    p.add_argument("--format", action="append", choices=FORMATS, type=str.lower,
                   help="nexus (default), csv or events; repeat for several")
    p.add_argument("-o", "--output", help="file (nexus, events) or folder (csv) to write; default: beside the run")
    p.add_argument("--data-dir", help="where run ids are looked up (default: the data home)")
    p.set_defaults(func=_cli)
