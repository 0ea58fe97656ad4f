"""Radial scan (paper section 5.4): many radii, for the inversion to J(r)."""
from __future__ import annotations

import numpy as np
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from procedures.base import Requests, StationProcedure


class RadialScan(StationProcedure):
    """Scan the probe from r_start to r_stop at one current: a zero-current
    background scan first, then +I (and -I when the source is bipolar)."""

    KIND = "radial-scan"
    current = FloatParameter("Current", units="A", minimum=0, maximum=1e5, default=100.0)
    r_start = FloatParameter("Start radius", units="mm", minimum=0, maximum=1000, default=5.0)
    r_stop = FloatParameter("Stop radius", units="mm", minimum=0, maximum=1000, default=10.0)
    n_points = IntegerParameter("Radii", minimum=2, maximum=10000, default=21)
    averages = IntegerParameter("Readings per position", minimum=1, maximum=1000, default=5)
    read_interval = FloatParameter("Reading interval", units="s", minimum=0, maximum=60, default=0.1)
    settle_move = FloatParameter("Settle after move", units="s", minimum=0, maximum=600, default=0.5)
    settle_current = FloatParameter("Settle after current change", units="s", minimum=0, maximum=600, default=2.0)
    temperature = FloatParameter("Temperature", units="K", minimum=0, maximum=400, default=0.0)
    reversal = ListParameter("Current reversal", choices=["auto", "yes", "no"], default="auto")
    background = BooleanParameter("Zero-current background scan", default=True)

    DATA_COLUMNS = ["Radius (m)", "Field (T)", "Field std (T)", "Current (A)", "Current read (A)", "Polarity", "Temperature (K)",
                    "Position (mm)", "Readings"] + StationProcedure.COMMON_COLUMNS

    def radii(self) -> np.ndarray:
        return np.linspace(self.r_start, self.r_stop, self.n_points) * 1e-3

    def _bipolar(self) -> bool:
        if self.reversal != "auto":
            return self.reversal == "yes"
        return bool(getattr(self.station.roles.get("current_source"), "bipolar", False))

    def points(self) -> list[dict]:
        passes = ([0] if self.background else []) + [1] + ([-1] if self._bipolar() else [])
        out = []
        for k, pol in enumerate(passes):
            radii = self.radii() if k % 2 == 0 else self.radii()[::-1]
            out += [{"polarity": pol, "radius": float(r)} for r in radii]
        return out

    def requests(self) -> Requests:
        stage = self.station.roles.get("stage") if self.station is not None else None
        ends = (self.radii()[0], self.radii()[-1])
        currents = [self.current] + ([-self.current] if self._bipolar() else [])
        return Requests(currents=currents, temperatures=[self.temperature] if self.temperature > 0 else [],
                        positions=[stage.position_for_radius(r) for r in ends] if stage is not None else [])

    def startup(self) -> None:
        import math

        st = self.station
        if self.temperature > 0:
            self.hold_temperature(self.temperature, 0.01, 30.0)
        st.gaussmeter.set_range_for(1.3 * 4e-7 * math.pi * self.current / (2 * math.pi * self.radii().max()) + 5e-4)

    def measure(self, point: dict) -> list[dict]:
        st = self.station
        target = point["polarity"] * self.current
        if abs(st.current_source.setpoint - target) > 1e-9:
            st.current_source.ramp_to(target, should_stop=self.should_stop)
            self.sleep(self.settle_current)
        st.stage.move_to_radius(point["radius"], should_stop=self.should_stop)
        self.sleep(self.settle_move)
        b, std = st.gaussmeter.read_average(self.averages, self.read_interval)
        flowing = st.current_source.current  # read back with the field
        return [{"Radius (m)": point["radius"], "Current read (A)": flowing, "Field (T)": b, "Field std (T)": std, "Readings": self.averages,
                 "Current (A)": self.current if point["polarity"] else 0.0, "Polarity": point["polarity"],
                 "Temperature (K)": st.temperature.read(), "Position (mm)": st.stage.position}]
