"""V-I: Ic by the 1 uV/cm criterion after background subtraction, n-value."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl.analysis import AnalysisError, analyze
from labctl.analysis.vi import analyze_vi_arrays
from labctl.physics import power_law_critical_voltage

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def synthetic(ic=120.0, n=25.0, tap=0.01, offset=2e-6, slope=3e-9, noise=2e-8, seed=0, imax=1.15):
    rng = np.random.default_rng(seed)
    i = np.linspace(0, imax * ic, 300)
    v = power_law_critical_voltage(i, ic, n, tap) + offset + slope * i + rng.normal(0, noise, len(i))
    return i, v


@pytest.mark.parametrize("ic, n, seed", [(120.0, 25.0, 0), (40.0, 12.0, 1), (300.0, 40.0, 2)])
def test_synthetic_ic_and_n_within_2_percent(ic, n, seed):
    i, v = synthetic(ic, n, seed=seed)
    res = analyze_vi_arrays(i, v, 0.01, bootstrap=20)
    assert res["ic"] == pytest.approx(ic, rel=0.02)
    assert res["n"] == pytest.approx(n, rel=0.02)
    assert 0 < res["ic_err"] < 0.02 * ic and 0 < res["n_err"] < 0.1 * n
    assert res["criterion_voltage"] == pytest.approx(1e-6)
    assert res["ic_err_bootstrap"] > 0
    assert abs(res["ic"] - ic) < 5 * max(res["ic_err"], 1e-3 * ic)


def test_tap_spacing_from_file_parameter_and_option(tmp_path):
    i, v = synthetic(80.0, 20.0, tap=0.012)
    p = tmp_path / "02-vi.csv"
    lines = ["#Procedure: <procedures.vi.VISweep>", "#Parameters:", "#\tTap spacing: 12 mm", "#Data:",
             "Current (A),Voltage (V)"] + [f"{a:.17g},{b:.17g}" for a, b in zip(i, v)]
    p.write_text("\n".join(lines) + "\n")
    res = analyze(p, bootstrap=0)
    assert res["tap_spacing"] == pytest.approx(0.012)
    assert res["ic"] == pytest.approx(80.0, rel=0.02)
    # the option wins over the file; a wrong spacing moves Vc and so Ic
    res2 = analyze(p, tap_spacing="1.2cm", bootstrap=0)
    assert res2["ic"] == pytest.approx(res["ic"], rel=1e-9)
    res3 = analyze(p, tap_spacing=0.024, bootstrap=0)
    assert res3["criterion_voltage"] == pytest.approx(2.4e-6)
    assert res3["ic"] > res["ic"]


def test_missing_tap_spacing_is_a_clear_error(tmp_path):
    i, v = synthetic()
    p = tmp_path / "vi.csv"
    p.write_text("Current (A),Voltage (V)\n" + "\n".join(f"{a},{b}" for a, b in zip(i, v)))
    with pytest.raises(AnalysisError, match="tap spacing"):
        analyze(p, kind="vi")
    with pytest.raises(AnalysisError, match="length"):
        analyze(p, kind="vi", tap_spacing="3 A")


def test_criterion_not_reached_gives_null_ic():
    i, v = synthetic(ic=500.0)
    res = analyze_vi_arrays(i[:100], v[:100], 0.01)
    assert res["ic"] is None and "not reached" in res["message"]


@pytest.mark.skipif(not DATASETS.is_dir(), reason="shared datasets not present")
def test_rebco_ic_decreases_with_field():
    ics = []
    for name in ("rebco_77K_0T_0deg.txt", "rebco_77K_0p3T_0deg.txt", "rebco_77K_0p7T_0deg.txt"):
        res = analyze(DATASETS / name, tap_spacing="12.89mm", bootstrap=0)
        assert res["kind"] == "vi"
        assert res["criterion_voltage"] == pytest.approx(1.289e-6)
        assert res["ic"] is not None and np.isfinite(res["ic"]) and 5 < res["ic"] < 200
        assert res["n"] is not None and 3 < res["n"] < 100
        ics.append(res["ic"])
    assert ics[0] > ics[1] > ics[2]
