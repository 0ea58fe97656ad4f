"""V-I: critical current by the electric-field criterion and the n-value.

1. Starting values: a linear background V = a + b I on the lowest 30 % of the
   points, then on I < 0.5 Ic; ``ic_interp`` is the crossing of the criterion
   Vc = Ec d (Ec = 1 uV/cm = 1e-4 V/m, d = tap spacing) by the corrected curve.
2. Joint fit: V = a + b I + Vc (I/Ic)^n by least squares (constant noise, its
   sigma from the residuals) over the curve up to 10 Vc, so the background is not
   fitted where the transition already leaks in; ``ic_fit``, ``n_fit`` and the full
   covariance (``covariance``) come from it.
3. ``ic`` (the criterion crossing) and ``n`` from the declared E window
   0.1 - 1 uV/cm (IEC 61788-style): the power law is refitted to the
   background-subtracted points in that window (plus the first point above it, so
   Ic is interpolated); their errors propagate every point's noise directly and
   through the background, with Student-t quantiles.
4. Optional (``bootstrap`` N): a residual bootstrap of the whole pipeline
   (``ic_err_bootstrap``, ``n_err_bootstrap``).
"""
from __future__ import annotations

import math

import numpy as np

from labctl.analysis import stats as S
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


N_WINDOW = (0.1, 1.0)  # E window for n, in units of Ec (IEC 61788-style: 0.1 - 1 uV/cm at Ec = 1 uV/cm)
N_WINDOW_HIGH = (1.0, 10.0)  # used instead when 0.1 Ec is within 3 noise sigma
FIT_TOP = 10.0  # the joint fit uses the curve up to 10 Vc (above: heating, flux-flow run-away)
N_BOUNDS = (1.0, 300.0)


def _joint_fit(i, v, vc, a0, b0, ic0, n0):
    """Least-squares fit of V = a + b I + Vc (I/Ic)^n (constant noise).

    Returns (theta = [a, b, ln Ic, n], covariance, sigma, dof, design sensitivity dtheta/dV)."""
    from scipy.optimize import least_squares

    def model(th):
        return th[0] + th[1] * i + vc * np.exp(th[3] * (np.log(i) - th[2]))

    def jac(th):
        p = vc * np.exp(th[3] * (np.log(i) - th[2]))
        return np.column_stack([np.ones_like(i), i, -th[3] * p, p * (np.log(i) - th[2])])

    x0 = np.array([a0, b0, math.log(ic0), min(max(n0, N_BOUNDS[0] + 0.1), N_BOUNDS[1] - 1)])
    scale = np.array([vc, vc / ic0, 0.01, 1.0])
    res = least_squares(lambda th: model(th) - v, x0, jac=jac, x_scale=scale, method="trf",
                        bounds=([-np.inf, -np.inf, -np.inf, N_BOUNDS[0]], [np.inf, np.inf, np.inf, N_BOUNDS[1]]))
    th = res.x
    j = jac(th)
    dof = len(i) - 4
    sigma = math.sqrt(float(np.sum(res.fun**2)) / dof) if dof > 0 else float("nan")
    jtj_inv = _inv_normal(j)
    return th, jtj_inv * sigma**2, sigma, dof, jtj_inv @ j.T


def _inv_normal(j: np.ndarray) -> np.ndarray:
    """(J^T J)^-1 with the columns scaled first (the parameters differ by many decades)."""
    d = np.sqrt(np.sum(j * j, axis=0))
    d[d == 0] = 1.0
    js = j / d
    return np.linalg.pinv(js.T @ js) / np.outer(d, d)


def _window_fit(i, vcorr, vc, ic0, n0):
    """Power law Vc (I/Ic)^n fitted (linear space, constant noise) to the window points.

    Returns ([ln Ic, n], sensitivity d[ln Ic, n]/dVcorr)."""
    from scipy.optimize import least_squares

    def jac(th):
        p = vc * np.exp(th[1] * (np.log(i) - th[0]))
        return np.column_stack([-th[1] * p, p * (np.log(i) - th[0])])

    res = least_squares(lambda th: vc * np.exp(th[1] * (np.log(i) - th[0])) - vcorr,
                        [math.log(ic0), n0], jac=jac, x_scale=[0.01, 1.0], method="lm")
    j = jac(res.x)
    return res.x, _inv_normal(j) @ j.T


