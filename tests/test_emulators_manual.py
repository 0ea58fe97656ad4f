"""The virtual lab follows the manufacturers' manuals, not our drivers (issue 12).

Terminators, power-up states, error queues and pacing, each checked against what
the manual says (sections cited in docs/hardware.md), on both transports where the
wire matters.  Raw pyvisa sessions are used on purpose: these tests must not share
an understanding with labctl's drivers.
"""
from __future__ import annotations

import threading

import pytest
import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from sim_instruments.lab import VirtualLab
from sim_instruments.server import LabServer

# (role, read termination, right write termination, a wrong one, an identity query)
WIRE = [
    ("current_source", "\r", "\r", "\n", "IDN?"),  # Genesys serial: CR only (manual 7.5)
    ("current_source_lan", "\n", "\n", None, "*IDN?"),  # LAN: LF, CR or ';' all end a command (9.5)
    ("voltmeter", "\n", "\n", "\r", "*IDN?"),  # 2182A: LF
    ("temperature", "\r\n", "\r\n", "\r", "*IDN?"),  # 336: CR LF, the LF ends it
    ("gaussmeter", "\r\n", "\r\n", "\r", "*IDN?"),  # 425: CR LF
    ("stage", "\r\n", "\r", "\n", "VE?"),  # ESP300: CR (3.4)
    ("aux_current_source", "\n", "\n", "\r", "*IDN?"),  # 6221: LF
]


