"""Roles, not models: procedures ask the station for a role and never see a driver."""
from labctl.roles.base import Role
from labctl.roles.current_source import CurrentSource, GenesysSource, Keithley6221Source
from labctl.roles.gaussmeter import Gaussmeter
from labctl.roles.stage import Stage
from labctl.roles.temperature import TemperatureController
from labctl.roles.voltmeter import Voltmeter

ROLE_CLASSES = {
    "genesys": GenesysSource,
    "genesys-lan": GenesysSource,  # issue 12: the same supply on its LAN option (SCPI)
    "keithley6221": Keithley6221Source,
    "keithley2182": Voltmeter,
    "lakeshore336": TemperatureController,
    "lakeshore425": Gaussmeter,
    "esp300": Stage,
}

__all__ = ["Role", "CurrentSource", "GenesysSource", "Keithley6221Source", "Gaussmeter", "Stage",
           "TemperatureController", "Voltmeter", "ROLE_CLASSES"]
