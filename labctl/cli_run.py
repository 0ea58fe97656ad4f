"""``labctl run``, ``labctl runs``, ``labctl resume``: the headless runner's verbs.

Signals during a run (handlers only queue the signal; a watcher thread acts on it,
so nothing can interrupt a catalog write or the safe shutdown):

- SIGINT (Ctrl-C) once: pause at the next safe point with the current ramped to
  zero.  On a terminal, Enter resumes; without one (stdin not a TTY) the pause
  lasts ``--pause-timeout`` seconds (``LABCTL_PAUSE_TIMEOUT``, default 300) and
  then the run aborts, unless SIGUSR1 or ``labctl resume RUN`` resumes it.
- SIGINT again: abort (ramp down, record ``aborted``, exit 1).
- SIGTERM, SIGHUP (terminal closed, SSH dropped): abort the same way.
- SIGUSR1: resume a paused run.
"""
from __future__ import annotations

import collections
import functools
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from labctl.errors import ConfigError, LabctlError
from labctl.protocol import STEPS, Plan, RunFolder, execute, load_protocol_file, parse_sets, record_shutdown_failure

EXIT_FOR_STATUS = {"completed": 0, "aborted": 1, "failed": 1, "interrupted": 1}
DEFAULT_PAUSE_TIMEOUT = 300.0
KINDS = ("protocol", *STEPS)
SIGNAL_NAMES = {"SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP (terminal closed)"}


def _one_line_errors(func):
    """Errors that are not LabctlError (disk full, read-only folder, a locked catalog)
    reach the user as one line too."""

    @functools.wraps(func)
    def wrapper(args):
        try:
            return func(args)
        except (LabctlError, KeyboardInterrupt):
            raise
        except (OSError, sqlite3.Error) as e:
            raise LabctlError(f"{type(e).__name__}: {e}") from None
    return wrapper


