"""The measurement protocol (DESIGN.md section 2) as a plan of steps.

Each step is a procedure whose parameters come from, in increasing priority:
defaults derived from the station's sample (expected Tc, working temperature,
tap spacing) and from earlier results (measured Tc, measured Ic), a protocol
TOML file, and ``--set`` overrides.  The whole plan is checked against the
station limits before anything moves; a run folder collects one CSV per step,
the station snapshot, the parameters and the log.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from labctl.catalog import Catalog
from labctl.errors import ConfigError, LabctlError
from labctl.runner import Runner, check_requests
from procedures import PROCEDURES

log = logging.getLogger("labctl.protocol")

STEPS = ("rt", "vi", "normal-control", "radial-field", "radial-scan", "residual")
PROTOCOL_OPTIONS = {
    "scan": (bool, True, "include the radial scan"),
    "fractions": (str, "0.2,0.4,0.6,0.8", "radial-field currents as fractions of the measured Ic"),
    "normal_factor": (float, 1.3, "normal-control temperature as a multiple of the measured Tc"),
}


@dataclass
class Plan:
    """What to run: per-step parameter overrides plus protocol options."""

    steps: list[str]
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    def option(self, name: str):
        return self.options.get(name, PROTOCOL_OPTIONS[name][1])


NORMAL_FACTOR_RANGE = (1.05, 5.0)  # normal-control at 1.05-5 x Tc: above the transition, not at the cryostat's maximum


def _coerce_option(name: str, value):
    kind = PROTOCOL_OPTIONS[name][0]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"protocol.{name}={value!r}: expected true or false")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"protocol.{name}={value!r}: expected a {kind.__name__}") from None
    if name == "normal_factor":
        lo, hi = NORMAL_FACTOR_RANGE
        if not math.isfinite(out) or not lo <= out <= hi:
            raise ConfigError(f"protocol.normal_factor={value!r}: must be a number from {lo:g} to {hi:g} "
                              "(normal-control temperature = factor x measured Tc)")
    if name == "fractions":
        try:
            numbers = [float(x) for x in out.split(",") if x.strip()]
        except ValueError:
            numbers = []
        if not numbers or len(numbers) > 50 or not all(math.isfinite(x) and 0 < x <= 1 for x in numbers):
            raise ConfigError(f"protocol.fractions={value!r}: expected 1 to 50 comma-separated fractions of Ic "
                              "in (0, 1], e.g. 0.2,0.4,0.6,0.8")
    return out


def parse_sets(sets: list[str], steps: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, object]]:
    """``--set step.param=value`` / ``--set param=value`` / ``--set protocol.opt=value``."""
    overrides: dict[str, dict[str, str]] = {}
    options: dict[str, object] = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected name=value (e.g. --set vi.current_step=2)")
        key, value = (s.strip() for s in item.split("=", 1))
        step, _, name = key.rpartition(".")
        if step == "protocol":
            if name not in PROTOCOL_OPTIONS:
                raise ConfigError(f"--set {key}: unknown protocol option; choose one of {', '.join(PROTOCOL_OPTIONS)}")
            options[name] = _coerce_option(name, value)
            continue
        targets = [step] if step else [s for s in steps if name in PROCEDURES[s]().parameter_objects()]
        if step and step not in steps:
            raise ConfigError(f"--set {key}: unknown step {step!r}; steps are {', '.join(steps)}")
        if not targets or (step and name not in PROCEDURES[step]().parameter_objects()):
            known = sorted(PROCEDURES[step]().parameter_objects()) if step else []
            raise ConfigError(f"--set {key}: " + (f"step {step} has no parameter {name!r}" if step else
                                                  f"no step has a parameter {name!r}")
                              + (f"; parameters: {', '.join(known)}" if known else "; `labctl params` lists them"))
        for t in targets:
            overrides.setdefault(t, {})[name] = value
    return overrides, options


def load_protocol_file(path: str | Path, steps: list[str]) -> tuple[dict, dict]:
    """A protocol TOML: ``[protocol]`` options and one table per step of parameters."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"--protocol {path}: is a folder; give a protocol TOML file "
                              "(example: docs/my-protocol.toml)")
        if path.exists() and path.stat().st_size > 1_000_000:
            raise ConfigError(f"--protocol {path}: {path.stat().st_size} bytes is too big for a protocol file")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"protocol file {path} not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--protocol {path}: not a text file (protocol files are UTF-8 TOML)") from None
    except OSError as e:
        raise ConfigError(f"--protocol {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    sets = []
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{section}' must be a table such as [vi]")
        for name, value in table.items():
            sets.append(f"{section}.{name}={value}")
    try:
        return parse_sets(sets, steps)
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).removeprefix('--set ')}") from None


