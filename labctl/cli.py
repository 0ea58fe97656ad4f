"""Command line: ``labctl <verb> ...``.  Errors are one line, never a traceback.

Exit codes: 0 success, 1 failure (instrument, run aborted or failed),
2 bad input (station file, parameters, arguments).
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

from labctl.errors import ConfigError, InstrumentError, LabctlError


def _one_line(text: str) -> str:
    """Control characters (a newline or CR inside a value the user typed) shown escaped:
    an error message stays one line on the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2, in the user's words
        self.exit(2, f"labctl: error: {_one_line(_user_words(message))} (see `{self.prog} --help`)\n")


_POSITIONAL_WORDS = {"what": "step", "verb": "command", "VERB": "command", "station_verb": "action", "sim_verb": "action",
                     "protocol_verb": "action", "ACTION": "action", "STEP": "step"}


def _user_words(message: str) -> str:
    """argparse's 'argument what: invalid choice: 'foo' (choose from 'a', 'b')' -> "unknown step 'foo'; choose
    one of: a, b" (no internal destination names)."""
    import re

    m = re.match(r"argument ([^:]+): invalid choice: (.+?) \(choose from (.+)\)$", message)
    if m:
        name, value, choices = m.groups()
        names = [n.strip() for n in name.split("/")]
        what = next((_POSITIONAL_WORDS[n] for n in names if n in _POSITIONAL_WORDS), None)
        if what is None:
            what = next((n for n in names if n.startswith("--")), names[0]).lstrip("-").replace("_", " ")
        return f"unknown {what} {value}; choose one of: {choices.replace(chr(39), '')}"
    m = re.match(r"argument ([^:]+): (.+)$", message)
    if m:
        names = [n.strip() for n in m.group(1).split("/")]
        shown = next((n for n in names if n.startswith("--")), None) or _POSITIONAL_WORDS.get(names[0], names[0])
        detail = re.sub(r"^invalid (float|int) value: (.+)$",
                        lambda k: f"{k.group(2)} is not {'a number' if k.group(1) == 'float' else 'a whole number'}",
                        m.group(2))
        return f"{shown}: {detail}"
    return message


