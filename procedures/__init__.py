"""Measurement procedures (pymeasure Procedure subclasses); they use station roles only."""
from procedures.normal_control import NormalStateControl
from procedures.radial_field import RadialField
from procedures.radial_scan import RadialScan
from procedures.residual import ResidualVoltage
from procedures.rt import ResistanceVsTemperature
from procedures.vi import VISweep

PROCEDURES = {cls.KIND: cls for cls in (ResistanceVsTemperature, VISweep, NormalStateControl, RadialField,
                                          RadialScan, ResidualVoltage)}

__all__ = ["PROCEDURES", "ResistanceVsTemperature", "VISweep", "NormalStateControl", "RadialField",
           "RadialScan", "ResidualVoltage"]