def build_procedure(kind: str, values: dict[str, object], step: str | None = None):
    """Instantiate a procedure with validated parameter values (ConfigError names the culprit)."""
    proc = PROCEDURES[kind]()
    params = proc.parameter_objects()
    for name, value in values.items():
        if name not in params:
            raise ConfigError(f"step {step or kind}: unknown parameter {name!r}; parameters: {', '.join(sorted(params))}")
        try:
            params[name].value = value  # the parameter validates and converts
            converted = params[name].value
            if isinstance(converted, float) and not math.isfinite(converted):  # pymeasure lets NaN through
                raise ValueError("not a finite number")
            setattr(proc, name, converted)
        except (ValueError, TypeError) as e:
            p = params[name]
            rng = ""
            if getattr(p, "minimum", None) is not None:
                rng = f" (allowed {p.minimum:g} to {p.maximum:g}{' ' + p.units if p.units else ''})"
            if getattr(p, "choices", None):
                rng = f" (allowed: {', '.join(map(str, p.choices))})"
            if type(p).__name__ == "BooleanParameter":
                rng = " (allowed: true, false)"
            reason = str(e)  # pymeasure's words, without its class names
            if type(p).__name__ in ("FloatParameter", "IntegerParameter") and "non-" in reason:
                reason = "not a number" if type(p).__name__ == "FloatParameter" else "not a whole number"
            for cls in ("FloatParameter", "IntegerParameter", "ListParameter", "BooleanParameter", "Parameter"):
                reason = reason.replace(f"{cls} ", "")
            raise ConfigError(f"step {step or kind}: {name}={value!r} is invalid{rng}: {reason}") from None
    return proc