def _station_check(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from labctl.config import ROLES
    from labctl.station import Station

    station = Station.from_file(args.station)
    station.connect(tolerant=True)
    console = Console(highlight=False, width=max(Console().width, 140))
    cfg = station.config
    title = f"station '{cfg.station.name}' ({cfg.source_path}; backend {cfg.station.backend or 'system VISA'!r})"
    table = Table(title=title, show_lines=False)
    for col in ("role", "driver", "address", "identity / problem", "state"):
        table.add_column(col, overflow="fold")
    snapshot = station.snapshot()["instruments"]
    for role in ROLES:
        rc = getattr(cfg, role)
        if role in station.errors:
            table.add_row(role, rc.driver, rc.address, "[red]NOT ANSWERING[/red] (see below)", "")
            continue
        entry = snapshot.get(role, {})
        if "error" in entry:
            table.add_row(role, rc.driver, rc.address, "[red]ERROR[/red] (see below)", "")
            station.errors[role] = entry["error"]
            continue
        state = ", ".join(f"{k}={_fmt(v)}" for k, v in entry.get("state", {}).items())
        table.add_row(role, rc.driver, rc.address, entry.get("identity", ""), state)
    console.print(table)
    station.close()  # a check only queries: it leaves every instrument as it found it
    if station.errors:
        for role, err in station.errors.items():
            print(f"labctl: {role} did not answer: {err}", file=sys.stderr)
        return 1
    console.print("all five roles answered")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _sim_serve(args) -> int:
    import time

    from sim_instruments.lab import VirtualLab
    from sim_instruments.server import LabServer

    lab = VirtualLab(sample=args.sample, field_model=args.field_model, temperature=args.temperature,
                     speedup=args.speedup, seed=args.seed, base_port=args.base_port)
    try:
        trace = None
        if args.trace:
            from labctl.iotrace import IOTrace

            trace = IOTrace(args.trace, clock=lab.clock)
        server = LabServer(lab, trace=trace).start()
    except OSError as e:
        raise ConfigError(f"cannot listen on 127.0.0.1 ports {args.base_port}-{args.base_port + len(lab.ports) - 1} "
                          f"({e}); "
                          "choose another --base-port") from None
    for role, model, _ in lab.listing():
        print(f"{role} {model} {server.resources[role]}", flush=True)
    truth = lab.world.describe()
    print(f"# sample {truth['sample']}, field model {truth['field_model']}, Tc {truth['tc']:g} K, "
          f"Ic({truth['working_temperature']:g} K) = {truth['ic_at_working_temperature']:.1f} A, "
          f"speedup {args.speedup}", file=sys.stderr, flush=True)
    try:
        print("ready", flush=True)  # inside the try: a Ctrl-C right after "ready" still stops cleanly
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _speedup(text: str):
    if text.lower() in ("max", "inf"):
        raise argparse.ArgumentTypeError("the TCP server needs a finite speed-up (clients share wall time)")
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    from labctl.materials import PRESETS
    from labctl.physics import FIELD_MODELS

    parser = _Parser(prog="labctl", description="Instrument control, virtual lab and analysis for the "
                                                "superconducting-cylinder field-profile experiment.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to the terminal")
    from labctl.cli_params import VersionAction, sample_preset

    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    station = sub.add_parser("station", help="station configuration and instruments")
    ssub = station.add_subparsers(dest="station_verb", metavar="ACTION", parser_class=_Parser)
    ssub.required = True
    check = ssub.add_parser("check", help="connect every role and print identity and state")
    check.add_argument("--station", help="station TOML file (default: the built-in virtual lab, sim.toml)")
    check.set_defaults(func=_station_check)
    from labctl.iotrace import TraceAction

    check.add_argument("--trace", metavar="FILE", action=TraceAction,
                       help="record every command and reply (timestamp, role) in FILE")
    commission = ssub.add_parser("commission", help="guided first power-up of real instruments, step by step")
    commission.add_argument("--station", help="station TOML file (default: the built-in virtual lab, sim.toml)")
    commission.add_argument("--trace", metavar="FILE", action=TraceAction,
                            help="record every command and reply (timestamp, role) in FILE")
    commission.add_argument("--yes", action="store_true", help="answer yes to every prompt (virtual lab only)")
    commission.set_defaults(func=lambda args: __import__("labctl.commission", fromlist=["main"]).main(args))

    sim = sub.add_parser("sim", help="the virtual lab")
    simsub = sim.add_subparsers(dest="sim_verb", metavar="ACTION", parser_class=_Parser)
    simsub.required = True
    serve = simsub.add_parser("serve", help="serve the virtual lab's instruments as SCPI sockets on 127.0.0.1")
    serve.add_argument("--base-port", type=int, default=5600, help="first port (default 5600)")
    serve.add_argument("--sample", default="Pb", type=sample_preset, choices=list(PRESETS), help="sample preset (default Pb)")
    serve.add_argument("--field-model", default=None, choices=list(FIELD_MODELS),
                       help="hidden truth B(r) below Tc (default: the preset's)")
    serve.add_argument("--temperature", type=float, default=None,
                       help="starting temperature in K (default: the preset's working temperature)")
    serve.add_argument("--speedup", type=_speedup, default=1.0, help="virtual time per wall second (default 1)")
    serve.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    serve.add_argument("--trace", metavar="FILE", help="record every message and reply the instruments "
                                                        "receive and send (timestamp, role) in FILE")
    serve.set_defaults(func=_sim_serve)

    for module in ("labctl.cli_run", "labctl.cli_analysis", "labctl.bench", "labctl.report", "labctl.replay", "labctl.gui.cli",
                   "labctl.cli_params", "labctl.export", "labctl.service.cli", "labctl.archive.cli",
                   "labctl.service.client"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as e:
            if not (e.name and (module == e.name or module.startswith(e.name + "."))):
                raise  # a real import error inside the module must show
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # run.log gets INFO; the terminal only what was asked
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except LabctlError as e:
        print(f"labctl: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, read-only folder, a file that vanished
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"labctl: error: {_one_line(e.strerror or str(e))}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: one line for the user, the traceback kept for us
        path = _save_traceback()
        print(f"labctl: internal error: {type(e).__name__}: {_one_line(str(e))[:300]} "
              f"(traceback saved in {path}; please report it)", file=sys.stderr)
        return 1


def _save_traceback() -> str:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="labctl-traceback-", suffix=".txt")
    with open(fd, "w", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return path


if __name__ == "__main__":
    sys.exit(main())
