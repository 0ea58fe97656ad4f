"""Radial scan inversion J(r) and the residual-voltage trend."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl import physics as P
from labctl.analysis import AnalysisError, analyze
from labctl.analysis.loading import Dataset
from labctl.analysis.residual import analyze_residual_arrays
from labctl.analysis.scan import invert_profile

R = 0.010
I0 = 100.0
NOISE = 2e-7


def scan_frame(field_fn, seed=0, offset=2e-5, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    for r in np.linspace(0.001, R, n):
        b = float(field_fn(r, I0, R))
        for pol in (1, -1):
            rows.append({"Radius (m)": r, "Field (T)": pol * b + offset + rng.normal(0, NOISE),
                         "Field std (T)": NOISE, "Current (A)": I0, "Polarity": pol})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model, i_enc", [
    ("uniform", lambda r: I0 * r**2 / R**2),
    ("linear-j", lambda r: I0 * r**3 / R**3),
])
def test_scan_recovers_current_density(model, i_enc):
    fn = P.field_uniform if model == "uniform" else P.field_linear_j
    res = analyze(Dataset(frame=scan_frame(fn), kind="radial-scan"))
    assert res["kind"] == "radial-scan"
    r, j, e, r_in = (np.array(res[k]) for k in ("radius", "j", "j_err", "j_r_inner"))
    assert len(r) == len(j) == len(e) == len(r_in) == 30
    truth = (i_enc(r) - i_enc(r_in)) / (np.pi * (r**2 - r_in**2))  # the average over each bin
    assert np.all(e > 0)
    pulls = (j - truth) / e
    assert np.all(np.abs(pulls) < 4.5)
    assert 0.5 < np.std(pulls) < 1.6  # the band is the actual scatter, neither far too wide nor too narrow
    assert np.median(np.abs(j - truth) / truth.max()) < 0.01
    assert res["i_enclosed_outer_ratio"] == pytest.approx(1.0, abs=0.01)


def test_scan_of_a_surface_current_is_a_sheet_not_an_oscillation():
    res = analyze(Dataset(frame=scan_frame(lambda r, i, rad: P.field_meissner(r, i, rad, 30e-9)), kind="radial-scan"))
    j, e = np.array(res["j"]), np.array(res["j_err"])
    inside = np.abs(j[:-1]) < 4 * e[:-1]  # no current inside, within the honest band
    assert inside.mean() > 0.95
    assert np.max(np.abs(j[:-1])) < 0.02 * j[-1]  # no +-swings near the wall
    assert j[-1] > 10 * e[-1]  # all the current in the last bin
    assert any("not resolved" in w for w in res["warnings"])


def test_scan_without_uncertainties_and_too_few_points():
    r = np.linspace(0.001, R, 25)
    b = P.field_uniform(r, I0, R) + np.random.default_rng(1).normal(0, NOISE, len(r))
    res = invert_profile(r, b, None, n_mc=30)
    jt = I0 / (np.pi * R**2)
    assert np.median(np.abs(np.array(res["j"]) - jt)) < 0.01 * jt
    assert res["notes"]
    with pytest.raises(AnalysisError, match="at least 5"):
        invert_profile(r[:3], b[:3])


def test_residual_decreasing_trend_is_detected():
    rng = np.random.default_rng(0)
    i = np.repeat([50.0, 100, 150, 200, 250], 4)
    v = 5e-7 - 1e-9 * i + rng.normal(0, 2e-8, len(i))
    res = analyze_residual_arrays(i, v, np.full(len(i), 2e-8))
    assert res["decreasing"] is True
    assert res["slope"] == pytest.approx(-1e-9, rel=0.2)
    assert abs(res["slope"] + 1e-9) < 3 * res["slope_err"]
    assert res["p_value"] < 1e-3
    assert "decreases" in res["verdict"]


def test_residual_flat_and_increasing():
    rng = np.random.default_rng(1)
    i = np.repeat([50.0, 100, 150, 200], 3)
    flat = analyze_residual_arrays(i, 1e-7 + rng.normal(0, 2e-8, len(i)))
    assert flat["decreasing"] is False and flat["p_value"] > 0.01
    up = analyze_residual_arrays(i, 1e-9 * i + rng.normal(0, 1e-9, len(i)))
    assert up["decreasing"] is False and up["slope"] > 0 and "increases" in up["verdict"]


def test_residual_with_reversal_pairs_through_analyze():
    rng = np.random.default_rng(2)
    rows = []
    for i in (20.0, 40.0, 60.0, 80.0):
        true = 3e-7 - 2e-9 * i
        for pol in (1, -1):
            rows.append({"Current (A)": pol * i, "Voltage (V)": pol * true + 4e-6 + rng.normal(0, 1e-9),
                         "Polarity": pol, "Voltage std (V)": 1e-9})
    res = analyze(Dataset(frame=pd.DataFrame(rows), kind="residual"))
    assert res["kind"] == "residual" and res["decreasing"] is True
    assert res["slope"] == pytest.approx(-2e-9, rel=0.05)  # thermal EMF of 4 uV cancelled
    with pytest.raises(AnalysisError, match="3 distinct currents"):
        analyze_residual_arrays([1.0, 2.0], [1.0, 2.0])
