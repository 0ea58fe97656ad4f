"""Lake Shore 336 temperature controller (Model 336 user's manual, chapter 6).

Loop 1 drives the world's cryostat heater with the world's PID model; input A
is the control sensor on the sample stage, input B the sensor on the sample.

As the manual describes it: commands end in CR LF (the LF ends a message, on
the Ethernet socket, port 7777, as on the serial port); replies end in CR LF;
no error queue, but ``*ESR?`` bits for commands it could not parse or use;
at power-up the heater outputs are off (range 0) unless OUTMODE's power-up
enable was set, and a heater range of 0 is off.
"""
from __future__ import annotations

import math

from sim_instruments.emulator import Emulator, LakeShoreStatus, SCPIError, command
from sim_instruments.world import HEATER_RANGES_W


class LakeShore336(LakeShoreStatus, Emulator):
    model = "LakeShore336"
    idn = "LSCI,MODEL336,LSA2B4C/#######,2.9"
    termination = "\r\n"
    terminators = "\n"  # CR LF: the LF ends the message, the CR is stripped
    scpi = False

    def __init__(self, world):
        super().__init__(world)
        self.htrset = {1: (1, 2, 0.0, 2), 2: (1, 2, 0.0, 2)}
        self.out_input = {1: 1, 2: 2}
        self.powerup = {1: 0, 2: 0}
        # power-up: the heater is off (range 0) whatever it was doing before
        c = world.controller
        with world.lock:
            world.advance()
            c.heater_range = 0
            c.output = 0.0

    @staticmethod
    def _args(args: str) -> list[str]:
        return [a.strip() for a in args.split(",") if a.strip()]

    def _loop(self, value: str) -> int:
        loop = int(value)
        if loop not in (1, 2, 3, 4):
            raise SCPIError(-222, "Data out of range")
        return loop

    def _kelvin(self, sensor: str) -> str:
        sensor = (sensor or "A").upper()
        if sensor not in "ABCD" or len(sensor) != 1:
            raise SCPIError(-222, "Data out of range")
        if sensor in "CD":
            return "+0.0000"
        t = self.world.measured_temperature(sensor)
        if self.faults.sensor or math.isnan(t):
            return "+0.0000"  # an open sensor reads zero; RDGST? says why
        return f"{t:+.4f}"

    @command("KRDG?")
    def krdg(self, args):
        return self._kelvin(args.strip())

    @command("CRDG?")
    def crdg(self, args):
        k = float(self._kelvin(args.strip()))
        return f"{k - 273.15:+.4f}"

    @command("SRDG?")
    def srdg(self, args):
        # a Cernox-like sensor: resistance falls with temperature
        k = float(self._kelvin(args.strip()))
        return f"{(1000.0 * (k + 1.0) ** -0.8 if k else 0.0):+.4f}"

    @command("RDGST?")
    def rdgst(self, args):
        bad = self.faults.sensor or self.world.faults.sensor_fault
        return "1" if bad and args.strip().upper() in ("A", "B") else "0"

    @command("SETP?")
    def setp_q(self, args):
        return f"{self.world.controller.setpoint:+.4f}"

    @command("SETP")
    def setp(self, args):
        loop, value = self._args(args)
        if self._loop(loop) == 1:
            c = self.world.controller
            if not c.ramp_enabled:  # with ramping on, the loop ramps from the old setpoint
                c.ramp_setpoint = float(value)
            c.setpoint = float(value)

    @command("RAMP?")
    def ramp_q(self, args):
        c = self.world.controller
        return f"{int(c.ramp_enabled)},{c.ramp_rate:.1f}"

    @command("RAMP")
    def ramp(self, args):
        loop, on, rate = self._args(args)
        rate = float(rate)
        if not (0.0 <= rate <= 100.0):
            raise SCPIError(-222, "Data out of range")
        if self._loop(loop) == 1:
            c = self.world.controller
            c.ramp_enabled, c.ramp_rate = bool(int(on)) and rate > 0, rate

    @command("RAMPST?")
    def rampst(self, args):
        return "1" if self.world.controller.ramping else "0"

    @command("PID?")
    def pid_q(self, args):
        c = self.world.controller
        return f"{c.p:+.1f},{c.i:+.1f},{c.d:+.0f}"

    @command("PID")
    def pid(self, args):
        loop, p, i, d = self._args(args)
        p, i, d = float(p), float(i), float(d)
        if not (0.1 <= p <= 1000 and 0.1 <= i <= 1000 and 0 <= d <= 200):
            raise SCPIError(-222, "Data out of range")
        if self._loop(loop) == 1:
            c = self.world.controller
            c.p, c.i, c.d = p, i, d

    @command("RANGE?")
    def range_q(self, args):
        loop = self._loop(args.strip() or "1")
        return str(self.world.controller.heater_range if loop == 1 else 0)

    @command("RANGE")
    def range_set(self, args):
        loop, value = self._args(args)
        value = int(value)
        if value not in range(len(HEATER_RANGES_W)):
            raise SCPIError(-222, "Data out of range")
        if self._loop(loop) == 1:
            self.world.controller.heater_range = value

    @command("HTR?")
    def htr(self, args):
        loop = self._loop(args.strip() or "1")
        c = self.world.controller
        return f"{c.output if loop == 1 and c.heater_range else 0.0:+.2f}"  # an off heater outputs nothing

    @command("MOUT?")
    def mout_q(self, args):
        return f"{self.world.controller.manual_output:+.2f}"

    @command("MOUT")
    def mout(self, args):
        loop, value = self._args(args)
        if self._loop(loop) == 1:
            self.world.controller.manual_output = float(value)

    @command("OUTMODE?")
    def outmode_q(self, args):
        loop = self._loop(args.strip() or "1")
        mode = self.world.controller.mode if loop == 1 else 0
        return f"{mode},{self.out_input.get(loop, 0)},{self.powerup.get(loop, 0)}"

    @command("OUTMODE")
    def outmode(self, args):
        loop, mode, inp, pu = self._args(args)
        loop = self._loop(loop)
        if int(mode) not in range(6) or int(inp) not in range(5):
            raise SCPIError(-222, "Data out of range")
        self.out_input[loop], self.powerup[loop] = int(inp), int(pu)
        if loop == 1:
            self.world.controller.mode = int(mode)

    @command("HTRSET?")
    def htrset_q(self, args):
        r, m, u, d = self.htrset.get(self._loop(args.strip() or "1"), (1, 2, 0.0, 2))
        return f"{r},{m},{u:+.3f},{d}"

    @command("HTRSET")
    def htrset_set(self, args):
        loop, r, m, u, d = self._args(args)
        self.htrset[self._loop(loop)] = (int(r), int(m), float(u), int(d))

    def reset(self) -> None:
        c = self.world.controller
        c.heater_range, c.ramp_enabled, c.mode = 0, False, 1

    def snapshot(self) -> dict:
        c = self.world.controller
        return {"setpoint": c.setpoint, "ramp": (c.ramp_enabled, c.ramp_rate), "pid": (c.p, c.i, c.d),
                "range": c.heater_range, "mode": c.mode}
