"""TDK-Lambda Genesys GEN 8-600 DC power supply (8 V, 600 A).

Every setting is answered with "OK" (read by ``check_set_errors``); queries
return the value. Voltages in V, currents in A.
"""
from pymeasure.instruments.tdk.tdk_base import TDK_Lambda_Base


class GenesysGEN8_600(TDK_Lambda_Base):
    """Genesys GEN 8-600: ``voltage_setpoint`` 0-8 V, ``current_setpoint`` 0-600 A,
    ``over_voltage`` 0.5-10 V, ``under_voltage`` 0-7.6 V (all in 0.01 steps).

    :param adapter: VISA resource name or adapter
    :param address: RS-232/485 daisy-chain address (0-30), selected with "ADR" at init.
    """

    # Dynamic values - override the base class validator ranges. The base class
    # names the programmed values ``voltage_setpoint``/``current_setpoint``, so
    # those are the prefixes (``voltage_values`` as in tdk_gen80_65.py is a no-op).
    voltage_setpoint_values = (0, 8)
    current_setpoint_values = (0, 600)
    over_voltage_values = (0.5, 10)
    under_voltage_values = (0, 7.6)

    def __init__(self, adapter, name="TDK Lambda Genesys GEN8-600", address=6, **kwargs):
        super().__init__(adapter, name, address, **kwargs)
