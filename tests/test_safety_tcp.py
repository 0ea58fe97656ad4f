"""Safety under real faults, over the TCP path that LAN instruments use (issue 11).

A `labctl sim serve` process plays the instruments on loopback sockets; labctl talks
to it through pyvisa-py (`backend = "@py"`) exactly as to a LAN instrument.  With
more than 140 A flowing: the server killed, SIGHUP, a second process — and every
verdict on the current is read back from the supply itself over its own socket.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import wait_ready
from stations import tcp_station_text


REPO = Path(__file__).resolve().parents[1]
LABCTL = [sys.executable, "-m", "labctl"]
SPEEDUP = 50
FLOWING = 140.0  # A: what "hundreds of amperes flowing" means in these tests


class ServedLab:
    """`labctl sim serve` in its own process, and a station file pointing at it."""

    def __init__(self, tmp_path: Path, seed: int = 3):
        self.proc = subprocess.Popen([*LABCTL, "sim", "serve", "--base-port", "0", "--speedup", str(SPEEDUP),
                                      "--seed", str(seed)], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.resources = wait_ready(self.proc)
        self.station = tmp_path / "tcp-station.toml"
        self.station.write_text(tcp_station_text(self.resources, speedup=SPEEDUP))
        self.data = tmp_path / "data"

    def port(self, role: str) -> int:
        return int(self.resources[role].split("::")[2])

    def supply(self, *queries: str) -> list[str]:
        """Ask the supply directly, on a connection of our own (Genesys serial protocol)."""
        def reply(s) -> str:  # the serial protocol ends replies in CR
            data = b""
            while not data.endswith(b"\r"):
                chunk = s.recv(1)
                if not chunk:
                    raise ConnectionError("the supply closed the connection")
                data += chunk
            return data.decode().strip()

        with socket.create_connection(("127.0.0.1", self.port("current_source")), timeout=5) as s:
            s.sendall(b"ADR 6\r")
            assert reply(s) == "OK"
            out = []
            for q in queries:
                s.sendall(q.encode() + b"\r")
                out.append(reply(s))
            return out

    def current(self) -> float:
        return float(self.supply("MC?")[0])

    def wait_for_current(self, amps: float, timeout: float = 120) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            i = self.current()
            if i > amps:
                return i
            time.sleep(0.1)
        raise AssertionError(f"the supply never reached {amps} A")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_LOCK_DIR", str(tmp_path / "locks"))
    served = ServedLab(tmp_path)
    yield served
    served.kill()


def start_run(lab: ServedLab, *sets: str) -> subprocess.Popen:
    """A radial-field run at 150 and 160 A over TCP (long enough to be interrupted)."""
    sets = sets or ("currents=150,160", "repeats=50")
    return subprocess.Popen([*LABCTL, "run", "radial-field", "--station", str(lab.station), "--data-dir",
                             str(lab.data), "--quiet", "--set", "current_mode=A", "--set", "zero_probe=false",
                             *[a for s in sets for a in ("--set", s)]],
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})


def catalog(lab: ServedLab) -> list[dict]:
    out = subprocess.run([*LABCTL, "runs", "--data-dir", str(lab.data), "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_killed_instrument_server_ends_the_run_with_danger(lab):
    run = start_run(lab)
    try:
        assert lab.wait_for_current(FLOWING) > FLOWING
        lab.kill()  # every instrument link closes with the current flowing
        killed = time.time()
        out, err = run.communicate(timeout=60)  # exits by itself, no signal needed
    finally:
        if run.poll() is None:
            run.kill()
    assert time.time() - killed < 60
    assert run.returncode != 0
    assert "DANGER: current source state unknown" in err and "switch it off at the instrument" in err
    assert "Traceback" not in err
    entry = catalog(lab)[0]
    assert entry["status"] == "failed" and "DANGER" in entry["reason"], entry
    assert entry["ended"]
    log = next(lab.data.glob("*/run.log")).read_text()
    assert "DANGER" in log


def test_sighup_ramps_down_and_turns_the_output_off(lab):
    run = start_run(lab)
    try:
        assert lab.wait_for_current(FLOWING) > FLOWING
        run.send_signal(signal.SIGHUP)  # the terminal closed, the SSH session dropped
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    current, output = lab.supply("MC?", "OUT?")
    assert float(current) == 0.0 and output in ("OFF", "0"), (current, output)
    entry = catalog(lab)[0]
    assert entry["status"] == "aborted" and entry["ended"], entry
    assert "Traceback" not in err


def test_station_check_during_a_run_changes_nothing(lab):
    # one current, long readings: 150 A flows for ~13 s of wall time at the three radii
    run = start_run(lab, "currents=150", "repeats=1", "averages=70", "read_interval=3")
    try:
        before = lab.wait_for_current(FLOWING)
        check = subprocess.run([*LABCTL, "station", "check", "--station", str(lab.station)], cwd=REPO,
                               capture_output=True, text=True, timeout=60)
        after = lab.current()
        assert check.returncode == 2
        assert "in use by" in check.stderr and f"pid {run.pid}" in check.stderr, check.stderr
        assert len(check.stderr.strip().splitlines()) == 1
        assert after > FLOWING and abs(after - before) < 20, (before, after)  # still flowing, never stepped
        second = subprocess.run([*LABCTL, "run", "vi", "--station", str(lab.station), "--data-dir",
                                 str(lab.data), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "in use by" in second.stderr
        assert lab.current() > FLOWING
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    # the first run never noticed: a supply stepped to zero under it would have tripped its guard
    assert run.returncode == 0, err
    assert catalog(lab)[0]["status"] == "completed"


def test_dropped_supply_link_is_bounded_and_loud(tmp_path, monkeypatch):
    """The emulator's own `drop` fault over TCP (only the supply's link): the emergency path
    ends within a few time-outs with DANGER, instead of spinning in pyvisa-py's clear()."""
    from labctl.config import load_station
    from labctl.errors import InstrumentError
    from labctl.station import Station
    from sim_instruments.lab import VirtualLab
    from sim_instruments.server import LabServer

    monkeypatch.setenv("LABCTL_LOCK_DIR", str(tmp_path / "locks"))
    vlab = VirtualLab(seed=2, speedup=SPEEDUP, base_port=0)
    server = LabServer(vlab, base_port=0).start()
    try:
        path = tmp_path / "station.toml"
        path.write_text(tcp_station_text(server.resources, speedup=SPEEDUP))
        station = Station(load_station(path))
        station.clock = vlab.clock
        station.connect(setup=True)
        cs = station.current_source
        cs.ramp_to(150.0)
        assert vlab.world.current == pytest.approx(150.0)
        vlab.inject("current_source", "drop")
        t0 = time.monotonic()
        with pytest.raises(InstrumentError, match="DANGER: current source state unknown") as err:
            station.safe_shutdown("test")
        assert time.monotonic() - t0 < 30
        assert "output ON" in str(err.value) and "150" in str(err.value)
        station.close()
    finally:
        server.stop()
