"""Physics of a current-carrying superconducting cylinder (DESIGN.md section 5).

Pure functions of SI quantities, shared by the virtual lab (which uses them as
the hidden truth) and by the analysis (which fits them to data).  Every model
obeys Ampere's law B(r) = mu0 I_enc(r) / (2 pi r), so all of them give
B(R) = mu0 I / (2 pi R) at the outer wall.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ive

MU0 = 4e-7 * np.pi * 1.00000000055  # vacuum permeability (T m / A), CODATA 2018
FLUX_QUANTUM = 2.067833848e-15  # h / 2e (Wb)
EC_DEFAULT = 1e-4  # electric-field criterion 1 uV/cm = 100 uV/m (V/m)

FIELD_MODELS = ("uniform", "linear-j", "meissner", "bean", "intermediate")


def outer_field(current: float, radius: float) -> float:
    """B at the outer wall, mu0 I / (2 pi R) (T); model independent."""
    return MU0 * current / (2 * np.pi * radius)


def field_uniform(r, current, radius):
    """Uniform current density (normal state): B = mu0 I r / (2 pi R^2) inside."""
    r = np.asarray(r, dtype=float)
    inside = MU0 * current * r / (2 * np.pi * radius**2)
    return np.where(r <= radius, inside, MU0 * current / (2 * np.pi * np.maximum(r, 1e-30)))


def field_linear_j(r, current, radius):
    """The hypothesis under test, J = A r: B = mu0 I r^2 / (2 pi R^3) inside."""
    r = np.asarray(r, dtype=float)
    inside = MU0 * current * r**2 / (2 * np.pi * radius**3)
    return np.where(r <= radius, inside, MU0 * current / (2 * np.pi * np.maximum(r, 1e-30)))


def field_meissner(r, current, radius, london_lambda):
    """London screening: B = (mu0 I / 2 pi R) I1(r/lambda) / I1(R/lambda).

    Uses exponentially scaled Bessel functions so that R/lambda ~ 3e5 does
    not overflow: I1(x)/I1(X) = ive(1,x)/ive(1,X) * exp(x - X).
    """
    r = np.asarray(r, dtype=float)
    x = r / london_lambda
    big = radius / london_lambda
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ratio = ive(1, x) / ive(1, big) * np.exp(np.minimum(x - big, 0.0))
    ratio = np.where(r >= radius, 1.0, np.nan_to_num(ratio))
    return outer_field(current, radius) * ratio * np.where(r > radius, radius / np.maximum(r, 1e-30), 1.0)


def bean_front(current, radius, critical_current):
    """Radius r* of the flux-free core in the Bean critical state (m)."""
    i = min(abs(current) / critical_current, 1.0)
    return radius * np.sqrt(1.0 - i)


def field_bean(r, current, radius, critical_current):
    """Bean critical state: B = 0 for r < r*, mu0 Jc (r^2 - r*^2) / (2 r) above.

    Jc = Ic / (pi R^2).  At and above Ic the whole section carries Jc and the
    excess flows as a uniform (flux-flow) current, so B is uniform-like.
    """
    r = np.asarray(r, dtype=float)
    if abs(current) >= critical_current:
        return field_uniform(r, current, radius)
    jc = np.sign(current) * critical_current / (np.pi * radius**2)
    rs = bean_front(current, radius, critical_current)
    rr = np.maximum(r, 1e-30)
    inside = np.where(r > rs, MU0 * jc * (r**2 - rs**2) / (2 * rr), 0.0)
    return np.where(r <= radius, inside, MU0 * current / (2 * np.pi * rr))


def field_intermediate(r, current, radius, hc, london_lambda=50e-9):
    """Current-induced intermediate state above the Silsbee current Ic = 2 pi R Hc.

    i = I/Ic > 1, r1 = R (i - sqrt(i^2 - 1)); B = mu0 Hc for r <= r1 and
    mu0 Hc (r^2 + r1^2) / (2 r r1) above.  Below Silsbee the cylinder is in the
    Meissner state, so the London profile is returned.  ``hc`` is H in A/m.
    """
    r = np.asarray(r, dtype=float)
    silsbee = 2 * np.pi * radius * hc
    i = abs(current) / silsbee if silsbee > 0 else np.inf
    if i <= 1.0:
        return field_meissner(r, current, radius, london_lambda)
    r1 = radius * (i - np.sqrt(i * i - 1.0))
    bc = np.sign(current) * MU0 * hc
    rr = np.maximum(r, 1e-30)
    inside = np.where(r <= r1, bc, bc * (r**2 + r1**2) / (2 * rr * r1))
    return np.where(r <= radius, inside, MU0 * current / (2 * np.pi * rr))


def intermediate_ratios_range() -> tuple[float, float]:
    """B2/B1 bounds of the intermediate-state model (documentation helper)."""
    return 1.0, 1.34


def hc_of_t(hc0: float, t: float, tc: float) -> float:
    """Thermodynamic critical field H_c(T) = H_c0 (1 - (T/Tc)^2), zero above Tc."""
    return hc0 * max(0.0, 1.0 - (t / tc) ** 2)


def power_law_critical_voltage(current, ic, n, tap_spacing, ec=EC_DEFAULT):
    """Flux-flow voltage V = Ec d (I/Ic)^n (V) for a superconductor carrying I."""
    return ec * tap_spacing * np.power(np.abs(current) / ic, n) * np.sign(current)
