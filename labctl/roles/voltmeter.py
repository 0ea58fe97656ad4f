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
        v = float(self.query(":READ?", lambda: self.instrument.voltage))
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
        """Voltage with thermal EMFs cancelled by current reversal.

        Bipolar source: V = (V(+I) - V(-I)) / 2.  Unipolar source: V = V(I) - V(0)
        (the zero-current reading is taken right after, bracketing the drift).
        Leaves the source at ``amps``.
        """
        source.ramp_to(amps, should_stop=should_stop)
        self.clock.sleep(settle)
        v_plus, _ = self.read_average(n)
        if source.bipolar:
            source.ramp_to(-amps, should_stop=should_stop)
            self.clock.sleep(settle)
            v_minus, _ = self.read_average(n)
            voltage = (v_plus - v_minus) / 2
        else:
            source.ramp_to(0.0, should_stop=should_stop)
            self.clock.sleep(settle)
            v_minus, _ = self.read_average(n)
            voltage = v_plus - v_minus
        source.ramp_to(amps, should_stop=should_stop)
        return {"voltage": voltage, "v_plus": v_plus, "v_minus": v_minus}

    def state(self) -> dict:
        return {"voltage_V": self.read_voltage(), "nplc": float(self.instrument.voltage_nplc)}