class Protocol:
    """Derives each step's parameters from the station's sample and earlier results."""

    def __init__(self, station, plan: Plan):
        self.station = station
        self.plan = plan
        self.sample = station.config.sample
        if self.sample is None:
            raise ConfigError(f"{station.config.source_path}: the protocol needs a [sample] table "
                              "(expected_tc, working_temperature, tap_spacing); see lab-example.toml")

    def defaults(self, step: str, derived: dict) -> dict:
        s = self.sample
        tc = derived.get("tc") or s.expected_tc
        ic = derived.get("ic")
        cs_limits = self.station.config.current_source.limits
        t_limits = self.station.config.temperature.limits
        radii = ",".join(f"{r:g}" for r in s.hole_radii)
        if step == "rt":
            t_high = min(1.25 * s.expected_tc, t_limits.max_temperature)
            t_low = max(0.8 * s.expected_tc, t_limits.min_temperature)
            window = max(0.6, 0.06 * s.expected_tc)
            return {"t_high": t_high, "t_low": t_low, "expected_tc": s.expected_tc, "fine_window": window,
                    "fine_step": window / 60, "coarse_step": (t_high - t_low) / 25,
                    "ramp_rate": min(2.0, t_limits.max_ramp_rate)}
        if step == "vi":
            return {"temperature": s.working_temperature, "current_max": cs_limits.max_current,
                    "current_step": round(cs_limits.max_current / 150, 3), "tap_spacing": s.tap_spacing}
        fixed = {"temperature": s.working_temperature, "radii": radii, "sample_radius": s.radius}
        if step == "normal-control":
            out = {"temperature": min(self.plan.option("normal_factor") * tc, t_limits.max_temperature),
                   "radii": radii, "sample_radius": s.radius}
            if ic:
                out.update(currents=",".join(f"{f * ic:.2f}" for f in (0.25, 0.5, 0.75)), current_mode="A")
            return out
        if step == "radial-field":
            fractions = str(self.plan.option("fractions"))
            return {**fixed, "currents": fractions, "current_mode": "fraction of Ic", "ic": ic or 0.0}
        if step == "radial-scan":
            out = {"temperature": s.working_temperature, "r_start": min(s.hole_radii), "r_stop": max(s.hole_radii)}
            if ic:
                out["current"] = round(0.6 * ic, 2)
            return out
        if step == "residual":
            return {"temperature": s.working_temperature, "current_mode": "fraction of Ic", "ic": ic or 0.0}
        raise ConfigError(f"unknown step {step!r}")

    def procedure(self, step: str, derived: dict):
        values = {**self.defaults(step, derived), **self.plan.overrides.get(step, {})}
        return build_procedure(step, values, step)

    def steps(self) -> list[str]:
        return [s for s in self.plan.steps if s != "radial-scan" or self.plan.option("scan")]

    def check(self, derived: dict, steps: list[str] | None = None) -> None:
        """Build every step (or ``steps``) with worst-case derived values and check it
        against the limits of the station in force.

        Steps whose currents follow from an Ic still to be measured are checked
        with Ic = the station's max_current (fractions are below 1, so this bounds them).
        """
        steps = self.steps() if steps is None else steps
        worst = self.station.config.current_source.limits.max_current
        derived = {"tc": self.sample.expected_tc, **{k: v for k, v in derived.items() if v is not None}}
        if derived.get("ic") is None and "vi" in self.steps():  # measured in this run (or its analysis redone)
            derived["ic"] = worst
        for step in steps:
            proc = self.procedure(step, derived)
            proc.station = self.station
            proc.points()  # parameter consistency (e.g. fractions without Ic)
            check_requests(step, proc, self.station)


def derive(step: str, path: Path, derived: dict) -> dict:
    """Feed results forward: Tc from R(T), Ic from V-I (via the analysis library)."""
    from labctl.analysis import analyze

    if step not in ("rt", "vi"):
        return derived
    result = analyze(str(path), kind=step)
    if step == "rt":
        tc = result.get("tc_mid")
        if tc is None:
            raise LabctlError(f"R(T) shows no superconducting transition ({result.get('message', 'no Tc')}); "
                              "the protocol cannot go on below Tc")
        derived["tc"] = float(tc)
    else:
        ic = result.get("ic")
        if ic is None:
            raise LabctlError("the V-I sweep did not reach the criterion: Ic unknown (raise vi.current_max "
                              "or check the taps)")
        derived["ic"] = float(ic)
        derived["ic_err"] = result.get("ic_err")
        derived["n"] = result.get("n")
    return derived


def _identity(catalog: Catalog, entry: dict, cache: dict) -> tuple[str | None, str | None]:
    """(sample, station) of a catalog entry: its own, or its parent run's."""
    if entry.get("sample") or not entry.get("parent"):
        return entry.get("sample"), entry.get("station")
    parent = entry["parent"]
    if parent not in cache:
        cache[parent] = catalog.get(parent) or {}
    return cache[parent].get("sample"), cache[parent].get("station")


