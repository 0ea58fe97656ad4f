"""Bad input (issue 7), fuzzed with hypothesis: procedure parameters, station files, CLI
arguments and data files.  Every bad input is refused with ONE line naming what is
wrong (exit 2 on the command line), never a traceback, and a data file never gets
code imported or run.
"""
from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.analysis.loading import LoadError, load
from labctl.cli import main
from labctl.config import DEFAULT_STATION, StationConfig, load_station
from labctl.errors import ConfigError
from procedures import PROCEDURES

FUZZ = settings(max_examples=int(os.environ.get("LABCTL_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])
STEPS = list(PROCEDURES)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """labctl in-process; (exit code, stdout, stderr); SystemExit (argparse) becomes its code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return code, out.getvalue(), err.getvalue()


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ------------------------------------------------------------ procedure parameters
def _numeric_params():
    out = []
    for step, cls in PROCEDURES.items():
        for name, p in cls().parameter_objects().items():
            kind = type(p).__name__
            if kind in ("FloatParameter", "IntegerParameter"):
                out.append((step, name, kind, p.minimum, p.maximum))
    return out


NUMERIC = _numeric_params()
NOT_NUMBERS = st.sampled_from(["nan", "NaN", "-nan", "abc", "", " ", "1,5", "1.2.3", "0x10", "1e", "--1", "one",
                               "1 2", "inf", "-inf", "Infinity", "None", "[]", "1/2"])


@st.composite
def bad_numeric(draw):
    step, name, kind, lo, hi = draw(st.sampled_from(NUMERIC))
    how = draw(st.sampled_from(["below", "above", "text"] + (["fraction"] if kind == "IntegerParameter" else [])))
    if how == "below":
        value = lo - draw(st.floats(min_value=1e-3, max_value=1e12)) * max(abs(lo), 1)
        text = str(int(math.floor(value))) if kind == "IntegerParameter" else repr(value)
    elif how == "above":
        value = hi + draw(st.floats(min_value=1e-3, max_value=1e12)) * max(abs(hi), 1)
        text = str(int(math.ceil(value))) if kind == "IntegerParameter" else repr(value)
    elif how == "fraction":
        text = repr(draw(st.integers(lo, hi)) + 0.5)
    else:
        text = draw(NOT_NUMBERS | st.text(max_size=8).filter(lambda s: not _is_number(s)))
    return step, name, lo, hi, text


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


@FUZZ
@given(case=bad_numeric())
def test_invalid_numeric_parameter_exits_2_with_one_line(tmp_path, case):
    step, name, lo, hi, text = case
    code, out, err = run_cli(["run", step, "--set", f"{name}={text}", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2, (step, name, text, out, err)
    line = one_line(err)
    assert f"{name}=" in line, line
    assert f"allowed {lo:g} to {hi:g}" in line, line
    assert not list(tmp_path.glob("*/")), "a run folder was created for a refused plan"


CHOICE_STEPS = [s for s in STEPS if any(type(p).__name__ in ("ListParameter", "BooleanParameter", "Parameter")
                                         for p in PROCEDURES[s]().parameter_objects().values())]


@FUZZ
@given(step=st.sampled_from(CHOICE_STEPS), data=st.data())
def test_invalid_choice_boolean_or_list_parameter_exits_2(tmp_path, step, data):
    params = PROCEDURES[step]().parameter_objects()
    choices = {n: p for n, p in params.items() if type(p).__name__ in ("ListParameter", "BooleanParameter", "Parameter")}
    name = data.draw(st.sampled_from(sorted(choices)))
    p = choices[name]
    kind = type(p).__name__
    if kind == "Parameter":  # comma-separated lists of numbers
        value = data.draw(st.sampled_from(["", "a,b", "1,,x", "nan", "1,inf", "1;2;zz", "0.5,nan"]))
    else:
        allowed = {str(c).lower() for c in getattr(p, "choices", None) or []} | {"true", "false"}
        value = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s.strip().lower() not in allowed))
    code, out, err = run_cli(["run", step, "--set", f"{name}={value}", "--set", "ic=430", "--data-dir", str(tmp_path),
                              "--quiet"] if "ic" in params else
                             ["run", step, "--set", f"{name}={value}", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2, (step, name, value, err)
    line = one_line(err)
    assert name in line or (name == "currents" and "current" in line), line
    if kind == "ListParameter":
        assert "allowed: " in line
    if kind == "BooleanParameter":
        assert "allowed: true, false" in line


def test_nan_is_not_a_parameter_value(tmp_path):
    """pymeasure's FloatParameter accepts 'nan' (every comparison with it is false)."""
    code, out, err = run_cli(["run", "vi", "--set", "settle=nan", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "settle='nan' is invalid (allowed 0 to 60 s)" in one_line(err)
    code, out, err = run_cli(["run", "radial-field", "--set", "ic=430", "--set", "radii=5,nan", "--data-dir",
                              str(tmp_path), "--quiet"])
    assert code == 2 and "radii" in one_line(err) and "finite" in err


# ------------------------------------------------------------------ station files
BASE = tomllib.loads(DEFAULT_STATION.read_text())


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def dump_toml(data: dict) -> str:
    """Every top-level key as one inline value: valid TOML 1.0, any nesting."""
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())


def key_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, dict):
                yield from key_paths(v, prefix + (i,))


PATHS = list(key_paths(BASE))
VALUES = (st.text(max_size=12) | st.integers(-10**20, 10**20) | st.floats() | st.booleans()
          | st.lists(st.integers(-5, 5), max_size=3) | st.just({}) | st.dictionaries(st.text(min_size=1, max_size=5),
                                                                                     st.integers(), max_size=2))


def _parent(data, path):
    node = data
    for k in path[:-1]:
        node = node[k]
    return node


@st.composite
def mutated_station(draw):
    data = json.loads(json.dumps(BASE))  # deep copy
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "retype", "unknown"]))
        paths = list(key_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "retype":
            parent[path[-1]] = draw(VALUES)
        else:
            target = parent if isinstance(parent, dict) else data
            target[draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True))] = draw(VALUES)
    text = dump_toml(data).encode()
    if draw(st.booleans()):  # and some raw garbage bytes somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=16)) + text[at:]
    return text


