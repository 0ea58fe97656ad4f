"""``labctl station commission``: the guided first power-up of a station's instruments.

Step by step, with a prompt before every change and the reading after it, in the
order the manuals and the safety notes ask (docs/hardware.md):

1. identities and error queues (queries only);
2. temperature controller: heater off (confirmed by ``RANGE?``), setpoint = present
   temperature with ``HTRSET``/``OUTMODE`` from the station file, the low range
   briefly, then off again;
3. stage: motor on, home search (``OR``, waited on with ``MD?``), soft limits, then a
   small move and its read-back;
4. voltmeter configured (fixed range, filters, NPLC), then 1 A into the sample (1 mA
   on a 6221) with the current and the tap voltage read back, then zero and output
   off, read back;
5. gaussmeter configured (``TYPE?``, DC mode), then the probe zero (``ZPROBE``, ``*OPC?``);
6. error queues again.

Each prompt takes ``y`` (do it), ``n`` (skip this step) or ``q`` (stop: what is left
is skipped, the station is shut down safely).  A checklist of what passed is printed
at the end; the exit code is 0 only when nothing failed.  It runs on the virtual lab
too (``--yes`` answers every prompt there).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

from labctl.errors import ConfigError, LabctlError

PASS, FAIL, SKIP = "PASS", "FAIL", "skipped"


@dataclass
class Item:
    name: str
    status: str = SKIP
    detail: str = ""


@dataclass
class Commission:
    station: object
    ask: Callable[[str], str]
    say: Callable[[str], None] = print
    items: list[Item] = field(default_factory=list)
    stopped: bool = False

    # ------------------------------------------------------------ helpers
    def confirm(self, change: str) -> bool:
        """Prompt before a change: True to do it; 'n' skips, 'q' stops the commissioning."""
        if self.stopped:
            return False
        while True:
            answer = (self.ask(f"{change} -- do it? [y]es / [n]o, skip / [q]uit: ") or "").strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no", "s", "skip"):
                return False
            if answer in ("q", "quit"):
                self.stopped = True
                return False

    def step(self, name: str, fn: Callable[[], str], change: str | None = None) -> Item:
        """Run one checklist item: prompt (if it changes something), run, report the reading."""
        item = Item(name)
        self.items.append(item)
        if change is not None and not self.confirm(change):
            self.say(f"  - {name}: skipped")
            return item
        if self.stopped and change is None:
            return item
        try:
            item.detail = fn() or ""
            item.status = PASS
            self.say(f"  ok  {name}: {item.detail}")
        except LabctlError as e:
            item.status, item.detail = FAIL, str(e)
            self.say(f"  FAIL {name}: {e}")
        except Exception as e:  # a driver or link failure: recorded, never a traceback
            item.status, item.detail = FAIL, f"{type(e).__name__}: {e}"
            self.say(f"  FAIL {name}: {item.detail}")
        return item

    def role(self, name: str):
        return self.station.roles.get(name)

    # -------------------------------------------------------------- steps
    def identities(self) -> None:
        self.say("1. identities and error queues (queries only)")
        for name, role in self.station.roles.items():
            self.step(f"{name} identity", role.identity)
        for name, err in self.station.errors.items():
            self.items.append(Item(f"{name} identity", FAIL, str(err)))
            self.say(f"  FAIL {name} identity: {err}")
        self.error_queues("before")

    def error_queues(self, when: str) -> None:
        for name, role in self.station.roles.items():
            reader = getattr(role, "errors", None) or getattr(role.instrument, "read_errors", None)
            if reader is None:
                continue

            def read(reader=reader):
                errors = reader()
                if errors:
                    raise LabctlError(f"error queue holds {errors}")
                return "empty"

            self.step(f"{name} error queue ({when})", read)

    def temperature(self) -> None:
        t = self.role("temperature")
        if t is None:
            return
        self.say("2. temperature controller: heater off -> low range -> off")

        def off():
            t.heater_off()
            return f"RANGE? = {t.read_heater_range()}, T({t.control_input}) = {t.read(t.control_input):.4f} K"

        def configure():
            sp = t.configure_loop()
            r, m, u, _ = t.heater_setup_tuple()
            return f"setpoint {sp:.4f} K (present temperature), HTRSET {r},{m},{u:g}, OUTMODE closed loop"

        def low():
            t.set_heater_range("low")
            t.clock.sleep(2.0)
            heater = t.query("HTR?", lambda: float(t._out.output))
            return f"RANGE? = {t.read_heater_range()}, heater output {heater:.1f} %"

        self.step("heater off", off, "Switch the 336 heater off (RANGE 0)")
        self.step("loop setup", configure, "Set the setpoint to the present temperature, HTRSET and OUTMODE "
                                           "from the station file (heater stays off)")
        self.step("heater low range", low, "Switch the heater to the LOW range")
        self.step("heater off again", off, "Switch the heater off again")

    def stage(self) -> None:
        s = self.role("stage")
        if s is None:
            return
        self.say("3. stage: motor on, home search, soft limits, a small move")
        lim = s.limits

        def home():
            s.setup()
            return f"homed: position {s.position:.4f} mm, soft limits [{lim.min_position:g}, {lim.max_position:g}] mm"

        self.step("stage home", home, "Motor on, home search (OR) -- the stage MOVES to its home switch")
        if not s.referenced:
            self.items.append(Item("stage small move", SKIP, "not homed"))
            return
        here = s.position
        target = round(min(max(here + 0.5, lim.min_position), lim.max_position), 3)

        def move():
            s.move_to(target)
            got = s.position
            if abs(got - target) > 0.01:
                raise LabctlError(f"stage at {got:.4f} mm after a move to {target:g} mm")
            return f"moved to {got:.4f} mm (target {target:g} mm)"

        self.step("stage small move", move, f"Move the stage from {here:.3f} mm to {target:g} mm")

    def current(self) -> None:
        cs, vm = self.role("current_source"), self.role("voltmeter")
        if cs is None:
            return
        amps = 1e-3 if cs.config.driver == "keithley6221" else 1.0
        self.say(f"4. {amps:g} A into the sample, current and voltage read back, then zero")
        if vm is not None:
            self.step("voltmeter setup", lambda: (vm.setup() or f"range {vm.range:g} V, "
                                                                f"NPLC {vm.config.nplc:g}; reads {vm.read_voltage():.4g} V"),
                      "Configure the 2182A (*RST, fixed range, filters, NPLC)")
        self.step("current source setup", lambda: (cs.setup() or f"output {'ON' if cs.output_enabled else 'off'}, "
                                                                 f"{cs.current:.4g} A"),
                  "Configure the current source (output off, 0 A, voltage limit from the station file)")
        on = self.step(f"{amps:g} A on", lambda: self._current_on(cs, vm, amps),
                       f"Output ON and ramp to {amps:g} A -- current flows in the sample")
        if on.status == SKIP:
            return
        self.step("current to zero, output off", lambda: self._current_off(cs),
                  "Ramp to 0 A and switch the output off")

    @staticmethod
    def _current_on(cs, vm, amps) -> str:
        cs.ramp_to(amps)
        got = cs.current
        tol = max(0.05 * amps, getattr(cs, "zero_tolerance", 0.0))
        volts = vm.read_voltage() if vm is not None else float("nan")
        if abs(got - amps) > tol:
            raise LabctlError(f"read back {got:.4g} A for {amps:g} A programmed")
        return f"read back {got:.4g} A, tap voltage {volts:.4g} V"

    @staticmethod
    def _current_off(cs) -> str:
        cs.ramp_to(0.0)
        cs.output_off()
        verify = getattr(cs, "verify_off", None)
        if verify is not None:
            return verify()
        on, got = cs.output_enabled, cs.current
        if on or abs(got) > max(0.01, getattr(cs, "zero_tolerance", 0.01)):
            raise LabctlError(f"read back output {'ON' if on else 'off'}, {got:.4g} A")
        return f"output off, {got:.3g} A"

    def probe(self) -> None:
        g = self.role("gaussmeter")
        if g is None:
            return
        self.say("5. gaussmeter: probe type, DC mode, probe zero")
        self.step("gaussmeter setup", lambda: (g.setup() or f"probe type {g.probe_type}, "
                                                            f"range {g.full_scale:g} T, reads {g.read_field():.4g} T"),
                  "Configure the 425 (tesla, DC mode, range for the probe fitted)")
        self.step("probe zero", lambda: (g.zero_probe() or f"reads {g.read_field():.3g} T after ZPROBE"),
                  "Zero the probe (ZPROBE) -- no current in the sample, probe at its operating temperature")

    # ---------------------------------------------------------------- run
    def run(self) -> list[Item]:
        st = self.station
        st.connect(tolerant=True)
        try:
            self.identities()
            for part in (self.temperature, self.stage, self.current, self.probe):
                if self.stopped:
                    break
                part()
            if not self.stopped:
                self.say("6. error queues after commissioning")
                self.error_queues("after")
        finally:
            try:
                st.safe_shutdown("commissioning")
            except LabctlError as e:
                self.items.append(Item("safe shutdown", FAIL, str(e)))
            st.close()
        self.checklist()
        return self.items

    def checklist(self) -> None:
        self.say("")
        self.say("checklist:")
        for item in self.items:
            mark = {PASS: "[x]", FAIL: "[!]", SKIP: "[ ]"}[item.status]
            self.say(f"  {mark} {item.name}: {item.status}{' - ' + item.detail if item.detail else ''}")
        n = {s: sum(1 for i in self.items if i.status == s) for s in (PASS, FAIL, SKIP)}
        self.say(f"{n[PASS]} passed, {n[FAIL]} failed, {n[SKIP]} skipped")

    @property
    def ok(self) -> bool:
        return not any(i.status == FAIL for i in self.items)


def main(args) -> int:
    from labctl.station import Station

    station = Station.from_file(args.station)
    if getattr(args, "yes", False) and not station.config.is_sim:
        raise ConfigError("--yes answers the prompts for you: only on the virtual lab (backend = \"sim\"); "
                          "on real instruments answer each step yourself")
    if getattr(args, "yes", False):
        ask = lambda prompt: (print(prompt + "y"), "y")[1]  # noqa: E731
    else:
        def ask(prompt: str) -> str:
            try:
                return input(prompt)
            except EOFError:
                return "q"
    c = Commission(station, ask=ask, say=lambda msg: print(msg, flush=True))
    print(f"commissioning station '{station.config.station.name}' ({station.config.source_path})", flush=True)
    c.run()
    return 0 if c.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(None))