def latest_results(catalog: Catalog, sample: str | None = None, station: str | None = None) -> dict:
    """Tc and Ic from the most recent completed R(T) and V-I steps (for single-step runs).

    With ``sample`` and ``station``, only runs of that sample on that station count.
    Each value found comes with ``<kind>_source``: the step id, its file and the value."""
    derived: dict = {}
    cache: dict = {}
    for kind in ("rt", "vi"):
        done = [r for r in catalog.list(kind=kind, status="completed", parent=False) if r.get("path")]
        for entry in reversed(done):
            if not entry.get("parent") and not str(entry["path"]).lower().endswith(".csv"):
                continue  # the run row of a single-step run: its step row carries the file
            if sample is not None or station is not None:
                if _identity(catalog, entry, cache) != (sample, station):
                    continue
            try:
                found = derive(kind, Path(entry["path"]), {})
            except Exception:  # an unreadable or inconclusive old run is skipped, not fatal
                continue
            key = "tc" if kind == "rt" else "ic"
            derived.update(found)
            derived[f"{kind}_source"] = {"run": entry.get("parent") or entry["id"], "step": entry["id"],
                                         "path": entry["path"], key: found[key], "sample": sample,
                                         "station": station}
            break
    return derived


def _uses_ic(step: str, plan: Plan) -> bool:
    """Would this step's default parameters come from a measured Ic?"""
    given = plan.overrides.get(step, {})
    if step == "normal-control":
        return "currents" not in given
    if step == "radial-scan":
        return "current" not in given
    return _needs_ic(step, plan)


def _needs_ic(step: str, plan: Plan) -> bool:
    """Does this single step take its currents from Ic (nothing given on the command line)?"""
    given = plan.overrides.get(step, {})
    if step not in ("radial-field", "residual"):
        return False
    return "ic" not in given and given.get("current_mode", "fraction of Ic") != "A"


def borrowed_results(catalog: Catalog, station, plan: Plan, steps: list[str], say) -> dict:
    """Tc/Ic for a run without R(T)/V-I: only from a run of the same sample and station,
    announced through ``say`` and recorded; a step that needs Ic without one stops here."""
    sample = station.config.sample.name if station.config.sample else None
    name = station.config.station.name
    uses_tc = [s for s in steps if s == "normal-control" and "temperature" not in plan.overrides.get(s, {})]
    uses_ic = [s for s in steps if _uses_ic(s, plan)]
    if "rt" in steps:
        uses_tc = []
    if not uses_tc and not uses_ic:
        return {}
    found = latest_results(catalog, sample=sample, station=name)
    derived: dict = {}
    if uses_tc:
        src = found.get("rt_source")
        if src:
            derived["tc"], derived["rt_source"] = found["tc"], src
            say(f"using Tc = {found['tc']:.4g} K measured in run {src['run']} (sample {sample}, station {name!r}); "
                "override with --set temperature=VALUE")
        else:
            say(f"no R(T) of sample {sample} on station {name!r} in the catalog: using the expected Tc "
                f"{station.config.sample.expected_tc:g} K of the station's [sample]")
    if uses_ic:
        src = found.get("vi_source")
        if src:
            derived["ic"], derived["vi_source"] = found["ic"], src
            for k in ("ic_err", "n"):
                if found.get(k) is not None:
                    derived[k] = found[k]
            say(f"using Ic = {found['ic']:.4g} A measured in run {src['run']} (sample {sample}, station {name!r}); "
                "override with --set ic=VALUE")
        else:
            needing = [s for s in uses_ic if _needs_ic(s, plan)]
            if needing:
                raise ConfigError(f"{needing[0]} needs Ic, and no completed V-I of sample {sample} on station "
                                  f"{name!r} is in {catalog.data_dir}: give it with --set ic=VALUE (in A) or "
                                  f"measure it first (labctl run vi)")
            say(f"no V-I of sample {sample} on station {name!r} in the catalog: using the step's default currents")
    return derived


