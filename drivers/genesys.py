"""TDK-Lambda Genesys GEN 8-600 DC power supply (8 V, 600 A), on its two remote interfaces.

``GenesysGEN8_600`` speaks the serial protocol of the RS-232/RS-485 port
(Genesys user manual, chapter 7): ``ADR n`` first, every setting answered with
``OK`` (read by ``check_set_errors``) or an error code ``Cnn``/``Enn``
(tables 7-1, 7-2); queries return the value; CR terminates both ways.

``GenesysLAN`` speaks SCPI on the LAN option's socket (Genesys LAN manual
IA672-04-01: TCP port 8003, section 9.6; LF replies, 9.5; a query at least
every twenty commands, 9.4) with the same property names as pymeasure's
``TDK_Lambda_Base``, so the current-source role does not care which one it has.

Both drivers offer the same status interface:

``status_register``  status condition: CV 1, CC 2, NFLT 4, FLT 8, AST 16, FDE 32, LCL 128
``fault_register``   fault condition: AC 2, OTP 4, FLD 8, OVP 16, SO 32, OFF 64, ENA 128
``fault_events``     latched faults since last read (cleared by reading)
``read_errors()``    the error queue (LAN: ``SYST:ERR?`` until 0; serial: the ``Cnn``/``Enn``
                     replies collected since the last call), a list of strings
``faults()``         names of the fault bits set now, e.g. ``["OVP"]``
``auto_restart``     auto-restart (output back on by itself after a mains drop), bool
``over_voltage``     over-voltage protection level, V
"""
from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.tdk.tdk_base import TDK_Lambda_Base
from pymeasure.instruments.validators import strict_discrete_set, strict_range

FAULT_BITS = {2: "AC", 4: "OTP", 8: "FLD", 16: "OVP", 32: "SO", 64: "OFF", 128: "ENA"}
STATUS_BITS = {1: "CV", 2: "CC", 4: "NFLT", 8: "FLT", 16: "AST", 32: "FDE", 128: "LCL"}
# faults that shut the output down (OFF is the front-panel OUT button, ENA the J1 enable input)
SHUTDOWN_FAULTS = 2 | 4 | 8 | 16 | 32 | 128


def bit_names(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if value & bit]


def _hex(value) -> int:
    return int(str(value).strip(), 16)


class GenesysStatusMixin:
    """The status interface shared by both Genesys drivers (see the module docstring)."""

    def faults(self) -> list[str]:
        """Names of the fault-register bits set now (empty when the supply is healthy)."""
        return bit_names(int(self.fault_register), FAULT_BITS)

    @property
    def auto_restart(self) -> bool:
        """Control auto-restart (bool); labctl keeps it off so the output cannot come back
        on by itself after a mains drop."""
        return self.auto_restart_enabled

    @auto_restart.setter
    def auto_restart(self, value: bool) -> None:
        self.auto_restart_enabled = value


