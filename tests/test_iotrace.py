"""The I/O trace (issue 12): what labctl said to each instrument and what it answered.

- ``station check --trace`` over TCP sends queries only (no heater, setpoint, output,
  current, motion or zero command), and the 336's RANGE? 1 is the same before and after;
- a run over TCP with the Genesys on its LAN personality writes io-trace.log in the run
  folder: the stage homed before its first move, every output-off confirmed by a query,
  SYST:ERR? at least every twenty Genesys commands;
- ``sim serve --trace`` records the same conversation from the instruments' side.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.config import STATIONS_DIR
from labctl.iotrace import IOTrace, commands, parse, read_trace
from sim_instruments.lab import VirtualLab
from sim_instruments.server import LabServer

SPEEDUP = 1000


def test_trace_lines_parse_and_attach_with_history(tmp_path):
    class Clock:
        def now(self):
            return 12.5

    t = IOTrace(clock=Clock())
    t.record("stage", ">", "1OR")
    t.exchange("stage", "1MD?", "0")
    t.record("voltmeter", "!", "read failed: VisaIOError: timeout")
    t.record("current_source", ">", "PV 5\r")  # control characters escaped: one line each
    assert parse(t.lines[0]) == ("stage", ">", "1OR")
    assert commands(t.lines) == ["1OR", "1MD?", "PV 5\\r"]
    assert commands(t.lines, "stage", "<") == ["0"]
    assert " t=+00012.500 " in t.lines[0]
    path = t.attach(tmp_path)  # a directory: io-trace.log in it, history first
    t.record("stage", ">", "1TP")
    t.close()
    lines = read_trace(path)
    assert path.name == "io-trace.log" and len(lines) == 6 and commands(lines)[-1] == "1TP"


@pytest.fixture
def served(tmp_path):
    """A virtual lab over TCP (threads in this process), its server-side trace, and a
    station file for it with the Genesys on its LAN personality."""
    lab = VirtualLab("Pb", seed=1, speedup=SPEEDUP)
    server_trace = IOTrace(tmp_path / "serve-trace.log", clock=lab.clock)
    server = LabServer(lab, base_port=0, trace=server_trace).start()
    toml = (STATIONS_DIR / "sim-lan.toml").read_text()
    toml = toml.replace('backend = "sim"', f'backend = "@py"\nspeedup = {SPEEDUP}')
    for role, port in [("current_source_lan", 5606), ("voltmeter", 5601), ("temperature", 5602),
                       ("gaussmeter", 5603), ("stage", 5604)]:
        toml = toml.replace(f"TCPIP0::127.0.0.1::{port}::SOCKET", server.resources[role])
    station = tmp_path / "lan-tcp.toml"
    station.write_text(toml)
    yield lab, server_trace, station
    stoppers = [threading.Thread(target=srv.shutdown) for srv in server.servers.values()]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(5)
    server.stop()
    server_trace.close()


def is_query(command: str) -> bool:
    return "?" in command or re.fullmatch(r"\d*TP", command) is not None  # ESP300 TP reads the position


def test_station_check_over_tcp_only_queries(served, tmp_path, capsys):
    lab, server_trace, station = served
    lab.world.controller.heater_range = 2  # someone left the heater on medium
    range_before = lab.world.controller.heater_range
    trace = tmp_path / "check.log"
    assert main(["station", "check", "--station", str(station), "--trace", str(trace)]) == 0
    lines = read_trace(trace)
    sent = commands(lines)
    assert sent and all(is_query(c) for c in sent), [c for c in sent if not is_query(c)]
    assert {parse(ln)[0] for ln in lines} == {"current_source", "voltmeter", "temperature", "gaussmeter", "stage"}
    assert "RANGE? 1" in sent and commands(lines, "temperature", "<")[-1] == "2"
    assert lab.world.controller.heater_range == range_before  # the heater was not touched
    assert lab.instruments["stage"].homed is False and lab.world.stage.enabled is False
    # the server saw the same conversation
    served_cmds = commands(list(server_trace.lines))
    assert set(sent) <= set(served_cmds)
    assert all(is_query(c) for c in served_cmds)


def test_run_over_tcp_with_genesys_lan_writes_io_trace(served, tmp_path, capsys):
    lab, server_trace, station = served
    data = tmp_path / "runs"
    code = main(["run", "radial-field", "--station", str(station), "--data-dir", str(data), "--quiet",
                 "--set", "ic=430", "--set", "repeats=1", "--set", "currents=0.75", "--trace"])
    out = capsys.readouterr()
    assert code == 0, out.err
    run_dir = Path(out.out.split()[-1])
    lines = read_trace(run_dir / "io-trace.log")
    stage = commands(lines, "stage")
    first_move = next(k for k, c in enumerate(stage) if re.fullmatch(r"1PA[-\d.e+]+", c))
    assert "1OR" in stage[:first_move] and "1MO" in stage[:stage.index("1OR")]  # homed, motor on first
    assert stage.index("1SL0") > stage.index("1OR")  # soft limits after homing
    cs = commands(lines, "current_source")
    assert any(c.startswith("SOUR:CURR ") and float(c.split()[1]) > 100 for c in cs)  # current flowed
    offs = [k for k, c in enumerate(cs) if c == "OUTP:STAT OFF"]
    assert offs and all("OUTP:STAT?" in cs[k + 1:k + 3] for k in offs)  # every output-off read back
    checks = [k for k, c in enumerate(cs) if c == "SYST:ERR?"]
    gaps = [b - a for a, b in zip([-1] + checks, checks + [len(cs)])]
    assert max(gaps) <= 20  # SYST:ERR? at least every twenty Genesys commands
    assert not any(ln for ln in lines if parse(ln) and parse(ln)[1] == "!")  # no failed I/O
    assert lab.instruments["current_source"].output is False
