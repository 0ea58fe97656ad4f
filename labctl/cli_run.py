"""``labctl run``, ``labctl runs``, ``labctl resume``: the headless runner's verbs."""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from labctl.errors import ConfigError
from labctl.protocol import STEPS, Plan, execute, load_protocol_file, parse_sets
from labctl.runner import RunControl, Runner

EXIT_FOR_STATUS = {"completed": 0, "aborted": 1, "failed": 1, "interrupted": 1}


def _data_dir(args, station) -> Path:
    return Path(args.data_dir or station.config.station.data_dir)


class _Interaction:
    """Ctrl-C once: pause at the next safe point (current ramped down); Enter resumes;
    Ctrl-C again: abort.  SIGTERM aborts."""

    def __init__(self, control: RunControl, console, quiet: bool):
        self.control = control
        self.console = console
        self.quiet = quiet
        self.previous = {}

    def _sigint(self, signum, frame):
        if self.control.pause_requested or self.control.paused.is_set():
            self.console.print("[red]abort requested: ramping down and stopping[/red]")
            self.control.abort()
            return
        self.console.print("[yellow]pause requested: pausing at the next safe point with the current at zero. "
                           "Press Enter to resume, Ctrl-C again to abort.[/yellow]")
        self.control.pause()
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._wait_enter, daemon=True).start()

    def _wait_enter(self):
        try:
            sys.stdin.readline()
        except Exception:
            return
        if not self.control.aborted:
            self.console.print("resuming")
            self.control.resume()

    def _sigterm(self, signum, frame):
        self.control.abort()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._sigint)
            self.previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._sigterm)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _progress(stream, console, quiet: bool, total_steps: int):
    """A rich progress bar per step and one for the protocol, fed by the live stream."""
    if quiet:
        return None
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description:<22}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[rows]:>6} rows"), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=console, transient=False)
    overall = progress.add_task("protocol" if total_steps > 1 else "run", total=total_steps, rows="")
    tasks: dict[str, int] = {}
    rows: dict[str, int] = {}

    def on_event(topic, payload):
        if topic == "step":
            name = payload["step"]
            if payload["status"] == "running" and name not in tasks:
                tasks[name] = progress.add_task(name, total=100.0, rows=0)
                rows[name] = 0
            elif payload["status"] != "running" and name in tasks:
                colour = "green" if payload["status"] == "completed" else "red"
                progress.update(tasks[name], description=f"[{colour}]{name} {payload['status']}")
                progress.advance(overall, 1)
        elif topic == "row":
            name = payload["step"]
            rows[name] = rows.get(name, 0) + 1
            if name in tasks:
                progress.update(tasks[name], rows=rows[name])
        elif topic == "progress" and payload["step"] in tasks:
            progress.update(tasks[payload["step"]], completed=payload["percent"])

    stream.subscribe(on_event)
    return progress


def _run(args) -> int:
    from rich.console import Console

    from labctl.catalog import Catalog
    from labctl.station import Station
    from labctl.stream import LiveStream
    from labctl.summary import print_summary

    steps = list(STEPS) if args.what == "protocol" else [args.what]
    overrides, options = {}, {}
    if args.protocol:
        overrides, options = load_protocol_file(args.protocol, steps)
    more, more_opts = parse_sets(args.set or [], steps)
    for step, values in more.items():
        overrides.setdefault(step, {}).update(values)
    options.update(more_opts)
    if args.what != "protocol":
        options["scan"] = True  # a single radial-scan run is always run
    station = Station.from_file(args.station, sample=args.sample, field_model=args.field_model, seed=args.seed)
    plan = Plan(steps=steps, overrides=overrides, options=options)
    return _execute(args, station, plan, None, None)


def _execute(args, station, plan, state, run_dir) -> int:
    from rich.console import Console

    from labctl.catalog import Catalog
    from labctl.stream import LiveStream
    from labctl.summary import print_summary

    console = Console(highlight=False, width=max(Console().width, 120))
    stream = LiveStream()
    control = RunControl()
    control.unattended = sys.stdin is None or not sys.stdin.isatty()
    data_dir = _data_dir(args, station)
    catalog = Catalog(data_dir)
    runner = Runner(station, catalog, stream, control)
    progress = _progress(stream, console, args.quiet, len([s for s in plan.steps]))
    with _Interaction(control, console, args.quiet), station.session("end of run"):
        if progress:
            progress.start()
        try:
            final = execute(station, plan, data_dir, runner, state=state, run_dir=run_dir)
        finally:
            if progress:
                progress.stop()
    if not args.quiet:
        print_summary(final, console)
    else:
        print(f"{final['id']} {final['status']} {final['path']}")
    if final["status"] != "completed":
        print(f"labctl: run {final['status']}: {final.get('reason', '')}", file=sys.stderr)
    return EXIT_FOR_STATUS.get(final["status"], 1)


