"""Bad conditions end in one line and a recorded status, never a traceback or a torn row (issue 11).

Disk full is simulated with RLIMIT_FSIZE in the child (a write past the limit is cut
short, then fails with EFBIG, exactly like ENOSPC to the code that writes); a folder
nobody may write to with /sys (read-only to every user, root included).
"""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.config import DEFAULT_STATION

REPO = Path(__file__).resolve().parents[1]
SHORT_VI = ["--set", "current_step=20"]


def labctl(*args, preexec_fn=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn, stdin=subprocess.DEVNULL)


def one_line_error(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("20")]  # log lines have a date
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) >= 1, res.stderr
    return lines[-1]


def station_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_STATION.read_text()
    assert old in text
    path = tmp_path / "station.toml"
    path.write_text(text.replace(old, new))
    return path


def test_disk_full_leaves_no_torn_row_and_a_failed_status(tmp_path):
    data = tmp_path / "data"
    limit = 40_000  # bytes: the catalog fits, the V-I file (430 rows) does not: the "disk" is full

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = labctl("run", "vi", "--data-dir", str(data), "--quiet", "--set", "current_step=1", preexec_fn=small_disk)
    assert res.returncode == 1, res.stderr
    one_line_error(res)
    assert "cannot write" in res.stderr, res.stderr
    csv = next(data.glob("*/01-vi.csv"))
    text = csv.read_text()
    assert text.endswith("\n"), "a torn last row"
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")][1:]
    width = len(text.splitlines()[[not ln.startswith("#") for ln in text.splitlines()].index(True)].split(","))
    assert rows and all(len(r.split(",")) == width for r in rows)
    runs = json.loads(labctl("runs", "--data-dir", str(data), "--json", "--steps").stdout)
    step = next(r for r in runs if r["id"].endswith("/vi"))
    assert step["status"] == "failed" and "cannot write" in step["reason"] and step["ended"]


def test_unwritable_data_folder_is_one_line(tmp_path):
    res = labctl("run", "vi", "--data-dir", "/sys/labctl-test-data", "--quiet", *SHORT_VI)
    assert res.returncode in (1, 2)
    line = one_line_error(res)
    assert "/sys/labctl-test-data" in line, line


@pytest.mark.parametrize("when", ["(" * 300 + "current" + ")" * 300 + " > 1",
                                  "abs(" * 200 + "current" + ")" * 200 + " > 1",
                                  " + ".join(["current"] * 2000) + " > 1"])
def test_deep_or_huge_interlock_expression_is_a_config_error(tmp_path, when):
    path = tmp_path / "station.toml"
    path.write_text(DEFAULT_STATION.read_text() + f'\n[[interlocks]]\nname = "deep"\nwhen = "{when}"\n'
                                                  'action = "abort"\n')
    res = labctl("station", "check", "--station", str(path))
    assert res.returncode == 2
    line = one_line_error(res)
    assert "interlocks" in line and ("nested" in line or "characters" in line), line


def test_tiny_current_step_is_refused_before_allocating(tmp_path):
    res = labctl("run", "vi", "--data-dir", str(tmp_path), "--quiet", "--set", "current_step=1e-6")
    assert res.returncode == 2
    line = one_line_error(res)
    assert "points" in line and "current_step" in line, line
    assert not list(tmp_path.glob("*/01-vi.csv"))


@pytest.mark.parametrize("old,new,key", [
    ("ramp_step = 1.0 ", "ramp_step = 1e-300 ", "ramp_step"),
    ("max_ramp_rate = 20.0 ", "max_ramp_rate = 1e-300 ", "max_ramp_rate"),
])
def test_tiny_ramp_settings_are_refused(tmp_path, old, new, key):
    path = station_with(tmp_path, old, new)
    res = labctl("run", "vi", "--station", str(path), "--data-dir", str(tmp_path), "--quiet", *SHORT_VI)
    assert res.returncode == 2
    line = one_line_error(res)
    assert key in line, line


def test_library_path_as_backend_is_refused(tmp_path):
    path = station_with(tmp_path, 'backend = "sim"', 'backend = "/tmp/evil.so"')
    res = labctl("station", "check", "--station", str(path))
    assert res.returncode == 2
    assert "backend" in one_line_error(res)
