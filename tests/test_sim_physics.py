"""Coupling and physics of the virtual lab, seen only through the station roles.

The field at the probe must be the field model's B(r) (labctl.physics) at the
current the supply delivers, the radius the stage reached and the temperature
the cryostat holds; R(T), V-I, the thermal lag and the stage speed must be
those of the configured sample.  Tolerances are a few times the configured
instrument noise (Imperfections), averaged over N readings.
"""
from __future__ import annotations

import math
import time

import pytest

from labctl import physics
from labctl.materials import preset
from labctl.physics import MU0

RADIUS = 0.010  # m, sample radius (DESIGN section 2)
TAP = 0.010  # m, voltage-tap spacing
HOLES = (0.005, 0.00707, 0.010)  # m: r1, r2, r3 = R
N_AVG = 20
GAUSSMETER_FLOOR = 2e-5  # LS425 noise floor as a fraction of full scale (sim_instruments/lakeshore425.py)


def settle(st, seconds: float = 900.0) -> None:
    """The cryostat loop starts with an empty integrator: give it ~15 virtual minutes."""
    st.clock.sleep(seconds)
    st.lab.world.advance()


def field_sigma(st) -> float:
    """Standard error (T) of an N_AVG mean minus the probe zero (8 readings of the probe)."""
    imp = st.lab.world.imperfections
    per_reading = math.hypot(imp.field_noise, GAUSSMETER_FLOOR * st.gaussmeter.full_scale)
    return math.sqrt(per_reading**2 / N_AVG + imp.field_noise**2 / 8)


def model_field(world, r: float, current: float, t: float) -> float:
    """B(r) from labctl.physics for the world's configured model and material, below Tc."""
    m = world.sample.material
    model = world.sample.field_model
    if t >= m.tc or model == "uniform":
        return float(physics.field_uniform(r, current, RADIUS))
    if model == "linear-j":
        return float(physics.field_linear_j(r, current, RADIUS))
    if model == "bean":
        return float(physics.field_bean(r, current, RADIUS, m.critical_current(t, RADIUS)))
    if model == "meissner":
        return float(physics.field_meissner(r, current, RADIUS, m.london_lambda))
    return float(physics.field_intermediate(r, current, RADIUS, m.hc(t), m.london_lambda))


def measure_profile(st, current: float) -> dict[float, float]:
    """Zero the probe at zero current, ramp to ``current`` and read B at each hole."""
    st.current_source.ramp_to(0.0)
    st.gaussmeter.zero_probe()
    st.current_source.ramp_to(current)
    assert st.lab.world.current == pytest.approx(current, abs=1e-9)  # constant-current mode
    fields = {}
    for r in HOLES:
        st.stage.move_to_radius(r)
        assert st.stage.radius == pytest.approx(r, abs=5e-6)  # encoder reads back within 5 um
        fields[r], _ = st.gaussmeter.read_average(N_AVG, interval=0.1)
    return fields


# (sample, model, temperature, current as a fraction of Ic(T) or in A, expected B2/B1, B3/B1)
CASES = {
    "uniform": ("Nb", "uniform", None, 200.0, (math.sqrt(2), 2.0)),
    "linear-j": ("Nb", "linear-j", None, 200.0, (2.0, 4.0)),
    "meissner": ("Pb", "meissner", None, ("ic", 0.5), None),  # below Silsbee: no field inside
    "bean": ("Nb", "bean", None, ("ic", 0.9), (1.89, 3.00)),  # DESIGN section 5 table
    "intermediate": ("Pb", "intermediate", 7.0, ("ic", 1.3), None),  # above Silsbee, near Tc
}


