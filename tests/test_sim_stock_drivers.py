"""pymeasure's stock drivers (and our LakeShore336) against the virtual lab, over
both transports: the in-process pyvisa backend and real TCP sockets (pyvisa-py).

Every instrument: identity, a setting and its read-back, a measurement that is
coupled to the shared physical world.  Plus the wire-level failure modes a
real instrument shows: wrong terminations time out, SCPI error queues, Genesys
error codes.
"""
from __future__ import annotations

import math
import threading

import pytest
from pymeasure.instruments.keithley import Keithley2182, Keithley6221
from pymeasure.instruments.lakeshore import LakeShore425
from pymeasure.instruments.newport import ESP300
from pymeasure.instruments.tdk import TDK_Gen80_65
from pyvisa import constants
from pyvisa.errors import VisaIOError

from drivers import LakeShore336
from labctl.physics import MU0
from sim_instruments.lab import VirtualLab
from sim_instruments.server import LabServer

# terminations, as in labctl/stations/sim.toml
TERMS = {
    "current_source": ("\r", "\r"),
    "voltmeter": ("\n", "\n"),
    "temperature": ("\r\n", "\r\n"),
    "gaussmeter": ("\r\n", "\r\n"),
    "stage": ("\r\n", "\r"),
    "aux_current_source": ("\n", "\n"),
}
DRIVER = {
    "current_source": TDK_Gen80_65,
    "voltmeter": Keithley2182,
    "temperature": LakeShore336,
    "gaussmeter": LakeShore425,
    "stage": ESP300,
    "aux_current_source": Keithley6221,
}
T_NORMAL = 10.0  # K: Pb (Tc 7.196 K) is in the normal state, so the taps show I*R_n


class Bench:
    """One virtual lab reachable over one transport; opens stock drivers on it."""

    def __init__(self, lab: VirtualLab, resources: dict[str, str], visa_library, timeout: int):
        self.lab = lab
        self.world = lab.world
        self.resources = resources
        self.visa_library = visa_library
        self.timeout = timeout
        self.opened = []

    def open(self, role: str, **kw):
        read, write = TERMS[role]
        if not kw.pop("driver_default_read_termination", False):
            kw.setdefault("read_termination", read)
        kw.setdefault("write_termination", write)
        inst = DRIVER[role](self.resources[role], visa_library=self.visa_library, timeout=self.timeout, **kw)
        self.opened.append(inst)
        return inst

    def close(self):
        for inst in self.opened:
            try:
                inst.adapter.close()
            except Exception:
                pass


