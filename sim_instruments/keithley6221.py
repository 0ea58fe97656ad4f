"""Keithley 6221 DC/AC current source, with delta mode driving a 2182A (6221 manual, sections 5 and 14).

Delta mode alternates the output between the high and low levels and takes a
2182A reading at each; the 3-point formula (V1 - 2 V2 + V3) / 4 with
alternating sign cancels thermal EMFs and their linear drift.
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
        self.buffer_points = 100
        self._apply()

    def _apply(self, level: float | None = None) -> None:
        i = self.level if level is None else level
        self.world.set_source_current(self.name, i if self.output else 0.0)

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
        self.armed = False
        self._apply()

    @command(":INITiate[:IMMediate]")
    def init(self, args):
        if not self.armed:
            raise SCPIError(-221, "Settings conflict")
        nv = self.nanovoltmeter
        n = max(1, min(self.delta_count * self.sweep_count, 65536))
        levels = [self.delta_high if k % 2 == 0 else self.delta_low for k in range(n + 2)]
        volts = []
        saved_output = self.output
        self.output = True
        for level in levels:
            self._apply(level)
            self.busy += self.delta_delay
            nv.busy = 0.0
            volts.append(nv.measure())
            self.busy += nv.busy
        self.output = saved_output
        self._apply()
        t0 = self.world.now()
        self.buffer = []
        for k in range(n):
            sign = 1 if k % 2 == 0 else -1
            v = sign * (volts[k] - 2 * volts[k + 1] + volts[k + 2]) / 4
            if self.unit.startswith("OHM"):
                v /= (self.delta_high - self.delta_low) / 2
            self.buffer.append((v, t0 + k * self.delta_delay))
        self.buffer = self.buffer[-self.buffer_points:]
        self.armed = False

    @command(":SENSe:DATA[:LATest]?")
    def sens_data(self, args):
        v, t = self.buffer[-1] if self.buffer else (0.0, 0.0)
        return f"{v:+.9E},{t:+.3E}"

    @command(":TRACe:DATA?")
    def trace_data(self, args):
        return ",".join(f"{v:+.9E},{t:+.3E}" for v, t in self.buffer)

    def snapshot(self) -> dict:
        return {"level": self.level, "output": self.output, "compliance": self.compliance,
                "delta": (self.delta_high, self.delta_low, self.delta_count)}
