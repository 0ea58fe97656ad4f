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

Every steep drop (d ln R / d ln T >= 10, metals stay below 5) of at least 5 %
of R and 10 noise sigma is found (``steps``).  R_n is the normal-state line
fitted just above the highest one, evaluated at its top; onset / mid / width
refer to the whole drop from R_n to the floor.  ``transition``: ``complete``
(the floor is zero within the noise), ``multi-step`` (complete, in several
steps; a warning lists them), ``partial`` (R does not reach zero:
``superconducting`` is False and ``tc_zero`` None) or ``none`` (every Tc is
None and ``message`` says why; no Tc is ever invented).
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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end] index pairs of the contiguous True runs of ``mask``."""
    out, k, n = [], 0, len(mask)
    while k < n:
        if mask[k]:
            j = k
            while j + 1 < n and mask[j + 1]:
                j += 1
            out.append((k, j))
            k = j + 1
        else:
            k += 1
    return out


def _steps(t, rs, s, s_knee, min_drop):
    """Every steep drop: runs of d lnR/d lnT >= S_TRANSITION, widened to where the slope falls
    back below ``s_knee`` on both sides (unusable slopes near R = 0 count as steep), merged
    when they touch, kept when they drop by at least ``min_drop``.  Highest first."""
    n = len(t)
    steep_or_nan = ~(np.isfinite(s) & (s < s_knee))
    found = []
    for a, b in _runs(np.nan_to_num(s, nan=-np.inf) >= S_TRANSITION):
        top = b
        while top + 1 < n and steep_or_nan[top + 1]:
            top += 1
        top = min(top + 1, n - 1)
        bot = a
        while bot - 1 >= 0 and steep_or_nan[bot - 1]:
            bot -= 1
        bot = max(bot - 1, 0)
        if found and bot <= found[-1][1]:
            found[-1] = (found[-1][0], top, found[-1][2] if s[found[-1][2]] >= np.nanmax(s[a:b + 1]) else
                         a + int(np.nanargmax(s[a:b + 1])))
        else:
            found.append((bot, top, a + int(np.nanargmax(s[a:b + 1]))))
    steps = []
    for bot, top, pk in found:
        drop = float(rs[top] - rs[bot])
        if drop >= min_drop:
            steps.append({"bottom": bot, "top": top, "peak": pk, "drop": drop})
    return sorted(steps, key=lambda st: -t[st["top"]])


def _normal_line(t, r, itop, width):
    """R_n: the normal-state line fitted just above the top of the transition, at its top."""
    span = max(2.0 * width, 0.02 * t[itop])
    sel = (t >= t[itop]) & (t <= t[itop] + span)
    if sel.sum() >= 5 and np.ptp(t[sel]) > 0:
        slope, icpt = np.polyfit(t[sel], r[sel], 1)
        return float(icpt + slope * t[itop]), float(slope)
    return None, None


def analyze_sweep(temperature, resistance) -> dict:
    """Transition temperatures of one monotonic sweep (any order of points)."""
    t = np.asarray(temperature, dtype=float)
    r = np.asarray(resistance, dtype=float)
    ok = np.isfinite(t) & np.isfinite(r)
    t, r = _group(t[ok], r[ok])
    n = len(t)
    out = dict(_NULL)
    out.update({"t_min": float(t.min()) if n else None, "t_max": float(t.max()) if n else None,
                "points": int(n), "transition": "none", "superconducting": False, "steps": []})
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
    out["s_peak"] = smax
    min_drop = max(10 * sigma, 0.05 * rmax, 1e-12)
    steps = _steps(t, rs, s, s_knee, min_drop)
    if not steps:
        why = (f"no steep drop (max d lnR/d lnT = {smax:.3g} < {S_TRANSITION:g})" if smax < S_TRANSITION
               else "the steep part drops by less than 5 % of R or within the noise")
        out["message"] = f"no superconducting transition between {t.min():.4g} K and {t.max():.4g} K: {why}"
        out["r_min"] = float(rs.min())
        out["r_max"] = rmax
        return out
    first, last = steps[0], steps[-1]
    iknee = first["top"]
    width_top = max(t[first["top"]] - t[first["bottom"]], 1e-12)
    r_n, normal_slope = _normal_line(t, r, iknee, width_top)
    if r_n is None or not np.isfinite(r_n) or r_n <= 0:
        r_n = float(rs[iknee])
    below = t < t[last["bottom"]]
    if below.sum() >= 3:
        floor = float(np.median(rs[below]))
        sigma_floor = 1.4826 * float(np.median(np.abs(r[below] - np.median(r[below]))))
    else:
        floor, sigma_floor = float(rs[last["bottom"]]), sigma
    sigma_floor = max(sigma_floor, 1e-9 * abs(r_n))
    drop = r_n - floor
    out["r_normal"] = r_n
    out["normal_slope"] = normal_slope
    out["r_floor"] = floor
    out["floor_fraction"] = floor / r_n
    out["steps"] = []
    for st in steps:
        level = 0.5 * (rs[st["top"]] + rs[st["bottom"]])
        out["steps"].append({"t_mid": _crossing_down(t, rs, level, st["top"]),
                             "t_top": float(t[st["top"]]), "t_bottom": float(t[st["bottom"]]),
                             "drop_fraction": float(st["drop"] / r_n)})

    t90, t50, t10 = (_crossing_down(t, rs, floor + f * drop, iknee) for f in (0.9, 0.5, 0.1))
    out["tc_onset"] = t90
    out["tc_mid"] = t50
    out["width_10_90"] = (t90 - t10) if (t90 is not None and t10 is not None) else None
    thr = floor + 3 * sigma_floor
    out["zero_threshold"] = thr
    msgs = []
    complete = abs(floor) <= max(3 * sigma_floor, 0.01 * abs(r_n))
    if len(steps) > 1:
        msgs.append(f"{len(steps)}-step transition: " + ", ".join(
            f"{st['t_mid']:.4g} K ({st['drop_fraction']:.0%} of R_n)" for st in out["steps"] if st["t_mid"]))
    if complete and t10 is not None:
        i10 = int(np.searchsorted(t, t10, side="right")) - 1
        i10 = min(max(i10, 0), n - 1)
        out["tc_zero"] = _crossing_down(t, rs, thr, i10)
        if out["tc_zero"] is None:
            msgs.append("R does not fall below the noise threshold in range")
    if complete:
        out["transition"] = "multi-step" if len(steps) > 1 else "complete"
        out["superconducting"] = True
        head = "superconducting transition found"
    else:
        out["transition"] = "partial"
        head = (f"partial transition: R falls only to {floor / r_n:.0%} of R_n (residual {floor:.3g} ohm), "
                f"not to zero: not superconducting in this range")
    out["message"] = head + (f"; {'; '.join(msgs)}" if msgs else "")
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
    for key in ("transition", "superconducting", "steps"):
        result[key] = sweeps[main].get(key)
    result["message"] = sweeps[main]["message"]
    notes = []
    for name, sw in sweeps.items():
        if sw.get("transition") == "partial":
            notes.append(f"{name}: {sw['message'].split(';')[0]}")
        elif sw.get("transition") == "multi-step":
            notes.append(f"{name}: " + next(m for m in sw["message"].split("; ") if "step" in m)
                         + " - Tc mid is the midpoint of the whole drop")
    result["notes"] = notes
    for name in ("cooling", "warming"):
        if name in sweeps:
            result[name] = sweeps[name]
    if main not in ("cooling", "warming"):
        result[main] = sweeps[main]
    if "cooling" in sweeps and "warming" in sweeps:
        a, b = sweeps["cooling"].get("tc_mid"), sweeps["warming"].get("tc_mid")
        result["hysteresis_mid"] = (b - a) if (a is not None and b is not None) else None
    return result
