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


def _coerce_option(name: str, value):
    kind = PROTOCOL_OPTIONS[name][0]
    if kind is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"protocol.{name}={value!r}: expected true or false")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"protocol.{name}={value!r}: expected a {kind.__name__}") from None


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
            where = step or "any step"
            known = sorted(PROCEDURES[step]().parameter_objects()) if step else []
            raise ConfigError(f"--set {key}: {where} has no parameter {name!r}"
                              + (f"; parameters: {', '.join(known)}" if known else ""))
        for t in targets:
            overrides.setdefault(t, {})[name] = value
    return overrides, options


def load_protocol_file(path: str | Path, steps: list[str]) -> tuple[dict, dict]:
    """A protocol TOML: ``[protocol]`` options and one table per step of parameters."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"protocol file {path} not found") from None
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
            raise ConfigError(f"step {step or kind}: {name}={value!r} is invalid{rng}: {e}") from None
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

    def check(self, derived: dict) -> None:
        """Build every step with worst-case derived values and check it against the limits.

        Steps whose currents follow from an Ic still to be measured are checked
        with Ic = the station's max_current (fractions are below 1, so this bounds them).
        """
        worst = self.station.config.current_source.limits.max_current
        derived = {"tc": self.sample.expected_tc, **derived}
        if derived.get("ic") is None and "vi" in self.steps():
            derived["ic"] = worst
        for step in self.steps():
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


def latest_results(catalog: Catalog) -> dict:
    """Tc and Ic from the most recent completed R(T) and V-I steps (for single-step runs)."""
    derived: dict = {}
    for kind in ("rt", "vi"):
        done = [r for r in catalog.list(kind=kind, status="completed", parent=False) if r.get("path")]
        for entry in reversed(done):
            try:
                derive(kind, Path(entry["path"]), derived)
                derived[f"{kind}_source"] = entry["path"]
                break
            except Exception:  # an unreadable old run is skipped, not fatal
                continue
    return derived


def new_run_dir(data_dir: Path, kind: str) -> tuple[str, Path]:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}"
    run_id, k = base, 1
    while (data_dir / run_id).exists():
        k += 1
        run_id = f"{base}-{k}"
    path = data_dir / run_id
    path.mkdir(parents=True)
    return run_id, path


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
            return json.loads(self.params_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a run folder (no parameters.json)") from None

    def write_snapshot(self, snapshot: dict) -> None:
        (self.path / "station.json").write_text(json.dumps(snapshot, indent=2, default=str), encoding="utf-8")

    def attach_log(self) -> logging.Handler:
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("labctl")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        return handler


def step_file(index: int, step: str) -> str:
    return f"{index + 1:02d}-{step}.csv"


def execute(station, plan: Plan, data_dir: Path, runner: Runner, state: dict | None = None,
            run_dir: Path | None = None) -> dict:
    """Run (or resume) a protocol or a single step; returns the final state dict.

    ``state`` (from parameters.json) marks a resume: completed steps are
    skipped, a partial step continues from its last completed point.
    """
    protocol = Protocol(station, plan)
    steps = protocol.steps()
    resume = state is not None
    catalog = runner.catalog
    if not resume:
        derived = {} if "vi" in steps else latest_results(catalog)
        protocol.check(derived)  # the whole plan against the limits, before anything moves
        kind = "protocol" if len(steps) > 1 else steps[0]
        run_id, run_dir = new_run_dir(Path(data_dir), kind)
        state = {"id": run_id, "kind": kind, "station_file": station.config.source_path,
                 "plan": {"steps": plan.steps, "overrides": plan.overrides, "options": plan.options},
                 "derived": derived, "steps": {}, "status": "running"}
    folder = RunFolder(run_dir)
    handler = folder.attach_log()
    run_id = state["id"]
    try:
        folder.write_snapshot(station.snapshot())
        if resume and catalog.get(run_id):
            catalog.reopen(run_id)
        else:
            catalog.start(run_id, state["kind"], station.is_sim, state["plan"], str(run_dir))
        folder.write_state(state)
        derived = state["derived"]
        status, reason = "completed", ""
        for index, step in enumerate(steps):
            info = state["steps"].get(step, {})
            if info.get("status") == "completed":
                result_key = {"rt": "tc", "vi": "ic"}.get(step)
                if result_key and derived.get(result_key) is None:  # killed between the step's end and its analysis
                    try:
                        derived = derive(step, run_dir / info["file"], derived)
                    except Exception as e:
                        log.exception("analysis of step %s failed", step)
                        status, reason = "failed", f"step {step}: analysis failed: {e}"
                        break
                    state["derived"] = derived
                    folder.write_state(state)
                continue
            proc = protocol.procedure(step, derived)
            path = run_dir / step_file(index, step)
            step_id = f"{run_id}/{step}"
            info = {"file": path.name, "kind": step, "status": "running",
                    "parameters": {k: getattr(proc, k) for k in proc.parameter_objects()}}
            state["steps"][step] = info
            folder.write_state(state)
            partial = resume and path.exists()
            result = runner.run_step(step, proc, path, step_id, parent=run_id, resume=partial)
            info.update(status=result.status, reason=result.reason, rows=result.rows)
            if result.events:
                info["events"] = result.events
            folder.write_state(state)
            if result.status != "completed":
                status, reason = result.status, f"step {step}: {result.reason}"
                break
            try:
                derived = derive(step, path, derived)
            except Exception as e:  # analysis trouble ends the protocol, recorded, never a traceback
                log.exception("analysis of step %s failed", step)
                status, reason = "failed", f"step {step}: analysis failed: {e}"
                break
            state["derived"] = derived
            folder.write_state(state)
        state["status"], state["reason"] = status, reason
        folder.write_state(state)
        catalog.finish(run_id, status, reason)
        state["path"] = str(run_dir)
        return state
    finally:
        logging.getLogger("labctl").removeHandler(handler)
        handler.close()


def open_catalog(data_dir: str | Path) -> Catalog:
    return Catalog(data_dir)
