"""stage role: the Hall probe's motion stage, in stage millimetres and in sample radius."""
from __future__ import annotations

import math
from typing import Callable

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role, strict_bool

AXES = {1: "x", 2: "y", 3: "phi"}


class Stage(Role):
    role = "stage"
    last_position = None

    def __init__(self, config, instrument, clock, name=None):
        super().__init__(config, instrument, clock, name)
        self.limits = config.limits
        self.axis = getattr(instrument, AXES[int(config.axis)])

    def identity(self) -> str:
        with self.io("VE?"):
            return str(self.instrument.version).strip()

    def setup(self) -> None:
        lim = self.limits
        with self.io("MO / VA / SL / SR"):
            self.axis.enable()
            self.axis.velocity = min(self.config.velocity, lim.max_velocity)
            self.axis.left_limit = lim.min_position
            self.axis.right_limit = lim.max_position

    # radius <-> stage coordinate
    def position_for_radius(self, radius_m: float) -> float:
        return self.config.radius_offset + self.config.radius_sign * radius_m * 1e3

    def radius_for_position(self, position_mm: float) -> float:
        return self.config.radius_sign * (position_mm - self.config.radius_offset) * 1e-3

    def check(self, position_mm: float) -> None:
        lim = self.limits
        if not math.isfinite(position_mm) or not lim.min_position <= position_mm <= lim.max_position:
            raise LimitError(f"{self.name}: position {position_mm:g} mm is outside the travel "
                             f"[{lim.min_position:g}, {lim.max_position:g}] mm (stage.limits)")

    @property
    def position(self) -> float:
        self.last_position = self.query("TP", lambda: float(self.axis.position))
        return self.last_position

    @property
    def radius(self) -> float:
        return self.radius_for_position(self.position)

    def move_to(self, position_mm: float, wait: bool = True, timeout: float = 120.0,
                should_stop: Callable[[], bool] | None = None) -> None:
        self.check(position_mm)
        with self.io(f"PA{position_mm:g}"):
            self.axis.position = position_mm
        if wait:
            self.wait_done(timeout=timeout, should_stop=should_stop)

    def move_to_radius(self, radius_m: float, **kw) -> None:
        self.move_to(self.position_for_radius(radius_m), **kw)

    def wait_done(self, timeout: float = 120.0, interval: float = 0.1,
                  should_stop: Callable[[], bool] | None = None) -> None:
        """Poll MD? on the station clock; a stage that stops moving short of its
        target (stall) or exceeds ``timeout`` raises InstrumentError and is stopped."""
        start = self.clock.now()
        last, still = None, 0.0
        while True:
            done = self.query("MD?", lambda: strict_bool(self.axis.motion_done))
            if done:
                err = self.query("TE?", lambda: int(self.instrument.error))
                if err:
                    raise InstrumentError(f"{self.name}: controller error {err} after move",
                                          role=self.name, address=self.address, last_command="PA")
                return
            pos = self.position
            if last is not None and abs(pos - last) < 1e-3:
                still += interval
            else:
                still = 0.0
            last = pos
            if still >= 2.0 or self.clock.now() - start > timeout:
                with self.io("ST"):
                    self.axis.stop()
                why = "stalled" if still >= 2.0 else f"did not finish within {timeout:g} s"
                raise InstrumentError(f"{self.name} at {self.address}: motion {why} at {pos:.4f} mm",
                                      role=self.name, address=self.address, last_command="MD?")
            if should_stop is not None and should_stop():
                with self.io("ST"):
                    self.axis.stop()
                return
            self.clock.sleep(interval)

    def state(self) -> dict:
        pos = self.position
        return {"position_mm": pos, "radius_m": self.radius_for_position(pos)}

    def safe_shutdown(self) -> list[str]:
        with self.io("ST"):
            self.axis.stop()
        return [f"{self.name}: motion stopped"]
