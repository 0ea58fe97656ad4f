"""Run-time safety: quench detection and declared interlocks.

The guard is ticked by the procedures at every point and by the current source
at every ramp step.  A quench (tap voltage above ``voltmeter.limits.quench_voltage``
while current flows) ramps the current down at once at the emergency rate and
stops the step; an interlock rule from the station file pauses or aborts the run.
Every trip is logged, written into the step's CSV as a ``# EVENT`` comment line
and recorded in the catalog by the runner.

Interlock rules are small boolean expressions over live quantities, parsed
with ``ast`` and evaluated without ``eval``::

    [[interlocks]]
    name = "warm while current flows"
    when = "temperature > expected_tc - 0.3 and abs(current) > 1"
    action = "pause"
"""
from __future__ import annotations

import ast
import logging
import operator
from dataclasses import dataclass

from labctl.errors import ConfigError, InstrumentError, LabctlError

log = logging.getLogger("labctl.safety")

QUANTITIES = {
    "temperature": "sample temperature (K)",
    "current": "current-source setpoint (A)",
    "voltage": "last tap voltage (V)",
    "field": "last gaussmeter reading (T)",
    "position": "stage position (mm)",
}
CONSTANTS = ("expected_tc", "working_temperature", "max_field", "quench_voltage")
_OPS = {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.USub: operator.neg}


class SafetyTrip(LabctlError):
    """A quench or an interlock stopped the step (the current is already at zero)."""

    def __init__(self, message: str, event: dict):
        super().__init__(message)
        self.event = event


class QuenchDetected(SafetyTrip):
    pass


class InterlockTripped(SafetyTrip):
    pass


class SupplyFault(SafetyTrip):
    """The current source does not deliver its setpoint (compliance, CV mode, open circuit)."""


def compile_rule(text: str, where: str) -> ast.Expression:
    """Parse and check an interlock expression; ConfigError names what is wrong."""
    if len(text) > 2000:
        raise ConfigError(f"{where}: the rule is {len(text)} characters long; keep it under 2000")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ConfigError(f"{where}: {text!r} is not an expression ({e.msg})") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{where}: the rule is nested too deeply; write it with fewer parentheses") from None
    depth = _depth(tree)
    if depth > 40:
        raise ConfigError(f"{where}: the rule is nested {depth} levels deep (at most 40); simplify it")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in QUANTITIES and node.id not in CONSTANTS and node.id != "abs":
            raise ConfigError(f"{where}: unknown name {node.id!r}; use {', '.join([*QUANTITIES, *CONSTANTS])}")
        allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.BinOp, ast.UnaryOp, ast.Name,
                   ast.Load, ast.Constant, ast.Call, *_OPS)
        if not isinstance(node, allowed):
            raise ConfigError(f"{where}: {type(node).__name__} is not allowed in an interlock rule")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id == "abs"):
            raise ConfigError(f"{where}: only abs(...) may be called in an interlock rule")
        if isinstance(node, ast.Call) and (len(node.args) != 1 or node.keywords):
            raise ConfigError(f"{where}: abs(...) takes exactly one argument")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ConfigError(f"{where}: {node.value!r} is not a number")
    return tree


