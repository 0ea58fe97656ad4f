"""R(T): Tc onset / mid / zero / width, cooling and warming, no invented Tc."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labctl.analysis import analyze, load
from labctl.analysis.loading import Dataset
from labctl.analysis.rt import analyze_sweep, split_sweeps
from labctl.materials import preset

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GEOM = 0.05 / (math.pi * 0.01**2)  # tap length / cross-section (1/m)


def pb_curve(temps, seed=0, noise=1e-3, superconducting=True):
    m = preset("Pb")
    rng = np.random.default_rng(seed)
    r = np.array([m.resistivity(t) * (1 - (m.superconducting_fraction(t) if superconducting else 0.0))
                  for t in temps]) * GEOM
    return r + rng.normal(0, noise * r.max(), len(temps))


def test_pb_transition_recovered():
    t = np.linspace(9.0, 5.0, 600)
    res = analyze_sweep(t, pb_curve(t))
    tc = preset("Pb").tc
    assert res["tc_mid"] == pytest.approx(tc, abs=0.05)
    assert res["tc_onset"] > res["tc_mid"] > res["tc_zero"]
    assert res["tc_onset"] - tc < 0.05 and tc - res["tc_zero"] < 0.1
    assert res["width_10_90"] == pytest.approx(preset("Pb").transition_width, abs=0.01)
    m = preset("Pb")
    assert res["r_normal"] == pytest.approx(m.resistivity(tc) * GEOM, rel=0.02)


def test_pb_cooling_and_warming_from_dataframe():
    down = np.linspace(9, 5, 300)
    up = np.linspace(5, 9, 300)
    t = np.concatenate([down, up])
    frame = pd.DataFrame({"Temperature (K)": t + np.r_[np.full(300, -0.02), np.full(300, 0.02)],
                          "Resistance (ohm)": pb_curve(t, seed=3)})
    res = analyze(Dataset(frame=frame, kind="rt"))
    assert res["sweep"] == "cooling"
    assert res["cooling"]["tc_mid"] == pytest.approx(7.196 - 0.02, abs=0.05)
    assert res["warming"]["tc_mid"] == pytest.approx(7.196 + 0.02, abs=0.05)
    assert res["tc_mid"] == res["cooling"]["tc_mid"]
    assert res["hysteresis_mid"] == pytest.approx(0.04, abs=0.02)


def test_direction_column_is_used():
    t = np.r_[np.linspace(9, 5, 100), np.linspace(5, 9, 100)]
    d = ["cooling"] * 100 + ["warming"] * 100
    masks = split_sweeps(t, direction=d)
    assert set(masks) == {"cooling", "warming"} and masks["cooling"][:100].all()


@pytest.mark.parametrize("tmin, tmax", [(5.0, 9.0), (2.0, 300.0)])
def test_normal_metal_gives_no_tc(tmin, tmax):
    t = np.linspace(tmax, tmin, 500)
    res = analyze_sweep(t, pb_curve(t, superconducting=False))
    for key in ("tc_onset", "tc_mid", "tc_zero", "width_10_90", "r_normal"):
        assert res[key] is None
    assert "no superconducting transition" in res["message"]


def test_normal_metal_through_analyze_has_null_keys():
    t = np.linspace(300, 2, 400)
    frame = pd.DataFrame({"Temperature (K)": t, "Resistance (ohm)": pb_curve(t, superconducting=False)})
    res = analyze(Dataset(frame=frame, kind="rt"))
    assert res["kind"] == "rt" and res["tc_mid"] is None and res["tc_zero"] is None
    assert "no superconducting transition" in res["message"]


@pytest.mark.skipif(not DATASETS.is_dir(), reason="shared datasets not present")
def test_ybco_dataset():
    ds = load(DATASETS / "ybco_RT_ntu_foep_a4.txt", columns="Temperature (K),Resistance (mohm)")
    res = analyze(ds)
    assert 85.0 <= res["cooling"]["tc_mid"] <= 95.0
    assert 85.0 <= res["warming"]["tc_mid"] <= 95.0
    assert res["tc_mid"] == res["cooling"]["tc_mid"]
    assert 1.0 < res["warming"]["tc_mid"] - res["cooling"]["tc_mid"] < 10.0  # thermometer lag
    for s in ("cooling", "warming"):
        r = res[s]
        assert r["tc_onset"] > r["tc_mid"] > r["tc_zero"]
        assert 0 < r["width_10_90"] < 6
        assert r["r_normal"] == pytest.approx(0.6e-3, rel=0.15)


def _steps_curve(steps, seed=0):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from known_truth import rt_steps

    t = np.linspace(110, 70, 800)
    return t, rt_steps(t, steps, rng=np.random.default_rng(seed))


def test_two_step_transition_is_reported_as_such():
    t, r = _steps_curve([(92.0, 0.6), (85.0, 0.4)])
    res = analyze(Dataset(frame=pd.DataFrame({"Temperature (K)": t, "Resistance (ohm)": r}), kind="rt"))
    assert res["transition"] == "multi-step" and res["superconducting"] is True
    assert [round(s["t_mid"]) for s in res["steps"]] == [92, 85]
    assert res["steps"][0]["drop_fraction"] == pytest.approx(0.6, abs=0.05)
    assert res["r_normal"] == pytest.approx(1e-3 + 2e-6 * (92.2 - 110), rel=0.02)  # R_n above the highest step
    assert 91.0 < res["tc_mid"] < 92.5 and res["tc_zero"] < 85.0
    assert any("2-step" in w for w in res["warnings"])


def test_partial_drop_is_not_superconducting():
    t, r = _steps_curve([(92.0, 0.55)])
    res = analyze(Dataset(frame=pd.DataFrame({"Temperature (K)": t, "Resistance (ohm)": r}), kind="rt"))
    assert res["transition"] == "partial" and res["superconducting"] is False
    assert res["tc_zero"] is None
    assert "partial" in res["message"] and ("45%" in res["message"] or "44%" in res["message"])
    assert any("partial" in w for w in res["warnings"])
