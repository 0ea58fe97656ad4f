"""Safety (DESIGN section 6): every exit path ramps the current to zero at the
configured rate and turns the output off; limits are refused before anything
reaches an instrument; a lost supply link is reported loudly, never silently."""
from __future__ import annotations

import logging
import math
import os
import re
import signal

import pytest

from labctl.errors import InstrumentError, LimitError


class Spy:
    """Records every message that reaches an emulator (whatever the transport)."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.messages: list[str] = []
        original = emulator.handle

        def handle(message):
            self.messages.append(message)
            return original(message)

        emulator.handle = handle

    def programmed_currents(self) -> list[float]:
        """Currents sent with the Genesys PC command, in order."""
        return [float(m.split()[1]) for m in self.messages if re.fullmatch(r"PC \S+", m.strip())]


def assert_safe(st):
    """Nothing flows and the supply's output is off (checked in the world, not via the driver)."""
    assert st.lab.world.current == 0.0
    supply = st.lab.instruments["current_source"]
    assert supply.output is False
    assert supply.pc == 0.0


def assert_ramped_down(st, spy: Spy, start_current: float, t_start: float):
    """The shutdown ramp went down in steps of at most ramp_step, no faster than max_ramp_rate."""
    lim = st.config.current_source.limits
    pcs = [start_current] + spy.programmed_currents()
    assert pcs[-1] == 0.0
    steps = [a - b for a, b in zip(pcs, pcs[1:])]
    assert all(0 < s <= lim.ramp_step + 1e-9 for s in steps), steps  # monotone, small steps
    assert st.clock.now() - t_start >= start_current / lim.max_ramp_rate * 0.99
    assert any("OUT OFF" in m.upper() or m.strip().upper() == "OUT 0" for m in spy.messages)


# ------------------------------------------------------------- (a) exceptions
def test_exception_mid_ramp_ramps_down_and_turns_off(sim_station, caplog):
    st = sim_station
    caplog.set_level(logging.INFO, logger="labctl")
    spy = Spy(st.lab.instruments["current_source"])
    seen = {}

    def should_stop():
        if st.current_source.setpoint >= 100.0:
            seen["t"], seen["I"] = st.clock.now(), st.lab.world.current
            spy.messages.clear()
            raise RuntimeError("analysis crashed")
        return False

    with pytest.raises(RuntimeError, match="analysis crashed"):
        with st.session():
            st.current_source.ramp_to(300.0, should_stop=should_stop)
    assert seen["I"] == pytest.approx(100.0)  # the exception really came mid-ramp, with current flowing
    assert_safe(st)
    assert_ramped_down(st, spy, 100.0, seen["t"])
    text = caplog.text
    assert "ramped to 0 A" in text and "output off" in text  # and says so in the log


def test_instrument_fault_mid_run_still_shuts_down(sim_station):
    st = sim_station
    with pytest.raises(InstrumentError) as err:
        with st.session():
            st.current_source.ramp_to(80.0)
            st.lab.inject("gaussmeter", "timeout")
            st.gaussmeter.read_field()
    assert "gaussmeter" in str(err.value) and "TCPIP0::127.0.0.1::5603::SOCKET" in str(err.value)
    assert_safe(st)


# ------------------------------------------------------------- (b) Ctrl-C
def test_keyboard_interrupt_mid_ramp(sim_station):
    st = sim_station
    spy = Spy(st.lab.instruments["current_source"])
    seen = {}

    def ctrl_c():
        if st.current_source.setpoint >= 60.0:
            seen["t"] = st.clock.now()
            spy.messages.clear()
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        with st.session():
            st.current_source.ramp_to(200.0, should_stop=ctrl_c)
    assert_safe(st)
    assert_ramped_down(st, spy, 60.0, seen["t"])


def test_station_as_context_manager_is_safe_too(sim_station):
    st = sim_station
    with pytest.raises(ZeroDivisionError):
        with st:
            st.current_source.ramp_to(30.0)
            assert st.lab.world.current == pytest.approx(30.0)
            1 / 0
    assert_safe(st)


def test_normal_end_of_session_is_safe(sim_station):
    st = sim_station
    with st.session():
        st.current_source.ramp_to(40.0)
        st.stage.move_to(5.0, wait=False)
    assert_safe(st)
    assert not st.lab.world.stage.moving  # the stage was stopped as well


