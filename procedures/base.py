"""Base of every labctl procedure: a pymeasure Procedure that measures point by point.

A procedure is split bluesky-style into a *plan* and its execution:

* ``points()`` lists what will be done (one dict per point), so a run can be
  listed, limit-checked and dry-run without hardware;
* ``requests()`` states the extremes the plan asks of the station (currents,
  temperatures, stage positions) for the pre-run limit check;
* ``measure(point)`` does one point with the station's roles and returns rows.

The runner injects ``station`` (roles + clock), ``emit`` and ``should_stop``.
Procedures never import pyvisa and never know whether the lab is simulated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from pymeasure.experiment import Procedure

from labctl.errors import ConfigError, Paused


@dataclass
class Requests:
    """What a plan will ask of the station, checked against its limits before a run."""

    currents: list[float] = field(default_factory=list)  # A
    temperatures: list[float] = field(default_factory=list)  # K
    temperature_ramps: list[float] = field(default_factory=list)  # K/min
    positions: list[float] = field(default_factory=list)  # stage mm


def parse_list(text: str, what: str) -> list[float]:
    """'0.1, 0.3,0.5' -> [0.1, 0.3, 0.5]; a clear ConfigError otherwise."""
    try:
        values = [float(x) for x in str(text).replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise ConfigError(f"{what}: the list is empty")
    if len(values) > 1000:
        raise ConfigError(f"{what}: {len(values)} values; at most 1000")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{what}: {text!r} contains a value that is not a finite number")
    return values


MAX_POINTS = 20_000  # a plan longer than this is a typo (a step of 1e-6 A), not a measurement


def bounded_count(span: float, step: float, what: str, fix: str) -> int:
    """Number of steps of ``step`` over ``span``, refused (before anything is allocated)
    when it exceeds MAX_POINTS."""
    if not (math.isfinite(span) and math.isfinite(step)) or step <= 0:
        raise ConfigError(f"{what}: step {step!r} must be a positive finite number")
    n = math.ceil(abs(span) / step - 1e-9)
    if n > MAX_POINTS:
        raise ConfigError(f"{what}: {n:,} points (span {abs(span):g} / step {step:g}) is more than the "
                          f"{MAX_POINTS:,} a plan may have; {fix}")
    return n


class StationProcedure(Procedure):
    """A procedure run by labctl's runner on a station."""

    KIND = "procedure"  # short name used by the CLI and the catalog
    QUENCH_DETECTION = True  # off for steps that are resistive by design (R(T), normal-state control)
    COMMON_COLUMNS = ["Point", "Time (s)"]

    station = None  # injected by the runner
    done_points: frozenset = frozenset()  # resume: indices already measured
    finished = False  # a procedure sets this to end early (e.g. V-I past the criterion)

    # ------------------------------------------------------------- the plan
    def points(self) -> list[dict]:
        raise NotImplementedError

    def requests(self) -> Requests:
        return Requests()

    def measure(self, point: dict) -> list[dict]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.KIND

    # --------------------------------------------------------- the engine
    def execute(self) -> None:
        """Measure every point not already done; emit rows, progress and point completion."""
        points = self.points()
        total = len(points)
        t0 = self.clock.now()
        for index, point in enumerate(points):
            if index in self.done_points:
                continue
            while True:
                if self.should_stop():
                    return
                self.checkpoint()
                if self.should_stop():
                    return  # aborted while paused: the current is off, measure nothing more
                try:
                    self.guard_tick(f"point {index}")
                    rows = self.measure(point)
                    # the end of the point is checked too (a quench during the last reading)
                    self.guard_tick(f"end of point {index}")
                    break
                except Paused:
                    continue  # paused mid-point: do the whole point again after resume
            if self.should_stop():
                return  # aborted during the point: it was not measured as its rows would say
            for row in rows:
                row.setdefault("Point", index)
                row.setdefault("Time (s)", self.clock.now() - t0)
                self.emit("results", row)
            self.emit("point_done", index)
            self.emit("progress", 100.0 * (index + 1) / max(total, 1))
            if self.finished:
                self.emit("progress", 100.0)
                return

    def checkpoint(self) -> None:
        """A safe point: the runner may pause here (with the current ramped down)."""

    def guard_tick(self, where: str) -> None:
        """Quench and interlock check (the runner installs the station's guard)."""

    def sleep(self, seconds: float) -> None:
        """Wait on the station clock (virtual in the virtual lab)."""
        self.clock.sleep(seconds)

    @property
    def clock(self):
        return self.station.clock

    # ------------------------------------------------------- conveniences
    def hold_temperature(self, kelvin: float, tolerance: float, dwell: float, timeout: float = 7200.0) -> float:
        """Set the loop to ``kelvin`` and wait until the sample is stable there."""
        temp = self.station.temperature
        if abs(temp.setpoint - kelvin) > 1e-6:
            temp.set_setpoint(kelvin)
        return temp.wait_stable(kelvin, tolerance=tolerance, dwell=dwell, timeout=timeout,
                                should_stop=self.should_stop)

    def shutdown(self) -> None:
        """Leave the current at zero; the runner's station session does the rest."""
        if self.station is not None and "current_source" in self.station.roles:
            self.station.current_source.safe_shutdown()
