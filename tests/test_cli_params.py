"""``labctl --version``, ``labctl params``, ``labctl protocol example`` and case-insensitive presets."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from labctl.cli import build_parser, main
from labctl.cli_params import EXAMPLE_SETTINGS, example_text
from labctl.protocol import STEPS, load_protocol_file

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("labctl ") and "pymeasure" in out


def test_params_lists_every_parameter_with_station_limits(capsys):
    assert main(["params", "vi", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    from procedures import PROCEDURES

    names = {p["name"] for p in data["vi"]}
    assert names == set(PROCEDURES["vi"]().parameter_objects())
    cmax = next(p for p in data["vi"] if p["name"] == "current_max")
    assert cmax["units"] == "A" and cmax["maximum"] == 600.0 and "max_current" in cmax["limited_by"]
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    for step in STEPS:
        assert f"{step}:" in out
    assert "[vi]" in out  # rich markup does not eat the table names


def test_params_unknown_step_is_one_line(capsys):
    assert main(["params", "foo"]) == 2
    err = capsys.readouterr().err
    assert "no step named 'foo'" in err and "rt, vi" in err


def test_protocol_example_is_valid_and_matches_docs(tmp_path, capsys):
    assert main(["protocol", "example"]) == 0
    text = capsys.readouterr().out
    data = {k: v for k, v in tomllib.loads(text).items() if v}
    assert data == EXAMPLE_SETTINGS
    assert tomllib.loads((ROOT / "docs" / "my-protocol.toml").read_text()) == data
    p = tmp_path / "p.toml"
    p.write_text(text)
    overrides, options = load_protocol_file(p, list(STEPS))
    assert options["fractions"] == "0.2,0.4,0.6,0.8" and overrides["vi"]["current_step"] == "5.0"
    # every parameter of every step is named (set or commented) with its range
    from procedures import PROCEDURES

    for step in STEPS:
        for name in PROCEDURES[step]().parameter_objects():
            assert f"{name} = " in text, (step, name)
    assert "allowed 1e-06 … 600 A" in text  # the station's limit, not the procedure's 1000 A


def test_protocol_example_runs_as_is(tmp_path, capsys):
    p = tmp_path / "p.toml"
    p.write_text(example_text())
    assert main(["run", "protocol", "--protocol", str(p), "--data-dir", str(tmp_path / "runs")]) == 0


def test_sample_presets_in_any_case():
    parser = build_parser()
    assert parser.parse_args(["gui", "--sample", "nb"]).sample == "Nb"
    assert parser.parse_args(["sim", "serve", "--sample", "PB"]).sample == "Pb"
    assert parser.parse_args(["sim", "serve", "--sample", "mgb2"]).sample == "MgB2"


def test_protocol_example_piped_into_run(tmp_path):
    """`labctl protocol example | labctl run protocol --protocol /dev/stdin`, as the issue asks."""
    import subprocess
    import sys

    if not Path("/dev/stdin").exists():
        pytest.skip("no /dev/stdin")
    example = subprocess.run([sys.executable, "-m", "labctl", "protocol", "example"], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
    assert example.returncode == 0, example.stderr
    run = subprocess.run([sys.executable, "-m", "labctl", "run", "protocol", "--protocol", "/dev/stdin",
                          "--data-dir", str(tmp_path / "runs"), "--quiet"], input=example.stdout,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "completed" in run.stdout


@pytest.mark.parametrize("argv, want", [
    (["run", "foo"], "unknown step 'foo'; choose one of: protocol, rt, vi"),
    (["frob"], "unknown command 'frob'; choose one of: station, sim, run"),
    (["sim", "serve", "--sample", "xx"], "unknown sample 'xx'; choose one of: Pb, Sn"),
    (["replay", "x", "--speed", "abc"], "--speed: 'abc' is not a number"),
])
def test_argument_errors_in_the_users_words(argv, want, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert want in err and "argument what" not in err and "invalid choice" not in err, err


def test_readme_lists_every_xcb_library_qt_needs():
    """The README's apt-get line names the Debian/Ubuntu package of every xcb/xkb library Qt's xcb
    platform plugin links (ldd), so a desktop install does not fail on a missing libxcb-*.so."""
    import re
    import shutil
    import subprocess

    qt = pytest.importorskip("PyQt6")
    if not shutil.which("ldd"):
        pytest.skip("no ldd")
    base = Path(qt.__file__).parent / "Qt6"
    libs = set()
    for f in [base / "plugins" / "platforms" / "libqxcb.so", *sorted((base / "lib").glob("libQt6XcbQpa.so*"))[:1]]:
        if f.exists():
            out = subprocess.run(["ldd", str(f)], capture_output=True, text=True).stdout
            libs |= set(re.findall(r"^\s*(lib(?:xcb|X11-xcb|xkbcommon)[\w.-]*?\.so\.\d+)", out, flags=re.M))
    if not libs:
        pytest.skip("Qt's xcb plugin not found")

    def package(so: str) -> str:
        name, num = re.match(r"lib(.+)\.so\.(\d+)$", so).groups()
        name = name.lower()
        return f"lib{name}-{num}" if name[-1].isdigit() else f"lib{name}{num}"

    text = (ROOT / "README.md").read_text()
    line = re.search(r"sudo apt-get install ([^`]+?)\n```", text, flags=re.S).group(1)
    listed = set(line.replace("\\", " ").split())
    missing = sorted(package(so) for so in libs if package(so) not in listed)
    assert not missing, missing


@pytest.mark.parametrize("argv, want", [
    (["run", "vi", "--set", "current_step=abc"], "current_step='abc' is invalid (allowed 1e-06 to 100 A): not a number"),
    (["run", "vi", "--set", "averages=1.5"], "averages='1.5' is invalid (allowed 1 to 100): not a whole number"),
    (["run", "vi", "--set", "current_step=500"], "is invalid (allowed 1e-06 to 100 A): value is above the maximum"),
    (["run", "protocol", "--set", "foo=1"], "--set foo: no step has a parameter 'foo'; `labctl params` lists them"),
])
def test_parameter_errors_without_internal_names(argv, want, capsys, tmp_path):
    assert main(argv + ["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert want in err, err
    assert "Parameter" not in err and "any step" not in err and "<class" not in err


def test_run_accepts_sample_presets_in_any_case():
    assert build_parser().parse_args(["run", "vi", "--sample", "nb"]).sample == "Nb"


def test_run_help_points_to_the_parameter_list(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "labctl params STEP" in out and "labctl protocol example" in out
