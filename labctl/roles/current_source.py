"""current_source role: set/ramp current, read it back, output on/off, safe shutdown.

Every request is checked against the station limits *before* anything is sent.
Ramps are stepped on the station clock, never faster than the configured rate.
"""
from __future__ import annotations

import math
from typing import Callable

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role, log, strict_bool


class CurrentSource(Role):
    role = "current_source"
    bipolar = False
    resolution = 0.01  # A, smallest programmable step

    def __init__(self, config, instrument, clock, name=None):
        super().__init__(config, instrument, clock, name)
        self.limits = config.limits
        self._setpoint = 0.0
        self.monitor: Callable[[str], None] | None = None  # quench/interlock guard, ticked while ramping
        self.last_current: float | None = None  # last value read back from the supply (A)
        self.last_output: bool | None = None  # last output state read back

    # ----------------------------------------------------- driver specifics
    def _write_current(self, amps: float) -> None:
        raise NotImplementedError

    def _read_current(self) -> float:
        raise NotImplementedError

    def _write_output(self, on: bool) -> None:
        raise NotImplementedError

    def _read_output(self) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------ checking
    def check(self, amps: float, rate: float | None = None) -> None:
        """Raise LimitError if |amps| or rate exceed the station limits."""
        lim = self.limits
        if not math.isfinite(amps) or abs(amps) > lim.max_current:
            raise LimitError(f"{self.name}: {amps:g} A exceeds the station limit max_current = "
                             f"{lim.max_current:g} A (current_source.limits)")
        if amps < 0 and not self.bipolar:
            raise LimitError(f"{self.name}: {amps:g} A is negative but the {self.config.driver} is unipolar")
        if rate is not None and (not math.isfinite(rate) or rate <= 0 or rate > self.max_rate(emergency=True)):
            raise LimitError(f"{self.name}: ramp rate {rate:g} A/s is outside (0, {self.max_rate(True):g}] A/s "
                             "(current_source.limits)")

    def max_rate(self, emergency: bool = False) -> float:
        lim = self.limits
        return (lim.emergency_ramp_rate or lim.max_ramp_rate) if emergency else lim.max_ramp_rate

    # ------------------------------------------------------------- control
    @property
    def setpoint(self) -> float:
        return self._setpoint

    @property
    def current(self) -> float:
        """Measured output current (A)."""
        self.last_current = self.query("read current", lambda: float(self._read_current()))
        return self.last_current

    @property
    def output_enabled(self) -> bool:
        self.last_output = self.query("read output state", lambda: strict_bool(self._read_output()))
        return self.last_output

    def _read_setpoint(self) -> float:
        """The programmed level (A) as the instrument reports it."""
        raise NotImplementedError

    def learn_state(self) -> None:
        """Queries only: what the supply delivers now (connecting never changes it)."""
        on = self.output_enabled
        programmed = self.query("read programmed current", lambda: float(self._read_setpoint()))
        self._setpoint = programmed if on else 0.0
        self.current  # noqa: B018 - refresh last_current

    def take_over(self) -> list[str]:
        """Run start: if the supply is delivering current, ramp it down from where it
        is at the configured rate (never a step) and say so; then output off."""
        self.learn_state()
        done = []
        if self.last_output and abs(self._setpoint) > 0:
            msg = (f"{self.name}: found the output on at {self._setpoint:g} A (read back {self.last_current:.4g} A); "
                   f"ramping it down at {self.max_rate():g} A/s before the run")
            log.warning(msg)
            done.append(msg)
            self.ramp_to(0.0)
        if self.last_output:
            self.output_off()
            done.append(f"{self.name}: output off")
        return done

    def output_on(self) -> None:
        with self.io("output on"):
            self._write_output(True)
        self.last_output = True

    def output_off(self) -> None:
        with self.io("output off"):
            self._write_output(False)
        self.last_output = False

    def set_current(self, amps: float) -> None:
        """Program ``amps`` at once (a single step; use ramp_to for large changes)."""
        self.check(amps)
        if abs(amps - self._setpoint) > self.limits.ramp_step + 1e-12:
            raise LimitError(f"{self.name}: a jump of {abs(amps - self._setpoint):g} A exceeds ramp_step = "
                             f"{self.limits.ramp_step:g} A; use ramp_to")
        with self.io(f"set current {amps:g} A"):
            self._write_current(amps)
        self._setpoint = amps

    def ramp_to(self, amps: float, rate: float | None = None,
                should_stop: Callable[[], bool] | None = None, emergency: bool = False) -> None:
        """Ramp from the present setpoint to ``amps`` at ``rate`` A/s (default: the limit).

        Turns the output on first if needed.  ``should_stop`` is polled between
        steps; when it returns True the ramp stops where it is.
        """
        rate = rate if rate is not None else self.max_rate(emergency)
        self.check(amps, rate)
        if not emergency and rate > self.limits.max_ramp_rate:
            raise LimitError(f"{self.name}: ramp rate {rate:g} A/s exceeds max_ramp_rate = "
                             f"{self.limits.max_ramp_rate:g} A/s (current_source.limits)")
        if amps != 0 and not self.output_enabled:
            with self.io("set current 0 A"):
                self._write_current(0.0)
            self._setpoint = 0.0
            self.output_on()
        start = self._setpoint
        span = amps - start
        if span == 0:
            return
        step = min(self.limits.ramp_step, rate * 0.5)  # at least two steps a second
        n = max(1, int(math.ceil(abs(span) / step)))
        dt = abs(span) / n / rate
        for k in range(1, n + 1):
            if should_stop is not None and should_stop():
                return
            value = start + span * k / n
            value = round(value / self.resolution) * self.resolution if k < n else amps
            with self.io(f"set current {value:g} A"):
                self._write_current(value)
            self._setpoint = value
            self.clock.sleep(dt)
            if self.monitor is not None and not emergency and abs(amps) > abs(start):
                self.monitor(f"ramp to {amps:g} A")  # only while the current grows; a ramp-down is the cure

    def health(self) -> str | None:
        """A reason the supply is not delivering what it should (fault bits, compliance), or
        None.  Checked by the guard while current flows."""
        return None

    def errors(self) -> list[str]:
        """Drain the instrument's error queue (empty where the driver has none)."""
        reader = getattr(self.instrument, "read_errors", None)
        if reader is None:
            return []
        with self.io("read error queue"):
            return list(reader())

    def _check_errors(self, after: str) -> None:
        errors = self.errors()
        if errors:
            msg = f"UNVERIFIED: {self.name} reported {'; '.join(errors)} after {after}; check the instrument"
            log.critical(msg)
            raise InstrumentError(msg, role=self.name, address=self.address, last_command=self.last_command)

    def verify_off(self) -> str:
        """Read back output state and current after a shutdown; UNVERIFIED when they disagree."""
        on = self.output_enabled
        measured = self.current
        if on or abs(measured) > self.zero_tolerance:
            msg = (f"UNVERIFIED: {self.name} output off / 0 A (read back: output {'ON' if on else 'off'}, "
                   f"{measured:.4g} A); check the instrument")
            log.critical(msg)
            raise InstrumentError(msg, role=self.name, address=self.address, last_command=self.last_command)
        return f"{self.name}: verified output off, {measured:.3g} A"

    @property
    def zero_tolerance(self) -> float:
        """A: what reads as zero (read-back accuracy of the supply)."""
        return max(0.05 * self.limits.ramp_step, 20 * self.resolution)

    def safe_shutdown(self, emergency: bool = False) -> list[str]:
        """Ramp to zero at the configured rate, turn the output off, and read both back.

        If the link fails, try once more on a fresh connection (bounded by the role's
        time-out): the emergency ramp-down from the last known level, output off, read
        back.  If even that fails, raise the DANGER error: the state is unknown.
        """
        done = []
        try:
            if abs(self._setpoint) > 0:
                self.ramp_to(0.0, emergency=emergency)
                done.append(f"{self.name}: ramped to 0 A at {self.max_rate(emergency):g} A/s")
            self.output_off()
            done.append(f"{self.name}: output off")
            done.append(self.verify_off())
            return done
        except InstrumentError as first:
            if str(first).startswith("UNVERIFIED"):
                raise
            log.error("%s: ramp-down failed (%s); trying again on a fresh connection", self.name, first)
            level, output = self._setpoint, self.last_output
        try:
            self._reconnect()
            if abs(self._setpoint) > 0:
                self.ramp_to(0.0, emergency=True)
            self.output_off()
            done.append(f"{self.name}: link lost; on a fresh connection ramped to 0 A at "
                        f"{self.max_rate(True):g} A/s and turned the output off")
            done.append(self.verify_off())
            return done
        except Exception as second:
            state = {True: "ON", False: "off", None: "unknown"}[output]
            read = f"last read {self.last_current:.4g} A, " if self.last_current is not None else ""
            msg = (f"DANGER: current source state unknown ({read}programmed {level:.4g} A, output {state}): "
                   f"switch it off at the instrument ({self.name} at {self.address}: {second})")
            log.critical(msg)
            raise InstrumentError(msg, role=self.name, address=self.address,
                                  last_command=self.last_command) from second

    def _reconnect(self) -> None:
        """A fresh connection to the supply (the station installs ``reopen``)."""
        if self.reopen is None:
            raise InstrumentError(f"{self.name}: no way to reconnect", role=self.name, address=self.address)
        old = self.instrument
        try:
            old.adapter.close()
        except Exception:
            pass
        self.instrument = self.reopen()

    def state(self) -> dict:
        return {"current_A": self.current, "output": self.output_enabled, "setpoint_A": self._setpoint}


