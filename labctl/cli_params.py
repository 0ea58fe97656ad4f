"""``labctl params [STEP]`` and ``labctl protocol example``: the parameters a user can set, in the
user's words (label, the name to use in --set and protocol files, unit, default, allowed range)."""
from __future__ import annotations

import argparse
import json
import sys

from labctl.errors import ConfigError

# the settings docs/my-protocol.toml makes (the example printed by `labctl protocol example` sets the same)
EXAMPLE_SETTINGS = {
    "protocol": {"scan": True, "fractions": "0.2,0.4,0.6,0.8", "normal_factor": 1.3},
    "rt": {"sweeps": "cooling", "ramp_rate": 1.0},
    "vi": {"current_step": 5.0, "dwell": 30.0},
    "radial-field": {"repeats": 2},
    "radial-scan": {"n_points": 11},
}
EXAMPLE_NOTES = {
    ("protocol", "scan"): "include the radial scan",
    ("protocol", "fractions"): "radial-field currents as fractions of the measured Ic, each in (0, 1]",
    ("protocol", "normal_factor"): "normal-control temperature = 1.3 x measured Tc (allowed 1.05 to 5)",
    ("rt", "sweeps"): "cooling only (cooling+warming shows the thermal hysteresis)",
    ("radial-field", "repeats"): "full passes over the radii",
    ("radial-scan", "n_points"): "positions between the innermost and the outermost hole",
}
DERIVED_NOTE = {  # what the protocol derives when a parameter is not set
    ("rt", "t_high"): "1.25 x the sample's expected Tc", ("rt", "t_low"): "0.8 x expected Tc",
    ("rt", "expected_tc"): "the station's [sample] expected_tc",
    ("vi", "current_max"): "the station's max_current", ("vi", "temperature"): "the sample's working temperature",
    ("vi", "tap_spacing"): "the station's [sample] tap_spacing",
    ("normal-control", "temperature"): "normal_factor x measured Tc",
    ("normal-control", "currents"): "0.25, 0.5, 0.75 x measured Ic",
    ("radial-field", "ic"): "measured by the V–I step", ("radial-field", "currents"): "[protocol] fractions",
    ("radial-scan", "current"): "0.6 x measured Ic", ("residual", "ic"): "measured by the V–I step",
}


def _station(args):
    from labctl.config import load_station

    return load_station(getattr(args, "station", None))


def _params(args) -> int:
    from labctl.paramspec import STEP_TITLES, fmt_value, step_parameters
    from labctl.protocol import PROTOCOL_OPTIONS, STEPS

    config = _station(args)
    steps = list(STEPS)
    if args.step:
        step = args.step.strip().lower()
        if step not in STEPS and step != "protocol":
            raise ConfigError(f"no step named {args.step!r}; steps are {', '.join(STEPS)} (or 'protocol' for "
                              "the protocol options)")
        steps = [step]
    if args.json:
        out = {}
        for step in steps:
            if step == "protocol":
                out[step] = [{"name": n, "type": t.__name__, "default": d, "help": h}
                             for n, (t, d, h) in PROTOCOL_OPTIONS.items()]
                continue
            out[step] = [{"name": p.name, "label": p.label, "units": p.units, "type": p.kind, "default": p.default,
                          "minimum": p.minimum, "maximum": p.maximum, "choices": list(p.choices or []) or None,
                          "limited_by": p.limit_note or None} for p in step_parameters(step, config)]
        print(json.dumps(out, indent=1, default=str))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 120))
    if not args.step:
        table = Table(title=escape("protocol options ([protocol] in a protocol file, --set protocol.NAME=VALUE)"))
        for col in ("name", "type", "default", "meaning"):
            table.add_column(col)
        for n, (t, d, h) in PROTOCOL_OPTIONS.items():
            table.add_row(n, t.__name__, fmt_value(d), h)
        console.print(table)
    for step in steps:
        if step == "protocol":
            table = Table(title="protocol options")
            for col in ("name", "type", "default", "meaning"):
                table.add_column(col)
            for n, (t, d, h) in PROTOCOL_OPTIONS.items():
                table.add_row(n, t.__name__, fmt_value(d), h)
            console.print(table)
            continue
        table = Table(title=escape(f"{step}: {STEP_TITLES.get(step, step)}  (--set {step}.NAME=VALUE, or [{step}] "
                                   "in a protocol file)"))
        for col in ("name", "parameter", "unit", "default", "allowed"):
            table.add_column(col, overflow="fold")
        for p in step_parameters(step, config):
            allowed = p.range_text + (f" (station: {p.limit_note})" if p.limit_note else "")
            table.add_row(p.name, escape(p.label), p.units, fmt_value(p.default), escape(allowed))
        console.print(table)
    console.print(escape(f"limits from {config.source_path}; a protocol run derives Tc, Ic and temperatures from "
                         "the station's [sample] and earlier steps unless a value is set (`labctl protocol example`)"))
    return 0


