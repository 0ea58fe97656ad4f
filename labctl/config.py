"""Station configuration (TOML): which driver and VISA address plays each role,
with its connection options and safety limits.

Validation is strict: unknown keys, missing roles, malformed addresses and
limits that contradict each other are reported as one line naming the file,
the key and the fix.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pyvisa import rname

from labctl.errors import ConfigError

ROLES = ("current_source", "voltmeter", "temperature", "gaussmeter", "stage")
DRIVERS_BY_ROLE = {
    "current_source": ("genesys", "genesys-lan", "keithley6221"),  # issue 12: genesys-lan
    "voltmeter": ("keithley2182",),
    "temperature": ("lakeshore336",),
    "gaussmeter": ("lakeshore425",),
    "stage": ("esp300",),
}
STATIONS_DIR = Path(__file__).parent / "stations"
DEFAULT_STATION = STATIONS_DIR / "sim.toml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # a limit of inf is no limit


class CurrentLimits(Strict):
    max_current: float = Field(gt=0, description="A, largest |I| a run may request")
    max_ramp_rate: float = Field(gt=0, description="A/s, normal ramp rate ceiling")
    emergency_ramp_rate: float | None = Field(default=None, gt=0, description="A/s, quench/interlock ramp-down")
    ramp_step: float = Field(default=1.0, gt=0, description="A, largest single current step while ramping")
    compliance_voltage: float = Field(default=5.0, gt=0, description="V, supply voltage limit")

    @model_validator(mode="after")
    def _bounded_ramps(self):
        # a ramp over the full range must stay a plan a run can finish: bounded step count and duration
        if self.max_current / self.ramp_step > 100_000:
            raise ValueError(f"ramp_step = {self.ramp_step:g} A needs more than 100000 steps to reach "
                             f"max_current = {self.max_current:g} A; use ramp_step >= {self.max_current / 100_000:g} A")
        if self.max_current / self.max_ramp_rate > 86_400:
            raise ValueError(f"max_ramp_rate = {self.max_ramp_rate:g} A/s takes more than a day to ramp "
                             f"{self.max_current:g} A; use max_ramp_rate >= {self.max_current / 86_400:.3g} A/s")
        return self

    @model_validator(mode="after")
    def _emergency_faster(self):
        if self.emergency_ramp_rate is not None and self.emergency_ramp_rate < self.max_ramp_rate:
            raise ValueError("emergency_ramp_rate must be >= max_ramp_rate (it is the fast ramp-down)")
        return self


class TemperatureLimits(Strict):
    min_temperature: float = Field(ge=0, description="K")
    max_temperature: float = Field(gt=0, description="K")
    max_ramp_rate: float = Field(default=10.0, gt=0, description="K/min")

    @model_validator(mode="after")
    def _window(self):
        if self.min_temperature >= self.max_temperature:
            raise ValueError("min_temperature must be below max_temperature")
        return self


class StageLimits(Strict):
    min_position: float = Field(description="mm, stage coordinate")
    max_position: float = Field(description="mm, stage coordinate")
    max_velocity: float = Field(default=2.0, gt=0, description="mm/s")

    @model_validator(mode="after")
    def _travel(self):
        if self.min_position >= self.max_position:
            raise ValueError("min_position must be below max_position")
        return self


class FieldLimits(Strict):
    max_field: float = Field(default=3.5, gt=0, description="T, gaussmeter full scale")


class VoltageLimits(Strict):
    quench_voltage: float = Field(default=1e-3, gt=0, description="V across the taps that means a quench")


class RoleConfig(Strict):
    driver: str
    address: str
    read_termination: str | None = None
    write_termination: str | None = None
    timeout: int = Field(default=3000, gt=0, description="ms")
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            rname.parse_resource_name(value)
        except rname.InvalidResourceName:
            raise ValueError(
                f"{value!r} is not a VISA resource name (e.g. GPIB0::12::INSTR, "
                "TCPIP0::192.168.1.20::5025::SOCKET, ASRL/dev/ttyUSB0::INSTR)") from None
        return value


class CurrentSourceConfig(RoleConfig):
    limits: CurrentLimits


class VoltmeterConfig(RoleConfig):
    limits: VoltageLimits = VoltageLimits()
    nplc: float = Field(default=5.0, ge=0.01, le=60, description="integration time in power-line cycles")
    # issue 12 (2182A manual): NPLC is at most 50 on 50 Hz mains, 60 on 60 Hz; None = ask SYST:LFR?
    mains_frequency: Literal[50, 60] | None = None
    voltage_range: float | None = Field(default=None, gt=0, le=100,
                                        description="V, fixed range for reversals (None: from quench_voltage)")
    digital_filter: int = Field(default=0, ge=0, le=100,
                                description="readings averaged by the repeating digital filter (0 = off)")
    analog_filter: bool = False

    @model_validator(mode="after")
    def _nplc_mains(self):
        if self.mains_frequency is not None and self.nplc > self.mains_frequency:
            raise ValueError(f"nplc = {self.nplc:g} exceeds {self.mains_frequency} (the 2182A's limit "
                             f"on {self.mains_frequency} Hz mains)")
        return self


class TemperatureConfig(RoleConfig):
    limits: TemperatureLimits
    loop: Literal[1, 2] = 1
    control_input: Literal["A", "B", "C", "D"] = "A"
    sample_input: Literal["A", "B", "C", "D"] = "B"
    heater_range: Literal["off", "low", "medium", "high"] = "high"
    # issue 12 (336 manual, HTRSET): the heater as wired, written at run start
    heater_resistance: Literal[25, 50] = Field(default=25, description="ohm, heater resistance")
    max_heater_current: float = Field(default=1.0, gt=0, le=2.0,
                                      description="A; 0.707, 1, 1.141 and 2 are presets, else user-defined")


class GaussmeterConfig(RoleConfig):
    limits: FieldLimits = FieldLimits()
    probe_type: Literal[40, 41, 42, 50, 51, 52] | None = Field(
        default=None, description="expected TYPE? (None: accept what is fitted)")  # issue 12


class StageConfig(RoleConfig):
    limits: StageLimits
    radius_offset: float = Field(default=0.0, description="mm; r = sign * (position - offset)")
    radius_sign: Literal[1, -1] = 1
    axis: Literal[1, 2, 3] = 1
    velocity: float = Field(default=1.0, gt=0, description="mm/s")
    # issue 12 (ESP300 manual, OR/MD?): "search" homes at run start; "declared" trusts a
    # reference made outside labctl (absolute encoder or homed by hand) and does not move
    home: Literal["search", "declared"] = "search"
    home_mode: int | None = Field(default=None, ge=0, le=6, description="OR mode (None: plain OR)")
    home_timeout: float = Field(default=120.0, gt=0, description="s, home search time-out")


class SimConfig(Strict):
    sample: str = "Pb"
    field_model: str | None = None
    temperature: float | None = Field(default=None, gt=0)
    speedup: float | Literal["max"] = "max"
    seed: int = 0

    @field_validator("sample")
    @classmethod
    def _sample(cls, value: str) -> str:
        from labctl.materials import PRESETS

        if value.lower() not in {k.lower() for k in PRESETS}:
            raise ValueError(f"unknown sample preset {value!r}; choose one of {', '.join(PRESETS)}")
        return value

    @field_validator("field_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        from labctl.physics import FIELD_MODELS

        if value is not None and value not in FIELD_MODELS:
            raise ValueError(f"unknown field model {value!r}; choose one of {', '.join(FIELD_MODELS)}")
        return value


class SampleConfig(Strict):
    """What is mounted: the expectations a physicist brings (the measurement decides)."""

    name: str = "sample"
    expected_tc: float = Field(gt=0, description="K, literature Tc: centres the R(T) sweep")
    working_temperature: float = Field(gt=0, description="K, for V-I and the field measurements")
    radius: float = Field(default=0.010, gt=0, description="m, cylinder radius R")
    tap_spacing: float = Field(default=0.010, gt=0, description="m, voltage-tap spacing")
    hole_radii: list[float] = Field(default=[5.0, 7.07, 10.0], min_length=1, description="mm, probe radii")

    @model_validator(mode="after")
    def _below_tc(self):
        if self.working_temperature >= self.expected_tc:
            raise ValueError("working_temperature must be below expected_tc")
        return self


class InterlockConfig(Strict):
    """A rule checked during runs, e.g. when = "temperature > expected_tc - 0.3 and abs(current) > 1"."""

    name: str
    when: str
    action: Literal["pause", "abort"] = "pause"

    @field_validator("when")
    @classmethod
    def _expression(cls, value: str) -> str:
        from labctl.safety import compile_rule

        try:
            compile_rule(value, "when")
        except ConfigError as e:
            raise ValueError(str(e).removeprefix("when: ")) from None
        return value


class StationMeta(Strict):
    name: str = "station"
    # Never a library path: a station file (or a run folder's copy of one) must not be able to
    # load code.  A system VISA in a non-standard place is found through pyvisa's own
    # PYVISA_LIBRARY / .pyvisarc.
    backend: Literal["", "sim", "@py", "@ivi", "@ni"] = Field(
        default="", description="'sim' (in-process virtual lab), '@py' (pyvisa-py) or '' (system VISA)")
    data_dir: str = "data/runs"
    # issue 16: the shared archive, e.g. "postgresql://labuser@db.lab/labctl" (labctl.archive);
    # empty = the embedded SQLite catalog only.  LABCTL_CATALOG overrides it.
    catalog: str = Field(default="", description="URL of the shared run archive (postgresql://...); empty = local only")
    speedup: float | None = Field(default=None, gt=0, description="clock speed-up when talking to `labctl sim serve`")
    retries: int = Field(default=2, ge=0, le=10, description="retries of a read after a transient I/O error")
    retry_backoff: float = Field(default=0.05, ge=0, le=10, description="s before the first retry, doubled each time")
    # issue 12: I/O trace of every command and reply (labctl.iotrace); true = into each run
    # folder's io-trace.log, a path = that file as well
    trace: bool | str = False
    guard_period: float = Field(default=0.5, ge=0.01, le=5.0,
                                description="s between safety checks (tap voltage, supply read-back, interlocks) "
                                            "while current flows, during readings and waits too")


class StationConfig(Strict):
    station: StationMeta = StationMeta()
    sim: SimConfig | None = None
    sample: SampleConfig | None = None
    current_source: CurrentSourceConfig
    voltmeter: VoltmeterConfig
    temperature: TemperatureConfig
    gaussmeter: GaussmeterConfig
    stage: StageConfig
    interlocks: list[InterlockConfig] = Field(default_factory=list)
    source_path: str = ""

    @model_validator(mode="after")
    def _consistent(self):
        for role in ROLES:
            drv = getattr(self, role).driver
            if drv not in DRIVERS_BY_ROLE[role]:
                raise ValueError(f"[{role}] driver {drv!r} cannot play this role; use one of "
                                 f"{', '.join(DRIVERS_BY_ROLE[role])}")
        cs = self.current_source
        if cs.driver == "keithley6221" and cs.limits.max_current > 0.105:
            raise ValueError("[current_source.limits] max_current exceeds the Keithley 6221's 0.105 A; "
                             "lower it or use the genesys driver")
        if cs.driver in ("genesys", "genesys-lan") and cs.limits.max_current > 600:
            raise ValueError("[current_source.limits] max_current exceeds the GEN8-600's 600 A")
        if self.station.backend == "sim" and self.sim is None:
            object.__setattr__(self, "sim", SimConfig())
        if self.sample is None and self.sim is not None:  # the virtual lab's preset, literature values
            from labctl.materials import preset

            m = preset(self.sim.sample)
            object.__setattr__(self, "sample", SampleConfig(name=m.name, expected_tc=m.tc,
                                                            working_temperature=m.working_temperature))
        return self

    @property
    def is_sim(self) -> bool:
        return self.station.backend == "sim"


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        section = ".".join(str(p) for p in err["loc"][:-1]) or "top level"
        return f"unknown key '{loc}' (not allowed in [{section}]; check the spelling or remove it)"
    if kind == "missing":
        if len(err["loc"]) == 1 and err["loc"][0] in ROLES:
            return f"missing role [{loc}] (every station needs {', '.join(ROLES)})"
        return f"missing key '{loc}' (add it)"
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{loc}': {msg}" if loc else msg


def load_station(path: str | Path | None = None, sim_overrides: dict | None = None) -> StationConfig:
    """Read and validate a station file; raise ConfigError with a one-line message.

    ``sim_overrides`` (sample, field_model, seed, ...) replace keys of [sim].
    """
    path = Path(path) if path else DEFAULT_STATION
    if not path.exists():
        builtin = STATIONS_DIR / path.name
        if builtin.exists() and path.parent == Path("."):
            path = builtin
        else:
            raise ConfigError(f"station file {path} not found (built-in stations: "
                              f"{', '.join(p.name for p in STATIONS_DIR.glob('*.toml'))})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (station files are UTF-8 TOML)") from None
    data["source_path"] = str(path)
    overrides = {k: v for k, v in (sim_overrides or {}).items() if v is not None}
    if overrides:
        data["sim"] = {**data.get("sim", {}), **overrides}
    try:
        return StationConfig.model_validate(data)
    except ValidationError as e:
        # a misspelt key shows up as 'unknown' and 'missing': name the misspelling
        first = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")[0]
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{path}: {_describe(first)}{more}") from None
