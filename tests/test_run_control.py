"""Run control you can trust (issue 13) and resume re-validation (issue 11 item 5):
every exit path ends in a recorded status with a reason, an end time and a run.log
line; signals only queue; an unattended pause ends by itself; derived inputs come
only from the same sample and station; resume applies the station file in force."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import free_base_port, stop, wait_ready
from stations import tcp_station_text

from labctl.catalog import Catalog
from labctl.errors import ConfigError
from labctl.protocol import STEPS, Plan, execute, load_protocol_file, new_run_dir, parse_sets
from labctl.runner import RunControl, Runner
from labctl.station import Station
from labctl.stream import LiveStream

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "rt.sweeps=cooling", "--set", "vi.current_step=10", "--set", "radial-field.repeats=1",
         "--set", "radial-scan.n_points=11"]
TIMEOUT = 120  # generous: the machine is shared; nothing here asserts a duration


def labctl(*args, env=None, cwd=None, timeout=TIMEOUT, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "labctl", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO, env={**os.environ, **(env or {})}, stdin=stdin)


def start(*args, env=None, preexec_fn=None):
    return subprocess.Popen([sys.executable, "-m", "labctl", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def wait_started(data: Path, proc, known: set[str], timeout: float = TIMEOUT) -> str:
    """The id of the new run once its run.log says it started (the run is in the catalog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if data.is_dir():
            for d in data.iterdir():
                if d.name not in known and (d / "run.log").is_file() and " start: " in (d / "run.log").read_text():
                    known.add(d.name)
                    return d.name
        if proc.poll() is not None:
            raise AssertionError(f"labctl ended before the run started: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the run did not start")


def wait_for_line(path: Path, needle: str, proc, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and needle in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"labctl ended before {needle!r}: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no {needle!r} in {path}")


def entry(data: Path, run_id: str) -> dict:
    conn = sqlite3.connect(data / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    steps = conn.execute("SELECT status FROM runs WHERE parent=?", (run_id,)).fetchall()
    conn.close()
    return {**dict(row), "step_statuses": [s[0] for s in steps]}


def assert_recorded_abort(data: Path, run_id: str, proc, out: str, err: str, signal_words: str) -> None:
    e = entry(data, run_id)
    assert proc.returncode == 1, (proc.returncode, err)
    assert e["status"] == "aborted", (run_id, e["status"], e["reason"], err)
    assert signal_words in (e["reason"] or ""), e["reason"]
    assert e["ended"], e
    assert "running" not in e["step_statuses"] and "interrupted" not in e["step_statuses"], e["step_statuses"]
    log = (data / run_id / "run.log").read_text()
    assert f"run {run_id} end: aborted" in log, log[-2000:]
    assert "abort requested" in log
    assert f"labctl resume {run_id}" in err, err
    assert "Traceback" not in err
    state = json.loads((data / run_id / "parameters.json").read_text())
    assert state["status"] == "aborted" and state["reason"] == e["reason"]


# ----------------------------------------------------------------------------- signals
def test_sigterm_and_double_sigint_at_random_moments_always_record_an_abort(tmp_path):
    """20 tries, two processes at a time sharing one data folder (so run folder names
    made in the same second must not collide): SIGTERM, or SIGINT then SIGINT, at a
    random moment of a protocol -- shortly after a random step starts, or after it
    completes (while its analysis runs, between steps) -- always ends in 'aborted'
    with reason and end time in the catalog, an end line in run.log and the resume
    command on stderr."""
    data = tmp_path / "runs"
    rng = random.Random(13)
    anchors = [f"step {s} start" for s in STEPS] + [f"step {s} completed" for s in STEPS[:-1]]
    known: set[str] = set()
    outcomes: list[tuple[str, str]] = []
    for pair in range(10):
        how = "SIGTERM" if pair % 2 == 0 else "SIGINT,SIGINT"
        procs = [start("run", "protocol", "--quiet", "--data-dir", data, *SHORT) for _ in range(2)]
        ids = [wait_started(data, p, known) for p in procs]
        assert len(set(ids)) == 2
        moments = [(rng.choice(anchors), rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.3)) for _ in ids]
        errors: list[BaseException] = []

        def signal_at(run_id, anchor, delay, gap):
            try:
                pid = entry(data, run_id)["pid"]
                proc = next(p for p in procs if p.pid == pid)
                wait_for_line(data / run_id / "run.log", anchor, proc)
                time.sleep(delay)
                for k, name in enumerate(how.split(",")):
                    if k:
                        time.sleep(gap)
                    proc.send_signal(getattr(signal, name))
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=signal_at, args=(run_id, *m)) for run_id, m in zip(ids, moments)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        finished = {p.pid: (p, *p.communicate(timeout=TIMEOUT)) for p in procs}
        assert not errors, errors
        for run_id, (anchor, _, _) in zip(ids, moments):
            p, out, err = finished[entry(data, run_id)["pid"]]
            words = "SIGTERM" if how == "SIGTERM" else "SIGINT) twice"
            assert_recorded_abort(data, run_id, p, out, err, words)
            outcomes.append((anchor, entry(data, run_id)["reason"]))
    assert len(known) == 20 and len(outcomes) == 20
    assert len({anchor for anchor, _ in outcomes}) >= 6  # spread over the protocol
    # between steps, too: some tries are aimed at the end of a step (where it lands, during
    # the analysis or in the next step, depends on the machine's speed; each is asserted above)
    assert any(anchor.endswith("completed") for anchor, _ in outcomes)


