"""Radial field B(r) at a few radii, several currents, repeats and current reversal.

Pipeline (DESIGN.md sections 2 and 5):

1. Offset removal per repeat, current and radius: (B(+I) - B(-I)) / 2 when both
   polarities exist; else B(+I) - B(0) with the zero-current reading at the same
   radius (same repeat and current if available).
2. Pool over repeats: mean, standard error = max(scatter / sqrt(n),
   propagated ``Field std``).
3. Ratios B2/B1, B3/B1 (radii sorted, r1 the smallest) per current and pooled
   (pooled: the current-normalised field b(r) = weighted slope of B against I).
   A denominator within 2 sigma of zero gives status ``undefined`` (numerator
   also consistent with zero) or ``bound`` (value = lower bound Bk / (B1 + 2 sigma1)).
4. Exponent n of B ~ r^n: weighted fit of ln B against ln r (common n, one
   intercept per current) over fields more than 2 sigma above zero.
5. Model comparison: every model of :mod:`labctl.physics` fitted to the fields
   (all currents and radii, weighted) with a common calibration factor k and its
   own parameter (Ic for bean, lambda for meissner, Hc for intermediate),
   ranked by AIC (ties: the simpler model first), with chi2, BIC and p-value.
6. Outer check: B at the outer radius against mu0 I / (2 pi R).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import chi2 as chi2_dist

from labctl.analysis.loading import AnalysisError, Dataset
from labctl.physics import (
    field_bean,
    field_intermediate,
    field_linear_j,
    field_meissner,
    field_uniform,
    outer_field,
)

MODEL_ORDER = ("uniform", "linear-j", "meissner", "bean", "intermediate")  # tie-break: simpler first
EXPECTED_RATIOS = {"uniform": (math.sqrt(2), 2.0), "linear-j": (2.0, 4.0)}
DEFAULT_RADIUS = 0.010
LAMBDA_BOUNDS = (1e-9, 1e-3)
INTERMEDIATE_LAMBDA = 50e-9
P_REJECT = 0.003  # ~3 sigma
LIMIT_DCHI2 = 9.0  # a parameter must beat its degenerate limit by 3 sigma to count as measured
# Where a model's parameter range ends, the model becomes another one:
DEGENERATE_LIMITS = {
    "bean": {"lo": "uniform", "hi": "meissner"},  # Ic <= I: uniform; Ic >> I: flux-free inside
    "intermediate": {"lo": "uniform", "hi": "meissner"},  # Hc -> 0: uniform; above Silsbee: London
}
GRID = 241


# ---------------------------------------------------------------------------
# reduction
# ---------------------------------------------------------------------------
def _group_mean(b: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    n = len(b)
    mean = float(np.mean(b))
    errs = []
    if np.all(np.isfinite(s)):
        errs.append(float(np.sqrt(np.sum(s**2))) / n)
    if n >= 2:
        errs.append(float(np.std(b, ddof=1)) / math.sqrt(n))
    return mean, (max(errs) if errs else float("nan"))


def reduce_fields(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Offset-corrected fields pooled over repeats: columns current, radius, field, err, repeats, method."""
    notes: list[str] = []
    cur = frame["Current (A)"].to_numpy(float) if "Current (A)" in frame else np.ones(len(frame))
    rad = frame["Radius (m)"].to_numpy(float)
    fld = frame["Field (T)"].to_numpy(float)
    std = frame["Field std (T)"].to_numpy(float) if "Field std (T)" in frame else np.full(len(frame), np.nan)
    if "Readings" in frame:  # 'Field std' is the scatter of the readings; the row's error is std / sqrt(n)
        std = std / np.sqrt(np.maximum(frame["Readings"].to_numpy(float), 1.0))
    rep = frame["Repeat"].to_numpy(float) if "Repeat" in frame else np.zeros(len(frame))
    if "Polarity" in frame:
        pol = np.sign(frame["Polarity"].to_numpy(float))
        cur = np.abs(cur)
    else:
        pol = np.sign(cur)
        cur = np.abs(cur)
    df = pd.DataFrame({"rep": rep, "i": np.round(cur, 6), "r": np.round(rad, 9), "pol": pol,
                       "b": fld, "s": std})
    groups = {key: _group_mean(g["b"].to_numpy(), g["s"].to_numpy())
              for key, g in df.groupby(["rep", "i", "r", "pol"], sort=True)}
    # zero-current backgrounds, looked up by (rep, i, r), then (rep, r), then (r)
    bg_rows = df[df["pol"] == 0]
    bg_exact = {(k[0], k[1], k[2]): v for k, v in groups.items() if k[3] == 0}
    bg_rep = {key: _group_mean(g["b"].to_numpy(), g["s"].to_numpy())
              for key, g in bg_rows.groupby(["rep", "r"])}
    bg_any = {key: _group_mean(g["b"].to_numpy(), g["s"].to_numpy()) for key, g in bg_rows.groupby("r")}

    def background(rp, i, r):
        for table, key in ((bg_exact, (rp, i, r)), (bg_rep, (rp, r)), (bg_any, r)):
            if key in table:
                return table[key]
        return None

    signals = []
    methods = set()
    for (rp, i, r) in sorted({(k[0], k[1], k[2]) for k in groups if k[3] != 0 and k[1] > 0}):
        p = groups.get((rp, i, r, 1.0))
        m = groups.get((rp, i, r, -1.0))
        bg = background(rp, i, r)
        if p and m:
            val, err, how = 0.5 * (p[0] - m[0]), 0.5 * math.hypot(p[1], m[1]), "reversal"
        elif p and bg:
            val, err, how = p[0] - bg[0], math.hypot(p[1], bg[1]), "background"
        elif m and bg:
            val, err, how = -(m[0] - bg[0]), math.hypot(m[1], bg[1]), "background"
        elif p:
            val, err, how = p[0], p[1], "none"
        else:
            val, err, how = -m[0], m[1], "none"
        methods.add(how)
        signals.append((rp, i, r, val, err))
    if not signals:
        raise AnalysisError("no field readings at non-zero current")
    if "none" in methods:
        notes.append("some fields have no reversed or zero-current reading: offset not removed there")
    sig = pd.DataFrame(signals, columns=["rep", "i", "r", "b", "s"])
    rows = []
    for (i, r), g in sig.groupby(["i", "r"], sort=True):
        mean, err = _group_mean(g["b"].to_numpy(), g["s"].to_numpy())
        rows.append({"current": float(i), "radius": float(r), "field": mean, "err": err,
                     "repeats": len(g)})
    table = pd.DataFrame(rows)
    method = ("reversal" if methods == {"reversal"} else
              "background" if methods == {"background"} else "+".join(sorted(methods)))
    table.attrs["offset_method"] = method
    return table, notes