def _depth(node, limit: int = 1000) -> int:
    """Nesting depth of an AST, without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        if d < limit:
            stack.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def compile_checked(tree: ast.Expression):
    """Turn a checked rule into a function of the live values (built once, cheap to call).

    An unknown quantity (None) makes a comparison false; dividing by zero gives
    None; ``and``/``or`` stop early.
    """
    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.BoolOp):
            parts = [build(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda v: all(f(v) for f in parts)
            return lambda v: any(f(v) for f in parts)
        if isinstance(node, ast.Compare):
            first = build(node.left)
            rest = [(_OPS[type(op)], build(c)) for op, c in zip(node.ops, node.comparators)]

            def compare(v):
                left = first(v)
                for op, g in rest:
                    right = g(v)
                    if left is None or right is None or not op(left, right):
                        return False
                    left = right
                return True
            return compare
        if isinstance(node, ast.BinOp):
            fa, fb, op = build(node.left), build(node.right), _OPS[type(node.op)]
            is_div = isinstance(node.op, ast.Div)

            def binop(v):
                a, b = fa(v), fb(v)
                if a is None or b is None or (is_div and b == 0):
                    return None  # unknown (e.g. voltage / current at zero current)
                return op(a, b)
            return binop
        if isinstance(node, ast.UnaryOp):
            f, op = build(node.operand), _OPS[type(node.op)]
            return lambda v: None if (x := f(v)) is None else op(x)
        if isinstance(node, ast.Call):
            f = build(node.args[0])
            return lambda v: None if (x := f(v)) is None else abs(x)
        if isinstance(node, ast.Name):
            name = node.id
            return lambda v: v.get(name)
        if isinstance(node, ast.Constant):
            value = node.value
            return lambda v: value
        raise ValueError(type(node).__name__)

    return build(tree)


def evaluate(tree: ast.Expression, values: dict) -> bool:
    """Evaluate a checked rule once (the guard keeps compiled rules)."""
    return bool(compile_checked(tree)(values))


@dataclass
class Rule:
    name: str
    when: str
    action: str
    tree: ast.Expression

    def __post_init__(self):
        self.test = compile_checked(self.tree)


class Guard:
    """Checks quench and interlocks; ``tick()`` raises SafetyTrip after a safe ramp-down."""

    def __init__(self, station, on_event=None):
        self.station = station
        self.on_event = on_event  # callback(event dict) -> None, set by the runner
        self.control = None  # RunControl, for pause actions
        cfg = station.config
        self.quench_voltage = cfg.voltmeter.limits.quench_voltage
        sample = cfg.sample
        self.constants = {"quench_voltage": self.quench_voltage, "max_field": cfg.gaussmeter.limits.max_field,
                          "expected_tc": sample.expected_tc if sample else None,
                          "working_temperature": sample.working_temperature if sample else None}
        self.rules = [Rule(r.name, r.when, r.action, compile_rule(r.when, f"interlocks[{k}].when"))
                      for k, r in enumerate(cfg.interlocks)]
        # quantities the rules use: read afresh at every tick, never a stale reading
        self.needs = {n.id for r in self.rules for n in ast.walk(r.tree) if isinstance(n, ast.Name)}
        self.events: list[dict] = []
        self.quench_detection = True
        self._busy = False

    def values(self, voltage: float | None = None) -> dict:
        st = self.station
        roles = st.roles
        vals = dict(self.constants)
        cs = roles.get("current_source")
        vals["current"] = cs.setpoint if cs is not None else 0.0
        vm = roles.get("voltmeter")
        vals["voltage"] = voltage if voltage is not None else getattr(vm, "last_voltage", None)
        gm = roles.get("gaussmeter")
        vals["field"] = getattr(gm, "last_field", None)
        tc = roles.get("temperature")
        vals["temperature"] = getattr(tc, "last_temperature", None)
        stage = roles.get("stage")
        vals["position"] = getattr(stage, "last_position", None)
        return vals

    def watch_tick(self) -> None:
        """The continuous watch (run every guard period during waits and readings): only
        while current flows, and not while the station is already shutting down."""
        cs = self.station.roles.get("current_source")
        if cs is None or abs(cs.setpoint) == 0 or self.station.shutting_down:
            return
        self.tick("during a reading or wait")

    def tick(self, where: str = "") -> None:
        """Read the tap voltage while current flows; trip on a quench or a rule."""
        if self._busy:
            return
        self._busy = True
        try:
            cs = self.station.roles.get("current_source")
            vm = self.station.roles.get("voltmeter")
            voltage = None
            overload = None
            if cs is not None and abs(cs.setpoint) > 0:
                # read the supply back while current flows: a lost link shows up now (not at the
                # next command), and so does a supply that stopped delivering its setpoint
                measured = cs.current
                tolerance = max(min(0.5, 0.1 * cs.limits.max_current), 0.02 * abs(cs.setpoint))  # A: read-back accuracy
                problem = cs.health()  # fault bits, compliance: what a programmed-level read-back hides
                if problem:
                    self._trip(SupplyFault, "supply", where, current=cs.setpoint, measured=measured,
                               message=f"current source: {problem}; current ramped down")
                if abs(measured - cs.setpoint) > tolerance:
                    self._trip(SupplyFault, "supply", where, current=cs.setpoint, measured=measured,
                               message=f"current source delivers {measured:.3g} A instead of {cs.setpoint:g} A "
                                       "(voltage compliance or open circuit); current ramped down")
            if self.quench_detection and cs is not None and vm is not None and abs(cs.setpoint) > 0:
                try:
                    voltage = vm.read_voltage()
                except InstrumentError as e:
                    if "overload" in str(e):  # an overloaded nanovoltmeter across the taps is a quench too
                        voltage, overload = float("inf"), e
                    else:
                        raise
                if abs(voltage) > self.quench_voltage:
                    seen = f"{voltage * 1e6:.1f} uV" if overload is None else f"overload ({overload})"
                    self._trip(QuenchDetected, "quench", where, voltage=voltage, current=cs.setpoint,
                               message=f"quench: tap voltage {seen} > {self.quench_voltage * 1e6:.1f} uV "
                                       f"at {cs.setpoint:g} A; current ramped down at the emergency rate")
            if self.rules:
                roles = self.station.roles
                temp = roles.get("temperature")
                if temp is not None:
                    temp.read()  # refresh last_temperature
                if "field" in self.needs and roles.get("gaussmeter") is not None:
                    roles["gaussmeter"].read_field()  # refresh last_field (a stale one re-trips after resume)
                if "position" in self.needs and roles.get("stage") is not None:
                    roles["stage"].position  # refresh last_position
                if "voltage" in self.needs and voltage is None and vm is not None:
                    try:
                        voltage = vm.read_voltage()
                    except InstrumentError as e:
                        if "overload" not in str(e):
                            raise
                        voltage = float("inf")
                vals = self.values(voltage)
                for rule in self.rules:
                    if rule.test(vals):
                        self._trip(InterlockTripped, "interlock", where, rule=rule.name, action=rule.action,
                                   values={k: vals[k] for k in QUANTITIES},
                                   message=f"interlock '{rule.name}' ({rule.when}) tripped: {rule.action}")
        finally:
            self._busy = False

    def _trip(self, exc_type, kind: str, where: str, message: str, **details) -> None:
        st = self.station
        event = {"event": kind, "where": where, "time": st.clock.now(), "message": message, **details}
        action = details.get("action", "abort")
        if action == "pause" and self.control is None:  # nobody to resume: abort instead
            action = details["action"] = event["action"] = "abort (unattended)"
            message = event["message"] = f"{message}; nobody to resume: abort (unattended)"
        if kind == "quench" or action.startswith("abort"):
            try:
                st.safe_shutdown(message, emergency=True)
            except LabctlError as e:
                event["message"] += f"; shutdown failed: {e}"
        log.error(message)
        self.events.append(event)
        if self.on_event:
            self.on_event(event)
        if kind == "interlock" and action == "pause":
            from labctl.errors import Paused

            self.control.pause()  # the checkpoint ramps the current down and waits for the user
            raise Paused(message)  # leave the point now; it is measured again after resume
        raise exc_type(message, event)
