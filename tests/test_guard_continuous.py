"""The guard watches while current flows, during readings and waits (issue 11).

A quench injected in the middle of the LAST point of a radial-field step, while the
probe averages its readings at 344 A (0.8 Ic), must be seen within the guard period
and ramped down at the emergency rate (200 A/s), not at the normal 20 A/s of the
end-of-step shutdown.  The interrupted point leaves no row.
"""
from __future__ import annotations

import pandas as pd
import pytest

from labctl.catalog import Catalog
from labctl.protocol import Plan, execute, parse_sets
from labctl.runner import RunControl, Runner
from labctl.station import Station
from labctl.stream import LiveStream

SEED = 4
IC = 430.0  # A, Pb at 6.8 K in the virtual lab


def run_with_quench_in_last_point(tmp_path, readings_before_quench: int = 5):
    station = Station.from_file(None, seed=SEED)
    lab = station.lab
    clock = lab.clock
    gm, supply = lab.instruments["gaussmeter"], lab.instruments["current_source"]
    seen = {"reads_at_current": 0, "injected": None, "trace": []}

    original_gm = gm.handle

    def gaussmeter(message):
        if "RDGFIELD" in message.upper() and lab.world.current > 300:
            seen["reads_at_current"] += 1
            # the last radius of the only current point: readings 21-30 of 30 at 344 A
            if seen["reads_at_current"] == 20 + readings_before_quench and seen["injected"] is None:
                lab.inject("current_source", "quench")
                seen["injected"] = clock.now()
        return original_gm(message)

    original_supply = supply.handle

    def genesys(message):
        reply = original_supply(message)
        seen["trace"].append((clock.now(), lab.world.current))
        return reply

    gm.handle, supply.handle = gaussmeter, genesys
    overrides, options = parse_sets([f"radial-field.{s}" for s in
                                     (f"ic={IC}", "repeats=1", "currents=0.8", "averages=10", "read_interval=0.5")],
                                    ["radial-field"])
    control = RunControl()
    control.unattended = True
    runner = Runner(station, Catalog(tmp_path), LiveStream(), control)
    with station.session():
        state = execute(station, Plan(["radial-field"], overrides, options), tmp_path, runner)
    return station, state, seen


def test_quench_during_the_last_point_is_caught_and_ramped_down_fast(tmp_path):
    station, state, seen = run_with_quench_in_last_point(tmp_path)
    assert seen["injected"] is not None, "the quench was never injected"
    step = state["steps"]["radial-field"]
    assert step["status"] == "failed" and "quench" in step["reason"], step
    events = step.get("events") or []
    assert [e["event"] for e in events] == ["quench"]
    period = station.config.station.guard_period
    detected = events[0]["time"]
    # seen within one guard period (plus the reading in progress) of the quench
    assert 0 <= detected - seen["injected"] <= period + 0.2, (seen["injected"], detected)
    # ramped down at the emergency rate: 344 A in 344/200 = 1.7 s, not 344/20 = 17 s
    zero_at = next(t for t, i in seen["trace"] if t >= detected and i == 0.0)
    assert zero_at - detected < 1.5 * 344 / 200, zero_at - detected
    assert station.lab.world.current == 0.0 and station.lab.instruments["current_source"].output is False
    # the interrupted point (the 344 A one) left no row: only the zero-current background
    df = pd.read_csv(next(tmp_path.glob("*/01-radial-field.csv")), comment="#")
    assert set(df["Current (A)"]) == {0.0}
    assert Catalog(tmp_path).get(f"{state['id']}/radial-field")["status"] == "failed"


@pytest.mark.parametrize("period", [0.25, 2.0])
def test_guard_period_comes_from_the_station_file(tmp_path, period):
    from labctl.clock import SteppedClock, Watch

    clock = SteppedClock()
    ticks = []
    clock.watch = Watch(lambda: ticks.append(clock.now()), period)
    clock.sleep(10.0)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) == pytest.approx(10.0 / period, abs=1)
    assert all(g == pytest.approx(period) for g in gaps)


def test_watch_never_runs_inside_an_instrument_conversation():
    from labctl.clock import SteppedClock, Watch, instrument_io

    clock = SteppedClock()
    ticks = []
    clock.watch = Watch(lambda: ticks.append(clock.now()), 0.1)
    with instrument_io():  # e.g. the 2182A integrating: the emulator sleeps on the same clock
        clock.sleep(5.0)
    assert ticks == []
    clock.sleep(1.0)
    assert len(ticks) >= 9
