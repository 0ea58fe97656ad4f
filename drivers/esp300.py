"""Newport ESP300 motion controller with the stage commands pymeasure lacks.

Each :class:`StageAxis` prefixes its axis number to every command ("1VA?", "2PA5").
Units are the axis units set by ``units`` (e.g. mm or degree).

From the ESP300 user's manual (chapter 3): commands end in CR, replies in CR LF
(3.4); the motor power is off at power-up (``MO``/``MO?``); positions of an
incremental encoder count from wherever the stage stood at power-up until a
home search (``OR``, polled with ``MD?``) sets 0 at the home switch; errors
wait in a ten-deep FIFO read one at a time with ``TE?`` (code) or ``TB?``
(code, timestamp, message).
"""
from pymeasure.instruments import Instrument
from pymeasure.instruments.newport.esp300 import ESP300, Axis
from pymeasure.instruments.validators import strict_range


class StageAxis(Axis):
    """One ESP300 axis: adds velocity, acceleration, target position, stop and move."""

    velocity = Instrument.control(
        "VA?", "VA%g",
        """Control the move velocity in units/s (0-300; the controller also
        refuses values above the axis maximum VU).""",
        validator=strict_range,
        values=(0, 300),
    )
    acceleration = Instrument.control(
        "AC?", "AC%g",
        """Control the move acceleration in units/s^2 (> 0; the controller
        refuses values above the axis maximum AU).""",
        validator=strict_range,
        values=(0, float("inf")),
    )
    target_position = Instrument.measurement(
        "DP?",
        """Get the desired (target) position of the current move, in units.""",
    )

    motor_on = Instrument.measurement(
        "MO?",
        """Get whether the motor power of this axis is on (bool).""",
        cast=lambda v: bool(int(float(v))),
    )

    def stop(self):
        """Stop the motion of this axis (decelerating); confirm with ``motion_done``."""
        self.write("ST")

    def home_search(self, mode=None):
        """Start a home search (``OR``, or ``OR<mode>``, mode 0-6; 1 = home switch and
        index).  Returns at once: poll ``motion_done``; position 0 is then the home."""
        if mode is None:
            self.write("OR")
        else:
            if mode not in range(7):
                raise ValueError(f"home search mode {mode} not in 0-6")
            self.write(f"OR{int(mode)}")

    def move_to(self, position):
        """Start an absolute move to ``position`` (units); same as setting ``position``.
        Returns at once: poll ``motion_done``."""
        self.write(f"PA{position:g}")


class ESP300Stage(ESP300):
    """ESP300 with axes ``x`` (1), ``y`` (2) and ``phi`` (3) as :class:`StageAxis`."""

    version = Instrument.measurement(
        "VE?",
        """Get the firmware version string, e.g. "ESP300 Version 3.08 09/09/02".""",
        cast=str,
    )

    def __init__(self, adapter, name="Newport ESP 300 Motion Controller", **kwargs):
        super().__init__(adapter, name, **kwargs)
        self.x = StageAxis(1, self)
        self.y = StageAxis(2, self)
        self.phi = StageAxis(3, self)

    error_message = Instrument.measurement(
        "TB?",
        """Get the next error of the FIFO as text: "code, timestamp, MESSAGE" (pops it).""",
        cast=str,
        get_process_list=lambda v: ", ".join(str(x).strip() for x in v),
    )

    def read_errors(self) -> list[int]:
        """Drain the error FIFO (``TE?`` until 0, at most ten): the error codes."""
        codes = []
        for _ in range(12):
            code = int(self.error)
            if code == 0:
                break
            codes.append(code)
        return codes

    @property
    def axes(self):
        """Get the list of axes (pymeasure's version reads every property to find
        them, which sends queries and empties the error queue)."""
        return [a for a in vars(self).values() if isinstance(a, Axis)]