def example_text(config=None) -> str:
    """A commented protocol TOML that runs as is: the settings of docs/my-protocol.toml, every other
    parameter listed as a comment with its unit, default and allowed range."""
    from labctl.paramspec import STEP_TITLES, fmt_value, step_parameters, toml_value
    from labctl.protocol import PROTOCOL_OPTIONS, STEPS

    lines = [
        "# A protocol file for `labctl run protocol --protocol FILE` (made by `labctl protocol example`;",
        "# docs/my-protocol.toml makes the same settings).",
        "#",
        "# [protocol] holds the protocol options; every other table is one step",
        f"# ({', '.join(STEPS)}) and sets that step's parameters by name.",
        "# Values here are overridden by --set on the command line, and everything not",
        "# given comes from the station's [sample] and from the results measured earlier",
        "# in the same run (Tc from R(T), Ic from V-I).  Units are the procedures' own:",
        "# K, A, s, K/min, mm for positions and radii, m for tap spacing and sample radius.",
        "# Uncomment a line to set it; `labctl params STEP` lists the same parameters.",
        "",
        "[protocol]",
    ]
    for name, (_t, default, help_text) in PROTOCOL_OPTIONS.items():
        value = EXAMPLE_SETTINGS["protocol"].get(name, default)
        note = EXAMPLE_NOTES.get(("protocol", name), help_text)
        lines.append(f"{name} = {toml_value(value)}".ljust(34) + f"# {note}")
    for step in STEPS:
        lines += ["", f"# {STEP_TITLES.get(step, step)}", f"[{step}]"]
        chosen = EXAMPLE_SETTINGS.get(step, {})
        for p in step_parameters(step, config):
            unit = f" {p.units}" if p.units else ""
            rng = p.range_text
            if p.name in chosen:
                note = EXAMPLE_NOTES.get((step, p.name), p.label + (f" ({p.units})" if p.units else ""))
                lines.append(f"{p.name} = {toml_value(chosen[p.name])}".ljust(34) + f"# {note}")
                continue
            derived = DERIVED_NOTE.get((step, p.name))
            default = f"derived: {derived}" if derived else f"default {fmt_value(p.default)}{unit}"
            lines.append(f"# {p.name} = {toml_value(p.default)}".ljust(34)
                         + f"# {p.label}; {default}" + (f"; allowed {rng}" if rng else ""))
    return "\n".join(lines) + "\n"


def _protocol_example(args) -> int:
    sys.stdout.write(example_text(_station(args)))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labctl")
    except PackageNotFoundError:
        return "0.1.0 (not installed)"


class VersionAction(argparse.Action):
    """``labctl --version``: labctl's version and the versions that matter for data (pymeasure, Python)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import platform

        try:
            from importlib.metadata import version

            pm = version("pymeasure")
        except Exception:  # noqa: BLE001
            pm = "?"
        sys.stdout.write(f"labctl {_version()} (pymeasure {pm}, Python {platform.python_version()})\n")
        parser.exit(0)


def register(sub) -> None:
    from labctl.protocol import STEPS

    p = sub.add_parser("params", help="every parameter of a step: name, unit, default and allowed range",
                       description="List the parameters a run step takes, by the names --set and protocol files "
                                   "use, with unit, default and the range allowed on the station (the "
                                   "station's limits narrow the procedures' own ranges).",
                       epilog="examples:\n  labctl params\n  labctl params vi\n  labctl params radial-field "
                              "--station lab.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", nargs="?", metavar="STEP", help=f"one of {', '.join(STEPS)}, or protocol (default: all)")
    p.add_argument("--station", help="station TOML whose limits apply (default: the built-in virtual lab)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_params)

    proto = sub.add_parser("protocol", help="protocol files: print a commented example",
                           description="Protocol files (TOML) for `labctl run protocol --protocol FILE`.")
    psub = proto.add_subparsers(dest="protocol_verb", metavar="ACTION")
    psub.required = True
    ex = psub.add_parser("example", help="print a commented protocol file that runs as is",
                         description="Print a protocol TOML with every step's parameters (set ones active, the "
                                     "rest commented with unit, default and allowed range).",
                         epilog="example:\n  labctl protocol example > p.toml && labctl run protocol --protocol p.toml",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--station", help="station TOML whose limits the ranges show (default: the built-in virtual lab)")
    ex.set_defaults(func=_protocol_example)


def sample_preset(text: str) -> str:
    """``--sample nb`` -> 'Nb': sample presets in any letter case (argparse ``type=``; ``choices`` still lists them)."""
    from labctl.materials import PRESETS

    lookup = {name.lower(): name for name in PRESETS}
    return lookup.get(str(text).strip().lower(), text)