class GenesysGEN8_600(GenesysStatusMixin, TDK_Lambda_Base):
    """Genesys GEN 8-600 on its serial port: ``voltage_setpoint`` 0-8 V, ``current_setpoint``
    0-600 A, ``over_voltage`` 0.5-10 V, ``under_voltage`` 0-7.6 V (all in 0.01 steps).

    :param adapter: VISA resource name or adapter
    :param address: RS-232/485 daisy-chain address (0-30), selected with "ADR" at init.
    """

    # Dynamic values - override the base class validator ranges. The base class
    # names the programmed values ``voltage_setpoint``/``current_setpoint``, so
    # those are the prefixes (``voltage_values`` as in tdk_gen80_65.py is a no-op).
    voltage_setpoint_values = (0, 8)
    current_setpoint_values = (0, 600)
    over_voltage_values = (0.5, 10)
    under_voltage_values = (0, 7.6)

    def __init__(self, adapter, name="TDK Lambda Genesys GEN8-600", address=6, **kwargs):
        self.error_log: list[str] = []
        super().__init__(adapter, name, address, **kwargs)

    def check_set_errors(self):
        """Read the reply to a setting: ``OK``, or an error code that is also kept for
        ``read_errors`` (the serial protocol has no error queue: each reply is the error)."""
        errors = super().check_set_errors()
        self.error_log.extend(errors)
        return errors

    status_register = Instrument.measurement(
        "STAT?",
        """Get the status condition register (int; CV 1, CC 2, NFLT 4, FLT 8, AST 16, FDE 32,
        LCL 128; manual 7.11).""",
        cast=str,
        get_process=_hex,
    )

    fault_register = Instrument.measurement(
        "FLT?",
        """Get the fault condition register (int; AC 2, OTP 4, FLD 8, OVP 16, SO 32, OFF 64,
        ENA 128; manual 7.11).""",
        cast=str,
        get_process=_hex,
    )

    fault_events = Instrument.measurement(
        "FEVE?",
        """Get the fault event register: faults latched since the last read (int; reading
        clears it).""",
        cast=str,
        get_process=_hex,
    )

    def read_errors(self) -> list[str]:
        """The error replies (``Cnn``/``Enn``) received since the last call."""
        errors, self.error_log = self.error_log, []
        return errors


def _on_off(value) -> bool:
    text = str(value).strip().upper()
    if text in ("ON", "1"):
        return True
    if text in ("OFF", "0"):
        return False
    raise ValueError(f"unexpected reply {value!r}")