class GenesysSource(CurrentSource):
    """TDK-Lambda Genesys: unipolar, constant-current mode under a voltage ceiling."""

    bipolar = False
    resolution = 0.01

    def __init__(self, config, instrument, clock, name=None):
        super().__init__(config, instrument, clock, name)
        # pymeasure only logs a setting's reply other than "OK" (an Enn/Cnn error code or a
        # garbled acknowledgement) and carries on; a current source must not: make it an error.
        check = getattr(instrument, "check_set_errors", None)
        if check is not None:
            def check_set_errors():
                errors = check()
                if errors:
                    raise ValueError("; ".join(str(e) for e in errors))
                return errors

            instrument.check_set_errors = check_set_errors

    def setup(self) -> None:
        """Run start, in this order: take over (a live output is ramped down), auto-restart
        off (the output must not come back by itself after a mains drop), over-voltage
        protection just above the voltage limit, the voltage limit, 0 A; each read back;
        then no fault bit and an empty error queue."""
        self.take_over()
        inst = self.instrument
        volts = min(self.limits.compliance_voltage, 8.0)
        ovp = round(min(max(volts * 1.1, volts + 0.5), 10.0), 2)  # OVP must sit above PV (>= 105 %)
        with self.io("setup (auto-restart off)"):
            if hasattr(inst, "auto_restart"):
                inst.auto_restart = False
        with self.io(f"setup (OVP {ovp:g} V, PC 0, PV {volts:g})"):
            if hasattr(inst, "over_voltage"):
                inst.over_voltage = ovp
            inst.current_setpoint = 0.0
            inst.voltage_setpoint = volts
        self._setpoint = 0.0
        self._verify("PV?", lambda: float(inst.voltage_setpoint), volts, 0.02, "voltage limit", "V")
        self._verify("PC?", lambda: float(inst.current_setpoint), 0.0, 0.02, "current setpoint", "A")
        if hasattr(inst, "over_voltage"):
            self._verify("OVP?", lambda: float(inst.over_voltage), ovp, 0.05, "over-voltage protection", "V")
        if hasattr(inst, "auto_restart"):
            if self.query("AST?", lambda: strict_bool(inst.auto_restart)):
                raise self._unverified("auto-restart off (reads ON)", "AST?")
        problem = self.health()
        if problem:
            raise self._unverified(f"no fault at run start ({problem})", "FLT?")
        self._check_errors("configuration")
        log.info("%s: configured: auto-restart off, OVP %g V, voltage limit %g V, 0 A (read back)", self.name, ovp, volts)

    def _verify(self, what: str, read, want: float, tolerance: float, name: str, unit: str) -> None:
        got = self.query(what, read)
        if abs(got - want) > tolerance:
            raise self._unverified(f"{name} {want:g} {unit} (read back {got:g} {unit})", what)

    def _unverified(self, what: str, command: str) -> InstrumentError:
        msg = f"UNVERIFIED: {self.name} {what}; check the instrument"
        log.critical(msg)
        return InstrumentError(msg, role=self.name, address=self.address, last_command=command)

    def health(self) -> str | None:
        inst = self.instrument
        if not hasattr(inst, "fault_register"):
            return None
        from drivers.genesys import FAULT_BITS, SHUTDOWN_FAULTS, bit_names

        bits = self.query("FLT?", lambda: int(inst.fault_register))
        bad = bits & SHUTDOWN_FAULTS
        return f"fault register {', '.join(bit_names(bad, FAULT_BITS))}" if bad else None

    def identity(self) -> str:
        with self.io("IDN?"):
            return ",".join(str(x) for x in self.instrument.id)

    def _write_current(self, amps):
        self.instrument.current_setpoint = round(amps, 2)

    def _read_current(self):
        return self.instrument.current

    def _read_setpoint(self):
        return self.instrument.current_setpoint

    def _write_output(self, on):
        self.instrument.output_enabled = on

    def _read_output(self):
        return self.instrument.output_enabled

    def state(self) -> dict:
        st = super().state()
        with self.io("MODE?"):
            st["mode"] = str(self.instrument.mode)
        return st


