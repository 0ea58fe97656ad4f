"""Radial field: offsets, ratios with status, exponent, model comparison, outer check."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labctl import physics as P
from labctl.analysis import analyze
from labctl.analysis.loading import Dataset
from labctl.analysis.radial import ratio

R = 0.010
RADII = (0.005, 0.00707, 0.010)
NOISE = 2e-7
IC_TRUE = 300.0
CURRENTS = tuple(f * IC_TRUE for f in (0.3, 0.5, 0.7, 0.9))
HC_TRUE = 60.0 / (2 * math.pi * R)  # Silsbee current 60 A, below every current used
LAMBDA_TRUE = 30e-9


def true_field(model, r, current):
    if model == "uniform":
        return P.field_uniform(r, current, R)
    if model == "linear-j":
        return P.field_linear_j(r, current, R)
    if model == "meissner":
        return P.field_meissner(r, current, R, LAMBDA_TRUE)
    if model == "bean":
        return P.field_bean(r, current, R, IC_TRUE)
    if model == "intermediate":
        return P.field_intermediate(r, current, R, HC_TRUE)
    raise ValueError(model)


def radial_frame(model, *, seed=0, k=1.0, offset=3e-5, repeats=3, polarities=(1, -1), currents=CURRENTS,
                 temperature=4.2):
    """Readings as the acquisition writes them: raw field = pol k B + Hall offset + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(repeats):
        for current in currents:
            for r in RADII:
                b = k * float(true_field(model, r, current))
                for pol in polarities:
                    rows.append({"Repeat": rep, "Current (A)": current, "Radius (m)": r,
                                 "Field (T)": pol * b + offset + rng.normal(0, NOISE),
                                 "Field std (T)": NOISE, "Temperature (K)": temperature, "Polarity": pol})
    return pd.DataFrame(rows)


def run(model, **kw):
    return analyze(Dataset(frame=radial_frame(model, **kw), kind="radial-field"))


def param(res, model, key):
    m = next(m for m in res["models"] if m["name"] == model)
    return m["params"][key]


@pytest.fixture(scope="module")
def results():
    return {m: run(m, seed=i) for i, m in enumerate(("uniform", "linear-j", "meissner", "bean", "intermediate"))}


@pytest.mark.parametrize("model", ["uniform", "linear-j", "meissner", "bean", "intermediate"])
def test_model_comparison_names_the_true_model(results, model):
    res = results[model]
    assert res["best_model"] == model
    assert res["models"][0]["name"] == model
    assert f"best model: {model}" in res["verdict"]
    assert res["models"][0]["p_value"] > 0.001
    names = [m["name"] for m in res["models"]]
    assert sorted(names) == sorted(["uniform", "linear-j", "meissner", "bean", "intermediate"])
    # ranked by AIC, except that a model consistent with its limit does not outrank that limit
    best_aic = res["models"][0]["aic"]
    for m in res["models"][1:]:
        assert m["aic"] >= best_aic - 1e-6 or res["models"][0]["name"] in m.get("reduces_to", [])
    for m in res["models"]:
        assert set(m) >= {"name", "chi2", "dof", "aic", "bic", "params", "p_value"}
        assert m["params"]["k"]["value"] == pytest.approx(1.0, abs=max(3 * m["params"]["k"]["err"], 1e-3)) \
            or m["name"] != model


@pytest.mark.parametrize("model", ["uniform", "linear-j", "bean", "intermediate"])
def test_clearly_different_models_are_rejected(results, model):
    res = results[model]
    others = [m for m in res["models"][1:] if not m.get("limit")]
    assert others, "at least one genuinely different model"
    for m in others:
        assert m["p_value"] < 1e-6
        assert f"{m['name']} rejected" in res["verdict"]


def test_bean_recovers_ic(results):
    ic = param(results["bean"], "bean", "ic")
    assert abs(ic["value"] - IC_TRUE) < max(3 * ic["err"], 0.05 * IC_TRUE)
    assert ic["value"] == pytest.approx(IC_TRUE, rel=0.05)


def test_intermediate_recovers_hc(results):
    hc = param(results["intermediate"], "intermediate", "hc")
    assert abs(hc["value"] - HC_TRUE) < max(3 * hc["err"], 0.05 * HC_TRUE)
    assert hc["silsbee_current"] == pytest.approx(60.0, rel=0.05)