class GenesysLAN(GenesysStatusMixin, Instrument):
    """Genesys GEN 8-600 with the LAN option, SCPI on ``TCPIP::<ip>::8003::SOCKET``.

    Property names follow pymeasure's ``TDK_Lambda_Base``.  The LAN interface loses
    commands when more than twenty arrive without a query (IA672-04-01 section 9.4),
    and errors only show in the SYSTem:ERRor queue, so this driver reads the queue
    with ``SYST:ERR?`` as every twentieth command (``pacing``) and raises on an error
    there; ``check_queue()`` does it at once (after a safety-critical write).
    """

    pacing = 19  # commands after which the driver asks SYST:ERR? itself (the 20th)

    def __init__(self, adapter, name="TDK Lambda Genesys GEN8-600 (LAN)", address=None, **kwargs):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        self.commands_since_check = 0
        self.error_log: list[str] = []
        self.serial_address = address  # only for multidrop chains behind the LAN unit
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        if address is not None:
            self.write(f"INST:NSEL {int(address)}")

    # ------------------------------------------------------------ pacing
    def write(self, command, **kwargs):
        """Every command goes through here: before the twentieth since the last
        ``SYST:ERR?``, the queue is read (9.4: a query at least every twenty commands;
        errors on the LAN interface only show in the queue)."""
        checking = command.strip().upper().startswith("SYST:ERR")
        if not checking and self.commands_since_check >= self.pacing:
            self.check_queue()
        super().write(command, **kwargs)
        self.commands_since_check = 0 if checking else self.commands_since_check + 1

    def check_queue(self) -> None:
        """Ask ``SYST:ERR?`` (which also resets the twenty-command count) and raise on an error."""
        errors = self.read_errors()
        if errors:
            raise ValueError("Genesys LAN error queue: " + "; ".join(errors))

    def next_error_text(self) -> str:
        return self.ask("SYST:ERR?").strip()

    def read_errors(self) -> list[str]:
        """Drain the SYSTem:ERRor queue; the errors (``-222,"Data out of range;address 06"``)."""
        errors = []
        for _ in range(32):
            reply = self.next_error_text()
            if reply.startswith(("0,", "+0,")) or reply == "0":
                break
            errors.append(reply)
        self.error_log.extend(errors)
        return errors

    def check_set_errors(self):
        """Settings are not acknowledged on the LAN interface: nothing to read here
        (errors are read from the queue by ``check_queue``/``read_errors``)."""
        return []

    # --------------------------------------------------------- identity
    id = Instrument.measurement(
        "*IDN?",
        """Get the identity as a list, e.g. ``["TDK-LAMBDA", "GEN8-600-LAN", "<serial>", "<rev>"]``.""",
        cast=str,
    )

    version = Instrument.measurement("SYST:VERS?", """Get the SCPI version.""", cast=str)

    remote = Instrument.control(
        "SYST:REM?", "SYST:REM %s",
        """Control local/remote mode: "LOC", "REM" or "LLO".""",
        validator=strict_discrete_set,
        values=["LOC", "REM", "LLO"],
        cast=str,
    )

    # ------------------------------------------------------------ output
    voltage_setpoint = Instrument.control(
        "SOUR:VOLT?", "SOUR:VOLT %g",
        """Control the programmed output voltage in V (0-8).""",
        validator=strict_range,
        values=(0, 8),
    )

    voltage = Instrument.measurement("MEAS:VOLT?", """Measure the output voltage in V.""")

    current_setpoint = Instrument.control(
        "SOUR:CURR?", "SOUR:CURR %g",
        """Control the programmed output current in A (0-600).""",
        validator=strict_range,
        values=(0, 600),
    )

    current = Instrument.measurement("MEAS:CURR?", """Measure the output current in A.""")

    output_enabled = Instrument.control(
        "OUTP:STAT?", "OUTP:STAT %s",
        """Control the output (bool).""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=lambda v: "ON" if v else "OFF",
        get_process=_on_off,
    )

    mode = Instrument.measurement(
        "SOUR:MOD?",
        """Measure the operating mode: "CV", "CC" or "OFF".""",
        cast=str,
    )

    over_voltage = Instrument.control(
        "SOUR:VOLT:PROT:LEV?", "SOUR:VOLT:PROT:LEV %g",
        """Control the over-voltage protection level in V (0.5-10).""",
        validator=strict_range,
        values=(0.5, 10),
    )

    under_voltage = Instrument.control(
        "SOUR:VOLT:LIM:LOW?", "SOUR:VOLT:LIM:LOW %g",
        """Control the under-voltage limit in V (0-7.6).""",
        validator=strict_range,
        values=(0, 7.6),
    )

    auto_restart_enabled = Instrument.control(
        "OUTP:PON?", "OUTP:PON %s",
        """Control auto-restart (bool): output restored with its last settings after power-up.""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=lambda v: "ON" if v else "OFF",
        get_process=_on_off,
    )

    foldback_enabled = Instrument.control(
        "OUTP:PROT:FOLD?", "OUTP:PROT:FOLD %s",
        """Control the foldback protection (bool; on = trip in constant current).""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=lambda v: "CC" if v else "OFF",
        get_process=lambda v: str(v).strip().upper() not in ("OFF", "0"),
    )

    # ----------------------------------------------------------- status
    status_register = Instrument.measurement(
        "STAT:OPER:COND?",
        """Get the operational condition register (int; CV 1, CC 2, NFLT 4, FLT 8, AST 16,
        FDE 32, LCL 128; IA672-04-01 11.8.11).""",
        cast=int,
    )

    fault_register = Instrument.measurement(
        "STAT:QUES:COND?",
        """Get the questionable condition register, the faults (int; AC 2, OTP 4, FLD 8,
        OVP 16, SO 32, OFF 64, ENA 128; IA672-04-01 11.8.15).""",
        cast=int,
    )

    fault_events = Instrument.measurement(
        "STAT:QUES?",
        """Get the questionable event register: faults latched since the last read (int).""",
        cast=int,
    )

    def clear(self) -> None:
        """``*CLS``: clear the error queue and the event registers."""
        self.write("*CLS")

    def reset(self) -> None:
        """``*RST``: output off, settings to the safe state."""
        self.write("*RST")
