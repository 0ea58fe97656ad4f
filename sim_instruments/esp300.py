"""Newport ESP300 motion controller; axis 1 carries the Hall probe (ESP300 user's manual, chapter 3).

Commands are two letters preceded by the axis number (``1PA5.0``, ``1TP``,
``1MD?``); errors are kept in a FIFO read with ``TE?`` (code) or ``TB?``
(code, timestamp, message), ten deep, each query popping one (p. 3-139); axis
errors are coded ``1xx`` for axis 1.  Commands end in CR, replies in CR LF
(section 3.4); a LF alone ends nothing.

Power-up: the motor power is off (``MO`` turns it on, ``MO?`` reads it) and the
position counter starts at 0 wherever the stage happens to be: positions of
the incremental encoder mean nothing until a home search (``OR``, completion
polled with ``MD?``) has found the home switch, which then is position 0.
Soft limits (``SL``/``SR``) are in that same frame.  The virtual stage's home
switch sits at the physical zero of the world (the cylinder axis), so after
homing, positions are radii in mm.
"""
from __future__ import annotations

import re

from sim_instruments.emulator import Emulator

_CMD = re.compile(r"^\s*(\d*)\s*([A-Za-z]{2})(\??)\s*(.*)$")

# error codes used (ESP300 manual, appendix A)
E_COMMAND = 6  # COMMAND DOES NOT EXIST
E_PARAMETER = 7  # PARAMETER OUT OF RANGE
E_AXIS = 9  # AXIS NUMBER OUT OF RANGE
E_NEG_LIMIT, E_POS_LIMIT = 7, 6  # axis codes: NEG/POS SOFTWARE LIMIT DETECTED (x07, x06)
E_MAX_VELOCITY = 10
E_MOTOR_OFF = 13  # axis code: MOTOR NOT ENABLED
FIFO_DEPTH = 10
HOME_SWITCH = 0.0  # mm, physical position of the home switch


