"""The shared physical world of the virtual lab.

One sample in one cryostat, one current path, one Hall probe on one stage.
Emulated instruments never invent readings: they set state here (heater
setpoint, source current, stage target) and read physics back (temperature,
tap voltage, field at the probe).  State evolves lazily: every access first
integrates the world up to the clock's present time.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from labctl import physics
from labctl.clock import Clock, SteppedClock
from labctl.materials import Material, preset

HEATER_RANGES_W = (0.0, 1.0, 10.0, 100.0)  # Lake Shore 336 output 1 into 25 ohm: off/low/med/high


@dataclass
class Sample:
    material: Material
    radius: float = 0.010  # m
    length: float = 0.050  # m
    tap_spacing: float = 0.010  # m, voltage taps
    field_model: str = "bean"

    @property
    def area(self) -> float:
        return math.pi * self.radius**2

    def normal_resistance(self, t: float) -> float:
        """Four-probe normal-state resistance between the taps (ohm)."""
        return self.material.resistivity(t) * self.tap_spacing / self.area

    def critical_current(self, t: float) -> float:
        return self.material.critical_current(t, self.radius)


@dataclass
class Controller:
    """Lake Shore 336 loop 1 state (closed-loop PID with setpoint ramp)."""

    setpoint: float = 4.2  # K, the value the user programmed
    ramp_setpoint: float = 4.2  # K, the ramping internal setpoint
    ramp_enabled: bool = False
    ramp_rate: float = 0.0  # K/min
    p: float = 50.0
    i: float = 20.0  # reset, 1000/ti
    d: float = 0.0
    heater_range: int = 0  # 0 off, 1 low, 2 medium, 3 high
    mode: int = 1  # 0 off, 1 closed loop PID, 3 open loop
    manual_output: float = 0.0  # %
    integral: float = 0.0
    last_error: float = 0.0
    output: float = 0.0  # % of range

    @property
    def ramping(self) -> bool:
        return self.ramp_enabled and abs(self.ramp_setpoint - self.setpoint) > 1e-9


@dataclass
class Stage:
    """Newport ESP300 axis 1: the Hall probe's radial position (mm)."""

    position: float = 10.0
    target: float = 10.0
    velocity: float = 1.0  # mm/s
    max_velocity: float = 5.0
    left_travel: float = 0.0  # hardware travel (mm)
    right_travel: float = 12.0
    left_limit: float = 0.0  # software limits SL / SR
    right_limit: float = 12.0
    enabled: bool = True
    stalled: bool = False

    @property
    def moving(self) -> bool:
        return abs(self.target - self.position) > 1e-9 and not self.stalled


@dataclass
class Imperfections:
    """Datasheet-level noise and offsets, drawn once from the seed."""

    voltage_noise: float = 5e-9  # V rms at 1 PLC (2182A, 10 mV range)
    thermal_emf: float = 0.0  # V, drawn in World.__init__
    emf_drift: float = 0.0  # V/s
    field_noise: float = 2e-7  # T rms (LS425 on the 35 G range, ~2 mG)
    hall_offset: float = 0.0  # T, drawn
    misalignment: float = 0.0  # rad, drawn
    ambient_field: float = 0.0  # T, component of Earth/stray field along the probe, drawn
    temperature_noise: float = 1e-3  # K rms, relative at 1 K, scaled with T
    position_jitter: float = 5e-4  # mm rms (0.5 um)
    current_noise: float = 1e-5  # relative readback noise of the supplies


@dataclass
class Faults:
    """Physical faults (instrument-link faults live on each emulator)."""

    quench: bool = False  # sample forced normal while current flows
    sensor_fault: bool = False  # temperature sensor open