@pytest.fixture(params=["inprocess", "tcp"])
def bench(request):
    lab = VirtualLab("Pb", seed=3, speedup="max", temperature=T_NORMAL)
    if request.param == "inprocess":
        b = Bench(lab, {role: f"TCPIP0::127.0.0.1::{port}::SOCKET" for role, port in lab.ports.items()},
                  lab.visa_library, timeout=500)
        yield b
        b.close()
    else:
        server = LabServer(lab, base_port=0).start()
        # real sockets on ephemeral loopback ports, not the lab's nominal 5600-5605
        assert all(r.startswith("TCPIP0::127.0.0.1::") for r in server.resources.values())
        assert {int(r.split("::")[2]) for r in server.resources.values()}.isdisjoint(set(lab.ports.values()))
        b = Bench(lab, server.resources, "@py", timeout=5000)
        yield b
        b.close()
        # stop the six servers in parallel (each shutdown waits for one 0.1 s poll), then close them
        stoppers = [threading.Thread(target=srv.shutdown) for srv in server.servers.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(5)
        server.stop()


# ---------------------------------------------------------------- TDK Genesys
def test_genesys_stock_driver(bench):
    psu = bench.open("current_source")  # the constructor sends "ADR 6" and checks the OK
    assert psu.id == ["LAMBDA", "GEN8-600"]
    psu.voltage_setpoint = 5.0
    assert psu.voltage_setpoint == pytest.approx(5.0)
    psu.current_setpoint = 10.0
    assert psu.current_setpoint == pytest.approx(10.0)
    assert psu.output_enabled is False
    assert bench.world.current == 0.0  # output off: nothing flows whatever PC says
    psu.output_enabled = True
    assert psu.output_enabled is True
    # constant-current mode: 10 A into leads + normal sample (~2 mOhm) is far below PV
    assert bench.world.current == pytest.approx(10.0)
    assert float(psu.current) == pytest.approx(10.0, abs=0.1)  # MC? has 0.02 A readback noise
    v = float(psu.voltage)  # MV? = I * (2 mOhm leads + sample)
    assert v == pytest.approx(10.0 * bench.world.load_resistance(), rel=0.02)
    psu.output_enabled = False
    assert bench.world.current == 0.0


def test_genesys_bogus_command_replies_c01(bench):
    psu = bench.open("current_source")
    assert psu.ask("FOO 1") == "C01"  # command error, the supply's own code
    assert psu.ask("PC 700") == "C05"  # out of the 600 A range: refused ...
    assert float(psu.ask("PC?")) == 0.0  # ... and nothing changed
    assert psu.id == ["LAMBDA", "GEN8-600"]  # the link is still in step


# ---------------------------------------------------------------- Keithley 2182A
def test_keithley2182_stock_driver(bench):
    nvm = bench.open("voltmeter")
    assert "MODEL 2182A" in nvm.id
    nvm.voltage_nplc = 1
    assert nvm.voltage_nplc == pytest.approx(1.0)
    nvm.voltage_nplc = 5
    nvm.active_channel = 1
    assert nvm.active_channel == 1
    w, imp = bench.world, bench.world.imperfections
    sigma = imp.voltage_noise / math.sqrt(5) + 0.01 * 1e-7  # 5 NPLC + 10 mV range floor

    # no current: only the thermal EMF of the leads (plus its slow drift)
    v0 = float(nvm.voltage)
    emf = imp.thermal_emf + imp.emf_drift * (w.now() - w._t_start)
    assert v0 == pytest.approx(emf, abs=6 * sigma)

    # 30 A through the normal-state Pb sample: the taps see I * R_n(T) on top
    # (the stock TDK_Gen80_65 class refuses more than 38 A, see drivers/genesys.py)
    psu = bench.open("current_source")
    psu.voltage_setpoint = 5.0
    psu.current_setpoint = 30.0
    psu.output_enabled = True
    v = float(nvm.voltage)
    r_n = w.sample.normal_resistance(w.t_sample)
    assert w.t_sample > w.sample.material.tc
    assert v - v0 == pytest.approx(30.0 * r_n, abs=8 * sigma)
    assert 30.0 * r_n > 100 * sigma  # the signal is real, not noise
    psu.output_enabled = False


def test_keithley2182_error_queue_after_bogus_command(bench):
    nvm = bench.open("voltmeter")
    assert nvm.ask("SYST:ERR?").strip() == '0,"No error"'
    nvm.write(":BOGUS:COMMAND 1")
    code, message = nvm.ask("SYST:ERR?").strip().split(",", 1)
    assert int(code) == -113 and "Undefined header" in message
    assert nvm.ask("SYST:ERR?").strip() == '0,"No error"'  # the queue empties


# ---------------------------------------------------------------- Keithley 6221
def test_keithley6221_stock_driver_and_delta_mode(bench):
    src = bench.open("aux_current_source")
    assert "MODEL 6221" in src.id
    src.source_compliance = 5
    assert src.source_compliance == pytest.approx(5.0)
    src.source_current = 0.05
    assert src.source_current == pytest.approx(0.05)
    assert not src.source_enabled
    src.enable_source()
    assert src.source_enabled  # a query: the write before it has been carried out (TCP too)
    assert bench.world.current == pytest.approx(0.05)  # the 6221 drives the same sample
    src.disable_source()
    # OUTP OFF is write-only: read it back before looking at the world (over TCP the
    # server may not have processed the write yet; the query is answered after it)
    assert src.source_enabled is False
    assert bench.world.current == 0.0

    # delta mode with the 2182A: thermal EMF cancels, the normal-state I*R_n remains
    assert src.delta_connected
    src.delta_unit = "V"
    src.delta_high_source = 0.1
    assert src.delta_low_source == pytest.approx(-0.1)
    src.delta_delay = 0.002
    src.delta_cycles = 20
    src.delta_measurement_sets = 1
    src.delta_buffer_points = 20
    src.delta_arm()
    src.delta_start()
    # the readings accumulate while the test runs (6221 manual, delta): wait until all are there
    stored = []
    for _ in range(200):  # each point is one 2182A reading (power-up: NPLC 5, filter of 10)
        stored.append(int(src.ask(":TRAC:POIN:ACT?")))
        if stored[-1] >= 20:
            break
        bench.lab.clock.sleep(1.0)
    assert stored[0] < 20 and stored[-1] == 20  # a partial buffer at first, all 20 in the end
    assert int(src.ask(":STAT:OPER:COND?")) & 1024  # idle: the test is finished
    values = src.delta_values
    readings = values[0::2]
    assert len(readings) == 20
    src.delta_abort()  # SOUR:SWE:ABOR ends delta mode and returns the 2182A to local
    assert src.source_enabled is False
    assert bench.lab.instruments["voltmeter"].local
    w = bench.world
    expected = 0.1 * w.sample.normal_resistance(w.t_sample)  # ~34 nV, far below the ~300 nV EMF
    mean = sum(readings) / len(readings)
    assert mean == pytest.approx(expected, rel=0.1)
    assert bench.world.current == 0.0  # delta mode leaves the output as it was (off)


# ---------------------------------------------------------------- Lake Shore 425
def test_lakeshore425_stock_driver(bench):
    g = bench.open("gaussmeter")
    assert g.ask("*IDN?").startswith("LSCI,MODEL425")
    g.unit = "T"
    assert g.unit == "T"
    g.range = 350
    assert g.range == 350
    w = bench.world
    # zero with no current, then 30 A: B(R) = mu0 I / (2 pi R), seen through the misaligned probe
    g.zero_probe()  # ZPROBE takes a few seconds; *OPC? answers when it is done
    assert g.ask("*OPC?").strip() == "1"
    assert abs(float(g.field)) < 5e-6
    psu = bench.open("current_source")
    psu.voltage_setpoint = 5.0
    psu.current_setpoint = 30.0
    psu.output_enabled = True
    assert w.stage.position == pytest.approx(10.0)  # the probe rests at the outer wall
    b = sum(float(g.field) for _ in range(10)) / 10
    expected = MU0 * 30.0 / (2 * math.pi * 0.010) * math.cos(w.imperfections.misalignment)
    # 0.6 mT signal; noise ~0.73 uT per reading on the 350 G range (0.23 uT for the mean of 10)
    assert b == pytest.approx(expected, abs=2e-6)
    assert b > 0.98 * MU0 * 30.0 / (2 * math.pi * 0.010)  # a probe misaligned by a few degrees at most
    g.unit = "G"
    assert float(g.field) == pytest.approx(expected * 1e4, abs=5e-2)  # same field in gauss (1 G = 1e-4 T)
    psu.output_enabled = False


# ---------------------------------------------------------------- Newport ESP300
def test_esp300_stock_driver(bench):
    esp = bench.open("stage")
    assert esp.ask("VE?").startswith("ESP300 Version")
    # power-up: motor off, and the counter reads 0 wherever the stage stands (10 mm here)
    assert esp.ask("1MO?").strip() == "0"
    assert esp.x.position == pytest.approx(0.0, abs=0.005)
    esp.x.position = 1.0  # refused: motor off
    assert esp.error == 113  # axis 1, MOTOR NOT ENABLED
    esp.x.enable()
    assert esp.ask("1MO?").strip() == "1"
    esp.x.home()  # OR1: search the home switch (at the cylinder axis) at 1 mm/s
    assert not esp.x.motion_done
    bench.lab.clock.sleep(11.0)
    assert esp.x.motion_done
    assert esp.x.position == pytest.approx(0.0, abs=0.005)
    assert bench.world.stage.position == pytest.approx(0.0, abs=1e-6)
    esp.x.position = 10.0
    assert float(esp.ask("1DP?")) == pytest.approx(10.0)  # read back the target before waiting
    bench.lab.clock.sleep(11.0)
    assert esp.x.motion_done and esp.x.position == pytest.approx(10.0, abs=0.005)
    esp.x.left_limit = 0.5
    assert esp.x.left_limit == pytest.approx(0.5)
    esp.x.position = 8.0  # PA8: starts the move at 1 mm/s
    assert not esp.x.motion_done
    bench.lab.clock.sleep(1.0)  # one virtual second: half way
    assert esp.x.position == pytest.approx(9.0, abs=0.01)
    bench.lab.clock.sleep(1.5)
    assert esp.x.motion_done
    assert esp.x.position == pytest.approx(8.0, abs=0.005)
    esp.x.position = 0.2  # beyond the software limit set above: refused with an axis error
    assert esp.error == 107  # axis 1, negative software limit
    assert esp.error == 0
    assert bench.world.stage.target == pytest.approx(8.0)


# ---------------------------------------------------------------- Lake Shore 336
def test_lakeshore336_driver(bench):
    ls = bench.open("temperature", driver_default_read_termination=True)  # our driver defaults to \r\n
    assert "MODEL336" in ls.id
    ls.output_1.ramp = (True, 2.0)
    assert ls.output_1.ramp == (True, 2.0)
    ls.output_1.setpoint = 9.5
    assert ls.output_1.setpoint == pytest.approx(9.5)
    w = bench.world
    w.advance()
    sigma = w.imperfections.temperature_noise  # 1 mK rms below 10 K
    assert ls.input_A.kelvin == pytest.approx(w.t_stage, abs=6 * sigma + 0.01)
    assert ls.input_B.kelvin == pytest.approx(w.t_sample, abs=6 * sigma + 0.01)
    assert ls.input_A.reading_status == 0


# ---------------------------------------------------------------- wire faults
def test_wrong_read_termination_times_out_in_process():
    lab = VirtualLab("Pb", seed=3, speedup="max")
    res = f"TCPIP0::127.0.0.1::{lab.ports['voltmeter']}::SOCKET"
    # pymeasure's Keithley2182 defaults to read_termination="\r"; the socket replies end in "\n"
    nvm = Keithley2182(res, visa_library=lab.visa_library, write_termination="\n", timeout=200)
    with pytest.raises(VisaIOError) as err:
        nvm.id
    assert err.value.error_code == constants.StatusCode.error_timeout
    nvm.adapter.close()
    # the same instrument with the right terminator answers
    good = Keithley2182(res, visa_library=lab.visa_library, read_termination="\n", write_termination="\n",
                        timeout=200)
    assert "MODEL 2182A" in good.id
    good.adapter.close()


def test_wrong_read_termination_genesys_times_out_in_process():
    lab = VirtualLab("Pb", seed=3, speedup="max")
    res = f"TCPIP0::127.0.0.1::{lab.ports['current_source']}::SOCKET"
    with pytest.raises(VisaIOError) as err:  # the ADR handshake in the constructor never ends
        TDK_Gen80_65(res, visa_library=lab.visa_library, read_termination="\n", write_termination="\r",
                     timeout=200)
    assert err.value.error_code == constants.StatusCode.error_timeout
