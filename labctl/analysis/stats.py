"""Small statistical building blocks shared by the analyses (DESIGN.md section 10).

* ``pooled_variance``: within-cell variance pooled over cells, with its degrees of freedom.
* ``t_quantile`` / ``sigma_factor``: Student-t quantiles; ``dof = inf`` means a known variance.
* ``gof_p``: goodness of fit of a chi2 computed with an *estimated* variance: under the
  model chi2 / dof follows F(dof, dof_noise) (chi2 when the noise dof is infinite).
* ``fieller``: confidence set of a ratio a / b, valid when b is near zero.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

ONE_SIGMA = 0.6826894921370859  # central coverage of +-1 sigma
DEN_SIGMA = 3.0  # a denominator must be this many (t-scaled) sigma from zero for a ratio to be "ok"
INF = math.inf


def finite_dof(dof) -> bool:
    return dof is not None and math.isfinite(dof)


def t_quantile(coverage: float, dof) -> float:
    """Two-sided quantile: P(|T| <= q) = coverage for Student t with ``dof`` (normal if infinite)."""
    p = 0.5 + coverage / 2
    if not finite_dof(dof):
        return float(stats.norm.ppf(p))
    return float(stats.t.ppf(p, max(dof, 1e-9)))


def sigma_factor(dof, nsigma: float = 1.0) -> float:
    """The t quantile with the same two-sided coverage as +-nsigma of a normal."""
    return t_quantile(float(2 * stats.norm.cdf(nsigma) - 1), dof)


def gof_p(chi2: float, dof: int, noise_dof=INF) -> float | None:
    """p-value of chi2 for ``dof`` degrees of freedom with a noise variance estimated on ``noise_dof``."""
    if dof is None or dof <= 0 or not math.isfinite(chi2):
        return None
    if not finite_dof(noise_dof):
        return float(stats.chi2.sf(chi2, dof))
    return float(stats.f.sf(chi2 / dof, dof, noise_dof))


def t_p_two_sided(t: float, dof) -> float:
    if not finite_dof(dof):
        return float(2 * stats.norm.sf(abs(t)))
    return float(2 * stats.t.sf(abs(t), dof))


def t_cdf(t: float, dof) -> float:
    if not finite_dof(dof):
        return float(stats.norm.cdf(t))
    return float(stats.t.cdf(t, dof))


def pooled_variance(groups) -> tuple[float, int]:
    """(pooled within-group variance, dof) over groups (arrays); groups of one value add nothing."""
    ss, dof = 0.0, 0
    for g in groups:
        g = np.asarray(g, float)
        g = g[np.isfinite(g)]
        if len(g) >= 2:
            ss += float(np.sum((g - g.mean()) ** 2))
            dof += len(g) - 1
    return (ss / dof if dof > 0 else float("nan")), dof


def fieller(a: float, va: float, b: float, vb: float, cab: float = 0.0, dof=INF,
            coverage: float = ONE_SIGMA) -> dict:
    """Fieller confidence set for a / b (a, b jointly normal, variances from ``dof``).

    Returns ``{"kind": "interval", "lo", "hi"}`` when b is significantly non-zero at this
    coverage, else ``{"kind": "exclusive", "lo", "hi"}`` (the set is outside [lo, hi]) or
    ``{"kind": "all"}``.
    """
    t2 = t_quantile(coverage, dof) ** 2
    qa = b * b - t2 * vb
    qb = -2 * (a * b - t2 * cab)
    qc = a * a - t2 * va
    disc = qb * qb - 4 * qa * qc
    if qa > 0:
        if disc < 0:  # cannot happen for a valid covariance; fall back to the point
            return {"kind": "interval", "lo": a / b, "hi": a / b}
        s = math.sqrt(disc)
        lo, hi = sorted(((-qb - s) / (2 * qa), (-qb + s) / (2 * qa)))
        return {"kind": "interval", "lo": lo, "hi": hi}
    if disc > 0 and qa != 0:
        s = math.sqrt(disc)
        lo, hi = sorted(((-qb - s) / (2 * qa), (-qb + s) / (2 * qa)))
        return {"kind": "exclusive", "lo": lo, "hi": hi}
    return {"kind": "all"}


def ratio_estimate(a: float, va: float, b: float, vb: float, cab: float = 0.0, dof=INF,
                   den_sigma: float = DEN_SIGMA) -> dict:
    """a / b with a status that never presents a noisy number as a measurement.

    * ``ok``: b is more than ``den_sigma`` (t-scaled) standard errors above zero; ``value`` = a/b,
      ``interval`` = the 68.3 % Fieller interval, ``err`` its half width.
    * ``bound``: b consistent with zero but a clearly (``den_sigma``) positive: ``value`` is a lower
      bound of the ratio (always > 0): lower limit of a over upper limit of b, at the same
      confidence, b taken as >= 0 (a field inside never has the opposite sign).
    * ``undefined``: otherwise, including a significantly negative b (``reason`` says why).
    """
    out = {"value": None, "err": None, "status": "undefined"}
    if not all(math.isfinite(x) for x in (a, b)) or not (va >= 0 and vb >= 0):
        out["reason"] = "no uncertainty"
        return out
    sa, sb = math.sqrt(va), math.sqrt(vb)
    kden = sigma_factor(dof, den_sigma)
    if b < -kden * sb:  # a field inside never opposes the outer one: a systematic error, not a ratio
        out["reason"] = "denominator significantly negative (an offset not removed?)"
        return out
    if sb > 0 and b > kden * sb or (sb == 0 and b > 0):
        f = fieller(a, va, b, vb, cab, dof)
        q = a / b
        if f["kind"] == "interval":
            lo, hi = f["lo"], f["hi"]
        else:  # cannot happen at 3 sigma; be safe
            lo = hi = q
        out.update(value=float(q), err=float(0.5 * (hi - lo)), status="ok", interval=[float(lo), float(hi)])
        return out
    k2 = sigma_factor(dof, 2.0)
    if a > kden * sa:  # the numerator clearly positive (as clearly as an ok denominator must be)
        den_hi = max(b, 0.0) + k2 * sb
        bound = (a - k2 * sa) / den_hi if den_hi > 0 else math.inf
        out.update(value=float(bound) if math.isfinite(bound) else None, status="bound",
                   reason="denominator consistent with zero")
        if out["value"] is None or out["value"] <= 0:
            out.update(value=None, status="undefined")
        return out
    out["reason"] = ("numerator and denominator both consistent with zero" if a >= -kden * sa
                     else "denominator consistent with zero and numerator negative")
    return out