def new_run_dir(data_dir: Path, kind: str) -> tuple[str, Path]:
    """A new run folder, unique even when two processes start in the same second:
    ``mkdir`` fails if the name exists (atomic), and then the next suffix is tried."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}"
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        run_id = base if k == 1 else f"{base}-{k}"
        path = Path(data_dir) / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return run_id, path
    raise LabctlError(f"cannot create a run folder for {base} in {data_dir}: 10000 names taken")


def count_rows(path: Path) -> int | None:
    """Data rows in a step's CSV: complete lines that are neither comments nor the column line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f if ln.endswith("\n") and ln.strip() and not ln.startswith("#")]
    except OSError:
        return None
    return max(len(lines) - 1, 0)


class RunFolder:
    """parameters.json / station.json / run.log of one run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.params_path = self.path / "parameters.json"

    def write_state(self, state: dict) -> None:
        tmp = self.params_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.params_path)

    def read_state(self) -> dict:
        try:
            state = json.loads(self.params_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a run folder (no parameters.json)") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"{self.params_path}: unreadable ({e})") from None
        if not isinstance(state, dict) or not isinstance(state.get("id"), str) or not isinstance(state.get("plan"), dict):
            raise ConfigError(f"{self.params_path}: not a labctl run state (no id or plan)")
        return state

    def read_snapshot(self) -> dict | None:
        try:
            snap = json.loads((self.path / "station.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return snap if isinstance(snap, dict) else None

    def write_snapshot(self, snapshot: dict) -> None:
        (self.path / "station.json").write_text(json.dumps(snapshot, indent=2, default=str), encoding="utf-8")

    def attach_log(self) -> logging.Handler:
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("labctl")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        trace_log.addHandler(handler)
        return handler

    @staticmethod
    def detach_log(handler: logging.Handler) -> None:
        logging.getLogger("labctl").removeHandler(handler)
        trace_log.removeHandler(handler)
        handler.close()

    def append_log(self, line: str, level: str = "INFO") -> None:
        """One line in run.log after the run's logger is detached (the final shutdown)."""
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,000")
        try:
            with open(self.path / "run.log", "a", encoding="utf-8") as f:
                f.write(f"{stamp} {level} labctl.run: {line}\n")
        except OSError:
            pass


# Tracebacks go to run.log only; the terminal gets one line.
trace_log = logging.getLogger("labctl_trace")
trace_log.propagate = False
trace_log.setLevel(logging.INFO)


def _log_failure(message: str) -> None:
    log.error("%s", message)
    trace_log.error("traceback of the failure above", exc_info=True)


def step_file(index: int, step: str) -> str:
    return f"{index + 1:02d}-{step}.csv"


def _settings(proc) -> dict:
    """Parameter values with their units in the names, pymeasure style: {"Current step (A)": 2.0}."""
    out = {}
    for name, p in proc.parameter_objects().items():
        label = getattr(p, "name", name) or name
        units = getattr(p, "units", None)
        out[f"{label} ({units})" if units else label] = getattr(proc, name)
    return out


