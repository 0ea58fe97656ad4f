"""The virtual lab: one world, the emulated instruments on it, their addresses, faults.

Both transports use the same resource names, so a station file switches
between the in-process lab and ``labctl sim serve`` by its backend alone::

    current_source      GenesysGEN8-600  TCPIP0::127.0.0.1::5600::SOCKET
    voltmeter           Keithley2182A    TCPIP0::127.0.0.1::5601::SOCKET
    temperature         LakeShore336     TCPIP0::127.0.0.1::5602::SOCKET
    gaussmeter          LakeShore425     TCPIP0::127.0.0.1::5603::SOCKET
    stage               ESP300           TCPIP0::127.0.0.1::5604::SOCKET
    aux_current_source  Keithley6221     TCPIP0::127.0.0.1::5605::SOCKET
    current_source_lan  GenesysGEN8-600-LAN TCPIP0::127.0.0.1::5606::SOCKET

The Genesys has two personalities on one supply (one output, one set of
registers): port 5600 is its RS-232 port behind a serial-to-Ethernet device
server (raw TCP, the Genesys serial protocol: ``ADR 6``, ``OK``, CR; in-process
also as ``ASRL1::INSTR``), port 5606 its LAN option (SCPI, LF replies, the
twenty-command pacing), standing for ``TCPIP0::<ip>::8003::SOCKET`` on a real
unit.  Drivers: ``genesys`` on the first, ``genesys-lan`` on the second.
"""
from __future__ import annotations

from labctl.clock import Clock, make_clock
from sim_instruments.emulator import Emulator
from sim_instruments.esp300 import ESP300
from sim_instruments.genesys import Genesys, GenesysLAN
from sim_instruments.keithley2182 import Keithley2182A
from sim_instruments.keithley6221 import Keithley6221
from sim_instruments.lakeshore336 import LakeShore336
from sim_instruments.lakeshore425 import LakeShore425
from sim_instruments.world import World

DEFAULT_BASE_PORT = 5600
ROLES = ("current_source", "voltmeter", "temperature", "gaussmeter", "stage", "aux_current_source",
         "current_source_lan")
SERIAL_ALIASES = {"ASRL1::INSTR": "current_source"}  # in-process serial ports
FAULTS = ("timeout", "drop", "garbage", "overload", "stall", "sensor", "quench")


def resource_name(port: int, host: str = "127.0.0.1") -> str:
    return f"TCPIP0::{host}::{port}::SOCKET"


class VirtualLab:
    """World + emulators keyed by role and by VISA resource name."""

    def __init__(
        self,
        sample: str = "Pb",
        field_model: str | None = None,
        temperature: float | None = None,
        speedup: float | str | None = "max",
        seed: int = 0,
        base_port: int = DEFAULT_BASE_PORT,
        clock: Clock | None = None,
    ):
        self.clock = clock or make_clock(speedup)
        self.world = World(sample, field_model, clock=self.clock, seed=seed, temperature=temperature)
        w = self.world
        nvm = Keithley2182A(w)
        supply = Genesys(w)
        self.instruments: dict[str, Emulator] = {
            "current_source": supply,
            "voltmeter": nvm,
            "temperature": LakeShore336(w),
            "gaussmeter": LakeShore425(w),
            "stage": ESP300(w),
            "aux_current_source": Keithley6221(w, nanovoltmeter=nvm),
            "current_source_lan": GenesysLAN(supply),
        }
        self.base_port = base_port
        self.ports = {role: base_port + k for k, role in enumerate(ROLES)}
        self.resources = {resource_name(self.ports[r]): self.instruments[r] for r in ROLES}
        self.resources.update({name: self.instruments[r] for name, r in SERIAL_ALIASES.items()})
        self._visa_library = None

    # ------------------------------------------------------------ access
    def by_resource(self, name: str) -> Emulator | None:
        """Emulator for a resource name (case-insensitive, canonical or not)."""
        key = name.strip().upper()
        for res, emu in self.resources.items():
            if res.upper() == key:
                return emu
        return None

    @property
    def visa_library(self):
        """A pyvisa VisaLibraryBase for this lab, to pass as ``visa_library``."""
        if self._visa_library is None:
            from sim_instruments.visa_backend import SimVisaLibrary

            self._visa_library = SimVisaLibrary.for_lab(self)
        return self._visa_library

    def role_of(self, emulator: Emulator) -> str:
        return next((r for r, e in self.instruments.items() if e is emulator), emulator.model)

    def listing(self) -> list[tuple[str, str, str]]:
        return [(role, self.instruments[role].model, resource_name(self.ports[role])) for role in ROLES]

    # ------------------------------------------------------------ faults
    def inject(self, role: str, fault: str, on: bool = True) -> None:
        """Switch a fault on or off.

        Link faults (per instrument): timeout, drop, garbage, overload, stall
        (stage), sensor (temperature).  Physical fault: quench (the sample
        turns normal while current flows; the tap voltage jumps to I*R_n).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        if fault == "quench":
            with self.world.lock:
                self.world.advance()
                self.world.faults.quench = on
            return
        emu = self.instruments[role]
        setattr(emu.faults, fault, on)
        if fault == "sensor":
            self.world.faults.sensor_fault = on
        if fault == "stall" and not on:
            self.world.stage.stalled = False

    def clear_faults(self) -> None:
        for role in ROLES:
            for fault in FAULTS:
                if fault != "quench":
                    self.inject(role, fault, False)
        self.world.faults.quench = False
