"""Provenance of a run: what software, which checkout, where, who, why, and the
station configuration with the unit of every value in its name.

Written to ``station.json`` (key ``provenance``), ``parameters.json`` and the
catalog (``operator``, ``notes``, ``provenance`` columns).
"""
from __future__ import annotations

import getpass
import hashlib
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("pymeasure", "pyvisa", "pyvisa-py", "numpy", "pandas", "scipy", "pydantic", "rich", "matplotlib",
            "platformdirs")
UNITS = {"A", "A/s", "V", "ms", "s", "K", "K/min", "mm", "mm/s", "m", "T", "ohm", "Hz", "V/m"}
# config values whose description names no unit
EXTRA_UNITS = {"sim.temperature": "K", "voltmeter.nplc": "PLC", "station.speedup": "x", "sim.speedup": "x"}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path | None = None) -> dict | None:
    """The checkout labctl runs from (commit, branch, uncommitted changes), or None."""
    root = root or Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None

    def git(*args) -> str:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip())
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        try:
            branch = git("rev-parse", "--abbrev-ref", "HEAD")
        except RuntimeError:
            branch = None
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "branch": branch, "dirty": dirty, "root": str(root)}


def operator_name(given: str | None = None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no login name (container without a passwd entry)
        return "unknown"


def file_sha256(path: str | Path | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _unit(description: str | None) -> str | None:
    if not description:
        return None
    m = re.match(r"^([A-Za-z/]+)(?:$|[,;\s])", description)
    return m.group(1) if m and m.group(1) in UNITS else None


def config_with_units(config) -> dict:
    """Every station configuration value, flattened, with its unit in the name:
    ``{"current_source.limits.max_current (A)": 600.0, "sample.hole_radii (mm)": [...]}``."""
    from pydantic import BaseModel

    out: dict = {}

    def walk(model: BaseModel, prefix: str) -> None:
        for name, info in type(model).model_fields.items():
            if name == "source_path":
                continue
            value = getattr(model, name)
            key = f"{prefix}{name}"
            if isinstance(value, BaseModel):
                walk(value, key + ".")
            elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
                for i, item in enumerate(value):
                    walk(item, f"{key}[{i}].")
            else:
                unit = _unit(info.description) or EXTRA_UNITS.get(key)
                out[f"{key} ({unit})" if unit else key] = value.model_dump() if isinstance(value, BaseModel) else value

    walk(config, "")
    return out


def collect(config=None, operator: str | None = None, notes: list[str] | None = None, command: list[str] | None = None,
            data_home: str | None = None) -> dict:
    """The provenance record of a run started now, in this process."""
    versions = {"labctl": _version("labctl"), "python": platform.python_version()}
    versions.update({name: _version(name) for name in PACKAGES})
    record = {
        "versions": versions,
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "operator": operator_name(operator),
        "notes": list(notes or []),
        "command": list(command if command is not None else sys.argv),
        "data_home": data_home,
    }
    if config is not None:
        record["station_file"] = config.source_path or None
        record["station_file_sha256"] = file_sha256(config.source_path)
        record["station_name"] = config.station.name
        record["sample"] = config.sample.name if config.sample else None
        record["configuration"] = config_with_units(config)
    return record


def flatten(config_dict: dict, prefix: str = "") -> dict:
    """A plain nested dict (a station.json snapshot) flattened to dotted keys."""
    out = {}
    for k, v in config_dict.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "options":
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: dict, new: dict) -> list[str]:
    """``name: old -> new`` for every configuration value that differs (source_path ignored)."""
    a, b = flatten(old), flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key == "source_path" or a.get(key) == b.get(key):
            continue
        lines.append(f"{key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}")
    return lines