class World:
    """All coupled state, advanced lazily to ``clock.now()``."""

    STEP = 0.25  # s, integration step of the thermal model

    def __init__(
        self,
        sample: str | Material = "Pb",
        field_model: str | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        temperature: float | None = None,
        radius: float = 0.010,
        tap_spacing: float = 0.010,
        lead_resistance: float = 2e-3,
        thermal_tau: float = 30.0,
        sample_lag: float = 20.0,
    ):
        material = preset(sample) if isinstance(sample, str) else sample
        model = field_model or material.default_field_model
        if model not in physics.FIELD_MODELS:
            raise ValueError(f"unknown field model {model!r}; choose one of {', '.join(physics.FIELD_MODELS)}")
        self.lock = threading.RLock()
        self.clock = clock or SteppedClock()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.sample = Sample(material, radius=radius, tap_spacing=tap_spacing, field_model=model)
        self.lead_resistance = lead_resistance
        t0 = material.working_temperature if temperature is None else float(temperature)
        self.bath = min(material.bath_temperature, t0)
        # cryostat: C dT/dt = P - G (T - T_bath); sample lags the stage with tau_lag
        self.conductance = 70.0 / max(3 * material.tc - self.bath, 10.0)  # W/K
        self.heat_capacity = self.conductance * thermal_tau  # J/K
        self.sample_lag = sample_lag
        self.t_stage = t0
        self.t_sample = t0
        self.controller = Controller(setpoint=t0, ramp_setpoint=t0, heater_range=3)
        # start in equilibrium: the loop is already regulating at t0 on the high range
        c = self.controller
        c.output = 100.0 * self.conductance * (t0 - self.bath) / HEATER_RANGES_W[3]
        c.integral = c.output / (c.p * c.i / 1000.0) if c.output > 0 else 0.0
        self.stage = Stage()
        self.sources: dict[str, float] = {}  # name -> current delivered (A)
        self.normal_latched = False  # quenched sample stays normal until current is removed
        self.imperfections = Imperfections(
            thermal_emf=float(self.rng.normal(0, 300e-9)),
            emf_drift=float(self.rng.normal(0, 0.2e-9)),
            hall_offset=float(self.rng.normal(0, 3e-5)),
            misalignment=float(abs(self.rng.normal(0, math.radians(2)))),
            ambient_field=float(self.rng.normal(0, 2e-5)),
        )
        self.probe_zero = 0.0  # T subtracted after ZPROBE
        self.faults = Faults()
        self._t = self.clock.now()
        self._t_start = self._t

    # ---------------------------------------------------------------- time
    def now(self) -> float:
        return self.clock.now()

    def advance(self) -> None:
        """Integrate thermal model, setpoint ramp and stage motion up to now."""
        with self.lock:
            t_now = self.clock.now()
            dt_total = t_now - self._t
            if dt_total <= 0:
                return
            self._move_stage(dt_total)
            steps = max(1, int(math.ceil(dt_total / self.STEP)))
            dt = dt_total / steps
            for k in range(steps):
                before = (self.t_stage, self.t_sample)
                self._thermal_step(dt)
                # quasi-static (regulated, not ramping, nothing changing): the rest of the
                # interval changes nothing either, so skip it (hours of idle cost nothing)
                if (k >= 240 and not self.controller.ramping
                        and abs(self.t_stage - before[0]) < 1e-9 and abs(self.t_sample - before[1]) < 1e-9):
                    break
            self._t = t_now

    def _thermal_step(self, dt: float) -> None:
        c = self.controller
        if c.ramp_enabled and c.ramp_rate > 0:
            step = c.ramp_rate / 60.0 * dt
            diff = c.setpoint - c.ramp_setpoint
            c.ramp_setpoint += max(-step, min(step, diff))
        else:
            c.ramp_setpoint = c.setpoint
        p_max = HEATER_RANGES_W[c.heater_range]
        if c.mode == 1:  # closed-loop PID on the control sensor (the stage)
            err = c.ramp_setpoint - self.t_stage
            c.integral += err * dt
            c.integral = max(-1e4, min(1e4, c.integral))  # anti wind-up
            deriv = (err - c.last_error) / dt
            c.last_error = err
            out = c.p * (err + c.i / 1000.0 * c.integral + c.d * deriv)
            if out > 100 or out < 0:  # do not integrate into saturation
                c.integral -= err * dt
            c.output = max(0.0, min(100.0, out))
        elif c.mode == 3:
            c.output = max(0.0, min(100.0, c.manual_output))
        else:
            c.output = 0.0
        power = p_max * c.output / 100.0 if c.heater_range else 0.0
        d_stage = (power - self.conductance * (self.t_stage - self.bath)) / self.heat_capacity
        self.t_stage = max(self.bath, self.t_stage + d_stage * dt)
        alpha = 1.0 - math.exp(-dt / self.sample_lag)
        self.t_sample += (self.t_stage - self.t_sample) * alpha

    def _move_stage(self, dt: float) -> None:
        s = self.stage
        if not s.moving or not s.enabled:
            return
        step = s.velocity * dt
        diff = s.target - s.position
        s.position += max(-step, min(step, diff))

    # ------------------------------------------------------------- current
    @property
    def current(self) -> float:
        """Total current flowing along the cylinder (A)."""
        return sum(self.sources.values())

    def set_source_current(self, name: str, amps: float) -> None:
        with self.lock:
            self.advance()
            self.sources[name] = float(amps)
            if abs(self.current) < 1e-6:
                self.normal_latched = False

    def load_resistance(self) -> float:
        """Resistance the high-current supply sees: leads plus sample (ohm)."""
        i = self.current
        v = self.sample_voltage() if abs(i) > 1e-9 else 0.0
        return self.lead_resistance + (v / i if abs(i) > 1e-9 else self.sample.normal_resistance(self.t_sample))

    # -------------------------------------------------------------- physics
    def is_superconducting(self) -> bool:
        return (self.t_sample < self.sample.material.tc and not self.normal_latched
                and not self.faults.quench)

    def sample_voltage(self) -> float:
        """True four-probe voltage between the taps (V), no instrument errors."""
        with self.lock:
            self.advance()
            s = self.sample
            i = self.current
            t = self.t_sample
            r_n = s.normal_resistance(t)
            if self.faults.quench or self.normal_latched:
                return i * r_n
            frac_sc = s.material.superconducting_fraction(t)  # broadened transition (inhomogeneity)
            v = i * r_n * (1.0 - frac_sc)
            ic = s.critical_current(t)
            if i and ic > 0 and frac_sc > 1e-12:
                if not s.material.type_ii and abs(i) > ic:
                    # type I above Silsbee: intermediate state, R/R_n = (1 + sqrt(1 - (Ic/I)^2)) / 2
                    v += frac_sc * i * r_n * 0.5 * (1.0 + math.sqrt(1.0 - (ic / i) ** 2))
                else:  # flux flow, E = Ec (J/Jc)^n
                    v += frac_sc * math.copysign(s.material.ec_voltage(i, t, s.radius, s.tap_spacing), i)
            if abs(v) >= abs(i * r_n):
                v = i * r_n
                deep = t < s.material.tc - 3 * s.material.transition_width  # not within the transition
                if s.material.type_ii and deep and abs(i) > 1.5 * ic:
                    self.normal_latched = True  # flux-flow heating runs away: a real quench
            return v

    def true_field(self, r_m: float | None = None) -> float:
        """Azimuthal field B(r) at the probe from the sample current (T)."""
        with self.lock:
            self.advance()
            s = self.sample
            r = (self.stage.position * 1e-3) if r_m is None else r_m
            i = self.current
            t = self.t_sample
            if i == 0.0:
                return 0.0
            if not self.is_superconducting() or s.field_model == "uniform":
                return float(physics.field_uniform(r, i, s.radius))
            m = s.material
            model = s.field_model
            ic = s.critical_current(t)
            if model == "linear-j":
                return float(physics.field_linear_j(r, i, s.radius))
            if model == "bean":
                return float(physics.field_bean(r, i, s.radius, ic))
            if model == "meissner" and abs(i) < 2 * math.pi * s.radius * m.hc(t):
                return float(physics.field_meissner(r, i, s.radius, m.london_lambda))
            return float(physics.field_intermediate(r, i, s.radius, m.hc(t), m.london_lambda))

    def probe_field(self) -> float:
        """What the Hall probe senses before the gaussmeter's zero (T)."""
        imp = self.imperfections
        b = self.true_field() * math.cos(imp.misalignment) + imp.ambient_field + imp.hall_offset
        return b + float(self.rng.normal(0, imp.field_noise))

    def measured_voltage(self, nplc: float = 5.0) -> float:
        """Tap voltage as the nanovoltmeter sees it (V): thermal EMF and noise added."""
        imp = self.imperfections
        elapsed = self.clock.now() - self._t_start
        emf = imp.thermal_emf + imp.emf_drift * elapsed
        noise = imp.voltage_noise / math.sqrt(max(nplc, 0.01))
        return self.sample_voltage() + emf + float(self.rng.normal(0, noise))

    def measured_temperature(self, sensor: str = "A") -> float:
        """Sensor reading (K): A on the stage (control), B on the sample."""
        with self.lock:
            self.advance()
            if self.faults.sensor_fault:
                return float("nan")
            t = self.t_stage if sensor.upper() == "A" else self.t_sample
            sigma = self.imperfections.temperature_noise * max(1.0, t / 10.0)
            return max(0.0, t + float(self.rng.normal(0, sigma)))

    def measured_position(self) -> float:
        with self.lock:
            self.advance()
            return self.stage.position + float(self.rng.normal(0, self.imperfections.position_jitter))

    # -------------------------------------------------------------- control
    def move_stage(self, target: float) -> bool:
        """Start a move; False when the target is outside the software limits."""
        with self.lock:
            self.advance()
            s = self.stage
            if not (s.left_limit <= target <= s.right_limit):
                return False
            s.target = max(s.left_travel, min(s.right_travel, target))
            return True

    def quench(self) -> None:
        """Fault: a normal zone appears; the tap voltage jumps to I R_n."""
        with self.lock:
            self.advance()
            self.faults.quench = True

    def describe(self) -> dict:
        """Hidden truth, for tests and the rehearsal summary."""
        m = self.sample.material
        t = m.working_temperature
        return {
            "sample": m.name,
            "field_model": self.sample.field_model,
            "tc": m.tc,
            "working_temperature": t,
            "ic_at_working_temperature": self.sample.critical_current(t),
            "radius": self.sample.radius,
            "tap_spacing": self.sample.tap_spacing,
            "seed": self.seed,
        }


__all__ = ["World", "Sample", "Controller", "Stage", "HEATER_RANGES_W", "field"]
