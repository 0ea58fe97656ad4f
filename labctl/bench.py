"""``labctl bench``: benchmarks (never timed assertions in tests).

Each figure is the median of several repetitions with min and max; every
comparison is a ratio measured in the same run (the two sides interleaved).
The results are printed and written to docs/benchmarks.md with the machine,
the targets (met / not met, with the reason) and the total wall time.

Suites (``SUITES``; each takes a :class:`Context` and returns rows
``{"what", "unit", "median", "min", "max", "n"}``, optionally ``"note"``):

* ``pipeline``   procedure emit -> durable CSV row (+ catalog + live stream):
                 our ``Runner.run_step`` against pymeasure's ``Worker`` + ``Results``
* ``transports`` stock driver queries/s, in-process and over TCP
* ``rehearsal``  the full protocol on the virtual lab: wall time and speed-up
* ``loading``    a 10^6-row run file into a DataFrame: ours against ``Results.load().data``
* ``analysis``   the radial-field model comparison on a full protocol's data
* ``plot``       live-curve redraw, ours against pymeasure's ResultsCurve (labctl.gui.benchplot)
* ``lab``        rows/s into the shared PostgreSQL archive beside SQLite, and the monitor page's
                 live-row latency beside the in-process stream (labctl.service.bench)
"""
from __future__ import annotations

import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pymeasure.experiment import IntegerParameter

from procedures.base import StationProcedure

TARGET_SUITE_SECONDS = 300.0  # the whole `labctl bench` on a 2-core machine
TARGET_PLOT_FPS = 60.0  # our live curve at 10^6 points


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _row(what: str, unit: str, values: list[float], **extra) -> dict:
    return {"what": what, "unit": unit, **_stats(values), **extra}


def _na_row(what: str, note: str) -> dict:
    """A row without a figure (e.g. a suite that cannot run here)."""
    return {"what": what, "unit": "n/a", "median": None, "min": None, "max": None, "n": 0, "note": note}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import pandas
    import pymeasure
    import pyvisa

    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python "
            f"{platform.python_version()}, pymeasure {pymeasure.__version__}, pyvisa {pyvisa.__version__}, "
            f"numpy {numpy.__version__}, pandas {pandas.__version__}")


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


@dataclass
class Context:
    """One ``labctl bench`` invocation: quick or full, a scratch folder, shared artefacts."""

    quick: bool = False
    workdir: Path | None = None
    protocol_run: Path | None = None  # a completed full-protocol run folder (rehearsal or analysis)
    _own_dir: bool = field(default=False, repr=False)

    def __post_init__(self):
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="labctl-bench-"))
            self._own_dir = True
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def pick(self, full, quick):
        return quick if self.quick else full

    def scratch(self, name: str) -> Path:
        p = self.workdir / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# pipeline: procedure emit -> durable CSV row, ours against pymeasure's Worker
# ---------------------------------------------------------------------------
class SyntheticProcedure(StationProcedure):
    """Emits ``rows`` rows of 8 floats as fast as possible: no instrument I/O.

    The same class runs in our runner and in pymeasure's Worker: the base
    class's ``execute`` emits every row with ``self.emit("results", row)``.
    """

    KIND = "synthetic"
    QUENCH_DETECTION = False
    rows = IntegerParameter("Rows", minimum=1, maximum=100_000_000, default=10_000)
    DATA_COLUMNS = ["Current (A)", "Voltage (V)", "Temperature (K)", "Field (T)", "Radius (m)",
                    "Position (mm)"] + StationProcedure.COMMON_COLUMNS

    def points(self) -> list[dict]:
        return [{"k": k} for k in range(self.rows)]

    def measure(self, point: dict) -> list[dict]:
        k = point["k"]
        x = 0.001 * k
        return [{"Current (A)": x, "Voltage (V)": 1e-6 * x, "Temperature (K)": 6.8 + 1e-4 * x,
                 "Field (T)": 2e-5 * x, "Radius (m)": 0.005, "Position (mm)": 5.0 + 1e-3 * x}]