def test_sigint_without_a_terminal_ends_by_itself(tmp_path):
    data = tmp_path / "runs"
    proc = start("run", "protocol", "--quiet", "--data-dir", data, "--pause-timeout", "1", *SHORT)
    run_id = wait_started(data, proc, set())
    wait_for_line(data / run_id / "run.log", "step vi start", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)  # nobody resumes: it must end by itself
    assert "No terminal: the run aborts in 1 s" in out + err
    assert_recorded_abort(data, run_id, proc, out, err, "paused without a terminal for 1 s")
    log = (data / run_id / "run.log").read_text()
    assert log.index("pause requested") < log.index("paused at a safe point") < log.index("abort requested")


def test_a_run_started_with_nohup_outlives_the_terminal_and_says_so(tmp_path):
    """`nohup labctl run ... &` asks for the run to survive a closed terminal: SIGHUP, ignored
    by the launcher, stays ignored (the run goes on under its guard) and the run says how
    to stop it; without nohup SIGHUP aborts (test_sighup_over_tcp..., test_safety_tcp)."""
    data = tmp_path / "runs"
    proc = start("run", "protocol", "--quiet", "--data-dir", data, *SHORT,
                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    run_id = wait_started(data, proc, set())
    wait_for_line(data / run_id / "run.log", "step vi start", proc)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err[-2000:]
    assert entry(data, run_id)["status"] == "completed"
    said = " ".join((out + err).split())
    assert "SIGHUP is ignored (started with nohup)" in said and f"kill -TERM {proc.pid}" in said
    assert "SIGHUP is ignored" in (data / run_id / "run.log").read_text()


def test_unattended_pause_is_resumed_by_labctl_resume(tmp_path):
    """`labctl resume RUN` while the run is paused in another process resumes it (SIGUSR1)."""
    data = tmp_path / "runs"
    proc = start("run", "protocol", "--quiet", "--data-dir", data, "--pause-timeout", "600", *SHORT)
    run_id = wait_started(data, proc, set())
    wait_for_line(data / run_id / "run.log", "step vi start", proc)
    proc.send_signal(signal.SIGINT)
    wait_for_line(data / run_id / "run.log", "paused at a safe point", proc)
    res = labctl("resume", run_id, "--data-dir", data)
    assert res.returncode == 0 and "SIGUSR1" in res.stdout, res
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert entry(data, run_id)["status"] == "completed"
    log = (data / run_id / "run.log").read_text()
    assert "resume requested (SIGUSR1)" in log and f"run {run_id} end: completed" in log


def test_sighup_aborts_with_the_current_at_zero(tmp_path):
    data = tmp_path / "runs"
    slow = _station_file(tmp_path, "slow.toml", speedup="100")  # virtual clock 100x: the run lasts seconds
    proc = start("run", "radial-field", "--quiet", "--station", slow, "--data-dir", data, "--set", "ic=400",
                 "--set", "repeats=3")
    run_id = wait_started(data, proc, set())
    wait_for_line(data / run_id / "01-radial-field.csv", "\n1,80.0,", proc)  # 80 A flowing
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert_recorded_abort(data, run_id, proc, out, err, "SIGHUP")
    log = (data / run_id / "run.log").read_text()
    after = log[log.index("abort requested"):]
    assert "ramped to 0 A" in after and "output off" in after, after


# ----------------------------------------------------------------------------- exceptions
def _plan(steps, sets=()):
    overrides, options = parse_sets(list(sets), steps)
    return Plan(steps, overrides, options)


def test_an_unexpected_exception_is_recorded_as_failed(tmp_path, monkeypatch):
    station = Station.from_file(None, seed=4)
    runner = Runner(station, Catalog(tmp_path), LiveStream(), RunControl())

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(runner, "run_step", boom)
    with station.session():
        state = execute(station, _plan(["radial-field"], ["ic=400", "repeats=1"]), tmp_path, runner)
    e = Catalog(tmp_path).get(state["id"])
    assert e["status"] == "failed" and "RuntimeError: simulated bug" in e["reason"] and e["ended"]
    log = (Path(state["path"]) / "run.log").read_text()
    assert f"run {state['id']} end: failed" in log and "Traceback" in log  # the traceback in run.log only


def test_a_lost_instrument_is_recorded_as_failed(tmp_path):
    station = Station.from_file(None, seed=4)
    stream = LiveStream()
    rows = []

    def on_row(topic, payload):
        if topic == "row":
            rows.append(payload)
            if len(rows) == 3:
                station.lab.inject("voltmeter", "drop")

    stream.subscribe(on_row)
    runner = Runner(station, Catalog(tmp_path), stream, RunControl())
    with station.session():
        state = execute(station, _plan(["vi"], ["current_step=10"]), tmp_path, runner)
        station.lab.clear_faults()
    e = Catalog(tmp_path).get(state["id"])
    assert e["status"] == "failed" and "voltmeter" in e["reason"] and e["ended"], e
    assert f"run {state['id']} end: failed" in (Path(state["path"]) / "run.log").read_text()


def test_keyboard_interrupt_without_a_cli_is_recorded_then_raised(tmp_path, monkeypatch):
    station = Station.from_file(None, seed=4)
    runner = Runner(station, Catalog(tmp_path), LiveStream(), RunControl())

    def interrupted(*a, **k):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(runner, "run_step", interrupted)
    with pytest.raises(KeyboardInterrupt), station.session():
        execute(station, _plan(["radial-field"], ["ic=400"]), tmp_path, runner)
    (e,) = Catalog(tmp_path).list(parent=None)
    assert e["status"] == "aborted" and "SIGTERM" in e["reason"] and e["ended"]


# ----------------------------------------------------------------------------- derived inputs
def test_single_steps_borrow_ic_only_from_the_same_sample_and_station(tmp_path):
    data = tmp_path / "runs"
    res = labctl("run", "vi", "--sample", "Nb", "--set", "current_step=10", "--quiet", "--data-dir", data)
    assert res.returncode == 0, res.stderr
    vi_id = res.stdout.split()[0]
    res = labctl("run", "radial-field", "--sample", "Pb", "--quiet", "--data-dir", data)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--set ic=" in lines[0] and "sample Pb" in lines[0], lines
    res = labctl("run", "radial-field", "--sample", "Nb", "--set", "repeats=1", "--quiet", "--data-dir", data)
    assert res.returncode == 0, res.stderr
    assert "using Ic = " in res.stderr and f"run {vi_id}" in res.stderr and "sample Nb" in res.stderr
    run_dir = Path(res.stdout.split()[2])
    state = json.loads((run_dir / "parameters.json").read_text())
    src = state["derived"]["vi_source"]
    assert src["run"] == vi_id and src["sample"] == "Nb" and src["ic"] == state["derived"]["ic"]
    assert f"from run {vi_id}" in (run_dir / "run.log").read_text()
    assert state["steps"]["radial-field"]["settings"]["Critical current (A)"] == pytest.approx(src["ic"])


def test_an_ic_given_on_the_command_line_wins(tmp_path):
    res = labctl("run", "radial-field", "--set", "ic=300", "--set", "repeats=1", "--quiet", "--data-dir", tmp_path)
    assert res.returncode == 0, res.stderr
    state = json.loads((Path(res.stdout.split()[2]) / "parameters.json").read_text())
    assert "vi_source" not in state["derived"]
    assert state["steps"]["radial-field"]["parameters"]["ic"] == 300


# ----------------------------------------------------------------------------- resume
def _aborted_protocol(data: Path, during: str = "radial-field") -> str:
    proc = start("run", "protocol", "--quiet", "--data-dir", data, *SHORT[:4], "--set", "radial-field.repeats=3")
    run_id = wait_started(data, proc, set(p.name for p in data.iterdir()) if data.is_dir() else set())
    wait_for_line(data / run_id / "run.log", f"step {during} start", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=TIMEOUT)
    assert entry(data, run_id)["status"] == "aborted"
    return run_id


def _station_file(tmp_path: Path, name: str, **replace) -> Path:
    text = (REPO / "labctl" / "stations" / "sim.toml").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key in replace:
            line = f"{key} = {replace[key]}"
        lines.append(line)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_resume_applies_the_limits_in_force_before_anything_moves(tmp_path):
    data = tmp_path / "runs"
    run_id = _aborted_protocol(data)
    low = _station_file(tmp_path, "low.toml", max_current="50.0")
    csv = data / run_id / "04-radial-field.csv"
    before = csv.read_text()
    res = labctl("resume", run_id, "--data-dir", data, "--station", low, "--quiet")
    assert res.returncode == 2, res
    assert "max_current: 600.0 -> 50.0" in res.stdout + res.stderr  # the difference is reported
    assert "exceeds the station limit max_current = 50 A" in res.stderr.strip().splitlines()[-1]
    assert csv.read_text() == before  # nothing measured
    assert entry(data, run_id)["status"] == "aborted"


def test_resume_never_loads_a_backend_named_by_the_run_folder(tmp_path):
    data = tmp_path / "runs"
    run_id = _aborted_protocol(data, during="normal-control")
    marker = tmp_path / "loaded"
    evil = tmp_path / "evil.so"
    evil.write_text(f"if this is loaded it writes {marker}")
    snap_path = data / run_id / "station.json"
    snap = json.loads(snap_path.read_text())
    snap["config"]["station"]["backend"] = str(evil)
    snap_path.write_text(json.dumps(snap))
    # without --station: a run folder that claims a non-sim backend is refused, naming --station
    res = labctl("resume", run_id, "--data-dir", data, "--quiet")
    assert res.returncode == 2 and "--station" in res.stderr and "Traceback" not in res.stderr, res
    # with the station file in force: it applies; the snapshot is only compared
    res = labctl("resume", run_id, "--data-dir", data, "--station", "sim.toml", "--quiet")
    assert res.returncode == 0, res.stderr
    assert f"station.backend: '{evil}' -> 'sim'" in res.stdout + res.stderr
    assert not marker.exists()
    state = json.loads((data / run_id / "parameters.json").read_text())
    assert state["status"] == "completed" and state["station_differences"]
    snap = json.loads(snap_path.read_text())  # the station in force, and the earlier snapshot kept as data
    assert snap["config"]["station"]["backend"] == "sim"
    assert snap["earlier"][-1]["config"]["station"]["backend"] == str(evil)
    assert snap["provenance"]["operator"] and state["resumes"][-1]["host"]
    # after the resume every step's row count matches its file
    for info in state["steps"].values():
        lines = [ln for ln in (data / run_id / info["file"]).read_text().splitlines()
                 if ln.strip() and not ln.startswith("#")]
        assert info["rows"] == len(lines) - 1, info
    log = (data / run_id / "run.log").read_text()
    assert f"run {run_id} resumed" in log and "step normal-control continues" in log


def test_a_crafted_plan_in_parameters_json_is_refused(tmp_path):
    data = tmp_path / "runs"
    run_id = _aborted_protocol(data, during="vi")
    path = data / run_id / "parameters.json"
    state = json.loads(path.read_text())
    state["plan"]["options"]["normal_factor"] = "inf"
    path.write_text(json.dumps(state))
    res = labctl("resume", run_id, "--data-dir", data, "--quiet")
    assert res.returncode == 2 and "normal_factor" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res


# ----------------------------------------------------------------------------- input hygiene
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "0.5", "1e6", "abc"])
def test_absurd_protocol_options_are_refused(value):
    with pytest.raises(ConfigError, match="normal_factor"):
        parse_sets([f"protocol.normal_factor={value}"], ["rt", "normal-control"])


