"""Crash safety (issue 7): SIGKILL ``labctl run protocol`` / ``labctl resume`` at random
moments, then check what a crash may and may not do, and that resume finishes the runs.

The loop here is bounded (10 kills); ``python -m labctl.soak crash-loop --kills 100``
is the long version whose figures are in docs/reliability.md.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from labctl.catalog import Catalog
from labctl.soak import catalog_writable, check_run_folder, crash_loop


def test_crash_loop_ten_kills_then_resume_completes_all(tmp_path):
    out = crash_loop(kills=10, seed=7, data_dir=tmp_path, kills_per_run=5, max_delay=1.5, log=lambda *_: None)
    records = out["records"]
    assert len(records) == 10
    assert out["kills_interrupting"] >= 8  # (a kill can come after a resume already finished)
    for rec in records:
        assert not rec["problems"], rec
        assert rec["torn_lines"] <= 1  # at most the row being written is lost
        assert rec["missing_rows"] == 0  # every row of every completed point is on disk
        # interrupted -- or completed when the kill landed after the run's end, while the process exited
        assert rec["status_after"] in ("interrupted", "completed")
        if rec["finished_first"] is False and rec["status_after"] == "completed":
            state = json.loads((tmp_path / rec["run"] / "parameters.json").read_text())
            assert state["status"] == "completed"
    assert out["catalog_problems"] == 0
    # every run resumed to completion, each point exactly once
    assert out["runs"] >= 2
    assert out["resumed_to_completion"] == out["runs"], out["resumes"]
    assert not out["problems"], out["problems"]
    catalog = Catalog(tmp_path)
    for run in catalog.list(parent=None):
        assert run["status"] == "completed"
        steps = catalog.list(parent=run["id"])
        assert len(steps) == 6 and {s["status"] for s in steps} == {"completed"}
        state = json.loads((Path(run["path"]) / "parameters.json").read_text())
        assert state["status"] == "completed" and state["derived"]["tc"] and state["derived"]["ic"]
        for csv in Path(run["path"]).glob("*.csv"):
            df = pd.read_csv(csv, comment="#")
            assert len(df) > 0, csv
    # and the catalog is still an ordinary, writable SQLite file
    conn = sqlite3.connect(tmp_path / "catalog.sqlite", timeout=0)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_torn_last_line_is_the_only_loss_and_resume_prunes_it(tmp_path):
    """A kill in the middle of a write leaves a torn line; check_run_folder counts it and
    the resume drops it (and the unfinished point's rows) before measuring that point again."""
    from labctl.protocol import Plan, RunFolder, execute, parse_sets
    from labctl.runner import RunControl, Runner
    from labctl.station import Station

    from labctl.stream import LiveStream

    control = RunControl()
    stream = LiveStream()
    seen = []

    def on_row(topic, payload):
        if topic == "row":
            seen.append(payload)
            if len(seen) == 7:
                control.abort()

    stream.subscribe(on_row)
    station = Station.from_file(None, seed=4)
    overrides, options = parse_sets(["ic=430", "repeats=1"], ["radial-field"])
    with station.session():
        state = execute(station, Plan(["radial-field"], overrides, options), tmp_path,
                        Runner(station, Catalog(tmp_path), stream, control))
    run_dir = Path(state["path"])
    csv = run_dir / "01-radial-field.csv"
    # simulate the crash: a row of the next point half written, the run still 'running'
    with open(csv, "a") as f:
        f.write("1,86.0,0.005,1.2e-")
    report = check_run_folder(run_dir)
    assert report["torn_lines"] == 1 and report["missing_rows"] == 0 and not report["problems"]
    assert catalog_writable(tmp_path / "catalog.sqlite", state["id"]) is None
    folder_state = RunFolder(run_dir).read_state()
    station = Station.from_file(None, seed=4)
    with station.session():
        final = execute(station, Plan(["radial-field"], overrides, options), tmp_path,
                        Runner(station, Catalog(tmp_path), LiveStream(), RunControl()), state=folder_state,
                        run_dir=run_dir)
    assert final["status"] == "completed"
    df = pd.read_csv(csv, comment="#")
    assert len(df) == 5 * 3 and not df.duplicated(subset=["Point", "Radius (m)"]).any()
    assert check_run_folder(run_dir)["torn_lines"] == 0


def test_resume_after_a_kill_between_a_step_and_its_analysis(tmp_path):
    """Found by the crash loop: killed after V-I was marked completed but before Ic was
    saved, a run could never be resumed ('ic is not set', exit 2).  Resume now re-derives it."""
    from labctl.protocol import Plan, RunFolder, execute, parse_sets
    from labctl.runner import RunControl, Runner
    from labctl.station import Station
    from labctl.stream import LiveStream

    steps = ["rt", "vi", "radial-field"]
    sets = ["rt.sweeps=cooling", "vi.current_step=10", "radial-field.repeats=1"]
    overrides, options = parse_sets(sets, steps)
    station = Station.from_file(None, seed=4)
    with station.session():
        state = execute(station, Plan(steps, overrides, options), tmp_path, Runner(station, Catalog(tmp_path)))
    assert state["status"] == "completed"
    ic = state["derived"]["ic"]
    run_dir = Path(state["path"])
    # the state a kill leaves in that window: vi completed, its Ic not yet saved, nothing after it
    folder = RunFolder(run_dir)
    killed = folder.read_state()
    del killed["derived"]["ic"]
    del killed["steps"]["radial-field"]
    killed["status"] = "running"
    (run_dir / "03-radial-field.csv").unlink()
    (run_dir / "03-radial-field.points").unlink()
    folder.write_state(killed)
    station = Station.from_file(None, seed=4)
    with station.session():
        final = execute(station, Plan(steps, overrides, options), tmp_path,
                        Runner(station, Catalog(tmp_path), LiveStream(), RunControl()), state=killed, run_dir=run_dir)
    assert final["status"] == "completed", final.get("reason")
    assert final["derived"]["ic"] == ic  # the same analysis of the same file
    assert len(pd.read_csv(run_dir / "03-radial-field.csv", comment="#")) == 5 * 3
