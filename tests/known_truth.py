"""Known-truth data for the calibration tests, written independently of labctl's analysis.

Nothing here imports labctl: the field profiles, the V-I curve and the R(T) curve are
written out from the physics (DESIGN.md section 5), so an error shared by the analysis
and its own helpers cannot cancel out.

Radial field (``radial_dataset``): a cylinder of radius R = 10 mm, probes nominally at
5, 7.07 and 10 mm, 3-5 currents, 3-5 repeats, both polarities, a constant Hall offset,
Gaussian noise 1-5 uT and a calibration factor 0.97-1.03.  Each probe sits off its
nominal radius by delta ~ N(0, ``position_sigma``) (the outer probe, at the wall,
outwards by |delta|): that is the uncertainty the analysis is told about.
``fmt="foreign"`` writes only ``Repeat, Polarity, Current (A), Radius (m), Field (T)``;
``fmt="labctl"`` writes what our procedure writes: a zero-current background per repeat,
``Field`` = mean of ``Readings`` readings, ``Field std`` = their sample scatter, a time column.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

MU0 = 4e-7 * math.pi
R = 0.010
RADII = (0.005, 0.00707, 0.010)
LAMBDA = 30e-9
POSITION_SIGMA = 2e-5  # m, the analysis' stated default

TRUE_RATIOS = {"uniform": (0.00707 / 0.005, 2.0), "linear-j": ((0.00707 / 0.005) ** 2, 4.0)}


def field(model: str, r: float, current: float) -> float:
    """B(r) (T) of one model; outside the cylinder every model gives mu0 I / (2 pi r)."""
    if r >= R:
        return MU0 * current / (2 * math.pi * r)
    if model == "uniform":  # J uniform: I_enc = I r^2 / R^2
        return MU0 * current * r / (2 * math.pi * R**2)
    if model == "linear-j":  # J = A r: I_enc = I r^3 / R^3
        return MU0 * current * r**2 / (2 * math.pi * R**3)
    if model == "meissner":  # London screening, I1(r/l)/I1(R/l) ~ sqrt(R/r) exp(-(R-r)/l) for R/l >> 1
        return MU0 * current / (2 * math.pi * R) * math.sqrt(R / r) * math.exp(-(R - r) / LAMBDA)
    raise ValueError(model)


def radial_dataset(model: str, rng: np.random.Generator, fmt: str = "foreign", *, repeats=None,
                   position_sigma: float = POSITION_SIGMA, drift_per_s: float = 0.0,
                   probe_shift: float = 0.0) -> pd.DataFrame:
    """One radial-field file with known truth (see the module docstring).

    ``drift_per_s``: a linear Hall-offset drift (T/s; readings 2 s apart);
    ``probe_shift``: the innermost probe moved by this much (m) on top of the random offsets.
    """
    nrep = int(repeats if repeats is not None else rng.integers(3, 6))
    ncur = int(rng.integers(3, 6))
    imax = float(rng.uniform(60.0, 250.0))
    currents = np.round(np.linspace(imax / ncur, imax, ncur), 3)
    noise = float(rng.uniform(1e-6, 5e-6))
    offset = float(rng.uniform(-5e-5, 5e-5))
    k = float(rng.uniform(0.97, 1.03))
    delta = rng.normal(0.0, position_sigma, len(RADII))
    true_r = [r + d for r, d in zip(RADII, delta)]
    true_r[-1] = RADII[-1] + abs(delta[-1])
    true_r[0] += probe_shift
    readings = int(rng.integers(5, 21))
    rows = []
    clock = 0.0

    def reading(b_true: float) -> tuple[float, float]:
        nonlocal clock
        clock += 2.0
        base = b_true + offset + drift_per_s * clock
        if fmt == "foreign":
            return base + rng.normal(0.0, noise), math.nan
        x = base + rng.normal(0.0, noise * math.sqrt(readings), readings)
        return float(x.mean()), float(x.std(ddof=1))

    for rep in range(1, nrep + 1):
        if fmt == "labctl":
            for r, rt in zip(RADII, true_r):
                b, s = reading(0.0)
                rows.append({"Repeat": rep, "Current (A)": 0.0, "Radius (m)": r, "Field (T)": b,
                             "Field std (T)": s, "Readings": readings, "Polarity": 0, "Time (s)": clock})
        for current in currents:
            for pol in (1, -1):
                order = list(zip(RADII, true_r))
                if pol < 0:
                    order = order[::-1]
                for r, rt in order:
                    b, s = reading(pol * k * field(model, rt, float(current)))
                    row = {"Repeat": rep, "Polarity": pol, "Current (A)": float(current), "Radius (m)": r,
                           "Field (T)": b}
                    if fmt == "labctl":
                        row.update({"Field std (T)": s, "Readings": readings, "Time (s)": clock})
                    rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["truth"] = {"model": model, "noise": noise, "k": k, "delta": list(delta), "repeats": nrep}
    return frame


# ---------------------------------------------------------------------------
# V-I
# ---------------------------------------------------------------------------
EC = 1e-4  # V/m


def vi_dataset(rng: np.random.Generator, n_value: float, *, ic: float | None = None, tap: float = 0.01,
               points: int = 300, imax_factor: float = 1.15):
    """I (A), V (V) with V = a + b I + Ec d (I/Ic)^n + noise; returns (i, v, truth)."""
    ic = float(ic if ic is not None else rng.uniform(40.0, 300.0))
    vc = EC * tap
    a = float(rng.uniform(-3e-6, 3e-6))
    b = float(rng.uniform(-0.2, 0.5)) * vc / ic  # a background of -0.2 ... +0.5 Vc at Ic
    noise = float(rng.uniform(0.5e-8, 3e-8))
    i = np.linspace(0.0, imax_factor * ic, points)
    v = a + b * i + vc * (i / ic) ** n_value + rng.normal(0.0, noise, points)
    return i, v, {"ic": ic, "n": n_value, "noise": noise, "a": a, "b": b, "tap": tap}


# ---------------------------------------------------------------------------
# R(T)
# ---------------------------------------------------------------------------
def rt_steps(temps, steps, r_normal=1e-3, slope=2e-6, width=0.4, noise_frac=2e-3, rng=None):
    """R(T) of a sample with transitions ``steps`` = [(Tc, fraction of R_n lost), ...]
    (logistic steps of 10-90 % width ``width``) over a linear normal state."""
    t = np.asarray(temps, float)
    rn = r_normal + slope * (t - t.max())
    frac = np.ones_like(t)
    for tc, lost in steps:
        frac -= lost * (1 - 1 / (1 + np.exp(-(t - tc) / (width / 4.394))))
    r = rn * frac
    if rng is not None:
        r = r + rng.normal(0.0, noise_frac * r_normal, len(t))
    return r


# ---------------------------------------------------------------------------
# residual voltage
# ---------------------------------------------------------------------------
def residual_dataset(rng: np.random.Generator, slope: float = 0.0) -> pd.DataFrame:
    """A foreign residual-voltage file: 3-5 currents, 3-5 repeats, both polarities, a thermal
    EMF offset, Gaussian noise 5-50 nV, true dV/dI = ``slope``; columns Current (A), Voltage (V), Polarity."""
    ncur, nrep = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    currents = np.linspace(20.0, float(rng.uniform(60.0, 300.0)), ncur)
    noise = float(rng.uniform(5e-9, 5e-8))
    emf = float(rng.uniform(-5e-6, 5e-6))
    v0 = float(rng.uniform(1e-7, 1e-6))
    rows = []
    for _rep in range(nrep):
        for c in currents:
            for pol in (1, -1):
                rows.append({"Current (A)": pol * c, "Polarity": pol,
                             "Voltage (V)": pol * (v0 + slope * c) + emf + rng.normal(0.0, noise)})
    return pd.DataFrame(rows)
