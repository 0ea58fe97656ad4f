"""Newport ESP300 motion controller; axis 1 carries the Hall probe (ESP300 manual, chapter 3).

Commands are two letters preceded by the axis number (``1PA5.0``, ``1TP``,
``1MD?``); errors are kept in a queue read with ``TE?`` (axis errors are
coded ``1xx`` for axis 1).  Position units are millimetres: axis 1 position
is the probe's radial position r in mm (0 on the cylinder axis).
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


class ESP300(Emulator):
    model = "ESP300"
    idn = "ESP300 Version 3.08 09/09/02"
    termination = "\r\n"
    scpi = False

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
        if cmd not in ("TE", "VE") and axis not in (1, 2, 3):
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

    def cmd_VE(self, axis, query, value):
        return self.idn

    def cmd_TP(self, axis, query, value):
        s = self._stage(axis)
        pos = self.world.measured_position() if s else 0.0
        return f"{pos:.5f}"

    def cmd_DP(self, axis, query, value):
        s = self._stage(axis)
        return f"{(s.target if s else 0.0):.5f}"

    def cmd_PA(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(s.target if s else 0.0):.5f}"
        if value is None or s is None:
            return None
        if not s.enabled:
            self.push_error(axis * 100 + 13, "MOTOR NOT ENABLED")
            return None
        if value < s.left_limit:
            self.push_error(axis * 100 + E_NEG_LIMIT, "NEGATIVE SOFTWARE LIMIT DETECTED")
            return None
        if value > s.right_limit:
            self.push_error(axis * 100 + E_POS_LIMIT, "POSITIVE SOFTWARE LIMIT DETECTED")
            return None
        self.world.move_stage(value)
        return None

    def cmd_PR(self, axis, query, value):
        s = self._stage(axis)
        if s is not None and value is not None:
            return self.cmd_PA(axis, False, s.target + value)
        return None

    def cmd_MD(self, axis, query, value):
        s = self._stage(axis)
        if s is None:
            return "1"
        if self.faults.stall:
            s.stalled = True
        return "0" if s.moving or s.stalled else "1"

    def cmd_ST(self, axis, query, value):
        s = self._stage(axis)
        if s is not None:
            s.target = s.position
            s.stalled = False

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
            s.enabled = True

    def cmd_MF(self, axis, query, value):
        s = self._stage(axis)
        if s is not None:
            s.enabled = False
            s.target = s.position

    def cmd_SL(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(s.left_limit if s else 0.0):.5f}"
        if s is not None and value is not None:
            s.left_limit = max(value, s.left_travel)

    def cmd_SR(self, axis, query, value):
        s = self._stage(axis)
        if query:
            return f"{(s.right_limit if s else 0.0):.5f}"
        if s is not None and value is not None:
            s.right_limit = min(value, s.right_travel)

    def cmd_SN(self, axis, query, value):
        return "2" if query else None  # millimetres

    def cmd_WS(self, axis, query, value):
        return None  # wait-for-stop inside the controller: nothing to do for a host

    def cmd_OR(self, axis, query, value):
        s = self._stage(axis)
        if s is not None:
            self.world.move_stage(max(s.left_limit, 0.0))

    def cmd_DH(self, axis, query, value):
        return None

    def snapshot(self) -> dict:
        s = self.world.stage
        return {"position_mm": s.position, "target_mm": s.target, "velocity_mm_s": s.velocity,
                "limits_mm": (s.left_limit, s.right_limit)}
