"""R(T): superconducting transition temperatures, cooling and warming separately.

Definitions (DESIGN.md section 5, "measurement practice"):

* ``r_normal`` R_n: the smoothed resistance at the top of the transition, where
  the logarithmic slope d ln R / d ln T has fallen back to normal-metal values.
* ``tc_onset`` / ``tc_mid``: temperatures where R crosses floor + 90 % / 50 % of
  (R_n - floor), searching down from the top of the transition (floor: the
  residual resistance below the transition, ~0).
* ``width_10_90``: T(90 %) - T(10 %).
* ``tc_zero``: highest temperature below which R is within the noise of zero
  (floor + 3 sigma of the low-temperature readings).

A transition is reported only if the curve has one: a steep drop (d ln R /
d ln T >= 10, metals stay below 5) of at least half of R_n, well above noise.
Otherwise every Tc is None and ``message`` says why; no Tc is ever invented.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.ndimage import median_filter

from labctl.analysis.loading import AnalysisError, Dataset

S_TRANSITION = 10.0  # minimum peak d ln R / d ln T of a superconducting transition
S_KNEE = 3.0  # d ln R / d ln T back to normal-metal values: top of the transition

_NULL = {"tc_onset": None, "tc_mid": None, "tc_zero": None, "width_10_90": None, "r_normal": None}


def _group(t: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(t, kind="stable")
    t, r = t[order], r[order]
    uniq, idx, counts = np.unique(t, return_index=True, return_counts=True)
    sums = np.add.reduceat(r, idx)
    return uniq, sums / counts


def _crossing_down(t: np.ndarray, rs: np.ndarray, level: float, start: int) -> float | None:
    """Going down in T from index ``start``, the T where rs first falls below ``level``."""
    for i in range(start, -1, -1):
        if rs[i] < level:
            if i == start:
                return float(t[i])
            t1, t2, r1, r2 = t[i], t[i + 1], rs[i], rs[i + 1]
            if r2 == r1:
                return float(t1)
            return float(t1 + (level - r1) * (t2 - t1) / (r2 - r1))
    return None


def analyze_sweep(temperature, resistance) -> dict:
    """Transition temperatures of one monotonic sweep (any order of points)."""
    t = np.asarray(temperature, dtype=float)
    r = np.asarray(resistance, dtype=float)
    ok = np.isfinite(t) & np.isfinite(r)
    t, r = _group(t[ok], r[ok])
    n = len(t)
    out = dict(_NULL)
    out.update({"t_min": float(t.min()) if n else None, "t_max": float(t.max()) if n else None,
                "points": int(n)})
    if n < 8:
        out["message"] = f"too few distinct temperatures ({n}) to find a transition"
        return out
    k = int(max(3, min(21, 2 * (n // 200) + 1)))
    rs = median_filter(r, size=k, mode="nearest")
    sigma = 1.4826 * float(np.median(np.abs(r - rs)))
    rmax = float(rs.max())
    if rmax <= 0:
        out["message"] = "resistance never positive: no transition can be located"
        return out

    # logarithmic slope on the smoothed curve, over +-h points
    h = max(2, k // 2)
    s = np.full(n, np.nan)
    lo, hi = np.arange(n) - h, np.arange(n) + h
    lo, hi = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
    dt = t[hi] - t[lo]
    small = max(3 * sigma, 1e-3 * rmax)
    valid = (dt > 0) & (rs > small) & (t > 0)
    s[valid] = (rs[hi] - rs[lo])[valid] / dt[valid] * t[valid] / rs[valid]
    if not np.any(np.isfinite(s)):
        out["message"] = "no usable resistance values above the noise"
        return out
    ipk = int(np.nanargmax(s))
    smax = float(s[ipk])
    above = s[ipk:][np.isfinite(s[ipk:])]
    s_ref = float(np.median(above)) if len(above) else 0.0
    s_knee = max(S_KNEE, 1.5 * s_ref) if s_ref < S_TRANSITION / 2 else S_KNEE
    iknee = ipk
    while iknee + 1 < n and not (np.isfinite(s[iknee]) and s[iknee] < s_knee):
        iknee += 1
    r_n = float(rs[iknee])
    width_guess = max(t[iknee] - t[ipk], t[min(ipk + 1, n - 1)] - t[ipk], 1e-12)
    below = t < t[ipk] - 2 * width_guess
    if below.sum() < 3:
        below = np.zeros(n, bool)
        below[: max(3, n // 20)] = True
        below &= t < t[ipk]
    if below.sum() >= 1:
        floor = float(np.median(rs[below]))
        resid = r[below] - np.median(r[below])
        sigma_floor = 1.4826 * float(np.median(np.abs(resid))) if below.sum() >= 3 else sigma
    else:
        floor, sigma_floor = float(rs[0]), sigma
    sigma_floor = max(sigma_floor, 1e-9 * abs(r_n))
    drop = r_n - floor

    out["s_peak"] = smax
    if smax < S_TRANSITION or drop <= 0 or drop < 10 * max(sigma, 1e-12 * abs(r_n)) or floor > 0.5 * r_n:
        why = []
        if smax < S_TRANSITION:
            why.append(f"no steep drop (max d lnR/d lnT = {smax:.3g} < {S_TRANSITION:g})")
        if floor > 0.5 * r_n:
            why.append(f"R stays at {floor / max(r_n, 1e-300):.0%} of its value above the drop")
        elif drop < 10 * sigma:
            why.append("the drop is within the noise")
        out["message"] = (
            f"no superconducting transition between {t.min():.4g} K and {t.max():.4g} K"
            + (f": {'; '.join(why)}" if why else "")
        )
        out["r_min"] = float(rs.min())
        out["r_max"] = rmax
        return out

    t90, t50, t10 = (_crossing_down(t, rs, floor + f * drop, iknee) for f in (0.9, 0.5, 0.1))
    out["r_normal"] = r_n
    out["r_floor"] = floor
    out["tc_onset"] = t90
    out["tc_mid"] = t50
    out["width_10_90"] = (t90 - t10) if (t90 is not None and t10 is not None) else None
    thr = floor + 3 * sigma_floor
    out["zero_threshold"] = thr
    msgs = []
    if abs(floor) <= max(3 * sigma_floor, 0.01 * abs(r_n)) and t10 is not None:
        i10 = int(np.searchsorted(t, t10, side="right")) - 1
        i10 = min(max(i10, 0), n - 1)
        out["tc_zero"] = _crossing_down(t, rs, thr, i10)
        if out["tc_zero"] is None:
            msgs.append("R does not fall below the noise threshold in range")
    else:
        msgs.append(f"R does not reach zero (residual {floor:.3g} ohm, {floor / r_n:.1%} of R_n)")
    out["message"] = "superconducting transition found" + (f"; {'; '.join(msgs)}" if msgs else "")
    return out


def split_sweeps(temperature: np.ndarray, direction=None, sweep=None) -> dict[str, np.ndarray]:
    """Row masks of the cooling and warming parts of a record.

    Uses a ``Direction`` column ('cooling'/'warming') or a ``Sweep`` column if
    given, else the sign of dT: a reversal counts once T has moved back from its
    last extreme by more than 10 % of the full range (so noise does not split).
    """
    t = np.asarray(temperature, dtype=float)
    n = len(t)
    masks: dict[str, np.ndarray] = {}
    if direction is not None:
        d = np.array([str(x).strip().lower() for x in direction])
        for name in ("cooling", "warming"):
            m = np.char.startswith(d.astype(str), name[:4])
            if m.any():
                masks[name] = m
        if masks:
            return masks
    if sweep is not None:
        labels = np.asarray(sweep)
        for lab in dict.fromkeys(labels.tolist()):
            m = labels == lab
            tt = t[m]
            if len(tt) < 2:
                continue
            trend = np.sign(np.median(np.diff(tt))) or np.sign(tt[-1] - tt[0])
            name = "cooling" if trend < 0 else "warming" if trend > 0 else "sweep"
            masks[name] = masks.get(name, np.zeros(n, bool)) | m
        if masks:
            return masks
    if n < 3:
        return {"sweep": np.ones(n, bool)}
    span = float(np.nanmax(t) - np.nanmin(t))
    if span <= 0:
        return {"sweep": np.ones(n, bool)}
    thr = 0.1 * span
    # zig-zag: turning points where T has moved back by more than thr
    turns = [0]
    ext_i, trend = 0, 0
    for i in range(1, n):
        if trend == 0:
            if abs(t[i] - t[0]) > thr:
                trend = 1 if t[i] > t[0] else -1
                ext_i = i
            continue
        if (trend > 0 and t[i] >= t[ext_i]) or (trend < 0 and t[i] <= t[ext_i]):
            ext_i = i
        elif abs(t[i] - t[ext_i]) > thr:
            turns.append(ext_i)
            seg = t[ext_i: i + 1]
            trend = -trend
            ext_i = ext_i + int(np.argmax(seg) if trend > 0 else np.argmin(seg))
    turns.append(n)
    for a, b in itertools.pairwise(turns):
        seg = slice(a, b if b == n else b + 1)
        tt = t[seg]
        if len(tt) < 2:
            continue
        name = "cooling" if tt[-1] < tt[0] else "warming" if tt[-1] > tt[0] else "sweep"
        m = np.zeros(n, bool)
        m[seg] = True
        masks[name] = masks.get(name, np.zeros(n, bool)) | m
    if not masks:
        masks["sweep"] = np.ones(n, bool)
    return masks


def analyze_rt(ds: Dataset, **_options) -> dict:
    """Tc onset/mid/zero, 10-90 % width and R_n; per sweep direction when both exist."""
    f = ds.frame
    if "Temperature (K)" not in f or "Resistance (ohm)" not in f:
        raise AnalysisError(f"{ds.name}: R(T) analysis needs 'Temperature (K)' and 'Resistance (ohm)'")
    t = f["Temperature (K)"].to_numpy(float)
    r = f["Resistance (ohm)"].to_numpy(float)
    direction = f["Direction"].to_numpy() if "Direction" in f else None
    sweep = f["Sweep"].to_numpy() if "Sweep" in f else None
    masks = split_sweeps(t, direction, sweep)
    sweeps = {name: analyze_sweep(t[m], r[m]) for name, m in masks.items()}
    main = "cooling" if "cooling" in sweeps else next(iter(sweeps))
    result: dict = {"kind": "rt", "sweep": main}
    result.update({k: sweeps[main].get(k) for k in _NULL})
    result["message"] = sweeps[main]["message"]
    for name in ("cooling", "warming"):
        if name in sweeps:
            result[name] = sweeps[name]
    if main not in ("cooling", "warming"):
        result[main] = sweeps[main]
    if "cooling" in sweeps and "warming" in sweeps:
        a, b = sweeps["cooling"].get("tc_mid"), sweeps["warming"].get("tc_mid")
        result["hysteresis_mid"] = (b - a) if (a is not None and b is not None) else None
    return result
