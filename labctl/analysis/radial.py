"""Radial field B(r) at a few radii, several currents, repeats and current reversal.

Pipeline (DESIGN.md sections 2, 5 and 10; docs/analysis.md has the details):

1. Offset removal per repeat, current and radius: (B(+I) - B(-I)) / 2 when both
   polarities exist; else B(+I) - B(0) with the zero-current reading at the same
   radius.  A linear offset drift is estimated against the time column (else the
   row order) from the offset samples (B(+I) + B(-I)) / 2 or the zero-current
   readings, removed when significant, and reported; so is an offset that
   changes with the current (which reversal cannot remove).
2. Noise model: the probe's noise is instrumental, so the variance of one
   repeat's signal is pooled over every (current, radius) cell (degrees of
   freedom sum(n - 1)); sigma^2 = a^2 + (b B)^2 is used instead when a
   likelihood-ratio test prefers it; the per-row ``Field std`` (divided by
   sqrt(``Readings``)) is a floor.  One repeat and no per-row errors: no noise
   estimate, and no verdict.
3. Probe position: every radius has an unknown offset delta ~ N(0, sigma_pos)
   (``position_err`` option, the file's ``Position uncertainty``, default
   0.02 mm), marginalised analytically in every fit (a covariance
   sigma_pos^2 k^2 dB/dr dB/dr^T shared by the cells of one radius).
4. Ratios B2/B1, B3/B1 per current and pooled (pooled: the current-normalised
   field b(r), slope of B against I): Fieller intervals with Student-t
   quantiles; ``ok`` only when the denominator is > 3 (t-scaled) sigma from zero;
   otherwise a positive lower bound or ``undefined``.
5. Model comparison: every model fitted (common calibration k plus its own
   parameter) by generalised least squares; goodness of fit by the F-test
   chi2/dof ~ F(dof, noise dof); AIC/BIC ranking; Student-t parameter intervals.
6. Outer check: B at the outer radius against mu0 I / (2 pi R), flagged when it
   departs from 1 by more than 3 sigma.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq, minimize, minimize_scalar

from labctl.analysis import stats as S
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
DEFAULT_POSITION_ERR = 2e-5  # m: probe position uncertainty per radius when nothing better is known
LAMBDA_BOUNDS = (1e-9, 1e-3)
INTERMEDIATE_LAMBDA = 50e-9
P_REJECT = 0.003  # ~3 sigma
P_DRIFT = 0.01  # significance of an offset drift / current-dependent offset
LIMIT_DCHI2 = 9.0  # a parameter must beat its degenerate limit by 3 sigma to count as measured
# Where a model's parameter range ends, the model becomes another one:
DEGENERATE_LIMITS = {
    "bean": {"lo": "uniform", "hi": "meissner"},  # Ic <= I: uniform; Ic >> I: flux-free inside
    "intermediate": {"lo": "uniform", "hi": "meissner"},  # Hc -> 0: uniform; above Silsbee: London
}
GRID = 241
FINE = 25


# ---------------------------------------------------------------------------
# reduction: offsets, drift, noise model
# ---------------------------------------------------------------------------
def _linear_test(y: np.ndarray, cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, int]:
    """OLS of y on [1, cols...]: coefficients, their t statistics, residual variance, dof."""
    a = np.column_stack([np.ones(len(y))] + cols)
    dof = len(y) - a.shape[1]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    s2 = float(res @ res) / dof if dof > 0 else float("nan")
    cov = np.linalg.pinv(a.T @ a) * s2
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / se, 0.0)
    return coef, t, s2, dof


def _drift(df: pd.DataFrame, time_label: str, notes: list[str]) -> dict:
    """Estimate (and remove from df['b']) a linear offset drift; test a current-dependent offset."""
    info: dict = {"time": time_label, "slope": 0.0, "removed": False, "current_dependent": False}
    nz = df[df["pol"] != 0]
    agg = nz.groupby(["rep", "i", "r", "pol"])[["b", "t"]].mean().unstack("pol")
    if (1.0 in agg["b"].columns) and (-1.0 in agg["b"].columns):
        agg = agg.dropna()
    else:
        agg = agg.iloc[0:0]
    if len(agg) >= 4:
        o = 0.5 * (agg[("b", 1.0)] + agg[("b", -1.0)]).to_numpy(float)
        t = 0.5 * (agg[("t", 1.0)] + agg[("t", -1.0)]).to_numpy(float)
        i = agg.index.get_level_values("i").to_numpy(float)
        source = "offset samples (B+ + B-)/2"
        cols = [t - t.mean()] + ([i - i.mean()] if np.ptp(i) > 0 else [])
    else:
        z = df[df["pol"] == 0]
        if len(z) < 4 or z["t"].nunique() < 2:
            return info
        o, t, r = z["b"].to_numpy(float), z["t"].to_numpy(float), z["r"].to_numpy(float)
        source = "zero-current readings"
        radii = np.unique(r)
        cols = [t - t.mean()] + [(r == x).astype(float) for x in radii[1:]]
    if np.ptp(t) <= 0:
        return info
    coef, tstat, s2, dof = _linear_test(o, cols)
    if dof < 2:
        return info
    p_drift = S.t_p_two_sided(float(tstat[1]), dof)
    info.update(slope=float(coef[1]), p_value=p_drift, source=source)
    unit = "s" if time_label == "time" else "row"
    if p_drift < P_DRIFT:
        df["b"] = df["b"] - coef[1] * (df["t"] - t.mean())
        info["removed"] = True
        notes.append(f"the probe offset drifts by {coef[1]:.3g} T/{unit} (p = {p_drift:.2g}, from the {source} "
                     f"against the {time_label}); removed as a linear drift"
                     + ("" if time_label == "time" else
                        " (no time column: the row order is taken as the reading order)"))
    if source.startswith("offset") and len(cols) == 2 and dof >= 2:
        p_cur = S.t_p_two_sided(float(tstat[2]), dof)
        info["current_p_value"] = p_cur
        if p_cur < P_DRIFT:
            info["current_dependent"] = True
            notes.append(f"the offset (B+ + B-)/2 changes with the current ({coef[2]:.3g} T/A, p = {p_cur:.2g}): "
                         f"current reversal does not remove it (probe non-linearity or a field from the leads?)")
    return info


def _fit_hetero(means: np.ndarray, vars_: np.ndarray, dofs: np.ndarray) -> tuple[float, float, float] | None:
    """ML fit of sigma^2 = a^2 + b^2 B^2 to cell variances; returns (a2, b2, LR statistic vs constant)."""
    ok = dofs > 0
    m, v, k = means[ok], vars_[ok], dofs[ok]
    if len(m) < 4 or np.ptp(np.abs(m)) <= 0:
        return None
    s0 = float(np.sum(k * v) / np.sum(k))
    if s0 <= 0:
        return None

    def nll(x):
        s2 = np.exp(x[0]) + np.exp(x[1]) * m * m
        return float(np.sum(0.5 * k * (np.log(s2) + v / s2)))

    l0 = nll([math.log(s0), -80.0])
    best = None
    for frac in (0.1, 0.5, 0.9):
        x0 = [math.log(s0 * (1 - frac) + 1e-300), math.log(frac * s0 / max(np.mean(m * m), 1e-300))]
        res = minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 400})
        if best is None or res.fun < best.fun:
            best = res
    return float(np.exp(best.x[0])), float(np.exp(best.x[1])), float(2 * (l0 - best.fun))


def reduce_fields(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Offset-corrected fields pooled over repeats.

    Columns: current, radius, field (mean over repeats), err (its standard error from the
    noise model), repeats, sigma (noise of one repeat).  ``table.attrs``: ``offset_method``,
    ``dof`` (degrees of freedom of the noise estimate, inf when known), ``noise`` (the
    noise model), ``drift`` and ``refuse`` (why no uncertainty can be given, or None).
    """
    notes: list[str] = []
    n = len(frame)
    cur = frame["Current (A)"].to_numpy(float) if "Current (A)" in frame else np.ones(n)
    rad = frame["Radius (m)"].to_numpy(float)
    fld = frame["Field (T)"].to_numpy(float)
    std = frame["Field std (T)"].to_numpy(float) if "Field std (T)" in frame else np.full(n, np.nan)
    if "Readings" in frame:  # 'Field std' is the scatter of the readings; the row's error is std / sqrt(n)
        std = std / np.sqrt(np.maximum(frame["Readings"].to_numpy(float), 1.0))
    if "Polarity" in frame:
        pol = np.sign(frame["Polarity"].to_numpy(float))
    else:
        pol = np.sign(cur)
    cur = np.abs(cur)
    if "Time (s)" in frame and np.isfinite(frame["Time (s)"].to_numpy(float)).all():
        tcol, time_label = frame["Time (s)"].to_numpy(float), "time"
    else:
        tcol, time_label = np.arange(n, dtype=float), "row order"
    df = pd.DataFrame({"i": np.round(cur, 6), "r": np.round(rad, 9), "pol": pol, "b": fld, "s": std, "t": tcol})
    if "Repeat" in frame:
        df["rep"] = frame["Repeat"].to_numpy(float)
    else:  # repeated rows of one (current, radius, polarity) are repeats, in file order
        df["rep"] = df.groupby(["i", "r", "pol"]).cumcount().astype(float)
    drift = _drift(df, time_label, notes)

    df["s2"] = df["s"] ** 2

    def means(frame, keys):
        a = frame.groupby(keys, sort=True).agg(b=("b", "mean"), s2=("s2", "mean"), n=("b", "size"))
        return {k: (float(b), float(s2) / n) for k, b, s2, n in zip(a.index, a["b"], a["s2"], a["n"])}

    groups = means(df, ["rep", "i", "r", "pol"])
    bg_rows = df[df["pol"] == 0]
    bg_exact = {(k[0], k[1], k[2]): v for k, v in groups.items() if k[3] == 0}
    bg_rep = means(bg_rows, ["rep", "r"]) if len(bg_rows) else {}
    bg_any = means(bg_rows, "r") if len(bg_rows) else {}

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
            val, var, how = 0.5 * (p[0] - m[0]), 0.25 * (p[1] + m[1]), "reversal"
        elif p and bg:
            val, var, how = p[0] - bg[0], p[1] + bg[1], "background"
        elif m and bg:
            val, var, how = -(m[0] - bg[0]), m[1] + bg[1], "background"
        elif p:
            val, var, how = p[0], p[1], "none"
        else:
            val, var, how = -m[0], m[1], "none"
        methods.add(how)
        signals.append((rp, i, r, val, var))
    if not signals:
        raise AnalysisError("no field readings at non-zero current")
    if "none" in methods:
        notes.append("some fields have no reversed or zero-current reading: offset not removed there")
        if not drift.get("source"):
            notes.append("offset drift cannot be checked without current reversal or zero-current readings")
    sig = np.array([s[1:] for s in signals], float)
    keys, inv = np.unique(sig[:, :2], axis=0, return_inverse=True)
    inv = inv.ravel()
    cells = [(float(keys[j, 0]), float(keys[j, 1]), sig[inv == j, 2], sig[inv == j, 3]) for j in range(len(keys))]
    means = np.array([c[2].mean() for c in cells])
    counts = np.array([len(c[2]) for c in cells])
    cvars = np.array([np.var(c[2], ddof=1) if len(c[2]) > 1 else np.nan for c in cells])
    floor = np.array([np.nanmean(c[3]) if np.isfinite(c[3]).any() else np.nan for c in cells])
    has_floor = bool(np.isfinite(floor).all() and (floor > 0).all())
    pooled, dof = S.pooled_variance(c[2] for c in cells)
    noise: dict = {"model": None, "dof": dof, "floor": bool(has_floor)}
    refuse = None
    if dof > 0 and pooled > 0:
        sigma2 = np.full(len(cells), pooled)
        noise.update(model="constant", sigma=math.sqrt(pooled))
        het = _fit_hetero(means, np.nan_to_num(cvars), np.maximum(counts - 1, 0))
        if het is not None and het[2] > stats.chi2.ppf(0.99, 1):
            a2, b2, lr = het
            sigma2 = a2 + b2 * means**2
            dof = max(dof - 1, 1)
            noise.update(model="a^2+(bB)^2", a=math.sqrt(a2), b=math.sqrt(b2), lr=lr, dof=dof)
            notes.append(f"the field noise grows with the field: sigma^2 = a^2 + (b B)^2 with a = {math.sqrt(a2):.3g} T, "
                         f"b = {math.sqrt(b2):.3g} (likelihood ratio {lr:.3g})")
        if has_floor:
            raised = floor > sigma2
            if raised.all():
                noise["floor_used"] = "all"
            elif raised.any():
                noise["floor_used"] = "some"
            sigma2 = np.maximum(sigma2, floor)
        noise["dof"] = dof
    elif has_floor:
        sigma2 = floor
        dof = math.inf
        noise.update(model="instrument", dof=dof, sigma=float(math.sqrt(np.mean(floor))))
        notes.append("one repeat: the noise is the instrument's own scatter ('Field std'); "
                     "repeat-to-repeat variations are not measured")
    else:
        sigma2 = np.full(len(cells), np.nan)
        dof = 0
        refuse = ("one repeat per cell and no per-row uncertainties ('Field std'): the noise cannot be "
                  "estimated, so no uncertainty, p-value or verdict can be given")
        notes.append(refuse)
    rows = [{"current": c[0], "radius": c[1], "field": float(mu), "err": float(math.sqrt(s2 / k)),
             "repeats": int(k), "sigma": float(math.sqrt(s2))}
            for c, mu, s2, k in zip(cells, means, sigma2, counts)]
    table = pd.DataFrame(rows)
    method = ("reversal" if methods == {"reversal"} else
              "background" if methods == {"background"} else "+".join(sorted(methods)))
    table.attrs.update(offset_method=method, dof=dof, noise=noise, drift=drift, refuse=refuse)
    return table, notes


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


