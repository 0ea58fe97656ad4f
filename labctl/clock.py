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
from contextlib import contextmanager
from typing import Callable, Protocol

_local = threading.local()


@contextmanager
def instrument_io():
    """Marks a conversation with an instrument in this thread: a watch never runs inside
    one (an emulator's integration time is a sleep on the same clock)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


class Watch:
    """A check run every ``period`` seconds of clock time while someone waits on the clock
    (the guard: tap voltage, supply read-back, interlocks), only in the thread that set it,
    never inside an instrument conversation, never re-entered."""

    def __init__(self, check: Callable[[], None], period: float):
        self.check = check
        self.period = float(period)
        self.thread = threading.get_ident()
        self.last: float | None = None
        self.running = False

    def due(self) -> bool:
        return (self.thread == threading.get_ident() and not self.running
                and getattr(_local, "depth", 0) == 0)


def watched_sleep(clock, seconds: float, raw_sleep: Callable[[float], None]) -> None:
    """Sleep ``seconds`` on ``clock``, running its watch every period meanwhile."""
    watch = getattr(clock, "watch", None)
    if watch is None or seconds <= 0 or not watch.due():
        raw_sleep(seconds)
        return
    end = clock.now() + seconds
    while True:
        now = clock.now()
        if watch.last is None:
            watch.last = now
        if now - watch.last >= watch.period:
            watch.last = now
            watch.running = True
            try:
                watch.check()
            finally:
                watch.running = False
        left = end - clock.now()
        if left <= 0:
            return
        raw_sleep(min(left, max(watch.period - (clock.now() - watch.last), 1e-6)))


class Clock(Protocol):
    speedup: float

    def now(self) -> float:
        """Seconds since an arbitrary epoch (virtual seconds for simulated clocks)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass."""


class WallClock:
    speedup = 1.0
    watch: Watch | None = None

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        watched_sleep(self, seconds, self._sleep)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Virtual time = wall time x speedup, from the moment of creation."""

    watch: Watch | None = None

    def __init__(self, speedup: float = 1.0, start: float = 0.0):
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.speedup = float(speedup)
        self._start = start
        self._wall0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._wall0) * self.speedup

    def sleep(self, seconds: float) -> None:
        watched_sleep(self, seconds, self._sleep)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speedup)


class SteppedClock:
    """Virtual time advanced only by sleep(); thread-safe; infinitely fast."""

    speedup = float("inf")
    watch: Watch | None = None

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        watched_sleep(self, seconds, self._sleep)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._t += seconds
        time.sleep(0)  # let other threads (GUI, pollers) run

    def advance(self, seconds: float) -> None:
        """Used by emulators for time an instrument spends integrating."""
        self._sleep(seconds)


def make_clock(speedup: float | str | None) -> Clock:
    """Clock from a station setting: None/1 -> wall, 'max' -> stepped, X -> scaled."""
    if speedup in (None, 1, 1.0, "1"):
        return WallClock()
    if isinstance(speedup, str) and speedup.lower() in ("max", "inf"):
        return SteppedClock()
    return ScaledClock(float(speedup))