@pytest.mark.parametrize("value", ["inf", "0", "1.5", "0.2,nan", "", "a,b"])
def test_absurd_fractions_are_refused(value):
    with pytest.raises(ConfigError, match="fractions"):
        parse_sets([f"protocol.fractions={value}"], ["radial-field"])


def test_normal_factor_inf_on_the_command_line_is_one_line_exit_2(tmp_path):
    res = labctl("run", "protocol", "--set", "protocol.normal_factor=inf", "--data-dir", tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "normal_factor" in res.stderr
    assert not any(tmp_path.iterdir())


def test_binary_or_directory_protocol_file_is_one_line(tmp_path):
    binary = tmp_path / "proto.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for given in (binary, tmp_path):
        with pytest.raises(ConfigError):
            load_protocol_file(given, ["rt"])
        res = labctl("run", "rt", "--protocol", given, "--data-dir", tmp_path / "runs")
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res
        assert "Traceback" not in res.stderr and "--protocol" in res.stderr


def test_run_folder_names_are_unique_under_concurrency(tmp_path):
    made, barrier = [], threading.Barrier(16)

    def make():
        barrier.wait()
        made.append(new_run_dir(tmp_path, "vi"))

    threads = [threading.Thread(target=make) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({run_id for run_id, _ in made}) == 16
    assert all(path.is_dir() for _, path in made)


def test_runs_filters_and_dates_exit_2(tmp_path):
    for args in (["--since", "2026-13-45"], ["--since", "yesterday"], ["--kind", "bogus"], ["--status", "done"]):
        res = labctl("runs", "--data-dir", tmp_path, *args)
        assert res.returncode == 2, (args, res)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = labctl("runs", "--data-dir", tmp_path, "--since", "2026-11-01", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == []
    assert f"no runs yet in {tmp_path}" in res.stderr


def test_pause_timeout_must_be_sane(tmp_path):
    for value in ("0", "-1", "inf", "nan"):
        res = labctl("run", "rt", "--pause-timeout", value, "--data-dir", tmp_path)
        assert res.returncode == 2 and "pause" in res.stderr.lower(), (value, res.stderr)


def test_more_signals_during_the_ramp_down_never_skip_it(tmp_path):
    """SIGTERM at 320 A, then a storm of SIGTERM/SIGINT/SIGHUP while the current ramps
    down: the handlers only queue them, the ramp-down completes and the abort is recorded."""
    data = tmp_path / "runs"
    slow = _station_file(tmp_path, "slow.toml", speedup="100")
    proc = start("run", "radial-field", "--quiet", "--station", slow, "--data-dir", data, "--set", "ic=400",
                 "--set", "currents=0.8", "--set", "repeats=3")
    run_id = wait_started(data, proc, set())
    wait_for_line(data / run_id / "01-radial-field.csv", "\n1,320.0,", proc)
    proc.send_signal(signal.SIGTERM)
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGINT", "SIGTERM"):
        time.sleep(0.02)
        proc.send_signal(getattr(signal, name))
    out, err = proc.communicate(timeout=TIMEOUT)
    assert_recorded_abort(data, run_id, proc, out, err, "SIGTERM")
    assert "already aborting" in out + err
    log = (data / run_id / "run.log").read_text()
    after = log[log.index("abort requested"):]
    assert "ramped to 0 A" in after and "output off" in after, after


def _genesys(address: str, *queries: str) -> list[str]:
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(address, read_termination="\r", write_termination="\r", timeout=5000)
    try:
        inst.write("ADR 6")
        inst.read()
        return [inst.query(q).strip() for q in queries]
    finally:
        inst.close()
        rm.close()


def test_sighup_over_tcp_leaves_the_supply_at_zero_read_from_the_supply(tmp_path):
    """The honest check: the supply itself (the virtual lab served over TCP, outliving
    labctl) reads 0 A with the output off after SIGHUP at 80 A."""
    base = free_base_port()
    server = start("sim", "serve", "--base-port", base, "--speedup", "100", "--sample", "Pb")
    try:
        station = tmp_path / "tcp.toml"
        station.write_text(tcp_station_text(wait_ready(server), speedup=100))
        data = tmp_path / "runs"
        proc = start("run", "radial-field", "--quiet", "--station", station, "--data-dir", data, "--set", "ic=400",
                     "--set", "repeats=3")
        run_id = wait_started(data, proc, set())
        wait_for_line(data / run_id / "01-radial-field.csv", "\n1,80.0,", proc)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert_recorded_abort(data, run_id, proc, out, err, "SIGHUP")
        current, output = _genesys(f"TCPIP0::127.0.0.1::{base}::SOCKET", "MC?", "OUT?")
        assert abs(float(current)) < 0.05 and output.upper() in ("OFF", "0"), (current, output)
    finally:
        stop(server)