def _bench_station(interlocks: bool = False):
    """The built-in virtual-lab station, not connected: its real configuration
    (the guard reads it) and clock, no roles, so limit checks, quench checks and
    the safe shutdown are no-ops.  Without ``interlocks`` its interlock rule is
    dropped too, so the guard does nothing and only the pipeline is timed."""
    from labctl.config import load_station
    from labctl.station import Station

    config = load_station(None)
    if not interlocks:
        config = config.model_copy(update={"interlocks": []})
    return Station(config)


def count_data_rows(path: Path) -> int:
    """Data rows of a pymeasure-format CSV (comment lines and the column line excluded)."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.startswith(b"#") and line.strip():
                n += 1
    return max(n - 1, 0)


def _run_ours(station, catalog, n: int, path: Path, step_id: str) -> tuple[float, float]:
    """(wall s, CPU s) of one step of ``n`` rows through our runner, checked."""
    from labctl.runner import RunControl, Runner
    from labctl.stream import LiveStream

    stream = LiveStream()
    seen = [0]

    def viewer(topic, payload):  # a live viewer: the stream must really deliver every row
        if topic == "row":
            seen[0] += 1

    stream.subscribe(viewer)
    runner = Runner(station, catalog, stream, RunControl())
    proc = SyntheticProcedure()
    proc.rows = n
    c0, t0 = time.process_time(), time.perf_counter()
    result = runner.run_step("synthetic", proc, path, step_id)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if result.status != "completed":
        raise RuntimeError(f"our runner: step {result.status}: {result.reason}")
    got = count_data_rows(path)
    if not (result.rows == got == seen[0] == n):
        raise RuntimeError(f"our runner: {n} rows emitted, {result.rows} written, {got} in the file, "
                           f"{seen[0]} streamed")
    if catalog.get(step_id)["status"] != "completed":
        raise RuntimeError("our runner: the catalog does not say completed")
    return elapsed, cpu


def _run_pymeasure(station, n: int, path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the same procedure through pymeasure's Worker, checked."""
    from pymeasure.experiment import Results, Worker

    proc = SyntheticProcedure()
    proc.rows = n
    proc.station = station
    if path.exists():
        path.unlink()
    c0, t0 = time.process_time(), time.perf_counter()
    results = Results(proc, str(path))  # writes the header, as our StepWriter does
    worker = Worker(results)
    worker.start()
    # Worker.join() waits at most ~0.1 s and then *stops* the worker; wait for the
    # thread itself: its run() ends with recorder.stop(), which closes the CSV file.
    threading.Thread.join(worker)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if worker.recorder is None or worker.recorder._thread is not None:
        raise RuntimeError("pymeasure: the recorder did not start or is still running after the worker ended")
    if proc.status != proc.FINISHED:
        raise RuntimeError(f"pymeasure Worker ended with status {proc.status}")
    got = count_data_rows(path)
    if got != n:
        raise RuntimeError(f"pymeasure Worker: {n} rows emitted but {got} in the file")
    return elapsed, cpu


def _format_cost(n: int) -> float:
    """Seconds per row of pymeasure's CSVFormatter alone (both pipelines format with it)."""
    from pymeasure.experiment.results import CSVFormatter

    proc = SyntheticProcedure()
    formatter = CSVFormatter(columns=proc.DATA_COLUMNS)
    row = {c: 0.001 * k for k, c in enumerate(proc.DATA_COLUMNS)}
    t0 = time.perf_counter()
    for _ in range(n):
        formatter.format(row)
    return (time.perf_counter() - t0) / n


