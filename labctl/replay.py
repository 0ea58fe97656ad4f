"""Replay a recorded run (or any data file) through the live stream.

``replay(path, stream, speed)`` publishes the same topics the runner publishes
while acquiring — ``step`` (running) → ``row`` ... with ``progress`` → ``step``
(completed) — so the GUI and the CLI progress bar cannot tell a replay from a
live run (the step payloads carry ``"replay": True``).  Timing follows the
recorded ``Time (s)`` column (virtual seconds since the step started) divided by
``speed``; ``speed=None`` streams as fast as possible; ``speed="auto"`` (the default
of ``labctl replay`` and the GUI) picks the factor that plays the whole run in about
:data:`DEFAULT_DURATION` seconds (a 3 h protocol in a minute; never slower than 1x).
Files without a time column are paced at :data:`DEFAULT_ROW_INTERVAL` per row.
``progress`` events carry the step's ``percent`` and, for the whole replay,
``overall`` (percent of the wall time), ``eta_s`` (wall seconds left) and ``speed``.

Loading goes through :func:`labctl.analysis.load` (procedure names are mapped
through an allow-list, never imported), so foreign files work with the same
options as ``labctl analyze`` (``columns``, ``mapping``, ``skip_rows``, ``delimiter``).
Rows of our own files carry the recorded column names and values (as the runner
streamed them, e.g. ``Position (mm)``); rows of foreign files carry the loader's
canonical SI names (``Resistance (ohm)`` from a ``mohm`` column).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import ConfigError

TIME_COLUMN = "Time (s)"
DEFAULT_ROW_INTERVAL = 0.1  # s per row (at 1x) for files without a time column
WAIT_SLICE = 0.1  # s: waits are cut into slices so that a stop request is seen quickly
LOAD_OPTIONS = ("kind", "mapping", "columns", "skip_rows", "delimiter")
DEFAULT_DURATION = 60.0  # s: speed="auto" replays a whole run in about this long


@dataclass
class ReplayStep:
    name: str  # step name as the runner calls it (rt, vi, normal-control, ...) or the file's stem
    kind: str | None  # procedure kind (normal-control for the control step)
    path: Path
    rows: list[dict]
    times: list[float] | None  # recorded seconds since the step started, per row (None: no time column)
    status: str = "completed"  # as recorded in parameters.json (a replay reproduces it)
    reason: str = ""
    error: str | None = None  # the file could not be loaded


def _py(value):
    """numpy scalars -> Python numbers, so rows look like the runner's."""
    if hasattr(value, "item"):
        value = value.item()
    return value


