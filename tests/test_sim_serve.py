"""`labctl sim serve` as a separate process: its output contract, loopback only,
and stock drivers talking to it like LAN instruments."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pymeasure.instruments.keithley import Keithley2182
from pymeasure.instruments.lakeshore import LakeShore425

REPO = Path(__file__).resolve().parents[1]
BASE = 47600 + os.getpid() % 1000  # avoid clashes between parallel sessions


@pytest.fixture
def served():
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "sim", "serve", "--base-port", str(BASE),
                             "--sample", "Nb", "--field-model", "bean", "--speedup", "100", "--seed", "7"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        line = line.strip()
        if line == "ready":
            break
        lines.append(line)
    yield proc, lines
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serve_prints_one_line_per_instrument_then_ready(served):
    proc, lines = served
    assert proc.poll() is None
    roles = [ln.split()[0] for ln in lines]
    assert roles == ["current_source", "voltmeter", "temperature", "gaussmeter", "stage", "aux_current_source",
                     "current_source_lan"]  # the Genesys: serial port (device server) and LAN option
    for k, ln in enumerate(lines):
        role, model, resource = ln.split()
        assert resource == f"TCPIP0::127.0.0.1::{BASE + k}::SOCKET"
    assert lines[3].split()[1] == "LakeShore425" and lines[0].split()[1].startswith("Genesys")
    assert lines[6].split()[1] == "GenesysGEN8-600-LAN"


def test_stock_drivers_talk_to_the_served_lab(served):
    _, lines = served
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
