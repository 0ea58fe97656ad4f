"""Keithley 2182A nanovoltmeter on the sample's voltage taps (2182A user's manual).

Channel 1 is wired to the taps.  Readings follow the world's tap voltage plus
thermal EMF and noise.  A reading beyond 120 % of a fixed range returns the
overflow value +9.9E37, as the real instrument does.

As the manual describes it:
- commands end in LF (GPIB with EOI / the socket here); replies end in LF;
- power-up and ``*RST``: channel 1, DC volts, auto range, NPLC 5, digital
  filter on (moving average of 10), analog filter off, autozero on;
- rate (p. 3-8): one conversion takes NPLC / line frequency (twice that with
  autozero); the digital filter averages ``count`` conversions, and after a
  trigger (``:READ?``) its stack refills, so a reading takes ``count``
  conversions; the analog filter adds settling time to each conversion;
- NPLC runs from 0.01 to the line frequency (50 at 50 Hz, 60 at 60 Hz);
  beyond is -222 "Data out of range";
- the error queue (``SYST:ERR?``, p. 15-19) is ten deep, -350 on overflow;
- in delta mode the 6221 drives it over the RS-232 link (remote); the 6221's
  ``SOUR:SWE:ABOR`` returns it to local.
"""
from __future__ import annotations

from sim_instruments.emulator import Emulator, SCPIError, TraceBuffer, command

OVERFLOW = 9.9e37
RANGES = {1: (0.01, 0.1, 1.0, 10.0, 100.0), 2: (0.1, 1.0, 10.0)}
LINE_FREQUENCY = 60.0  # Hz, the virtual lab's mains (VirtualLab(mains_frequency=...))
ANALOG_FILTER_SETTLE = 0.015  # s added to each conversion with the analog filter on


