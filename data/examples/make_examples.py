"""Record the example datasets of data/examples/ from the virtual lab (known truth).

    .venv/bin/python data/examples/make_examples.py          # rewrites the CSVs, examples.json, README.md

Each example is one step run in-process on the built-in virtual-lab station
(`labctl run <step> --sample X --field-model Y --seed S --set ...`), copied here
under a descriptive name.  The hidden truth comes from the run's station.json
(`sim` entry); the script then analyses every file and checks that the
analysis finds that truth (it exits 1 otherwise), and writes the machine-readable
`examples.json` (used by tests/test_report_replay.py) and README.md.

One complete protocol run is kept as a run folder (`protocol_Pb_meissner/`) for
`labctl report` and `labctl replay`.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from labctl.analysis import analyze
from labctl.catalog import Catalog
from labctl.materials import PRESETS
from labctl.protocol import STEPS, Plan, execute, parse_sets
from labctl.runner import Runner
from labctl.station import Station

IC = {name: m.critical_current(m.working_temperature, 0.01) for name, m in PRESETS.items()}

# file, step, sample, field model, seed, --set values, what the analysis should find
EXAMPLES = [
    ("rt_Pb.csv", "rt", "Pb", "meissner", 11, [],
     {"tc_mid": 7.196}),
    ("rt_Nb.csv", "rt", "Nb", "bean", 12, [],
     {"tc_mid": 9.26}),
    ("vi_Pb_6.8K.csv", "vi", "Pb", "meissner", 13, [],
     {"ic": IC["Pb"]}),
    ("vi_Nb_8K.csv", "vi", "Nb", "bean", 14, [],
     {"ic": IC["Nb"]}),
    ("radial-field_Pb_uniform_normal-control.csv", "normal-control", "Pb", "meissner", 15,
     ["currents=50,100,200"],
     {"best_model": "uniform"}),
    ("radial-field_Sn_linear-j.csv", "radial-field", "Sn", "linear-j", 16,
     [f"ic={IC['Sn']:.2f}"],
     {"best_model": "linear-j"}),
    ("radial-field_Pb_meissner.csv", "radial-field", "Pb", "meissner", 17,
     [f"ic={IC['Pb']:.2f}"],
     {"best_model": "meissner"}),
    ("radial-field_Nb_bean.csv", "radial-field", "Nb", "bean", 18,
     [f"ic={IC['Nb']:.2f}", "currents=0.6,0.8,0.86,0.9,0.95"],
     {"best_model": "bean"}),
    ("radial-field_Pb_intermediate_7K.csv", "radial-field", "Pb", "intermediate", 19,
     ["temperature=7.0", "current_mode=A", "currents=260,340,420,500,580"],
     {"best_model": "intermediate", "quench_voltage": 0.01}),
    ("radial-scan_Sn_linear-j.csv", "radial-scan", "Sn", "linear-j", 20,
     [f"current={0.6 * IC['Sn']:.1f}", "r_start=1", "n_points=37"],
     {"j_shape": "linear"}),
    ("radial-scan_Pb_meissner.csv", "radial-scan", "Pb", "meissner", 21,
     [f"current={0.6 * IC['Pb']:.1f}"],
     {"j_shape": "surface"}),
    ("residual_Pb.csv", "residual", "Pb", "meissner", 22,
     [f"ic={IC['Pb']:.2f}"],
     {"decreasing": False}),
]
PROTOCOL_RUN = ("protocol_Pb_meissner", "Pb", "meissner", 1)


def station_file(tmp: Path, quench_voltage: float | None) -> Path | None:
    """The built-in virtual-lab station, with the quench threshold raised when asked
    (the intermediate state above the Silsbee current is resistive: ~0.1 mV across the taps)."""
    if quench_voltage is None:
        return None
    text = (REPO / "labctl" / "stations" / "sim.toml").read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^quench_voltage\s*=\s*[^#\n]+", f"quench_voltage = {quench_voltage:g} ", text)
    assert n == 1, "sim.toml: no quench_voltage line"
    path = tmp / "station.toml"
    tmp.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_steps(tmp: Path, steps: list[str], sample: str, model: str, seed: int, sets: list[str],
              quench_voltage: float | None = None) -> Path:
    station = Station.from_file(station_file(tmp, quench_voltage), sample=sample, field_model=model, seed=seed)
    overrides, options = parse_sets([f"{steps[0]}.{s}" if len(steps) == 1 else s for s in sets], steps)
    if len(steps) == 1:
        options["scan"] = True
    runner = Runner(station, Catalog(tmp))
    with station.session():
        state = execute(station, Plan(steps, overrides, options), tmp, runner)
    if state["status"] != "completed":
        raise SystemExit(f"{steps}: {state['status']}: {state.get('reason')}")
    return Path(state["path"])


def check(name: str, kind: str, result: dict, expect: dict) -> str:
    """What the analysis found, checked against the truth; returns the README text."""
    if kind == "rt":
        tc = result["tc_mid"]
        assert abs(tc - expect["tc_mid"]) < 0.05, (name, tc)
        return (f"Tc mid {tc:.3f} K (cooling), onset {result['tc_onset']:.3f} K, zero {result['tc_zero']:.3f} K; "
                f"cooling and warming sweeps")
    if kind == "vi":
        ic = result["ic"]
        assert abs(ic / expect["ic"] - 1) < 0.03, (name, ic)
        return f"Ic {ic:.1f} ± {result['ic_err']:.1g} A, n = {result['n']:.1f} (criterion 1 µV/cm over 10 mm)"
    if kind == "radial-field":
        assert result["best_model"] == expect["best_model"], (name, result["best_model"])
        r = result["ratios"]

        def ratio(x):
            if x["status"] == "ok":
                return f"{x['value']:.3f}"
            return "undefined" if x["status"] == "undefined" else f"> {x['value']:.3g}"

        extra = " (pooled; shape changes with current)" if r["B2/B1"].get("current_dependent") else ""
        return (f"best model **{result['best_model']}**; B2/B1 = {ratio(r['B2/B1'])}, "
                f"B3/B1 = {ratio(r['B3/B1'])}{extra}")
    if kind == "radial-scan":
        import numpy as np

        rr, j = np.array(result["radius"]), np.array(result["j"])
        inner = j[rr < 0.0095]
        if expect["j_shape"] == "linear":
            slope = np.polyfit(rr[rr < 0.0095], inner, 1)[0]
            assert slope > 0 and np.corrcoef(rr[rr < 0.0095], inner)[0, 1] > 0.95, name
            return "J(r) rises linearly with r (J = A r); enclosed current at the wall = I"
        assert abs(inner).max() < 0.05 * abs(j).max(), name
        return "J ≈ 0 inside, all current at the surface (spike at r = R)"
    if kind == "residual":
        assert result["decreasing"] == expect["decreasing"], name
        return f"slope {result['slope']:.2g} ± {result['slope_err']:.1g} V/A: no significant decrease"
    raise AssertionError(kind)


def main() -> int:
    warnings.simplefilter("ignore")
    records = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        for k, (name, step, sample, model, seed, sets, expect) in enumerate(EXAMPLES):
            run = run_steps(tmp / f"x{k}", [step], sample, model, seed, sets, expect.get("quench_voltage"))
            src = run / f"01-{step}.csv"
            shutil.copyfile(src, HERE / name)
            snap = json.loads((run / "station.json").read_text())
            params = json.loads((run / "parameters.json").read_text())["steps"][step]["parameters"]
            kind = "radial-field" if step == "normal-control" else step
            result = analyze(HERE / name, kind=kind)
            found = check(name, kind, result, expect)
            truth = snap["sim"]
            temperature = params.get("temperature") or None
            records.append({
                "file": name, "kind": kind, "step": step, "sample": sample,
                "field_model": "uniform" if step == "normal-control" else model,
                "temperature": temperature, "tc": truth["tc"],
                "ic_working": truth["ic_at_working_temperature"],
                "working_temperature": truth["working_temperature"], "seed": seed,
                "command": f"labctl run {step} --sample {sample} --field-model {model} --seed {seed}"
                           + "".join(f" --set {s}" for s in sets)
                           + (f" (station: sim.toml with voltmeter.limits.quench_voltage = {expect['quench_voltage']:g})"
                              if expect.get("quench_voltage") else ""),
                "expect": expect, "found": found,
            })
            print(f"{name:48s} {found}")
        folder, sample, model, seed = PROTOCOL_RUN
        run = run_steps(tmp / "protocol", list(STEPS), sample, model, seed, [])
        dest = HERE / folder
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir()
        for f in sorted(run.iterdir()):
            if f.suffix in (".csv", ".json", ".log"):
                shutil.copyfile(f, dest / f.name)
        for jf in ("station.json", "parameters.json"):  # no machine-specific paths in shipped files
            text = (dest / jf).read_text().replace(str(REPO) + "/", "")
            (dest / jf).write_text(text)
        state = json.loads((dest / "parameters.json").read_text())
        print(f"{folder + '/':48s} Tc {state['derived']['tc']:.3f} K, Ic {state['derived']['ic']:.1f} A")
    (HERE / "examples.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    write_readme(records, state)
    return 0


def write_readme(records: list[dict], protocol_state: dict) -> None:
    lines = [
        "# Example datasets",
        "",
        "Recorded from the virtual lab (`sim_instruments/`) with a known hidden truth by",
        "`make_examples.py` (`.venv/bin/python data/examples/make_examples.py` rewrites",
        "everything here, and fails if the analysis does not find the truth). Each file is",
        "one step's pymeasure-format CSV as `labctl run` writes it; `examples.json` holds",
        "the same table for programs (tests/test_report_replay.py checks it).",
        "",
        "```sh",
        "labctl analyze data/examples/radial-field_Nb_bean.csv",
        "labctl report data/examples/radial-field_Nb_bean.csv --output /tmp/bean-report",
        "labctl replay data/examples/protocol_Pb_meissner --speed 1000",
        "labctl report data/examples/protocol_Pb_meissner --output /tmp/pb-report",
        "```",
        "",
        "Truth: the sample preset (`labctl/materials.py`) and the field model the virtual",
        "lab uses below Tc; Ic is the preset's critical current at its working temperature",
        "(type I: the Silsbee current 2πR Hc(T); R = 10 mm). Above Tc every model is the",
        "uniform (normal-state) current.",
        "",
        "| file | kind | sample | field model (truth) | T | truth | the analysis finds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        t = f"{r['temperature']:.3g} K" if r["temperature"] else "sweep"
        truth = f"Tc {r['tc']:g} K, Ic({r['working_temperature']:g} K) = {r['ic_working']:.0f} A"
        if r["file"].startswith("radial-field_Pb_intermediate"):
            from labctl.materials import PRESETS as P

            ic7 = P["Pb"].critical_current(7.0, 0.01)
            truth += (f"; Silsbee Ic(7.0 K) = {ic7:.0f} A: currents 260–580 A are above it (recorded with "
                      f"the quench threshold raised to {r['expect']['quench_voltage'] * 1e3:g} mV: the "
                      "intermediate state is resistive)")
        if r["step"] == "normal-control":
            truth += "; measured above Tc"
        model = r["field_model"] if r["kind"] in ("radial-field", "radial-scan") else f"(not probed; lab: {r['field_model']})"
        lines.append(f"| `{r['file']}` | {r['kind']} | {r['sample']} | {model} | {t} | {truth} | "
                     f"{r['found']} |")
    d = protocol_state["derived"]
    lines += [
        "",
        "The commands that recorded each file are in `examples.json` (`command`).",
        "",
        "## A complete run folder",
        "",
        (f"`{PROTOCOL_RUN[0]}/`: `labctl run protocol --sample Pb --field-model meissner --seed {PROTOCOL_RUN[3]}` "
        "(all six steps, `station.json`, `parameters.json`, `run.log`). Truth: Pb, Meissner (London) screening, "
        f"Tc 7.196 K, Ic(6.8 K) = {IC['Pb']:.0f} A; the protocol measured Tc {d['tc']:.3f} K and "
        f"Ic {d['ic']:.1f} A, and the radial field comes out `meissner` (no field at r1, r2; B2/B1 undefined, "
        "B3/B1 only a lower bound). `labctl report` writes its report into the folder's `report/` unless "
        "`--output` is given."),
        "",
    ]
    (HERE / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