def _pipeline(i, v, vc, a0, b0, ic0, n0, window=None):
    """Joint fit, then Ic (criterion crossing) and n from the E window; everything a bootstrap redoes."""
    top = np.flatnonzero(v - (a0 + b0 * i) > FIT_TOP * vc)
    last = int(top[0]) - 1 if len(top) else len(i) - 1  # up to 10 Vc: not a jump to the normal state
    use = np.arange(len(i)) <= max(last, 7)
    th, cov, sigma, dof, sens = _joint_fit(i[use], v[use], vc, a0, b0, ic0, n0)
    a, b, lic, n = th
    ic_fit = math.exp(lic)
    if window is None:  # the low end of the window must stand clear of the noise
        window = N_WINDOW if N_WINDOW[0] * vc >= 3 * sigma else N_WINDOW_HIGH
    lo_i = ic_fit * window[0] ** (1.0 / n)
    hi_i = ic_fit * window[1] ** (1.0 / n)
    iu, vu = i[use], v[use]
    win = np.flatnonzero((iu >= lo_i) & (iu <= hi_i))
    above = np.flatnonzero(iu > hi_i)
    if len(above):  # the first point beyond the window's top: Ic is interpolated, not extrapolated
        win = np.union1d(win, above[:1])
    out = {"theta": th, "cov": cov, "sigma": sigma, "dof": dof, "use": use, "window_idx": win, "window": window,
           "window_currents": [lo_i, hi_i]}
    if len(win) >= 3:
        vcorr = vu[win] - a - b * iu[win]
        wth, wsens = _window_fit(iu[win], vcorr, vc, ic_fit, n)
        # total sensitivity of (ln Ic, n) to every used V: directly, and through a, b of the joint fit
        g = np.zeros((2, use.sum()))
        g[:, win] += wsens
        g -= np.outer(wsens.sum(axis=1), sens[0])
        g -= np.outer(wsens @ iu[win], sens[1])
        wcov = g @ g.T * sigma**2
        out.update(window_theta=wth, window_cov=wcov)
    return out


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
                 "n_window": {"e_low": N_WINDOW[0] * ec, "e_high": N_WINDOW[1] * ec, "unit": "V/m",
                              "text": f"{N_WINDOW[0] * ec * 1e4:g}-{N_WINDOW[1] * ec * 1e4:g} uV/cm"},
                 "points": len(i), "i_max": float(i.max()) if len(i) else None}
    if len(i) < 8:
        out["message"] = f"too few points at positive current ({len(i)})"
        return out

    # starting values: background on the lowest 30 %, then on I < 0.5 Ic
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
        out["message"] = f"criterion Vc = {vc:.3g} V not reached up to {i.max():.4g} A: Ic > I_max"
        out["notes"] = notes
        return out
    i10 = _crossing_up(i, vcorr, 0.1 * vc)
    n0 = math.log(10) / math.log(ic_est / i10) if i10 and 0 < i10 < ic_est else 20.0
    try:
        with np.errstate(all="ignore"):
            fit = _pipeline(i, v, vc, a, b, ic_est, n0)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
        out["ic"] = ic_est
        out["message"] = f"power-law fit failed ({exc.__class__.__name__}): Ic by interpolation, no n"
        out["notes"] = notes
        return out
    th, cov, sigma, dof = fit["theta"], fit["cov"], fit["sigma"], fit["dof"]
    tf = S.sigma_factor(dof)
    ic_fit, n_fit = math.exp(th[2]), float(th[3])
    perr = np.sqrt(np.clip(np.diag(cov), 0, None))
    out["background"] = {"offset": float(th[0]), "slope": float(th[1]), "offset_err": float(perr[0] * tf),
                         "slope_err": float(perr[1] * tf), "points": int(fit["use"].sum()),
                         "method": "fitted jointly with the power law"}
    out["noise"] = sigma
    out["noise_dof"] = int(dof)
    out.update({"ic_fit": ic_fit, "ic_fit_err": float(ic_fit * perr[2] * tf), "n_fit": n_fit,
                "n_fit_err": float(perr[3] * tf)})
    names = ["offset", "slope", "ic", "n"]
    jac_ic = np.diag([1.0, 1.0, ic_fit, 1.0])  # ln Ic -> Ic
    out["covariance"] = {"names": names, "matrix": (jac_ic @ cov @ jac_ic).tolist()}
    iu = i[fit["use"]]
    out["fit_range"] = [float(iu.min()), float(iu.max())]
    out["fit_points"] = int(len(iu))
    if fit["window"] != N_WINDOW:
        w = fit["window"]
        out["n_window"].update(e_low=w[0] * ec, e_high=w[1] * ec,
                               text=f"{w[0] * ec * 1e4:g}-{w[1] * ec * 1e4:g} uV/cm")
        notes.append(f"0.1 Ec is within 3 noise sigma ({sigma:.2g} V): n from the {out['n_window']['text']} window")
    out["n_window"]["currents"] = [float(x) for x in fit["window_currents"]]
    out["n_window"]["points"] = int(len(fit["window_idx"]))
    if n_fit <= N_BOUNDS[0] + 1e-6 or n_fit >= N_BOUNDS[1] - 1e-6:
        notes.append(f"the power-law exponent ran to the end of its range ({n_fit:.3g}): the curve is not a power law")
    if "window_theta" in fit:
        wth, wcov = fit["window_theta"], fit["window_cov"]
        werr = np.sqrt(np.clip(np.diag(wcov), 0, None))
        ic, n = math.exp(wth[0]), float(wth[1])
        out.update({"ic": ic, "ic_err": float(ic * werr[0] * tf), "n": n, "n_err": float(werr[1] * tf)})
        out["message"] = (f"Ic at Ec = {ec * 1e4:g} uV/cm (criterion crossing) and n over "
                          f"{out['n_window']['text']}, background fitted jointly with the transition")
    else:
        out.update({"ic": ic_fit, "ic_err": out["ic_fit_err"], "n": n_fit, "n_err": out["n_fit_err"]})
        out["message"] = (f"fewer than 3 points in the {out['n_window']['text']} window: Ic and n from the "
                          f"joint power-law fit")
        notes.append(out["message"])
    if bootstrap and bootstrap > 0:
        rng = np.random.default_rng(seed)
        use = fit["use"]
        a_, b_ = th[0], th[1]
        model = a_ + b_ * i + vc * np.exp(th[3] * (np.log(i) - th[2]))
        resid = (v - model)[use]
        ics, ns = [], []
        for _ in range(int(bootstrap)):
            vb = model.copy()
            vb[use] += rng.choice(resid, size=int(use.sum()), replace=True)
            try:
                with np.errstate(all="ignore"):
                    fb = _pipeline(i, vb, vc, a_, b_, ic_fit, n_fit, fit["window"])
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
            t = fb.get("window_theta", fb["theta"][2:])
            ics.append(math.exp(t[0]))
            ns.append(float(t[1]))
        if len(ics) >= 10:
            out["ic_err_bootstrap"] = float(np.std(ics, ddof=1))
            out["n_err_bootstrap"] = float(np.std(ns, ddof=1))
            out["bootstrap"] = len(ics)
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