class _Interaction:
    """Signals to run control.  The handlers only append the signal number to a deque
    (no locks, no I/O); a watcher thread pauses, resumes or aborts, prints and logs."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1")

    def __init__(self, control, console, pause_timeout: float, unattended: bool):
        self.control = control
        self.console = console
        self.pause_timeout = pause_timeout
        self.unattended = unattended
        self.pending: collections.deque = collections.deque()
        self.previous = {}
        self.run_id = None  # for the resume hint while paused
        self.paused_since = None
        self.terminations = 0
        self.notice = ""  # how the run treats a signal its launcher chose to ignore (nohup)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="labctl-signals", daemon=True)

    # -- in the signal handler: nothing but an append
    def _handler(self, signum, frame):
        self.pending.append(signum)

    # -- in the watcher thread
    def _say(self, text: str, style: str = "") -> None:
        try:
            self.console.print(f"[{style}]{text}[/{style}]" if style else text)
        except Exception:
            pass

    def _abort(self, reason: str) -> None:
        import logging

        if self.control.aborted:
            return
        self.control.abort_reason = reason
        self.control.abort()
        self.paused_since = None
        logging.getLogger("labctl.run").info("abort requested: %s", reason)
        self._say(f"abort requested ({reason}): ramping the current down and stopping", "red")

    def _act(self, signum: int) -> None:
        import logging

        name = signal.Signals(signum).name
        log = logging.getLogger("labctl.run")
        if name == "SIGUSR1":
            if self.control.pause_requested and not self.control.aborted:
                log.info("resume requested (SIGUSR1)")
                self._say("resuming (SIGUSR1)")
                self.paused_since = None
                self.control.resume()
            return
        if self.control.aborted:
            self.terminations += 1
            self._say(f"{SIGNAL_NAMES.get(name, name)}: already aborting; the current is being ramped down "
                      "(the ramp-down is never skipped)", "red")
            return
        if name != "SIGINT":
            self._abort(SIGNAL_NAMES.get(name, name))
            return
        if self.control.pause_requested or self.control.paused.is_set():
            self._abort("Ctrl-C (SIGINT) twice")
            return
        self.control.pause()
        self.paused_since = time.monotonic()
        log.info("pause requested (SIGINT)")
        if self.unattended:
            hint = f"`labctl resume {self.run_id}`, " if self.run_id else ""
            self._say(f"pause requested (SIGINT): pausing at the next safe point with the current at zero. "
                      f"No terminal: the run aborts in {self.pause_timeout:g} s unless resumed "
                      f"({hint}or kill -USR1 {os.getpid()}); Ctrl-C again aborts now.", "yellow")
        else:
            self._say("pause requested: pausing at the next safe point with the current at zero. "
                      "Press Enter to resume, Ctrl-C again to abort.", "yellow")
            threading.Thread(target=self._wait_enter, daemon=True).start()

    def _wait_enter(self):
        try:
            sys.stdin.readline()
        except Exception:
            return
        if self.control.pause_requested and not self.control.aborted:
            import logging

            logging.getLogger("labctl.run").info("resume requested (Enter)")
            self._say("resuming")
            self.paused_since = None
            self.control.resume()

    def _watch(self):
        while True:
            while self.pending:
                self._act(self.pending.popleft())
            if (self.unattended and self.paused_since is not None and self.control.pause_requested
                    and not self.control.aborted and time.monotonic() - self.paused_since > self.pause_timeout):
                self._abort(f"paused without a terminal for {self.pause_timeout:g} s (Ctrl-C with no one to resume)")
            if not self.control.pause_requested:
                self.paused_since = None
            if self._stop.wait(0.05):
                while self.pending:
                    self._act(self.pending.popleft())
                return

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is None:
                    continue
                if name == "SIGHUP" and signal.getsignal(sig) == signal.SIG_IGN:
                    # started under nohup: the operator asked the run to outlive the terminal
                    self.notice = (f"SIGHUP is ignored (started with nohup): closing the terminal does not stop "
                                   f"this run; stop it with kill -TERM {os.getpid()} (the current is ramped down)")
                    self._say(self.notice, "yellow")
                    continue
                self.previous[sig] = signal.signal(sig, self._handler)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
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
            if not progress.live.is_started:  # shown once something runs (not before a refusal)
                progress.start()
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


def _pause_timeout(args) -> float:
    value = getattr(args, "pause_timeout", None)
    source = "--pause-timeout"
    if value is None:
        value, source = os.environ.get("LABCTL_PAUSE_TIMEOUT", DEFAULT_PAUSE_TIMEOUT), "LABCTL_PAUSE_TIMEOUT"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}={value!r}: expected seconds, e.g. 300") from None
    if not (0 < seconds <= 7 * 86400):
        raise ConfigError(f"{source}={value!r}: must be more than 0 and at most a week (604800 s)")
    return seconds


def _console():
    from rich.console import Console

    return Console(highlight=False, width=max(Console().width, 120))


@_one_line_errors
def _run(args) -> int:
    from labctl import datadir
    from labctl.station import Station

    if getattr(args, "connect", None):  # issue 16: queue it on a running `labctl serve` and follow it
        from labctl.service.client import remote_run

        return remote_run(args)
    pause_timeout = _pause_timeout(args)
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
    home = datadir.resolve(args.data_dir, station.config)
    plan = Plan(steps=steps, overrides=overrides, options=options)
    return _execute(args, station, plan, None, None, home, pause_timeout)


def _provenance(args, station, home) -> dict:
    from labctl.provenance import collect

    return collect(station.config, operator=getattr(args, "operator", None), notes=getattr(args, "note", None) or [],
                   data_home=home.describe())


def _resume_hint(final: dict, args, home) -> str:
    parts = ["labctl", "resume", final["id"]]
    if home.source == "--data-dir":
        parts += ["--data-dir", str(home.path)]
    if getattr(args, "station", None):
        parts += ["--station", str(args.station)]
    return " ".join(parts)


def _execute(args, station, plan, state, run_dir, home, pause_timeout) -> int:
    from labctl.catalog import Catalog
    from labctl.runner import RunControl, Runner
    from labctl.stream import LiveStream
    from labctl.summary import print_summary

    console = _console()
    stream = LiveStream()
    control = RunControl()
    control.unattended = sys.stdin is None or not sys.stdin.isatty()
    catalog = Catalog(home.path)
    runner = Runner(station, catalog, stream, control)
    progress = _progress(stream, console, args.quiet, len(plan.steps))
    provenance = _provenance(args, station, home)
    say = (lambda msg: console.print(msg)) if not args.quiet else (lambda msg: print(f"labctl: {msg}", file=sys.stderr))
    final = None
    with _Interaction(control, console, pause_timeout, control.unattended) as interaction:
        interaction.run_id = state["id"] if state else None

        noticed = []

        def learn_run_id(topic, payload):  # for the resume hint while paused
            if topic == "step" and payload.get("path"):
                if interaction.notice and not noticed:
                    noticed.append(True)
                    logging.getLogger("labctl.run").warning(interaction.notice)  # in run.log too
                interaction.run_id = Path(payload["path"]).parent.name

        stream.subscribe(learn_run_id)
        try:
            with station.session("end of run"):
                try:
                    final = execute(station, plan, home.path, runner, state=state, run_dir=run_dir,
                                    provenance=provenance, say=say)
                finally:
                    if progress and progress.live.is_started:
                        progress.stop()
        except LabctlError as e:
            if final is None:
                raise
            record_shutdown_failure(final, catalog, e)
        if not args.quiet:
            print_summary(final, console)
        else:
            print(f"{final['id']} {final['status']} {final['path']}")
        if final["status"] != "completed":
            print(f"labctl: run {final['status']}: {final.get('reason', '')}", file=sys.stderr)
            print(f"labctl: continue it with: {_resume_hint(final, args, home)}", file=sys.stderr)
    from labctl.archive.cli import push_after_run  # issue 16: local first, then the shared archive if named

    archived = push_after_run(station.config, home.path)
    if archived:
        print(f"labctl: {archived}", file=sys.stderr)
    return EXIT_FOR_STATUS.get(final["status"], 1)


def _since(text: str | None) -> str | None:
    """An ISO date or date-time; anything else is bad input (exit 2)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM, e.g. 2026-11-01") from None
    if len(text.strip()) == 10:
        return text.strip()
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone().isoformat(timespec="seconds")


