"""TDK-Lambda Genesys GEN 8-600 high-current supply, with its two remote interfaces.

One supply (``Genesys``, the RS-232/RS-485 port) and, beside it, the LAN option
(``GenesysLAN``) on the same output: both personalities share the settings, the
output and the registers, as the two rear-panel ports of one unit do.

Serial port (Genesys user manual, chapter 7): not SCPI.  The supply stays silent
until it is addressed with ``ADR n`` (7.7.3); every command ends in CR and is
answered, settings with ``OK``, errors with ``Cnn`` (command errors, table 7-2)
or ``Enn`` (execution errors, table 7-1); a lone CR is answered with ``OK``
(7.7.1).  Status and fault registers (7.11): ``STAT?``/``SENA``/``SEVE?`` and
``FLT?``/``FENA``/``FEVE?``, two hex digits each; ``STT?`` reports both.

LAN option (Genesys LAN manual IA672-04-01 Rev I): SCPI on TCP port 8003
(9.6); commands end in LF, CR or ';' and every response ends in LF (9.5); the
SYSTem:ERRor queue is enabled at power-up on the LAN option (11.8.2) and its
entries carry the serial address (``-222,"Data out of range;address 06"``);
questionable (faults) and operation (CV/CC...) registers as on the serial port
(11.8.11-11.8.15).  The manual asks for a query at least every twenty commands
(9.4): the emulator's input buffer holds twenty commands without a query, the
twenty-first is lost with ``-363,"Input buffer overrun"``.

Power-up state (7.7.3 ``RST`` lists the safe state): output off, auto-restart
off, foldback off, OVP at maximum.  The output works in constant current (CC)
while the load voltage I*R stays below the programmed voltage; otherwise it
falls back to constant voltage (CV) and the current is PV / R_load.  A load
voltage above the OVP level trips the output off and sets the OVP fault bit.
"""
from __future__ import annotations

from sim_instruments.emulator import Emulator, SCPIError, command

# status register bits (serial 7.11, LAN STAT:OPER 11.8.11)
ST_CV, ST_CC, ST_NFLT, ST_FLT, ST_AST, ST_FDE, ST_LCL = 1, 2, 4, 8, 16, 32, 128
# fault register bits (serial 7.11, LAN STAT:QUES 11.8.15)
FL_AC, FL_OTP, FL_FLD, FL_OVP, FL_SO, FL_OFF, FL_ENA = 2, 4, 8, 16, 32, 64, 128
PACING = 20  # commands the LAN input buffer holds without a query (IA672 9.4)


