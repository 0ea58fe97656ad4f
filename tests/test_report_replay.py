"""Reports (labctl report), replays (labctl replay) and the shipped example datasets."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labctl.catalog import Catalog
from labctl.cli import main as labctl
from labctl.protocol import STEPS, Plan, execute, parse_sets
from labctl.replay import replay, schedule
from labctl.report import build_report
from labctl.runner import RunControl, Runner
from labctl.station import Station
from labctl.stream import LiveStream

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"
YBCO = Path("/work/shared/datasets/ybco_RT_ntu_foep_a4.txt")
PROTOCOL_FIGURES = {"rt.png", "vi.png", "normal-control_field.png", "normal-control_ratios.png",
                    "radial-field_field.png", "radial-field_ratios.png", "radial-scan.png", "residual.png"}


def run_steps(data_dir: Path, steps: list[str], sets=(), **sim) -> Path:
    station = Station.from_file(None, seed=sim.pop("seed", 5), **sim)
    overrides, options = parse_sets(list(sets), steps)
    if len(steps) == 1:
        options["scan"] = True
    runner = Runner(station, Catalog(data_dir), LiveStream(), RunControl())
    with station.session():
        state = execute(station, Plan(steps, overrides, options), data_dir, runner)
    assert state["status"] == "completed", state.get("reason")
    return Path(state["path"])


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory) -> Path:
    # the whole protocol, a little lighter than the defaults (test time)
    return run_steps(tmp_path_factory.mktemp("runs"), list(STEPS),
                     ["radial-field.repeats=2", "normal-control.repeats=1", "residual.currents=0.2,0.4,0.6,0.8"])


def figure_links(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)


def assert_drawn(png: Path) -> None:
    from matplotlib.image import imread

    assert png.is_file() and png.stat().st_size > 5000, png
    img = imread(png)
    assert img.ndim == 3 and img.shape[0] >= 400 and img.shape[1] >= 700, (png, img.shape)
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.05, f"{png.name} looks blank"
    assert float((rgb.mean(axis=2) < 0.9).mean()) > 0.01, f"{png.name}: almost nothing drawn"


def csv_rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


# ------------------------------------------------------------------ report
def test_report_of_a_protocol_run(protocol_run, capsys):
    assert labctl(["report", str(protocol_run)]) == 0
    assert "report.md" in capsys.readouterr().out
    out = protocol_run / "report"
    text = (out / "report.md").read_text(encoding="utf-8")
    links = figure_links(text)
    assert set(links) == PROTOCOL_FIGURES and len(links) == len(PROTOCOL_FIGURES)
    assert {p.name for p in out.glob("*.png")} == PROTOCOL_FIGURES
    for name in links:
        assert_drawn(out / name)
    # tables with units: Tc, Ic, the model comparison, the station, the verdict
    assert re.search(r"Tc midpoint \(50 %\) \| 7\.\d+ K", text)
    assert re.search(r"Ic \(1 µV/cm\).*\| 4\d\d\.\d+ ± [\d.]+ A", text)
    assert "| meissner | best |" in text and "λ = " in text
    assert "Verdict: best model: meissner" in text
    assert "LAMBDA,GEN8-600" in text and "TCPIP0::127.0.0.1::5600::SOCKET" in text
    assert "virtual-lab truth" in text
    assert "Traceback" not in text and "could not be drawn" not in text


def test_report_of_a_single_step_run_as_html(tmp_path):
    run = run_steps(tmp_path / "runs", ["radial-field"], ["radial-field.ic=315", "radial-field.repeats=1",
                                                         "radial-field.currents=0.6,0.8,0.9"],
                    sample="Nb", field_model="bean")
    report = build_report(run.name, data_dir=run.parent, fmt="html", embed=True, output=tmp_path / "html")
    html = report.path.read_text(encoding="utf-8")
    assert report.path.name == "report.html"
    assert [f.name for f in report.figures] == ["radial-field_field.png", "radial-field_ratios.png"]
    assert html.count('src="data:image/png;base64,') == 2
    assert "best model: bean" in html
    for f in report.figures:
        assert_drawn(f)


def test_report_skips_failed_and_missing_steps(protocol_run, tmp_path):
    run = tmp_path / protocol_run.name
    shutil.copytree(protocol_run, run, ignore=shutil.ignore_patterns("report"))
    state = json.loads((run / "parameters.json").read_text())
    state["steps"]["rt"].update(status="failed", reason="temperature controller timed out")
    for step in ("vi", "normal-control", "radial-field", "radial-scan"):
        del state["steps"][step]
        next(run.glob(f"*-{step}.csv")).unlink()
    state["status"], state["reason"] = "failed", "step rt: temperature controller timed out"
    (run / "parameters.json").write_text(json.dumps(state))
    report = build_report(run)
    text = report.path.read_text(encoding="utf-8")
    assert "Step **failed**: temperature controller timed out" in text
    assert text.count("Step **not run**") == 4
    assert [f.name for f in report.figures] == ["residual.png"]
    assert figure_links(text) == ["residual.png"]


def test_report_bad_input_is_one_line(tmp_path, capsys):
    assert labctl(["report", "no-such-run", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labctl: error: no run folder or data file 'no-such-run'") and err.count("\n") == 1


# ------------------------------------------------------------------ replay
def collect(stream: LiveStream) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    stream.subscribe(lambda topic, payload: events.append((topic, payload)))
    return events


def test_replay_max_streams_every_row_in_order(protocol_run):
    stream = LiveStream()
    events = collect(stream)
    n = replay(protocol_run, stream, None)
    csvs = sorted(protocol_run.glob("*.csv"))
    assert n == sum(len(csv_rows(p)) for p in csvs)
    for k, path in enumerate(csvs):
        step = path.stem.split("-", 1)[1]
        mine = [(t, p) for t, p in events if p.get("step") == step]
        assert mine[0] == ("step", {"step": step, "kind": step, "path": str(path), "replay": True,
                                    "status": "running"})
        assert mine[-1][0] == "step" and mine[-1][1]["status"] == "completed"
        progress = [p["percent"] for t, p in mine if t == "progress"]
        assert progress and progress[-1] == pytest.approx(100.0) and progress == sorted(progress)
        rows = [p["row"] for t, p in mine if t == "row"]
        expected = csv_rows(path)
        assert len(rows) == len(expected) == mine[-1][1]["rows"]
        for got, (_, want) in zip(rows, expected.iterrows()):
            assert list(got) == list(want.index)
            for col, value in want.items():
                if isinstance(value, str):
                    assert got[col] == value
                else:
                    assert got[col] == pytest.approx(float(value), rel=1e-12, abs=0), (path.name, col)
    # the steps come in the run's order
    order = [p["step"] for t, p in events if t == "step" and p["status"] == "running"]
    assert order == list(STEPS)


def test_replay_waits_the_recorded_time_divided_by_the_speed(protocol_run):
    path = next(protocol_run.glob("*-radial-field.csv"))
    times = csv_rows(path)["Time (s)"].to_numpy(float)
    sleeps: list[float] = []
    stream = LiveStream()
    at_row: list[float] = []
    stream.subscribe(lambda topic, payload: at_row.append(sum(sleeps)) if topic == "row" else None)
    assert replay(path, stream, 10.0, sleep=sleeps.append) == len(times)
    assert max(sleeps) <= 0.1 + 1e-12  # cut into slices: a stop request is seen quickly
    assert sum(sleeps) == pytest.approx(times[-1] / 10.0, rel=1e-9)
    assert np.allclose(at_row, times / 10.0, rtol=1e-9, atol=1e-9)  # row k is sent at t_k / N
    # rows recorded at the same instant go out together; time running backwards gives no wait
    assert schedule([5.0, 5.0, 3.0, 8.0], 4, 2.0) == [2.5, 0.0, 0.0, 1.5]
    assert schedule([1.0, 2.0], 2, None) == [0.0, 0.0]


def test_replay_stops_when_asked(protocol_run):
    stream = LiveStream()
    events = collect(stream)
    count = {"rows": 0}
    stream.subscribe(lambda t, p: count.__setitem__("rows", count["rows"] + (t == "row")))
    n = replay(protocol_run, stream, 1.0, should_stop=lambda: count["rows"] >= 5, sleep=lambda s: None)
    assert n == 5
    last = [p for t, p in events if t == "step"][-1]
    assert last["step"] == "rt" and last["status"] == "aborted" and last["rows"] == 5


def test_replay_cli(protocol_run, capsys):
    assert labctl(["replay", str(protocol_run), "--max", "--quiet"]) == 0
    total = sum(len(csv_rows(p)) for p in protocol_run.glob("*.csv"))
    assert capsys.readouterr().out.strip() == f"replayed {total} row(s) from {protocol_run}"
    assert labctl(["replay", str(protocol_run), "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err


@pytest.mark.skipif(not YBCO.exists(), reason="shared dataset not present")
def test_replay_of_a_foreign_file():
    stream = LiveStream()
    events = collect(stream)
    n = replay(YBCO, stream, None, columns="Temperature (K),Resistance (mohm)")
    lines = [ln for ln in YBCO.read_text(errors="replace").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    rows = [p["row"] for t, p in events if t == "row"]
    assert n == len(rows) > 100 and n <= len(lines)
    first = [float(x) for x in lines[-n].replace(",", " ").split()]  # headerless: the data are the last n lines
    assert rows[0]["Temperature (K)"] == pytest.approx(first[0])
    assert rows[0]["Resistance (ohm)"] == pytest.approx(first[1] * 1e-3)  # mohm -> ohm
    assert [p["status"] for t, p in events if t == "step"] == ["running", "completed"]


# ---------------------------------------------------------------- examples
def test_examples_are_small_and_tracked():
    records = json.loads((EXAMPLES / "examples.json").read_text(encoding="utf-8"))
    kinds = {r["kind"] for r in records}
    assert kinds == {"rt", "vi", "radial-field", "radial-scan", "residual"}
    assert {r["field_model"] for r in records if r["kind"] == "radial-field"} == \
        {"uniform", "linear-j", "meissner", "bean", "intermediate"}
    files = [p for p in EXAMPLES.rglob("*") if p.is_file() and "report" not in p.parts]
    assert all(p.stat().st_size < 300_000 for p in files)
    assert sum(p.stat().st_size for p in files) < 2_000_000
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"`{r['file']}`" in readme for r in records)
    if shutil.which("git") and (REPO / ".git").exists():
        names = [str(EXAMPLES / r["file"]) for r in records]
        res = subprocess.run(["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True, check=False)
        assert res.stdout.strip() == "", f"ignored by git: {res.stdout}"


def test_examples_analyse_to_their_documented_truth():
    from labctl.analysis import analyze

    for r in json.loads((EXAMPLES / "examples.json").read_text(encoding="utf-8")):
        res = analyze(EXAMPLES / r["file"], kind=r["kind"], bootstrap=0, n_mc=20)
        exp = r["expect"]
        if r["kind"] == "rt":
            assert res["tc_mid"] == pytest.approx(r["tc"], abs=0.05), r["file"]
        elif r["kind"] == "vi":
            assert res["ic"] == pytest.approx(r["ic_working"], rel=0.03), r["file"]
        elif r["kind"] == "radial-field":
            assert res["best_model"] == r["field_model"] == exp["best_model"], r["file"]
        elif r["kind"] == "radial-scan":
            rad, j = np.array(res["radius"]), np.array(res["j"])
            inner = rad < 0.0095
            if exp["j_shape"] == "linear":
                assert np.corrcoef(rad[inner], j[inner])[0, 1] > 0.95, r["file"]
            else:
                assert np.abs(j[inner]).max() < 0.05 * np.abs(j).max(), r["file"]
        elif r["kind"] == "residual":
            assert res["decreasing"] is exp["decreasing"], r["file"]
    run = analyze(EXAMPLES / "protocol_Pb_meissner", bootstrap=0, n_mc=20)
    assert run["steps"]["04-radial-field.csv"]["best_model"] == "meissner"
    assert run["steps"]["03-normal-control.csv"]["best_model"] == "uniform"


EXAMPLE_PROTOCOL = Path(__file__).resolve().parents[1] / "data" / "examples" / "protocol_Pb_meissner"


def test_replay_default_plays_a_whole_example_protocol_in_about_a_minute():
    from labctl.replay import DEFAULT_DURATION, auto_speed, load_steps, recorded_duration

    steps = load_steps(EXAMPLE_PROTOCOL)
    recorded = recorded_duration(steps)
    assert recorded > 3600  # hours of virtual time: 1x would look frozen
    assert auto_speed(steps) == pytest.approx(recorded / DEFAULT_DURATION)
    sleeps: list[float] = []
    stream = LiveStream()
    progress = []
    stream.subscribe(lambda t, p: progress.append(p) if t == "progress" else None)
    rows = replay(EXAMPLE_PROTOCOL, stream, sleep=sleeps.append)  # the default speed
    assert rows == sum(len(s.rows) for s in steps)
    assert 45 <= sum(sleeps) <= 75  # about a minute of wall time
    # progress for the whole replay: overall percent rising to 100, ETA falling to 0
    overall = [p["overall"] for p in progress]
    etas = [p["eta_s"] for p in progress]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(100.0)
    assert etas == sorted(etas, reverse=True) and etas[-1] == pytest.approx(0.0, abs=1e-9)
    assert etas[0] == pytest.approx(sum(sleeps) - sum(sleeps[:1]), rel=0.2)
    # a short recording is never sped up past 1x
    short = [s for s in steps if s.name == "residual"]
    assert auto_speed(short, target=1e6) == 1.0


def test_replay_cli_says_speed_and_eta(capsys, monkeypatch):
    import labctl.replay as R

    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    assert labctl(["replay", str(EXAMPLE_PROTOCOL / "04-radial-field.csv")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"recorded over \d+:\d\d, at [\d.]+× \(about 1:00\); --speed N or --max to change", out)
    assert "whole run" in out