class Keithley2182A(TraceBuffer, Emulator):
    model = "Keithley2182A"
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2182A,1234567,C02  /A02"
    termination = "\n"

    def __init__(self, world, line_frequency: float = LINE_FREQUENCY):
        super().__init__(world)
        self.line_frequency = float(line_frequency)
        self.local = True  # front panel in control until addressed
        self.delta_remote = False  # driven by a 6221 over the RS-232 link
        self.reset()

    def handle(self, message):
        self.local = False  # any bus message puts the instrument in remote
        return super().handle(message)

    def reset(self) -> None:
        self.channel = 1
        self.dfilter = True  # digital filter: on, moving average of 10 (power-up/*RST)
        self.dfilter_count = 10
        self.dfilter_type = "MOV"
        self.dfilter_window = 0.01  # % of range
        self.afilter = False
        self.function = "VOLT"
        self.nplc = 5.0
        self.range = {1: 0.01, 2: 0.1}
        self.auto = {1: True, 2: True}
        self.rel = {1: 0.0, 2: 0.0}
        self.rel_on = {1: False, 2: False}
        self.azero = True
        self.trigger_count = 1
        self.trigger_delay = 0.0
        self.buffer: list[float] = []
        self.buffer_points = 1024
        self.last = 0.0

    # ------------------------------------------------------------ physics
    def measure(self) -> float:
        """One reading of the active channel (V), or the overflow value."""
        ch = self.channel
        conversion = self.nplc / self.line_frequency * (2 if self.azero else 1)
        if self.afilter:
            conversion += ANALOG_FILTER_SETTLE
        n = self.dfilter_count if self.dfilter else 1
        self.busy += n * conversion + self.trigger_delay
        if ch == 1:
            v = self.world.measured_voltage(self.nplc * n)
        else:
            v = float(self.world.rng.normal(0, 20e-9))  # nothing wired to channel 2
        if self.auto[ch]:
            rng = next((r for r in RANGES[ch] if abs(v) <= 1.2 * r), RANGES[ch][-1])
        else:
            rng = self.range[ch]
        v += float(self.world.rng.normal(0, rng * 1e-7))  # range-dependent noise floor
        if abs(v) > 1.2 * rng or self.faults.overload:
            self.last = OVERFLOW
            return OVERFLOW
        if self.rel_on[ch]:
            v -= self.rel[ch]
        self.last = v
        return v

    # ------------------------------------------------------------ commands
    @command(":READ?", ":MEASure[:VOLTage][:DC]?")
    def read(self, args):
        return f"{self.measure():+.9E}"

    @command(":FETCh?", ":SENSe:DATA[:LATest]?")
    def fetch(self, args):
        return f"{self.last:+.9E}"

    @command(":INITiate[:IMMediate]")
    def init(self, args):
        readings = [self.measure() for _ in range(max(1, self.trigger_count))]
        self.buffer = (self.buffer + readings)[-self.buffer_points:]

    @command(":ABORt")
    def abort(self, args):
        return None

    @command("[:SENSe]:FUNCtion")
    def func(self, args):
        f = args.strip().strip("'\"").upper()
        if f not in ("VOLT", "VOLT:DC", "TEMP"):
            raise SCPIError(-224, "Illegal parameter value")
        self.function = "TEMP" if f == "TEMP" else "VOLT"

    @command("[:SENSe]:FUNCtion?")
    def func_q(self, args):
        return '"VOLT:DC"' if self.function == "VOLT" else '"TEMP"'

    @command("[:SENSe]:CHANnel")
    def chan(self, args):
        ch = int(self.number(args))
        if ch not in (0, 1, 2):
            raise SCPIError(-222, "Data out of range")
        self.channel = ch or 1

    @command("[:SENSe]:CHANnel?")
    def chan_q(self, args):
        return str(self.channel)

    @command("[:SENSe]:VOLTage[:DC]:NPLCycles", "[:SENSe]:TEMPerature:NPLCycles")
    def nplc_set(self, args):
        n = self.number(args)
        if not 0.01 <= n <= self.line_frequency:  # 50 at 50 Hz, 60 at 60 Hz
            raise SCPIError(-222, "Data out of range")
        self.nplc = n

    @command("[:SENSe]:VOLTage[:DC]:NPLCycles?", "[:SENSe]:TEMPerature:NPLCycles?")
    def nplc_q(self, args):
        return f"{self.nplc:g}"

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:RANGe[:UPPer]")
    def range_set(self, args, ch):
        ch = int(ch or 1)
        v = abs(self.number(args))
        self.range[ch] = next((r for r in RANGES[ch] if v <= r), RANGES[ch][-1])
        self.auto[ch] = False

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:RANGe[:UPPer]?")
    def range_q(self, args, ch):
        return f"{self.range[int(ch or 1)]:g}"

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:RANGe:AUTO")
    def auto_set(self, args, ch):
        self.auto[int(ch or 1)] = self.boolean(args)

    @command("[:SENSe]:VOLTage[:DC]:RANGe:AUTO")
    def auto_active(self, args):
        self.auto[self.channel] = self.boolean(args)

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:RANGe:AUTO?")
    def auto_q(self, args, ch):
        return "1" if self.auto[int(ch or 1)] else "0"

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:REFerence")
    def ref_set(self, args, ch):
        self.rel[int(ch or 1)] = self.number(args)

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:REFerence?")
    def ref_q(self, args, ch):
        return f"{self.rel[int(ch or 1)]:+.9E}"

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:REFerence:STATe")
    def ref_state(self, args, ch):
        self.rel_on[int(ch or 1)] = self.boolean(args)

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:REFerence:STATe?")
    def ref_state_q(self, args, ch):
        return "1" if self.rel_on[int(ch or 1)] else "0"

    @command("[:SENSe]:VOLTage[:DC]:CHANnel<n>:REFerence:ACQuire")
    def ref_acq(self, args, ch):
        ch = int(ch or 1)
        saved, self.channel = self.channel, ch
        self.rel_on[ch] = False
        self.rel[ch] = self.measure()
        self.channel = saved

    @command(":SYSTem:AZERo[:STATe]")
    def azero_set(self, args):
        self.azero = self.boolean(args)

    @command(":SYSTem:AZERo[:STATe]?")
    def azero_q(self, args):
        return "1" if self.azero else "0"

    @command(":SYSTem:LFRequency?")
    def lfr(self, args):
        return f"{self.line_frequency:g}"

    # filters (user's manual, "Filter", p. 3-8 onwards)
    @command("[:SENSe]:VOLTage[:DC]:DFILter[:STATe]")
    def dfil(self, args):
        self.dfilter = self.boolean(args)

    @command("[:SENSe]:VOLTage[:DC]:DFILter[:STATe]?")
    def dfil_q(self, args):
        return "1" if self.dfilter else "0"

    @command("[:SENSe]:VOLTage[:DC]:DFILter:COUNt")
    def dfil_count(self, args):
        n = int(self.number(args))
        if not 1 <= n <= 100:
            raise SCPIError(-222, "Data out of range")
        self.dfilter_count = n

    @command("[:SENSe]:VOLTage[:DC]:DFILter:COUNt?")
    def dfil_count_q(self, args):
        return str(self.dfilter_count)

    @command("[:SENSe]:VOLTage[:DC]:DFILter:TCONtrol")
    def dfil_tcon(self, args):
        t = args.strip().upper()[:3]
        if t not in ("MOV", "REP"):
            raise SCPIError(-224, "Illegal parameter value")
        self.dfilter_type = t

    @command("[:SENSe]:VOLTage[:DC]:DFILter:TCONtrol?")
    def dfil_tcon_q(self, args):
        return self.dfilter_type

    @command("[:SENSe]:VOLTage[:DC]:DFILter:WINDow")
    def dfil_window(self, args):
        self.dfilter_window = self.number(args)

    @command("[:SENSe]:VOLTage[:DC]:DFILter:WINDow?")
    def dfil_window_q(self, args):
        return f"{self.dfilter_window:g}"

    @command("[:SENSe]:VOLTage[:DC]:LPASs[:STATe]")
    def lpas(self, args):
        self.afilter = self.boolean(args)

    @command("[:SENSe]:VOLTage[:DC]:LPASs[:STATe]?")
    def lpas_q(self, args):
        return "1" if self.afilter else "0"

    @command("[:SENSe]:VOLTage[:DC]:RANGe[:UPPer]")
    def range_active(self, args):
        self.range_set(args, str(self.channel))

    @command("[:SENSe]:VOLTage[:DC]:RANGe[:UPPer]?")
    def range_active_q(self, args):
        return self.range_q(args, str(self.channel))

    @command(":SYSTem:LOCal")
    def syst_local(self, args):
        self.local = True

    @command(":DISPlay:ENABle")
    def disp(self, args):
        return None

    @command(":DISPlay:ENABle?")
    def disp_q(self, args):
        return "1"

    @command(":TRIGger:COUNt")
    def tcount(self, args):
        self.trigger_count = int(self.number(args))

    @command(":TRIGger:COUNt?")
    def tcount_q(self, args):
        return str(self.trigger_count)

    @command(":TRIGger:DELay")
    def tdelay(self, args):
        self.trigger_delay = self.number(args)

    @command(":TRIGger:DELay?")
    def tdelay_q(self, args):
        return f"{self.trigger_delay:g}"

    @command(":TRIGger:SOURce", ":ARM:SOURce", ":TRACe:FEED", ":TRACe:FEED:CONTrol",
             ":FORMat[:DATA]", ":CALCulate2:STATe", ":STATus:MEASurement:ENABle")
    def accepted(self, args):
        return None

    @command(":TRACe:DATA?")
    def tdata(self, args):
        return ",".join(f"{v:+.9E}" for v in self.buffer)

    @command(":CALCulate2:FORMat")
    def calc_form(self, args):
        self.calc = args.strip().upper()

    @command(":CALCulate2:IMMediate?")
    def calc_imm(self, args):
        import numpy as np

        data = np.array(self.buffer or [self.last])
        form = getattr(self, "calc", "MEAN")
        value = {"MEAN": data.mean(), "MAX": data.max(), "MIN": data.min(),
                 "SDEV": data.std(ddof=1) if len(data) > 1 else 0.0}.get(form[:4], data.mean())
        return f"{value:+.9E}"

    def snapshot(self) -> dict:
        return {"channel": self.channel, "nplc": self.nplc, "range": self.range, "auto_range": self.auto,
                "digital_filter": (self.dfilter, self.dfilter_count, self.dfilter_type),
                "analog_filter": self.afilter, "local": self.local}
