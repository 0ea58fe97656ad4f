"""Lake Shore 425 gaussmeter with a Hall probe (Model 425 user's manual, chapter 6).

As the manual describes it: USB serial port (57600 baud, 7 data bits, odd
parity), commands and replies end in CR LF (the LF ends a message); no error
queue (``*ESR?`` bits); ``TYPE?`` (p. 57) names the probe fitted, and the
meaning of ``RANGE 1``..``4`` depends on it (high sensitivity 35 G - 35 kG,
high stability 350 G - 350 kG, ultra-high sensitivity 0.35 G - 350 G);
``RDGMODE <mode>,<filter>,<band>`` selects DC (1) or RMS (2); ``ZPROBE``
takes a few seconds, during which the reading is not valid, and ``*OPC?``
answers once it is done.
"""
from __future__ import annotations

import math

from sim_instruments.emulator import Emulator, LakeShoreStatus, SCPIError, command

# full scale (T) of RANGE 1..4 for each probe type (TYPE? 40/41/42; 5x = same with a programmable cable)
RANGE_TABLES = {
    40: {1: 3.5e-3, 2: 35e-3, 3: 0.35, 4: 3.5},  # high sensitivity: 35 G, 350 G, 3.5 kG, 35 kG
    41: {1: 35e-3, 2: 0.35, 3: 3.5, 4: 35.0},  # high stability: 350 G ... 350 kG
    42: {1: 35e-6, 2: 350e-6, 3: 3.5e-3, 4: 35e-3},  # ultra-high sensitivity: 0.35 G ... 350 G
}
RANGES_T = RANGE_TABLES[40]
ZERO_TIME = 3.0  # s the ZPROBE sequence takes
UNIT_SCALE = {1: 1e4, 2: 1.0, 3: 1e4, 4: 1 / (4e-7 * math.pi)}  # from tesla to G, T, Oe, A/m


class LakeShore425(LakeShoreStatus, Emulator):
    model = "LakeShore425"
    idn = "LSCI,MODEL425,4250022,1.0"
    termination = "\r\n"
    terminators = "\n"  # CR LF: the LF ends the message, the CR is stripped
    scpi = False

    def __init__(self, world, probe_type: int = 40):
        super().__init__(world)
        self.probe_type = probe_type
        self.zero_done_at = None  # virtual time a running ZPROBE finishes
        self.reset()

    @property
    def ranges(self) -> dict[int, float]:
        return RANGE_TABLES[self.probe_type % 10 + 40]

    def _zeroing(self) -> bool:
        if self.zero_done_at is None:
            return False
        if self.world.now() >= self.zero_done_at:
            w = self.world
            w.probe_zero = sum(w.probe_field() for _ in range(8)) / 8
            self.zero_done_at = None
            return False
        return True

    def reset(self) -> None:
        self.unit = 1
        self.range = 2
        self.auto = False
        self.mode = (1, 0, 1)
        self.overload = False

    def reading(self) -> float:
        """Field in tesla as displayed: probe field minus the ZPROBE zero, range-limited."""
        w = self.world
        if self._zeroing():
            return 0.0
        b = w.probe_field() - w.probe_zero
        if self.mode[0] == 2:  # RMS of the AC part: a static field reads as noise only
            b = abs(float(w.rng.normal(0, w.imperfections.field_noise)))
        ranges = self.ranges
        full = ranges[self.range]
        # the quantisation/noise floor grows with the range (5 3/4 digits)
        b += float(w.rng.normal(0, full * 2e-5))
        if self.auto:
            for k in sorted(ranges):
                if abs(b) < 0.95 * ranges[k]:
                    self.range = k
                    break
            full = ranges[self.range]
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
        if r not in self.ranges:
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
        mode = tuple(int(x) for x in args.split(","))
        if len(mode) != 3 or mode[0] not in (1, 2) or mode[1] not in (0, 1) or mode[2] not in (1, 2):
            raise SCPIError(-224, "Illegal parameter value")
        self.mode = mode

    @command("ZPROBE")
    def zprobe(self, args):
        """Zero the probe: after ZERO_TIME s, whatever it senses becomes the zero (the user
        must do this with no sample current, at the operating temperature)."""
        self.zero_done_at = self.world.now() + ZERO_TIME

    @command("*OPC?")
    def _opc(self, args):
        if self.zero_done_at is not None:  # answers when the pending operation is complete
            self.busy += max(0.0, self.zero_done_at - self.world.now())  # the reply waits for it
        return "1"

    @command("TYPE?")
    def type_q(self, args):
        return str(self.probe_type)

    def snapshot(self) -> dict:
        return {"unit": self.unit, "range": self.range, "auto": self.auto, "mode": self.mode,
                "probe_type": self.probe_type, "zeroing": self.zero_done_at is not None}
