"""Residual voltage against total current (DESIGN.md section 2, step 7).

Current-reversal pairs are combined as (V(+I) - V(-I)) / 2 (the k-th positive
reading with the k-th negative one).  The noise is instrumental, so the variance
of one sample is pooled over the currents (degrees of freedom sum(n - 1)), with
``Voltage std`` as a floor; with one reading per current and no ``Voltage std``
the straight line's residuals are used (n - 2 dof).  The mean voltage per current
is fitted with a straight line V = a + b I (weights: the number of readings); the
slope's t statistic uses those degrees of freedom; a lack-of-fit F-test says when
the voltage is not linear in I.  A warning says when the file has neither a
current reversal nor a zero-current reading.

``p_value`` is one-sided, for the hypothesis that V *decreases* with I
(small p: a significant decrease); ``p_two_sided`` tests any trend.  Spearman's
rank correlation is reported as a distribution-free cross-check.
``decreasing`` is True when the slope is negative with p_value < ``alpha`` (0.05).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from labctl.analysis import stats as S
from labctl.analysis.loading import AnalysisError, Dataset


def _samples(i, v, s, pol):
    """Per |I|: the offset-corrected samples and their per-row variances.

    With both polarities the k-th positive reading is paired with the k-th negative one:
    (V+ - V-)/2; otherwise the readings, sign-corrected for negative currents."""
    mag = np.round(np.abs(i), 9)
    out = {}
    reversal = False
    for m in np.unique(mag):
        sel = mag == m
        if pol is not None and (pol[sel] > 0).any() and (pol[sel] < 0).any():
            p, n = np.flatnonzero(sel & (pol > 0)), np.flatnonzero(sel & (pol < 0))
            k = min(len(p), len(n))
            vals = 0.5 * (v[p[:k]] - v[n[:k]])
            var = 0.25 * (s[p[:k]] ** 2 + s[n[:k]] ** 2)
            reversal = True
        else:
            sign = np.where(i[sel] < 0, -1.0, 1.0)
            vals = v[sel] * sign
            var = s[sel] ** 2
        out[float(m)] = (vals, var)
    return out, reversal


def analyze_residual_arrays(current, voltage, voltage_std=None, polarity=None, alpha: float = 0.05,
                            reversed_in_file: bool = False) -> dict:
    """``reversed_in_file``: each voltage is already a reversal pair (V+ - V-)/2 (our procedure's
    ``V+ (V)``/``V- (V)`` columns)."""
    i = np.asarray(current, float)
    v = np.asarray(voltage, float)
    s = np.full(len(v), np.nan) if voltage_std is None else np.asarray(voltage_std, float)
    pol = None if polarity is None else np.sign(np.asarray(polarity, float))
    groups, reversal = _samples(i, v, s, pol)
    reversal = reversal or reversed_in_file
    notes = []
    has_zero = 0.0 in groups
    if not reversal and not has_zero:
        notes.append("no current reversal and no zero-current reading: thermal-EMF offsets are not removed "
                     "(a constant offset does not change the slope, a drifting one does)")
    x = np.array(sorted(groups))
    if len(x) < 3:
        raise AnalysisError(f"residual-voltage trend needs at least 3 distinct currents (got {len(x)})")
    y = np.array([groups[c][0].mean() for c in x])
    cnt = np.array([len(groups[c][0]) for c in x], float)
    n = len(x)
    pooled, nu = S.pooled_variance(groups[c][0] for c in x)
    row_var = np.concatenate([groups[c][1] for c in x])
    floor = float(np.mean(row_var)) if np.isfinite(row_var).all() and len(row_var) else float("nan")
    a_mat = np.column_stack([np.ones(n), x])
    if nu > 0:
        sigma2 = max(pooled, floor) if np.isfinite(floor) else pooled
        noise = "pooled within-current scatter" + (" (instrument floor)" if np.isfinite(floor) and floor > pooled
                                                   else "")
        dof_noise = nu
    elif np.isfinite(floor) and floor > 0:
        sigma2, dof_noise, noise = floor, math.inf, "instrument ('Voltage std')"
    else:
        sigma2, dof_noise, noise = None, n - 2, "residuals of the straight line (one reading per current)"
    w = cnt.copy()
    cov0 = np.linalg.inv((a_mat * w[:, None]).T @ a_mat)
    coef = cov0 @ ((a_mat * w[:, None]).T @ y)
    resid = y - a_mat @ coef
    rss = float(np.sum(w * resid**2))
    lof_p = None
    if sigma2 is None:
        sigma2 = rss / (n - 2) if n > 2 else float("nan")
    elif n > 2:
        lof_p = S.gof_p(rss / sigma2, n - 2, dof_noise)
        if lof_p is not None and lof_p < 0.003:
            notes.append(f"the voltage is not a straight line in the current (lack of fit p = {lof_p:.2g}): "
                         f"the slope is an average trend")
    chi2 = rss / sigma2 if sigma2 and np.isfinite(sigma2) and sigma2 > 0 else None
    slope = float(coef[1])
    slope_err = float(math.sqrt(cov0[1, 1] * sigma2)) if sigma2 and np.isfinite(sigma2) else float("nan")
    if slope_err > 0 and np.isfinite(slope_err):
        t = slope / slope_err
        p_dec = S.t_cdf(t, dof_noise)
        p_two = S.t_p_two_sided(t, dof_noise)
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
    err_mean = [math.sqrt(sigma2 / c) if sigma2 and np.isfinite(sigma2) else None for c in cnt]
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
        "chi2": chi2,
        "dof": int(n - 2),
        "noise": noise,
        "noise_sigma": math.sqrt(sigma2) if sigma2 and np.isfinite(sigma2) else None,
        "noise_dof": dof_noise if math.isfinite(dof_noise) else None,
        "lack_of_fit_p": lof_p,
        "reversal": reversal,
        "alpha": alpha,
        "currents": x.tolist(),
        "voltages": y.tolist(),
        "voltage_errs": err_mean,
        "verdict": verdict,
        "notes": notes,
    }


def analyze_residual(ds: Dataset, alpha: float = 0.05, **_options) -> dict:
    f = ds.frame
    return analyze_residual_arrays(
        f["Current (A)"].to_numpy(float),
        f["Voltage (V)"].to_numpy(float),
        f["Voltage std (V)"].to_numpy(float) if "Voltage std (V)" in f else None,
        f["Polarity"].to_numpy(float) if "Polarity" in f else None,
        alpha=alpha,
        reversed_in_file="V+ (V)" in f and "V- (V)" in f,
    )
