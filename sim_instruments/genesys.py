"""TDK-Lambda Genesys GEN 8-600 high-current supply (Genesys manual, section 7).

A serial/LAN protocol without SCPI: the supply answers only after it has been
addressed with ``ADR n``; every setting is acknowledged with ``OK``, errors
with ``Cnn`` (command) or ``Enn`` (execution) codes.  The output works in
constant current (CC) while the load voltage I*R stays below the programmed
voltage; otherwise it falls back to constant voltage (CV) and the current is
limited to PV / R_load.
"""
from __future__ import annotations

from sim_instruments.emulator import Emulator, command


class Genesys(Emulator):
    model = "GenesysGEN8-600"
    idn = "LAMBDA,GEN8-600"
    termination = "\r"
    scpi = False
    v_max, i_max = 8.0, 600.0

    def __init__(self, world, address: int = 6, name: str = "genesys"):
        super().__init__(world)
        self.address = address
        self.name = name
        self.addressed = False
        self.pv, self.pc, self.ovp, self.uvl = 0.0, 0.0, 8.8, 0.0
        self.output = False
        self.fault = 0

    def handle(self, message: str) -> str | None:
        text = message.strip()
        if text.upper().startswith("ADR"):
            try:
                self.addressed = int(text[3:]) == self.address
            except ValueError:
                return "C03"
            return "OK" if self.addressed else None
        if not self.addressed:
            return None  # a multidrop supply stays silent until addressed
        return super().handle(message)

    def unknown(self, text):
        self._pending = "C01"

    def _one(self, item):
        self._pending = None
        reply = super()._one(item)
        return reply if reply is not None else self._pending

    # the current actually delivered, from CC/CV physics
    def delivered(self) -> float:
        if not self.output:
            return 0.0
        r = max(self.world.load_resistance(), 1e-6)
        return min(self.pc, self.pv / r)

    def _apply(self) -> None:
        # iterate the CC/CV operating point twice (the load depends weakly on I)
        for _ in range(2):
            self.world.set_source_current(self.name, self.delivered())

    def _set(self, args: str, low: float, high: float) -> float | None:
        try:
            value = float(args)
        except ValueError:
            self._pending = "C03"
            return None
        if not low <= value <= high:
            self._pending = "E01" if high == self.v_max else "C05"
            return None
        return value

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
        return "REM"

    @command("RMT")
    def s_rmt(self, args):
        return "OK"

    @command("PV?")
    def q_pv(self, args):
        return f"{self.pv:.3f}"

    @command("PV")
    def s_pv(self, args):
        v = self._set(args, 0.0, self.v_max)
        if v is None:
            return None
        self.pv = v
        self._apply()
        return "OK"

    @command("MV?")
    def q_mv(self, args):
        i = self.delivered()
        v = i * self.world.load_resistance() if self.output else 0.0
        return f"{v:.3f}"

    @command("PC?")
    def q_pc(self, args):
        return f"{self.pc:.3f}"

    @command("PC")
    def s_pc(self, args):
        c = self._set(args, 0.0, self.i_max)
        if c is None:
            return None
        self.pc = c
        self._apply()
        return "OK"

    @command("MC?")
    def q_mc(self, args):
        self._apply()  # the operating point follows the load (e.g. after a quench)
        i = self.world.sources.get(self.name, 0.0)
        i += float(self.world.rng.normal(0, 0.02)) if self.output else 0.0  # 0.02 A readback noise
        return f"{i:.3f}"

    @command("MODE?")
    def q_mode(self, args):
        if not self.output:
            return "OFF"
        r = max(self.world.load_resistance(), 1e-6)
        return "CC" if self.pc * r <= self.pv else "CV"

    @command("OUT?")
    def q_out(self, args):
        return "ON" if self.output else "OFF"

    @command("OUT")
    def s_out(self, args):
        text = args.strip().upper()
        if text not in ("ON", "OFF", "1", "0"):
            return "C03"
        self.output = text in ("ON", "1")
        self._apply()
        return "OK"

    @command("OVP?")
    def q_ovp(self, args):
        return f"{self.ovp:.2f}"

    @command("OVP")
    def s_ovp(self, args):
        v = self._set(args, 0.5, 10.0)
        if v is None:
            return None
        self.ovp = v
        return "OK"

    @command("OVM")
    def s_ovm(self, args):
        self.ovp = 10.0
        return "OK"

    @command("UVL?")
    def q_uvl(self, args):
        return f"{self.uvl:.2f}"

    @command("UVL")
    def s_uvl(self, args):
        v = self._set(args, 0.0, 7.6)
        if v is None:
            return None
        self.uvl = v
        return "OK"

    @command("FLD?", "AST?")
    def q_flags(self, args):
        return "OFF"

    @command("FLD", "AST", "FILTER", "FBD")
    def s_flags(self, args):
        return "OK"

    @command("FILTER?")
    def q_filter(self, args):
        return "18"

    @command("DVC?")
    def q_dvc(self, args):
        mv, mc = float(self.q_mv("")), float(self.q_mc(""))
        return f"{mv:.3f},{self.pv:.3f},{mc:.3f},{self.pc:.3f},{self.ovp:.2f},{self.uvl:.2f}"

    @command("STT?")
    def q_stt(self, args):
        return (f"MV({float(self.q_mv('')):.3f}),PV({self.pv:.3f}),MC({float(self.q_mc('')):.3f}),"
                f"PC({self.pc:.3f}),SR(00),FR({self.fault:02d})")

    @command("CLS")
    def s_cls(self, args):
        return "OK"

    @command("RST")
    def s_rst(self, args):
        self.reset()
        return "OK"

    def reset(self) -> None:
        self.pv = self.pc = 0.0
        self.output = False
        self._apply()

    def snapshot(self) -> dict:
        return {"pv": self.pv, "pc": self.pc, "output": self.output, "ovp": self.ovp}