def test_meissner_lambda_is_an_upper_limit_and_ratios_not_numbers(results):
    res = results["meissner"]
    lam = param(res, "meissner", "lambda")
    assert lam.get("err") is None and "upper limit" in lam["note"]
    assert lam["value"] <= 1e-3
    b21, b31 = res["ratios"]["B2/B1"], res["ratios"]["B3/B1"]
    assert b21["status"] in ("undefined", "bound") and b21["err"] is None
    assert b31["status"] == "bound"
    statuses = []
    for pc in res["per_current"]:
        for key, num in (("B2/B1", 1), ("B3/B1", 2)):
            st = pc[key]["status"]
            statuses.append((key, st))
            assert st in ("bound", "undefined")  # never "ok": B1 is consistent with zero
            assert pc[key]["err"] is None
            if st == "bound":  # a positive lower bound, never above Bk / (B1 + 2 sigma1)
                b1, e1 = pc["fields"][0], pc["errs"][0]
                assert 0 < pc[key]["value"] <= pc["fields"][num] / (max(b1, 0) + 2 * e1)
    assert ("B3/B1", "bound") in statuses
    assert sum(st == "undefined" for key, st in statuses if key == "B2/B1") >= 2
    assert res["exponent"]["value"] is None
    # the degenerate limits (Bean with Ic >> I, intermediate below Silsbee) tie with meissner
    for m in res["models"][1:3]:
        assert m["name"] in ("bean", "intermediate") and "meissner" in m.get("limit", "")


@pytest.mark.parametrize("model, expected, n_expected", [("uniform", (math.sqrt(2), 2.0), 1.0),
                                                          ("linear-j", (2.0, 4.0), 2.0)])
def test_ratios_and_exponent(results, model, expected, n_expected):
    res = results[model]
    for key, want in zip(("B2/B1", "B3/B1"), expected):
        rr = res["ratios"][key]
        assert rr["status"] == "ok"
        assert abs(rr["value"] - want) < 3 * rr["err"] + 2e-3 * want  # radii rounded to 7.07 mm
        for pc in res["per_current"]:
            assert abs(pc[key]["value"] - want) < 3 * pc[key]["err"] + 2e-3 * want
    ex = res["exponent"]
    assert abs(ex["value"] - n_expected) < 3 * ex["err"] + 1e-3


@pytest.mark.parametrize("model, linear", [("uniform", True), ("linear-j", True), ("meissner", True),
                                           ("bean", False), ("intermediate", False)])
def test_pooling_checks_that_the_shape_is_current_independent(results, model, linear):
    res = results[model]
    assert res["linearity"]["consistent"] is linear
    assert res["ratios"]["B3/B1"]["current_dependent"] is (not linear)
    assert ("changes with current" in res["verdict"]) is (not linear)


def test_bean_per_current_ratios_match_design_table(results):
    pc = next(p for p in results["bean"]["per_current"] if p["current"] == pytest.approx(270.0))
    # DESIGN.md section 5: I/Ic = 0.90 -> (1.89, 3.00)
    assert pc["B2/B1"]["value"] == pytest.approx(1.89, abs=0.02)
    assert pc["B3/B1"]["value"] == pytest.approx(3.00, abs=0.03)
    low = next(p for p in results["bean"]["per_current"] if p["current"] == pytest.approx(90.0))
    assert low["B2/B1"]["status"] == "undefined"  # no field at r1, r2 below I/Ic = 0.75


def test_outer_check_and_calibration_factor():
    res = run("linear-j", k=0.97, seed=7)
    oc = res["outer_check"]
    assert oc["ratio"] == pytest.approx(0.97, abs=3 * oc["ratio_err"] + 1e-4)
    assert len(oc["per_current"]) == len(CURRENTS)
    for row in oc["per_current"]:
        assert row["expected"] == pytest.approx(P.outer_field(row["current"], R))
    k = param(res, "linear-j", "k")
    assert abs(k["value"] - 0.97) < 3 * k["err"] + 1e-4


def test_background_offset_removal_without_reversal():
    frame = radial_frame("linear-j", polarities=(1, 0), seed=11, offset=5e-4)
    res = analyze(Dataset(frame=frame, kind="radial-field"))
    assert res["offset_method"] == "background"
    assert res["best_model"] == "linear-j"
    rr = res["ratios"]["B2/B1"]
    assert abs(rr["value"] - 2.0) < 3 * rr["err"] + 4e-3


