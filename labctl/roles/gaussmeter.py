"""gaussmeter role: Lake Shore 425 field in tesla, zeroing, averaging, overload detection."""
from __future__ import annotations

from labctl.errors import InstrumentError, LimitError
from labctl.roles.base import Role

RANGES_T = {35: 3.5e-3, 350: 35e-3, 3500: 0.35, 35000: 3.5}  # pymeasure range keys are gauss


class Gaussmeter(Role):
    role = "gaussmeter"
    last_field = None

    def setup(self) -> None:
        with self.io("UNIT 2 (tesla)"):
            self.instrument.unit = "T"
        self.set_range_for(min(30e-3, self.config.limits.max_field))  # 350 G range until told otherwise

    def set_range_for(self, field: float) -> None:
        """Pick the smallest range that holds ``field`` (T)."""
        if abs(field) > self.config.limits.max_field:
            raise LimitError(f"{self.name}: {field:g} T exceeds max_field = {self.config.limits.max_field:g} T")
        gauss = next((g for g, t in sorted(RANGES_T.items()) if abs(field) <= 0.95 * t), 35000)
        with self.io(f"RANGE for {field:g} T"):
            self.instrument.range = gauss
        self.full_scale = RANGES_T[gauss]

    def read_field(self) -> float:
        """Field (T); an over-range reading raises InstrumentError."""
        b = self.query("RDGFIELD?", lambda: float(self.instrument.field))
        self.last_field = b
        if abs(b) >= 0.999 * getattr(self, "full_scale", 3.5):
            status = self.query("RDGST?", lambda: int(self.instrument.ask("RDGST?")))
            if status & 1:
                raise InstrumentError(f"{self.name} at {self.address}: field over range "
                                      f"({getattr(self, 'full_scale', 0):g} T full scale)",
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
        """ZPROBE: call with no sample current, at the operating temperature."""
        with self.io("ZPROBE"):
            self.instrument.zero_probe()
        self.clock.sleep(1.0)

    def state(self) -> dict:
        return {"field_T": self.read_field(), "range_G": self.query("RANGE?", lambda: self.instrument.range)}