def _fill_errors(table: pd.DataFrame, notes: list[str]) -> bool:
    """Replace missing/zero errors; returns True if errors must be estimated from the fit."""
    err = table["err"].to_numpy(float)
    good = np.isfinite(err) & (err > 0)
    if good.all():
        return False
    if good.any():
        table.loc[~good, "err"] = float(np.median(err[good]))
        notes.append(f"{int((~good).sum())} field(s) without an uncertainty: median uncertainty used")
        return False
    table["err"] = 1.0
    notes.append("no uncertainties in the data (no 'Field std', no repeats): scaled from the best fit")
    return True


# ---------------------------------------------------------------------------
# ratios and exponent
# ---------------------------------------------------------------------------
def ratio(num: float, num_err: float, den: float, den_err: float) -> dict:
    """B_k / B_1 with status ok / bound / undefined (see the module docstring)."""
    if not (np.isfinite(den) and np.isfinite(num)):
        return {"value": None, "err": None, "status": "undefined"}
    if abs(den) < 2 * den_err:
        if abs(num) < 2 * num_err:
            return {"value": None, "err": None, "status": "undefined"}
        bound = num / (max(den, 0.0) + 2 * den_err)
        return {"value": float(bound), "err": None, "status": "bound"}
    q = num / den
    err = math.sqrt(num_err**2 + (q * den_err) ** 2) / abs(den)
    return {"value": float(q), "err": float(err), "status": "ok"}


def _ratios_at(radii: list[float], field: dict, err: dict) -> dict:
    out = {}
    r1 = radii[0]
    for k, rk in enumerate(radii[1:3], start=2):
        out[f"B{k}/B1"] = ratio(field[rk], err[rk], field[r1], err[r1])
    return out


