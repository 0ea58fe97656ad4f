"""Residual tap voltage vs transport current below Ic (the supplementary prediction)."""
from __future__ import annotations

from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter, Parameter

from labctl.errors import ConfigError
from procedures.base import Requests, StationProcedure, parse_list


class ResidualVoltage(StationProcedure):
    """At each current, the tap voltage with thermal EMFs cancelled by reversal
    (V(+I) - V(-I))/2, or V(I) - V(0) with a unipolar source."""

    KIND = "residual"
    currents = Parameter("Currents", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    current_mode = ListParameter("Currents are", choices=["fraction of Ic", "A"], default="fraction of Ic")
    ic = FloatParameter("Critical current", units="A", minimum=0, maximum=1e5, default=0.0)
    averages = IntegerParameter("Readings per polarity", minimum=1, maximum=1000, default=5)
    settle = FloatParameter("Settle after current change", units="s", minimum=0, maximum=600, default=2.0)
    temperature = FloatParameter("Temperature", units="K", minimum=0, maximum=400, default=0.0)

    DATA_COLUMNS = ["Current (A)", "Current read (A)", "Voltage (V)", "V+ (V)", "V- (V)", "Polarity", "Temperature (K)"] + \
        StationProcedure.COMMON_COLUMNS

    def current_list(self) -> list[float]:
        values = parse_list(self.currents, "currents")
        if self.current_mode == "A":
            return values
        if self.ic <= 0:
            raise ConfigError("currents are fractions of Ic but ic is not set: --set ic=<A> or current_mode=A")
        if any(not 0 < f < 1 for f in values):
            raise ConfigError(f"current fractions {values} must all lie in (0, 1)")
        return [round(f * self.ic, 2) for f in values]

    def points(self) -> list[dict]:
        return [{"current": i} for i in self.current_list()]

    def requests(self) -> Requests:
        cs = self.station.roles.get("current_source") if self.station is not None else None
        currents = self.current_list()
        if getattr(cs, "bipolar", False):
            currents += [-i for i in currents]
        return Requests(currents=currents, temperatures=[self.temperature] if self.temperature > 0 else [])

    def startup(self) -> None:
        if self.temperature > 0:
            self.hold_temperature(self.temperature, 0.01, 30.0)

    def measure(self, point: dict) -> list[dict]:
        st = self.station
        r = st.voltmeter.reversal_voltage(st.current_source, point["current"], settle=self.settle,
                                          n=self.averages, should_stop=self.should_stop)
        return [{"Current (A)": point["current"], "Current read (A)": r["current_read"], "Voltage (V)": r["voltage"], "V+ (V)": r["v_plus"],
                 "V- (V)": r["v_minus"], "Polarity": 1, "Temperature (K)": st.temperature.read()}]
