"""Keithley 6221 DC/AC current source, with delta mode driving a 2182A (6220/6221 manuals).

Delta mode alternates the output between the high and low levels and takes a
2182A reading at each; the 3-point formula (V1 - 2 V2 + V3) / 4 with
alternating sign cancels thermal EMFs and their linear drift.

As the manuals describe it:
- commands and replies end in LF; error queue ``SYST:ERR?`` ten deep;
- power-up and ``*RST``: output off, 0 A, compliance 10 V;
- compliance: when |I| x R_load exceeds the compliance voltage the source is
  in compliance and the current that flows is only V_compliance / R_load;
  ``:STAT:MEAS:COND?`` bit B3 (8) says so while it lasts (reference manual
  section 11, measurement condition register), and ``:SOUR:CURR?`` still
  returns the programmed level (there is no current measurement);
- delta mode (user's manual section 5): after ``:INIT`` the readings
  accumulate in the buffer one per 2182A conversion (plus the delta delay)
  until all are done; ``:TRAC:POIN:ACT?`` counts the ones stored so far and
  the operation condition register (``:STAT:OPER:COND?``) sets bit B10 (Idle,
  1024) once the test is finished; ``:SOUR:SWE:ABOR`` stops the test and
  returns the 2182A to local.
"""
from __future__ import annotations

from sim_instruments.emulator import Emulator, SCPIError, TraceBuffer, command

I_MAX = 0.105  # A