def test_ratio_status_rules():
    assert ratio(1.0, 0.1, 0.5, 0.1)["status"] == "ok"
    bound = ratio(1.0, 0.1, 0.1, 0.1)  # lower limit of the numerator over upper limit of the denominator
    assert bound["status"] == "bound" and bound["value"] == pytest.approx(0.8 / 0.3)
    assert ratio(1.0, 0.1, 0.25, 0.1)["status"] == "bound"  # 2.5 sigma is not "clearly non-zero"
    assert ratio(-1.0, 0.1, 0.1, 0.1)["status"] == "undefined"  # a bound is never negative
    ok = ratio(2.0, 0.1, 1.0, 0.1)
    lo, hi = ok["interval"]
    assert lo < 2.0 < hi and hi - 2.0 > 2.0 - lo  # Fieller: skewed towards large ratios
    assert ratio(0.1, 0.1, 0.05, 0.1)["status"] == "undefined"
    assert ratio(0.1, 0.1, 0.05, 0.1)["value"] is None


def test_normal_state_control_file_comes_out_uniform(tmp_path):
    frame = radial_frame("uniform", seed=5, temperature=9.0, repeats=2, currents=(20.0, 40.0, 60.0))
    lines = ["#Procedure: <procedures.normal_control.NormalStateControl>", "#Parameters:",
             "#\tSample: Pb", "#\tSample radius: 10 mm", "#Data:", ",".join(frame.columns)]
    lines += [",".join(f"{v:.12g}" for v in row) for row in frame.to_numpy(float)]
    p = tmp_path / "03-normal-control.csv"
    p.write_text("\n".join(lines) + "\n")
    res = analyze(p)
    assert res["kind"] == "radial-field" and res["control"] is True
    assert res["best_model"] == "uniform"
    assert res["ratios"]["B3/B1"]["value"] == pytest.approx(2.0, abs=0.01)
    assert res["sample_radius"] == pytest.approx(0.01)


def test_no_uncertainties_refuses_a_verdict(tmp_path):
    frame = radial_frame("bean", seed=4, repeats=1).drop(columns=["Field std (T)", "Repeat"])
    res = analyze(Dataset(frame=frame, kind="radial-field"))
    assert res["best_model"] is None and res["refused"]
    assert res["verdict"].startswith("no verdict") and "noise cannot be estimated" in res["verdict"]
    assert all(m["p_value"] is None for m in res["models"])
    assert all(r["status"] == "undefined" for r in res["ratios"].values())
    assert any("uncertainties" in w for w in res["warnings"])


def test_one_repeat_with_instrument_errors_still_judges():
    frame = radial_frame("uniform", seed=4, repeats=1)
    res = analyze(Dataset(frame=frame, kind="radial-field"))
    assert res["best_model"] == "uniform" and res["noise"]["model"] == "instrument"
    assert res["ratios"]["B3/B1"]["status"] == "ok"


def _known(model, seed, fmt="foreign", **kw):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from known_truth import radial_dataset

    return radial_dataset(model, np.random.default_rng(seed), fmt, **kw)


@pytest.mark.parametrize("fmt", ["foreign", "labctl"])
def test_offset_drift_is_removed_with_a_warning(fmt):
    res = analyze(Dataset(frame=_known("uniform", 3, fmt, drift_per_s=1e-7), kind="radial-field"),
                  models=("uniform", "linear-j"))
    assert res["drift"]["removed"] is True
    assert any("drifts" in w for w in res["warnings"])
    for key, want in (("B2/B1", 0.00707 / 0.005), ("B3/B1", 2.0)):
        e = res["ratios"][key]
        assert e["status"] == "ok" and abs(e["value"] - want) < 3 * e["err"]


def test_a_displaced_probe_is_named_not_absorbed():
    res = analyze(Dataset(frame=_known("uniform", 4, probe_shift=2e-4), kind="radial-field"))
    assert any("looks displaced" in w and "r = 5 mm" in w for w in res["warnings"])
    assert res["ratios"]["B2/B1"]["err"] > 0.003  # the position uncertainty is in the error


def test_pooled_and_per_current_statuses_agree_on_meissner_data():
    for seed in range(6):
        res = analyze(Dataset(frame=_known("meissner", seed), kind="radial-field"), models=("meissner",))
        for key in ("B2/B1", "B3/B1"):
            pooled = res["ratios"][key]["status"]
            per = [pc[key]["status"] for pc in res["per_current"]]
            assert pooled != "ok" or "ok" in per
            assert all((pc[key]["value"] or 1) > 0 for pc in res["per_current"] if pc[key]["status"] == "bound")
