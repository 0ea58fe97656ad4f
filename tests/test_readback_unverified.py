"""A write the instrument did not carry out is caught by its read-back (issue 12).

Each case makes one emulator acknowledge a setting without applying it, as a welded
output relay or a front panel that ignores remote settings would, and checks that
labctl does not report the state it asked for but the one it read: the line
``UNVERIFIED: <role> <what>; check the instrument`` (logged CRITICAL), the run or the
step fails, and the current source ends at zero with its output off whenever that
is still in labctl's hands.  The emulators stay truthful to queries: only the write
is lost.
"""
from __future__ import annotations

import json
import logging

import pytest
from stations import tcp_station_text

from labctl.errors import InstrumentError
from labctl.station import Station


def ignore_writes(emulator, accept) -> list[str]:
    """Make ``emulator`` acknowledge, without applying, every setting for which
    ``accept(text)`` is true (queries still answer the truth).  Returns the ignored commands."""
    ignored: list[str] = []
    original = emulator._one
    ok = "OK" if type(emulator).__name__ == "Genesys" else None  # the serial protocol acknowledges settings

    def one(item):
        text = item[1].strip()
        if "?" not in text and accept(text.upper()):
            ignored.append(text)
            return ok
        return original(item)

    emulator._one = one
    return ignored


def supply_state(station: Station) -> tuple[float, bool]:
    """The supply's own answers to MC? and OUT? (not labctl's memory of them)."""
    emu = station.lab.instruments["current_source"]
    return float(emu.handle("MC?")), emu.handle("OUT?").strip().upper() in ("ON", "1")


def served_station(tmp_path) -> tuple[Station, object]:
    """The default station over loopback sockets (pyvisa-py, as for LAN instruments)."""
    from labctl.config import load_station
    from sim_instruments.lab import VirtualLab
    from sim_instruments.server import LabServer

    lab = VirtualLab(seed=3, base_port=0)
    server = LabServer(lab, base_port=0).start()
    path = tmp_path / "tcp.toml"
    path.write_text(tcp_station_text(server.resources))
    return Station(load_station(path), lab=lab), server


@pytest.mark.parametrize("transport", ["in-process", "tcp"])
def test_output_relay_that_stays_on_is_unverified_never_reported_off(caplog, tmp_path, monkeypatch, transport):
    monkeypatch.setenv("LABCTL_LOCK_DIR", str(tmp_path / "locks"))
    server = None
    if transport == "tcp":
        station, server = served_station(tmp_path)
    else:
        station = Station.from_file(None, seed=3)
    ignored = ignore_writes(station.lab.instruments["current_source"], lambda t: t in ("OUT 0", "OUT OFF"))
    caplog.set_level(logging.CRITICAL, logger="labctl")
    try:
        with pytest.raises(InstrumentError) as err:
            with station.session():
                station.roles["current_source"].ramp_to(20.0)
    finally:
        if server is not None:
            server.stop()
    msg = str(err.value)
    assert msg.startswith("UNVERIFIED: current_source output off") and "check the instrument" in msg
    assert "output ON" in msg
    assert ignored, "the test must have exercised the ignored write"
    assert any(r.levelno == logging.CRITICAL and "UNVERIFIED" in r.getMessage() for r in caplog.records)
    current, output = supply_state(station)
    assert output and abs(current) < 0.1  # what the message says: ramped to zero, relay still closed


def test_heater_range_not_applied_fails_at_run_start_with_the_current_at_zero():
    station = Station.from_file(None, seed=3)
    ignore_writes(station.lab.instruments["temperature"], lambda t: t.startswith("RANGE"))
    with pytest.raises(InstrumentError, match=r"^UNVERIFIED: temperature heater range high; check the instrument"):
        with station.session():
            pytest.fail("the run must not start when the heater range is not what was asked")
    assert supply_state(station) == (pytest.approx(0.0, abs=0.1), False)


def test_voltmeter_that_ignores_its_configuration_fails_at_run_start():
    station = Station.from_file(None, seed=3)
    ignored = ignore_writes(station.lab.instruments["voltmeter"], lambda t: not t.startswith(("*RST", "*CLS")))
    with pytest.raises(InstrumentError, match=r"^UNVERIFIED: voltmeter .*; check the instrument \(sent .*read back"):
        with station.session():
            pytest.fail("the run must not start with a voltmeter in an unknown configuration")
    assert ignored
    assert supply_state(station) == (pytest.approx(0.0, abs=0.1), False)


def test_stage_that_does_not_stop_is_unverified():
    station = Station.from_file(None, seed=3)
    with station.session():
        stage = station.roles["stage"]
        ignore_writes(station.lab.instruments["stage"], lambda t: t.endswith("ST"))
        stage.move_to(stage.config.limits.max_position - 0.1, wait=False)
        with pytest.raises(InstrumentError, match=r"^UNVERIFIED: stage motion stop; check the instrument"):
            stage.stop()
        stage.wait_done()  # let the move end before the session's own shutdown


def test_cli_run_says_unverified_in_the_summary_and_records_it(tmp_path, monkeypatch, capsys):
    """End to end: a run whose supply output will not switch off ends `failed`, with the
    UNVERIFIED line on stderr and in the summary, the catalog and parameters.json."""
    import sim_instruments.lab as lab_module
    from labctl.cli import main
    from sim_instruments.lab import VirtualLab

    class StuckRelayLab(VirtualLab):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            ignore_writes(self.instruments["current_source"], lambda t: t in ("OUT 0", "OUT OFF"))

    monkeypatch.setattr(lab_module, "VirtualLab", StuckRelayLab)
    code = main(["run", "vi", "--data-dir", str(tmp_path),
                 "--set", "vi.current_step=100", "--set", "vi.current_max=300"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "UNVERIFIED: current_source output off" in err and "check the instrument" in err
    summary = " ".join(out.split())  # the summary wraps long lines
    assert "failed (final shutdown failed: UNVERIFIED: current_source output off" in summary
    state = json.loads(next(tmp_path.rglob("parameters.json")).read_text())
    assert state["status"] == "failed" and "UNVERIFIED" in state["reason"]
