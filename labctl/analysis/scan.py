"""Radial scan: invert B(r) to the current density J(r) = (1 / (mu0 r)) d(r B)/dr.

The derivative is taken from a cubic smoothing spline of y = r B weighted by
1/sigma_y (scipy UnivariateSpline with smoothing s = N, the discrepancy
principle); without uncertainties a GCV smoothing spline (make_smoothing_spline)
is used and sigma is estimated from its residuals.  The uncertainty band is a
Monte Carlo: B is resampled within its standard error and the whole inversion
repeated (``n_mc`` times); ``j_err`` is the standard deviation.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.interpolate import UnivariateSpline, make_smoothing_spline

from labctl.analysis.loading import AnalysisError, Dataset
from labctl.analysis.radial import reduce_fields
from labctl.physics import MU0


def _spline_derivative(r: np.ndarray, y: np.ndarray, sy: np.ndarray | None):
    """(dy/dr at r, smoothed y at r).  Works on scaled variables (x = r / r_max,
    y / max|y|): the GCV search of make_smoothing_spline is not scale invariant."""
    xs = float(np.max(np.abs(r))) or 1.0
    ys = float(np.max(np.abs(y))) or 1.0
    x, yy = r / xs, y / ys
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sy is not None:
            k = min(3, len(r) - 1)
            sp = UnivariateSpline(x, yy, w=ys / sy, k=k, s=float(len(r)))
        else:
            sp = make_smoothing_spline(x, yy)
        return sp.derivative()(x) * ys / xs, sp(x) * ys


def invert_profile(radius, field, field_err=None, n_mc: int = 200, seed: int = 0) -> dict:
    """J(r) (A/m^2) with a Monte Carlo band from B(r) (T) at sorted, distinct radii (m)."""
    r = np.asarray(radius, float)
    b = np.asarray(field, float)
    order = np.argsort(r)
    r, b = r[order], b[order]
    s = None if field_err is None else np.asarray(field_err, float)[order]
    if len(r) < 5:
        raise AnalysisError(f"a radial scan needs at least 5 radii to differentiate (got {len(r)})")
    if np.any(r <= 0):
        raise AnalysisError("radial scan: radii must be > 0 (J = d(rB)/dr / (mu0 r))")
    notes = []
    if s is None or not np.all(np.isfinite(s) & (s > 0)):
        _d, ys = _spline_derivative(r, r * b, None)
        dof = max(len(r) - 4, 1)
        sigma_b = math.sqrt(float(np.sum(((r * b - ys) / r) ** 2)) / dof)
        s = np.full(len(r), sigma_b if sigma_b > 0 else 1e-12)
        notes.append("no field uncertainties: estimated from the residuals of a GCV smoothing spline")
    d, ys = _spline_derivative(r, r * b, r * s)
    j = d / (MU0 * r)
    rng = np.random.default_rng(seed)
    sims = []
    for _ in range(int(n_mc)):
        bb = b + rng.normal(0.0, s)
        dd, _ = _spline_derivative(r, r * bb, r * s)
        sims.append(dd / (MU0 * r))
    j_err = np.std(sims, axis=0, ddof=1) if len(sims) >= 2 else np.full(len(r), np.nan)
    i_enc = 2 * math.pi * ys / MU0  # 2 pi r B / mu0 on the smoothed profile
    return {"radius": r.tolist(), "field": b.tolist(), "field_err": s.tolist(), "j": j.tolist(),
            "j_err": j_err.tolist(), "i_enclosed": i_enc.tolist(), "n_mc": int(n_mc), "notes": notes}


def analyze_radial_scan(ds: Dataset, n_mc: int = 200, seed: int = 0, **_options) -> dict:
    f = ds.frame if isinstance(ds, Dataset) else ds
    name = ds.name if isinstance(ds, Dataset) else "<data>"
    notes: list[str] = []
    if "Current (A)" not in f.columns:
        f = f.copy()
        f["Current (A)"] = 1.0
        has_current = False
    else:
        has_current = True
    if "Polarity" not in f.columns:
        f = f.copy()
        f["Polarity"] = np.where(f["Current (A)"] == 0, 0.0, np.sign(f["Current (A)"]))
        f["Current (A)"] = f["Current (A)"].abs()
    table, n2 = reduce_fields(f)
    notes += n2
    currents = sorted(table["current"].unique().tolist())
    per = []
    for c in currents:
        g = table[table["current"] == c].sort_values("radius")
        err = g["err"].to_numpy(float)
        res = invert_profile(g["radius"], g["field"], err if np.all(np.isfinite(err)) else None,
                             n_mc=n_mc, seed=seed)
        res["current"] = float(c) if has_current else None
        per.append(res)
    if not per:
        raise AnalysisError(f"{name}: no field readings to invert")
    main = max(per, key=lambda p: (len(p["radius"]), p["current"] or 0))
    out = {"kind": "radial-scan", "current": main["current"], "radius": main["radius"],
           "field": main["field"], "field_err": main["field_err"], "j": main["j"], "j_err": main["j_err"],
           "i_enclosed": main["i_enclosed"], "n_mc": main["n_mc"], "notes": notes + main["notes"]}
    if len(per) > 1:
        out["per_current"] = per
    if has_current and main["current"]:
        out["i_enclosed_outer_ratio"] = main["i_enclosed"][-1] / main["current"]
    return out


__all__ = ["analyze_radial_scan", "invert_profile"]
