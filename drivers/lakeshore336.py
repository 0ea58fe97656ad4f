"""Lake Shore 336 cryogenic temperature controller (LS336 manual, chapter 6).

Extends pymeasure's :class:`LakeShore3xx` with the 336 loop commands it lacks:
setpoint ramp, PID, heater setup, output mode and reading status.
"""
from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.lakeshore import LakeShore3xx
from pymeasure.instruments.lakeshore.lakeshore_base import (
    LakeShoreHeaterChannel,
    LakeShoreTemperatureChannel,
)
from pymeasure.instruments.validators import (
    joined_validators,
    strict_discrete_set,
    strict_range,
)


def _each(*validators):
    """Validator for a tuple: apply ``validators[i]`` to element ``i`` with ``values[i]``."""

    def validate(value, values):
        try:
            items = tuple(value)
        except TypeError:
            raise ValueError(
                f"Expected a tuple of {len(validators)} values, got {value!r}") from None
        if len(items) != len(validators):
            raise ValueError(f"Expected {len(validators)} values, got {len(items)}: {value!r}")
        return tuple(v(x, vs) for v, x, vs in zip(validators, items, values, strict=True))

    return validate


class LakeShore336TemperatureChannel(LakeShoreTemperatureChannel):
    """Sensor input A-D: ``kelvin``, ``celsius``, ``sensor`` plus ``reading_status``."""

    READING_INVALID = 1
    TEMP_UNDERRANGE = 16
    TEMP_OVERRANGE = 32
    SENSOR_UNITS_ZERO = 64
    SENSOR_UNITS_OVERRANGE = 128

    reading_status = Channel.measurement(
        "RDGST? {ch}",
        """Get the input reading status as an int bit field (0 = reading OK):
        1 invalid reading, 16 temperature under-range, 32 temperature over-range,
        64 sensor units zero, 128 sensor units over-range.""",
        cast=int,
    )


class LakeShore336HeaterChannel(LakeShoreHeaterChannel):
    """Control loop / output 1-4. Inherits ``setpoint`` (K), ``range``, ``output`` (%),
    ``mout`` (%)."""

    ramp = Channel.control(
        "RAMP? {ch}", "RAMP {ch},%d,%g",
        """Control the setpoint ramp as a tuple ``(enabled, rate)``: ``enabled`` bool
        (sent as 0/1), ``rate`` in K/min, 0.1-100, or 0 for an instantaneous setpoint
        step. Reads back ``(bool, float)``.""",
        validator=_each(strict_discrete_set,
                        joined_validators(strict_discrete_set, strict_range)),
        values=((0, 1), ((0,), (0.1, 100))),
        get_process_list=lambda v: (bool(v[0]), v[1]),
    )

    ramp_active = Channel.measurement(
        "RAMPST? {ch}",
        """Get whether the setpoint is currently ramping (bool).""",
        cast=bool,
    )

    pid = Channel.control(
        "PID? {ch}", "PID {ch},%g,%g,%g",
        """Control the loop gains as a tuple ``(P, I, D)``: P (gain) 0.1-1000,
        I (reset) 0.1-1000, D (rate, %) 0-200.""",
        validator=_each(strict_range, strict_range, strict_range),
        values=((0.1, 1000), (0.1, 1000), (0, 200)),
        get_process_list=tuple,
    )

    heater_setup = Channel.control(
        "HTRSET? {ch}", "HTRSET {ch},%d,%d,%g,%d",
        """Control the heater setup (outputs 1 and 2 only) as a tuple
        ``(resistance, max_current, max_user_current, display)``:
        resistance 1 = 25 ohm, 2 = 50 ohm; max_current 0 = user defined,
        1 = 0.707 A, 2 = 1 A, 3 = 1.141 A, 4 = 2 A; max_user_current in A (0-2,
        used when max_current is 0); display 1 = current, 2 = power.""",
        validator=_each(strict_discrete_set, strict_discrete_set, strict_range,
                        strict_discrete_set),
        values=((1, 2), (0, 1, 2, 3, 4), (0, 2), (1, 2)),
        get_process_list=lambda v: (int(v[0]), int(v[1]), v[2], int(v[3])),
    )

    output_mode = Channel.control(
        "OUTMODE? {ch}", "OUTMODE {ch},%d,%d,%d",
        """Control the output mode as a tuple ``(mode, input, powerup_enable)``:
        mode 0 off, 1 closed-loop PID, 2 zone, 3 open loop, 4 monitor out,
        5 warm-up (outputs 3/4); input 0 none, 1 A, 2 B, 3 C, 4 D;
        powerup_enable 0/1 (output stays on after power cycle).""",
        validator=_each(strict_discrete_set, strict_discrete_set, strict_discrete_set),
        values=(range(6), range(5), (0, 1)),
        get_process_list=lambda v: tuple(int(x) for x in v),
    )

    def set_ramp(self, rate, enabled=True):
        """Set the setpoint ramp rate in K/min (0.1-100, 0 = step) and enable it."""
        self.ramp = (enabled, rate)


class LakeShore336(LakeShore3xx):
    """Lake Shore 336: inputs ``input_A``-``input_D`` (K), outputs ``output_1``-``output_4``.

    .. code-block:: python

        ls = LakeShore336("GPIB::12")
        ls.output_1.set_ramp(2.0)          # 2 K/min
        ls.output_1.setpoint = 9.5         # K
        ls.output_1.range = "medium"
        print(ls.input_A.kelvin, ls.input_A.reading_status)
    """

    input_A = Instrument.ChannelCreator(LakeShore336TemperatureChannel, "A")
    input_B = Instrument.ChannelCreator(LakeShore336TemperatureChannel, "B")
    input_C = Instrument.ChannelCreator(LakeShore336TemperatureChannel, "C")
    input_D = Instrument.ChannelCreator(LakeShore336TemperatureChannel, "D")
    output_1 = Instrument.ChannelCreator(LakeShore336HeaterChannel, 1)
    output_2 = Instrument.ChannelCreator(LakeShore336HeaterChannel, 2)
    output_3 = Instrument.ChannelCreator(LakeShore336HeaterChannel, 3)
    output_4 = Instrument.ChannelCreator(LakeShore336HeaterChannel, 4)
    # option-card inputs of the 340/350 do not exist on the 336
    input_C1 = input_C2 = input_C3 = input_C4 = None
    input_D1 = input_D2 = input_D3 = input_D4 = input_D5 = None

    event_status = Instrument.measurement(
        "*ESR?",
        """Get (and clear) the standard event status register (int): 32 command not
        understood (CME), 16 parameter not executable (EXE), 4 query error (QYE).""",
        cast=int,
    )

    def read_errors(self) -> list[str]:
        """The 336 has no error queue: the error bits of ``*ESR?`` as text."""
        esr = int(self.event_status)
        names = {32: "command error (CME)", 16: "execution error (EXE)", 4: "query error (QYE)"}
        return [text for bit, text in names.items() if esr & bit]

    def __init__(self, adapter, name="Lake Shore 336 Temperature Controller",
                 read_termination="\r\n", **kwargs):
        super().__init__(adapter, name, read_termination=read_termination, **kwargs)
