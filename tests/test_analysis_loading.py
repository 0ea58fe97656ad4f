"""Loading: pymeasure-format and foreign files, units, mapping, bad files, no imports."""
from __future__ import annotations

import builtins
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.analysis import AnalysisError, LoadError, analyze_dataset, load, load_run
from labctl.analysis.units import parse_quantity, split_column_name
from labctl.errors import LabctlError

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_pymeasure(path: Path, procedure: str, params: dict, header: list[str], rows: list[list]) -> Path:
    lines = [f"#Procedure: <{procedure}>", "#Parameters:"]
    lines += [f"#\t{k}: {v}" for k, v in params.items()]
    lines += ["#Data:", ",".join(header)]
    lines += [",".join(str(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "column, other, value, canonical, si",
    [
        ("Voltage (uV)", "Current (A)", 5.0, "Voltage (V)", 5e-6),
        ("Voltage (µV)", "Current (A)", 5.0, "Voltage (V)", 5e-6),
        ("Voltage (μV)", "Current (A)", 5.0, "Voltage (V)", 5e-6),  # Greek mu
        ("Voltage (mV)", "Current (A)", 5.0, "Voltage (V)", 5e-3),
        ("Current (mA)", "Voltage (V)", 250.0, "Current (A)", 0.25),
        ("Current (kA)", "Voltage (V)", 2.5, "Current (A)", 2500.0),
        ("Temperature (mK)", "Resistance (ohm)", 7196.0, "Temperature (K)", 7.196),
        ("Resistance (mohm)", "Temperature (K)", 2.0, "Resistance (ohm)", 2e-3),
        ("Resistance (mΩ)", "Temperature (K)", 2.0, "Resistance (ohm)", 2e-3),
    ],
)
def test_unit_columns_convert_to_si(tmp_path, column, other, value, canonical, si):
    p = tmp_path / "d.csv"
    rows = "\n".join(f"{value * (1 + k * 0.01)},{k + 1.0}" for k in range(10))
    p.write_text(f"{column},{other}\n{rows}\n", encoding="utf-8")
    ds = load(p)
    assert canonical in ds.frame.columns
    assert ds.frame[canonical].iloc[0] == pytest.approx(si, rel=1e-12)


@pytest.mark.parametrize(
    "column, value, canonical, si",
    [("Field (G)", 20.0, "Field (T)", 2e-3), ("Field (mT)", 2.0, "Field (T)", 2e-3),
     ("Radius (mm)", 5.0, "Radius (m)", 5e-3)],
)
def test_field_and_radius_units(tmp_path, column, value, canonical, si):
    p = tmp_path / "d.csv"
    cols = {"Field (T)": "0.001", "Radius (m)": "0.005"}
    header = ["Current (A)", "Repeat", column] + [c for c in cols if c != canonical]
    body = []
    for k in range(6):
        row = ["100", "0", str(value)] + [cols[c] for c in cols if c != canonical]
        body.append(",".join(row))
    p.write_text(",".join(header) + "\n" + "\n".join(body) + "\n", encoding="utf-8")
    ds = load(p, kind="radial-field")
    assert ds.frame[canonical].iloc[0] == pytest.approx(si, rel=1e-12)


def test_unit_helpers():
    assert split_column_name("V1  -sample/ uV") == ("V1 -sample", "uV")
    assert split_column_name("Current / A") == ("Current", "A")
    assert split_column_name("time/s") == ("time", "s")
    assert split_column_name("dV/dI") == ("dV/dI", None)
    assert parse_quantity("12.89mm", "length") == pytest.approx(0.01289)
    assert parse_quantity("0.01 m", "length") == pytest.approx(0.01)
    assert parse_quantity("1.2 cm", "length") == pytest.approx(0.012)
    assert parse_quantity(0.02, "length") == pytest.approx(0.02)
    with pytest.raises(ValueError, match="current"):
        parse_quantity("3 A", "length")


def test_map_option_and_unit_in_target(tmp_path):
    p = tmp_path / "foreign.csv"
    rows = "\n".join(f"{i},{0.001 * i**3:.6g},{i * 2}" for i in range(1, 12))
    p.write_text("I_src,V_meas,other\n" + rows + "\n", encoding="utf-8")
    ds = load(p, kind="vi", mapping=["Current (A)=I_src", "Voltage (mV)=V_meas"])
    assert list(ds.frame["Current (A)"])[:3] == [1.0, 2.0, 3.0]
    assert ds.frame["Voltage (V)"].iloc[1] == pytest.approx(0.008e-3)
    ds2 = load(p, kind="vi", mapping={"Current (A)": "I_src", "Voltage (V)": "V_meas"})
    assert ds2.frame["Voltage (V)"].iloc[1] == pytest.approx(0.008)
    with pytest.raises(LoadError, match="not found"):
        load(p, kind="vi", mapping=["Current (A)=nope"])


def test_missing_column_message_names_file_found_and_needed(tmp_path):
    p = tmp_path / "half.csv"
    p.write_text("Current (A),Time (s)\n" + "\n".join(f"{i},{i}" for i in range(10)) + "\n")
    with pytest.raises(LoadError) as exc:
        load(p, kind="vi")
    msg = str(exc.value)
    assert isinstance(exc.value, LabctlError)
    assert "half.csv" in msg and "'Voltage (V)'" in msg and "'Current (A)'" in msg
    assert "found" in msg and "needed" in msg and "\n" not in msg


@pytest.mark.parametrize("procedure", ["os.system", "subprocess.Popen", "evil_module_xyz.Run"])
def test_unknown_procedure_is_never_imported(tmp_path, monkeypatch, procedure):
    p = write_pymeasure(tmp_path / "evil.csv", procedure, {"Tap spacing": "0.01 m"},
                        ["Current (A)", "Voltage (V)"], [[i, 1e-9 * i] for i in range(1, 20)])
    import pymeasure.experiment.results as pm_results

    load(tmp_path / "evil.csv")  # warm-up: pandas' lazy imports happen here, not under the guard
    before = set(sys.modules)
    real_import = builtins.__import__
    forbidden = {procedure.rsplit(".", 1)[0], "subprocess", "evil_module_xyz"}

    def guarded_import(name, *args, **kwargs):
        if name in forbidden:
            raise AssertionError(f"loader imported {name}")
        return real_import(name, *args, **kwargs)

    def no_import_module(name, *args, **kwargs):
        raise AssertionError(f"loader called importlib.import_module({name!r})")

    def no_pymeasure(*args, **kwargs):
        raise AssertionError("pymeasure Results.load/parse_header called")

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    monkeypatch.setattr(importlib, "import_module", no_import_module)
    monkeypatch.setattr(pm_results.Results, "load", no_pymeasure, raising=False)
    monkeypatch.setattr(pm_results.Results, "parse_header", no_pymeasure, raising=False)
    ds = load(p)
    monkeypatch.undo()
    assert set(sys.modules) == before
    assert ds.procedure == procedure
    assert ds.kind == "vi"  # from the columns
    assert any("unknown procedure" in w for w in ds.warnings)
    assert ds.parameter("Tap spacing", "length") == pytest.approx(0.01)


def test_known_procedure_gives_kind_and_parameters(tmp_path):
    p = write_pymeasure(tmp_path / "x.csv", "procedures.normal_control.NormalStateControl",
                        {"Sample": "Pb", "Sample radius": "10 mm"},
                        ["Repeat", "Current (A)", "Radius (m)", "Field (T)", "Field std (T)",
                         "Temperature (K)", "Polarity"],
                        [[0, 10, 0.005, 1e-4, 2e-7, 9, 1], [0, 10, 0.01, 2e-4, 2e-7, 9, 1]])
    ds = load(p)
    assert ds.kind == "radial-field" and ds.control
    assert ds.parameters["Sample"] == "Pb"
    assert ds.parameter("Sample radius", "length") == pytest.approx(0.01)
    assert not ds.warnings


def test_truncated_file_and_non_numeric_cells_load_with_warnings(tmp_path):
    p = tmp_path / "bad.csv"
    rows = [f"{t:.3f},{0.1 * t:.4f}" for t in np.linspace(10, 20, 20)]
    rows[5] = "12.5,abc"
    rows[7] = "nan,1.0"
    rows[9] = "13.9,inf"
    text = "Temperature (K),Resistance (ohm)\n" + "\n".join(rows) + "\n21.0,"  # cut mid-row
    p.write_text(text, encoding="utf-8")
    ds = load(p)
    assert len(ds.frame) == 17
    joined = " ".join(ds.warnings)
    assert "dropped 4 of 21" in joined and "wrong number of values" in joined
    assert np.isfinite(ds.frame.to_numpy(float)).all()


def test_duplicate_columns_warn(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text("Current (A),Voltage (V),Voltage (V)\n" + "\n".join(f"{i},{i * 1e-6},{i * 2e-6}" for i in range(1, 9)))
    ds = load(p, kind="vi")
    assert any("more than once" in w for w in ds.warnings)
    assert ds.frame["Voltage (V)"].iloc[0] == pytest.approx(1e-6)
    assert "Voltage (V) #2" in ds.frame.columns


def test_semicolon_and_decimal_comma(tmp_path):
    p = tmp_path / "eu.csv"
    p.write_text("Temperature (K);Resistance (mohm)\n" + "\n".join(f"{t},5;{t / 10:.2f}".replace(".", ",")
                                                                   for t in range(10, 30)))
    ds = load(p)
    assert ds.kind == "rt"
    assert ds.frame["Temperature (K)"].iloc[0] == pytest.approx(10.5)
    assert ds.frame["Resistance (ohm)"].iloc[0] == pytest.approx(1e-3)


def test_plain_names_without_units_assume_si(tmp_path):
    p = tmp_path / "plain.tsv"
    p.write_text("# a comment\ntemperature\tresistance\n" + "\n".join(f"{t}\t{t * 0.1}" for t in range(5, 20)))
    ds = load(p)
    assert ds.kind == "rt" and "Temperature (K)" in ds.frame
    assert any("no unit" in w for w in ds.warnings)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "no data rows"),
        ("# only a comment\n", "no data rows"),
        ("a,b,c\nx,y,z\n", "no numeric data rows"),
        ("Temperature (K),Resistance (ohm)\n1,2,3\n4,5,6\n7,8,9\n", "header row has 2 names"),
        ("1.0\t2.0\n3.0\t4.0\n5.0\t6.0\n", "no header row"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(LoadError, match=match) as exc:
        load(p)
    assert "\n" not in str(exc.value) and "bad.txt" in str(exc.value)


def test_binary_and_missing_files(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(LoadError, match="not a text file"):
        load(p)
    with pytest.raises(LoadError, match="no such file"):
        load(tmp_path / "nope.csv")


def test_headerless_file_with_columns_option(tmp_path):
    p = tmp_path / "h.txt"
    p.write_text("\r\n".join(f"{t}\t{t * 0.01}" for t in range(80, 100)) + "\r\n")
    ds = load(p, columns="Temperature (K),Resistance (mohm)")
    assert ds.frame["Resistance (ohm)"].iloc[0] == pytest.approx(0.8e-3)
    with pytest.raises(LoadError, match="3 names"):
        load(p, columns="a (K),b (K),c (K)")


def test_skip_rows(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("junk line 1, with, commas\njunk 2 3\nCurrent (A),Voltage (V)\n"
                 + "\n".join(f"{i},{i * 1e-6}" for i in range(10)))
    ds = load(p, skip_rows=2)
    assert ds.kind == "vi" and len(ds.frame) == 10


def test_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_pymeasure(run / "01-rt.csv", "procedures.rt.ResistanceVsTemperature", {},
                    ["Temperature (K)", "Resistance (ohm)"], [[t, t * 1e-3] for t in range(10, 20)])
    (run / "02-vi.csv").write_text("garbage\n")
    (run / "station.json").write_text('{"name": "sim"}')
    r = load_run(run)
    assert [n for n, _ in r.steps] == ["01-rt.csv", "02-vi.csv"]
    assert r.steps[0][1].kind == "rt"
    assert isinstance(r.steps[1][1], LoadError)
    assert r.station == {"name": "sim"}


@pytest.mark.skipif(not DATASETS.is_dir(), reason="shared datasets not present")
def test_foreign_rebco_and_ybco_files_load():
    ds = load(DATASETS / "rebco_77K_0p3T_0deg.txt")
    assert ds.kind == "vi"
    assert {"Current (A)", "Voltage (V)"} <= set(ds.frame.columns)
    assert ds.frame["Voltage (V)"].abs().max() < 1e-3  # converted from uV
    assert ds.parameter("field", "field") == pytest.approx(0.3)
    assert ds.parameter("Temperature", "temperature") == pytest.approx(77.0)
    with pytest.raises(LoadError, match="--columns"):
        load(DATASETS / "ybco_RT_ntu_foep_a4.txt")
    y = load(DATASETS / "ybco_RT_ntu_foep_a4.txt", columns="Temperature (K),Resistance (mohm)")
    assert y.kind == "rt" and len(y.frame) > 3000
    assert y.frame["Resistance (ohm)"].max() < 0.01


def test_overload_readings_are_dropped(tmp_path):
    p = tmp_path / "ovl.csv"
    p.write_text("Current (A),Voltage (V)\n" + "\n".join(f"{i},{'9.9E37' if i == 5 else i * 1e-9}" for i in range(12)))
    ds = load(p, kind="vi")
    assert len(ds.frame) == 11 and ds.frame["Voltage (V)"].max() < 1
    assert any("dropped 1 of 12" in w for w in ds.warnings)


_cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6),
                  st.sampled_from(["", "nan", "1e400", "9.9E37", "1,5", "#", '"']))
_line = st.lists(_cell, min_size=0, max_size=4).flatmap(
    lambda cells: st.sampled_from([",", "\t", ";", " "]).map(lambda d: d.join(cells)))


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(["Current (A),Voltage (V)", "Temperature (K)\tResistance (mohm)", "", "#Data:",
                               "#Procedure: <os.system>", "a;b;c"]),
       lines=st.lists(_line, max_size=8), kind=st.sampled_from([None, "vi", "rt"]))
def test_arbitrary_text_loads_or_fails_cleanly(tmp_path, header, lines, kind):
    p = tmp_path / "fuzz.csv"
    p.write_text("\n".join([header, *lines]), encoding="utf-8")
    try:
        ds = load(p, kind=kind)
    except LoadError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert len(ds.frame) > 0 and ds.kind is not None
    try:
        res = analyze_dataset(ds, tap_spacing=0.01, bootstrap=0, n_mc=5)
    except AnalysisError as exc:
        assert "\n" not in str(exc)
        return
    json.dumps(res, allow_nan=False)
