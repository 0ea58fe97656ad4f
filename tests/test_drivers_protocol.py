"""Protocol tests of the labctl drivers: exact bytes sent and replies parsed, offline."""
import pytest
from pymeasure.test import expected_protocol

import drivers
from drivers import ESP300Stage, GenesysGEN8_600, LakeShore336
from drivers.esp300 import StageAxis
from drivers.lakeshore336 import (
    LakeShore336HeaterChannel,
    LakeShore336TemperatureChannel,
)

GEN_INIT = [("ADR 6", "OK")]


# --------------------------------------------------------------------------- package
def test_drivers_registry():
    from drivers.genesys import GenesysLAN
    from drivers.keithley import Keithley2182, Keithley6221
    from drivers.lakeshore425 import LakeShore425

    assert drivers.DRIVERS == {
        "lakeshore336": LakeShore336, "esp300": ESP300Stage, "genesys": GenesysGEN8_600,
        "genesys-lan": GenesysLAN, "keithley6221": Keithley6221, "keithley2182": Keithley2182,
        "lakeshore425": LakeShore425,
    }
    # the labctl classes extend pymeasure's stock drivers (same commands, more of them)
    from pymeasure.instruments.keithley import Keithley2182 as Stock2182, Keithley6221 as Stock6221
    from pymeasure.instruments.lakeshore import LakeShore425 as Stock425

    assert issubclass(Keithley2182, Stock2182) and issubclass(Keithley6221, Stock6221)
    assert issubclass(LakeShore425, Stock425)


# --------------------------------------------------------------------------- LakeShore 336
def test_ls336_name_and_channels():
    with expected_protocol(LakeShore336, []) as ls:
        assert ls.name == "Lake Shore 336 Temperature Controller"
        for n in "ABCD":
            assert isinstance(getattr(ls, f"input_{n}"), LakeShore336TemperatureChannel)
        for n in (1, 2, 3, 4):
            assert isinstance(getattr(ls, f"output_{n}"), LakeShore336HeaterChannel)
        assert ls.input_C1 is None and ls.input_D5 is None


