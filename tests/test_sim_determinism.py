"""The virtual lab is reproducible: the seed fixes every offset and every noise
sample, and the stepped clock fixes every time stamp, so the same protocol on
two fresh labs gives bit-identical readings; another seed gives other noise."""
from __future__ import annotations

import pytest

from labctl.station import Station


def protocol(seed: int) -> dict[str, list[float]]:
    """A short rehearsal on a fresh station: field, voltage and temperature readings."""
    st = Station.from_file(None, sample="Nb", field_model="bean", seed=seed)
    out = {"field": [], "voltage": [], "temperature": [], "position": [], "time": []}
    with st.session("determinism test"):
        st.clock.sleep(60)
        st.gaussmeter.zero_probe()
        st.current_source.ramp_to(150.0)
        for r in (0.005, 0.00707, 0.010):
            st.stage.move_to_radius(r)
            out["position"].append(st.stage.position)
            out["field"] += [st.gaussmeter.read_field() for _ in range(5)]
        out["voltage"] += [st.voltmeter.read_voltage() for _ in range(5)]
        st.temperature.set_setpoint(8.2)
        for _ in range(5):
            st.clock.sleep(3)
            out["temperature"] += [st.temperature.read("A"), st.temperature.read("B")]
        out["time"].append(st.clock.now())
    return out


@pytest.fixture(scope="module")
def runs():
    return protocol(5), protocol(5), protocol(6)


def test_same_seed_gives_identical_readings(runs):
    a, b, _ = runs
    for key in a:
        assert a[key] == b[key], key  # exact equality, not approx: the lab is deterministic
    assert len(a["field"]) == 15 and len(a["voltage"]) == 5 and len(a["temperature"]) == 10


def test_readings_are_noisy_not_canned(runs):
    a, _, _ = runs
    # repeated readings at one position differ (noise), yet agree to within ~uT
    at_r3 = a["field"][10:15]
    assert len(set(at_r3)) > 1
    assert max(at_r3) - min(at_r3) < 1e-5
    assert len(set(a["voltage"])) > 1


def test_different_seed_gives_different_noise(runs):
    a, _, c = runs
    for key in ("field", "voltage", "temperature"):
        assert a[key] != c[key], key
        # nearly every reading differs, not just one (a reading quantised at the display
        # resolution, e.g. 0.1 mK with ~1 mK noise, may coincide by chance)
        same = sum(x == y for x, y in zip(a[key], c[key], strict=True))
        assert same <= len(a[key]) // 5, (key, same)
    # ... but the physics is the same: the field at the wall agrees to well within 1 %
    assert sum(a["field"][10:15]) / 5 == pytest.approx(sum(c["field"][10:15]) / 5, rel=0.01)
    assert a["time"] == c["time"]  # the virtual clock does not depend on the seed
