"""Shared fixtures: connected virtual-lab stations that are always shut down safely."""
from __future__ import annotations

import pytest

from labctl.station import Station

SEED = 2  # fixed noise seed; its probe misalignment (4.9 deg) is big enough to matter


@pytest.fixture
def make_station():
    """Factory: ``make_station(sample=..., field_model=..., temperature=..., seed=...)``
    returns a connected in-process sim station (stepped virtual clock).  Every
    station made is ramped down, turned off and closed at teardown."""
    made: list[Station] = []

    def make(**overrides) -> Station:
        overrides.setdefault("seed", SEED)
        st = Station.from_file(None, **overrides)
        st.connect(setup=True)
        made.append(st)
        return st

    yield make
    for st in made:
        if st.lab is not None:
            st.lab.clear_faults()
        if st.roles:
            try:
                st.safe_shutdown("test teardown")
            except Exception:
                pass
            st.close()


@pytest.fixture
def sim_station(make_station) -> Station:
    """The built-in sim station (Pb, Meissner truth) with the fixed seed, connected."""
    return make_station()