@_one_line_errors
def _runs(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from labctl import datadir
    from labctl.catalog import Catalog

    since = _since(args.since)
    if args.kind and args.kind not in KINDS:
        raise ConfigError(f"--kind {args.kind!r}: choose one of {', '.join(KINDS)}")
    if getattr(args, "catalog", None):  # issue 16: every station's runs in the shared archive
        from labctl.archive.cli import list_archive

        return list_archive(args)
    if any(getattr(args, k, None) for k in ("sample", "operator", "station_name", "until")):
        raise ConfigError("--sample, --operator, --station-name and --until filter the shared archive: "
                          "add --catalog postgresql://...")
    home = datadir.resolve(args.data_dir, station_file=args.station)
    if not (home.path / Catalog.FILENAME).exists():
        rows = []
        print(f"labctl: no runs yet in {home.describe()}", file=sys.stderr)
    else:
        parent = False if args.steps else None
        rows = Catalog(home.path).list(kind=args.kind, status=args.status, since=since, parent=parent)
    if args.json:
        keys = ("id", "kind", "status", "reason", "started", "ended", "path", "sim", "parent", "checksum",
                "sample", "station", "operator", "notes")
        print(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=1))
        return 0
    table = Table(title=f"runs in {home.path}")
    for col in ("id", "kind", "status", "sample", "operator", "started", "ended", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = {"completed": "green", "running": "cyan"}.get(r["status"], "red")
        table.add_row(r["id"], r["kind"], f"[{colour}]{r['status']}[/{colour}]", r.get("sample") or "",
                      r.get("operator") or "", r["started"] or "", r["ended"] or "", r["reason"] or "")
    Console(highlight=False, width=160).print(table)
    return 0


def _resume_station(args, snapshot: dict | None, console):
    """The station in force for a resume: ``--station`` or the built-in default; never
    anything named by the run folder.  The run's snapshot is only compared."""
    from labctl.config import load_station
    from labctl.provenance import config_differences
    from labctl.station import Station

    old = (snapshot or {}).get("config") if isinstance((snapshot or {}).get("config"), dict) else {}
    old_backend = (old.get("station") or {}).get("backend") if isinstance(old.get("station"), dict) else None
    sim_overrides = {}
    if not args.station and old_backend not in (None, "sim"):
        raise ConfigError(f"run was recorded on station {(old.get('station') or {}).get('name', '?')!r} "
                          f"(backend {old_backend!r}, file {old.get('source_path') or '?'}); resume it with --station FILE "
                          "(the station file in force supplies the limits and the backend)")
    config = load_station(args.station)
    if config.is_sim and isinstance(old.get("sim"), dict):
        # the virtual lab's hidden truth (sample, model, seed) is data: keep the run's, validated
        sim_overrides = {k: old["sim"].get(k) for k in ("sample", "field_model", "seed", "temperature")
                         if old["sim"].get(k) is not None}
        if sim_overrides:
            try:
                config = load_station(args.station, sim_overrides=sim_overrides)
            except ConfigError as e:
                raise ConfigError(f"the run's virtual-lab settings are not valid: {e}") from None
    diffs = config_differences(old, config.model_dump(mode="json")) if old else []
    if diffs:
        shown = diffs[:12]
        console.print(f"[yellow]station in force ({config.source_path}) differs from the run's snapshot; "
                      f"the station in force applies:[/yellow]")
        for line in shown:
            console.print(f"  {line}")
        if len(diffs) > len(shown):
            console.print(f"  ... and {len(diffs) - len(shown)} more")
    return Station(config), diffs


def _signal_paused_run(entry: dict) -> bool:
    """``labctl resume`` of a run paused in a live process on this host: send it SIGUSR1."""
    import socket

    pid = entry.get("pid")
    if not pid or entry.get("host") != socket.gethostname() or not hasattr(signal, "SIGUSR1"):
        return False
    try:
        os.kill(int(pid), signal.SIGUSR1)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@_one_line_errors
def _resume(args) -> int:
    from labctl import datadir
    from labctl.catalog import Catalog
    from labctl.datadir import DataHome

    pause_timeout = _pause_timeout(args)
    home = datadir.resolve(args.data_dir, station_file=args.station)
    run_dir = Path(args.run)
    if not (run_dir / "parameters.json").is_file():
        run_dir = home.path / args.run
    if not run_dir.is_dir():
        raise ConfigError(f"no run folder {args.run!r} (looked in {home.describe()}); list runs with `labctl runs`")
    folder = RunFolder(run_dir)
    state = folder.read_state()
    catalog = Catalog(run_dir.parent)
    entry = catalog.get(state["id"])
    status = entry["status"] if entry else state.get("status")
    if status == "completed":
        raise ConfigError(f"run {state['id']} is already completed; nothing to resume")
    if status == "running":
        if _signal_paused_run(entry):
            print(f"labctl: run {state['id']} is running in process {entry.get('pid')}: sent it SIGUSR1 "
                  "(resumes it if it is paused)")
            return 0
        raise ConfigError(f"run {state['id']} is still running in another process (pid {entry.get('pid')})")
    p = state["plan"]
    try:
        plan = Plan(steps=[s for s in p["steps"] if s in STEPS], overrides=dict(p.get("overrides") or {}),
                    options=dict(p.get("options") or {}))
        if not plan.steps or len(plan.steps) != len(p["steps"]):
            raise ValueError("unknown steps")
        overrides, options = parse_sets([f"{step}.{k}={v}" for step, vals in plan.overrides.items()
                                         for k, v in dict(vals).items()]
                                        + [f"protocol.{k}={v}" for k, v in plan.options.items()], plan.steps)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{folder.params_path}: the recorded plan is not valid ({e})") from None
    plan = Plan(steps=plan.steps, overrides=overrides, options=options)
    console = _console()
    station, diffs = _resume_station(args, folder.read_snapshot(), console)
    if diffs:
        state.setdefault("station_differences", []).append(diffs)
    state["station_file"] = station.config.source_path
    return _execute(args, station, plan, state, run_dir, DataHome(run_dir.parent, "the run folder's parent"),
                    pause_timeout)


def _add_run_options(p, data_help: str) -> None:
    p.add_argument("--data-dir", help=data_help)
    p.add_argument("--quiet", action="store_true", help="no progress bar; one line at the end")
    p.add_argument("--operator", help="who runs it (default: the login name); recorded with the run")
    p.add_argument("--note", action="append", metavar="TEXT", help="free-text note recorded with the run (repeatable)")
    p.add_argument("--pause-timeout", type=float, metavar="SECONDS",
                   help=f"without a terminal, a Ctrl-C pause aborts after this long unless resumed "
                        f"(default: LABCTL_PAUSE_TIMEOUT or {DEFAULT_PAUSE_TIMEOUT:g})")


DATA_HELP = ("where runs and the catalog live (default: the station file's data_dir, else $LABCTL_DATA, "
             "else the per-user data folder, e.g. ~/.local/share/labctl/runs)")


def register(sub) -> None:
    import argparse

    from labctl.materials import PRESETS
    from labctl.physics import FIELD_MODELS

    run = sub.add_parser(
        "run", help="run the whole protocol or one procedure (virtual lab by default)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  labctl run protocol --sample Nb --field-model bean --seed 3\n"
               "  labctl run vi --set current_step=2 --set temperature=6.5\n"
               "  labctl run radial-field --set ic=400 --note 'probe re-glued'\n"
               "  labctl run protocol --protocol docs/my-protocol.toml --set radial-field.repeats=5\n\n"
               "signals: Ctrl-C pauses (current to zero; Enter resumes), Ctrl-C again aborts; SIGTERM and SIGHUP\n"
               "abort; SIGUSR1 resumes a pause. Without a terminal a pause aborts after --pause-timeout.\n\n"
               "parameters: `labctl params STEP` lists every step's parameters (the names --set and protocol\n"
               "files use) with unit, default and allowed range; `labctl protocol example` prints a commented\n"
               "protocol file that runs as is.")
    run.add_argument("what", choices=["protocol", *STEPS], help="protocol, or one step")
    run.add_argument("--station", help="station TOML (default: the built-in virtual lab)")
    run.add_argument("--protocol", help="protocol TOML with [protocol] options and per-step tables")
    run.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="parameter override, e.g. --set vi.current_step=2 or --set repeats=5 (repeatable)")
    from labctl.cli_params import sample_preset

    run.add_argument("--sample", type=sample_preset, choices=list(PRESETS), help="virtual lab only: sample preset")
    run.add_argument("--field-model", choices=list(FIELD_MODELS), help="virtual lab only: hidden truth")
    run.add_argument("--seed", type=int, help="virtual lab only: noise seed")
    from labctl.iotrace import TraceAction  # issue 12: io-trace.log in the run folder

    run.add_argument("--trace", nargs="?", metavar="FILE", action=TraceAction,
                     help="record every command and reply in io-trace.log in the run folder (and in FILE)")
    _add_run_options(run, DATA_HELP)
    run.add_argument("--connect", metavar="URL", help="run it on a `labctl serve` (its station and data home) "
                                                      "and follow it here; key in $LABCTL_KEY")
    run.set_defaults(func=_run)

    runs = sub.add_parser("runs", help="list recorded runs from the catalog",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="examples:\n  labctl runs\n  labctl runs --kind vi --status completed --json\n"
                                 "  labctl runs --since 2026-11-01 --steps")
    runs.add_argument("--data-dir", help=DATA_HELP)
    runs.add_argument("--station", help="station TOML whose data_dir to use")
    runs.add_argument("--kind", help=f"filter by kind: {', '.join(KINDS)}")
    runs.add_argument("--status", choices=["running", "completed", "aborted", "failed", "interrupted"])
    runs.add_argument("--since", help="started on or after this ISO date, e.g. 2026-11-01")
    runs.add_argument("--steps", action="store_true", help="include the steps of each protocol")
    runs.add_argument("--json", action="store_true", help="JSON list on stdout")
    runs.add_argument("--catalog", metavar="URL", help="list every station's runs from the shared archive "
                                                       "(postgresql://...) instead of the local catalog")
    from labctl.archive.cli import add_filters  # --station-name, --sample, --operator, --until

    add_filters(runs)
    runs.set_defaults(func=_runs)

    resume = sub.add_parser(
        "resume", help="continue an interrupted or aborted run from its last completed point",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The station file in force (--station, or the built-in virtual lab) supplies the limits and the\n"
               "backend; the run folder's station.json is only compared and differences are reported. The\n"
               "remaining plan is checked against the limits in force before anything moves. A run paused\n"
               "without a terminal in another process is resumed (SIGUSR1).\n\n"
               "examples:\n  labctl resume <run-id>\n"
               "  labctl resume <run-id> --station lab.toml --note 'after the helium refill'")
    resume.add_argument("run", help="run id (see `labctl runs`) or run folder")
    resume.add_argument("--station", help="station TOML in force (default: the built-in virtual lab)")
    _add_run_options(resume, DATA_HELP)
    resume.set_defaults(func=_resume)
