"""Reliability drills on the virtual lab: a crash loop and a soak (docs/reliability.md).

    python -m labctl.soak crash-loop --kills 100 --seed 1      # SIGKILL at random moments, check, resume
    python -m labctl.soak soak --rows 100000                   # one long V-I step: rows/s, RSS, tracemalloc

The crash loop starts ``labctl run protocol --quiet`` (and later ``labctl resume``)
as a subprocess, kills it with SIGKILL after a seeded random delay, and checks
what a crash may and may not do: every CSV still parses, the rows of completed
points are all there (only the row being written may be torn), the catalog
shows the run ``interrupted`` on the next read and is not locked.  At the end
every run is resumed to completion and checked for missing or duplicated points.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a shorter protocol (about 3 s of steps): the crash loop is about the kill, not the physics
SHORT_PROTOCOL = ["rt.sweeps=cooling", "vi.current_step=10", "radial-field.repeats=1", "radial-scan.n_points=11"]


def _labctl(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "labctl", *args], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def rows_per_point(kind: str, params: dict) -> int:
    if kind in ("radial-field", "normal-control"):
        radii = [r for r in str(params.get("radii", "5,7.07,10")).split(",") if r.strip()]
        return len(radii) * (2 if params.get("reversal") == "yes" else 1)
    return 1


def check_run_folder(run_dir: Path) -> dict:
    """What a kill left behind.  ``problems`` lists every broken promise."""
    import pandas as pd

    problems: list[str] = []
    out = {"csv_rows": 0, "torn_lines": 0, "in_flight_rows": 0, "missing_rows": 0, "problems": problems}
    try:
        state = json.loads((run_dir / "parameters.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"parameters.json unreadable: {e}")
        return out
    for csv in sorted(run_dir.glob("*.csv")):
        step = csv.stem.split("-", 1)[1]
        raw = csv.read_bytes()
        torn = 0 if raw.endswith(b"\n") or not raw else 1
        out["torn_lines"] += torn
        try:
            df = pd.read_csv(csv, comment="#")
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            problems.append(f"{csv.name}: pandas cannot parse it ({type(e).__name__}: {e})")
            continue
        if torn:
            df = df.iloc[:-1]  # the torn row is the one allowed loss
        out["csv_rows"] += len(df)
        points_file = csv.with_suffix(".points")
        done = {int(x) for x in points_file.read_text().split()} if points_file.exists() else set()
        if "Point" not in df.columns:
            problems.append(f"{csv.name}: no Point column")
            continue
        points = pd.to_numeric(df["Point"], errors="coerce")
        params = state.get("steps", {}).get(step, {}).get("parameters", {})
        per_point = rows_per_point(step, params)
        counts = points.value_counts()
        for p in done:
            have = int(counts.get(p, 0))
            if have < per_point:
                out["missing_rows"] += per_point - have
                problems.append(f"{csv.name}: completed point {p} has {have} of {per_point} rows")
        in_flight = sorted({int(p) for p in points.dropna() if int(p) not in done})
        if len(in_flight) > 1:
            problems.append(f"{csv.name}: rows of {len(in_flight)} unfinished points {in_flight[:5]} (at most 1)")
        out["in_flight_rows"] += int(points.isin(in_flight).sum())
    return out


def catalog_writable(catalog: Path, run_id: str) -> str | None:
    """Open the SQLite catalog and write to it with no wait: None if fine, else the error."""
    try:
        conn = sqlite3.connect(catalog, timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE runs SET reason=reason WHERE id=?", (run_id,))
            conn.commit()
        finally:
            conn.close()
    except sqlite3.Error as e:
        return str(e)
    return None


def _wait_for_run(data_dir: Path, known: set[str], proc: subprocess.Popen, timeout: float = 60) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for d in data_dir.iterdir():
            if d.is_dir() and d.name not in known and (d / "parameters.json").exists():
                return d
        time.sleep(0.01)
    return None


def _wait_running(data_dir: Path, run_id: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the resuming process has reopened the run in the catalog (read-only polling)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1)
            try:
                row = conn.execute("SELECT status, pid FROM runs WHERE id=?", (run_id,)).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            row = None
        if row and row[0] == "running" and row[1] == proc.pid:
            return
        time.sleep(0.01)


def crash_loop(kills: int = 100, seed: int = 1, data_dir: str | Path | None = None, kills_per_run: int = 3,
               max_delay: float = 3.0, sets: list[str] | None = None, log=print) -> dict:
    """Kill ``kills`` times; each run is killed up to ``kills_per_run`` times (first the run,
    then its resumes), then all runs are resumed to completion.  Returns the figures."""
    from labctl.catalog import Catalog

    rng = random.Random(seed)
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="labctl-crash-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    sets = SHORT_PROTOCOL if sets is None else sets
    set_args = [a for s in sets for a in ("--set", s)]
    t_start = time.monotonic()
    records: list[dict] = []
    runs: list[str] = []
    current: str | None = None
    kills_of_current = 0
    for k in range(kills):
        known = {d.name for d in data_dir.iterdir() if d.is_dir()}
        if current is None:
            proc = _labctl("run", "protocol", "--quiet", "--data-dir", str(data_dir), *set_args)
            run_dir = _wait_for_run(data_dir, known, proc)
            if run_dir is None:
                proc.kill()
                proc.wait()
                records.append({"kill": k, "problems": ["the run never started: " + proc.stderr.read().decode()[-300:]]})
                continue
            current, kills_of_current = run_dir.name, 0
            runs.append(current)
            what = "run"
        else:
            proc = _labctl("resume", current, "--quiet", "--data-dir", str(data_dir))
            run_dir = data_dir / current
            what = "resume"
            _wait_running(data_dir, current, proc)
        delay = rng.uniform(0.0, max_delay)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        rec = {"kill": k, "run": current, "what": what, "delay_s": round(delay, 3), "finished_first": finished}
        rec.update(check_run_folder(run_dir))
        status = Catalog(data_dir).get(current)["status"]  # the next read marks it
        rec["status_after"] = status
        if status == "completed":  # the kill landed after the run had finished (while the process exited)
            saved = json.loads((run_dir / "parameters.json").read_text(encoding="utf-8")).get("status")
            if saved != "completed":
                rec["problems"].append(f"catalog says completed but parameters.json says {saved!r}")
        elif status != "interrupted":
            rec["problems"].append(f"catalog shows {status!r}, not 'interrupted'")
        locked = catalog_writable(data_dir / Catalog.FILENAME, current)
        if locked:
            rec["problems"].append(f"catalog not writable: {locked}")
        records.append(rec)
        log(f"kill {k + 1}/{kills}: {what} {current} after {delay:.2f} s -> {status}, {rec['csv_rows']} rows, "
            f"torn {rec['torn_lines']}, in flight {rec['in_flight_rows']}"
            + (f", PROBLEMS {rec['problems']}" if rec["problems"] else ""))
        kills_of_current += 1
        if status == "completed" or kills_of_current >= kills_per_run:
            current = None
    # finally: resume every run that is not completed, without killing it
    resumes = []
    for run_id in runs:
        status = Catalog(data_dir).get(run_id)["status"]
        if status == "completed":
            resumes.append({"run": run_id, "status": status, "resumed": False})
            continue
        proc = _labctl("resume", run_id, "--quiet", "--data-dir", str(data_dir))
        _, err = proc.communicate(timeout=600)
        status = Catalog(data_dir).get(run_id)["status"]
        final = check_run_folder(data_dir / run_id)
        final.update(run=run_id, status=status, resumed=True, exit_code=proc.returncode,
                     stderr=err.decode(errors="replace")[-500:])
        final["problems"] += _duplicates(data_dir / run_id)
        resumes.append(final)
        log(f"resume {run_id}: exit {proc.returncode}, {status}" + (f", PROBLEMS {final['problems']}" if final["problems"] else ""))
    summary = {
        "kills": kills, "seed": seed, "max_delay_s": max_delay, "runs": len(runs),
        "kills_interrupting": sum(1 for r in records if not r.get("finished_first", True)),
        "max_torn_lines_per_kill": max((r.get("torn_lines", 0) for r in records), default=0),
        "max_missing_rows_of_completed_points": max((r.get("missing_rows", 0) for r in records), default=0),
        "max_in_flight_rows": max((r.get("in_flight_rows", 0) for r in records), default=0),
        "catalog_problems": sum(1 for r in records for p in r.get("problems", []) if "catalog" in p),
        "problems": [p for r in records + resumes for p in r.get("problems", [])],
        "resumed_to_completion": sum(1 for r in resumes if r["status"] == "completed"),
        "wall_s": round(time.monotonic() - t_start, 1),
        "data_dir": str(data_dir), "records": records, "resumes": resumes,
    }
    return summary


def _duplicates(run_dir: Path) -> list[str]:
    import pandas as pd

    out = []
    for csv in sorted(run_dir.glob("*.csv")):
        df = pd.read_csv(csv, comment="#")
        keys = [c for c in ("Point", "Radius (m)", "Polarity", "Repeat") if c in df.columns]
        if df.duplicated(subset=keys).any():
            out.append(f"{csv.name}: duplicated rows after resume")
        done = {int(x) for x in csv.with_suffix(".points").read_text().split()}
        if set(pd.to_numeric(df["Point"]).astype(int)) != done:
            out.append(f"{csv.name}: points in the CSV differ from the completed points")
    return out


# ------------------------------------------------------------------------ soak
def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(rows: int = 100_000, data_dir: str | Path | None = None, trace: bool = True, log=print) -> dict:
    """One long V-I step in this process (current_step chosen for ``rows`` rows below Ic):
    rows/s, RSS at start/end (and sampled), tracemalloc peak."""
    import resource
    import threading
    import tracemalloc

    from labctl.cli import main

    from labctl.config import DEFAULT_STATION

    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="labctl-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    ic = 425.0  # Pb at 6.8 K: the V-I sweep ends at Ic = 429.7 A, so this gives ~1 % more rows than asked
    step = max(round(ic / rows, 6), 1e-6)
    # 2182A at NPLC 0.1 (4 ms a reading): 10^5 points then span ~20 min of virtual time, not the
    # ~15 h they take at NPLC 5 -- over 15 h the thermal-EMF drift (0.2 nV/s) alone reaches the
    # sweep's 10 uV stop voltage and the analysis rightly finds no Ic.
    station = data_dir / "soak-station.toml"
    text = DEFAULT_STATION.read_text()
    assert "\nnplc = 5" in text
    station.write_text(text.replace("\nnplc = 5", "\nnplc = 0.1"))
    argv = ["run", "vi", "--quiet", "--station", str(station), "--data-dir", str(data_dir),
            "--set", f"current_step={step}", "--set", "settle=0", "--set", "averages=1", "--set", "dwell=1"]
    # warm-up: imports, pymeasure, pandas -- so "start" is the steady state
    main(["run", "vi", "--quiet", "--data-dir", str(data_dir), "--set", "current_step=40"])
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.wait(5.0):
            samples.append((round(time.monotonic() - t0, 1), _rss_kb()))

    rss0 = _rss_kb()
    if trace:
        tracemalloc.start()
    t0 = time.monotonic()
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    code = main(argv)
    wall = time.monotonic() - t0
    stop.set()
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    top = []
    if trace:
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        top = [(f"{s.traceback[0].filename.split('site-packages/')[-1].replace(str(REPO) + '/', '')}:"
                f"{s.traceback[0].lineno}", round(s.size / 2**20, 2), s.count) for s in snap.statistics("lineno")[:6]]
        tracemalloc.stop()
    rss1 = _rss_kb()
    from labctl.catalog import Catalog

    step_run = [r for r in Catalog(data_dir).list(kind="vi", parent=False) if r["parent"]][-1]
    import pandas as pd

    n = len(pd.read_csv(step_run["path"], comment="#"))
    result = {"exit_code": code, "rows": n, "current_step_A": step, "wall_s": round(wall, 1),
              "rows_per_s": round(n / wall), "rss_start_MiB": round(rss0 / 1024, 1), "rss_end_MiB": round(rss1 / 1024, 1),
              "rss_max_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "tracemalloc_peak_MiB": round(peak / 2**20, 2) if peak is not None else None,
              "tracemalloc": trace, "tracemalloc_top_at_end": top, "rss_samples_MiB": [(t, round(kb / 1024, 1)) for t, kb in samples],
              "csv_MiB": round(Path(step_run["path"]).stat().st_size / 2**20, 1), "data_dir": str(data_dir)}
    log(json.dumps({k: v for k, v in result.items() if k != "rss_samples_MiB"}))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labctl.soak", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("crash-loop", help="SIGKILL labctl run/resume at random moments, then resume all")
    c.add_argument("--kills", type=int, default=100)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--kills-per-run", type=int, default=3)
    c.add_argument("--max-delay", type=float, default=3.0, help="s after the run folder appears")
    c.add_argument("--data-dir")
    c.add_argument("--json", help="write the figures here")
    s = sub.add_parser("soak", help="one long V-I step: rows/s, RSS, tracemalloc peak")
    s.add_argument("--rows", type=int, default=100_000)
    s.add_argument("--no-tracemalloc", action="store_true")
    s.add_argument("--data-dir")
    s.add_argument("--json")
    args = parser.parse_args(argv)
    if args.what == "crash-loop":
        out = crash_loop(args.kills, args.seed, args.data_dir, args.kills_per_run, args.max_delay)
        brief = {k: v for k, v in out.items() if k not in ("records", "resumes")}
    else:
        out = soak(args.rows, args.data_dir, trace=not args.no_tracemalloc)
        brief = out
    print(json.dumps(brief, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 1 if out.get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