def _model_and_slope(name, r, current, radius, param, h):
    """Model field f and its change per metre of probe displacement g (secant over +-h;
    a probe at or beyond the wall is displaced outwards only)."""
    n = len(r)
    if h <= 0:
        return model_field(name, r, current, radius, param), np.zeros(n)
    rr = np.concatenate([r - h, r, r + h])
    cc = np.concatenate([current, current, current])
    allf = model_field(name, rr, cc, radius, param)
    fm, f, fp = allf[:n], allf[n:2 * n], allf[2 * n:]
    wall = r >= radius * (1 - 1e-9)
    g = np.where(wall, (fp - f) / h, (fp - fm) / (2 * h))
    return f, g


class _Design:
    """The cells, their noise variances and the radius blocks of the position nuisance.

    The covariance is diag(var) + sum over radii of u u^T (u = sigma_pos k dB/dr on the cells of
    that radius): a rank-one update per block, inverted by Sherman-Morrison.
    """

    def __init__(self, r, current, b, err, position_err=0.0):
        self.r, self.i, self.b = (np.asarray(x, float) for x in (r, current, b))
        self.var = np.asarray(err, float) ** 2
        self.pos = float(position_err or 0.0)
        _u, self.block_of = np.unique(np.round(self.r, 12), return_inverse=True)
        self.nb = len(_u)
        self.blocks = [np.flatnonzero(self.block_of == j) for j in range(self.nb)]

    def _bsum(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(self.block_of, weights=x, minlength=self.nb)

    def solve(self, kg: np.ndarray, x: np.ndarray) -> np.ndarray:
        """C^-1 x."""
        y = x / self.var
        if self.pos <= 0:
            return y
        u = self.pos * kg
        uv = u / self.var
        den = 1.0 + self._bsum(u * uv)
        return y - uv * (self._bsum(uv * x) / den)[self.block_of]

    def cov(self, kg: np.ndarray) -> np.ndarray:
        c = np.diag(self.var)
        if self.pos > 0:
            for idx in self.blocks:
                v = kg[idx]
                c[np.ix_(idx, idx)] += self.pos**2 * np.outer(v, v)
        return c

    def profile(self, f: np.ndarray, g: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """Best k for B = k f (position nuisance marginalised), its error, chi2, k g."""
        w = 1.0 / self.var
        ff = float(np.sum(w * f * f))
        if ff <= 0:
            kg = np.zeros_like(f)
            return 0.0, math.inf, float(self.b @ self.solve(kg, self.b)), kg
        k = float(np.sum(w * f * self.b)) / ff
        for _ in range(2):
            ci_f = self.solve(k * g, f)
            fcf = float(f @ ci_f)
            k = float(ci_f @ self.b) / fcf
        kg = k * g
        res = self.b - k * f
        return k, 1.0 / math.sqrt(fcf), float(res @ self.solve(kg, res)), kg


def _param_space(name: str, currents: np.ndarray, radius: float):
    """(parameter key, log-bounds, unit) of a model's own parameter."""
    imin, imax = float(currents.min()), float(currents.max())
    if name == "meissner":
        return "lambda", (math.log(LAMBDA_BOUNDS[0]), math.log(LAMBDA_BOUNDS[1])), "m"
    if name == "bean":
        return "ic", (math.log(0.5 * imin), math.log(1e3 * imax)), "A"
    if name == "intermediate":
        # parameterised by the Silsbee current Is = 2 pi R Hc; reported as Hc (A/m)
        return "hc", (math.log(1e-3 * imin / (2 * math.pi * radius)),
                      math.log(1e3 * imax / (2 * math.pi * radius))), "A/m"
    return None


def fit_model(name: str, r, current, b, err, radius: float, dof_noise=math.inf,
              position_err: float = 0.0) -> dict:
    """Fit one model (common k plus its own parameter) by generalised least squares.

    ``dof_noise``: degrees of freedom of the noise estimate behind ``err`` (inf: known),
    used for the F-test p-value and the Student-t parameter intervals.
    """
    d = _Design(r, current, b, err, position_err)
    n = len(d.b)
    space = _param_space(name, d.i, radius)
    params: dict = {}
    tf = S.sigma_factor(dof_noise)
    h = d.pos
    reduces: list[str] = []
    if space is None:
        f, g = _model_and_slope(name, d.r, d.i, radius, None, h)
        k, kerr, chi2, cmat = d.profile(f, g)
        npar = 1
        best_param = None
        k_move = 0.0
    else:
        key, (xlo, xhi), unit = space

        def chi2_at(x: float) -> float:
            f, g = _model_and_slope(name, d.r, d.i, radius, math.exp(x), h)
            return d.profile(f, g)[2]

        xs = np.linspace(xlo, xhi, GRID)
        cs = np.array([chi2_at(x) for x in xs])
        j = int(np.argmin(cs))
        a, c = xs[max(j - 1, 0)], xs[min(j + 1, GRID - 1)]
        best_x, best_c = xs[j], cs[j]
        if c > a:  # the chi2 surface can have kinks (a Bean front crossing a probe): refine on a fine grid first
            fine = np.linspace(a, c, FINE)
            fc = np.array([chi2_at(x) for x in fine])
            jf = int(np.argmin(fc))
            if fc[jf] < best_c:
                best_x, best_c = fine[jf], fc[jf]
            a2, c2 = fine[max(jf - 1, 0)], fine[min(jf + 1, FINE - 1)]
            res = minimize_scalar(chi2_at, bounds=(a2, c2), method="bounded", options={"xatol": 1e-7})
            if res.success and res.fun <= best_c:
                best_x, best_c = float(res.x), float(res.fun)
        best_param = math.exp(best_x)
        f, g = _model_and_slope(name, d.r, d.i, radius, best_param, h)
        k, kerr, chi2, cmat = d.profile(f, g)
        npar = 2

        # Student-t interval from the profile: Delta chi2 = t^2 (and one-sided 95 % limits)
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

        lo1, hi1 = edge(best_c + tf**2, -1), edge(best_c + tf**2, +1)
        # k's error is marginal over the parameter: add how far k moves across the parameter's interval
        k_move = 0.0
        if lo1 is not None and hi1 is not None:
            ks = [d.profile(*_model_and_slope(name, d.r, d.i, radius, math.exp(x), h))[0] for x in (lo1, hi1)]
            k_move = 0.5 * abs(ks[1] - ks[0]) / tf
        one_sided = S.t_quantile(0.90, dof_noise) ** 2  # one-sided 95 %
        free_lo = cs[0] - best_c < LIMIT_DCHI2
        free_hi = cs[-1] - best_c < LIMIT_DCHI2
        value = best_param
        entry = {"value": value, "err": None, "unit": unit}
        if free_lo and free_hi:
            entry["note"] = "not constrained by the data"
        elif free_lo:
            hi95 = edge(best_c + one_sided, +1)
            entry["upper_limit_95"] = math.exp(hi95) if hi95 is not None else None
            entry["note"] = "only an upper limit: the data cannot tell smaller values apart"
        elif free_hi:
            lo95 = edge(best_c + one_sided, -1)
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
    kerr = math.hypot(kerr, k_move)
    params = {"k": {"value": k, "err": kerr * tf if math.isfinite(kerr) else None, "unit": ""}, **params}
    dof = n - npar
    # posterior probe displacements (what the fit says each radius is off by)
    shifts = []
    if d.pos > 0 and math.isfinite(chi2):
        res = d.b - k * f
        cres = d.solve(cmat, res)
        for idx in d.blocks:
            v = k * g[idx]
            shift = d.pos**2 * float(v @ cres[idx])
            shifts.append({"radius": float(d.r[idx[0]]), "shift": shift, "pull": shift / d.pos})
    return {
        "reduces_to": reduces,
        "name": name,
        "chi2": float(chi2),
        "dof": int(dof),
        "npar": npar,
        "aic": float(chi2 + 2 * npar),
        "bic": float(chi2 + npar * math.log(max(n, 1))),
        "p_value": S.gof_p(chi2, dof, dof_noise),
        "params": params,
        "position_shifts": shifts,
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


def compare_models(table: pd.DataFrame, radius: float, models=MODEL_ORDER, dof_noise=None,
                   position_err: float | None = None, fits: list[dict] | None = None) -> list[dict]:
    """Every model fitted to the table's fields, best first (see the module docstring).

    ``dof_noise`` and ``position_err`` default to the table's noise model (``table.attrs``);
    ``fits``: results of :func:`fit_model` already computed (copied, not refitted).
    """
    if dof_noise is None:
        dof_noise = table.attrs.get("dof", math.inf)
        if not dof_noise:
            dof_noise = math.inf
    if position_err is None:
        position_err = table.attrs.get("position_err", 0.0)
    r = table["radius"].to_numpy(float)
    cur = table["current"].to_numpy(float)
    b = table["field"].to_numpy(float)
    s = table["err"].to_numpy(float)
    if fits is None:
        fits = [fit_model(name, r, cur, b, s, radius, dof_noise, position_err) for name in models]
    fits = [{k: v for k, v in m.items() if k != "_fg"} for m in fits]
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


# ---------------------------------------------------------------------------
# ratios, exponent, linearity, outer check
# ---------------------------------------------------------------------------
def ratio(num: float, num_err: float, den: float, den_err: float, dof=math.inf, cov: float = 0.0) -> dict:
    """B_k / B_1 with status ok / bound / undefined (Fieller; see :func:`stats.ratio_estimate`)."""
    if not all(x is not None and math.isfinite(x) for x in (num, den, num_err, den_err)):
        return {"value": None, "err": None, "status": "undefined", "reason": "no uncertainty"}
    return S.ratio_estimate(float(num), float(num_err) ** 2, float(den), float(den_err) ** 2, cov, dof)


def position_slopes(table: pd.DataFrame, radius: float) -> np.ndarray:
    """dB/dr at every cell (T/m), from the data: the local power law B ~ r^m of the pooled
    current-normalised profile between neighbouring radii (m = 0 where the field is not
    significantly positive); a probe at the wall is displaced outwards, where B = mu0 I / 2 pi r.
    Model-free, so the analysis and the GUI give the same ratio errors."""
    pf, pe = pooled_normalised(table)
    radii = sorted(pf)
    sig = {r: pf[r] > 3 * pe[r] for r in radii}
    slope_m = {}
    for k, r in enumerate(radii):
        ms = []
        for j in (k - 1, k + 1):
            if 0 <= j < len(radii) and sig[r] and sig[radii[j]] and radii[j] > 0 and r > 0:
                ms.append(math.log(pf[radii[j]] / pf[r]) / math.log(radii[j] / r))
        slope_m[r] = float(np.mean(ms)) if ms else 0.0
    out = np.zeros(len(table))
    for n, (r, i) in enumerate(zip(table["radius"].to_numpy(float), table["current"].to_numpy(float))):
        key = min(radii, key=lambda x: abs(x - r))
        b = i * pf[key]
        out[n] = -b / r if r >= radius * (1 - 1e-3) else slope_m[key] * b / r
    return out


def per_current_ratios(table: pd.DataFrame, radius: float, kg: np.ndarray | None = None) -> list[dict]:
    """B2/B1, B3/B1 at every current (noise plus probe-position errors; Fieller; t quantiles)."""
    dof_noise = table.attrs.get("dof") or math.inf
    if kg is None:
        kg = position_slopes(table, radius) if (table.attrs.get("position_err") or 0) > 0 else np.zeros(len(table))
    etot = _cell_errors(table, kg)
    out = []
    cur = table["current"].to_numpy(float)
    for c in sorted(table["current"].unique().tolist()):
        sel = np.isclose(cur, c)
        g = table[sel].sort_values("radius")
        rr = g["radius"].tolist()
        entry = {"current": float(c), "radii": rr, "fields": g["field"].tolist(), "errs": g["err"].tolist(),
                 "repeats": [int(x) for x in g["repeats"]]}
        if len(rr) >= 2:
            et = dict(zip(table["radius"][sel], etot[sel]))
            entry.update(_ratios_at(rr, dict(zip(rr, g["field"])), et, dof_noise))
        out.append(entry)
    return out


def _cell_errors(table: pd.DataFrame, kg: np.ndarray) -> np.ndarray:
    """Per-cell error including the probe-position uncertainty (for quantities at one current)."""
    pos = table.attrs.get("position_err", 0.0) or 0.0
    return np.sqrt(table["err"].to_numpy(float) ** 2 + (pos * kg) ** 2)


def pooled_normalised(table: pd.DataFrame, kg: np.ndarray | None = None) -> tuple[dict, dict]:
    """Per radius, the weighted slope b = B / I through the origin and its error
    (noise, plus the probe-position uncertainty when ``kg`` = k dB/dr is given)."""
    pos = table.attrs.get("position_err", 0.0) or 0.0
    field, err = {}, {}
    kg = np.zeros(len(table)) if kg is None else np.asarray(kg, float)
    for r in sorted(table["radius"].unique()):
        sel = np.isclose(table["radius"].to_numpy(float), r)
        i = table["current"].to_numpy(float)[sel]
        b = table["field"].to_numpy(float)[sel]
        s = table["err"].to_numpy(float)[sel]
        w = i**2 / s**2
        field[float(r)] = float(np.sum(i * b / s**2) / np.sum(w))
        var = 1 / np.sum(w) + (pos * np.sum(i * kg[sel] / s**2) / np.sum(w)) ** 2
        err[float(r)] = float(math.sqrt(var))
    return field, err


def _ratios_at(radii: list[float], field: dict, err: dict, dof) -> dict:
    out = {}
    r1 = radii[0]
    for k, rk in enumerate(radii[1:3], start=2):
        out[f"B{k}/B1"] = ratio(field[rk], err[rk], field[r1], err[r1], dof)
    return out


def exponent_fit(table: pd.DataFrame, kg: np.ndarray | None = None) -> dict:
    """n in B ~ r^n: common slope of ln B vs ln r, one intercept per current.

    Uses radii whose pooled (current-normalised) field is more than 3 sigma above
    zero, and there the fields more than 2 sigma above zero.
    """
    dof_noise = table.attrs.get("dof", math.inf) or math.inf
    pf, pe = pooled_normalised(table, kg)
    good_r = [r for r in pf if pf[r] > 3 * pe[r]]
    t = table.copy()
    t["etot"] = _cell_errors(table, np.zeros(len(table)) if kg is None else kg)
    sel = t[(t["field"] > 2 * t["etot"]) & (t["radius"] > 0) & t["radius"].isin(good_r)]
    per_current = sel.groupby("current").filter(lambda g: len(g) >= 2)
    if per_current["radius"].nunique() < 2 or len(per_current) < 2:
        return {"value": None, "err": None, "points": len(per_current),
                "message": "fewer than two radii with a field significantly above zero"}
    currents = sorted(per_current["current"].unique())
    x = np.log(per_current["radius"].to_numpy(float))
    y = np.log(per_current["field"].to_numpy(float))
    w = (per_current["field"].to_numpy(float) / per_current["etot"].to_numpy(float)) ** 2
    a = np.zeros((len(x), len(currents) + 1))
    a[:, 0] = x
    for j, c in enumerate(currents):
        a[:, j + 1] = per_current["current"].to_numpy(float) == c
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
    cov = np.linalg.pinv((a * w[:, None]).T @ a)
    dof = len(x) - a.shape[1]
    chi2 = float(np.sum(w * (y - a @ coef) ** 2))
    p = S.gof_p(chi2, dof, dof_noise) if dof > 0 else None
    scale = chi2 / dof if (p is not None and p < P_REJECT) else 1.0
    return {"value": float(coef[0]), "err": float(math.sqrt(cov[0, 0] * scale) * S.sigma_factor(dof_noise)),
            "points": len(x), "chi2": chi2, "dof": int(dof), "p_value": p}


def current_linearity(table: pd.DataFrame) -> dict:
    """F-test of B = I b(r) at every radius (profile shape independent of the current).

    Pooled ratios assume it; Bean or intermediate-state data fail it.
    """
    dof_noise = table.attrs.get("dof", math.inf) or math.inf
    pf, _pe = pooled_normalised(table)
    pred = table["current"].to_numpy(float) * np.array([pf[float(r)] for r in table["radius"]])
    chi2 = float(np.sum(((table["field"].to_numpy(float) - pred) / table["err"].to_numpy(float)) ** 2))
    dof = int(len(table) - len(pf))
    p = S.gof_p(chi2, dof, dof_noise) if dof > 0 else None
    return {"chi2": chi2, "dof": dof, "noise_dof": dof_noise, "p_value": p,
            "consistent": None if p is None else bool(p >= P_REJECT)}


def outer_check(table: pd.DataFrame, radius: float, kg: np.ndarray | None = None) -> dict | None:
    rmax = float(table["radius"].max())
    if abs(rmax - radius) > 0.05 * radius:
        return {"radius": rmax, "per_current": [], "ratio": None, "ratio_err": None, "flag": False,
                "message": f"outermost radius {rmax * 1e3:.4g} mm is not at the wall R = {radius * 1e3:.4g} mm"}
    dof_noise = table.attrs.get("dof", math.inf) or math.inf
    pos = table.attrs.get("position_err", 0.0) or 0.0
    sel = np.isclose(table["radius"].to_numpy(float), rmax)
    rows = table[sel]
    tf = S.sigma_factor(dof_noise)
    rel_pos = pos / max(rmax, radius)  # the field outside falls as 1/r: a relative error common to all currents
    out, en = [], []
    for _, row in rows.iterrows():
        exp = outer_field(row["current"], max(rmax, radius))
        q = row["field"] / exp
        en.append(row["err"] / exp)
        out.append({"current": float(row["current"]), "measured": float(row["field"]),
                    "measured_err": float(row["err"]), "expected": float(exp),
                    "ratio": float(q), "ratio_err": float(math.hypot(en[-1], rel_pos) * tf)})
    if not out:
        return None
    q = np.array([o["ratio"] for o in out])
    w = 1 / np.array(en) ** 2
    mean = float(np.sum(w * q) / np.sum(w))
    err = math.sqrt(1 / float(np.sum(w)) + rel_pos**2)
    z = (mean - 1) / err
    p = S.t_p_two_sided(z, dof_noise)
    flag = bool(p < P_REJECT)
    msg = f"B(outer) = {mean:.4f} ± {err * tf:.1g} × mu0 I / (2 pi R)"
    if flag:
        msg += (f" — departs from 1 by {abs(z):.1f} sigma (p = {_fmt_p(p)}): check the probe calibration, "
                f"its position at the wall, the current reading and the sample radius")
    return {"radius": rmax, "per_current": out, "ratio": mean, "ratio_err": float(err * tf),
            "p_value": p, "flag": flag, "message": msg}


def position_err_of(ds: Dataset | None, position_err=None) -> float:
    if position_err is not None:
        from labctl.analysis.units import UnitError, parse_quantity

        try:
            return float(parse_quantity(position_err, "length"))
        except UnitError as exc:
            raise AnalysisError(f"position_err: {exc}") from None
    if ds is not None:
        for key in ("Position uncertainty", "Probe position uncertainty", "Position error"):
            val = ds.parameter(key, "length")
            if val is not None:
                return float(val)
    return DEFAULT_POSITION_ERR


def analyze_radial_field(ds: Dataset, sample_radius=None, models=MODEL_ORDER, position_err=None,
                         **_options) -> dict:
    if isinstance(ds, pd.DataFrame):
        ds = Dataset(frame=ds, kind="radial-field")
    radius = float(sample_radius) if sample_radius is not None else (
        ds.parameter("Sample radius", "length") or DEFAULT_RADIUS)
    pos = position_err_of(ds, position_err)
    table, notes = reduce_fields(ds.frame)
    table.attrs["position_err"] = pos
    radii = sorted(table["radius"].unique().tolist())
    currents = sorted(table["current"].unique().tolist())
    if len(radii) < 2:
        raise AnalysisError(f"{ds.name}: fields at only one radius; ratios need at least two")
    refuse = table.attrs.get("refuse")
    dof_noise = table.attrs.get("dof") or math.inf
    if refuse:
        fit_table = table.copy()
        fit_table["err"] = 1.0
        fit_table.attrs.update(table.attrs, position_err=0.0, dof=math.inf)
    else:
        fit_table = table
    fits = [fit_model(name, fit_table["radius"], fit_table["current"], fit_table["field"], fit_table["err"],
                      radius, dof_noise, fit_table.attrs["position_err"]) for name in models]
    by_name = {m["name"]: m for m in fits}
    models_out = compare_models(fit_table, radius, models, dof_noise, fit_table.attrs["position_err"], fits=fits)
    kg = position_slopes(table, radius) if not refuse else np.zeros(len(table))
    if refuse:  # least squares only: ranked by the sum of squared residuals (T^2), no p-values
        models_out.sort(key=lambda m: m["chi2"])
        for m in models_out:
            m["p_value"] = None
            m["refused"] = refuse
            for e in m["params"].values():
                e["err"] = None
                e.pop("interval", None)
    per_current = per_current_ratios(table, radius, kg)
    pf, pe = pooled_normalised(table, kg)
    pooled = _ratios_at(radii, pf, pe, dof_noise)
    linearity = current_linearity(table) if not refuse else {
        "chi2": None, "dof": None, "p_value": None, "consistent": None}
    for key, entry in pooled.items():
        entry["current_dependent"] = linearity["consistent"] is False
        if entry["status"] == "ok" and not any((pc.get(key) or {}).get("status") == "ok" for pc in per_current):
            k = int(key[1])
            down = S.ratio_estimate(pf[radii[k - 1]], pe[radii[k - 1]] ** 2, pf[radii[0]], pe[radii[0]] ** 2,
                                    0.0, dof_noise, den_sigma=math.inf)
            down["reason"] = "denominator significant only when the currents are pooled (no current alone)"
            down["current_dependent"] = entry["current_dependent"]
            pooled[key] = down
    temperature = None
    if "Temperature (K)" in ds.frame and ds.frame["Temperature (K)"].notna().any():
        temperature = float(ds.frame["Temperature (K)"].mean())
    oc = outer_check(table, radius, kg) if not refuse else None
    if oc and oc.get("flag"):
        notes.append("outer check: " + oc["message"])
    if not refuse and pos > 0 and (models_out[0]["p_value"] or 0) >= 0:
        for sh in by_name[models_out[0]["name"]].get("position_shifts", []):
            if abs(sh["pull"]) > 3:
                notes.append(f"the probe at r = {sh['radius'] * 1e3:.4g} mm looks displaced by "
                             f"{sh['shift'] * 1e3:+.3g} mm under the best model ({abs(sh['pull']):.1f} × the stated "
                             f"position uncertainty {pos * 1e3:.3g} mm): check its position")
    noise = dict(table.attrs.get("noise") or {})
    if refuse:
        verdict = "no verdict: " + refuse
        best_name = None
    else:
        verdict = ((f"The profile shape changes with current (B = I b(r) rejected, "
                    f"p = {_fmt_p(linearity['p_value'])}): pooled ratios are current averages, see per_current. ")
                   if linearity["consistent"] is False else "") + verdict_text(models_out)
        best_name = models_out[0]["name"]
    result = {
        "kind": "radial-field",
        "control": bool(getattr(ds, "control", False)),
        "sample_radius": radius,
        "radii": radii,
        "currents": currents,
        "temperature": temperature,
        "offset_method": table.attrs.get("offset_method"),
        "noise": noise,
        "noise_dof": dof_noise if math.isfinite(dof_noise) else None,
        "position_err": pos,
        "drift": table.attrs.get("drift"),
        "refused": refuse,
        "fields": table.to_dict(orient="records"),
        "ratios": pooled,
        "per_current": per_current,
        "exponent": exponent_fit(table, kg) if not refuse else {"value": None, "err": None,
                                                               "message": "no noise estimate"},
        "models": models_out,
        "best_model": best_name,
        "linearity": linearity,
        "verdict": verdict,
        "outer_check": oc,
        "notes": notes,
    }
    if result["control"] and best_name not in (None, "uniform"):
        result["notes"].append(
            "normal-state control does not come out uniform: check probe positions and calibration"
        )
    return result