def execute(station, plan: Plan, data_dir: Path, runner: Runner, state: dict | None = None,
            run_dir: Path | None = None, provenance: dict | None = None, say=None) -> dict:
    """Run (or resume) a protocol or a single step; returns the final state dict.

    ``state`` (from parameters.json) marks a resume: completed steps are
    skipped, a partial step continues from its last completed point, and the
    remaining plan is checked against the limits of the station in force first.
    Every way out (end, abort, exception, KeyboardInterrupt) records a final
    status, reason and end time in the catalog, parameters.json and run.log.
    ``say`` (default: the log) tells the operator which earlier results are used.
    """
    say = say or (lambda msg: log.info("%s", msg))
    protocol = Protocol(station, plan)
    steps = protocol.steps()
    resume = state is not None
    catalog = runner.catalog
    control = runner.control
    provenance = provenance or {}
    if not resume:
        for step in steps:  # each value given is valid on its own (named first, before anything else)
            build_procedure(step, plan.overrides.get(step, {}), step)
        told: list[str] = []  # said once the plan is known to be valid (an error stays one line)
        derived = {} if "vi" in steps else borrowed_results(catalog, station, plan, steps, told.append)
        protocol.check(derived)  # the whole plan against the limits, before anything moves
        for line in told:
            say(line)
        kind = "protocol" if len(steps) > 1 else steps[0]
        run_id, run_dir = new_run_dir(Path(data_dir), kind)
        state = {"id": run_id, "kind": kind, "station_file": station.config.source_path,
                 "plan": {"steps": plan.steps, "overrides": plan.overrides, "options": plan.options},
                 "derived": derived, "steps": {}, "status": "running", "provenance": provenance}
    else:
        state.setdefault("derived", {})
        state.setdefault("steps", {})
        remaining = [s for s in steps if state["steps"].get(s, {}).get("status") != "completed"]
        for step in ("rt", "vi"):  # killed between a step's end and its analysis: redo the analysis first
            key, info = {"rt": "tc", "vi": "ic"}[step], state["steps"].get(step, {})
            if info.get("status") == "completed" and state["derived"].get(key) is None and remaining:
                try:
                    state["derived"] = derive(step, Path(run_dir) / info["file"], dict(state["derived"]))
                except Exception:  # recorded as the run's failure by the step loop
                    pass
        protocol.check(state["derived"], remaining)  # the limits in force, before anything moves
        if provenance:
            state.setdefault("resumes", []).append(provenance)
    folder = RunFolder(run_dir)
    handler = folder.attach_log()
    run_id = state["id"]
    status, reason = "failed", "the run ended without a status (bug)"
    pending = None
    sample = station.config.sample.name if station.config.sample else None
    try:
        try:
            if resume and catalog.get(run_id):
                catalog.reopen(run_id)
                log.info("run %s resumed (steps left: %s; operator %s)", run_id,
                         ", ".join(s for s in steps if state["steps"].get(s, {}).get("status") != "completed"),
                         provenance.get("operator", "?"))
                for line in (state.get("station_differences") or [[]])[-1]:
                    log.info("station in force differs from the run's snapshot (the station in force applies): %s",
                             line)
            else:
                catalog.start(run_id, state["kind"], station.is_sim, state["plan"], str(run_dir), sample=sample,
                              station=station.config.station.name, operator=provenance.get("operator"),
                              notes=provenance.get("notes"), provenance=provenance or None)
                log.info("run %s start: %s on station %r (%s), sample %s, operator %s, data in %s", run_id,
                         ", ".join(steps), station.config.station.name, station.config.source_path or "built-in",
                         sample, provenance.get("operator", "?"), run_dir)
            for note in provenance.get("notes") or []:
                log.info("note: %s", note)
            for key in ("rt_source", "vi_source"):
                src = state["derived"].get(key)
                if src and not resume:
                    log.info("derived input: %s = %s from run %s (%s)", "Tc" if key == "rt_source" else "Ic",
                             src.get("tc", src.get("ic")), src["run"], src["path"])
            folder.write_state(state)
            station.prepare()  # run-start configuration (once per connection; connecting only queried)
            snapshot = {**station.snapshot(), "provenance": provenance}
            if resume:  # the snapshots the earlier parts of the run were taken with are kept, as data
                before = folder.read_snapshot() or {}
                earlier = before.pop("earlier", []) if isinstance(before.get("earlier"), list) else []
                snapshot["earlier"] = [*earlier, before] if before else earlier
            folder.write_snapshot(snapshot)
            status, reason = _run_steps(protocol, steps, state, folder, runner, resume)
        except KeyboardInterrupt as e:  # no CLI handler (tests, scripts): still recorded
            status, reason = "aborted", f"interrupted ({e or 'KeyboardInterrupt'})"
            pending = e
        except LabctlError as e:
            status, reason = "failed", str(e)
            _log_failure(f"run {run_id} failed: {e}")
        except Exception as e:  # a bug or an unexpected error: recorded, one line
            status, reason = "failed", f"{type(e).__name__}: {e}"
            _log_failure(f"run {run_id} failed: {reason}")
        finally:
            state["status"], state["reason"] = status, reason
            state["path"] = str(run_dir)
            try:
                folder.write_state(state)
            except OSError as e:
                log.error("cannot write %s: %s", folder.params_path, e)
            catalog.finish(run_id, status, reason)
            log.info("run %s end: %s%s", run_id, status, f" ({reason})" if reason else "")
    finally:
        RunFolder.detach_log(handler)
    if pending is not None:
        raise pending
    return state