def test_ls336_read_termination(monkeypatch):
    seen = {}

    class FakeVISA:
        def __init__(self, resource, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr("pymeasure.instruments.instrument.VISAAdapter", FakeVISA)
    LakeShore336("GPIB::12")
    assert seen["read_termination"] == "\r\n"


def test_ls336_ramp_get():
    with expected_protocol(LakeShore336, [("RAMP? 1", "1,+2.5000")]) as ls:
        assert ls.output_1.ramp == (True, 2.5)


def test_ls336_ramp_get_off():
    with expected_protocol(LakeShore336, [("RAMP? 2", "0,+0.0000")]) as ls:
        assert ls.output_2.ramp == (False, 0.0)


@pytest.mark.parametrize("value, sent", [
    ((True, 2.5), "RAMP 1,1,2.5"),
    ((1, 100), "RAMP 1,1,100"),
    ((True, 0.1), "RAMP 1,1,0.1"),
    ((False, 0), "RAMP 1,0,0"),
])
def test_ls336_ramp_set(value, sent):
    with expected_protocol(LakeShore336, [(sent, None)]) as ls:
        ls.output_1.ramp = value


def test_ls336_set_ramp():
    with expected_protocol(LakeShore336, [("RAMP 2,1,1.5", None), ("RAMP 2,0,3", None)]) as ls:
        ls.output_2.set_ramp(1.5)
        ls.output_2.set_ramp(3, enabled=False)


@pytest.mark.parametrize("value", [(True, 0.05), (True, 101), (True, -1), (2, 1.0), (1,),
                                   (1, 1, 1), 5])
def test_ls336_ramp_refused(value):
    with expected_protocol(LakeShore336, []) as ls, pytest.raises(ValueError):
        ls.output_1.ramp = value


@pytest.mark.parametrize("reply, active", [("1", True), ("0", False)])
def test_ls336_ramp_active(reply, active):
    with expected_protocol(LakeShore336, [("RAMPST? 1", reply)]) as ls:
        assert ls.output_1.ramp_active is active


def test_ls336_pid_get():
    with expected_protocol(LakeShore336, [("PID? 1", "+50.0,+20.0,+0")]) as ls:
        assert ls.output_1.pid == (50.0, 20.0, 0.0)


def test_ls336_pid_set():
    with expected_protocol(LakeShore336, [("PID 1,50,20.5,0", None),
                                          ("PID 3,0.1,1000,200", None)]) as ls:
        ls.output_1.pid = (50, 20.5, 0)
        ls.output_3.pid = (0.1, 1000, 200)


@pytest.mark.parametrize("pid", [(0.05, 20, 0), (1001, 20, 0), (50, 0, 0), (50, 1001, 0),
                                 (50, 20, 201), (50, 20, -1), (50, 20)])
def test_ls336_pid_refused(pid):
    with expected_protocol(LakeShore336, []) as ls, pytest.raises(ValueError):
        ls.output_1.pid = pid


def test_ls336_heater_setup_get():
    with expected_protocol(LakeShore336, [("HTRSET? 1", "1,2,+0.000,2")]) as ls:
        assert ls.output_1.heater_setup == (1, 2, 0.0, 2)


def test_ls336_heater_setup_set():
    with expected_protocol(LakeShore336, [("HTRSET 2,2,0,1.5,1", None)]) as ls:
        ls.output_2.heater_setup = (2, 0, 1.5, 1)


@pytest.mark.parametrize("setup", [(3, 2, 0, 2), (1, 5, 0, 2), (1, 0, 2.5, 2), (1, 2, 0, 3),
                                   (1, 2, 0)])
def test_ls336_heater_setup_refused(setup):
    with expected_protocol(LakeShore336, []) as ls, pytest.raises(ValueError):
        ls.output_1.heater_setup = setup


def test_ls336_output_mode_get():
    with expected_protocol(LakeShore336, [("OUTMODE? 1", "1,1,0")]) as ls:
        assert ls.output_1.output_mode == (1, 1, 0)


def test_ls336_output_mode_set():
    with expected_protocol(LakeShore336, [("OUTMODE 1,1,2,1", None),
                                          ("OUTMODE 4,5,4,0", None)]) as ls:
        ls.output_1.output_mode = (1, 2, 1)
        ls.output_4.output_mode = (5, 4, 0)


@pytest.mark.parametrize("mode", [(6, 1, 0), (1, 5, 0), (1, 1, 2), (-1, 1, 0)])
def test_ls336_output_mode_refused(mode):
    with expected_protocol(LakeShore336, []) as ls, pytest.raises(ValueError):
        ls.output_1.output_mode = mode


@pytest.mark.parametrize("ch, reply, status", [("A", "0", 0), ("B", "1", 1), ("D", "160", 160)])
def test_ls336_reading_status(ch, reply, status):
    with expected_protocol(LakeShore336, [(f"RDGST? {ch}", reply)]) as ls:
        assert getattr(ls, f"input_{ch}").reading_status == status


def test_ls336_inherited_commands():
    with expected_protocol(LakeShore336, [
        ("KRDG? A", "+9.2000"),
        ("SETP 1,9.500000", None),
        ("SETP? 1", "+9.5000"),
        ("RANGE 1,2", None),
        ("RANGE? 1", "2"),
        ("HTR? 1", "+12.50"),
        ("MOUT 1,5.000000", None),
    ]) as ls:
        assert ls.input_A.kelvin == 9.2
        ls.output_1.setpoint = 9.5
        assert ls.output_1.setpoint == 9.5
        ls.output_1.range = "medium"
        assert ls.output_1.range == "medium"
        assert ls.output_1.output == 12.5
        ls.output_1.mout = 5


# --------------------------------------------------------------------------- ESP300
def test_esp300_axes():
    with expected_protocol(ESP300Stage, []) as esp:
        assert [a.axis for a in (esp.x, esp.y, esp.phi)] == ["1", "2", "3"]
        assert all(isinstance(a, StageAxis) for a in esp.axes)
        assert sorted(a.axis for a in esp.axes) == ["1", "2", "3"]


def test_esp300_disable_sends_only_axis_commands():
    with expected_protocol(ESP300Stage, [("1MF", None), ("2MF", None), ("3MF", None)]) as esp:
        esp.disable()


def test_esp300_version():
    with expected_protocol(ESP300Stage, [("VE?", "ESP300 Version 3.08 09/09/02")]) as esp:
        assert esp.version == "ESP300 Version 3.08 09/09/02"


def test_esp300_velocity_get():
    with expected_protocol(ESP300Stage, [("1VA?", "20.0")]) as esp:
        assert esp.x.velocity == 20.0


def test_esp300_velocity_set():
    with expected_protocol(ESP300Stage, [("2VA12.5", None), ("3VA300", None)]) as esp:
        esp.y.velocity = 12.5
        esp.phi.velocity = 300


@pytest.mark.parametrize("value", [-1, 300.5])
def test_esp300_velocity_refused(value):
    with expected_protocol(ESP300Stage, []) as esp, pytest.raises(ValueError):
        esp.x.velocity = value


def test_esp300_acceleration_get():
    with expected_protocol(ESP300Stage, [("1AC?", "80")]) as esp:
        assert esp.x.acceleration == 80.0


def test_esp300_acceleration_set():
    with expected_protocol(ESP300Stage, [("3AC40", None)]) as esp:
        esp.phi.acceleration = 40


def test_esp300_acceleration_refused():
    with expected_protocol(ESP300Stage, []) as esp, pytest.raises(ValueError):
        esp.x.acceleration = -5


def test_esp300_target_position():
    with expected_protocol(ESP300Stage, [("2DP?", "5.25")]) as esp:
        assert esp.y.target_position == 5.25


def test_esp300_stop():
    with expected_protocol(ESP300Stage, [("3ST", None)]) as esp:
        esp.phi.stop()


def test_esp300_move_to():
    with expected_protocol(ESP300Stage, [("1PA-2.5", None), ("1PA5", None)]) as esp:
        esp.x.move_to(-2.5)
        esp.x.position = 5


def test_esp300_inherited_commands():
    with expected_protocol(ESP300Stage, [("1TP", "1.2500"), ("1MD?", "1"), ("2MD?", "0"),
                                         ("1MO", None)]) as esp:
        assert esp.x.position == 1.25
        assert esp.x.motion_done is True
        assert esp.y.motion_done is False
        esp.x.enable()


# --------------------------------------------------------------------------- Genesys GEN8-600
def test_genesys_init_address():
    with expected_protocol(GenesysGEN8_600, GEN_INIT) as psu:
        assert psu.name == "TDK Lambda Genesys GEN8-600"
    with expected_protocol(GenesysGEN8_600, [("ADR 7", "OK")], address=7):
        pass


def test_genesys_voltage_setpoint():
    with expected_protocol(GenesysGEN8_600, [*GEN_INIT, ("PV 7.99", "OK"), ("PV?", "7.99")]) as p:
        p.voltage_setpoint = 7.99
        assert p.voltage_setpoint == 7.99


def test_genesys_current_setpoint():
    with expected_protocol(GenesysGEN8_600,
                           [*GEN_INIT, ("PC 450.25", "OK"), ("PC 600", "OK"),
                                       ("PC?", "600.00")]) as p:
        p.current_setpoint = 450.25
        p.current_setpoint = 600
        assert p.current_setpoint == 600.0


def test_genesys_over_voltage():
    with expected_protocol(GenesysGEN8_600,
                           [*GEN_INIT, ("OVP 0.5", "OK"), ("OVP 10", "OK"), ("OVP?", "10.00")]
                           ) as p:
        p.over_voltage = 0.5
        p.over_voltage = 10
        assert p.over_voltage == 10.0


def test_genesys_under_voltage():
    with expected_protocol(GenesysGEN8_600,
                           [*GEN_INIT, ("UVL 7.6", "OK"), ("UVL?", "7.60")]) as p:
        p.under_voltage = 7.6
        assert p.under_voltage == 7.6


@pytest.mark.parametrize("attr, value", [
    ("current_setpoint", 601), ("current_setpoint", -1), ("current_setpoint", 10.005),
    ("voltage_setpoint", 8.01), ("voltage_setpoint", -0.01),
    ("over_voltage", 0.49), ("over_voltage", 10.01),
    ("under_voltage", 7.61), ("under_voltage", -0.1),
])
def test_genesys_refused(attr, value):
    with expected_protocol(GenesysGEN8_600, GEN_INIT) as p, pytest.raises(ValueError):
        setattr(p, attr, value)


def test_genesys_measurements_and_output():
    with expected_protocol(GenesysGEN8_600, [*GEN_INIT,
        ("MV?", "3.215"), ("MC?", "412.37"), ("OUT ON", "OK"), ("OUT?", "OFF"),
        ("RMT REM", "OK"),
    ]) as p:
        assert p.voltage == 3.215
        assert p.current == 412.37
        p.output_enabled = True
        assert p.output_enabled is False
        p.remote = "REM"


# --------------------------------------------------------------------------- issue 12
# Genesys serial port: status and fault registers (Genesys manual 7.11, two hex digits)
def test_genesys_serial_registers_and_errors():
    with expected_protocol(GenesysGEN8_600, GEN_INIT + [
        ("STAT?", "06"), ("FLT?", "10"), ("FEVE?", "50"), ("FLT?", "00"), ("FLT?", "50"),
    ]) as psu:
        assert psu.status_register == 6  # CC + NFLT
        assert psu.fault_register == 16  # OVP
        assert psu.fault_events == 0x50  # OVP + OFF latched
        assert psu.faults() == []
        assert psu.faults() == ["OVP", "OFF"]


def test_genesys_serial_error_replies_are_kept():
    with expected_protocol(GenesysGEN8_600, GEN_INIT + [("OVP 2", "E04"), ("AST OFF", "OK"), ("AST?", "OFF")]) as psu:
        psu.over_voltage = 2
        assert psu.read_errors() == ["Received error: E04"]
        assert psu.read_errors() == []  # read once
        psu.auto_restart = False
        assert psu.auto_restart is False


# Genesys LAN option: SCPI on port 8003 (IA672-04-01), same property names as the serial driver
def test_genesys_lan_properties():
    from drivers.genesys import GenesysLAN

    with expected_protocol(GenesysLAN, [
        ("*IDN?", "TDK-LAMBDA,GEN8-600-LAN,12A3456-0001,1U:5.4-LAN"),
        ("SOUR:VOLT 5", None), ("SOUR:VOLT?", "5.000"), ("MEAS:VOLT?", "0.001"),
        ("SOUR:CURR 12.5", None), ("SOUR:CURR?", "12.500"), ("MEAS:CURR?", "12.49"),
        ("OUTP:STAT ON", None), ("OUTP:STAT?", "ON"), ("SOUR:MOD?", "CC"),
        ("SOUR:VOLT:PROT:LEV 6", None), ("SOUR:VOLT:PROT:LEV?", "6.00"),
        ("OUTP:PON OFF", None), ("OUTP:PON?", "OFF"),
        ("STAT:OPER:COND?", "6"), ("STAT:QUES:COND?", "0"), ("STAT:QUES?", "64"),
        ("OUTP:STAT OFF", None), ("OUTP:STAT?", "OFF"),
        ("SYST:ERR?", '0,"No error"'),  # the driver's own check: the twentieth command
        ("SOUR:MOD?", "OFF"),
    ]) as psu:
        assert psu.id == ["TDK-LAMBDA", "GEN8-600-LAN", "12A3456-0001", "1U:5.4-LAN"]
        psu.voltage_setpoint = 5
        assert psu.voltage_setpoint == 5.0 and psu.voltage == 0.001
        psu.current_setpoint = 12.5
        assert psu.current_setpoint == 12.5 and psu.current == 12.49
        psu.output_enabled = True
        assert psu.output_enabled is True and psu.mode == "CC"
        psu.over_voltage = 6
        assert psu.over_voltage == 6.0
        psu.auto_restart = False
        assert psu.auto_restart is False
        assert psu.status_register == 6 and psu.fault_register == 0 and psu.fault_events == 64
        psu.output_enabled = False
        assert psu.output_enabled is False and psu.mode == "OFF"


@pytest.mark.parametrize("attr, value", [("current_setpoint", 601), ("current_setpoint", -1),
                                         ("voltage_setpoint", 8.5), ("over_voltage", 11)])
def test_genesys_lan_refused(attr, value):
    from drivers.genesys import GenesysLAN

    with expected_protocol(GenesysLAN, []) as psu:
        with pytest.raises(ValueError):
            setattr(psu, attr, value)


def test_genesys_lan_asks_the_error_queue_every_twentieth_command():
    from drivers.genesys import GenesysLAN

    writes = [(f"SOUR:CURR {k}", None) for k in range(19)]
    with expected_protocol(GenesysLAN, writes + [("SYST:ERR?", '0,"No error"'), ("SOUR:CURR 19", None)]) as psu:
        for k in range(20):
            psu.current_setpoint = k
        assert psu.commands_since_check == 1
    # queries count too: the manual wants SYST:ERR? sent routinely
    queries = [("MEAS:CURR?", "1.0")] * 19
    with expected_protocol(GenesysLAN, queries + [("SYST:ERR?", '0,"No error"'), ("MEAS:CURR?", "1.0")]) as psu:
        for _ in range(20):
            assert psu.current == 1.0


def test_genesys_lan_error_in_the_queue_raises():
    from drivers.genesys import GenesysLAN

    writes = [(f"SOUR:CURR {k}", None) for k in range(19)]
    with expected_protocol(GenesysLAN, writes + [("SYST:ERR?", '-222,"Data out of range;address 06"'),
                                                 ("SYST:ERR?", '0,"No error"')]) as psu:
        for k in range(19):
            psu.current_setpoint = k
        with pytest.raises(ValueError, match="-222"):
            psu.current_setpoint = 19  # the check before the 20th command finds the error: not sent
        assert psu.error_log == ['-222,"Data out of range;address 06"']


def test_genesys_lan_read_errors_and_clear():
    from drivers.genesys import GenesysLAN

    with expected_protocol(GenesysLAN, [("SYST:ERR?", '-113,"Undefined header;address 06"'),
                                        ("SYST:ERR?", '0,"No error"'), ("*CLS", None)]) as psu:
        assert psu.read_errors() == ['-113,"Undefined header;address 06"']
        psu.clear()


def test_genesys_lan_termination_defaults(monkeypatch):
    from drivers.genesys import GenesysLAN

    seen = {}

    class FakeVISA:
        def __init__(self, resource, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr("pymeasure.instruments.instrument.VISAAdapter", FakeVISA)
    GenesysLAN("TCPIP::192.168.1.30::8003::SOCKET")
    assert seen["read_termination"] == "\n" and seen["write_termination"] == "\n"  # IA672-04-01 9.5


# Keithley 2182A: filters, error queue (2182A user's manual p. 3-8, p. 15-19)
def test_keithley2182_filters():
    from drivers.keithley import Keithley2182

    with expected_protocol(Keithley2182, [
        (":SENS:VOLT:DFIL:COUN 10", None), (":SENS:VOLT:DFIL:COUN?", "10"),
        (":SENS:VOLT:DFIL:TCON REP", None), (":SENS:VOLT:DFIL:TCON?", "REP"),
        (":SENS:VOLT:DFIL:STAT 1", None), (":SENS:VOLT:DFIL:STAT?", "1"),
        (":SENS:VOLT:LPAS:STAT 0", None), (":SENS:VOLT:LPAS:STAT?", "0"),
        (":SYST:LFR?", "50"),
    ]) as nvm:
        nvm.digital_filter_count = 10
        assert nvm.digital_filter_count == 10
        nvm.digital_filter_type = "REP"
        assert nvm.digital_filter_type == "REP"
        nvm.digital_filter_enabled = True
        assert nvm.digital_filter_enabled is True
        nvm.analog_filter_enabled = False
        assert nvm.analog_filter_enabled is False
        assert nvm.max_nplc() == 50.0  # 50 Hz mains
        assert nvm.max_nplc(60) == 60.0
        with pytest.raises(ValueError):
            nvm.digital_filter_count = 101


def test_keithley2182_error_queue():
    from drivers.keithley import Keithley2182

    with expected_protocol(Keithley2182, [("SYST:ERR?", '-222,"Data out of range"'),
                                          ("SYST:ERR?", '-350,"Queue overflow"'),
                                          ("SYST:ERR?", '0,"No error"')]) as nvm:
        assert nvm.read_errors() == ['-222,"Data out of range"', '-350,"Queue overflow"']


# Keithley 6221: compliance and delta progress (reference manual section 11)
def test_keithley6221_compliance_and_delta_progress():
    from drivers.keithley import Keithley6221

    with expected_protocol(Keithley6221, [
        (":STAT:MEAS:COND?", "8"), (":STAT:MEAS:COND?", "0"),
        (":STAT:OPER:COND?", "0"), (":TRAC:POIN:ACT?", "7"), (":STAT:OPER:COND?", "1024"),
        (":SOUR:SWE:ABOR", None), ("SYST:ERR?", '0,"No error"'),
    ]) as src:
        assert src.in_compliance is True
        assert src.in_compliance is False
        assert src.idle is False
        assert src.delta_points_stored == 7
        assert src.idle is True
        src.delta_abort()
        assert src.read_errors() == []


# Lake Shore 425: probe type, range table, DC mode, zero completion, *ESR?
def test_lakeshore425_probe_type_and_ranges():
    from drivers.lakeshore425 import LakeShore425

    with expected_protocol(LakeShore425, [("TYPE?", "41"), ("RANGE 3", None), ("RANGE?", "3"),
                                          ("RDGMODE 1,0,1", None), ("RDGMODE?", "1,0,1")]) as g:
        assert g.probe_type == 41
        assert g.range_table(41)[3] == 35e3  # high stability: RANGE 3 is 35 kG
        assert g.range_table(40)[3] == 3.5e3 and g.range_table(42)[3] == 35.0 and g.range_table(52)[1] == 0.35
        g.range_number = 3
        assert g.range_number == 3
        g.dc_mode()
        assert g.mode == (1, 0, 1)
        with pytest.raises(ValueError):
            g.range_number = 5


def test_lakeshore425_zero_completion_and_errors():
    from drivers.lakeshore425 import LakeShore425

    with expected_protocol(LakeShore425, [("ZPROBE", None), ("*OPC?", "1"), ("*ESR?", "48"), ("*ESR?", "0")]) as g:
        g.zero_probe()
        assert g.operation_complete() is True
        assert g.read_errors() == ["command error (CME)", "execution error (EXE)"]
        assert g.read_errors() == []


# Lake Shore 336: no error queue, *ESR? bits
def test_ls336_event_status_errors():
    with expected_protocol(LakeShore336, [("*ESR?", "32"), ("*ESR?", "0")]) as ls:
        assert ls.read_errors() == ["command error (CME)"]
        assert ls.read_errors() == []


def test_ls336_heater_off_and_read_back():
    with expected_protocol(LakeShore336, [("RANGE 1,0", None), ("RANGE? 1", "0")]) as ls:
        ls.output_1.range = "off"
        assert ls.output_1.range == "off"


# Newport ESP300: motor on, home search, error FIFO (user's manual chapter 3)
def test_esp300_motor_home_and_fifo():
    with expected_protocol(ESP300Stage, [
        ("1MO", None), ("1MO?", "1"), ("1OR", None), ("1OR1", None), ("1MD?", "0"), ("1MD?", "1"),
        ("TE?", "113"), ("TE?", "7"), ("TE?", "0"), ("TB?", "0, 0, NO ERROR DETECTED"), ("1ST", None),
    ]) as esp:
        esp.x.enable()
        assert esp.x.motor_on is True
        esp.x.home_search()
        esp.x.home_search(1)
        assert esp.x.motion_done is False
        assert esp.x.motion_done is True
        assert esp.read_errors() == [113, 7]
        assert esp.error_message == "0, 0, NO ERROR DETECTED"
        esp.x.stop()
        with pytest.raises(ValueError):
            esp.x.home_search(7)