class ESP300(Emulator):
    model = "ESP300"
    idn = "ESP300 Version 3.08 09/09/02"
    termination = "\r\n"
    terminators = "\r"  # section 3.4: commands end in CR
    scpi = False
    error_queue_depth = FIFO_DEPTH

    def __init__(self, world):
        super().__init__(world)
        s = world.stage
        with world.lock:
            world.advance()
            s.enabled = False  # power-up: motor off
            s.left_limit, s.right_limit = s.left_travel, s.right_travel  # the world only knows the travel
            self.origin = s.position  # the counter starts at 0 where the stage stands
        self.homing = False
        self.homed = False
        self.soft_left, self.soft_right = -100.0, 100.0  # stored soft limits, in the controller's frame
        self.t0 = world.now()

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) < self.error_queue_depth:  # a full FIFO drops new errors
            self.errors.append((code, message))

    def _update(self) -> None:
        """A home search that has reached the switch defines the origin."""
        s = self.world.stage
        if self.homing and not s.moving and not s.stalled:
            self.origin = HOME_SWITCH
            self.homing = False
            self.homed = True

    def _user(self, physical: float) -> float:
        return physical - self.origin

    def _physical(self, user: float) -> float:
        return user + self.origin

    def handle(self, message: str) -> str | None:
        # ';' separates commands on the ESP300 too
        return super().handle(message)

    def split(self, message):
        return [("", p.strip()) for p in message.split(";") if p.strip()]

    def _one(self, item) -> str | None:
        text = item[1]
        if text.upper() in ("*IDN?", "VE?"):
            return self.idn
        m = _CMD.match(text)
        if not m:
            self.push_error(E_COMMAND, "COMMAND DOES NOT EXIST")
            return None
        axis, cmd, query, arg = m.groups()
        axis = int(axis) if axis else 0
        cmd = cmd.upper()
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.push_error(E_COMMAND, "COMMAND DOES NOT EXIST")
            return None
        if cmd not in ("TE", "TB", "VE") and axis not in (1, 2, 3):
            self.push_error(E_AXIS, "AXIS NUMBER OUT OF RANGE")
            return None
        try:
            value = float(arg) if arg.strip() else None
        except ValueError:
            self.push_error(E_PARAMETER, "PARAMETER OUT OF RANGE")
            return None
        return handler(axis, bool(query), value)

    # -- only axis 1 is connected to the probe; axes 2, 3 are idle stages
    def _stage(self, axis):
        return self.world.stage if axis == 1 else None

    def cmd_TE(self, axis, query, value):
        return str(self.errors.pop(0)[0]) if self.errors else "0"

    def cmd_TB(self, axis, query, value):
        if not self.errors:
            return "0, 0, NO ERROR DETECTED"
        code, msg = self.errors.pop(0)
        return f"{code}, {int((self.world.now() - self.t0) * 1000) % 2**31}, {msg}"

    def cmd_VE(self, axis, query, value):
        return self.idn

    def cmd_TP(self, axis, query, value):
        s = self._stage(axis)
        self._update()
        pos = self._user(self.world.measured_position()) if s else 0.0
        return f"{pos:.5f}"

    def cmd_DP(self, axis, query, value):
        s = self._stage(axis)
        return f"{(self._user(s.target) if s else 0.0):.5f}"

    def cmd_PA(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(self._user(s.target) if s else 0.0):.5f}"
        if value is None or s is None:
            return None
        self._update()
        if not s.enabled:
            self.push_error(axis * 100 + E_MOTOR_OFF, "MOTOR NOT ENABLED")
            return None
        if value < self.soft_left:
            self.push_error(axis * 100 + E_NEG_LIMIT, "NEGATIVE SOFTWARE LIMIT DETECTED")
            return None
        if value > self.soft_right:
            self.push_error(axis * 100 + E_POS_LIMIT, "POSITIVE SOFTWARE LIMIT DETECTED")
            return None
        self.world.move_stage(self._physical(value))  # clipped at the hardware travel
        return None

    def cmd_PR(self, axis, query, value):
        s = self._stage(axis)
        if s is not None and value is not None:
            return self.cmd_PA(axis, False, self._user(s.target) + value)
        return None

    def cmd_MD(self, axis, query, value):
        s = self._stage(axis)
        if s is None:
            return "1"
        self.world.advance()
        if self.faults.stall and abs(s.target - s.position) > 1e-9:
            s.stalled = True  # the motor stops short of its target; MD? keeps saying "moving"
        self._update()
        return "0" if s.moving or s.stalled else "1"

    def cmd_ST(self, axis, query, value):
        s = self._stage(axis)
        if s is not None:
            self.world.advance()
            s.target = s.position
            s.stalled = False
            self.homing = False

    def cmd_VA(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(s.velocity if s else 1.0):.4f}"
        if s is not None and value is not None:
            if not 0 < value <= s.max_velocity:
                self.push_error(axis * 100 + E_MAX_VELOCITY, "MAXIMUM VELOCITY EXCEEDED")
                return None
            s.velocity = value

    def cmd_VU(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(s.max_velocity if s else 5.0):.4f}"
        if s is not None and value is not None and value > 0:
            s.max_velocity = value

    def cmd_AC(self, axis, query, value):
        if query:
            return "20.0000"
        return None  # motion is modelled at constant speed; accepted and ignored

    def cmd_MO(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return "1" if (s is None or s.enabled) else "0"
        if s is not None:
            self.world.advance()
            s.enabled = True

    def cmd_MF(self, axis, query, value):
        s = self._stage(axis)
        if s is not None:
            self.world.advance()
            s.enabled = False
            s.target = s.position
            self.homing = False

    def cmd_SL(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(self.soft_left if s else 0.0):.5f}"
        if s is not None and value is not None:
            if value > self.soft_right:
                self.push_error(E_PARAMETER, "PARAMETER OUT OF RANGE")
                return None
            self.soft_left = value

    def cmd_SR(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(self.soft_right if s else 0.0):.5f}"
        if s is not None and value is not None:
            if value < self.soft_left:
                self.push_error(E_PARAMETER, "PARAMETER OUT OF RANGE")
                return None
            self.soft_right = value

    def cmd_SN(self, axis, query, value):
        return "2" if query else None  # millimetres

    def cmd_WS(self, axis, query, value):
        return None  # wait-for-stop inside the controller: nothing to do for a host

    def cmd_OR(self, axis, query, value):
        """Home search: move to the home switch; its position becomes 0 when found."""
        s = self._stage(axis)
        if s is None:
            return None
        if not s.enabled:
            self.push_error(axis * 100 + E_MOTOR_OFF, "MOTOR NOT ENABLED")
            return None
        self.world.move_stage(HOME_SWITCH)
        self.homing = True
        self.homed = False
        self._update()

    def cmd_DH(self, axis, query, value):
        """Define home: the present position becomes ``value`` (default 0)."""
        s = self._stage(axis)
        if query:
            return "0.00000"
        if s is not None:
            self.world.advance()
            self.origin = s.position - (value or 0.0)

    def cmd_ZH(self, axis, query, value):
        return "0" if query else None

    def snapshot(self) -> dict:
        s = self.world.stage
        return {"position_mm": s.position, "target_mm": s.target, "velocity_mm_s": s.velocity,
                "origin_mm": self.origin, "homed": self.homed, "motor_on": s.enabled,
                "limits_mm": (self.soft_left, self.soft_right)}