def _abort_reason(control) -> str:
    return getattr(control, "abort_reason", None) or "aborted by the user"


def _run_steps(protocol: Protocol, steps: list[str], state: dict, folder: RunFolder, runner: Runner,
               resume: bool) -> tuple[str, str]:
    run_dir, run_id, control = folder.path, state["id"], runner.control
    derived = state["derived"]
    for index, step in enumerate(steps):
        info = state["steps"].get(step, {})
        later = steps[index + 1:]
        if info.get("status") == "completed":
            result_key = {"rt": "tc", "vi": "ic"}.get(step)
            if result_key and later and derived.get(result_key) is None:  # killed between the step's end and its analysis
                try:
                    derived = derive(step, run_dir / info["file"], derived)
                except Exception as e:
                    _log_failure(f"analysis of step {step} failed: {e}")
                    return "failed", f"step {step}: analysis failed: {e}"
                state["derived"] = derived
                folder.write_state(state)
            continue
        if control.aborted:  # a signal between steps: nothing more moves
            log.info("abort before step %s: %s", step, _abort_reason(control))
            return "aborted", f"{_abort_reason(control)} (before step {step})"
        proc = protocol.procedure(step, derived)
        path = run_dir / step_file(index, step)
        step_id = f"{run_id}/{step}"
        info = {"file": path.name, "kind": step, "status": "running",
                "parameters": {k: getattr(proc, k) for k in proc.parameter_objects()},
                "settings": _settings(proc)}
        state["steps"][step] = info
        folder.write_state(state)
        partial = resume and path.exists()
        log.info("step %s %s: %s", step, "continues" if partial else "start", path.name)
        result = runner.run_step(step, proc, path, step_id, parent=run_id, resume=partial)
        rows = count_rows(path)
        info.update(status=result.status, reason=result.reason, rows=rows if rows is not None else result.rows)
        if result.events:
            info["events"] = result.events
        folder.write_state(state)
        if result.status == "aborted" and control.aborted:
            log.info("abort: %s during step %s", _abort_reason(control), step)
            return "aborted", f"{_abort_reason(control)} (during step {step})"
        if result.status != "completed":
            return result.status, f"step {step}: {result.reason}"
        if step not in ("rt", "vi"):
            continue
        try:
            derived = derive(step, path, derived)
        except Exception as e:
            if later:  # later steps need it: the protocol ends here, recorded, never a traceback
                _log_failure(f"analysis of step {step} failed: {e}")
                return "failed", f"step {step}: analysis failed: {e}"
            log.warning("step %s: analysis: %s", step, e)  # a single step's data are complete all the same
            info["analysis"] = str(e)
        state["derived"] = derived
        folder.write_state(state)
    return "completed", ""


def open_catalog(data_dir: str | Path) -> Catalog:
    return Catalog(data_dir)


def record_shutdown_failure(final: dict, catalog: Catalog, error: Exception) -> None:
    """The run ended, then the final safe shutdown failed: that outranks the run's own
    status.  Recorded in the catalog, run.log and parameters.json."""
    reason = f"final shutdown failed: {error}"
    final["status"], final["reason"] = "failed", reason
    catalog.finish(final["id"], "failed", reason)
    folder = RunFolder(Path(final["path"]))
    folder.append_log(f"run {final['id']} end: failed ({reason})", "ERROR")
    try:
        folder.write_state(final)
    except OSError:
        pass
