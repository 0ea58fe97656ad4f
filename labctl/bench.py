"""``labctl bench``: benchmarks (never timed assertions in tests).

Each figure is the median of several repetitions with min and max; the
results are printed and written to docs/benchmarks.md with the machine.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import pymeasure
    import pyvisa

    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python "
            f"{platform.python_version()}, pymeasure {pymeasure.__version__}, pyvisa {pyvisa.__version__}, "
            f"numpy {numpy.__version__}")


def bench_transports(queries: int = 2000, repeats: int = 5) -> list[dict]:
    """Queries/s of the stock LakeShore425 driver (RDGFIELD?) per transport."""
    from pymeasure.instruments.lakeshore import LakeShore425

    from sim_instruments.lab import VirtualLab
    from sim_instruments.server import LabServer

    rows = []
    lab = VirtualLab("Pb", "meissner", speedup="max", seed=0)  # no virtual time passes: pure transport cost
    server = LabServer(lab, base_port=0).start()
    try:
        for name, address, library in [
            ("in-process (pyvisa VisaLibraryBase)", "TCPIP0::127.0.0.1::5603::SOCKET", lab.visa_library),
            ("TCP loopback (pyvisa-py socket)", server.resources["gaussmeter"], "@py"),
        ]:
            g = LakeShore425(address, visa_library=library, read_termination="\r\n", write_termination="\r\n")
            g.field  # warm up
            rates = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(queries):
                    g.field
                rates.append(queries / (time.perf_counter() - t0))
            g.adapter.close()
            rows.append({"what": f"stock LakeShore425.field, {name}", "unit": "queries/s", **_stats(rates)})
    finally:
        server.stop()
    return rows


SUITES = {"transports": bench_transports}


def render(results: dict[str, list[dict]]) -> str:
    lines = [f"# Benchmarks\n", f"Latest `labctl bench` run: {datetime.now().isoformat(timespec='seconds')}  ",
             f"Machine: {machine()}\n",
             "Each figure is the median of several repetitions (min–max in brackets), measured in one run.\n"]
    for suite, rows in results.items():
        lines.append(f"## {suite}\n")
        lines.append("| what | median | min – max | unit | runs |")
        lines.append("|---|---:|---:|---|---:|")
        for r in rows:
            lines.append(f"| {r['what']} | {r['median']:.4g} | {r['min']:.4g} – {r['max']:.4g} | {r['unit']} | {r['n']} |")
        for note in {r.get("note") for r in rows if r.get("note")}:
            lines.append(f"\n{note}")
        lines.append("")
    return "\n".join(lines)


def _bench(args) -> int:
    from labctl.errors import ConfigError

    names = args.suite or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITES)}")
    results = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = SUITES[name]()
    text = render(results)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written to {args.output}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (median of repeats, side by side with pymeasure)")
    p.add_argument("suite", nargs="*", help=f"which: {', '.join(SUITES)} (default: all)")
    p.add_argument("--output", default="docs/benchmarks.md", help="markdown file to write (default docs/benchmarks.md)")
    p.set_defaults(func=_bench)
