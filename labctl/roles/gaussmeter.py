"""gaussmeter role: Lake Shore 425 field in tesla, zeroing, averaging, overload detection."""
from __future__ import annotations

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role, log
from labctl.roles.verify import expect, no_errors, unverified

RANGES_T = {35: 3.5e-3, 350: 35e-3, 3500: 0.35, 35000: 3.5}  # high-sensitivity probe (TYPE 40), by gauss
PROBE_RANGES_G = {  # Model 425 manual: RANGE 1-4 full scale (G) per probe type (TYPE?)
    40: {1: 35.0, 2: 350.0, 3: 3.5e3, 4: 35e3},  # high sensitivity
    41: {1: 350.0, 2: 3.5e3, 3: 35e3, 4: 350e3},  # high stability
    42: {1: 0.35, 2: 3.5, 3: 35.0, 4: 350.0},  # ultra-high sensitivity
}
DC_MODE = (1, 0, 1)  # RDGMODE: DC, filter off, wide band
ZERO_TIME = 3.0  # s to wait before asking whether ZPROBE is done


class Gaussmeter(Role):
    role = "gaussmeter"
    last_field = None
    probe_type = 40
    full_scale = 3.5

    @property
    def ranges(self) -> dict[int, float]:
        """RANGE number -> full scale (T) for the probe fitted."""
        return {n: g * 1e-4 for n, g in PROBE_RANGES_G[40 + int(self.probe_type) % 10].items()}

    def read_probe_type(self) -> int:
        self.probe_type = self.query("TYPE?", lambda: int(self.instrument.probe_type))
        if 40 + self.probe_type % 10 not in PROBE_RANGES_G:
            raise unverified(self, "probe type", f"TYPE? = {self.probe_type}, not a known probe")
        return self.probe_type

    def setup(self) -> None:
        """Run start (Model 425 manual): the probe type decides the range table (``TYPE?``),
        tesla, DC mode (``RDGMODE 1,0,1``), a fixed range; all read back, then ``*ESR?``."""
        inst = self.instrument
        ptype = self.read_probe_type()
        if self.config.probe_type is not None and ptype != self.config.probe_type:
            raise unverified(self, "probe type", f"station file expects TYPE {self.config.probe_type}, "
                                                 f"the instrument reports {ptype}")
        with self.io("*CLS / UNIT 2 / RDGMODE 1,0,1"):
            inst.write("*CLS")
            inst.unit = "T"
            inst.mode = DC_MODE
        expect(self, "unit tesla", self.query("UNIT?", lambda: inst.unit), "T")
        expect(self, "DC mode", self.query("RDGMODE?", lambda: tuple(int(x) for x in inst.mode)), DC_MODE)
        self.set_range_for(min(30e-3, self.config.limits.max_field))  # the 350 G range on a TYPE 40 probe
        no_errors(self, self.query("*ESR?", inst.read_errors), "after setup")
        log.info("%s: probe type %d, ranges %s T, DC mode", self.name, ptype,
                 ", ".join(f"{v:g}" for v in self.ranges.values()))

    def set_range_for(self, field: float) -> None:
        """Pick the smallest range of the fitted probe that holds ``field`` (T); read it back."""
        if abs(field) > self.config.limits.max_field:
            raise LimitError(f"{self.name}: {field:g} T exceeds max_field = {self.config.limits.max_field:g} T")
        ranges = self.ranges
        number = next((n for n, t in sorted(ranges.items()) if abs(field) <= 0.95 * t), max(ranges))
        with self.io(f"RANGE {number} for {field:g} T"):
            self.instrument.range_number = number
        expect(self, f"range {number}", self.query("RANGE?", lambda: int(self.instrument.range_number)), number)
        self.full_scale = ranges[number]

    def read_field(self) -> float:
        """Field (T); an over-range reading raises InstrumentError."""
        b = self.query("RDGFIELD?", lambda: float(self.instrument.field))
        self.last_field = b
        if abs(b) >= 0.999 * self.full_scale:
            status = self.query("RDGST?", lambda: int(self.instrument.ask("RDGST?")))
            if status & 1:
                raise InstrumentError(f"{self.name} at {self.address}: field over range "
                                      f"({self.full_scale:g} T full scale)",
                                      role=self.name, address=self.address, last_command="RDGFIELD?")
        return b

    def read_average(self, n: int = 10, interval: float = 0.1) -> tuple[float, float]:
        """Mean and sample standard deviation (T) of ``n`` readings ``interval`` s apart."""
        vals = []
        for k in range(max(1, n)):
            vals.append(self.read_field())
            if k + 1 < n:
                self.clock.sleep(interval)
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
        return mean, std

    def zero_probe(self) -> None:
        """ZPROBE: call with no sample current, at the operating temperature.  The zero takes a
        few seconds: wait, ask ``*OPC?`` (answers once done), check ``*ESR?``, then check
        that the probe now reads zero (within 1 % of the range)."""
        with self.io("ZPROBE"):
            self.instrument.zero_probe()
        self.clock.sleep(ZERO_TIME)
        done = self.query("*OPC?", lambda: self.instrument.operation_complete())
        if not done:
            raise unverified(self, "probe zero", "*OPC? did not confirm ZPROBE")
        no_errors(self, self.query("*ESR?", self.instrument.read_errors), "after ZPROBE")
        b = self.read_field()
        if abs(b) > 0.01 * self.full_scale:
            raise unverified(self, "probe zero", f"reads {b:.4g} T right after ZPROBE")

    def errors(self) -> list[str]:
        return self.query("*ESR?", self.instrument.read_errors)

    def state(self) -> dict:
        """Queries only: the field in tesla whatever unit the front panel shows."""
        self.read_probe_type()
        number = self.query("RANGE?", lambda: int(self.instrument.range_number))
        unit = self.query("UNIT?", lambda: str(self.instrument.unit))
        to_tesla = {"G": 1e-4, "T": 1.0, "Oe": 1e-4, "A/m": 4e-7 * 3.141592653589793}.get(unit, 1.0)
        field = self.query("RDGFIELD?", lambda: float(self.instrument.field)) * to_tesla
        return {"field_T": field, "unit": unit, "range": number, "probe_type": self.probe_type,
                "full_scale_T": self.ranges.get(number, float("nan"))}
