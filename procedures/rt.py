"""Four-probe resistance vs temperature through Tc, cooling then warming."""
from __future__ import annotations

import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter

from procedures.base import bounded_count, Requests, StationProcedure


class ResistanceVsTemperature(StationProcedure):
    """Step the temperature through Tc (fine steps near the expected Tc); at each
    step wait until the sample is stable, then measure R with current reversal."""

    KIND = "rt"
    QUENCH_DETECTION = False  # the sample is normal for half the sweep, by design
    t_high = FloatParameter("Upper temperature", units="K", minimum=0.1, maximum=400, default=9.0)
    t_low = FloatParameter("Lower temperature", units="K", minimum=0.1, maximum=400, default=6.0)
    expected_tc = FloatParameter("Expected Tc", units="K", minimum=0.1, maximum=400, default=7.2)
    fine_window = FloatParameter("Fine-step window", units="K", minimum=0, maximum=100, default=0.6)
    fine_step = FloatParameter("Fine step", units="K", minimum=1e-4, maximum=10, default=0.01)
    coarse_step = FloatParameter("Coarse step", units="K", minimum=1e-3, maximum=50, default=0.1)
    current = FloatParameter("Measurement current", units="A", minimum=1e-6, maximum=1000, default=0.5)
    sweeps = ListParameter("Sweeps", choices=["cooling", "warming", "cooling+warming"], default="cooling+warming")
    ramp_rate = FloatParameter("Setpoint ramp", units="K/min", minimum=0.01, maximum=100, default=2.0)
    tolerance = FloatParameter("Stability tolerance", units="K", minimum=1e-4, maximum=10, default=0.005)
    dwell = FloatParameter("Stability dwell", units="s", minimum=0, maximum=3600, default=10.0)
    settle = FloatParameter("Settle after current change", units="s", minimum=0, maximum=60, default=0.5)
    averages = IntegerParameter("Readings per polarity", minimum=1, maximum=100, default=1)

    DATA_COLUMNS = ["Temperature (K)", "Resistance (ohm)", "Voltage (V)", "Current (A)", "Current read (A)", "V+ (V)", "V- (V)",
                    "Setpoint (K)", "Direction"] + StationProcedure.COMMON_COLUMNS

    def grid(self) -> np.ndarray:
        """Temperatures from high to low: coarse outside, fine within the window around Tc."""
        lo, hi = sorted((self.t_low, self.t_high))
        w0, w1 = self.expected_tc - self.fine_window / 2, self.expected_tc + self.fine_window / 2
        bounded_count(hi - lo, self.coarse_step, "rt coarse grid", "raise coarse_step")
        if self.fine_window > 0:
            bounded_count(min(self.fine_window, hi - lo), self.fine_step, "rt fine grid", "raise fine_step")
        coarse = np.arange(hi, lo - 1e-9, -self.coarse_step)
        fine = np.arange(min(w1, hi), max(w0, lo) - 1e-9, -self.fine_step) if self.fine_window > 0 else []
        temps = np.unique(np.round(np.concatenate([coarse, fine, [lo, hi]]), 6))
        return temps[(temps >= lo) & (temps <= hi)][::-1]

    def points(self) -> list[dict]:
        down = list(self.grid())
        out = []
        if "cooling" in self.sweeps:
            out += [{"setpoint": float(t), "direction": "cooling"} for t in down]
        if "warming" in self.sweeps:
            out += [{"setpoint": float(t), "direction": "warming"} for t in down[::-1]]
        return out

    def requests(self) -> Requests:
        return Requests(currents=[self.current], temperatures=[self.t_low, self.t_high],
                        temperature_ramps=[self.ramp_rate])

    def measure(self, point: dict) -> list[dict]:
        st = self.station
        t_set = point["setpoint"]
        st.temperature.set_setpoint(t_set, ramp_rate=self.ramp_rate)
        tol = max(self.tolerance, 5e-4 * t_set)  # thermometer noise grows with T
        t_before = st.temperature.wait_stable(t_set, tolerance=tol, dwell=self.dwell, timeout=7200,
                                              should_stop=self.should_stop)
        r = st.voltmeter.reversal_voltage(st.current_source, self.current, settle=self.settle,
                                          n=self.averages, should_stop=self.should_stop)
        t_after = st.temperature.read()
        return [{
            "Temperature (K)": 0.5 * (t_before + t_after),
            "Resistance (ohm)": r["voltage"] / self.current,
            "Voltage (V)": r["voltage"], "Current (A)": self.current, "Current read (A)": r["current_read"],
            "V+ (V)": r["v_plus"], "V- (V)": r["v_minus"],
            "Setpoint (K)": t_set, "Direction": point["direction"],
        }]
