"""V-I: critical current by the electric-field criterion and the n-value.

1. A linear background V = a + b I (thermal EMF, offsets, a shunt) is fitted at
   low current: first on the lowest 30 % of the points, then on I < 0.5 Ic once
   an Ic estimate exists, and subtracted.
2. ``ic_interp``: the highest current where the corrected voltage crosses the
   criterion Vc = Ec d (Ec = 1 uV/cm = 1e-4 V/m, d = tap spacing).
3. The transition (corrected V above 3 noise sigma and 0.05 Vc, up to 10 Vc) is
   fitted with V = Vc (I/Ic)^n in log space (scipy curve_fit); ``ic`` and ``n``
   come from that fit, their errors from the covariance (scaled by the residual
   scatter); an optional bootstrap over the fitted points gives a second error.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import curve_fit

from labctl.analysis import units as U
from labctl.analysis.loading import AnalysisError, Dataset
from labctl.physics import EC_DEFAULT


def _robust_std(x: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _linfit(i: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    if len(i) >= 2 and np.ptp(i) > 0:
        b, a = np.polyfit(i, v, 1)
        return float(a), float(b)
    return float(np.mean(v)) if len(v) else 0.0, 0.0


def _crossing_up(i: np.ndarray, v: np.ndarray, vc: float) -> float | None:
    """Highest current at which v rises through vc (v sorted by i)."""
    above = v >= vc
    if not above.any():
        return None
    # last index that is below vc and followed by a point above
    idx = np.flatnonzero(~above[:-1] & above[1:])
    if len(idx) == 0:
        return float(i[0]) if above[0] else None
    k = int(idx[-1])
    v1, v2, i1, i2 = v[k], v[k + 1], i[k], i[k + 1]
    if v2 == v1:
        return float(i2)
    return float(i1 + (vc - v1) * (i2 - i1) / (v2 - v1))


def _combine_polarity(i, v, pol):
    """Delta-mode: (V(+I) - V(-I)) / 2 at each |I| (cancels thermal EMFs)."""
    mag = np.round(np.abs(i), 9)
    out_i, out_v = [], []
    for m in np.unique(mag):
        sel = mag == m
        vp = v[sel & (pol > 0)]
        vm = v[sel & (pol < 0)]
        if len(vp) and len(vm):
            out_i.append(m)
            out_v.append(0.5 * (vp.mean() - vm.mean()))
    return np.array(out_i), np.array(out_v)


def _power_law_fit(i, v, vc, ic0, noise):
    li = np.log(i)
    lv = np.log(v)
    sig = noise / v  # relative error of each voltage

    def model(x, log_ic, n):
        return np.log(vc) + n * (x - log_ic)

    p, cov = curve_fit(model, li, lv, p0=[np.log(ic0), 20.0], sigma=sig, absolute_sigma=False,
                       maxfev=10000)
    return p, cov


def analyze_vi_arrays(current, voltage, tap_spacing: float, ec: float = EC_DEFAULT, polarity=None,
                      bootstrap: int = 0, seed: int = 0) -> dict:
    """Ic (A) and n of one V-I record (SI arrays); see the module docstring."""
    i = np.asarray(current, dtype=float)
    v = np.asarray(voltage, dtype=float)
    if not (tap_spacing and np.isfinite(tap_spacing) and tap_spacing > 0):
        raise AnalysisError("V-I analysis needs a positive tap spacing (give --tap-spacing, e.g. 12.89mm)")
    vc = ec * tap_spacing
    notes = []
    if polarity is not None:
        pol = np.asarray(polarity, dtype=float)
        if (pol > 0).any() and (pol < 0).any():
            i, v = _combine_polarity(i, v, pol)
            notes.append("current-reversal pairs combined: V = (V+ - V-)/2")
    if (i < 0).sum() > (i > 0).sum():
        i, v = -i, -v
        notes.append("negative-current sweep: signs flipped")
    keep = i > 0
    if (~keep).sum() > 0.1 * len(i):
        notes.append(f"{int((~keep).sum())} point(s) at I <= 0 ignored")
    i, v = i[keep], v[keep]
    order = np.argsort(i, kind="stable")
    i, v = i[order], v[order]
    out: dict = {"kind": "vi", "ic": None, "ic_err": None, "n": None, "n_err": None,
                 "criterion_voltage": vc, "tap_spacing": tap_spacing, "ec": ec,
                 "points": len(i), "i_max": float(i.max()) if len(i) else None}
    if len(i) < 8:
        out["message"] = f"too few points at positive current ({len(i)})"
        return out

    # background: lowest 30 %, then I < 0.5 Ic (twice)
    nlow = max(3, int(0.3 * len(i)))
    a, b = _linfit(i[:nlow], v[:nlow])
    ic_est = _crossing_up(i, v - (a + b * i), vc)
    for _ in range(2):
        if ic_est is None:
            break
        low = i < 0.5 * ic_est
        if low.sum() >= 5:
            a, b = _linfit(i[low], v[low])
        ic_new = _crossing_up(i, v - (a + b * i), vc)
        if ic_new is None or abs(ic_new - ic_est) < 1e-9 * ic_est:
            ic_est = ic_new if ic_new is not None else ic_est
            break
        ic_est = ic_new
    low = i < 0.5 * ic_est if ic_est is not None else np.zeros(len(i), bool)
    if low.sum() < 5:
        low = np.zeros(len(i), bool)
        low[:nlow] = True
    vcorr = v - (a + b * i)
    noise = _robust_std(vcorr[low])
    if not np.isfinite(noise) or noise <= 0:
        noise = float(np.std(vcorr[low])) or 1e-3 * vc
    out["background"] = {"offset": a, "slope": b, "points": int(low.sum())}
    out["noise"] = noise
    out["ic_interp"] = ic_est
    if ic_est is None:
        out["message"] = (
            f"criterion Vc = {vc:.3g} V not reached up to {i.max():.4g} A: Ic > I_max"
        )
        out["notes"] = notes
        return out

    lo_v = max(3 * noise, 0.05 * vc)
    sel = (vcorr > lo_v) & (vcorr < 10 * vc) & (i > 0.3 * ic_est)
    # only the top branch: from the last point below lo_v upward
    below = np.flatnonzero((vcorr <= lo_v) & (i < i.max()))
    if len(below):
        sel &= np.arange(len(i)) > below[below < np.searchsorted(i, ic_est)].max(initial=-1)
    out["fit_points"] = int(sel.sum())
    if sel.sum() < 4:
        out["ic"] = ic_est
        out["message"] = "too few points in the transition for a power-law fit: Ic by interpolation, no n"
        out["notes"] = notes
        return out
    try:
        p, cov = _power_law_fit(i[sel], vcorr[sel], vc, ic_est, noise)
    except (RuntimeError, ValueError) as exc:
        out["ic"] = ic_est
        out["message"] = f"power-law fit failed ({exc.__class__.__name__}): Ic by interpolation, no n"
        out["notes"] = notes
        return out
    ic = float(np.exp(p[0]))
    n = float(p[1])
    perr = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else [np.nan, np.nan]
    out.update({"ic": ic, "ic_err": float(ic * perr[0]), "n": n, "n_err": float(perr[1])})
    out["fit_range"] = [float(i[sel].min()), float(i[sel].max())]
    if bootstrap and bootstrap > 0:
        rng = np.random.default_rng(seed)
        ii, vv = i[sel], vcorr[sel]
        ics, ns = [], []
        for _ in range(int(bootstrap)):
            k = rng.integers(0, len(ii), len(ii))
            if len(np.unique(ii[k])) < 3:
                continue
            try:
                pb, _ = _power_law_fit(ii[k], vv[k], vc, ic, noise)
            except (RuntimeError, ValueError):
                continue
            ics.append(np.exp(pb[0]))
            ns.append(pb[1])
        if len(ics) >= 10:
            out["ic_err_bootstrap"] = float(np.std(ics, ddof=1))
            out["n_err_bootstrap"] = float(np.std(ns, ddof=1))
    out["message"] = "Ic by the electric-field criterion; n from the power-law fit"
    out["notes"] = notes
    return out


def tap_spacing_of(ds: Dataset, tap_spacing=None) -> float | None:
    """The tap spacing (m): the option (number in m, or text with unit), else the file's parameter."""
    if tap_spacing is not None:
        try:
            return U.parse_quantity(tap_spacing, "length")
        except U.UnitError as exc:
            raise AnalysisError(f"--tap-spacing: {exc}") from None
    for key in ("Tap spacing", "Voltage tap spacing", "Tap distance", "tap_spacing"):
        val = ds.parameter(key, "length")
        if val is not None:
            return val
    return None


def analyze_vi(ds: Dataset, tap_spacing=None, ec: float = EC_DEFAULT, bootstrap: int = 100,
               seed: int = 0, **_options) -> dict:
    d = tap_spacing_of(ds, tap_spacing)
    if d is None:
        raise AnalysisError(
            f"{ds.name}: the voltage-tap spacing is unknown (no 'Tap spacing' parameter in the file); "
            f"give --tap-spacing, e.g. 12.89mm"
        )
    f = ds.frame
    pol = f["Polarity"].to_numpy(float) if "Polarity" in f else None
    res = analyze_vi_arrays(f["Current (A)"].to_numpy(float), f["Voltage (V)"].to_numpy(float), d,
                            ec=ec, polarity=pol, bootstrap=bootstrap, seed=seed)
    for key, dim in (("temperature", "temperature"), ("applied_field", "field")):
        name = {"temperature": "Temperature", "applied_field": "Field"}[key]
        val = ds.parameter(name, dim)
        if val is not None:
            res[key] = val
    return res