def suite_pipeline(ctx: Context | None = None) -> list[dict]:
    """Rows/s from procedure emit to a flushed CSV row: our runner vs pymeasure's Worker."""
    ctx = ctx or Context()
    from labctl.catalog import Catalog

    n = ctx.pick(20_000, 2_000)
    repeats = ctx.pick(7, 2)
    work = ctx.scratch("pipeline")
    plain, guarded = _bench_station(), _bench_station(interlocks=True)
    catalog = Catalog(work)
    runs = {
        "ours": lambda k: _run_ours(plain, catalog, n, work / "ours.csv", f"ours-{k}"),
        "pymeasure": lambda k: _run_pymeasure(plain, n, work / "pymeasure.csv"),
        "interlock": lambda k: _run_ours(guarded, catalog, n, work / "ours-interlock.csv", f"interlock-{k}"),
    }
    # one untimed warm-up of each (imports, caches), then the three sides in rotating order
    _run_ours(plain, catalog, min(n, 1000), work / "warm-ours.csv", "warm")
    _run_pymeasure(plain, min(n, 1000), work / "warm-pymeasure.csv")
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    order = list(runs)
    for k in range(repeats):
        gc.collect()
        for side in order[k % 3:] + order[:k % 3]:
            w, c = runs[side](k)
            wall[side].append(w)
            cpu[side].append(c)

    def pair(side: str, d: dict) -> list[float]:  # per repetition: our rows/s over pymeasure's
        return [p / o for p, o in zip(d["pymeasure"], d[side])]

    note = ("Each run: a fresh step of a synthetic procedure (procedures.base.StationProcedure subclass) "
            "emitting rows of 8 floats with no instrument I/O on the built-in virtual-lab station, not "
            "connected (no roles: limit, quench and shutdown checks are no-ops; the station's interlock "
            "rule is dropped except in the 'interlock' row). Timed from the start of the step (header "
            "written) until every row is in the file: ours until run_step returns (CSV and .points "
            "flushed per row, catalog finished, every row published to a live-stream subscriber); "
            "pymeasure from Results() until the Worker thread has ended (its Recorder stopped and the file "
            "closed; Worker.join() would stop the worker after ~0.1 s, so the thread is joined directly). "
            "Rows counted in the file after each run. Sides in rotating order; ratios are per repetition. "
            "CPU = process time of all threads.")
    return [
        _row(f"ours: Runner.run_step, {n} rows (flush per row, .points file, catalog, live stream)",
             "rows/s", [n / t for t in wall["ours"]], note=note),
        _row(f"pymeasure: Worker + Results/Recorder, {n} rows (same procedure)", "rows/s",
             [n / t for t in wall["pymeasure"]]),
        _row("ours, per row", "µs/row", [1e6 * t / n for t in wall["ours"]]),
        _row("pymeasure, per row", "µs/row", [1e6 * t / n for t in wall["pymeasure"]]),
        _row("ratio ours / pymeasure (rows/s)", "×", pair("ours", wall), key="ratio"),
        _row("ratio ours / pymeasure by CPU time", "×", pair("ours", cpu)),
        _row("ours with the sim station's interlock rule evaluated at every point, per row", "µs/row",
             [1e6 * t / n for t in wall["interlock"]]),
        _row("ratio ours-with-interlock / pymeasure (rows/s)", "×", pair("interlock", wall)),
        _row("CSV formatting alone (pymeasure CSVFormatter.format, used by both)", "µs/row",
             [1e6 * _format_cost(ctx.pick(20_000, 2_000)) for _ in range(3)]),
    ]


# ---------------------------------------------------------------------------
# transports
# ---------------------------------------------------------------------------
def bench_transports(queries: int = 2000, repeats: int = 5) -> list[dict]:
    """Queries/s of the stock LakeShore425 driver (RDGFIELD?) per transport."""
    from pymeasure.instruments.lakeshore import LakeShore425

    from sim_instruments.lab import VirtualLab
    from sim_instruments.server import LabServer

    rows = []
    lab = VirtualLab("Pb", "meissner", speedup="max", seed=0)  # no virtual time passes: pure transport cost
    server = LabServer(lab, base_port=0).start()
    try:
        for name, address, library in [
            ("in-process (pyvisa VisaLibraryBase)", "TCPIP0::127.0.0.1::5603::SOCKET", lab.visa_library),
            ("TCP loopback (pyvisa-py socket)", server.resources["gaussmeter"], "@py"),
        ]:
            g = LakeShore425(address, visa_library=library, read_termination="\r\n", write_termination="\r\n")
            _ = g.field  # warm up
            rates = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(queries):
                    _ = g.field
                rates.append(queries / (time.perf_counter() - t0))
            g.adapter.close()
            rows.append({"what": f"stock LakeShore425.field, {name}", "unit": "queries/s", **_stats(rates)})
    finally:
        server.stop()
    return rows