@FUZZ
@given(text=mutated_station())
def test_mutated_station_file_loads_or_gives_one_line_config_error(tmp_path, text):
    path = tmp_path / "station.toml"
    path.write_bytes(text)
    try:
        cfg = load_station(path)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(str(path)), msg
    else:
        assert isinstance(cfg, StationConfig)
        for role in ("current_source", "temperature", "stage"):  # whatever loads has finite limits
            for v in getattr(cfg, role).limits.model_dump().values():
                assert v is None or math.isfinite(v)


def test_round_trip_of_the_fuzzer_is_the_stock_station(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(dump_toml(BASE))
    assert load_station(path).model_dump(exclude={"source_path"}) == \
        load_station(DEFAULT_STATION).model_dump(exclude={"source_path"})


@pytest.mark.parametrize("line,key", [
    ("max_position = inf", "stage.limits.max_position"),
    ("max_temperature = nan", "temperature.limits.max_temperature"),
    ("max_current = -inf", "current_source.limits.max_current"),
])
def test_non_finite_limits_are_refused(tmp_path, line, key):
    name = line.split()[0]
    text = re.sub(rf"^{name} = \S+", line, DEFAULT_STATION.read_text(), count=1, flags=re.M)
    path = tmp_path / "station.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(key)) as err:
        load_station(path)
    assert "\n" not in str(err.value)


def test_bad_station_on_the_command_line_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"[station]\nname = \x00\xff\xfe")
    for argv in (["station", "check", "--station", str(path)], ["run", "vi", "--station", str(path), "--quiet"]):
        code, out, err = run_cli(argv)
        assert code == 2 and str(path) in one_line(err)


# ---------------------------------------------------------------- CLI arguments
TOKENS = st.sampled_from(["run", "runs", "resume", "station", "check", "sim", "serve", "analyze", "protocol", "vi",
                          "rt", "radial-field", "--set", "--station", "--data-dir", "--quiet", "--sample",
                          "--field-model", "--seed", "--json", "--kind", "--status", "--since", "--protocol",
                          "--steps", "--base-port", "--speedup", "-v", "Pb", "Xx", "bean", "nan", "-1", "0", "=",
                          "vi.bogus=1", "current_max=700", "settle=nan", "protocol.scan=maybe", "\x00", "é", ""])


