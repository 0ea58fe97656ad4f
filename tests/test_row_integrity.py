"""A row is written only for a point measured completely under the conditions it records
(issue 13): pause -> abort and pause -> resume at random moments, for every procedure,
never leave a row whose current was not flowing while it was measured.

Every procedure records ``Current read (A)``, the supply's read-back during the
reading, beside the programmed ``Current (A)``; the check compares the two.
"""
from __future__ import annotations

import random
import threading

import pandas as pd
import pytest

from labctl.catalog import Catalog
from labctl.protocol import Plan, execute, parse_sets
from labctl.runner import RunControl, Runner
from labctl.station import Station
from labctl.stream import LiveStream

STEPS = {
    "rt": ["t_high=7.5", "t_low=6.9", "fine_window=0.3", "fine_step=0.05", "coarse_step=0.2", "sweeps=cooling"],
    "vi": ["current_step=40"],
    "normal-control": ["repeats=2", "currents=40,80", "current_mode=A"],
    "radial-field": ["ic=430", "repeats=2", "currents=0.3,0.6"],
    "radial-scan": ["current=200", "n_points=6"],
    "residual": ["ic=430", "currents=0.2,0.4,0.6,0.8"],
}


def run(tmp_path, step: str, at_row: int, then: str):
    station = Station.from_file(None, seed=7)
    control = RunControl()
    stream = LiveStream()
    rows = []

    def later():
        control.paused.wait(30)  # the checkpoint has ramped the current down
        (control.abort if then == "abort" else control.resume)()

    def on_event(topic, payload):
        if topic == "row":
            rows.append(payload["row"])
            if len(rows) == at_row:
                control.pause()
                threading.Thread(target=later, daemon=True).start()

    stream.subscribe(on_event)
    overrides, options = parse_sets([f"{step}.{s}" for s in STEPS[step]], [step])
    runner = Runner(station, Catalog(tmp_path), stream, control)
    with station.session():
        state = execute(station, Plan([step], overrides, options), tmp_path, runner)
    return station, state, rows


def assert_rows_honest(df: pd.DataFrame, step: str):
    assert "Current read (A)" in df.columns
    for _, row in df.iterrows():
        programmed, read = float(row["Current (A)"]), float(row["Current read (A)"])
        if step == "radial-scan" and row.get("Polarity") == 0:
            programmed = 0.0
        assert abs(read - programmed) <= max(0.5, 0.02 * abs(programmed)), (step, programmed, read)
        if step in ("rt", "residual") or (step == "vi" and programmed > 0):
            assert abs(read) > 0  # the measuring current was really on


CASES = [(step, then, seed) for step in STEPS for then in ("abort", "resume") for seed in (1, 2)]


@pytest.mark.parametrize("step,then,seed", CASES)
def test_pause_then_abort_or_resume_leaves_only_honest_rows(tmp_path, step, then, seed):
    at_row = random.Random(hash((step, then, seed)) & 0xFFFF).randint(1, 3)
    station, state, streamed = run(tmp_path, step, at_row, then)
    df = pd.read_csv(next(tmp_path.glob(f"*/01-{step}.csv")), comment="#")
    assert len(df) == len(streamed)
    assert_rows_honest(df, step)
    status = state["steps"][step]["status"]
    if then == "abort":
        assert status == "aborted"
        assert len(df) <= at_row + 6  # at most the point in progress when the pause was asked
    else:
        assert status == "completed"
        assert "Point" not in df or not df.duplicated(subset=[c for c in df.columns
                                                              if c in ("Point", "Radius (m)", "Polarity")]).any()
    assert station.lab.world.current == 0.0