def _recorded_columns(ds) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Our own files: the column names as recorded (what the runner streamed), and for columns the loader
    converted to SI (e.g. 'Position (mm)') the (factor, offset) to undo it.  Foreign files: SI names."""
    from labctl.analysis import units as U
    from labctl.analysis.loading import PROCEDURE_KINDS

    columns = list(ds.frame.columns)
    if ds.procedure not in PROCEDURE_KINDS:
        return columns, {}
    names, undo = [], {}
    for col in columns:
        src = ds.source_columns.get(col, col)
        if src != col and not src.endswith(")") and "#" in col:
            src = col  # a duplicate column kept as 'Name (unit) #2'
        if src != col:
            try:
                _dim, factor, offset = U.lookup_unit(U.split_column_name(src)[1])
                undo[src] = (factor, offset)
            except Exception:  # noqa: BLE001 - unknown unit: keep the loaded (SI) name and values
                src = col
        names.append(src)
    if len(set(names)) != len(names):
        return columns, {}
    return names, undo


def _rows_of(ds) -> tuple[list[dict], list[float] | None]:
    frame = ds.frame
    names, undo = _recorded_columns(ds)
    rows = []
    for values in frame.itertuples(index=False, name=None):
        row = {}
        for name, value in zip(names, values):
            value = _py(value)
            if name in undo and isinstance(value, float):
                factor, offset = undo[name]
                value = (value - offset) / factor
            row[name] = value
        rows.append(row)
    times = None
    if TIME_COLUMN in frame.columns:
        col = frame[TIME_COLUMN].to_numpy(dtype=float)
        times = [float(t) if math.isfinite(t) else float("nan") for t in col]
    return rows, times


def load_steps(path, **options) -> list[ReplayStep]:
    """The steps to replay: every data file of a run folder in order, or the one file."""
    from labctl.analysis import LoadError, load
    from labctl.analysis.loading import step_kind_hint

    path = Path(path)
    opts = {k: v for k, v in options.items() if k in LOAD_OPTIONS and v is not None}
    if not path.exists():
        raise ConfigError(f"{path}: no such run folder or file")
    if path.is_file():
        hint = step_kind_hint(path.name)
        try:
            ds = load(path, kind_hint=hint, **opts)
        except LoadError as exc:
            raise ConfigError(str(exc)) from None
        rows, times = _rows_of(ds)
        kind = "normal-control" if ds.control else ds.kind
        return [ReplayStep(name=hint or path.stem, kind=kind, path=path, rows=rows, times=times)]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv"))
    if not files:
        raise ConfigError(f"{path}: no data files (*.csv) to replay")
    recorded: dict[str, dict] = {}
    state_file = path / "parameters.json"
    if state_file.is_file():
        import json

        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            recorded = {info.get("file"): info for info in (state.get("steps") or {}).values()}
        except (OSError, ValueError):
            recorded = {}
    opts.pop("kind", None)  # a run folder's steps know their kinds
    steps = []
    for f in files:
        hint = step_kind_hint(f.name)
        info = recorded.get(f.name, {})
        try:
            ds = load(f, kind_hint=hint, **opts)
        except LoadError as exc:
            steps.append(ReplayStep(name=hint or f.stem, kind=None, path=f, rows=[], times=None, status="failed",
                                    reason=str(exc), error=str(exc)))
            continue
        rows, times = _rows_of(ds)
        kind = "normal-control" if ds.control else ds.kind
        steps.append(ReplayStep(name=hint or f.stem, kind=kind, path=f, rows=rows, times=times,
                                status=info.get("status") or "completed", reason=info.get("reason") or ""))
    return steps


def schedule(times: list[float] | None, n_rows: int, speed: float | None) -> list[float]:
    """Wall-clock seconds to wait before each row: (t_k - t_{k-1}) / speed (the first row: t_0 / speed).

    Recorded times that go backwards or are missing give no wait; ``speed=None`` gives no waits at all.
    """
    if speed is None:
        return [0.0] * n_rows
    if speed <= 0 or not math.isfinite(speed):
        raise ConfigError(f"replay speed must be a positive number (got {speed})")
    if times is None:
        return [DEFAULT_ROW_INTERVAL / speed] * n_rows
    waits = []
    previous = 0.0
    for t in times[:n_rows]:
        if not math.isfinite(t):
            waits.append(0.0)
            continue
        waits.append(max(0.0, t - previous) / speed)
        previous = max(previous, t)
    return waits


def recorded_duration(steps: list[ReplayStep]) -> float:
    """Recorded seconds of the steps (their last finite 'Time (s)', or the default row interval per row)."""
    total = 0.0
    for st in steps:
        if st.error or not st.rows:
            continue
        finite = [t for t in (st.times or []) if math.isfinite(t)]
        total += max(finite) if finite else DEFAULT_ROW_INTERVAL * len(st.rows)
    return total


def auto_speed(steps: list[ReplayStep], target: float | None = None) -> float:
    """The replay factor that plays ``steps`` in about ``target`` seconds (default :data:`DEFAULT_DURATION`;
    1x for short recordings)."""
    return max(1.0, recorded_duration(steps) / (target or DEFAULT_DURATION))


def resolve_speed(speed, steps: list[ReplayStep]) -> float | None:
    if isinstance(speed, str):
        if speed.lower() == "auto":
            return auto_speed(steps)
        if speed.lower() == "max":
            return None
        try:
            speed = float(speed)
        except ValueError:
            raise ConfigError(f"replay speed {speed!r}: a number, 'auto' or 'max'") from None
    return speed


def _hms(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _wait(seconds: float, should_stop: Callable[[], bool], sleep: Callable[[float], None]) -> bool:
    """Sleep ``seconds`` in short slices; False as soon as a stop is requested."""
    remaining = seconds
    while remaining > 1e-12:
        if should_stop():
            return False
        dt = min(WAIT_SLICE, remaining)
        sleep(dt)
        remaining -= dt
    return not should_stop()


def replay(path, stream, speed: float | str | None = "auto", should_stop: Callable[[], bool] = lambda: False, *,
           sleep: Callable[[float], None] | None = None, steps: list[ReplayStep] | None = None, **options) -> int:
    """Stream a run folder's (or one file's) rows through ``stream``; returns the number of rows streamed.

    ``speed``: replay factor (10 = ten times faster than recorded), ``None`` = no waiting,
    ``"auto"`` = the whole run in about a minute (:func:`auto_speed`).
    ``should_stop``: polled between rows and during waits (GUI stop button); the step
    then ends with status ``aborted``.  ``sleep``: the wait function (tests inject one).
    ``options``: loading options for foreign files (``kind``, ``mapping``, ``columns``,
    ``skip_rows``, ``delimiter``).  Ctrl-C (KeyboardInterrupt) during a wait ends the
    current step as ``aborted`` and propagates.
    """
    sleep = sleep or time.sleep
    if steps is None:
        steps = load_steps(path, **options)
    speed = resolve_speed(speed, steps)
    all_waits = {id(st): schedule(st.times, len(st.rows), speed) for st in steps if not st.error}
    wall_total = sum(sum(w) for w in all_waits.values())
    wall_done = 0.0
    total = 0
    for st in steps:
        base = {"step": st.name, "kind": st.kind, "path": str(st.path), "replay": True}
        if st.error:
            stream.publish("step", {**base, "status": "failed", "reason": st.error, "rows": 0})
            continue
        stream.publish("step", {**base, "status": "running"})
        waits = all_waits[id(st)]
        n = len(st.rows)
        sent = 0
        last_percent = -1
        status, reason = st.status, st.reason
        t0 = time.perf_counter()
        try:
            for k, (row, wait) in enumerate(zip(st.rows, waits)):
                if should_stop() or (wait > 0 and not _wait(wait, should_stop, sleep)):
                    status, reason = "aborted", "replay stopped"
                    break
                stream.publish("row", {"step": st.name, "row": dict(row)})
                sent += 1
                wall_done += wait
                percent = int(100 * (k + 1) / n)
                if percent != last_percent:
                    overall = 100.0 * wall_done / wall_total if wall_total > 0 else 100.0 * (total + sent) / max(
                        1, sum(len(s.rows) for s in steps))
                    stream.publish("progress", {"step": st.name, "percent": float(100.0 * (k + 1) / n),
                                                "overall": overall, "eta_s": max(0.0, wall_total - wall_done),
                                                "speed": speed})
                    last_percent = percent
        except KeyboardInterrupt:
            status, reason = "aborted", "replay interrupted (Ctrl-C)"
            raise
        finally:
            total += sent
            stream.publish("step", {**base, "status": status, "reason": reason, "rows": sent,
                                    "wall_s": time.perf_counter() - t0})
        if status == "aborted":
            break
    return total


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _cli(args) -> int:
    import sys
    import warnings

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from labctl.report import data_options
    from labctl.stream import LiveStream

    if args.max:
        speed = None
    elif args.speed is None:
        speed = "auto"
    else:
        speed = args.speed
        if not (speed > 0 and math.isfinite(speed)):
            raise ConfigError(f"--speed {args.speed}: must be a positive number (10 = ten times faster)")
    opts = data_options(args)
    load_opts = {k: opts[k] for k in ("mapping", "columns", "skip_rows", "delimiter") if k in opts}
    if not Path(args.path).exists():  # a run id or 'latest' in the data home
        from labctl.report import resolve_run

        args.path = str(resolve_run(args.path, getattr(args, "data_dir", None)))
    steps = load_steps(args.path, kind=args.kind, **load_opts)
    speed = resolve_speed(speed, steps)
    stream = LiveStream()
    console = Console(highlight=False, stderr=False)
    progress = None
    if not args.quiet:
        recorded = recorded_duration(steps)
        pace = ("as fast as possible" if speed is None else
                f"at {speed:.3g}× (about {_hms(recorded / speed)})")
        console.print(f"replaying {len(steps)} step(s), {sum(len(st.rows) for st in steps)} rows, recorded over "
                      f"{_hms(recorded)}, {pace}" + ("; --speed N or --max to change" if args.speed is None
                                                     and not args.max else ""), soft_wrap=True)
        progress = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                            TextColumn("{task.fields[eta]}"), console=console)
        tasks: dict[str, int] = {}
        sizes = {st.name: len(st.rows) for st in steps}
        overall = progress.add_task("whole run", total=100.0, unit="%", eta="")

        def on_event(topic, payload):
            if topic == "progress" and "overall" in payload:
                eta = payload.get("eta_s")
                progress.update(overall, completed=min(100.0, payload["overall"]),
                                eta=f"ETA {_hms(eta)}" if eta is not None and speed is not None else "")
            if topic == "step":
                name = payload["step"]
                if payload["status"] == "running":
                    tasks[name] = progress.add_task(f"{name} (replay)", total=max(sizes.get(name, 1), 1),
                                                    unit="rows", eta="")
                elif name in tasks:
                    colour = "green" if payload["status"] == "completed" else "red"
                    progress.update(tasks[name], description=f"[{colour}]{name} {payload['status']}")
                else:
                    console.print(f"[red]{name}: {payload['status']}: {payload.get('reason', '')}[/red]")
            elif topic == "row" and payload["step"] in tasks:
                progress.advance(tasks[payload["step"]], 1)

        stream.subscribe(on_event)
        progress.start()
    rows = 0
    counter = {"rows": 0}
    stream.subscribe(lambda topic, payload: counter.__setitem__("rows", counter["rows"] + (topic == "row")))
    try:
        rows = replay(args.path, stream, speed, steps=steps)
        if progress is not None:
            progress.update(overall, completed=100.0, eta="")
    except KeyboardInterrupt:
        if progress:
            progress.stop()
        print(f"labctl: replay interrupted after {counter['rows']} row(s)", file=sys.stderr)
        return 1
    finally:
        if progress and progress.live.is_started:
            progress.stop()
    if args.quiet:
        print(f"replayed {rows} row(s) from {args.path}")
        return 0
    from labctl.analysis import analyze, summary_text

    analysis_opts = {k: v for k, v in opts.items() if k in ("tap_spacing", "sample_radius")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = analyze(args.path, kind=args.kind if Path(args.path).is_file() else None,
                             **load_opts, **analysis_opts)
        print(summary_text(result))
    except Exception as exc:  # noqa: BLE001 - the replay itself succeeded; the summary is a bonus
        print(f"labctl: warning: no analysis summary: {exc}", file=sys.stderr)
    return 0


def register(sub) -> None:
    import argparse

    from labctl.report import add_data_options

    p = sub.add_parser(
        "replay", help="replay a recorded run or a data file through the live stream (progress, GUI)",
        description="Stream the rows of a run folder (every step in order) or of one data file (ours or "
                    "foreign) through the live stream, timed by the recorded 'Time (s)' column divided by "
                    "--speed (default: the factor that plays the whole run in about a minute), with "
                    "progress and ETA, then print the analysis summary. Ctrl-C stops (exit 1).",
        epilog="examples:\n  labctl replay data/examples/protocol_Pb_meissner   # the whole run in about a minute\n"
               "  labctl replay data/examples/protocol_Pb_meissner --speed 1000\n"
               "  labctl replay data/runs/20250101-120000-protocol --max --quiet\n"
               "  labctl replay ybco.txt --columns 'Temperature (K),Resistance (mohm)' --max",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="run folder, data file, run id in the data home, or 'latest'")
    p.add_argument("--data-dir", help="where run ids are looked up (default: $LABCTL_DATA, else the per-user "
                                      "data folder)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, metavar="N",
                      help="replay N times faster than recorded (default: the whole run in about a minute)")
    pace.add_argument("--max", action="store_true", help="no waiting: as fast as possible")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary: one line at the end")
    add_data_options(p)
    p.set_defaults(func=_cli)
