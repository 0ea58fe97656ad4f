"""Station files for tests: the built-in virtual lab over TCP, or with a Keithley 6221."""
from __future__ import annotations

import re
from pathlib import Path

from labctl.config import DEFAULT_STATION


def tcp_station_text(resources: dict[str, str], template=None, speedup: float | None = None) -> str:
    """A station file (the built-in virtual lab's unless ``template``) talking to served
    instruments through pyvisa-py, as to LAN instruments: each role at its served address."""
    text = Path(template or DEFAULT_STATION).read_text().replace('backend = "sim"', 'backend = "@py"', 1)
    if speedup is not None:
        text = text.replace("[station]\n", f"[station]\nspeedup = {speedup}\n", 1)
    for role, address in resources.items():
        text = re.sub(rf'(\[{role}\]\n(?:[^\[]*?\n)?address = )"[^"]*"', rf'\g<1>"{address}"', text)
    return text


def write_6221_station(tmp_path, name: str = "k6221.toml"):
    """The built-in virtual-lab station with a Keithley 6221 (bipolar, +-0.1 A) as current source."""
    head, rest = DEFAULT_STATION.read_text().split("[current_source]", 1)
    rest = rest[rest.index("[voltmeter]"):]
    path = tmp_path / name
    path.write_text(head + """[current_source]
driver = "keithley6221"
address = "TCPIP0::127.0.0.1::5605::SOCKET"
read_termination = "\\n"
write_termination = "\\n"
[current_source.limits]
max_current = 0.1
max_ramp_rate = 1.0
ramp_step = 0.01
compliance_voltage = 10.0

""" + rest)
    return path
