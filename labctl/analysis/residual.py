"""Residual voltage against total current (DESIGN.md section 2, step 7).

Current-reversal pairs are combined as (V(+I) - V(-I)) / 2 and repeated
readings at one current are averaged.  A weighted straight line V = a + b I
gives the slope b with its standard error (weights from ``Voltage std`` or the
scatter of repeats; scaled by the reduced chi2 when that exceeds 1, or taken
from the residuals when no uncertainties exist).

``p_value`` is one-sided, for the hypothesis that V *decreases* with I
(small p: a significant decrease); ``p_two_sided`` tests any trend.  Spearman's
rank correlation is reported as a distribution-free cross-check.
``decreasing`` is True when the slope is negative with p_value < ``alpha`` (0.05).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from labctl.analysis.loading import AnalysisError, Dataset


def _reduce(i, v, s, pol):
    """Mean V per |I| (after reversal), its error (nan if unknown) and count."""
    mag = np.round(np.abs(i), 9)
    rows = []
    for m in np.unique(mag):
        sel = mag == m
        if pol is not None and (pol[sel] > 0).any() and (pol[sel] < 0).any():
            p, n = sel & (pol > 0), sel & (pol < 0)
            vp, vn = v[p].mean(), v[n].mean()
            val = 0.5 * (vp - vn)
            ep = _err(v[p], s[p])
            en = _err(v[n], s[n])
            err = 0.5 * math.hypot(ep, en)
            cnt = int(sel.sum())
        else:
            sign = np.sign(i[sel]) if (i[sel] < 0).any() else 1.0
            vv = v[sel] * sign
            val = float(vv.mean())
            err = _err(vv, s[sel])
            cnt = int(sel.sum())
        rows.append((float(m), float(val), float(err), cnt))
    return np.array(rows, dtype=float).reshape(-1, 4)


def _err(vals: np.ndarray, std: np.ndarray) -> float:
    n = len(vals)
    cands = []
    if np.all(np.isfinite(std)) and n:
        cands.append(float(np.sqrt(np.sum(std**2))) / n)
    if n >= 2:
        cands.append(float(np.std(vals, ddof=1)) / math.sqrt(n))
    return max(cands) if cands else float("nan")


def analyze_residual_arrays(current, voltage, voltage_std=None, polarity=None, alpha: float = 0.05) -> dict:
    i = np.asarray(current, float)
    v = np.asarray(voltage, float)
    s = np.full(len(v), np.nan) if voltage_std is None else np.asarray(voltage_std, float)
    pol = None if polarity is None else np.sign(np.asarray(polarity, float))
    tab = _reduce(i, v, s, pol)
    if len(tab) < 3:
        raise AnalysisError(f"residual-voltage trend needs at least 3 distinct currents (got {len(tab)})")
    x, y, e = tab[:, 0], tab[:, 1], tab[:, 2]
    n = len(x)
    dof = n - 2
    weighted = bool(np.all(np.isfinite(e) & (e > 0)))
    w = 1.0 / e**2 if weighted else np.ones(n)
    a_mat = np.column_stack([np.ones(n), x])
    cov = np.linalg.inv((a_mat * w[:, None]).T @ a_mat)
    coef = cov @ ((a_mat * w[:, None]).T @ y)
    resid = y - a_mat @ coef
    chi2 = float(np.sum(w * resid**2))
    if weighted:
        scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    else:
        scale = chi2 / dof if dof > 0 else float("nan")
    slope = float(coef[1])
    slope_err = float(math.sqrt(cov[1, 1] * scale)) if np.isfinite(scale) else float("nan")
    if slope_err > 0 and np.isfinite(slope_err):
        t = slope / slope_err
        if weighted and scale == 1.0:
            p_dec = float(stats.norm.cdf(t))
            p_two = float(2 * stats.norm.sf(abs(t)))
        else:
            p_dec = float(stats.t.cdf(t, dof))
            p_two = float(2 * stats.t.sf(abs(t), dof))
    else:
        p_dec = p_two = float("nan")
    rho, p_rho = stats.spearmanr(x, y)
    decreasing = bool(slope < 0 and np.isfinite(p_dec) and p_dec < alpha)
    increasing = bool(slope > 0 and np.isfinite(p_dec) and (1 - p_dec) < alpha)
    if decreasing:
        verdict = (f"the residual voltage decreases with current (slope {slope:.3g} +- {slope_err:.2g} V/A, "
                   f"one-sided p = {p_dec:.2g}), as the hypothesis predicts")
    elif increasing:
        verdict = (f"the residual voltage increases with current (slope {slope:.3g} +- {slope_err:.2g} V/A, "
                   f"p = {1 - p_dec:.2g}), against the predicted decrease")
    else:
        verdict = (f"no significant trend (slope {slope:.3g} +- {slope_err:.2g} V/A, "
                   f"one-sided p for a decrease = {p_dec:.2g}): the predicted decrease is not seen")
    return {
        "kind": "residual",
        "slope": slope,
        "slope_err": slope_err,
        "intercept": float(coef[0]),
        "p_value": p_dec,
        "p_two_sided": p_two,
        "decreasing": decreasing,
        "spearman_rho": float(rho),
        "spearman_p": float(p_rho),
        "chi2": chi2 if weighted else None,
        "dof": int(dof),
        "alpha": alpha,
        "currents": x.tolist(),
        "voltages": y.tolist(),
        "voltage_errs": [float(z) if np.isfinite(z) else None for z in e],
        "verdict": verdict,
    }


def analyze_residual(ds: Dataset, alpha: float = 0.05, **_options) -> dict:
    f = ds.frame
    return analyze_residual_arrays(
        f["Current (A)"].to_numpy(float),
        f["Voltage (V)"].to_numpy(float),
        f["Voltage std (V)"].to_numpy(float) if "Voltage std (V)" in f else None,
        f["Polarity"].to_numpy(float) if "Polarity" in f else None,
        alpha=alpha,
    )
