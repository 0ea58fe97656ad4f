"""Station clocks.  Procedures never call time.sleep: they ask the station's clock.

* WallClock     real time, for real instruments.
* ScaledClock   virtual time running ``speedup`` times faster than the wall
                (the virtual lab served over TCP, the GUI).
* SteppedClock  virtual time that only moves when someone sleeps: a six-hour
                cool-down rehearses as fast as the CPU allows, deterministically.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    speedup: float

    def now(self) -> float:
        """Seconds since an arbitrary epoch (virtual seconds for simulated clocks)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass."""


class WallClock:
    speedup = 1.0

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Virtual time = wall time x speedup, from the moment of creation."""

    def __init__(self, speedup: float = 1.0, start: float = 0.0):
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.speedup = float(speedup)
        self._start = start
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._wall0) * self.speedup

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speedup)


class SteppedClock:
    """Virtual time advanced only by sleep(); thread-safe; infinitely fast."""

    speedup = float("inf")

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._t += seconds
        time.sleep(0)  # let other threads (GUI, pollers) run

    def advance(self, seconds: float) -> None:
        """Used by emulators for time an instrument spends integrating."""
        self.sleep(seconds)


def make_clock(speedup: float | str | None) -> Clock:
    """Clock from a station setting: None/1 -> wall, 'max' -> stepped, X -> scaled."""
    if speedup in (None, 1, 1.0, "1"):
        return WallClock()
    if isinstance(speedup, str) and speedup.lower() in ("max", "inf"):
        return SteppedClock()
    return ScaledClock(float(speedup))