@FUZZ
@given(argv=st.lists(TOKENS | st.text(max_size=6), max_size=6))
def test_random_command_lines_never_give_a_traceback(tmp_path, monkeypatch, argv):
    import labctl.cli as cli
    import labctl.cli_run as cli_run

    monkeypatch.setattr(cli_run, "_execute", lambda *a, **k: 0)  # a valid run would start: not here
    monkeypatch.setattr(cli, "_sim_serve", lambda args: 0)  # nor a server
    import labctl.service.cli as service_cli

    monkeypatch.setattr(service_cli, "_serve", lambda args: 0)  # nor the station service (labctl serve)
    monkeypatch.setattr(cli, "_station_check", lambda args: 0)
    argv = [a.replace("DATA", str(tmp_path)) for a in argv]
    if "--data-dir" not in argv:
        argv += ["--data-dir", str(tmp_path)] if argv[:1] in (["run"], ["runs"], ["resume"]) else []
    code, out, err = run_cli(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        one_line(err)


def test_cli_subprocess_bad_argument_has_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "labctl", "run", "vi", "--set", "averages=2.5", "--data-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 2
    assert "averages='2.5' is invalid (allowed 1 to 100)" in one_line(res.stderr)


# ------------------------------------------------------------------- data files
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
SAMPLES = sorted(p for p in EXAMPLES.glob("*.csv"))
MALICIOUS = ["<os.system>", "<subprocess.Popen>", "<builtins.eval>", "<this.s>", "<antigravity.fly>",
             "<http.server.HTTPServer>", "<os.system('true')>", "<__import__('os').system>", "<>", "<.>",
             "<procedures.rt.ResistanceVsTemperature; import os>"]
CANARIES = ("this", "antigravity", "http.server")


class ImportSpy:
    """Records every import request while a file is loaded; os.system and Popen are disarmed."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, tuple]] = []
        real_import, real_import_module = builtins.__import__, importlib.import_module

        def spy_import(name, globals=None, locals=None, fromlist=(), level=0):
            self.calls.append((name, tuple(fromlist or ())))
            return real_import(name, globals, locals, fromlist, level)

        def spy_import_module(name, package=None):
            self.calls.append(("import_module:" + name, ()))
            return real_import_module(name, package)

        self.ran: list[str] = []
        monkeypatch.setattr(builtins, "__import__", spy_import)
        monkeypatch.setattr(importlib, "import_module", spy_import_module)
        monkeypatch.setattr(os, "system", lambda *a: self.ran.append(f"os.system{a}") or 0)
        monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: self.ran.append(f"Popen{a}"))

    def assert_clean(self):
        assert not self.ran, self.ran
        bad = [c for c in self.calls
               if c[0].startswith("import_module:")
               or c[0].split(".")[0] in ("this", "antigravity", "http", "subprocess")
               or (c[0] in ("os", "builtins") and {"system", "eval", "Popen"} & set(c[1]))]
        assert not bad, bad
        assert not [m for m in CANARIES if m in sys.modules]


@st.composite
def damaged_file(draw):
    text = draw(st.sampled_from(SAMPLES)).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    ops = draw(st.lists(st.sampled_from(["truncate", "delimiter", "cell", "nonfinite", "duplicate", "header",
                                         "bytes", "blank", "short"]), min_size=1, max_size=3))
    for op in ops:
        data_at = next((i for i, ln in enumerate(lines) if ln and not ln.startswith("#")), None)
        if data_at is None and op not in ("header", "bytes"):
            continue
        if op == "truncate":
            text = "".join(lines)
            text = text[:draw(st.integers(0, len(text)))]
            lines = text.splitlines(keepends=True)
        elif op == "delimiter":
            d = draw(st.sampled_from([";", "\t", " ", "|"]))
            k = draw(st.integers(data_at, len(lines) - 1))
            for i in range(k, len(lines)) if draw(st.booleans()) else [k]:
                if not lines[i].startswith("#"):
                    lines[i] = lines[i].replace(",", d)
        elif op in ("cell", "nonfinite") and len(lines) > data_at + 1:
            i = draw(st.integers(data_at + 1, len(lines) - 1))
            cells = lines[i].rstrip("\n").split(",")
            j = draw(st.integers(0, len(cells) - 1))
            cells[j] = draw(st.sampled_from(["abc", "", "1,2", "--", "1e400", "0x1F", '"q"', "é"])) if op == "cell" else \
                draw(st.sampled_from(["nan", "NaN", "inf", "-inf", "+9.9E37", "-9.9E37", "1e-400"]))
            lines[i] = ",".join(cells) + "\n"
        elif op == "duplicate":
            cols = lines[data_at].rstrip("\n").split(",")
            if len(cols) > 1:
                cols[draw(st.integers(1, len(cols) - 1))] = cols[0]
            lines[data_at] = ",".join(cols) + "\n"
        elif op == "header":
            evil = draw(st.sampled_from(MALICIOUS))
            if lines and lines[0].startswith("#Procedure:"):
                lines[0] = f"#Procedure: {evil}\n"
            else:
                lines.insert(0, f"#Procedure: {evil}\n")
        elif op == "bytes":
            text = "".join(lines).encode("utf-8", errors="surrogateescape")
            at = draw(st.integers(0, len(text)))
            raw = text[:at] + draw(st.binary(min_size=1, max_size=12)) + text[at:]
            lines = raw.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
        elif op == "blank":
            lines = [ln for ln in lines if ln.startswith("#")] if draw(st.booleans()) else []
        elif op == "short" and len(lines) > data_at + 1:
            i = draw(st.integers(data_at + 1, len(lines) - 1))
            lines[i] = lines[i].split(",")[0] + "\n"
    return "".join(lines).encode("utf-8", errors="surrogateescape")


@FUZZ
@given(raw=damaged_file(), kind=st.sampled_from([None, "rt", "vi", "radial-field", "radial-scan", "residual"]))
def test_damaged_data_file_loads_or_one_clear_message_never_code(tmp_path, monkeypatch, raw, kind):
    path = tmp_path / "data.csv"
    path.write_bytes(raw)
    with monkeypatch.context() as mp:
        spy = ImportSpy(mp)
        try:
            ds = load(path, kind=kind)
        except LoadError as e:
            msg = str(e)
            assert "\n" not in msg and str(path) in msg or msg.startswith("unknown kind"), msg
        else:
            assert ds.frame is not None  # a table (possibly with warnings about dropped rows)
        spy.assert_clean()


@pytest.mark.parametrize("evil", MALICIOUS)
def test_malicious_procedure_header_is_never_imported(tmp_path, monkeypatch, evil):
    text = SAMPLES[0].read_text().splitlines(keepends=True)
    text[0] = f"#Procedure: {evil}\n"
    path = tmp_path / "evil.csv"
    path.write_text("".join(text))
    with monkeypatch.context() as mp:
        spy = ImportSpy(mp)
        try:
            load(path)
        except LoadError as e:
            assert "\n" not in str(e)
        spy.assert_clean()


def test_large_file_fast_path_with_malicious_header_and_bad_cells(tmp_path, monkeypatch):
    """Files above 1 MB take the fast pandas path: the same promises hold there."""
    src = (EXAMPLES / "radial-scan_Pb_meissner.csv").read_text().splitlines(keepends=True)
    header = [ln for ln in src if ln.startswith("#")]
    body = [ln for ln in src if not ln.startswith("#")]
    rows = body[1:]
    big = body[:1] + rows * (1_200_000 // max(1, sum(map(len, rows))) + 1)
    big[5] = ",".join(["nan"] * len(big[5].split(","))) + "\n"
    big[7] = big[7].replace(",", ",abc,", 1)
    header[0] = "#Procedure: <os.system>\n"
    path = tmp_path / "big.csv"
    path.write_text("".join(header + big))
    assert path.stat().st_size > 1 << 20
    with monkeypatch.context() as mp:
        spy = ImportSpy(mp)
        try:
            load(path)
        except LoadError as e:
            assert "\n" not in str(e) and str(path) in str(e)
        spy.assert_clean()
