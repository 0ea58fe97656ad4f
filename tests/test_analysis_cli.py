"""`labctl analyze`: exit codes, JSON output, run folders, one-line errors."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from labctl import cli_analysis
from labctl.physics import field_uniform, power_law_critical_voltage

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main(argv):
    parser = argparse.ArgumentParser(prog="labctl")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_analysis.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def pm_file(path, procedure, params, header, rows):
    lines = [f"#Procedure: <{procedure}>", "#Parameters:"] + [f"#\t{k}: {v}" for k, v in params.items()]
    lines += ["#Data:", ",".join(header)] + [",".join(f"{x:.12g}" for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def run_folder(tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    t = np.r_[np.linspace(9, 5, 120), np.linspace(5, 9, 120)]
    r = np.where(t > 7.2, 1e-3, 0.0) + 1e-9 * np.arange(len(t))
    pm_file(run / "01-rt.csv", "procedures.rt.ResistanceVsTemperature", {},
            ["Temperature (K)", "Resistance (ohm)"], list(zip(t, r)))
    i = np.linspace(0, 300, 200)
    pm_file(run / "02-vi.csv", "procedures.vi.VISweep", {"Tap spacing": "0.01 m"},
            ["Current (A)", "Voltage (V)"], list(zip(i, power_law_critical_voltage(i, 250.0, 30, 0.01) + 1e-9)))
    rows = []
    for rep in range(2):
        for cur in (10.0, 20.0):
            for rad in (0.005, 0.00707, 0.01):
                for pol in (1, -1):
                    b = float(field_uniform(rad, cur, 0.01))
                    rows.append((rep, cur, rad, pol * b + 1e-5 + 1e-8 * rep, 1e-7, 9.0, pol))
    pm_file(run / "03-normal-control.csv", "procedures.normal_control.NormalStateControl", {},
            ["Repeat", "Current (A)", "Radius (m)", "Field (T)", "Field std (T)", "Temperature (K)", "Polarity"],
            rows)
    (run / "station.json").write_text("{}")
    (run / "run.log").write_text("log\n")
    return run


def test_run_folder_json_keyed_by_step(run_folder, capsys):
    assert main(["analyze", str(run_folder), "--json", "--bootstrap", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["01-rt.csv", "02-vi.csv", "03-normal-control.csv"]
    assert out["01-rt.csv"]["kind"] == "rt" and 7.0 < out["01-rt.csv"]["tc_mid"] < 7.4
    assert out["02-vi.csv"]["ic"] == pytest.approx(250.0, rel=0.02)
    assert out["03-normal-control.csv"]["best_model"] == "uniform"


def test_run_folder_text_summary(run_folder, capsys):
    assert main(["analyze", str(run_folder), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "== 02-vi.csv ==" in text and " A" in text and "Tc mid" in text and "best model: uniform" in text


def test_bad_step_in_run_gives_exit_2_and_other_steps(run_folder, capsys):
    (run_folder / "04-residual.csv").write_text("Current (A),Voltage (V)\n1,x\n")
    code = main(["analyze", str(run_folder), "--json", "--bootstrap", "0"])
    cap = capsys.readouterr()
    assert code == 2
    out = json.loads(cap.out)
    assert "error" in out["04-residual.csv"] and out["02-vi.csv"]["ic"] > 0
    assert cap.err.startswith("labctl: error: ") and "Traceback" not in cap.err


@pytest.mark.parametrize("content, extra, match", [
    ("Current (A),Time (s)\n1,2\n3,4\n5,6\n", ["--kind", "vi"], "missing column"),
    ("\x00\x01binary", [], "not a text file"),
    ("Current (A),Voltage (V)\n" + "\n".join(f"{i},{i * 1e-9}" for i in range(20)), ["--kind", "vi"],
     "tap spacing"),
])
def test_bad_input_exit_2_one_line(tmp_path, capsys, content, extra, match):
    p = tmp_path / "f.csv"
    p.write_text(content)
    code = main(["analyze", str(p), *extra])
    cap = capsys.readouterr()
    assert code == 2
    assert cap.err.count("\n") == 1 and cap.err.startswith("labctl: error: ")
    assert match in cap.err and "Traceback" not in cap.err


def test_missing_path(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_map_option_on_the_command_line(tmp_path, capsys):
    p = tmp_path / "foreign.csv"
    i = np.linspace(0, 60, 150)
    v = power_law_critical_voltage(i, 50.0, 20, 0.005) * 1e6  # in uV
    p.write_text("I_src;V_meas\n" + "\n".join(f"{a:.6g};{b:.6g}" for a, b in zip(i, v)))
    code = main(["analyze", str(p), "--kind", "vi", "--map", "Current (A)=I_src", "--map", "Voltage (uV)=V_meas",
                 "--tap-spacing", "5mm", "--json", "--bootstrap", "0"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ic"] == pytest.approx(50.0, rel=0.02) and out["tap_spacing"] == pytest.approx(0.005)


@pytest.mark.skipif(not DATASETS.is_dir(), reason="shared datasets not present")
def test_foreign_files_from_the_command_line(capsys):
    assert main(["analyze", str(DATASETS / "ybco_RT_ntu_foep_a4.txt"), "--columns",
                 "Temperature (K),Resistance (mohm)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 85 < out["tc_mid"] < 95
    assert main(["analyze", str(DATASETS / "rebco_77K_0T_0deg.txt"), "--tap-spacing", "12.89mm",
                 "--bootstrap", "0"]) == 0
    assert "Ic = " in capsys.readouterr().out
