"""voltmeter role: tap voltage from a Keithley 2182A, with current reversal."""
from __future__ import annotations

from labctl.errors import ConfigError, InstrumentError
from labctl.roles.base import Role, log
from labctl.roles.verify import expect, no_errors

OVERFLOW = 9.0e37
RANGES_V = (0.01, 0.1, 1.0, 10.0, 100.0)  # channel 1


def fixed_range(config) -> float:
    """The fixed range (V): the station's, or the smallest that holds ten times the quench voltage."""
    if config.voltage_range:
        return next((r for r in RANGES_V if config.voltage_range <= r), RANGES_V[-1])
    need = 10 * config.limits.quench_voltage
    return next((r for r in RANGES_V if need <= r), RANGES_V[-1])


class Voltmeter(Role):
    role = "voltmeter"
    last_voltage = None

    def setup(self) -> None:
        """Run start (2182A user's manual): a known configuration, whatever the front panel left.

        ``*RST`` and ``*CLS`` (safe: the 2182A only measures), channel 1 DC volts, a fixed
        range (an autoranging meter can change range between the readings of a reversal),
        the digital filter repeating or off (a moving filter mixes +I and -I readings) and
        the analog filter from the station file, NPLC within the mains limit (50 at 50 Hz,
        60 at 60 Hz); every setting read back, then the error queue read.
        """
        opts, inst = self.config, self.instrument
        with self.io("*RST / *CLS"):
            inst.write("*RST")
            inst.write("*CLS")
        lf = opts.mains_frequency or self.query(":SYST:LFR?", lambda: float(inst.line_frequency))
        limit = 50.0 if float(lf) < 55 else 60.0
        nplc = float(opts.nplc)
        if nplc > limit:
            raise ConfigError(f"[voltmeter] nplc = {nplc:g} exceeds {limit:g}, the 2182A's limit on "
                              f"{float(lf):g} Hz mains; lower it")
        rng = fixed_range(opts)
        count = int(opts.digital_filter)
        with self.io(f"setup (channel 1, DC volts, range {rng:g} V, NPLC {nplc:g}, filters)"):
            inst.active_channel = 1
            inst.channel_function = "voltage"
            inst.voltage_nplc = nplc
            inst.ch_1.voltage_range = rng  # a fixed range switches autorange off
            inst.ch_1.voltage_range_auto_enabled = False
            if count > 1:
                inst.digital_filter_count = count
                inst.digital_filter_type = "REP"
                inst.digital_filter_enabled = True
            else:
                inst.digital_filter_enabled = False
            inst.analog_filter_enabled = bool(opts.analog_filter)
        rb = lambda what, fn: self.query(what, fn)  # noqa: E731
        expect(self, "NPLC", rb(":SENS:VOLT:NPLC?", lambda: float(inst.voltage_nplc)), nplc, tol=1e-6 * nplc)
        expect(self, "channel 1 range", rb(":SENS:VOLT:CHAN1:RANG?", lambda: float(inst.ch_1.voltage_range)),
               rng, tol=1e-9)
        expect(self, "autorange off", rb(":SENS:VOLT:CHAN1:RANG:AUTO?",
                                         lambda: bool(int(float(inst.ask(":SENS:VOLT:CHAN1:RANG:AUTO?"))))), False)
        expect(self, "digital filter", rb(":SENS:VOLT:DFIL:STAT?", lambda: inst.digital_filter_enabled), count > 1)
        if count > 1:
            expect(self, "digital filter count", rb(":SENS:VOLT:DFIL:COUN?", lambda: inst.digital_filter_count),
                   count)
            expect(self, "digital filter type", rb(":SENS:VOLT:DFIL:TCON?",
                                                   lambda: str(inst.digital_filter_type).strip()[:3]), "REP")
        expect(self, "analog filter", rb(":SENS:VOLT:LPAS:STAT?", lambda: inst.analog_filter_enabled),
               bool(opts.analog_filter))
        no_errors(self, self.query("SYST:ERR?", inst.read_errors), "after setup")
        self.range = rng
        log.info("%s: configured: range %g V, NPLC %g (%g Hz mains), digital filter %s, analog filter %s",
                 self.name, rng, nplc, float(lf), f"repeating x{count}" if count > 1 else "off",
                 "on" if opts.analog_filter else "off")

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
        flowing = []

        def reading_at(current):
            source.ramp_to(current, should_stop=should_stop)
            self.clock.sleep(settle)
            t0 = self.clock.now()
            v = self.read_average(n)[0]
            t_mid = 0.5 * (t0 + self.clock.now())  # the reading's own time, before anything else
            if current == amps:
                flowing.append(source.current)  # the current delivered during this reading, read back
            return v, t_mid

        levels = (amps, -amps, amps) if source.bipolar else (0.0, amps, 0.0)
        (v1, t1), (v2, t2), (v3, t3) = (reading_at(i) for i in levels)
        outer = v1 + (v3 - v1) * ((t2 - t1) / (t3 - t1) if t3 > t1 else 0.5)
        if source.bipolar:
            v_plus, v_minus = outer, v2
            voltage = (v_plus - v_minus) / 2
        else:
            v_plus, v_minus = v2, outer
            voltage = v_plus - v_minus
        return {"voltage": voltage, "v_plus": v_plus, "v_minus": v_minus,
                "current_read": sum(flowing) / len(flowing)}

    def errors(self) -> list[str]:
        """Drain the error queue (queries only)."""
        return self.query("SYST:ERR?", self.instrument.read_errors)

    def state(self) -> dict:
        return {"voltage_V": self.read_voltage(),
                "nplc": self.query(":SENS:VOLT:NPLC?", lambda: float(self.instrument.voltage_nplc))}
