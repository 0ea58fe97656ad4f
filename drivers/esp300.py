"""Newport ESP300 motion controller with the stage commands pymeasure lacks.

Each :class:`StageAxis` prefixes its axis number to every command ("1VA?", "2PA5").
Units are the axis units set by ``units`` (e.g. mm or degree).
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

    def stop(self):
        """Stop the motion of this axis (decelerating)."""
        self.write("ST")

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

    @property
    def axes(self):
        """Get the list of axes (pymeasure's version reads every property to find
        them, which sends queries and empties the error queue)."""
        return [a for a in vars(self).values() if isinstance(a, Axis)]
