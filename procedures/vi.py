"""V-I sweep at the working temperature, stopped as soon as the sample passes the criterion."""
from __future__ import annotations

import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter

from procedures.base import bounded_count, Requests, StationProcedure


class VISweep(StationProcedure):
    """Step the current up; read the tap voltage (zero-current offset removed).
    Ramping stops once V exceeds ``stop_factor`` x Ec x tap spacing."""

    KIND = "vi"
    temperature = FloatParameter("Temperature", units="K", minimum=0, maximum=400, default=0.0)
    current_max = FloatParameter("Maximum current", units="A", minimum=1e-6, maximum=1000, default=600.0)
    current_step = FloatParameter("Current step", units="A", minimum=1e-6, maximum=100, default=5.0)
    tap_spacing = FloatParameter("Tap spacing", units="m", minimum=1e-4, maximum=1.0, default=0.01)
    criterion = FloatParameter("Electric-field criterion", units="V/m", minimum=1e-7, maximum=1.0, default=1e-4)
    stop_factor = FloatParameter("Stop at multiple of criterion", minimum=1.0, maximum=1000, default=10.0)
    settle = FloatParameter("Settle time", units="s", minimum=0, maximum=60, default=1.0)
    averages = IntegerParameter("Readings per point", minimum=1, maximum=100, default=2)
    tolerance = FloatParameter("Stability tolerance", units="K", minimum=1e-4, maximum=10, default=0.01)
    dwell = FloatParameter("Stability dwell", units="s", minimum=0, maximum=3600, default=30.0)

    DATA_COLUMNS = ["Current (A)", "Current read (A)", "Voltage (V)", "Voltage std (V)", "Raw voltage (V)", "Offset (V)",
                    "Temperature (K)"] + StationProcedure.COMMON_COLUMNS

    offset = None

    def currents(self) -> np.ndarray:
        n = bounded_count(self.current_max, self.current_step, "vi",
                          f"raise current_step (e.g. --set current_step={self.current_max / 200:.3g})")
        return np.round(np.minimum(np.arange(1, n + 1) * self.current_step, self.current_max), 6)

    def points(self) -> list[dict]:
        return [{"current": float(i)} for i in self.currents()]

    def requests(self) -> Requests:
        temps = [self.temperature] if self.temperature > 0 else []
        return Requests(currents=[self.current_max], temperatures=temps)

    def startup(self) -> None:
        if self.temperature > 0:
            self.hold_temperature(self.temperature, self.tolerance, self.dwell)

    def measure(self, point: dict) -> list[dict]:
        st = self.station
        if self.offset is None:  # thermal-EMF offset at zero current, before the sweep
            st.current_source.ramp_to(0.0, should_stop=self.should_stop)
            self.sleep(self.settle)
            self.offset, _ = st.voltmeter.read_average(max(4, self.averages))
        st.current_source.ramp_to(point["current"], should_stop=self.should_stop)
        self.sleep(self.settle)
        raw, std = st.voltmeter.read_average(self.averages)
        flowing = st.current_source.current  # read back with the voltage
        v = raw - self.offset
        if v > self.stop_factor * self.criterion * self.tap_spacing:
            st.current_source.ramp_to(0.0)  # protect the sample: down at once
            self.finished = True
        return [{"Current (A)": point["current"], "Current read (A)": flowing, "Voltage (V)": v, "Voltage std (V)": std,
                 "Raw voltage (V)": raw, "Offset (V)": self.offset,
                 "Temperature (K)": st.temperature.read()}]
