"""temperature role: Lake Shore 336 loop 1 setpoint/ramp, readings, wait until stable."""
from __future__ import annotations

import math
from typing import Callable

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role, log, strict_bool
from labctl.roles.verify import expect, no_errors, unverified

HEATER_RANGES = ("off", "low", "medium", "high")
MAX_CURRENT_PRESETS = {0.707: 1, 1.0: 2, 1.141: 3, 2.0: 4}  # HTRSET <max current> codes (336 manual)


class TemperatureController(Role):
    role = "temperature"
    last_temperature = None

    def __init__(self, config, instrument, clock, name=None):
        super().__init__(config, instrument, clock, name)
        self.limits = config.limits
        self.loop = int(config.loop)
        self.control_input = config.control_input
        self.sample_input = config.sample_input

    @property
    def _out(self):
        return getattr(self.instrument, f"output_{self.loop}")

    def _in(self, sensor: str):
        return getattr(self.instrument, f"input_{sensor}")

    def heater_setup_tuple(self) -> tuple:
        """HTRSET parameters from the station file: (resistance, max current, user current, display)."""
        cfg = self.config
        res = 1 if int(cfg.heater_resistance) == 25 else 2
        code = next((c for a, c in MAX_CURRENT_PRESETS.items() if abs(a - cfg.max_heater_current) < 1e-3), 0)
        return res, code, (0.0 if code else float(cfg.max_heater_current)), 1

    def setup(self) -> None:
        """Run start, in the order the 336 manual implies: no ramp, setpoint = the present
        temperature of the control sensor (so enabling the heater does not drive it toward
        a stale setpoint), heater resistance and maximum current (``HTRSET``) from the
        station file, closed-loop output mode, then the heater range; each read back, then
        ``*ESR?``."""
        self.configure_loop()
        self.set_heater_range(self.config.heater_range)
        no_errors(self, self.query("*ESR?", self.instrument.read_errors), "after setup")

    def configure_loop(self) -> float:
        """Everything of ``setup`` but the heater range; returns the setpoint (K)."""
        out = self._out
        loop = self.loop
        inp = "ABCD".index(self.control_input) + 1
        now = self.read(self.control_input)
        lim = self.limits
        target = min(max(now, lim.min_temperature), lim.max_temperature)
        if target != now:
            log.warning("%s: present temperature %.4g K is outside the window; setpoint %.4g K",
                        self.name, now, target)
        with self.io(f"RAMP {loop},0 / SETP {loop},{target:.4f}"):
            out.ramp = (False, 0)
            out.setpoint = round(target, 4)
        expect(self, "setpoint = present temperature", self.query("SETP?", lambda: float(out.setpoint)),
               round(target, 4), tol=1e-3)
        htr = self.heater_setup_tuple()
        with self.io(f"HTRSET {loop},{htr[0]},{htr[1]},{htr[2]:g},{htr[3]}"):
            out.heater_setup = htr
        got = self.query("HTRSET?", lambda: out.heater_setup)
        expect(self, "heater setup (HTRSET)", (got[0], got[1], round(float(got[2]), 3)),
               (htr[0], htr[1], round(htr[2], 3)))
        with self.io(f"OUTMODE {loop},1,{inp},0"):
            out.output_mode = (1, inp, 0)
        expect(self, "output mode (OUTMODE)", self.query("OUTMODE?", lambda: tuple(out.output_mode)), (1, inp, 0))
        return target

    def read_heater_range(self) -> str:
        return self.query("RANGE?", lambda: str(self._out.range))

    def set_heater_range(self, name: str) -> None:
        """Set the heater range and confirm it with ``RANGE?`` (UNVERIFIED otherwise)."""
        with self.io(f"RANGE {self.loop},{HEATER_RANGES.index(name)}"):
            self._out.range = name
        expect(self, f"heater range {name}", self.read_heater_range(), name)

    def check(self, kelvin: float, rate: float | None = None) -> None:
        lim = self.limits
        if not math.isfinite(kelvin) or not lim.min_temperature <= kelvin <= lim.max_temperature:
            raise LimitError(f"{self.name}: setpoint {kelvin:g} K is outside the allowed window "
                             f"[{lim.min_temperature:g}, {lim.max_temperature:g}] K (temperature.limits)")
        if rate is not None and not 0 < rate <= lim.max_ramp_rate:
            raise LimitError(f"{self.name}: ramp {rate:g} K/min exceeds max_ramp_rate = "
                             f"{lim.max_ramp_rate:g} K/min (temperature.limits)")

    def read(self, sensor: str | None = None) -> float:
        """Temperature (K) of a sensor (default: the sample sensor); a sensor fault raises."""
        sensor = sensor or self.sample_input
        t = self.query(f"KRDG? {sensor}", lambda: float(self._in(sensor).kelvin))
        if t <= 0 or not math.isfinite(t):
            status = self.query(f"RDGST? {sensor}", lambda: int(self._in(sensor).reading_status))
            raise InstrumentError(f"{self.name} at {self.address}: sensor {sensor} fault "
                                  f"(KRDG? gave {t:g} K, RDGST? = {status})",
                                  role=self.name, address=self.address, last_command=f"KRDG? {sensor}")
        if sensor == self.sample_input:
            self.last_temperature = t
        return t

    @property
    def temperature(self) -> float:
        return self.read()

    @property
    def setpoint(self) -> float:
        return self.query("SETP?", lambda: float(self._out.setpoint))

    def set_setpoint(self, kelvin: float, ramp_rate: float | None = None) -> None:
        """Program the loop setpoint, ramping at ``ramp_rate`` K/min if given."""
        self.check(kelvin, ramp_rate)
        with self.io(f"RAMP/SETP {kelvin:g} K"):
            if ramp_rate:
                self._out.ramp = (True, ramp_rate)
            else:
                self._out.ramp = (False, 0)
            self._out.setpoint = kelvin

    def ramping(self) -> bool:
        return self.query("RAMPST?", lambda: strict_bool(self._out.ramp_active))

    def heater_off(self) -> None:
        """Heater off (range 0), confirmed by ``RANGE?``."""
        self.set_heater_range("off")

    def errors(self) -> list[str]:
        return self.query("*ESR?", self.instrument.read_errors)

    def wait_stable(self, target: float | None = None, tolerance: float = 0.05, dwell: float = 60.0,
                    timeout: float = 3600.0, interval: float = 2.0,
                    should_stop: Callable[[], bool] | None = None,
                    on_reading: Callable[[float], None] | None = None) -> float:
        """Block until the sample reads within ``tolerance`` K of ``target`` for ``dwell`` s.

        Time is the station clock's.  Returns the last reading; raises
        InstrumentError after ``timeout`` s.
        """
        target = self.setpoint if target is None else target
        start = self.clock.now()
        stable_since = None
        while True:
            t = self.read()
            if on_reading:
                on_reading(t)
            now = self.clock.now()
            if abs(t - target) <= tolerance:
                stable_since = now if stable_since is None else stable_since
                if now - stable_since >= dwell:
                    return t
            else:
                stable_since = None
            if should_stop is not None and should_stop():
                return t
            if now - start > timeout:
                raise InstrumentError(f"{self.name}: sample did not settle at {target:g} K +- {tolerance:g} K "
                                      f"within {timeout:g} s (last {t:.4f} K)", role=self.name,
                                      address=self.address, last_command="KRDG?")
            self.clock.sleep(interval)

    def state(self) -> dict:
        st = {f"T_{self.sample_input}_K": self.read(self.sample_input)}
        with self.io("SETP?/HTR?/RANGE?"):
            st.update(setpoint_K=float(self._out.setpoint), heater_percent=float(self._out.output),
                      heater_range=str(self._out.range))
        return st
