"""Hardware test: runs only against a real station file.

    LABCTL_HW_STATION=/path/to/lab.toml pytest tests/test_hardware.py -s

It only connects, prints each instrument's identity and checks that the
current source is at rest (about 0 A, output off); it never turns anything on.
"""
from __future__ import annotations

import os

import pytest

from labctl.config import ROLES

STATION = os.environ.get("LABCTL_HW_STATION", "")

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not STATION, reason="no hardware station: set LABCTL_HW_STATION=/path/to/station.toml"),
]


@pytest.fixture(scope="module")
def hw_station():
    from labctl.station import Station

    st = Station.from_file(STATION)
    st.connect(setup=False)  # read-only: no setup commands (heater range, PV...) reach real hardware
    try:
        yield st
    finally:
        st.close()  # deliberately no safe_shutdown: this test never sources current


def test_identities(hw_station):
    for role in ROLES:
        ident = hw_station.roles[role].identity()
        print(f"{role:15s} {getattr(hw_station.config, role).address:40s} {ident}")
        assert ident.strip(), f"{role} returned an empty identity"


def test_current_source_at_rest(hw_station):
    cs = hw_station.current_source
    assert cs.output_enabled is False, "the supply output is ON: turn it off before testing"
    # ~0 A: the Genesys reads back to 0.1 % of 600 A; the 6221 reports its programmed level
    tolerance = 1.0 if hw_station.config.current_source.driver == "genesys" else 1e-6
    assert abs(cs.current) < tolerance
