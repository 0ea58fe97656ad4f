"""Provenance on every run (station.json, parameters.json, catalog) and the one data
home that every command finds the same way from any folder."""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import datadir
from labctl.config import DEFAULT_STATION, load_station
from labctl.provenance import collect, config_differences, config_with_units

REPO = Path(__file__).resolve().parents[1]


def labctl(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "labctl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, **(env or {})}, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    data = tmp_path_factory.mktemp("prov")
    res = labctl("run", "radial-field", "--set", "ic=300", "--set", "repeats=1", "--quiet", "--data-dir", data,
                 "--operator", "alice", "--note", "probe re-glued", "--note", "second cool-down")
    assert res.returncode == 0, res.stderr
    run_id, _, path = res.stdout.split()[-3:]
    return data, run_id, Path(path)


def test_station_json_holds_the_provenance(recorded):
    _, _, run_dir = recorded
    prov = json.loads((run_dir / "station.json").read_text())["provenance"]
    versions = prov["versions"]
    for name in ("labctl", "python", "pymeasure", "pyvisa", "numpy", "pandas", "scipy", "pydantic"):
        assert versions[name], name
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert prov["git"]["commit"] == head.stdout.strip() and isinstance(prov["git"]["dirty"], bool)
    assert prov["host"] == socket.gethostname()
    assert prov["operator"] == "alice"
    assert prov["notes"] == ["probe re-glued", "second cool-down"]
    assert prov["station_file"] == str(DEFAULT_STATION)
    assert prov["station_file_sha256"] == hashlib.sha256(DEFAULT_STATION.read_bytes()).hexdigest()
    assert "--operator" in prov["command"]
    cfg = prov["configuration"]
    for key in ("current_source.limits.max_current (A)", "current_source.limits.max_ramp_rate (A/s)",
                "current_source.timeout (ms)", "temperature.limits.max_temperature (K)",
                "temperature.limits.max_ramp_rate (K/min)", "stage.limits.max_position (mm)",
                "sample.radius (m)", "sample.tap_spacing (m)", "sample.hole_radii (mm)", "voltmeter.nplc (PLC)"):
        assert key in cfg, key
    assert cfg["sample.radius (m)"] == pytest.approx(0.01) and cfg["sample.hole_radii (mm)"][-1] == 10.0


def test_parameters_json_and_the_catalog_hold_it_too(recorded):
    data, run_id, run_dir = recorded
    state = json.loads((run_dir / "parameters.json").read_text())
    assert state["provenance"]["operator"] == "alice"
    settings = state["steps"]["radial-field"]["settings"]
    assert settings["Critical current (A)"] == 300 and "Stability dwell (s)" in settings
    csv = run_dir / state["steps"]["radial-field"]["file"]
    rows = [ln for ln in csv.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert state["steps"]["radial-field"]["rows"] == len(rows) - 1
    conn = sqlite3.connect(data / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone())
    conn.close()
    assert row["operator"] == "alice" and row["notes"] == "probe re-glued\nsecond cool-down"
    assert row["sample"] == "Pb" and row["station"] == "virtual lab"
    assert json.loads(row["provenance"])["versions"]["pymeasure"]
    log = (run_dir / "run.log").read_text()
    assert f"run {run_id} start:" in log and "operator alice" in log and "note: probe re-glued" in log
    assert "step radial-field start" in log and f"run {run_id} end: completed" in log


def test_operator_defaults_to_the_login_name():
    try:
        expected = getpass.getuser()
    except Exception:
        expected = "unknown"
    assert collect(load_station(None))["operator"] == expected


def test_an_old_catalog_gains_the_new_columns(tmp_path):
    from labctl.catalog import Catalog

    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    conn.executescript("CREATE TABLE runs (id TEXT PRIMARY KEY, parent TEXT, kind TEXT NOT NULL, started TEXT NOT NULL,"
                       " ended TEXT, status TEXT NOT NULL, reason TEXT, sim INTEGER NOT NULL, parameters TEXT,"
                       " path TEXT, checksum TEXT, pid INTEGER, host TEXT);"
                       "INSERT INTO runs VALUES ('old', NULL, 'vi', '2026-01-01', '2026-01-01', 'completed', '', 1,"
                       " '{}', '/x', NULL, 1, 'h');")
    conn.commit()
    conn.close()
    cat = Catalog(tmp_path)
    cat.start("new", "rt", True, {}, "/y", sample="Nb", station="s", operator="bob", notes=["n"])
    assert cat.get("old")["operator"] is None and cat.get("new")["operator"] == "bob"


def test_config_differences_name_each_value():
    a = load_station(None).model_dump(mode="json")
    b = json.loads(json.dumps(a))
    b["current_source"]["limits"]["max_current"] = 50.0
    b["station"]["backend"] = "@py"
    assert config_differences(a, b) == ["current_source.limits.max_current: 600.0 -> 50.0",
                                        "station.backend: 'sim' -> '@py'"]


def test_units_are_in_every_dimensional_name():
    cfg = config_with_units(load_station(None))
    assert cfg["temperature.heater_resistance (ohm)"] == 25
    # a bare name holds text, a count, a switch or a code; every real number carries its unit
    bare_floats = [k for k, v in cfg.items() if "(" not in k and isinstance(v, float)]
    assert not bare_floats, bare_floats


# ----------------------------------------------------------------------------- data home
def test_data_home_order(tmp_path, monkeypatch):
    station = tmp_path / "cryo" / "lab.toml"
    station.parent.mkdir()
    text = DEFAULT_STATION.read_text().replace('data_dir = "data/runs"', 'data_dir = "measurements"')
    station.write_text(text)
    config = load_station(station)
    monkeypatch.setenv("LABCTL_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    assert datadir.resolve("given", config).path == tmp_path / "given"
    home = datadir.resolve(None, config)
    assert home.path == tmp_path / "cryo" / "measurements" and "station file" in home.source
    assert datadir.resolve(None, load_station(None)).path == tmp_path / "env"  # built-in station: no data home
    monkeypatch.delenv("LABCTL_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert datadir.resolve(None, None).path == tmp_path / "xdg" / "labctl" / "runs"


def test_a_station_files_data_dir_is_found_from_any_folder(tmp_path):
    station = tmp_path / "cryo" / "lab.toml"
    station.parent.mkdir()
    station.write_text(DEFAULT_STATION.read_text())  # data_dir = "data/runs": relative to cryo/
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"LABCTL_DATA": str(tmp_path / "not-here")}
    res = labctl("run", "radial-field", "--station", station, "--set", "ic=300", "--set", "repeats=1", "--quiet",
                 cwd=elsewhere, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1].startswith(str(tmp_path / "cryo" / "data" / "runs"))
    listings = [labctl("runs", "--station", station, "--json", cwd=cwd, env=env).stdout for cwd in (elsewhere, REPO)]
    assert listings[0] == listings[1] and len(json.loads(listings[0])) == 1


def test_every_command_says_which_data_home_it_used_when_empty(tmp_path):
    env = {"LABCTL_DATA": "", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    home = tmp_path / "xdg" / "labctl" / "runs"
    res = labctl("runs", env=env, cwd=tmp_path)
    assert res.returncode == 0 and f"no runs yet in {home}" in res.stderr
    for args in (["report", "latest"], ["analyze", "latest"], ["replay", "latest"], ["resume", "nothing"]):
        res = labctl(*args, env=env, cwd=tmp_path)
        assert res.returncode == 2, (args, res)
        assert str(home) in res.stderr and len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