# ------------------------------------------------------------- (c) limits refused before sending
def test_current_limits_refused_before_anything_is_sent(sim_station):
    st = sim_station
    cs = st.current_source
    spy = Spy(st.lab.instruments["current_source"])
    lim = st.config.current_source.limits
    assert lim.max_current == 600.0 and lim.max_ramp_rate == 20.0
    bad = [
        lambda: cs.ramp_to(700.0),  # above max_current
        lambda: cs.set_current(700.0),
        lambda: cs.ramp_to(600.01),
        lambda: cs.ramp_to(-5.0),  # the Genesys is unipolar
        lambda: cs.set_current(-0.5),
        lambda: cs.ramp_to(math.nan),
        lambda: cs.ramp_to(100.0, rate=25.0),  # above max_ramp_rate (but below the emergency rate)
        lambda: cs.ramp_to(100.0, rate=500.0),  # above even the emergency rate
        lambda: cs.ramp_to(100.0, rate=0.0),
        lambda: cs.ramp_to(100.0, rate=-1.0),
        lambda: cs.set_current(5.0),  # a jump larger than ramp_step: must ramp
    ]
    for request in bad:
        with pytest.raises(LimitError):
            request()
        assert spy.messages == []  # NOTHING reached the supply
    assert st.lab.world.current == 0.0
    assert st.lab.instruments["current_source"].output is False
    # the limit itself is allowed (and does reach the instrument)
    cs.set_current(1.0)
    assert spy.messages and st.lab.instruments["current_source"].pc == 1.0


def test_limit_error_names_the_limit(sim_station):
    with pytest.raises(LimitError, match="max_current") as err:
        sim_station.current_source.ramp_to(700.0)
    assert "\n" not in str(err.value)
    with pytest.raises(LimitError, match="max_ramp_rate"):
        sim_station.current_source.ramp_to(10.0, rate=25.0)


def test_temperature_window_refused_before_sending(sim_station):
    st = sim_station
    spy = Spy(st.lab.instruments["temperature"])
    before = st.lab.world.controller.setpoint
    for request in (lambda: st.temperature.set_setpoint(0.5),  # below min_temperature 1 K
                    lambda: st.temperature.set_setpoint(400.0),  # above max_temperature 320 K
                    lambda: st.temperature.set_setpoint(math.inf),
                    lambda: st.temperature.set_setpoint(9.0, ramp_rate=50.0)):  # above 5 K/min
        with pytest.raises(LimitError, match="temperature"):
            request()
        assert spy.messages == []
    assert st.lab.world.controller.setpoint == before


def test_stage_travel_refused_before_sending(sim_station):
    st = sim_station
    spy = Spy(st.lab.instruments["stage"])
    target = st.lab.world.stage.target
    for request in (lambda: st.stage.move_to(12.0),  # travel is [0, 11] mm
                    lambda: st.stage.move_to(-0.1),
                    lambda: st.stage.move_to_radius(0.0115),
                    lambda: st.stage.move_to(math.nan)):
        with pytest.raises(LimitError, match="travel"):
            request()
        assert spy.messages == []
    assert st.lab.world.stage.target == target


def test_gaussmeter_range_beyond_max_field_refused(sim_station):
    st = sim_station
    spy = Spy(st.lab.instruments["gaussmeter"])
    with pytest.raises(LimitError, match="max_field"):
        st.gaussmeter.set_range_for(1.0)
    assert spy.messages == []


# ------------------------------------------------------------- (d) lost link
def test_lost_supply_link_is_reported_loudly(sim_station, caplog):
    st = sim_station
    caplog.set_level(logging.INFO, logger="labctl")
    with pytest.raises(InstrumentError, match="DANGER") as err:
        with st.session():
            st.current_source.ramp_to(50.0)
            st.lab.inject("current_source", "drop")
    msg = str(err.value)
    assert "current_source" in msg and "TCPIP0::127.0.0.1::5600::SOCKET" in msg
    assert "switch it off at the instrument" in msg and "output ON" in msg and "programmed 50 A" in msg
    assert err.value.role == "current_source"
    assert any(r.levelno >= logging.CRITICAL and "DANGER" in r.getMessage() for r in caplog.records)
    # honest: the supply really is still delivering current
    assert st.lab.world.current == pytest.approx(50.0)
    st.lab.clear_faults()


def test_lost_supply_link_during_an_exception_keeps_both_errors(sim_station):
    st = sim_station
    with pytest.raises(InstrumentError, match="DANGER") as err:
        with st.session():
            st.current_source.ramp_to(20.0)
            st.lab.inject("current_source", "drop")
            raise RuntimeError("the original failure")
    chain, e = [], err.value
    while e is not None:
        chain.append(e)
        e = e.__context__
    assert any(isinstance(e, RuntimeError) for e in chain)  # the first failure is not lost
    st.lab.clear_faults()


def test_lost_supply_link_still_stops_the_stage(sim_station):
    st = sim_station
    with pytest.raises(InstrumentError, match="DANGER"):
        with st.session():
            st.current_source.ramp_to(10.0)
            st.stage.move_to(2.0, wait=False)
            st.lab.inject("current_source", "drop")
    assert not st.lab.world.stage.moving  # the rest of the shutdown still ran
    st.lab.clear_faults()