class Keithley6221(TraceBuffer, Emulator):
    model = "Keithley6221"
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 6221,4321765,D03  /700x"
    termination = "\n"

    def __init__(self, world, nanovoltmeter=None, name: str = "k6221"):
        super().__init__(world)
        self.nanovoltmeter = nanovoltmeter  # the 2182A on the RS-232/Trigger Link
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.level = 0.0
        self.output = False
        self.compliance = 10.0
        self.range = 0.1
        self.auto_range = True
        self.delay = 1e-3
        self.delta_high, self.delta_low = 1e-3, -1e-3
        self.delta_delay = 2e-3
        self.delta_count = 100
        self.sweep_count = 1
        self.delta_cab = False
        self.delta_csw = False
        self.armed = False
        self.unit = "V"
        self.buffer: list[tuple[float, float]] = []
        self.pending: list[tuple[float, float]] = []  # delta readings not yet taken (value, time)
        self.buffer_points = 100
        self._apply()

    def _apply(self, level: float | None = None) -> None:
        i = self.level if level is None else level
        if self.output:
            r = self.world.load_resistance()
            if abs(i) * r > self.compliance:  # in compliance: the voltage is clamped
                i = (self.compliance / r) * (1 if i >= 0 else -1)
        self.world.set_source_current(self.name, i if self.output else 0.0)

    def in_compliance(self) -> bool:
        return self.output and abs(self.level) * self.world.load_resistance() > self.compliance

    def _collect(self) -> None:
        """Move the delta readings whose time has come into the buffer."""
        if self.pending:
            now = self.world.now()
            while self.pending and self.pending[0][1] <= now + 1e-12:
                self.buffer.append(self.pending.pop(0))
            self.buffer = self.buffer[-self.buffer_points:]

    @property
    def running(self) -> bool:
        self._collect()
        return bool(self.pending)

    @command(":STATus:MEASurement:CONDition?")
    def meas_cond(self, args):
        return str(8 if self.in_compliance() else 0)

    @command(":STATus:MEASurement[:EVENt]?")
    def meas_event(self, args):
        return str(8 if self.in_compliance() else 0)

    @command(":STATus:OPERation:CONDition?")
    def oper_cond(self, args):
        return str(0 if self.running else 1024)

    @command(":TRACe:POINts:ACTual?")
    def tpoints_actual(self, args):
        self._collect()
        return str(len(self.buffer))

    # ------------------------------------------------------------- output
    @command(":OUTPut[:STATe]")
    def outp(self, args):
        self.output = self.boolean(args)
        if not self.output:
            self.armed = False
        self._apply()

    @command(":OUTPut[:STATe]?")
    def outp_q(self, args):
        return "1" if self.output else "0"

    @command("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def curr(self, args):
        value = self.number(args)
        if abs(value) > I_MAX:
            raise SCPIError(-222, "Data out of range")
        self.level = value
        self._apply()

    @command("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]?")
    def curr_q(self, args):
        return f"{self.level:+.6E}"

    @command("[:SOURce]:CURRent:COMPliance")
    def comp(self, args):
        value = self.number(args)
        if not 0.1 <= value <= 105:
            raise SCPIError(-222, "Data out of range")
        self.compliance = value

    @command("[:SOURce]:CURRent:COMPliance?")
    def comp_q(self, args):
        return f"{self.compliance:+.6E}"

    @command("[:SOURce]:CURRent:RANGe")
    def rang(self, args):
        self.range = abs(self.number(args))

    @command("[:SOURce]:CURRent:RANGe?")
    def rang_q(self, args):
        return f"{self.range:+.6E}"

    @command("[:SOURce]:CURRent:RANGe:AUTO")
    def rang_auto(self, args):
        self.auto_range = self.boolean(args)

    @command("[:SOURce]:CURRent:RANGe:AUTO?")
    def rang_auto_q(self, args):
        return "1" if self.auto_range else "0"

    @command("[:SOURce]:DELay")
    def sdel(self, args):
        self.delay = self.number(args)

    @command("[:SOURce]:DELay?")
    def sdel_q(self, args):
        return f"{self.delay:+.6E}"

    @command(":OUTPut:ISHield", ":OUTPut:LTEarth", ":SYSTem:BEEPer[:IMMediate]",
             ":DISPlay:ENABle", ":ARM:SOURce", ":TRIGger:SOURce", ":FORMat:ELEMents")
    def accepted(self, args):
        return None

    @command(":OUTPut:ISHield?")
    def ish_q(self, args):
        return "OLOW"

    @command(":OUTPut:LTEarth?", ":DISPlay:ENABle?")
    def flags_q(self, args):
        return "1"

    # --------------------------------------------------------------- delta
    @command("[:SOURce]:DELTa:HIGH")
    def dhigh(self, args):
        value = self.number(args)
        if abs(value) > I_MAX:
            raise SCPIError(-222, "Data out of range")
        self.delta_high = value
        self.delta_low = -value

    @command("[:SOURce]:DELTa:HIGH?")
    def dhigh_q(self, args):
        return f"{self.delta_high:+.6E}"

    @command("[:SOURce]:DELTa:LOW")
    def dlow(self, args):
        value = self.number(args)
        if abs(value) > I_MAX:
            raise SCPIError(-222, "Data out of range")
        self.delta_low = value

    @command("[:SOURce]:DELTa:LOW?")
    def dlow_q(self, args):
        return f"{self.delta_low:+.6E}"

    @command("[:SOURce]:DELTa:DELay")
    def ddel(self, args):
        self.delta_delay = 9999.999 if args.strip().upper() == "INF" else self.number(args)

    @command("[:SOURce]:DELTa:DELay?")
    def ddel_q(self, args):
        return f"{self.delta_delay:+.6E}"

    @command("[:SOURce]:DELTa:COUNt")
    def dcount(self, args):
        self.delta_count = 65536 if args.strip().upper() == "INF" else int(self.number(args))

    @command("[:SOURce]:DELTa:COUNt?")
    def dcount_q(self, args):
        return f"{self.delta_count:+.6E}"

    @command("[:SOURce]:SWEep:COUNt")
    def scount(self, args):
        self.sweep_count = 65536 if args.strip().upper() == "INF" else int(self.number(args))

    @command("[:SOURce]:SWEep:COUNt?")
    def scount_q(self, args):
        return f"{self.sweep_count:+.6E}"

    @command("[:SOURce]:DELTa:CABort")
    def dcab(self, args):
        self.delta_cab = self.boolean(args)

    @command("[:SOURce]:DELTa:CABort?")
    def dcab_q(self, args):
        return "1" if self.delta_cab else "0"

    @command("[:SOURce]:DELTa:CSWitch")
    def dcsw(self, args):
        self.delta_csw = self.boolean(args)

    @command("[:SOURce]:DELTa:CSWitch?")
    def dcsw_q(self, args):
        return "1" if self.delta_csw else "0"

    @command("[:SOURce]:DELTa:NVPResent?")
    def nvpr(self, args):
        return "1" if self.nanovoltmeter is not None else "0"

    @command(":UNIT[:VOLTage][:DC]")
    def unit_set(self, args):
        self.unit = args.strip().upper()

    @command(":UNIT[:VOLTage][:DC]?")
    def unit_q(self, args):
        return self.unit

    @command("[:SOURce]:DELTa:ARM")
    def darm(self, args):
        if self.nanovoltmeter is None:
            raise SCPIError(-221, "Settings conflict")  # no 2182A on the link
        self.armed = True

    @command("[:SOURce]:SWEep:ABORt")
    def dabort(self, args):
        self._collect()
        self.pending = []  # the test stops where it is
        self.armed = False
        self._apply()
        if self.nanovoltmeter is not None:  # the 2182A goes back to local
            self.nanovoltmeter.delta_remote = False
            self.nanovoltmeter.local = True

    @command(":INITiate[:IMMediate]")
    def init(self, args):
        if not self.armed:
            raise SCPIError(-221, "Settings conflict")
        nv = self.nanovoltmeter
        nv.delta_remote, nv.local = True, False
        n = max(1, min(self.delta_count * self.sweep_count, 65536))
        levels = [self.delta_high if k % 2 == 0 else self.delta_low for k in range(n + 2)]
        volts, times = [], []
        saved_output = self.output
        self.output = True
        t = self.world.now()
        for level in levels:
            self._apply(level)
            nv.busy = 0.0
            volts.append(nv.measure())
            t += self.delta_delay + nv.busy  # each point: delay, then one 2182A conversion
            times.append(t)
        nv.busy = 0.0
        self.output = saved_output
        self._apply()
        self.buffer = []
        self.pending = []
        for k in range(n):
            sign = 1 if k % 2 == 0 else -1
            v = sign * (volts[k] - 2 * volts[k + 1] + volts[k + 2]) / 4
            if self.unit.startswith("OHM"):
                v /= (self.delta_high - self.delta_low) / 2
            self.pending.append((v, times[k + 2]))  # a delta reading exists once its third point is taken
        self.armed = False

    @command(":SENSe:DATA[:LATest]?")
    def sens_data(self, args):
        self._collect()
        v, t = self.buffer[-1] if self.buffer else (0.0, 0.0)
        return f"{v:+.9E},{t:+.3E}"

    @command(":TRACe:DATA?")
    def trace_data(self, args):
        self._collect()  # only the readings taken so far (a partial buffer while the test runs)
        return ",".join(f"{v:+.9E},{t:+.3E}" for v, t in self.buffer)

    def snapshot(self) -> dict:
        return {"level": self.level, "output": self.output, "compliance": self.compliance,
                "in_compliance": self.in_compliance(), "delta_running": bool(self.pending),
                "delta": (self.delta_high, self.delta_low, self.delta_count)}
