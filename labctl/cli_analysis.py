"""``labctl analyze``: analyse a run folder or a data file (ours or foreign).

``labctl/cli.py`` calls :func:`register` with its sub-parsers object; the
handler is stored as both ``func`` and ``handler`` in the parsed namespace and
returns the exit code: 0 ok, 2 bad input (one ``labctl: error: ...`` line on
stderr, never a traceback), 1 an unexpected internal error.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

KIND_CHOICES = ("rt", "vi", "radial-field", "radial-scan", "residual")

EPILOG = """\
examples:
  labctl analyze data/examples/protocol_Pb_meissner   every step of a run folder
  labctl analyze data/examples/vi_Pb_6.8K.csv --json
  labctl analyze ../shared/datasets/rebco_77K_0T_0deg.txt --kind vi --tap-spacing 12.89mm
  labctl analyze ../shared/datasets/ybco_RT_ntu_foep_a4.txt --columns "Temperature (K),Resistance (mohm)"
  labctl analyze YOUR.csv --kind vi --map "Current (A)=I_src" --map "Voltage (uV)=V_sample"   (your columns)
"""


def register(subparsers) -> None:
    """Add the ``analyze`` sub-command to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "analyze",
        help="analyse a run folder or a data file (R(T), V-I, radial field, scan, residual)",
        description="Analyse a recorded run folder (every step) or one data file: our "
                    "pymeasure-format CSV, or a foreign CSV/TSV file. All results are in SI units.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run, handler=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="run folder, data file, run id in the data home, or 'latest'")
    p.add_argument("--data-dir", help="where run ids are looked up (default: $LABCTL_DATA, else the per-user "
                                      "data folder)")
    p.add_argument("--kind", choices=KIND_CHOICES,
                   help="kind of data (default: from the procedure name, the file name or the columns)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (SI units)")
    p.add_argument("--map", action="append", default=[], metavar="TARGET=SOURCE",
                   help="use column SOURCE of the file as TARGET, e.g. 'Current (A)=I_src'; a unit in "
                        "TARGET declares SOURCE's unit ('Voltage (uV)=V1'); repeatable")
    p.add_argument("--tap-spacing", metavar="VALUE",
                   help="voltage-tap spacing: metres, or with a unit, e.g. 12.89mm (default: the file's "
                        "'Tap spacing' parameter)")
    p.add_argument("--columns", metavar="NAMES",
                   help="comma-separated column names for a file without a header row, e.g. "
                        "'Temperature (K),Resistance (mohm)'")
    p.add_argument("--skip-rows", type=int, metavar="N", help="skip N lines at the top of the file")
    p.add_argument("--delimiter", metavar="CHAR",
                   help="column delimiter (default: detected): ',', ';', '\\t' or ' ' for white space")
    p.add_argument("--sample-radius", metavar="VALUE",
                   help="sample radius R for the radial models (default: the file's 'Sample radius' "
                        "or 10mm)")
    p.add_argument("--bootstrap", type=int, default=100, metavar="N",
                   help="bootstrap resamples for the V-I errors (0: covariance only; default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap, Monte Carlo)")


def _options(args) -> dict:
    opts = {
        "mapping": list(args.map or []),
        "columns": args.columns,
        "skip_rows": args.skip_rows,
        "delimiter": args.delimiter,
        "tap_spacing": args.tap_spacing,
        "sample_radius": args.sample_radius,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
    }
    return {k: v for k, v in opts.items() if v not in (None, [])}


def _error(message: str) -> None:
    print(f"labctl: error: {message}", file=sys.stderr)


def run(args) -> int:
    """Handler of ``labctl analyze``; returns the exit code."""
    from labctl.analysis import AnalysisError, LoadError, analyze, summary_text
    from labctl.errors import LabctlError

    path = Path(args.path)
    if not path.exists():  # a run id or 'latest' in the data home
        from labctl import datadir

        home = datadir.resolve(getattr(args, "data_dir", None))
        found = datadir.find_run(args.path, home)
        if found is None:
            _error(f"{path}: no such file or folder, nor a run id in {home.describe()}")
            return 2
        path = found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy noise on odd data; results say it
            result = analyze(path, kind=args.kind, **_options(args))
    except (LoadError, AnalysisError) as exc:
        _error(str(exc))
        return 2
    except LabctlError as exc:
        _error(str(exc))
        return getattr(exc, "exit_code", 1) or 1
    except Exception as exc:  # noqa: BLE001 - the user gets one line, not a traceback
        _error(f"{path}: internal error in the analysis ({exc.__class__.__name__}: {exc})")
        return 1

    code = 0
    if result.get("kind") == "run":
        steps = result["steps"]
        for step in steps.values():
            if step.get("error"):
                _error(step["error"])
                code = 2
        if args.json:
            print(json.dumps(steps, indent=2, ensure_ascii=False, allow_nan=False))
        else:
            print(summary_text(result))
        return code
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(summary_text(result))
    return code


def main(argv=None) -> int:
    """Stand-alone entry point (``python -m labctl.cli_analysis PATH ...``)."""
    parser = argparse.ArgumentParser(prog="labctl")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["analyze", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
