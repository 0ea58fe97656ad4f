"""Sample presets: literature values (DESIGN.md section 5) plus the transport
parameters a bulk 10 mm radius cylinder of each material would show.

Type-I metals (Pb, Sn, Al, In) carry current in a London surface layer up to
the Silsbee current Ic = 2 pi R Hc(T); type-II materials (Nb, MgB2, YBCO) are
described by a critical current density Jc(T) = Jc0 (1 - T/Tc)^1.5 and the Bean
critical state.  The working temperature of each preset sits close enough to
Tc that Ic is a few hundred amperes, within reach of a 600 A supply.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from labctl.physics import EC_DEFAULT, MU0


@dataclass(frozen=True)
class Material:
    name: str
    tc: float  # K, resistive midpoint
    bc0: float  # T, thermodynamic critical field mu0 Hc(0)
    london_lambda: float  # m
    debye: float  # K, Bloch-Grueneisen temperature
    rho_300: float  # ohm m at 300 K
    rrr: float  # residual-resistance ratio rho(300 K) / rho(0)
    type_ii: bool
    jc0: float = 0.0  # A/m^2 at T = 0 (type II only)
    n_value: float = 30.0  # E ~ J^n above Jc
    transition_width: float = 0.02  # K, 10-90 % width of R(T)
    working_temperature: float = 4.2  # K, default for the field measurements
    bath_temperature: float = 4.2  # K, cryostat cold plate
    linear_resistivity: bool = False  # cuprates: rho = rho0 + a T instead of Bloch-Grueneisen
    default_field_model: str = "bean"
    notes: str = field(default="", compare=False)

    # --- critical parameters ------------------------------------------------
    def _soft(self, x: float, slope: float) -> float:
        """max(x, 0) smoothed over the transition width: the sample's local Tc is
        spread over ``transition_width``, so its critical parameters vanish smoothly
        around Tc instead of at exactly Tc (x is a reduced distance below Tc whose
        derivative with respect to T at Tc is -slope / Tc)."""
        w = slope * self.transition_width / (2.2 * self.tc)
        return w * float(np.logaddexp(0.0, x / w))

    def hc(self, t: float) -> float:
        """H_c(T) = H_c0 (1 - (T/Tc)^2) in A/m (smoothed over the transition width)."""
        return self.bc0 / MU0 * self._soft(1.0 - (t / self.tc) ** 2, 2.0)

    def critical_current(self, t: float, radius: float) -> float:
        """DC critical current of a solid cylinder of this radius at T (A)."""
        if self.type_ii:
            return self.jc0 * self._soft(1.0 - t / self.tc, 1.0) ** 1.5 * math.pi * radius**2
        return 2 * math.pi * radius * self.hc(t)

    # --- normal state -------------------------------------------------------
    def resistivity(self, t: float) -> float:
        """Normal-state resistivity rho_n(T) (ohm m), extrapolated below Tc."""
        rho0 = self.rho_300 / self.rrr
        if self.linear_resistivity:
            return rho0 + (self.rho_300 - rho0) * t / 300.0
        scale = (self.rho_300 - rho0) / _bloch_grueneisen(300.0 / self.debye)
        return rho0 + scale * _bloch_grueneisen(t / self.debye)

    def superconducting_fraction(self, t: float) -> float:
        """Fraction of the normal resistance that has vanished at T (0..1)."""
        w = self.transition_width / (2 * math.atanh(0.8))
        return 0.5 * (1.0 - math.tanh((t - self.tc) / w))

    def ec_voltage(self, current: float, t: float, radius: float, tap: float) -> float:
        """Flux-flow voltage Ec d (I/Ic)^n (V); infinite resistance scale above Tc."""
        ic = self.critical_current(t, radius)
        if ic <= 0:
            return math.inf
        ratio = abs(current) / ic
        return EC_DEFAULT * tap * ratio**self.n_value


@lru_cache(maxsize=4096)
def _bg_integral(upper: float) -> float:
    from scipy.integrate import quad

    def f(x: float) -> float:
        if x < 1e-8:
            return x**3
        return x**5 / ((math.exp(x) - 1.0) * (1.0 - math.exp(-x)))

    return quad(f, 0.0, upper, limit=200)[0]


def _bloch_grueneisen(t_over_theta: float) -> float:
    """(T/theta)^5 J5(theta/T), the phonon part of rho(T) up to a constant."""
    if t_over_theta <= 0:
        return 0.0
    key = round(t_over_theta, 4)
    if key <= 0:
        return 0.0
    return key**5 * _bg_integral(1.0 / key)


PRESETS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("Pb", tc=7.196, bc0=80.3e-3, london_lambda=30.5e-9, debye=105, rho_300=2.08e-7,
                 rrr=20, type_ii=False, transition_width=0.02, working_temperature=6.8,
                 bath_temperature=4.2, default_field_model="meissner",
                 notes="type I; Ic(6.8 K) ~ 430 A (Silsbee)"),
        Material("Sn", tc=3.72, bc0=30.5e-3, london_lambda=34e-9, debye=200, rho_300=1.15e-7,
                 rrr=30, type_ii=False, transition_width=0.02, working_temperature=3.4,
                 bath_temperature=1.5, default_field_model="meissner",
                 notes="type I; Ic(3.4 K) ~ 250 A"),
        Material("In", tc=3.41, bc0=28.2e-3, london_lambda=40e-9, debye=108, rho_300=8.4e-8,
                 rrr=30, type_ii=False, transition_width=0.02, working_temperature=3.1,
                 bath_temperature=1.5, default_field_model="meissner"),
        Material("Al", tc=1.175, bc0=10.5e-3, london_lambda=50e-9, debye=428, rho_300=2.7e-8,
                 rrr=50, type_ii=False, transition_width=0.005, working_temperature=1.1,
                 bath_temperature=0.3, default_field_model="meissner"),
        Material("Nb", tc=9.26, bc0=199e-3, london_lambda=40e-9, debye=275, rho_300=1.52e-7,
                 rrr=30, type_ii=True, jc0=2.0e7, n_value=25, transition_width=0.05,
                 working_temperature=8.0, bath_temperature=4.2,
                 notes="type II, Hc2 ~ 410 mT; Ic(8.0 K) ~ 315 A"),
        Material("MgB2", tc=39.0, bc0=0.26, london_lambda=100e-9, debye=900, rho_300=1.0e-7,
                 rrr=5, type_ii=True, jc0=2.0e7, n_value=20, transition_width=0.5,
                 working_temperature=35.0, bath_temperature=4.2,
                 notes="sintered; Ic(35 K) ~ 210 A"),
        Material("YBCO", tc=92.0, bc0=1.0, london_lambda=150e-9, debye=400, rho_300=1.0e-5,
                 rrr=3, type_ii=True, jc0=1.5e7, n_value=15, transition_width=1.0,
                 working_temperature=80.0, bath_temperature=4.2, linear_resistivity=True,
                 notes="sintered, intergranular Jc; Ic(80 K) ~ 220 A"),
    )
}


def preset(name: str, **overrides) -> Material:
    """Look up a preset by name (case-insensitive), optionally overriding fields."""
    for key, value in PRESETS.items():
        if key.lower() == name.lower():
            return replace(value, **overrides) if overrides else value
    raise KeyError(f"unknown sample preset {name!r}; choose one of {', '.join(PRESETS)}")


def critical_current_table(radius: float = 0.01) -> dict[str, float]:
    """Ic at each preset's working temperature (A), for documentation and tests."""
    return {n: m.critical_current(m.working_temperature, radius) for n, m in PRESETS.items()}


__all__ = ["Material", "PRESETS", "preset", "critical_current_table", "np"]