# ------------------------------------------------------------- (e) SIGTERM
def test_sigterm_inside_session_ends_safe(sim_station):
    st = sim_station
    previous = signal.getsignal(signal.SIGTERM)
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with st.session():
            st.current_source.ramp_to(70.0)
            assert st.lab.world.current == pytest.approx(70.0)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes, long before this ends
                st.clock.sleep(0.01)
            reached.append("after")
    assert reached == []
    assert_safe(st)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is restored


def test_supply_not_delivering_its_setpoint_trips_the_guard(tmp_path):
    """If the supply falls into voltage compliance (here: the leads' resistance jumps, so
    PV / R < PC), the guard's read-back sees it, ramps down and fails the step."""
    from labctl.catalog import Catalog
    from labctl.protocol import Plan, execute
    from labctl.runner import Runner
    from labctl.station import Station
    from labctl.stream import LiveStream

    station = Station.from_file(None, seed=2)
    stream = LiveStream()
    rows = []

    def on_row(topic, payload):
        if topic == "row":
            rows.append(payload)
            if len(rows) == 6:
                station.lab.world.lead_resistance = 0.1  # ohm: 5 V compliance now allows only 50 A

    stream.subscribe(on_row)
    runner = Runner(station, Catalog(tmp_path), stream)
    with station.session():
        state = execute(station, Plan(["radial-field"], {"radial-field": {"ic": "430"}}, {}), tmp_path, runner)
    assert state["status"] == "failed"
    assert "instead of" in state["reason"] and "compliance" in state["reason"]
    assert station.lab.world.current == 0.0
    assert station.lab.instruments["current_source"].output is False


# ------------------------------------------------ the 6221 as current source (issue 12)
def station_6221(tmp_path):
    from stations import write_6221_station
    from labctl.config import load_station
    from labctl.station import Station

    st = Station(load_station(write_6221_station(tmp_path), sim_overrides={"seed": 3}))
    st.connect(setup=True)
    return st


def test_6221_compliance_trips_the_guard(tmp_path):
    """The 6221 reports its programmed level, so only the compliance bit shows that less
    current flows (an open lead): the guard trips and the source ends at zero."""
    from labctl.safety import Guard, SupplyFault

    st = station_6221(tmp_path)
    try:
        cs = st.current_source
        cs.ramp_to(0.05)
        st.lab.world.lead_resistance = 1e3  # 0.05 A x 1 kOhm = 50 V > 10 V compliance
        with pytest.raises(SupplyFault, match="compliance"):
            Guard(st).tick("test")
        aux = st.lab.instruments["aux_current_source"]
        assert aux.output is False and aux.level == 0.0
    finally:
        st.close()


def test_6221_delta_mode_waits_for_every_reading_and_aborts_the_sweep(tmp_path):
    st = station_6221(tmp_path)
    try:
        spy = Spy(st.lab.instruments["aux_current_source"])
        v = st.current_source.delta_voltage(0.01, count=10)
        assert math.isfinite(v)
        msgs = [m.strip().upper() for m in spy.messages]
        data = max(i for i, m in enumerate(msgs) if m.startswith(":TRAC:DATA?"))
        assert any(m.startswith(":TRAC:POIN:ACT?") for m in msgs[:data])  # waited for completion
        assert any(m.startswith(":SOUR:SWE:ABOR") for m in msgs[data:])  # then ended the test
        assert st.lab.instruments["aux_current_source"].running is False
    finally:
        st.close()


# ----------------------------------------------- the Genesys at run start (issue 12)
@pytest.mark.parametrize("station_file", ["sim.toml", "sim-lan.toml"])
def test_genesys_run_start_sets_auto_restart_off_and_ovp_then_faults_trip(station_file):
    from labctl.config import STATIONS_DIR
    from labctl.safety import Guard, SupplyFault
    from labctl.station import Station

    st = Station.from_file(STATIONS_DIR / station_file, seed=1)
    emu = st.lab.instruments["current_source"]
    emu.ast = True  # left on by a previous user: the output would come back after a mains drop
    st.connect(setup=True)
    try:
        assert emu.ast is False
        limit = st.config.current_source.limits.compliance_voltage
        assert emu.pv == pytest.approx(limit) and emu.ovp > emu.pv
        st.current_source.ramp_to(40.0)
        emu.fault |= 4  # over-temperature (OTP): the supply shuts its output down
        with pytest.raises(SupplyFault, match="OTP"):
            Guard(st).tick("test")
        assert st.lab.world.current == 0.0
    finally:
        emu.fault = 0
        st.close()