def suite_transports(ctx: Context | None = None) -> list[dict]:
    ctx = ctx or Context()
    return bench_transports(queries=ctx.pick(2000, 200), repeats=ctx.pick(5, 2))


# ---------------------------------------------------------------------------
# rehearsal: the full protocol on the virtual lab
# ---------------------------------------------------------------------------
def run_protocol(data_dir: Path, seed: int = 4) -> tuple[float, float, dict]:
    """One full protocol on the built-in virtual lab: (wall s, virtual s, final state)."""
    from labctl.catalog import Catalog
    from labctl.protocol import STEPS, Plan, execute
    from labctl.runner import RunControl, Runner
    from labctl.station import Station
    from labctl.stream import LiveStream

    station = Station.from_file(None, seed=seed)
    runner = Runner(station, Catalog(data_dir), LiveStream(), RunControl())
    with station.session():
        v0 = station.clock.now()
        t0 = time.perf_counter()
        state = execute(station, Plan(list(STEPS)), data_dir, runner)
        wall = time.perf_counter() - t0
        virtual = station.clock.now() - v0
    if state.get("status") != "completed":
        raise RuntimeError(f"protocol rehearsal {state.get('status')}: {state.get('reason')}")
    return wall, virtual, state


def suite_rehearsal(ctx: Context | None = None) -> list[dict]:
    """Wall time of the whole protocol on the virtual lab and the speed-up over real time."""
    ctx = ctx or Context()
    repeats = ctx.pick(3, 1)
    walls, virtuals, speedups = [], [], []
    for k in range(repeats):
        wall, virtual, state = run_protocol(ctx.scratch(f"rehearsal-{k}"))
        walls.append(wall)
        virtuals.append(virtual)
        speedups.append(virtual / wall)
        ctx.protocol_run = Path(state["path"])
    note = ("labctl.protocol.execute (R(T), V-I, normal control, radial field, radial scan, residual) on "
            "the built-in virtual lab (sim.toml, speedup max, seed 4) with a fresh data folder; timed "
            "from the start of execute to its return (station connected before, shut down after). "
            "Virtual time is the station clock's advance over the same interval.")
    return [
        _row("full protocol, wall time", "s", walls, note=note),
        _row("full protocol, virtual (experiment) time", "h", [v / 3600 for v in virtuals]),
        _row("speed-up: virtual time / wall time", "×", speedups),
    ]


def protocol_run(ctx: Context) -> Path:
    """A completed full-protocol run folder: the rehearsal's, or one made now."""
    if ctx.protocol_run is None or not ctx.protocol_run.is_dir():
        _wall, _virtual, state = run_protocol(ctx.scratch("protocol"))
        ctx.protocol_run = Path(state["path"])
    return ctx.protocol_run


