"""Instrument drivers for labctl: pymeasure drivers plus the ones it lacks."""
from drivers.esp300 import ESP300Stage, StageAxis
from drivers.genesys import GenesysGEN8_600, GenesysLAN
from drivers.keithley import Keithley2182, Keithley6221
from drivers.lakeshore425 import LakeShore425
from drivers.lakeshore336 import (
    LakeShore336,
    LakeShore336HeaterChannel,
    LakeShore336TemperatureChannel,
)

__all__ = [
    "DRIVERS",
    "ESP300Stage",
    "GenesysGEN8_600",
    "GenesysLAN",
    "Keithley2182",
    "Keithley6221",
    "LakeShore336",
    "LakeShore336HeaterChannel",
    "LakeShore336TemperatureChannel",
    "LakeShore425",
    "StageAxis",
]

DRIVERS = {
    "lakeshore336": LakeShore336,
    "esp300": ESP300Stage,
    "genesys": GenesysGEN8_600,
    "genesys-lan": GenesysLAN,
    "keithley6221": Keithley6221,
    "keithley2182": Keithley2182,
    "lakeshore425": LakeShore425,
}
