"""Station files: the shipped ones validate; every mistake is one line naming the
file and the key; ``labctl station check`` connects, identifies and exits 0/1/2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.config import ROLES, STATIONS_DIR, load_station
from labctl.errors import ConfigError

SIM = STATIONS_DIR / "sim.toml"
EXAMPLE = STATIONS_DIR / "lab-example.toml"
REPO = Path(__file__).resolve().parents[1]


def sim_text() -> str:
    return SIM.read_text(encoding="utf-8")


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the test's edit no longer applies to sim.toml: {old!r}"
    return text.replace(old, new, 1)


def without_section(text: str, name: str) -> str:
    """Drop [name] and its [name.*] sub-tables."""
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            header = line.strip().strip("[]")
            skip = header == name or header.startswith(name + ".")
        if not skip:
            out.append(line)
    return "".join(out)


# ---------------------------------------------------------------- shipped files
def test_shipped_sim_station_validates():
    cfg = load_station(SIM)
    assert cfg.is_sim
    assert cfg.source_path == str(SIM)
    assert [getattr(cfg, r).driver for r in ROLES] == ["genesys", "keithley2182", "lakeshore336",
                                                       "lakeshore425", "esp300"]
    lim = cfg.current_source.limits
    assert lim.max_current <= 600 and lim.max_ramp_rate <= lim.emergency_ramp_rate
    assert cfg.temperature.limits.min_temperature < cfg.temperature.limits.max_temperature


def test_shipped_lab_example_validates():
    cfg = load_station(EXAMPLE)
    assert not cfg.is_sim and cfg.sim is None
    assert cfg.voltmeter.address == "GPIB0::7::INSTR"
    assert cfg.gaussmeter.address.startswith("ASRL")


def test_default_and_builtin_name(tmp_path, monkeypatch):
    assert load_station(None).source_path == str(SIM)  # no file given: the virtual lab
    monkeypatch.chdir(tmp_path)
    assert load_station("lab-example.toml").source_path == str(EXAMPLE)  # a bare name finds the built-in


# ---------------------------------------------------------------- mistakes
MAX_CURRENT_LINE = next(n for n, line in enumerate(sim_text().splitlines(), 1) if line.startswith("max_current ="))
BAD = {
    "unknown key": (lambda t: replace(t, "axis = 1\n", "axis = 1\nspeed = 3\n"), ["unknown key", "stage.speed"]),
    "misspelt key": (lambda t: replace(t, 'driver = "lakeshore425"', 'drvier = "lakeshore425"'),
                     ["unknown key", "gaussmeter.drvier"]),
    "missing role": (lambda t: without_section(t, "gaussmeter"), ["missing role", "gaussmeter"]),
    "missing limits": (lambda t: without_section(t, "stage.limits"), ["stage.limits"]),
    "bad address": (lambda t: replace(t, "TCPIP0::127.0.0.1::5603::SOCKET", "127.0.0.1:5603"),
                    ["gaussmeter.address", "not a VISA resource name"]),
    "min >= max temperature": (lambda t: replace(t, "min_temperature = 1.0", "min_temperature = 400.0"),
                               ["temperature.limits", "min_temperature"]),
    "emergency rate < max rate": (lambda t: replace(t, "emergency_ramp_rate = 200.0", "emergency_ramp_rate = 10.0"),
                                  ["current_source.limits", "emergency_ramp_rate"]),
    "max_current beyond the supply": (lambda t: replace(t, "max_current = 600.0", "max_current = 700.0"),
                                      ["current_source.limits", "max_current", "600"]),
    "max_current beyond a 6221": (lambda t: replace(t, 'driver = "genesys"', 'driver = "keithley6221"'),
                                  ["max_current", "0.105"]),
    "negative ramp rate": (lambda t: replace(t, "max_ramp_rate = 20.0", "max_ramp_rate = -20.0"),
                           ["current_source.limits.max_ramp_rate"]),
    "driver cannot play the role": (lambda t: replace(t, 'driver = "lakeshore425"', 'driver = "keithley2182"'),
                                    ["gaussmeter", "keithley2182", "lakeshore425"]),
    "stage travel reversed": (lambda t: replace(t, "max_position = 11.0", "max_position = -1.0"),
                              ["stage.limits", "min_position"]),
    "unknown sample": (lambda t: replace(t, 'sample = "Pb"', 'sample = "Unobtainium"'),
                       ["sim.sample", "Unobtainium"]),
    "unknown field model": (lambda t: replace(t, 'field_model = "meissner"', 'field_model = "magic"'),
                            ["sim.field_model", "magic"]),
    "invalid TOML": (lambda t: replace(t, "max_current = 600.0", "max_current = = 600.0"),
                     ["not valid TOML", f"line {MAX_CURRENT_LINE}"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_station_file_is_one_line_naming_file_and_key(tmp_path, case):
    edit, must_contain = BAD[case]
    path = tmp_path / "station.toml"
    path.write_text(edit(sim_text()), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_station(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))  # names the file ...
    for piece in must_contain:  # ... and the key
        assert piece in msg, msg
    assert err.value.exit_code == 2


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "station.toml"
    with pytest.raises(ConfigError) as err:
        load_station(path)
    msg = str(err.value)
    assert str(path) in msg and "not found" in msg and "\n" not in msg
    assert "sim.toml" in msg  # and lists the built-in stations


def test_binary_file(tmp_path):
    path = tmp_path / "station.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="station.toml"):
        load_station(path)


# ---------------------------------------------------------------- labctl station check
def run_labctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_station_check_sim_all_roles_answer():
    proc = run_labctl("station", "check")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for role in ROLES:
        assert role in out
    for identity in ("LAMBDA,GEN8-600", "MODEL 2182A", "MODEL336", "MODEL425", "ESP300 Version"):
        assert identity in out
    assert "all five roles answered" in out
    assert "Traceback" not in proc.stderr


def test_station_check_unreachable_address(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(replace(sim_text(), "TCPIP0::127.0.0.1::5603::SOCKET", "TCPIP0::127.0.0.1::5699::SOCKET"),
                    encoding="utf-8")
    proc = run_labctl("station", "check", "--station", str(path))
    assert proc.returncode == 1
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    line = next(ln for ln in err.splitlines() if "gaussmeter" in ln)
    assert "TCPIP0::127.0.0.1::5699::SOCKET" in line
    assert "read='\\r\\n'" in line and "write='\\r\\n'" in line  # the terminations in use
    # the other four still answered and are listed with their identities
    assert "MODEL 2182A" in proc.stdout and "LAMBDA,GEN8-600" in proc.stdout
    assert "all five roles answered" not in proc.stdout


def test_station_check_bad_config(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(replace(sim_text(), "min_temperature = 1.0", "min_temperature = 400.0"), encoding="utf-8")
    proc = run_labctl("station", "check", "--station", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "min_temperature" in lines[0]


def test_station_check_missing_file(tmp_path):
    proc = run_labctl("station", "check", "--station", str(tmp_path / "absent.toml"))
    assert proc.returncode == 2
    assert "absent.toml" in proc.stderr and "Traceback" not in proc.stderr