class Genesys(Emulator):
    """The supply, as seen on its RS-232/RS-485 port (Genesys serial protocol)."""

    model = "GenesysGEN8-600"
    idn = "LAMBDA,GEN8-600"
    termination = "\r"
    terminators = "\r"  # 7.5: every command ends in CR (a LF alone never ends one)
    scpi = False
    v_max, i_max = 8.0, 600.0
    ovp_max = 10.0

    def __init__(self, world, address: int = 6, name: str = "genesys"):
        super().__init__(world)
        self.address = address
        self.name = name
        self.addressed = False
        # power-up: the safe state of 7.7.3 (output off, auto-restart off, foldback off)
        self.pv, self.pc, self.ovp, self.uvl = 0.0, 0.0, self.ovp_max, 0.0
        self.output = False
        self.ast = False  # auto-restart: output back on by itself after a mains drop
        self.foldback = False
        self.fault = 0  # fault condition register (FL_* bits)
        self.fault_events = 0  # FEVE: latched until read
        self.status_events = 0  # SEVE
        self.fena = self.sena = 0
        self.remote = "REM"

    # ------------------------------------------------------------- framing
    def accept(self, message: str) -> str | None:
        if message == "":  # 7.7.1: a CR by itself is answered with OK
            if self.faults.drop:
                return self.handle(message)
            return "OK" if self.addressed and not self.faults.timeout else None
        return super().accept(message)

    def handle(self, message: str) -> str | None:
        text = message.strip()
        if text.upper().startswith("ADR"):
            if self.faults.drop:
                return super().handle(message)
            try:
                self.addressed = int(text[3:]) == self.address
            except ValueError:
                return "C03"
            return "OK" if self.addressed and not self.faults.timeout else None
        if not self.addressed:
            return None  # a multidrop supply stays silent until addressed
        return super().handle(message)

    def unknown(self, text):
        self._pending = "C01"

    def _one(self, item):
        self._pending = None
        reply = super()._one(item)
        return reply if reply is not None else self._pending

    # ------------------------------------------------------------ physics
    def delivered(self) -> float:
        """The current actually flowing (A), from CC/CV physics."""
        if not self.output:
            return 0.0
        r = max(self.world.load_resistance(), 1e-6)
        return min(self.pc, self.pv / r)

    def load_voltage(self) -> float:
        return self.delivered() * self.world.load_resistance() if self.output else 0.0

    def _apply(self) -> None:
        # iterate the CC/CV operating point twice (the load depends weakly on I)
        for _ in range(2):
            self.world.set_source_current(self.name, self.delivered())
        if self.output and self.load_voltage() > self.ovp:  # over-voltage protection trips
            self.output = False
            self.trip(FL_OVP)
            self.world.set_source_current(self.name, 0.0)

    def trip(self, bit: int) -> None:
        self.fault |= bit
        self.fault_events |= bit

    def set_output(self, on: bool) -> bool:
        """Output on/off; False (E07) when a fault shut the output down."""
        if on and self.fault & (FL_OVP | FL_AC | FL_OTP | FL_FLD | FL_SO):
            return False
        self.output = on
        if on:
            self.fault &= ~FL_OFF
        self._apply()
        return True

    def mode(self) -> str:
        if not self.output:
            return "OFF"
        r = max(self.world.load_resistance(), 1e-6)
        return "CC" if self.pc * r <= self.pv else "CV"

    def status_register(self) -> int:
        m = self.mode()
        bits = ST_CV if m == "CV" else ST_CC if m == "CC" else 0
        bits |= ST_FLT if self.fault else ST_NFLT
        bits |= ST_AST if self.ast else 0
        bits |= ST_FDE if self.foldback else 0
        bits |= ST_LCL if self.remote == "LOC" else 0
        return bits

    def measured_current(self) -> float:
        self._apply()  # the operating point follows the load (e.g. after a quench)
        i = self.world.sources.get(self.name, 0.0)
        return i + (float(self.world.rng.normal(0, 0.02)) if self.output else 0.0)  # 0.02 A readback noise

    def check_value(self, args: str, low: float, high: float, error: str) -> float | None:
        try:
            value = float(args)
        except ValueError:
            self._pending = "C03" if args.strip() else "C02"
            return None
        if not low <= value <= high:
            self._pending = error
            return None
        return value

    def set_pv(self, v: float) -> str | None:
        """Program the voltage; an error code (E01/E02) when the manual refuses it."""
        if v > 1.05 * self.v_max or v > 0.95 * self.ovp:  # table 7-1, E01
            return "E01"
        if v < self.uvl:
            return "E02"
        self.pv = v
        self._apply()
        return None

    def set_ovp(self, v: float) -> str | None:
        if v < self.pv + 0.05 * self.v_max or v > self.ovp_max:  # table 7-1, E04
            return "E04"
        self.ovp = v
        return None

    # ------------------------------------------------------------ commands
    @command("IDN?")
    def q_idn(self, args):
        return self.idn

    @command("REV?")
    def q_rev(self, args):
        return "1U:5.4-LAN"

    @command("SN?")
    def q_sn(self, args):
        return "12A3456-0001"

    @command("DATE?")
    def q_date(self, args):
        return "2025/03/14"

    @command("RMT?")
    def q_rmt(self, args):
        return self.remote

    @command("RMT")
    def s_rmt(self, args):
        text = args.strip().upper()
        value = {"0": "LOC", "LOC": "LOC", "1": "REM", "REM": "REM", "2": "LLO", "LLO": "LLO"}.get(text)
        if value is None:
            return "C03"
        self.remote = value
        return "OK"

    @command("MDAV?")
    def q_mdav(self, args):
        return "1"

    @command("PV?")
    def q_pv(self, args):
        return f"{self.pv:.3f}"

    @command("PV")
    def s_pv(self, args):
        v = self.check_value(args, 0.0, 1e9, "E01")
        if v is None:
            return None
        return self.set_pv(v) or "OK"

    @command("MV?")
    def q_mv(self, args):
        return f"{self.load_voltage():.3f}"

    @command("PC?")
    def q_pc(self, args):
        return f"{self.pc:.3f}"

    @command("PC")
    def s_pc(self, args):
        c = self.check_value(args, 0.0, 1.05 * self.i_max, "C05")
        if c is None:
            return None
        self.pc = c
        self._apply()
        return "OK"

    @command("MC?")
    def q_mc(self, args):
        return f"{self.measured_current():.3f}"

    @command("MODE?")
    def q_mode(self, args):
        return self.mode()

    @command("OUT?")
    def q_out(self, args):
        return "ON" if self.output else "OFF"

    @command("OUT")
    def s_out(self, args):
        text = args.strip().upper()
        if text not in ("ON", "OFF", "1", "0"):
            return "C03" if text else "C02"
        return "OK" if self.set_output(text in ("ON", "1")) else "E07"

    @command("OVP?")
    def q_ovp(self, args):
        return f"{self.ovp:.2f}"

    @command("OVP")
    def s_ovp(self, args):
        v = self.check_value(args, 0.0, 1e9, "E04")
        if v is None:
            return None
        return self.set_ovp(v) or "OK"

    @command("OVM")
    def s_ovm(self, args):
        self.ovp = self.ovp_max
        return "OK"

    @command("UVL?")
    def q_uvl(self, args):
        return f"{self.uvl:.2f}"

    @command("UVL")
    def s_uvl(self, args):
        v = self.check_value(args, 0.0, 0.95 * self.v_max, "E06")
        if v is None:
            return None
        if v > self.pv / 1.05 and v > 0:
            return "E06"
        self.uvl = v
        return "OK"

    @command("AST?")
    def q_ast(self, args):
        return "ON" if self.ast else "OFF"

    @command("AST")
    def s_ast(self, args):
        text = args.strip().upper()
        if text not in ("ON", "OFF", "1", "0"):
            return "C03" if text else "C02"
        self.ast = text in ("ON", "1")
        return "OK"

    @command("FLD?")
    def q_fld(self, args):
        return "ON" if self.foldback else "OFF"

    @command("FLD")
    def s_fld(self, args):
        text = args.strip().upper()
        if text not in ("ON", "OFF", "1", "0"):
            return "C03" if text else "C02"
        self.foldback = text in ("ON", "1")
        return "OK"

    @command("FBD", "FILTER", "FBDRST", "SAV", "RCL")
    def s_accepted(self, args):
        return "OK"

    @command("FBD?")
    def q_fbd(self, args):
        return "0"

    @command("FILTER?")
    def q_filter(self, args):
        return "18"

    @command("DVC?")
    def q_dvc(self, args):
        mv, mc = self.load_voltage(), self.measured_current()
        return f"{mv:.3f},{self.pv:.3f},{mc:.3f},{self.pc:.3f},{self.ovp:.2f},{self.uvl:.2f}"

    @command("STT?")
    def q_stt(self, args):
        return (f"MV({self.load_voltage():.3f}),PV({self.pv:.3f}),MC({self.measured_current():.3f}),"
                f"PC({self.pc:.3f}),SR({self.status_register():02X}),FR({self.fault:02X})")

    @command("STAT?")
    def q_stat(self, args):
        return f"{self.status_register():02X}"

    @command("SENA?")
    def q_sena(self, args):
        return f"{self.sena:02X}"

    @command("SENA")
    def s_sena(self, args):
        try:
            self.sena = int(args.strip(), 16) & 0xFF
        except ValueError:
            return "C03"
        return "OK"

    @command("SEVE?")
    def q_seve(self, args):
        value, self.status_events = self.status_events, 0
        return f"{value:02X}"

    @command("FLT?")
    def q_flt(self, args):
        return f"{self.fault:02X}"

    @command("FENA?")
    def q_fena(self, args):
        return f"{self.fena:02X}"

    @command("FENA")
    def s_fena(self, args):
        try:
            self.fena = int(args.strip(), 16) & 0xFF
        except ValueError:
            return "C03"
        return "OK"

    @command("FEVE?")
    def q_feve(self, args):
        value, self.fault_events = self.fault_events, 0
        return f"{value:02X}"

    @command("CLS")
    def s_cls(self, args):
        self.fault_events = self.status_events = 0
        return "OK"

    @command("RST")
    def s_rst(self, args):
        self.reset()
        return "OK"

    def reset(self) -> None:
        """RST (7.7.3): output off, PV/PC zero, auto-restart off, foldback off, OVP max, UVL zero."""
        self.pv = self.pc = 0.0
        self.output = False
        self.ast = self.foldback = False
        self.ovp, self.uvl = self.ovp_max, 0.0
        self.fault &= ~(FL_OVP | FL_FLD)
        self._apply()

    def snapshot(self) -> dict:
        return {"pv": self.pv, "pc": self.pc, "output": self.output, "ovp": self.ovp, "ast": self.ast,
                "fault": self.fault}


