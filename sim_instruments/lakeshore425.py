"""Lake Shore 425 gaussmeter with a Hall probe (LS425 manual, chapter 6)."""
from __future__ import annotations

import math

from sim_instruments.emulator import Emulator, SCPIError, command

RANGES_T = {1: 3.5e-3, 2: 35e-3, 3: 0.35, 4: 3.5}  # 35 G, 350 G, 3.5 kG, 35 kG
UNIT_SCALE = {1: 1e4, 2: 1.0, 3: 1e4, 4: 1 / (4e-7 * math.pi)}  # from tesla to G, T, Oe, A/m


class LakeShore425(Emulator):
    model = "LakeShore425"
    idn = "LSCI,MODEL425,4250022,1.0"
    termination = "\r\n"
    scpi = False

    def __init__(self, world):
        super().__init__(world)
        self.reset()

    def reset(self) -> None:
        self.unit = 1
        self.range = 2
        self.auto = False
        self.mode = (1, 0, 1)
        self.overload = False

    def reading(self) -> float:
        """Field in tesla as displayed: probe field minus the ZPROBE zero, range-limited."""
        w = self.world
        b = w.probe_field() - w.probe_zero
        full = RANGES_T[self.range]
        # the quantisation/noise floor grows with the range (5 3/4 digits)
        b += float(w.rng.normal(0, full * 2e-5))
        if self.auto:
            for k in sorted(RANGES_T):
                if abs(b) < 0.95 * RANGES_T[k]:
                    self.range = k
                    break
            full = RANGES_T[self.range]
        self.overload = abs(b) > full or self.faults.overload
        if self.overload:
            return math.copysign(full, b if b else 1.0)
        return b

    @command("RDGFIELD?")
    def rdgfield(self, args):
        b = self.reading() * UNIT_SCALE[self.unit]
        return f"{b:+.4E}"

    @command("RDGST?")
    def rdgst(self, args):
        # bit 1: field over range (front panel shows OL)
        return "1" if self.overload else "0"

    @command("UNIT?")
    def unit_q(self, args):
        return str(self.unit)

    @command("UNIT")
    def unit_set(self, args):
        u = int(self.number(args))
        if u not in UNIT_SCALE:
            raise SCPIError(-222, "Data out of range")
        self.unit = u

    @command("RANGE?")
    def range_q(self, args):
        return str(self.range)

    @command("RANGE")
    def range_set(self, args):
        r = int(self.number(args))
        if r not in RANGES_T:
            raise SCPIError(-222, "Data out of range")
        self.range, self.auto = r, False

    @command("AUTO")
    def auto_set(self, args):
        self.auto = True if not args else bool(int(self.number(args)))

    @command("AUTO?")
    def auto_q(self, args):
        return "1" if self.auto else "0"

    @command("RDGMODE?")
    def mode_q(self, args):
        return ",".join(str(x) for x in self.mode)

    @command("RDGMODE")
    def mode_set(self, args):
        self.mode = tuple(int(x) for x in args.split(","))

    @command("ZPROBE")
    def zprobe(self, args):
        """Zero the probe: whatever it senses now becomes the zero (the user must
        do this with no sample current, at the operating temperature)."""
        w = self.world
        w.probe_zero = sum(w.probe_field() for _ in range(8)) / 8

    @command("TYPE?")
    def type_q(self, args):
        return "40"

    def snapshot(self) -> dict:
        return {"unit": self.unit, "range": self.range, "auto": self.auto, "mode": self.mode}
