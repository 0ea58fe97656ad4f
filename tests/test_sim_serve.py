"""`labctl sim serve` as a separate process: its output contract, loopback only,
and stock drivers talking to it like LAN instruments."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from procs import free_base_port, stop
from pymeasure.instruments.keithley import Keithley2182
from pymeasure.instruments.lakeshore import LakeShore425

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served():
    base = free_base_port()
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "sim", "serve", "--base-port", str(base),
                             "--sample", "Nb", "--field-model", "bean", "--speedup", "100", "--seed", "7"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        line = line.strip()
        if line == "ready":
            break
        lines.append(line)
    else:
        _, err, _ = stop(proc, signal.SIGINT, timeout=10)
        pytest.fail(f"sim serve ended without 'ready': {err.strip()[-500:]}")
    yield proc, lines, base
    out, err, stopped = stop(proc, signal.SIGINT, timeout=10)
    assert stopped and proc.returncode == 0, err[-500:]  # Ctrl-C stops it cleanly


def test_serve_prints_one_line_per_instrument_then_ready(served):
    proc, lines, base = served
    assert proc.poll() is None
    roles = [ln.split()[0] for ln in lines]
    assert roles == ["current_source", "voltmeter", "temperature", "gaussmeter", "stage", "aux_current_source",
                     "current_source_lan"]  # the Genesys: serial port (device server) and LAN option
    for k, ln in enumerate(lines):
        role, model, resource = ln.split()
        assert resource == f"TCPIP0::127.0.0.1::{base + k}::SOCKET"
    assert lines[3].split()[1] == "LakeShore425" and lines[0].split()[1].startswith("Genesys")
    assert lines[6].split()[1] == "GenesysGEN8-600-LAN"


def test_stock_drivers_talk_to_the_served_lab(served):
    _, lines, _ = served
    res = {ln.split()[0]: ln.split()[2] for ln in lines}
    g = LakeShore425(res["gaussmeter"], visa_library="@py", read_termination="\r\n",
                     write_termination="\r\n", timeout=2000)
    assert g.ask("*IDN?").startswith("LSCI,MODEL425")
    b = g.field
    assert abs(b) < 5  # gauss: ambient + Hall offset, no current
    k = Keithley2182(res["voltmeter"], visa_library="@py", read_termination="\n", timeout=2000)
    assert "2182A" in k.id
    assert abs(k.voltage) < 1e-5  # thermal EMF + noise only
    g.adapter.close()
    k.adapter.close()
