"""Radial field profile (paper section 5.3): B at r1, r2, r3 for several currents, repeated."""
from __future__ import annotations

import math

from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter, Parameter

from labctl.errors import ConfigError
from procedures.base import Requests, StationProcedure, parse_list

MU0 = 4e-7 * math.pi


class RadialField(StationProcedure):
    """At each current move the probe into each hole, let stage and field settle,
    and average the field, with both current polarities when the source is
    bipolar.  Each repeat starts with a zero-current background at every radius."""

    KIND = "radial-field"
    currents = Parameter("Currents", default="0.1,0.3,0.5,0.7")
    current_mode = ListParameter("Currents are", choices=["fraction of Ic", "A"], default="fraction of Ic")
    ic = FloatParameter("Critical current", units="A", minimum=0, maximum=1e5, default=0.0)
    radii = Parameter("Radii (mm)", default="5,7.07,10")
    sample_radius = FloatParameter("Sample radius", units="m", minimum=1e-4, maximum=1.0, default=0.01)
    repeats = IntegerParameter("Repeats", minimum=1, maximum=1000, default=3)
    averages = IntegerParameter("Readings per position", minimum=1, maximum=1000, default=10)
    read_interval = FloatParameter("Reading interval", units="s", minimum=0, maximum=60, default=0.1)
    settle_move = FloatParameter("Settle after move", units="s", minimum=0, maximum=600, default=1.0)
    settle_current = FloatParameter("Settle after current change", units="s", minimum=0, maximum=600, default=2.0)
    temperature = FloatParameter("Temperature", units="K", minimum=0, maximum=400, default=0.0)
    tolerance = FloatParameter("Stability tolerance", units="K", minimum=1e-4, maximum=10, default=0.01)
    dwell = FloatParameter("Stability dwell", units="s", minimum=0, maximum=3600, default=30.0)
    reversal = ListParameter("Current reversal", choices=["auto", "yes", "no"], default="auto")
    zero_probe = BooleanParameter("Zero the probe first", default=True)

    DATA_COLUMNS = ["Repeat", "Current (A)", "Radius (m)", "Field (T)", "Field std (T)", "Temperature (K)",
                    "Polarity", "Position (mm)", "Readings", "Current read (A)"] + StationProcedure.COMMON_COLUMNS

    # ------------------------------------------------------------- plan
    def current_list(self) -> list[float]:
        values = parse_list(self.currents, "currents")
        if self.current_mode == "A":
            return values
        if self.ic <= 0:
            raise ConfigError("currents are fractions of Ic but ic is not set; measure it (labctl run vi) "
                              "and pass --set ic=<A>, or give --set current_mode=A")
        if any(not 0 < f < 1 for f in values):
            raise ConfigError(f"current fractions {values} must all lie in (0, 1): only currents below Ic")
        return [round(f * self.ic, 2) for f in values]

    def radius_list(self) -> list[float]:
        radii = parse_list(self.radii, "radii")
        if any(r <= 0 for r in radii):
            raise ConfigError(f"radii {radii} must be positive (mm)")
        return [r * 1e-3 for r in radii]

    def points(self) -> list[dict]:
        out = []
        for rep in range(1, self.repeats + 1):
            out.append({"repeat": rep, "current": 0.0, "background": True})
            out += [{"repeat": rep, "current": i, "background": False} for i in self.current_list()]
        return out

    def requests(self) -> Requests:
        stage = self.station.stage if self.station is not None and "stage" in self.station.roles else None
        radii = self.radius_list()
        positions = [stage.position_for_radius(r) for r in radii] if stage is not None else []
        currents = self.current_list()
        if self._bipolar():
            currents += [-i for i in currents]
        temps = [self.temperature] if self.temperature > 0 else []
        return Requests(currents=currents, temperatures=temps, positions=positions)

    def _bipolar(self) -> bool:
        if self.reversal != "auto":
            return self.reversal == "yes"
        cs = self.station.roles.get("current_source") if self.station is not None else None
        return bool(getattr(cs, "bipolar", False))

    # ---------------------------------------------------------- execution
    def startup(self) -> None:
        st = self.station
        if self.temperature > 0:
            self.hold_temperature(self.temperature, self.tolerance, self.dwell)
        st.current_source.ramp_to(0.0)
        i_max = max([abs(i) for i in self.current_list()] + [0.0])
        st.gaussmeter.set_range_for(1.3 * MU0 * i_max / (2 * math.pi * self.sample_radius) + 5e-4)
        if self.zero_probe:
            st.gaussmeter.zero_probe()

    def read_at(self, radius: float, current: float, polarity: int, repeat: int) -> dict:
        st = self.station
        st.stage.move_to_radius(radius, should_stop=self.should_stop)
        self.sleep(self.settle_move)
        b, std = st.gaussmeter.read_average(self.averages, self.read_interval)
        flowing = st.current_source.current  # what the supply delivered, read back with the field
        return {"Repeat": repeat, "Current (A)": current, "Current read (A)": flowing, "Radius (m)": radius,
                "Field (T)": b,
                "Field std (T)": std, "Readings": self.averages, "Temperature (K)": st.temperature.read(), "Polarity": polarity,
                "Position (mm)": st.stage.position}

    def measure(self, point: dict) -> list[dict]:
        st = self.station
        radii = self.radius_list()
        rep = point["repeat"]
        if point["background"]:
            st.current_source.ramp_to(0.0, should_stop=self.should_stop)
            self.sleep(self.settle_current)
            return [self.read_at(r, 0.0, 0, rep) for r in radii]
        rows = []
        current = point["current"]
        polarities = (1, -1) if self._bipolar() else (1,)
        for k, pol in enumerate(polarities):
            st.current_source.ramp_to(pol * current, should_stop=self.should_stop)
            self.sleep(self.settle_current)
            order = radii if k % 2 == 0 else radii[::-1]  # no needless travel between polarities
            rows += [self.read_at(r, current, pol, rep) for r in order]
        return rows
