"""Keithley 2182A and 6221 drivers: pymeasure's, plus what labctl needs from the manuals.

``Keithley2182``: filters (2182A user's manual, "Filter", p. 3-8: digital filter
1-100 readings, moving or repeating; analog filter), the error queue
(``SYST:ERR?``, ten deep, p. 15-19) and the line frequency that bounds NPLC
(0.01 to 50 at 50 Hz, to 60 at 60 Hz).

``Keithley6221``: the compliance state (``:STAT:MEAS:COND?`` bit B3, reference
manual section 11), delta-mode progress (``:TRAC:POIN:ACT?``; operation
condition bit B10 Idle) and the error queue.
"""
from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2182 as _Keithley2182
from pymeasure.instruments.keithley import Keithley6221 as _Keithley6221
from pymeasure.instruments.validators import strict_discrete_set, strict_range

COMPLIANCE_BIT = 8  # measurement condition register B3
IDLE_BIT = 1024  # operation condition register B10


def _errors(inst) -> list[str]:
    """Drain a SCPI error queue (at most 32 entries): the non-zero entries as text."""
    out = []
    for _ in range(32):
        reply = inst.ask("SYST:ERR?").strip()
        code = reply.split(",", 1)[0].strip()
        try:
            if int(code) == 0:
                break
        except ValueError:
            out.append(reply)
            break
        out.append(reply)
    return out


class Keithley2182(_Keithley2182):
    """Keithley 2182A nanovoltmeter (pymeasure's driver plus filters and the error queue)."""

    digital_filter_enabled = Instrument.control(
        ":SENS:VOLT:DFIL:STAT?", ":SENS:VOLT:DFIL:STAT %d",
        """Control the digital (averaging) filter of DC volts (bool).""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=int,
        cast=lambda v: bool(int(float(v))),
    )

    digital_filter_count = Instrument.control(
        ":SENS:VOLT:DFIL:COUN?", ":SENS:VOLT:DFIL:COUN %d",
        """Control how many conversions the digital filter averages (1-100).""",
        validator=strict_range,
        values=(1, 100),
        cast=int,
    )

    digital_filter_type = Instrument.control(
        ":SENS:VOLT:DFIL:TCON?", ":SENS:VOLT:DFIL:TCON %s",
        """Control the digital filter type: "MOV" (moving average) or "REP" (repeating;
        each reading is a fresh average, the one to use with current reversals).""",
        validator=strict_discrete_set,
        values=("MOV", "REP"),
        cast=str,
    )

    analog_filter_enabled = Instrument.control(
        ":SENS:VOLT:LPAS:STAT?", ":SENS:VOLT:LPAS:STAT %d",
        """Control the analog low-pass filter (bool; adds settling time to each conversion).""",
        validator=strict_discrete_set,
        values=(True, False),
        set_process=int,
        cast=lambda v: bool(int(float(v))),
    )

    def read_errors(self) -> list[str]:
        """Drain the error queue (``SYST:ERR?`` until 0); the errors as text."""
        return _errors(self)

    def max_nplc(self, line_frequency: float | None = None) -> float:
        """The largest NPLC the instrument takes at this line frequency (Hz; asked if None)."""
        lf = float(self.line_frequency) if line_frequency is None else float(line_frequency)
        return 50.0 if lf < 55 else 60.0


class Keithley6221(_Keithley6221):
    """Keithley 6221 current source (pymeasure's driver plus compliance and delta progress)."""

    measurement_condition = Instrument.measurement(
        ":STAT:MEAS:COND?",
        """Get the measurement condition register (int); bit B3 (8) = in compliance.""",
        cast=int,
    )

    operation_condition = Instrument.measurement(
        ":STAT:OPER:COND?",
        """Get the operation condition register (int); bit B10 (1024) = idle.""",
        cast=int,
    )

    delta_points_stored = Instrument.measurement(
        ":TRAC:POIN:ACT?",
        """Get how many readings the buffer holds so far (int).""",
        cast=int,
    )

    @property
    def in_compliance(self) -> bool:
        """True while the source is in compliance (the current that flows is less than
        programmed: the programmed ``source_current`` does not show it)."""
        return bool(int(self.measurement_condition) & COMPLIANCE_BIT)

    @property
    def idle(self) -> bool:
        """True when no sweep/delta test is running."""
        return bool(int(self.operation_condition) & IDLE_BIT)

    def read_errors(self) -> list[str]:
        """Drain the error queue (``SYST:ERR?`` until 0); the errors as text."""
        return _errors(self)