# ---------------------------------------------------------------------------
# loading: a 10^6-row run file
# ---------------------------------------------------------------------------
def write_big_radial_file(path: Path, rows: int, seed: int = 0) -> Path:
    """A pymeasure-format radial-field run file of ``rows`` rows: pymeasure's own
    header for procedures.radial_field.RadialField (what our StepWriter writes)
    and rows with the same columns and number formatting (shortest repr)."""
    from pymeasure.experiment import Results

    from procedures.radial_field import RadialField

    path = Path(path)
    if path.exists():
        path.unlink()
    proc = RadialField()
    proc.ic = 400.0
    Results(proc, str(path))  # header + column line, exactly as StepWriter
    block = min(rows, 100_000)  # formatting is the slow part: format one block, write it repeatedly
    text = _radial_rows(block, seed)
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.writelines([text] * (rows // block))
        rest = rows % block
        if rest:
            f.write(_radial_rows(rest, seed + 1))
    return path


def _radial_rows(rows: int, seed: int) -> str:
    import numpy as np
    import pandas as pd

    from procedures.radial_field import RadialField

    rng = np.random.default_rng(seed)
    k = np.arange(rows)
    radii = np.array([0.005, 0.00707, 0.01])
    point = k // 3
    current = np.round(80.0 * (point % 5), 2)
    radius = radii[k % 3]
    field_t = 1.2566e-6 * current / (2 * np.pi * 0.01) * (radius / 0.01) ** 2 + rng.normal(0, 5e-7, rows)
    frame = pd.DataFrame({
        "Repeat": 1 + point // 5,
        "Current (A)": current,
        "Radius (m)": radius,
        "Field (T)": field_t,
        "Field std (T)": np.abs(rng.normal(8e-7, 2e-7, rows)),
        "Temperature (K)": np.round(6.8 + rng.normal(0, 8e-4, rows), 4),
        "Polarity": (current > 0).astype(int),
        "Position (mm)": np.round(radius * 1e3 + rng.normal(0, 3e-4, rows), 5),
        "Readings": np.full(rows, 10),
        "Current read (A)": np.round(current + rng.normal(0, 0.005, rows), 3),
        "Point": point,
        "Time (s)": 36.4 * point + 17.8,
    })
    frame = frame[RadialField.DATA_COLUMNS]  # the procedure's own column order
    return frame.to_csv(header=False, index=False, lineterminator="\n")


def load_ours(path: Path):
    from labctl.analysis import load

    return load(path).frame


def load_pymeasure(path: Path):
    from pymeasure.experiment import Results

    return Results.load(str(path)).data


def suite_loading(ctx: Context | None = None) -> list[dict]:
    """Seconds to load a 10^6-row run file into a DataFrame: ours vs pymeasure's Results.load().data."""
    from procedures.radial_field import RadialField

    ctx = ctx or Context()
    rows = ctx.pick(1_000_000, 20_000)
    repeats = ctx.pick(5, 2)
    work = ctx.scratch("loading")
    warm = write_big_radial_file(work / "02-radial-field.csv", 2_000)
    load_ours(warm), load_pymeasure(warm)  # untimed: imports (scipy, the procedure module), caches
    path = write_big_radial_file(work / "01-radial-field.csv", rows)
    mb = path.stat().st_size / 1e6
    wall = {"ours": [], "pymeasure": []}
    cpu = {"ours": [], "pymeasure": []}
    for k in range(repeats):
        for side in (("ours", "pymeasure") if k % 2 == 0 else ("pymeasure", "ours")):
            gc.collect()
            fn = load_ours if side == "ours" else load_pymeasure
            c0, t0 = time.process_time(), time.perf_counter()
            frame = fn(path)
            wall[side].append(time.perf_counter() - t0)
            cpu[side].append(time.process_time() - c0)
            width = len(RadialField.DATA_COLUMNS)
            if frame.shape != (rows, width):
                raise RuntimeError(f"loading: the {side} loader gave {frame.shape}, not ({rows}, {width})")
            del frame
    note = (f"One pymeasure-format radial-field run file ({rows} rows × {len(RadialField.DATA_COLUMNS)} columns, {mb:.0f} MB; RadialField's "
            "header as Results writes it, rows formatted as our StepWriter does), loaded once untimed "
            "beforehand at 2000 rows. Ours = labctl.analysis.load(path).frame (header parsed as text, "
            "nothing imported, units to SI, bad-row checks, kind from the allow-list); pymeasure = "
            "Results.load(path).data (imports the procedure named in the header, reads in 1000-row chunks). "
            "Alternating order; ratios per repetition.")
    return [
        _row(f"ours: labctl.analysis.load, {rows} rows", "s", wall["ours"], note=note),
        _row(f"pymeasure: Results.load(path).data, {rows} rows", "s", wall["pymeasure"]),
        _row("ours, rows per second", "rows/s", [rows / t for t in wall["ours"]]),
        _row("ratio pymeasure time / our time (> 1: ours faster)", "×",
             [p / o for p, o in zip(wall["pymeasure"], wall["ours"])], key="ratio"),
        _row("same ratio by CPU time", "×", [p / o for p, o in zip(cpu["pymeasure"], cpu["ours"])]),
    ]


# ---------------------------------------------------------------------------
# analysis: the radial-field model comparison
# ---------------------------------------------------------------------------
def suite_analysis(ctx: Context | None = None) -> list[dict]:
    """Seconds for analyze(<full protocol's radial-field file>, kind="radial-field")."""
    ctx = ctx or Context()
    from labctl.analysis import analyze

    run = protocol_run(ctx)
    files = sorted(run.glob("*-radial-field.csv"))
    if not files:
        raise RuntimeError(f"{run}: no radial-field step file")
    path = files[0]
    repeats = ctx.pick(7, 2)
    result = analyze(str(path), kind="radial-field")  # warm-up (imports, caches)
    if result.get("error") or not result.get("models"):
        raise RuntimeError(f"analysis of {path.name} gave no model comparison: {result.get('message')}")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        analyze(str(path), kind="radial-field")
        times.append(time.perf_counter() - t0)
    n_rows = count_data_rows(path)
    note = (f"labctl.analysis.analyze on the radial-field step of a full protocol run ({path.name}, {n_rows} "
            "rows): load, offset removal, pooling, ratios, exponent, all five field models fitted and "
            "ranked, outer-field check. One untimed warm-up first.")
    return [_row(f"analyze(radial-field, {n_rows} rows), model comparison included", "s", times, note=note)]


# ---------------------------------------------------------------------------
# plot: live curve redraw (labctl.gui.benchplot, written with the GUI)
# ---------------------------------------------------------------------------
def suite_plot(ctx: Context | None = None) -> list[dict]:
    """Our live curve against pymeasure's ResultsCurve redraw time (labctl.gui.benchplot)."""
    ctx = ctx or Context()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
    try:
        from labctl.gui.benchplot import bench_live_plot
    except ImportError as e:  # module not written yet, or Qt missing: say so, do not crash
        return [_na_row("live plot redraw (labctl.gui.benchplot)",
                        f"The plot benchmark is not available here: {type(e).__name__}: {e}.")]
    if ctx.quick:
        return list(bench_live_plot(sizes=(10_000, 100_000), repeats=2))
    return list(bench_live_plot(sizes=(10_000, 100_000, 1_000_000), repeats=5))


SUITES = {
    "pipeline": suite_pipeline,
    "transports": suite_transports,
    "rehearsal": suite_rehearsal,
    "loading": suite_loading,
    "analysis": suite_analysis,
    "plot": suite_plot,
    # issue 16: archive rows/s (PostgreSQL beside SQLite) and live-page latency (labctl.service.bench)
    "lab": lambda ctx=None: __import__("labctl.service.bench", fromlist=["suite_lab"]).suite_lab(ctx),
}


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    met: bool | None  # None: not assessed in this run
    figure: str
    reason: str = ""


def _find(rows: list[dict], key: str) -> dict | None:
    return next((r for r in rows if r.get("key") == key and r.get("median") is not None), None)


def _plot_fps_at_million(rows: list[dict]) -> float | None:
    """Our frames/s at 10^6 points from the plot rows: a frames/s row if there is
    one, else 1 / (time of one frame)."""
    def is_ours(r):
        text = str(r.get("what", "")).lower()
        return ("ours" in text or "labctl" in text) and "pymeasure" not in text and "ratio" not in text

    def at_million(r):
        for k in ("size", "points", "n_points"):
            if k in r:
                return int(r[k]) == 1_000_000
        text = str(r.get("what", "")).replace(",", "").replace("_", "").replace(" ", "").lower()
        return any(s in text for s in ("1000000", "10⁶", "10^6", "1e6", "1e+06", "1e+6"))

    rates = {"frames/s": 1.0, "fps": 1.0, "frame/s": 1.0, "redraws/s": 1.0, "hz": 1.0}
    per_frame = {"ms": 1e3, "ms/frame": 1e3, "ms/redraw": 1e3, "s": 1.0, "s/frame": 1.0, "µs": 1e6, "us": 1e6}
    mine = [r for r in rows if r.get("median") is not None and is_ours(r) and at_million(r)]
    for r in mine:
        if str(r.get("unit", "")).lower().replace(" ", "") in rates:
            return float(r["median"])
    for r in mine:
        scale = per_frame.get(str(r.get("unit", "")).lower().replace(" ", ""))
        if scale and r["median"] > 0:
            return scale / float(r["median"])
    return None


def assess(results: dict[str, list[dict]], total_s: float, quick: bool, complete: bool) -> list[Target]:
    out = []
    rows = results.get("pipeline")
    if rows is None:
        out.append(Target("pipeline: ours ≥ pymeasure (ratio ≥ 1)", None, "—", "suite not run"))
    else:
        r = _find(rows, "ratio")
        if r is None:
            out.append(Target("pipeline: ours ≥ pymeasure (ratio ≥ 1)", False, "—", "no ratio measured"))
        else:
            ours = next((x for x in rows if x["unit"] == "µs/row" and x["what"].startswith("ours")), None)
            theirs = next((x for x in rows if x["unit"] == "µs/row" and x["what"].startswith("pymeasure")), None)
            met = r["median"] >= 1.0
            reason = ""
            if not met and ours and theirs:
                reason = (f"ours {ours['median']:.1f} µs/row against pymeasure {theirs['median']:.1f} µs/row; "
                          "ours also writes the .points resume file and flushes it per point, publishes each "
                          "row to the live stream and records the step in the catalog")
            out.append(Target("pipeline: ours ≥ pymeasure (ratio ≥ 1)", met,
                              f"{r['median']:.3g}× ({r['min']:.3g}–{r['max']:.3g})", reason))
    rows = results.get("plot")
    name = f"plot: our live curve ≥ {TARGET_PLOT_FPS:g} frames/s at 10⁶ points"
    if rows is None:
        out.append(Target(name, None, "—", "suite not run"))
    elif all(r.get("median") is None for r in rows):
        out.append(Target(name, None, "—", "the plot benchmark is not available (see the plot section)"))
    else:
        fps = _plot_fps_at_million(rows)
        if fps is None:
            reason = "no row for our curve at 10⁶ points" + (" (--quick stops at 10⁵)" if quick else "")
            out.append(Target(name, None if quick else False, "—", reason))
        else:
            met = fps >= TARGET_PLOT_FPS
            out.append(Target(name, met, f"{fps:.3g} frames/s",
                              "" if met else f"one redraw takes {1000 / fps:.1f} ms > {1000 / TARGET_PLOT_FPS:.1f} ms"))
    name = f"full suite < {TARGET_SUITE_SECONDS / 60:g} min"
    if quick or not complete:
        out.append(Target(name, None, f"{total_s:.0f} s", "not assessed: " + ("--quick" if quick else "not all suites ran")))
    else:
        met = total_s < TARGET_SUITE_SECONDS
        out.append(Target(name, met, f"{total_s:.0f} s",
                          "" if met else f"{total_s:.0f} s ≥ {TARGET_SUITE_SECONDS:.0f} s; see the per-suite times"))
    return out


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------
def _fmt(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}"


def render(results: dict[str, list[dict]], targets: list[Target] | None = None, total_s: float | None = None,
           suite_s: dict[str, float] | None = None, quick: bool = False, load: str | None = None) -> str:
    lines = ["# Benchmarks\n",
             f"Latest `labctl bench{' --quick' if quick else ''}` run: {datetime.now().isoformat(timespec='seconds')}  ",
             f"Machine: {machine()}  ",
             f"Load average at the start (1, 5, 15 min): {load or load_average()}\n",
             ("Each figure is the median of several repetitions (min – max beside it), measured in one run; "
              "each comparison is a ratio of the two sides measured in the same run.\n")]
    if quick:
        lines.append("**--quick: fewer repetitions and smaller sizes, a smoke test; not for comparison.**\n")
    if targets:
        lines.append("## Targets\n")
        lines.append("| target | figure | met | reason |")
        lines.append("|---|---|---|---|")
        for t in targets:
            met = "not assessed" if t.met is None else ("met" if t.met else "**not met**")
            lines.append(f"| {t.name} | {t.figure} | {met} | {t.reason} |")
        lines.append("")
    if total_s is not None:
        per = ", ".join(f"{k} {v:.1f} s" for k, v in (suite_s or {}).items())
        lines.append(f"Total wall time of the suite: {total_s:.1f} s ({per})\n")
    for suite, rows in results.items():
        lines.append(f"## {suite}\n")
        lines.append("| what | median | min – max | unit | runs |")
        lines.append("|---|---:|---:|---|---:|")
        for r in rows:
            rng = "—" if r.get("min") is None else f"{_fmt(r['min'])} – {_fmt(r['max'])}"
            lines.append(f"| {r['what']} | {_fmt(r.get('median'))} | {rng} | {r.get('unit', '')} | {r.get('n', 0)} |")
        notes = []
        for r in rows:
            if r.get("note") and r["note"] not in notes:
                notes.append(r["note"])
        for note in notes:
            lines.append(f"\n{note}")
        lines.append("")
    return "\n".join(lines)


def run_suites(names: list[str], quick: bool = False, workdir: Path | None = None, log=None):
    """Run the named suites in one context; a failing suite becomes an error row, never a crash."""
    ctx = Context(quick=quick, workdir=workdir)
    results: dict[str, list[dict]] = {}
    suite_s: dict[str, float] = {}
    failed = []
    t_all = time.perf_counter()
    try:
        for name in names:
            if log:
                log(f"running {name} ...")
            t0 = time.perf_counter()
            try:
                results[name] = list(SUITES[name](ctx))
            except Exception as e:  # noqa: BLE001 - record, go on with the other suites
                failed.append(name)
                tb = traceback.format_exc(limit=4).strip().splitlines()
                results[name] = [_na_row(f"{name}: FAILED", f"The {name} suite failed: {type(e).__name__}: {e}")]
                if log:
                    log("\n".join(tb))
            suite_s[name] = time.perf_counter() - t0
            if log:
                log(f"  {name}: {suite_s[name]:.1f} s")
    finally:
        ctx.cleanup()
    total = time.perf_counter() - t_all
    return results, suite_s, total, failed


def _bench(args) -> int:
    from labctl.errors import ConfigError

    names = args.suite or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITES)}")
    names = list(dict.fromkeys(names))
    load = load_average()
    results, suite_s, total, failed = run_suites(
        names, quick=args.quick, log=lambda s: print(s, file=sys.stderr, flush=True))
    targets = assess(results, total, args.quick, complete=set(names) == set(SUITES))
    text = render(results, targets, total, suite_s, quick=args.quick, load=load)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written to {args.output}", file=sys.stderr)
    if failed:
        print(f"labctl: error: benchmark suite(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (median of repeats, side by side with pymeasure)")
    p.add_argument("suite", nargs="*", help=f"which: {', '.join(SUITES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (a smoke test)")
    p.add_argument("--output", default="docs/benchmarks.md", help="markdown file to write (default docs/benchmarks.md)")
    p.set_defaults(func=_bench)