def exponent_fit(table: pd.DataFrame) -> dict:
    """n in B ~ r^n: common slope of ln B vs ln r, one intercept per current.

    Uses radii whose pooled (current-normalised) field is more than 3 sigma above
    zero, and there the fields more than 2 sigma above zero: a noise excursion at
    one current cannot produce an exponent from a profile that is zero inside.
    """
    pf, pe = pooled_normalised(table)
    good_r = [r for r in pf if pf[r] > 3 * pe[r]]
    sel = table[(table["field"] > 2 * table["err"]) & (table["radius"] > 0)
                & table["radius"].isin(good_r)]
    per_current = sel.groupby("current").filter(lambda g: len(g) >= 2)
    if per_current["radius"].nunique() < 2 or len(per_current) < 2:
        return {"value": None, "err": None, "points": len(per_current),
                "message": "fewer than two radii with a field significantly above zero"}
    currents = sorted(per_current["current"].unique())
    x = np.log(per_current["radius"].to_numpy(float))
    y = np.log(per_current["field"].to_numpy(float))
    w = (per_current["field"].to_numpy(float) / per_current["err"].to_numpy(float)) ** 2
    a = np.zeros((len(x), len(currents) + 1))
    a[:, 0] = x
    for j, c in enumerate(currents):
        a[:, j + 1] = per_current["current"].to_numpy(float) == c
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
    cov = np.linalg.pinv((a * w[:, None]).T @ a)
    dof = len(x) - a.shape[1]
    chi2 = float(np.sum(w * (y - a @ coef) ** 2))
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    return {"value": float(coef[0]), "err": float(math.sqrt(cov[0, 0] * scale)), "points": len(x),
            "chi2": chi2, "dof": int(dof)}


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def model_field(name: str, r, current, radius: float, param: float | None = None) -> np.ndarray:
    """Model B(r) (T) for arrays r and current (calibration factor 1)."""
    r = np.asarray(r, float)
    current = np.asarray(current, float)
    out = np.empty_like(r)
    for c in np.unique(current):
        s = current == c
        if name == "uniform":
            out[s] = field_uniform(r[s], c, radius)
        elif name == "linear-j":
            out[s] = field_linear_j(r[s], c, radius)
        elif name == "meissner":
            out[s] = field_meissner(r[s], c, radius, param)
        elif name == "bean":
            out[s] = field_bean(r[s], c, radius, param)
        elif name == "intermediate":
            out[s] = field_intermediate(r[s], c, radius, param, INTERMEDIATE_LAMBDA)
        else:
            raise ValueError(f"unknown model {name!r}")
    return out


