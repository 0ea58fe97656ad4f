"""stage role: the Hall probe's motion stage, in stage millimetres and in sample radius."""
from __future__ import annotations

import math
from typing import Callable

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role, log, strict_bool
from labctl.roles.verify import expect, no_errors, unverified

AXES = {1: "x", 2: "y", 3: "phi"}


class Stage(Role):
    role = "stage"
    last_position = None

    def __init__(self, config, instrument, clock, name=None):
        super().__init__(config, instrument, clock, name)
        self.limits = config.limits
        self.axis = getattr(instrument, AXES[int(config.axis)])
        # positions of an incremental encoder mean nothing before a home search
        self.referenced = config.home == "declared"

    def identity(self) -> str:
        with self.io("VE?"):
            return str(self.instrument.version).strip()

    def errors(self) -> list[int]:
        """Drain the controller's error FIFO (``TE?`` until 0): the codes."""
        return self.query("TE?", self.instrument.read_errors)

    def setup(self) -> None:
        """Run start (ESP300 user's manual): drain stale errors from the ``TE?`` FIFO, motor
        on and verified (``MO?``), velocity, then the home search (``OR``, waited on with
        ``MD?``; position 0 is the home switch) unless the station declares the reference,
        then the soft limits in that frame; every setting read back, the FIFO read last."""
        lim, ax, n = self.limits, self.axis, int(self.config.axis)
        stale = self.errors()
        if stale:
            log.warning("%s: stale controller errors drained before setup: %s", self.name, stale)
        with self.io(f"{n}MO"):
            ax.enable()
        expect(self, "motor on", self.query(f"{n}MO?", lambda: bool(ax.motor_on)), True)
        velocity = min(self.config.velocity, lim.max_velocity)
        with self.io(f"{n}VA{velocity:g}"):
            ax.velocity = velocity
        expect(self, "velocity", self.query(f"{n}VA?", lambda: float(ax.velocity)), velocity, tol=1e-4)
        if self.config.home == "search":
            self.home()
        with self.io(f"{n}SL / {n}SR"):
            ax.left_limit = lim.min_position
            ax.right_limit = lim.max_position
        expect(self, "left soft limit", self.query(f"{n}SL?", lambda: float(ax.left_limit)), lim.min_position,
               tol=1e-4)
        expect(self, "right soft limit", self.query(f"{n}SR?", lambda: float(ax.right_limit)), lim.max_position,
               tol=1e-4)
        no_errors(self, self.errors(), "after setup")

    def home(self) -> None:
        """Home search (``OR``), waited on with ``MD?`` within ``home_timeout``; then the
        position must read 0 (the home) and the FIFO must be empty."""
        n, mode = int(self.config.axis), self.config.home_mode
        with self.io(f"{n}OR{'' if mode is None else mode}"):
            self.axis.home_search(mode)
        self.wait_done(timeout=self.config.home_timeout, interval=0.25, stall_time=10.0)
        no_errors(self, self.errors(), "after the home search")
        pos = self.query(f"{n}TP", lambda: float(self.axis.position))
        if abs(pos) > 0.01:
            raise unverified(self, "home", f"position {pos:.4f} mm after the home search, expected 0")
        self.referenced = True
        log.info("%s: homed (home switch = 0 mm)", self.name)

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
        if not self.referenced:
            raise InstrumentError(f"{self.name}: the stage is not referenced (no home search since power-up); "
                                  "a run start homes it (stage.home = \"search\")", role=self.name,
                                  address=self.address, last_command="PA")
        with self.io(f"PA{position_mm:g}"):
            self.axis.position = position_mm
        if wait:
            self.wait_done(timeout=timeout, should_stop=should_stop)

    def move_to_radius(self, radius_m: float, **kw) -> None:
        self.move_to(self.position_for_radius(radius_m), **kw)

    def stop(self) -> str:
        """Stop the motion and confirm it with ``MD?`` (UNVERIFIED when it does not stop)."""
        with self.io("ST"):
            self.axis.stop()
        for _ in range(20):
            if self.query("MD?", lambda: strict_bool(self.axis.motion_done)):
                return f"{self.name}: motion stopped (MD? confirms)"
            self.clock.sleep(0.1)
        raise unverified(self, "motion stop", "MD? still reports motion after ST")

    def wait_done(self, timeout: float = 120.0, interval: float = 0.1,
                  should_stop: Callable[[], bool] | None = None, stall_time: float = 2.0) -> None:
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
            if still >= stall_time or self.clock.now() - start > timeout:
                self.stop()
                why = "stalled" if still >= stall_time else f"did not finish within {timeout:g} s"
                raise InstrumentError(f"{self.name} at {self.address}: motion {why} at {pos:.4f} mm",
                                      role=self.name, address=self.address, last_command="MD?")
            if should_stop is not None and should_stop():
                self.stop()
                return
            self.clock.sleep(interval)

    def state(self) -> dict:
        pos = self.position
        return {"position_mm": pos, "radius_m": self.radius_for_position(pos)}

    def safe_shutdown(self) -> list[str]:
        return [self.stop()]