@pytest.mark.parametrize("name", list(CASES))
def test_field_profile_matches_model(make_station, name):
    sample, model, temperature, current, ratios = CASES[name]
    st = make_station(sample=sample, field_model=model, temperature=temperature)
    w = st.lab.world
    settle(st)
    t = w.t_sample
    m = w.sample.material
    assert t < m.tc
    assert st.temperature.read() == pytest.approx(t, abs=0.01)
    if isinstance(current, tuple):
        current = round(current[1] * m.critical_current(t, RADIUS), 2)
    assert current <= st.current_source.limits.max_current

    fields = measure_profile(st, current)
    tol = 5 * field_sigma(st)
    cos_mis = math.cos(w.imperfections.misalignment)
    assert w.t_sample == pytest.approx(t, abs=1e-5)  # the loop held T during the readings
    for r, b in fields.items():
        expected = model_field(w, r, current, w.t_sample) * cos_mis
        assert b == pytest.approx(expected, abs=tol), f"{model}: B({r * 1e3:g} mm)"
    # Ampere: the outer wall calibrates probe and current in every model
    assert fields[RADIUS] == pytest.approx(MU0 * current / (2 * math.pi * RADIUS) * cos_mis, abs=tol)

    b1, b2, b3 = (fields[r] for r in HOLES)
    if ratios is not None:
        assert b2 / b1 == pytest.approx(ratios[0], rel=0.01)
        assert b3 / b1 == pytest.approx(ratios[1], rel=0.01)
    if model == "meissner":
        # London screening: the field lives in a 30 nm surface layer; the holes see nothing
        assert abs(b1) < tol and abs(b2) < tol
        assert b3 > 1000 * tol
    if model == "intermediate":
        i = current / m.critical_current(t, RADIUS)
        r_front = RADIUS * (i - math.sqrt(i * i - 1))
        assert r_front < HOLES[0]  # both inner holes sit in the outer, growing-field region
        bc = MU0 * m.hc(t)
        # B >= mu0 Hc everywhere inside and B2/B1 within the model's 1.0-1.34 band (DESIGN section 5)
        assert b1 > 0.99 * bc * cos_mis
        assert 1.0 < b2 / b1 < 1.34


@pytest.mark.parametrize("model", physics.FIELD_MODELS)
def test_above_tc_the_sample_is_normal_whatever_the_model(make_station, model):
    st = make_station(sample="Nb", field_model=model, temperature=10.0)  # Nb Tc = 9.26 K
    settle(st, 300)
    assert st.temperature.read() > 9.26 + 0.5
    fields = measure_profile(st, 200.0)
    b1, b2, b3 = (fields[r] for r in HOLES)
    tol = 5 * field_sigma(st)
    cos_mis = math.cos(st.lab.world.imperfections.misalignment)
    for r, b in fields.items():
        assert b == pytest.approx(float(physics.field_uniform(r, 200.0, RADIUS)) * cos_mis, abs=tol)
    assert b2 / b1 == pytest.approx(math.sqrt(2), rel=0.005)
    assert b3 / b1 == pytest.approx(2.0, rel=0.005)


def test_zero_current_reading_cancels_offsets(make_station):
    """Subtracting the zero-current reading at the same radius is the lab's other way
    to cancel Hall offset and stray field (no ZPROBE)."""
    st = make_station(sample="Nb", field_model="bean")
    settle(st)
    w = st.lab.world
    ic = w.sample.critical_current(w.t_sample)
    current = round(0.9 * ic, 2)
    st.stage.move_to_radius(0.00707)
    b0, _ = st.gaussmeter.read_average(N_AVG)
    assert abs(b0) > 10 * w.imperfections.field_noise  # un-zeroed: offset + ambient field are visible
    st.current_source.ramp_to(current)
    b, _ = st.gaussmeter.read_average(N_AVG)
    expected = float(physics.field_bean(0.00707, current, RADIUS, ic)) * math.cos(w.imperfections.misalignment)
    assert b - b0 == pytest.approx(expected, abs=5 * field_sigma(st) * math.sqrt(2))