def _profile(f: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """Best k for B = k f, its conditional error, and chi2."""
    w = 1.0 / s**2
    ff = float(np.sum(w * f * f))
    if ff <= 0:
        return 0.0, float("inf"), float(np.sum(w * b * b))
    k = float(np.sum(w * f * b)) / ff
    return k, 1.0 / math.sqrt(ff), float(np.sum(w * (b - k * f) ** 2))


def _param_space(name: str, currents: np.ndarray, radius: float):
    """(parameter key, log-bounds, unused, unit) of a model's own parameter."""
    imin, imax = float(currents.min()), float(currents.max())
    if name == "meissner":
        return "lambda", (math.log(LAMBDA_BOUNDS[0]), math.log(LAMBDA_BOUNDS[1])), lambda p: p, "m"
    if name == "bean":
        return "ic", (math.log(0.5 * imin), math.log(1e3 * imax)), lambda p: p, "A"
    if name == "intermediate":
        # parameterised by the Silsbee current Is = 2 pi R Hc; reported as Hc (A/m)
        return "hc", (math.log(1e-3 * imin / (2 * math.pi * radius)),
                      math.log(1e3 * imax / (2 * math.pi * radius))), lambda p: p, "A/m"
    return None


def fit_model(name: str, r, current, b, err, radius: float) -> dict:
    """Fit one model (common k plus its own parameter) by weighted least squares."""
    r, current, b, err = (np.asarray(x, float) for x in (r, current, b, err))
    n = len(b)
    space = _param_space(name, current, radius)
    params: dict = {}
    if space is None:
        f = model_field(name, r, current, radius)
        k, kerr, chi2 = _profile(f, b, err)
        npar = 1
    else:
        key, (xlo, xhi), _unused, unit = space

        def chi2_at(x: float) -> float:
            return _profile(model_field(name, r, current, radius, math.exp(x)), b, err)[2]

        xs = np.linspace(xlo, xhi, GRID)
        cs = np.array([chi2_at(x) for x in xs])
        j = int(np.argmin(cs))
        a, c = xs[max(j - 1, 0)], xs[min(j + 1, GRID - 1)]
        best_x, best_c = xs[j], cs[j]
        if c > a:
            res = minimize_scalar(chi2_at, bounds=(a, c), method="bounded",
                                  options={"xatol": 1e-6})
            if res.success and res.fun <= best_c:
                best_x, best_c = float(res.x), float(res.fun)
        f = model_field(name, r, current, radius, math.exp(best_x))
        k, kerr, chi2 = _profile(f, b, err)
        npar = 2
        # Delta chi2 = 1 interval (and one-sided 95 % limits) from the profile
        def edge(target: float, side: int) -> float | None:
            idx = np.flatnonzero(xs > best_x) if side > 0 else np.flatnonzero(xs < best_x)[::-1]
            prev = best_x
            for x, cx in zip(xs[idx], cs[idx]):
                if cx > target:
                    try:
                        return brentq(lambda z: chi2_at(z) - target, min(prev, x), max(prev, x), xtol=1e-8)
                    except ValueError:
                        return x
                prev = x
            return None

        lo1, hi1 = edge(best_c + 1.0, -1), edge(best_c + 1.0, +1)
        # A parameter whose limit (grid end) is within Delta chi2 = 9 (3 sigma) of the best fit is
        # not measured: only a one-sided 95 % limit is reported (e.g. Meissner lambda -> 0).
        free_lo = cs[0] - best_c < LIMIT_DCHI2
        free_hi = cs[-1] - best_c < LIMIT_DCHI2
        value = math.exp(best_x)
        entry = {"value": value, "err": None, "unit": unit}
        if free_lo and free_hi:
            entry["note"] = "not constrained by the data"
        elif free_lo:
            hi95 = edge(best_c + 2.71, +1)
            entry["upper_limit_95"] = math.exp(hi95) if hi95 is not None else None
            entry["note"] = "only an upper limit: the data cannot tell smaller values apart"
        elif free_hi:
            lo95 = edge(best_c + 2.71, -1)
            entry["lower_limit_95"] = math.exp(lo95) if lo95 is not None else None
            entry["note"] = "only a lower limit: the data cannot tell larger values apart"
        elif lo1 is not None and hi1 is not None:
            entry["err"] = 0.5 * (math.exp(hi1) - math.exp(lo1))
            entry["interval"] = [math.exp(lo1), math.exp(hi1)]
        else:
            entry["note"] = "uncertainty not determined"
        at_lo = abs(best_x - xlo) < 1e-3 * (xhi - xlo)
        at_hi = abs(best_x - xhi) < 1e-3 * (xhi - xlo)
        entry["at_bound"] = bool(at_lo or at_hi)
        limits = DEGENERATE_LIMITS.get(name, {})
        reduces = [limits[end] for end, free in (("lo", free_lo), ("hi", free_hi)) if free and end in limits]
        if at_lo or at_hi:
            entry["note"] = (f"at the {'lower' if at_lo else 'upper'} end of its fit range "
                             f"({math.exp(xlo):.3g} - {math.exp(xhi):.3g} {unit})")
        if name == "intermediate":
            entry["silsbee_current"] = 2 * math.pi * radius * value
        params[key] = entry
    params = {"k": {"value": k, "err": kerr, "unit": ""}, **params}
    dof = n - npar
    reduces_to = reduces if space is not None else []
    return {
        "reduces_to": reduces_to,
        "name": name,
        "chi2": float(chi2),
        "dof": int(dof),
        "npar": npar,
        "aic": float(chi2 + 2 * npar),
        "bic": float(chi2 + npar * math.log(max(n, 1))),
        "p_value": float(chi2_dist.sf(chi2, dof)) if dof > 0 else None,
        "params": params,
    }


_LIMIT_TEXT = {
    ("bean", "uniform"): "consistent with its uniform limit (Ic <= I)",
    ("bean", "meissner"): "consistent with its meissner limit (Ic >> I: no field inside)",
    ("intermediate", "uniform"): "consistent with its uniform limit (Hc -> 0)",
    ("intermediate", "meissner"): "consistent with its meissner limit (every I below the Silsbee current)",
}


def _limit_note(m: dict) -> str | None:
    notes = [_LIMIT_TEXT.get((m["name"], t), f"reduces to {t}") for t in m.get("reduces_to", [])]
    return "; ".join(notes) if notes else None


def compare_models(table: pd.DataFrame, radius: float, models=MODEL_ORDER) -> list[dict]:
    r = table["radius"].to_numpy(float)
    cur = table["current"].to_numpy(float)
    b = table["field"].to_numpy(float)
    s = table["err"].to_numpy(float)
    fits = [fit_model(name, r, cur, b, s, radius) for name in models]
    for m in fits:
        note = _limit_note(m)
        if note:
            m["limit"] = note
    order = {name: k for k, name in enumerate(MODEL_ORDER)}
    fits.sort(key=lambda m: (m["aic"], order.get(m["name"], 99)))
    # A model whose parameter is consistent (within 3 sigma) with a limit in which it becomes a
    # simpler model does not outrank that simpler model: the extra parameter is not measured.
    for _ in range(len(fits)):
        moved = False
        for k, m in enumerate(fits):
            for target in m.get("reduces_to", []):
                j = next((j for j, f in enumerate(fits) if f["name"] == target), None)
                if j is not None and j > k:
                    fits.insert(k, fits.pop(j))
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
    best = fits[0]["aic"]
    for m in fits:
        m["delta_aic"] = float(m["aic"] - best)
    return fits


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def verdict_text(models: list[dict]) -> str:
    best = models[0]
    if best["p_value"] is not None and best["p_value"] < P_REJECT:
        head = (f"no model describes the data well; the least bad is {best['name']} "
                f"(chi2 = {best['chi2']:.4g} for {best['dof']} dof, p = {_fmt_p(best['p_value'])})")
    else:
        head = (f"best model: {best['name']} (chi2 = {best['chi2']:.4g} for {best['dof']} dof, "
                f"p = {_fmt_p(best['p_value'])})")
    parts = []
    for m in models[1:]:
        p = m["p_value"]
        if p is not None and p < P_REJECT:
            status = "rejected"
        elif m["delta_aic"] > 10:
            status = "disfavoured"
        else:
            status = "not rejected"
        extra = f"; {m['limit']}" if m.get("limit") else ""
        parts.append(f"{m['name']} {status} (p = {_fmt_p(p)}, dAIC = {m['delta_aic']:+.3g}{extra})")
    return head + ". " + "; ".join(parts) + "."


def outer_check(table: pd.DataFrame, radius: float) -> dict | None:
    rmax = float(table["radius"].max())
    if abs(rmax - radius) > 0.05 * radius:
        return {"radius": rmax, "per_current": [], "ratio": None, "ratio_err": None,
                "message": f"outermost radius {rmax * 1e3:.4g} mm is not at the wall R = {radius * 1e3:.4g} mm"}
    rows = table[np.isclose(table["radius"], rmax)]
    out = []
    for _, row in rows.iterrows():
        exp = outer_field(row["current"], max(rmax, radius))
        q = row["field"] / exp
        out.append({"current": float(row["current"]), "measured": float(row["field"]),
                    "measured_err": float(row["err"]), "expected": float(exp),
                    "ratio": float(q), "ratio_err": float(row["err"] / exp)})
    q = np.array([o["ratio"] for o in out])
    e = np.array([o["ratio_err"] for o in out])
    w = 1 / e**2
    mean = float(np.sum(w * q) / np.sum(w))
    err = float(1 / math.sqrt(np.sum(w)))
    return {"radius": rmax, "per_current": out, "ratio": mean, "ratio_err": err,
            "message": f"B(outer) = {mean:.4f} +- {err:.1g} x mu0 I / (2 pi R)"}


def pooled_normalised(table: pd.DataFrame) -> tuple[dict, dict]:
    """Per radius, the weighted slope b = B / I through the origin and its error."""
    field, err = {}, {}
    for r, g in table.groupby("radius"):
        i = g["current"].to_numpy(float)
        b = g["field"].to_numpy(float)
        s = g["err"].to_numpy(float)
        w = i**2 / s**2
        field[float(r)] = float(np.sum(i * b / s**2) / np.sum(w))
        err[float(r)] = float(1 / math.sqrt(np.sum(w)))
    return field, err


def current_linearity(table: pd.DataFrame) -> dict:
    """Test of B = I b(r) at every radius (profile shape independent of the current).

    Pooled ratios assume it; Bean or intermediate-state data fail it.
    """
    pf, _pe = pooled_normalised(table)
    pred = table["current"].to_numpy(float) * np.array([pf[float(r)] for r in table["radius"]])
    chi2 = float(np.sum(((table["field"].to_numpy(float) - pred) / table["err"].to_numpy(float)) ** 2))
    dof = int(len(table) - len(pf))
    p = float(chi2_dist.sf(chi2, dof)) if dof > 0 else None
    return {"chi2": chi2, "dof": dof, "p_value": p,
            "consistent": None if p is None else bool(p >= P_REJECT)}


def analyze_radial_field(ds: Dataset, sample_radius=None, models=MODEL_ORDER, **_options) -> dict:
    if isinstance(ds, pd.DataFrame):
        ds = Dataset(frame=ds, kind="radial-field")
    radius = float(sample_radius) if sample_radius is not None else (
        ds.parameter("Sample radius", "length") or DEFAULT_RADIUS)
    table, notes = reduce_fields(ds.frame)
    estimated = _fill_errors(table, notes)
    radii = sorted(table["radius"].unique().tolist())
    currents = sorted(table["current"].unique().tolist())
    if len(radii) < 2:
        raise AnalysisError(f"{ds.name}: fields at only one radius; ratios need at least two")
    if estimated:
        fits = compare_models(table, radius, models)
        best = fits[0]
        if best["dof"] > 0:
            table["err"] = math.sqrt(best["chi2"] / best["dof"]) or 1e-12
    models_out = compare_models(table, radius, models)
    per_current = []
    for c in currents:
        g = table[table["current"] == c].set_index("radius")
        rr = sorted(g.index.tolist())
        entry = {"current": float(c), "radii": rr,
                 "fields": [float(g.loc[x, "field"]) for x in rr],
                 "errs": [float(g.loc[x, "err"]) for x in rr]}
        if len(rr) >= 2:
            entry.update(_ratios_at(rr, g["field"].to_dict(), g["err"].to_dict()))
        per_current.append(entry)
    pf, pe = pooled_normalised(table)
    pooled = _ratios_at(radii, pf, pe)
    linearity = current_linearity(table)
    for entry in pooled.values():
        entry["current_dependent"] = linearity["consistent"] is False
    temperature = None
    if "Temperature (K)" in ds.frame and ds.frame["Temperature (K)"].notna().any():
        temperature = float(ds.frame["Temperature (K)"].mean())
    result = {
        "kind": "radial-field",
        "control": bool(getattr(ds, "control", False)),
        "sample_radius": radius,
        "radii": radii,
        "currents": currents,
        "temperature": temperature,
        "offset_method": table.attrs.get("offset_method"),
        "fields": table.to_dict(orient="records"),
        "ratios": pooled,
        "per_current": per_current,
        "exponent": exponent_fit(table),
        "models": models_out,
        "best_model": models_out[0]["name"],
        "linearity": linearity,
        "verdict": (
            (f"The profile shape changes with current (B = I b(r) rejected, p = {_fmt_p(linearity['p_value'])}): "
             f"pooled ratios are current averages, see per_current. ")
            if linearity["consistent"] is False else ""
        ) + verdict_text(models_out),
        "outer_check": outer_check(table, radius),
        "notes": notes,
    }
    if result["control"] and result["best_model"] != "uniform":
        result["notes"].append(
            "normal-state control does not come out uniform: check probe positions and calibration"
        )
    return result
