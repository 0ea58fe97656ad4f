"""Normal-state control (protocol step 3): the radial field above Tc, where a
uniform current must give B proportional to r (ratios sqrt(2) and 2).  It
validates probe positions and calibration before any claim below Tc."""
from __future__ import annotations

from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter, Parameter

from labctl.errors import ConfigError
from procedures.radial_field import RadialField


class NormalStateControl(RadialField):
    KIND = "normal-control"
    QUENCH_DETECTION = False  # above Tc the tap voltage is I R_n by design
    currents = Parameter("Currents", default="50,100,200")
    current_mode = ListParameter("Currents are", choices=["A", "fraction of Ic"], default="A")
    temperature = FloatParameter("Temperature", units="K", minimum=0, maximum=400, default=0.0)
    repeats = IntegerParameter("Repeats", minimum=1, maximum=1000, default=2)

    def startup(self) -> None:
        if self.temperature <= 0:
            raise ConfigError("normal-control needs a temperature above Tc: --set temperature=<K>")
        super().startup()
