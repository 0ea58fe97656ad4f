"""voltmeter role: tap voltage from a Keithley 2182A, with current reversal."""
from __future__ import annotations

from labctl.errors import InstrumentError
from labctl.roles.base import Role

OVERFLOW = 9.0e37


class Voltmeter(Role):
    role = "voltmeter"
    last_voltage = None

    def setup(self) -> None:
        opts = self.config
        with self.io("setup (channel 1, DC volts, NPLC)"):
            self.instrument.active_channel = 1
            self.instrument.channel_function = "voltage"
            self.instrument.voltage_nplc = float(getattr(opts, "nplc", 5.0))
            self.instrument.ch_1.voltage_range_auto_enabled = True

    def identity(self) -> str:
        with self.io("*IDN?"):
            return str(self.instrument.id)

    def read_voltage(self) -> float:
        """One reading (V); an overflow raises InstrumentError (never a 9.9e37 'value')."""
        v = self.query(":READ?", lambda: float(self.instrument.voltage))
        self.last_voltage = v
        if abs(v) >= OVERFLOW:
            raise InstrumentError(f"{self.name} at {self.address}: overload (+9.9E37) on the taps",
                                  role=self.name, address=self.address, last_command=":READ?")
        return v

    def read_average(self, n: int = 1) -> tuple[float, float]:
        """Mean and standard deviation (V) of ``n`` readings."""
        vals = [self.read_voltage() for _ in range(max(1, n))]
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
        return mean, std

    def reversal_voltage(self, source, amps: float, settle: float = 0.5, n: int = 1,
                         should_stop=None) -> dict:
        """Tap voltage at ``amps`` with thermal EMFs *and their linear drift* cancelled.

        Three readings at t1 < t2 < t3: bipolar source +I, -I, +I; unipolar
        source 0, I, 0.  The outer pair is interpolated linearly to t2, so an
        offset drifting linearly in time cancels whatever the ramp times are:
        bipolar V = (V+(t2) - V2) / 2, unipolar V = V2 - V0(t2).
        ``v_plus`` is the reading (or interpolation) at +I, ``v_minus`` at -I or zero.
        Leaves the source at zero (unipolar) or at +I (bipolar).
        """
        def reading_at(current):
            source.ramp_to(current, should_stop=should_stop)
            self.clock.sleep(settle)
            t0 = self.clock.now()
            v = self.read_average(n)[0]
            return v, 0.5 * (t0 + self.clock.now())

        levels = (amps, -amps, amps) if source.bipolar else (0.0, amps, 0.0)
        (v1, t1), (v2, t2), (v3, t3) = (reading_at(i) for i in levels)
        outer = v1 + (v3 - v1) * ((t2 - t1) / (t3 - t1) if t3 > t1 else 0.5)
        if source.bipolar:
            v_plus, v_minus = outer, v2
            voltage = (v_plus - v_minus) / 2
        else:
            v_plus, v_minus = v2, outer
            voltage = v_plus - v_minus
        return {"voltage": voltage, "v_plus": v_plus, "v_minus": v_minus}

    def state(self) -> dict:
        return {"voltage_V": self.read_voltage(), "nplc": float(self.instrument.voltage_nplc)}