class GenesysLAN(Emulator):
    """The same supply on its LAN option: SCPI (IA672-04-01 chapter 11)."""

    model = "GenesysGEN8-600-LAN"
    idn = "TDK-LAMBDA,GEN8-600-LAN,12A3456-0001,1U:5.4-LAN"
    termination = "\n"  # 9.5: every response ends in LF
    terminators = "\n\r;"  # 9.5: LF, CR or ';' end a command

    def __init__(self, supply: Genesys):
        super().__init__(supply.world)
        self.supply = supply
        self.faults = supply.faults  # one instrument: a fault on the supply is a fault on both ports
        self.unqueried = 0  # commands since the last query (9.4 pacing)

    def handle(self, message: str) -> str | None:
        if self.faults.drop:
            return super().handle(message)  # raises ConnectionDropped
        if "?" in message:
            self.unqueried = 0
        else:
            self.unqueried += 1
            if self.unqueried > PACING:  # the input buffer overflowed: the command is lost
                self.push_error(-363, "Input buffer overrun")
                return None
        return super().handle(message)

    def push_error(self, code: int, message: str) -> None:
        super().push_error(code, f"{message};address {self.supply.address:02d}")

    # ------------------------------------------------------------- helpers
    def _value(self, args: str) -> float:
        text = args.strip().upper()
        if text in ("MAX", "MAXIMUM"):
            return float("inf")
        if text in ("MIN", "MINIMUM"):
            return 0.0
        return self.number(args)

    def _bool(self, args: str) -> bool:
        return self.boolean(args)

    # ------------------------------------------------------------ commands
    @command("*IDN?")
    def _idn(self, args):
        return self.idn

    @command("*RST")
    def _rst(self, args):
        self.supply.reset()

    @command("*CLS")
    def _cls(self, args):
        self.errors.clear()
        self.supply.fault_events = self.supply.status_events = 0

    @command(":SYSTem:ERRor:ENABle")
    def err_enable(self, args):
        self.errors.clear()

    @command(":SYSTem:VERSion?")
    def syst_vers(self, args):
        return "1999.0"

    @command(":SYSTem:REMote[:STATe]")
    def syst_rem(self, args):
        text = args.strip().upper()[:3]
        if text not in ("LOC", "REM", "LLO"):
            raise SCPIError(-224, "Illegal parameter value")
        self.supply.remote = text

    @command(":SYSTem:REMote[:STATe]?")
    def syst_rem_q(self, args):
        return self.supply.remote

    @command(":INSTrument:NSELect", ":INSTrument:SELect")
    def inst_sel(self, args):
        if int(self.number(args)) != self.supply.address:
            raise SCPIError(-222, "Data out of range")

    @command(":INSTrument:NSELect?", ":INSTrument:SELect?")
    def inst_sel_q(self, args):
        return str(self.supply.address)

    @command("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def volt(self, args):
        code = self.supply.set_pv(self._value(args))
        if code == "E01":
            raise SCPIError(-222, "Data out of range")
        if code == "E02":
            raise SCPIError(-221, "Settings conflict")

    @command("[:SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?")
    def volt_q(self, args):
        return f"{self.supply.pv:.3f}"

    @command("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def curr(self, args):
        value = self._value(args)
        if not 0 <= value <= 1.05 * self.supply.i_max:
            raise SCPIError(-222, "Data out of range")
        self.supply.pc = value
        self.supply._apply()

    @command("[:SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]?")
    def curr_q(self, args):
        return f"{self.supply.pc:.3f}"

    @command(":MEASure[:SCALar]:VOLTage[:DC]?")
    def meas_volt(self, args):
        return f"{self.supply.load_voltage():.3f}"

    @command(":MEASure[:SCALar]:CURRent[:DC]?")
    def meas_curr(self, args):
        return f"{self.supply.measured_current():.3f}"

    @command(":OUTPut[:STATe]")
    def outp(self, args):
        if not self.supply.set_output(self._bool(args)):
            raise SCPIError(301, "Output on during fault shutdown")

    @command(":OUTPut[:STATe]?")
    def outp_q(self, args):
        return "ON" if self.supply.output else "OFF"

    @command("[:SOURce]:MODe?")
    def mode_q(self, args):
        return self.supply.mode()

    @command("[:SOURce]:VOLTage:PROTection[:LEVel]")
    def ovp(self, args):
        value = self._value(args)
        if value == float("inf"):
            value = self.supply.ovp_max
        if self.supply.set_ovp(value):
            raise SCPIError(-222, "Data out of range")

    @command("[:SOURce]:VOLTage:PROTection[:LEVel]?")
    def ovp_q(self, args):
        return f"{self.supply.ovp:.2f}"

    @command("[:SOURce]:VOLTage:LIMit:LOW")
    def uvl(self, args):
        value = self._value(args)
        if not 0 <= value <= 0.95 * self.supply.v_max or (value > 0 and value > self.supply.pv / 1.05):
            raise SCPIError(-222, "Data out of range")
        self.supply.uvl = value

    @command("[:SOURce]:VOLTage:LIMit:LOW?")
    def uvl_q(self, args):
        return f"{self.supply.uvl:.2f}"

    @command(":OUTPut:PON[:STATe]")
    def pon(self, args):
        self.supply.ast = self._bool(args)

    @command(":OUTPut:PON[:STATe]?")
    def pon_q(self, args):
        return "ON" if self.supply.ast else "OFF"

    @command(":OUTPut:PROTection:FOLDback[:MODE]")
    def fold(self, args):
        text = args.strip().upper()
        if text not in ("OFF", "CC", "0", "1", "ON"):
            raise SCPIError(-224, "Illegal parameter value")
        self.supply.foldback = text not in ("OFF", "0")

    @command(":OUTPut:PROTection:FOLDback[:MODE]?")
    def fold_q(self, args):
        return "CC" if self.supply.foldback else "OFF"

    @command(":STATus:QUEStionable:CONDition?")
    def ques_cond(self, args):
        return str(self.supply.fault)

    @command(":STATus:QUEStionable[:EVENt]?")
    def ques_event(self, args):
        value, self.supply.fault_events = self.supply.fault_events, 0
        return str(value)

    @command(":STATus:QUEStionable:ENABle")
    def ques_enable(self, args):
        self.supply.fena = int(self.number(args)) & 0xFF

    @command(":STATus:QUEStionable:ENABle?")
    def ques_enable_q(self, args):
        return str(self.supply.fena)

    @command(":STATus:OPERation:CONDition?")
    def oper_cond(self, args):
        return str(self.supply.status_register())

    @command(":STATus:OPERation[:EVENt]?")
    def oper_event(self, args):
        value, self.supply.status_events = self.supply.status_events, 0
        return str(value)

    @command(":STATus:OPERation:ENABle")
    def oper_enable(self, args):
        self.supply.sena = int(self.number(args)) & 0xFF

    @command(":STATus:OPERation:ENABle?")
    def oper_enable_q(self, args):
        return str(self.supply.sena)

    def snapshot(self) -> dict:
        return self.supply.snapshot()
