"""Lake Shore 425 gaussmeter: pymeasure's driver plus the probe type and its range table.

``TYPE?`` (Model 425 manual p. 57) says which probe is fitted, and RANGE 1-4
mean different full scales for each (``RANGE_TABLES``, gauss).  ``RDGMODE``
selects DC (1) or RMS (2) readings; ``ZPROBE`` starts a zero that takes a few
seconds, and ``*OPC?`` answers when it is done; errors show as bits of
``*ESR?`` (CME 32: command not understood, EXE 16: not executable).
"""
from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.lakeshore import LakeShore425 as _LakeShore425

RANGE_TABLES = {  # probe type -> {range number: full scale in gauss}
    40: {1: 35.0, 2: 350.0, 3: 3.5e3, 4: 35e3},  # high sensitivity
    41: {1: 350.0, 2: 3.5e3, 3: 35e3, 4: 350e3},  # high stability
    42: {1: 0.35, 2: 3.5, 3: 35.0, 4: 350.0},  # ultra-high sensitivity
}
PROBE_NAMES = {40: "high sensitivity", 41: "high stability", 42: "ultra-high sensitivity"}
ESR_ERRORS = {32: "command error (CME)", 16: "execution error (EXE)", 4: "query error (QYE)"}


class LakeShore425(_LakeShore425):
    """Lake Shore 425 (``range_number`` is the raw RANGE 1-4; ``range_table`` maps it)."""

    probe_type = Instrument.measurement(
        "TYPE?",
        """Get the probe type code: 40 high sensitivity, 41 high stability, 42 ultra-high
        sensitivity (5x: the same with a user-programmable cable).""",
        cast=int,
    )

    range_number = Instrument.control(
        "RANGE?", "RANGE %d",
        """Control the range number 1-4 (its full scale depends on the probe type).""",
        cast=int,
        values=(1, 2, 3, 4),
        validator=lambda v, vs: v if v in vs else (_ for _ in ()).throw(ValueError(f"range {v} not in 1-4")),
    )

    event_status = Instrument.measurement(
        "*ESR?",
        """Get (and clear) the standard event status register (int).""",
        cast=int,
    )

    @staticmethod
    def range_table(probe_type: int) -> dict[int, float]:
        """Full scale in gauss of RANGE 1-4 for a probe type (5x treated as 4x)."""
        return RANGE_TABLES[40 + int(probe_type) % 10]

    def operation_complete(self) -> bool:
        """``*OPC?``: answers (True) once pending operations such as ZPROBE are done."""
        return str(self.ask("*OPC?")).strip() == "1"

    def read_errors(self) -> list[str]:
        """The error bits set in ``*ESR?`` since it was last read, as text."""
        esr = int(self.event_status)
        return [text for bit, text in ESR_ERRORS.items() if esr & bit]