class Keithley6221Source(CurrentSource):
    """Keithley 6221: bipolar, +-105 mA, with delta mode on a 2182A."""

    bipolar = True
    resolution = 1e-9

    def setup(self) -> None:
        self.take_over()
        with self.io("setup (compliance, 0 A)"):
            self.instrument.source_compliance = self.limits.compliance_voltage
            self.instrument.source_current = 0.0
        self._setpoint = 0.0
        got = self.query("SOUR:CURR:COMP?", lambda: float(self.instrument.source_compliance))
        if abs(got - self.limits.compliance_voltage) > 0.01 * self.limits.compliance_voltage + 1e-3:
            msg = (f"UNVERIFIED: {self.name} compliance {self.limits.compliance_voltage:g} V "
                   f"(read back {got:g} V); check the instrument")
            log.critical(msg)
            raise InstrumentError(msg, role=self.name, address=self.address, last_command="SOUR:CURR:COMP?")
        self._check_errors("configuration")

    def health(self) -> str | None:
        """The 6221 reports its programmed level, not what flows: compliance is the
        measurement condition register's bit B3."""
        if not hasattr(self.instrument, "in_compliance"):
            return None
        if self.query("STAT:MEAS:COND?", lambda: bool(self.instrument.in_compliance)):
            return (f"in voltage compliance at {self._setpoint:g} A (limit {self.limits.compliance_voltage:g} V): "
                    "less current flows than programmed (open circuit or high resistance)")
        return None

    def _read_setpoint(self):
        return self.instrument.source_current

    def _write_current(self, amps):
        self.instrument.source_current = amps

    def _read_current(self):
        return self.instrument.source_current  # the 6221 reports its programmed level

    def _write_output(self, on):
        if on:
            self.instrument.enable_source()
        else:
            self.instrument.disable_source()

    def _read_output(self):
        return self.instrument.source_enabled

    def delta_voltage(self, amps: float, count: int = 10) -> float:
        """Mean delta-mode voltage (V) at +-amps, thermal EMFs cancelled by the 6221/2182A."""
        self.check(amps)
        self.check(-amps)
        inst = self.instrument
        with self.io(f"delta mode at {amps:g} A"):
            inst.delta_high_source = abs(amps)
            inst.delta_low_source = -abs(amps)
            inst.delta_cycles = count
            inst.delta_measurement_sets = 1
            inst.delta_buffer_points = count
            inst.delta_arm()
            inst.delta_start()
        try:
            # readings accumulate until the test is done (6220/6221 manual, delta): wait for all
            # of them, on the station clock, bounded by the time the test can take
            deadline = self.clock.now() + 10.0 + 2.0 * count
            while self.query(":TRAC:POIN:ACT?", lambda: int(inst.delta_points_stored)) < count:
                if self.clock.now() > deadline:
                    raise InstrumentError(f"{self.name} at {self.address}: delta mode gave fewer than {count} "
                                          "readings in time", role=self.name, address=self.address,
                                          last_command=":TRAC:POIN:ACT?")
                self.clock.sleep(0.05)
            with self.io(":TRAC:DATA?"):
                values = inst.values(":TRAC:DATA?")
        finally:
            with self.io(":SOUR:SWE:ABOR"):
                inst.write(":SOUR:SWE:ABOR")  # ends the test and returns the 2182A to local
        readings = values[0::2]  # FORM:ELEM default: reading, timestamp
        return float(sum(readings) / len(readings))