@pytest.fixture(params=["inprocess", "tcp"])
def lab(request):
    lab = VirtualLab("Pb", seed=3, speedup="max", temperature=10.0)
    if request.param == "inprocess":
        rm = pyvisa.ResourceManager(lab.visa_library)
        lab.addresses = {r: f"TCPIP0::127.0.0.1::{p}::SOCKET" for r, p in lab.ports.items()}
        lab.rm, lab.timeout = rm, 300
        yield lab
    else:
        server = LabServer(lab, base_port=0).start()
        lab.addresses = server.resources
        lab.rm, lab.timeout = pyvisa.ResourceManager("@py"), 1500
        yield lab
        stoppers = [threading.Thread(target=srv.shutdown) for srv in server.servers.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(5)
        server.stop()
    lab.rm.close()


def open_raw(lab, role, read, write):
    res = lab.rm.open_resource(lab.addresses[role], read_termination=read, write_termination=write,
                               timeout=lab.timeout)
    if role == "current_source":  # the serial supply answers only once addressed (7.7.3)
        assert res.query("ADR 6") == "OK"
    return res


@pytest.mark.parametrize("role, read, write, wrong, idn", WIRE, ids=[w[0] for w in WIRE])
def test_right_terminator_answers_wrong_one_times_out(lab, role, read, write, wrong, idn):
    res = open_raw(lab, role, read, write)
    assert res.query(idn)
    res.close()
    if wrong is None:
        return
    bad = lab.rm.open_resource(lab.addresses[role], read_termination=read, write_termination=wrong,
                               timeout=lab.timeout)
    with pytest.raises(VisaIOError) as err:
        if role == "current_source":
            bad.query("ADR 6")
        else:
            bad.query(idn)
    assert err.value.error_code == constants.StatusCode.error_timeout
    bad.close()


def test_serial_driver_on_the_lan_port_and_lan_driver_on_the_serial_port_time_out(lab):
    """The lab-example.toml mistake of issue 12: the serial protocol on port 8003 never connects."""
    from drivers import GenesysGEN8_600, GenesysLAN

    lib = lab.visa_library if isinstance(lab.rm.visalib, type(lab.visa_library)) else "@py"
    with pytest.raises(VisaIOError):  # ADR 6 + CR reaches the SCPI port: no OK ever comes
        GenesysGEN8_600(lab.addresses["current_source_lan"], visa_library=lib, read_termination="\r",
                        write_termination="\r", timeout=lab.timeout)
    lan = GenesysLAN(lab.addresses["current_source"], visa_library=lib, timeout=lab.timeout)
    with pytest.raises(VisaIOError):  # *IDN? + LF on the serial port: not even addressed
        lan.id
    lan.adapter.close()


# ------------------------------------------------------------------ power-up states
def test_power_up_states(lab):
    psu = open_raw(lab, "current_source", "\r", "\r")
    assert psu.query("OUT?") == "OFF" and psu.query("AST?") == "OFF"  # output off, auto-restart off
    assert float(psu.query("OVP?")) == pytest.approx(10.0)  # OVP at maximum (RST state, 7.7.3)
    lan = open_raw(lab, "current_source_lan", "\n", "\n")
    assert lan.query("OUTP:STAT?") == "OFF" and lan.query("SOUR:MOD?") == "OFF"
    ls = open_raw(lab, "temperature", "\r\n", "\r\n")
    assert ls.query("RANGE? 1") == "0"  # heater off
    assert float(ls.query("HTR? 1")) == 0.0
    esp = open_raw(lab, "stage", "\r\n", "\r")
    assert esp.query("1MO?") == "0"  # motor off
    assert float(esp.query("1TP")) == pytest.approx(0.0, abs=0.005)  # counter 0 where it stands (unhomed)
    assert lab.world.stage.position == pytest.approx(10.0)
    nvm = open_raw(lab, "voltmeter", "\n", "\n")
    assert nvm.query(":SENS:VOLT:DFIL:STAT?") == "1" and nvm.query(":SENS:VOLT:DFIL:COUN?") == "10"
    assert nvm.query(":SENS:VOLT:CHAN1:RANG:AUTO?") == "1" and nvm.query(":SENS:VOLT:NPLC?") == "5"
    src = open_raw(lab, "aux_current_source", "\n", "\n")
    assert src.query(":OUTP?") == "0"


# ------------------------------------------------------------------ error queues
def test_2182a_error_queue_is_ten_deep(lab):
    nvm = open_raw(lab, "voltmeter", "\n", "\n")
    for _ in range(12):
        nvm.write(":BOGUS")
    errors = [nvm.query("SYST:ERR?") for _ in range(11)]
    assert all(e.startswith("-113") for e in errors[:9])
    assert errors[9].startswith("-350") and "overflow" in errors[9]  # the tenth slot says it overflowed
    assert errors[10] == '0,"No error"'


def test_2182a_nplc_limited_by_the_mains(lab):
    nvm = open_raw(lab, "voltmeter", "\n", "\n")
    lab.instruments["voltmeter"].line_frequency = 50.0
    assert nvm.query(":SYST:LFR?") == "50"
    nvm.write(":SENS:VOLT:NPLC 60")
    assert nvm.query("SYST:ERR?").startswith("-222")
    assert nvm.query(":SENS:VOLT:NPLC?") == "5"
    nvm.write(":SENS:VOLT:NPLC 50")
    assert nvm.query(":SENS:VOLT:NPLC?") == "50"


def test_esp300_error_fifo(lab):
    esp = open_raw(lab, "stage", "\r\n", "\r")
    for _ in range(12):
        esp.write("1PA5")  # motor off: 113 each time
    esp.write("XX")  # no such command: 6, but the FIFO is full
    codes = [int(esp.query("TE?")) for _ in range(11)]
    assert codes[:10] == [113] * 10 and codes[10] == 0  # ten deep, each query pops one
    esp.write("1PA5")
    reply = esp.query("TB?")  # code, timestamp, message
    assert reply.startswith("113,") and reply.endswith("MOTOR NOT ENABLED")


def test_genesys_serial_error_codes(lab):
    psu = open_raw(lab, "current_source", "\r", "\r")
    assert psu.query("FOO") == "C01"  # table 7-2
    assert psu.query("PC") == "C02"  # missing parameter
    assert psu.query("PC 700") == "C05"
    assert psu.query("PV 9") == "E01"  # above 105 % of 8 V (table 7-1)
    assert psu.query("OUT ON") == "OK"
    assert psu.query("STAT?") in ("05", "06")  # CV or CC, no fault
    assert psu.query("OUT OFF") == "OK" and psu.query("MODE?") == "OFF"
    assert psu.query("") == "OK"  # a CR by itself is answered with OK (7.7.1)


def test_genesys_lan_scpi_errors_and_pacing(lab):
    lan = open_raw(lab, "current_source_lan", "\n", "\n")
    lan.write("SOUR:CURR 700")
    assert lan.query("SYST:ERR?") == '-222,"Data out of range;address 06"'
    assert lan.query("SYST:ERR?") == '0,"No error"'
    for k in range(21):  # twenty commands fit; the twenty-first is lost (IA672-04-01 9.4)
        lan.write(f"SOUR:CURR {k}")
    assert float(lan.query("SOUR:CURR?")) == 19.0
    assert lan.query("SYST:ERR?").startswith("-363")
    # one supply behind both ports
    lan.write("SOUR:VOLT 4")
    psu = open_raw(lab, "current_source", "\r", "\r")
    assert float(psu.query("PV?")) == 4.0


def test_lakeshore_event_status_bits(lab):
    ls = open_raw(lab, "temperature", "\r\n", "\r\n")
    assert ls.query("*ESR?") == "0"
    ls.write("BOGUS 1")
    ls.write("RANGE 1,9")
    assert int(ls.query("*ESR?")) == 32 | 16  # command error and execution error
    assert ls.query("RANGE? 1") == "0"


# ------------------------------------------------------------------ pacing and completion
def test_2182a_reading_time_follows_nplc_and_filter(lab):
    nvm = open_raw(lab, "voltmeter", "\n", "\n")
    clock = lab.clock

    def reading_time():
        t0 = clock.now()
        nvm.query(":READ?")
        return clock.now() - t0

    lf = lab.instruments["voltmeter"].line_frequency
    assert reading_time() == pytest.approx(10 * 2 * 5 / lf, rel=0.05)  # filter of 10, autozero, NPLC 5
    nvm.write(":SENS:VOLT:DFIL:STAT 0")
    assert reading_time() == pytest.approx(2 * 5 / lf, rel=0.05)
    nvm.write(":SENS:VOLT:LPAS 1")
    assert reading_time() > 2 * 5 / lf * 1.05  # the analog filter adds settling


def test_425_zero_takes_time_and_opc_confirms(lab):
    g = open_raw(lab, "gaussmeter", "\r\n", "\r\n")
    t0 = lab.clock.now()
    g.write("ZPROBE")
    assert g.query("*OPC?") == "1"
    assert lab.clock.now() - t0 >= 3.0
    lab.instruments["gaussmeter"].probe_type = 41  # high stability probe: RANGE 1 is 350 G
    assert g.query("TYPE?") == "41"
    assert lab.instruments["gaussmeter"].ranges[1] == pytest.approx(35e-3)


def test_6221_delta_accumulates_and_abort_returns_2182a_to_local(lab):
    src = open_raw(lab, "aux_current_source", "\n", "\n")
    for cmd in ("SOUR:DELT:HIGH 1e-3", "SOUR:DELT:COUN 10", "SOUR:SWE:COUN 1", "TRAC:POIN 10", "SOUR:DELT:ARM",
                "INIT"):
        src.write(cmd)
    counts = [int(src.query("TRAC:POIN:ACT?"))]
    assert int(src.query("STAT:OPER:COND?")) & 1024 == 0  # running, not idle
    while counts[-1] < 10:
        lab.clock.sleep(1.0)
        counts.append(int(src.query("TRAC:POIN:ACT?")))
    assert counts[0] < 10 and counts == sorted(counts)
    assert int(src.query("STAT:OPER:COND?")) & 1024
    assert len(src.query("TRAC:DATA?").split(",")) == 20  # reading, timestamp pairs
    assert not lab.instruments["voltmeter"].local
    src.write("SOUR:SWE:ABOR")
    assert src.query(":OUTP?") == "0" and lab.instruments["voltmeter"].local


def test_6221_compliance_shows_in_the_measurement_register(lab, monkeypatch):
    src = open_raw(lab, "aux_current_source", "\n", "\n")
    monkeypatch.setattr(lab.world, "load_resistance", lambda: 100.0)  # an open lead: 100 ohm
    src.write("SOUR:CURR:COMP 1")
    src.write("SOUR:CURR 0.05")
    src.write("OUTP ON")
    assert int(src.query("STAT:MEAS:COND?")) & 8  # in compliance: 5 V needed, 1 V allowed
    assert float(src.query("SOUR:CURR?")) == pytest.approx(0.05)  # the programmed level does not show it
    assert lab.world.current == pytest.approx(0.01)  # 1 V / 100 ohm flows
    src.write("SOUR:CURR 0.005")
    assert int(src.query("STAT:MEAS:COND?")) & 8 == 0
    src.write("OUTP OFF")
    assert src.query(":OUTP?") == "0"


def test_esp300_home_search_defines_the_origin(lab):
    esp = open_raw(lab, "stage", "\r\n", "\r")
    esp.write("1MO")
    esp.write("1OR")
    assert esp.query("1MD?") == "0"
    lab.clock.sleep(12.0)
    assert esp.query("1MD?") == "1"
    assert float(esp.query("1TP")) == pytest.approx(0.0, abs=0.005)
    assert lab.world.stage.position == pytest.approx(0.0, abs=1e-6)  # the home switch is the cylinder axis
    assert lab.instruments["stage"].homed