# ----------------------------------------------------------------------- R(T)
def test_resistance_transition_at_tc_pb(make_station):
    st = make_station(sample="Pb")  # meissner truth; transport does not depend on the field model
    settle(st, 300)
    pb = preset("Pb")
    area = math.pi * RADIUS**2
    tc = st.temperature
    amps = 5.0
    resistances = {}
    for setpoint in (pb.tc - 0.3, pb.tc - 0.05, pb.tc + 0.05, pb.tc + 0.3):
        tc.set_setpoint(setpoint)
        t = tc.wait_stable(setpoint, tolerance=0.01, dwell=30, interval=2)
        res = st.voltmeter.reversal_voltage(st.current_source, amps)
        resistances[setpoint] = (t, res["voltage"] / amps)
    sigma_v = st.lab.world.imperfections.voltage_noise / math.sqrt(5) + 0.01 * 1e-7
    sigma_r = 6 * math.sqrt(2) * sigma_v / amps  # V(I) - V(0): two readings

    t_hi, r_hi = resistances[pb.tc + 0.3]
    r_normal = pb.resistivity(t_hi) * TAP / area  # ~0.3 uOhm for RRR 20 lead
    assert r_hi == pytest.approx(r_normal, rel=0.02)
    t_lo, r_lo = resistances[pb.tc - 0.3]
    assert abs(r_lo) < sigma_r  # zero resistance below Tc, within noise
    assert abs(r_lo) < 0.01 * r_normal
    # the transition lies within +-50 mK of the preset's Tc
    assert abs(resistances[pb.tc - 0.05][1]) < 0.05 * r_normal
    assert resistances[pb.tc + 0.05][1] > 0.9 * r_normal


# ----------------------------------------------------------------------- V-I
def test_vi_bends_up_at_ic(make_station):
    st = make_station(sample="Nb", field_model="bean")
    settle(st)
    w = st.lab.world
    nb = preset("Nb")
    ic = nb.critical_current(w.t_sample, RADIUS)
    criterion = physics.EC_DEFAULT * TAP  # 1 uV/cm over 10 mm = 1 uV
    v_low = st.voltmeter.reversal_voltage(st.current_source, round(0.8 * ic, 2))["voltage"]
    v_high = st.voltmeter.reversal_voltage(st.current_source, round(1.1 * ic, 2))["voltage"]
    assert abs(v_low) < 0.05 * criterion  # (0.8)^25 Vc = 4 nV: nothing but noise
    assert v_high > criterion
    # the power law E = Ec (I/Ic)^n with the preset's n-value
    assert v_high == pytest.approx(criterion * 1.1**nb.n_value, rel=0.05)


# ----------------------------------------------------------------------- thermal
def test_temperature_follows_setpoint_with_sample_lag(make_station):
    st = make_station(sample="Nb", field_model="bean")
    settle(st)
    tc = st.temperature
    w = st.lab.world
    t0 = tc.read("B")
    assert t0 == pytest.approx(8.0, abs=0.01)
    wall = time.perf_counter()
    start = st.clock.now()
    tc.set_setpoint(8.5)
    st.clock.sleep(w.sample_lag)  # one sample lag time (20 s)
    t_a, t_b = tc.read("A"), tc.read("B")
    sigma = w.imperfections.temperature_noise
    assert t_a - t_b > 50 * sigma  # the control sensor leads, the sample lags
    assert t_a == pytest.approx(8.5, abs=0.05)  # the stage is nearly there already
    progress = (t_b - t0) / 0.5
    assert 0.4 < progress < 0.8  # ~1 - 1/e of the way after one lag time
    st.clock.sleep(10 * w.sample_lag)  # several time constants later
    assert tc.read("A") == pytest.approx(8.5, abs=0.01)
    assert tc.read("B") == pytest.approx(8.5, abs=0.01)
    assert st.clock.now() - start >= 11 * w.sample_lag
    assert time.perf_counter() - wall < 10  # 220 virtual seconds on the stepped clock


# ----------------------------------------------------------------------- stage
def test_stage_moves_at_finite_speed(sim_station):
    st = sim_station
    stage = st.stage
    stage.move_to(10.0)
    velocity = st.lab.world.stage.velocity
    assert velocity == pytest.approx(st.config.stage.velocity)  # 1 mm/s from the station file
    start = st.clock.now()
    stage.move_to(4.0, wait=False)
    travel_time = 6.0 / velocity
    st.clock.sleep(travel_time / 2)
    assert stage.position == pytest.approx(7.0, abs=0.01)  # mid-way
    assert not stage.axis.motion_done
    stage.wait_done()
    assert stage.position == pytest.approx(4.0, abs=0.005)
    assert st.clock.now() - start == pytest.approx(travel_time, abs=0.25)  # polled every 0.1 s
