"""Run CSVs open with *stock* pymeasure (``Results.load``) in a Python whose path has no labctl,
no ``procedures`` package and no repository checkout: what a colleague without labctl has."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.export import STOCK_PROCEDURE, export, stock_csv_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "examples" / "protocol_Pb_meissner"

LOADER = r"""
import json, sys
repo = sys.argv[1]
sys.path[:] = [p for p in sys.path if p and p.rstrip("/") != repo.rstrip("/")]
for name in ("labctl", "procedures"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable: not a clean environment")
from pymeasure.experiment import Results
out = {}
for path in sys.argv[2:]:
    r = Results.load(path)
    out[path] = {"rows": len(r.data), "columns": list(r.data.columns),
                 "procedure": type(r.procedure).__name__}
print(json.dumps(out))
"""


def stock_load(paths: list[Path], cwd: Path) -> dict:
    """Load with pymeasure in a subprocess started with -I (no cwd, no PYTHONPATH) and the repo off sys.path."""
    proc = subprocess.run([sys.executable, "-I", "-c", LOADER, str(ROOT), *map(str, paths)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_exported_csvs_load_with_stock_pymeasure_without_labctl(tmp_path):
    out = export(EXAMPLE, "csv", tmp_path / "csv")
    files = sorted(out.glob("*.csv"))
    assert len(files) == 6
    loaded = stock_load(files, tmp_path)
    for f in files:
        import pandas as pd

        want = pd.read_csv(EXAMPLE / f.name, comment="#")
        got = loaded[str(f)]
        assert got["rows"] == len(want) and got["columns"] == list(want.columns)
        assert got["procedure"] == "Procedure"
        text = f.read_text()
        assert f"#Procedure: <{STOCK_PROCEDURE}>" in text and "#labctl procedure: <procedures." in text
    assert (out / "station.json").is_file() and (out / "parameters.json").is_file()


def test_exported_csvs_still_analyse_in_labctl(tmp_path):
    from labctl.analysis import analyze

    out = export(EXAMPLE, "csv", tmp_path / "csv")
    orig = analyze(str(EXAMPLE / "02-vi.csv"))
    again = analyze(str(out / "02-vi.csv"))
    assert again["ic"] == pytest.approx(orig["ic"])


def test_stock_header_keeps_every_parameter_line():
    src = (EXAMPLE / "01-rt.csv").read_text()
    text = stock_csv_text(EXAMPLE / "01-rt.csv")
    assert [ln for ln in src.splitlines() if ln.startswith("#\t")] == \
        [ln for ln in text.splitlines() if ln.startswith("#\t")]
    assert src.split("#Data:")[1] == text.split("#Data:")[1]


def test_run_csvs_as_recorded_load_with_stock_pymeasure_without_labctl(tmp_path):
    """Every step file of a recorded run, as the runner writes it (issue 15): a run recorded
    now, and the shipped example run.  Stock pymeasure imports the class named in the header,
    so the runner names pymeasure's own base Procedure there and keeps labctl's on a
    ``#labctl procedure:`` line that pymeasure skips (and labctl's loader reads)."""
    import pandas as pd

    from labctl.analysis import load
    from labctl.cli import main

    code = main(["run", "protocol", "--quiet", "--data-dir", str(tmp_path / "runs"), "--set", "rt.sweeps=cooling",
                 "--set", "vi.current_step=10", "--set", "radial-field.repeats=1", "--set", "radial-scan.n_points=11"])
    assert code == 0
    recorded = sorted((tmp_path / "runs").glob("*/*.csv"))
    files = recorded + sorted(EXAMPLE.glob("*.csv"))
    assert len(recorded) == 6
    loaded = stock_load(files, tmp_path)
    for f in files:
        want = pd.read_csv(f, comment="#")
        assert loaded[str(f)]["rows"] == len(want) and loaded[str(f)]["columns"] == list(want.columns)
        assert loaded[str(f)]["procedure"] == "Procedure"
        assert load(str(f)).kind is not None  # labctl still knows which step wrote it