def _runs(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from labctl.catalog import Catalog
    from labctl.config import load_station

    data_dir = Path(args.data_dir or load_station(args.station).station.data_dir)
    if not (data_dir / Catalog.FILENAME).exists():
        rows = []
    else:
        parent = False if args.steps else None
        rows = Catalog(data_dir).list(kind=args.kind, status=args.status, since=args.since, parent=parent)
    if args.json:
        keys = ("id", "kind", "status", "reason", "started", "ended", "path", "sim", "parent", "checksum")
        print(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=1))
        return 0
    table = Table(title=f"runs in {data_dir}")
    for col in ("id", "kind", "status", "started", "ended", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = {"completed": "green", "running": "cyan"}.get(r["status"], "red")
        table.add_row(r["id"], r["kind"], f"[{colour}]{r['status']}[/{colour}]", r["started"] or "",
                      r["ended"] or "", r["reason"] or "")
    Console(highlight=False, width=160).print(table)
    return 0


def _resume(args) -> int:
    from labctl.catalog import Catalog
    from labctl.config import StationConfig, load_station
    from labctl.protocol import RunFolder
    from labctl.station import Station

    data_dir = Path(args.data_dir or load_station(args.station).station.data_dir)
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        run_dir = data_dir / args.run
    if not run_dir.is_dir():
        raise ConfigError(f"no run folder {args.run!r} (looked in {data_dir}); list runs with `labctl runs`")
    folder = RunFolder(run_dir)
    state = folder.read_state()
    catalog = Catalog(run_dir.parent)
    entry = catalog.get(state["id"])
    status = entry["status"] if entry else state.get("status")
    if status == "completed":
        raise ConfigError(f"run {state['id']} is already completed; nothing to resume")
    if status == "running":
        raise ConfigError(f"run {state['id']} is still running in another process (pid {entry.get('pid')})")
    snapshot = json.loads((run_dir / "station.json").read_text(encoding="utf-8"))
    config = StationConfig.model_validate(snapshot["config"])
    station = Station(config)
    p = state["plan"]
    plan = Plan(steps=p["steps"], overrides=p["overrides"], options=p["options"])
    args.data_dir = str(run_dir.parent)
    return _execute(args, station, plan, state, run_dir)


def register(sub) -> None:
    from labctl.materials import PRESETS
    from labctl.physics import FIELD_MODELS

    run = sub.add_parser("run", help="run the whole protocol or one procedure (virtual lab by default)")
    run.add_argument("what", choices=["protocol", *STEPS], help="protocol, or one step")
    run.add_argument("--station", help="station TOML (default: the built-in virtual lab)")
    run.add_argument("--data-dir", help="where run folders go (default: the station's data_dir, data/runs)")
    run.add_argument("--protocol", help="protocol TOML with [protocol] options and per-step tables")
    run.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="parameter override, e.g. --set vi.current_step=2 or --set repeats=5 (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bar; one line at the end")
    run.add_argument("--sample", choices=list(PRESETS), help="virtual lab only: sample preset")
    run.add_argument("--field-model", choices=list(FIELD_MODELS), help="virtual lab only: hidden truth")
    run.add_argument("--seed", type=int, help="virtual lab only: noise seed")
    run.set_defaults(func=_run)

    runs = sub.add_parser("runs", help="list recorded runs from the catalog")
    runs.add_argument("--data-dir")
    runs.add_argument("--station", help="station TOML whose data_dir to use")
    runs.add_argument("--kind", help="filter by kind (protocol, rt, vi, ...)")
    runs.add_argument("--status", choices=["running", "completed", "aborted", "failed", "interrupted"])
    runs.add_argument("--since", help="started on or after this ISO date, e.g. 2026-11-01")
    runs.add_argument("--steps", action="store_true", help="include the steps of each protocol")
    runs.add_argument("--json", action="store_true", help="JSON list on stdout")
    runs.set_defaults(func=_runs)

    resume = sub.add_parser("resume", help="continue an interrupted or aborted run from its last completed point")
    resume.add_argument("run", help="run id (see `labctl runs`) or run folder")
    resume.add_argument("--data-dir")
    resume.add_argument("--station", help="station TOML whose data_dir to use")
    resume.add_argument("--quiet", action="store_true")
    resume.set_defaults(func=_resume)
