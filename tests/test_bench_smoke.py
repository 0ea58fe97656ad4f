"""`labctl bench --quick` runs and writes its markdown (no timing assertions), and
the loader's fast path for large tables, which the loading benchmark measures,
gives exactly what the general path gives."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import bench
from labctl.analysis import loading
from labctl.cli import main


def test_bench_quick_writes_markdown(tmp_path, capsys):
    out = tmp_path / "bench.md"
    rc = main(["bench", "pipeline", "loading", "transports", "--quick", "--output", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert "Machine:" in text and "--quick" in text and "Total wall time of the suite" in text
    for section in ("## Targets", "## pipeline", "## loading", "## transports"):
        assert section in text
    for row in ("ours: Runner.run_step", "pymeasure: Worker + Results/Recorder", "ratio ours / pymeasure",
                "ours: labctl.analysis.load", "pymeasure: Results.load(path).data", "stock LakeShore425.field",
                "pipeline: ours ≥ pymeasure", "full suite < 5 min"):
        assert row in text, row
    assert "FAILED" not in text
    pipeline = [ln for ln in text.splitlines() if ln.startswith("| ratio ours / pymeasure (rows/s)")]
    assert len(pipeline) == 1 and float(pipeline[0].split("|")[2]) > 0


def test_unknown_suite_is_bad_input(capsys):
    assert main(["bench", "nope", "--quick", "--output", ""]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_plot_suite_without_its_module_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "labctl.gui.benchplot", None)  # import fails as if not written
    rows = bench.suite_plot(bench.Context(quick=True))
    assert len(rows) == 1 and rows[0]["median"] is None and "not available" in rows[0]["note"]
    targets = bench.assess({"plot": rows}, 1.0, quick=True, complete=False)
    plot = next(t for t in targets if t.name.startswith("plot"))
    assert plot.met is None and "not available" in plot.reason
    md = bench.render({"plot": rows}, targets, 1.0, {"plot": 0.1}, quick=True)
    assert "| live plot redraw" in md and "not assessed" in md


def test_targets_report_reasons():
    rows = {"pipeline": [
        {"what": "ours, per row", "unit": "µs/row", "median": 30.0, "min": 29.0, "max": 31.0, "n": 3},
        {"what": "pymeasure, per row", "unit": "µs/row", "median": 20.0, "min": 19.0, "max": 21.0, "n": 3},
        {"what": "ratio", "unit": "×", "median": 0.67, "min": 0.6, "max": 0.7, "n": 3, "key": "ratio"}],
        "plot": [{"what": "ours (labctl live curve), 1000000 points", "unit": "ms", "median": 25.0, "min": 20.0,
                  "max": 30.0, "n": 5}]}
    targets = {t.name.split(":")[0]: t for t in bench.assess(rows, 400.0, quick=False, complete=True)}
    assert targets["pipeline"].met is False and "30.0 µs/row" in targets["pipeline"].reason
    assert targets["plot"].met is False and "40 frames/s" in targets["plot"].figure
    assert targets["full suite < 5 min"].met is False and targets["full suite < 5 min"].reason


# ------------------------------------------------ loading: fast path == general path
_TOKENS = ["nan", "NaN", "inf", "-inf", "", "abc", "True", "1e400", "9.9E37", " 1.5", "1.5 ", '"2"', "#x", "-0",
           "007", "1_000", "0x10", "µ", "1,5", "None", "NA", "+.5", "1e", "18446744073709551616"]
_PERTURB = st.tuples(st.sampled_from(["cell", "blank", "comment", "extra", "short", "trailing", "tab"]),
                     st.integers(0, 10_000), st.sampled_from(_TOKENS))


def _make_file(path, header, names, rows, perturbations, crlf, bom, text_column):
    lines = []
    if header == "pymeasure":
        lines += ["#Procedure: <procedures.vi.VISweep>", "#Parameters:", "#\tTap spacing: 0.01 m", "#Data:"]
    elif header == "preamble":
        lines += ["Sample: Nb µ-bridge", "Operator, A. N. Other"]
    if header != "none":
        lines.append(",".join(names))
    data = [[repr(float(x)) for x in row] for row in rows]
    if text_column:
        for k, r in enumerate(data):
            r[-1] = ("up", "down")[k % 2]
    for what, at, token in perturbations:
        k = at % len(data)
        if what == "cell":
            data[k][at % len(data[k])] = token  # the row may have been shortened already
        elif what == "extra":
            data[k] = data[k] + ["1.0"]
        elif what == "short":
            data[k] = data[k][:-1]
        elif what == "trailing":
            data[k] = data[k] + [""]
        elif what == "tab":
            data[k][0] = data[k][0] + "\t"
    body = [",".join(r) for r in data]
    for what, at, token in perturbations:
        if what == "blank":
            body.insert(at % len(body), "")
        elif what == "comment":
            body.insert(at % len(body), f"# EVENT {{\"event\": \"quench\", \"x\": \"{token}\"}}")
    text = ("\r\n" if crlf else "\n").join(lines + body) + "\n"
    raw = text.encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)


def _outcome(path, fast: bool, **options):
    loading.FAST_TABLES = fast
    try:
        ds = loading.load(path, **options)
    except loading.LoadError as e:
        return ("error", str(e))
    finally:
        loading.FAST_TABLES = True
    return ("ok", ds)


def _same(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1] == b[1]
        return
    x, y = a[1], b[1]
    assert list(x.frame.columns) == list(y.frame.columns)
    assert [str(t) for t in x.frame.dtypes] == [str(t) for t in y.frame.dtypes]
    assert x.frame.equals(y.frame)
    assert (x.kind, x.procedure, x.parameters, x.warnings, x.source_columns, x.control) == \
           (y.kind, y.procedure, y.parameters, y.warnings, y.source_columns, y.control)


@pytest.fixture
def small_fast_path(monkeypatch):
    """Thresholds small enough for files of ~1500 lines (the logic is the same)."""
    monkeypatch.setattr(loading, "_FAST_MIN_CHARS", 0)
    monkeypatch.setattr(loading, "_FAST_HEAD", 32 * 1024)
    monkeypatch.setattr(loading, "_FAST_TAIL", 8 * 1024)
    calls = []
    original = loading._fast_table

    def spy(*args, **kw):
        result = original(*args, **kw)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(loading, "_fast_table", spy)
    return calls


def test_fast_path_is_taken_for_a_clean_file_and_matches(tmp_path, small_fast_path):
    p = tmp_path / "big.csv"
    rows = np.random.default_rng(0).normal(size=(1500, 2))
    _make_file(p, "pymeasure", ["Current (A)", "Voltage (uV)"], rows, [], crlf=False, bom=False, text_column=False)
    fast, slow = _outcome(p, True), _outcome(p, False)
    assert small_fast_path[0] is True
    _same(fast, slow)
    assert fast[1].kind == "vi" and len(fast[1].frame) == 1500


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(["pymeasure", "preamble", "plain", "none"]),
       names=st.sampled_from([["Current (A)", "Voltage (uV)"], ["Temperature (K)", "Resistance (mohm)", "Current (A)"],
                              ["Radius (mm)", "Field (G)", "Current (A)", "Repeat"]]),
       perturbations=st.lists(_PERTURB, max_size=4), crlf=st.booleans(), bom=st.booleans(),
       text_column=st.booleans(), seed=st.integers(0, 5),
       options=st.sampled_from([{}, {"delimiter": ","}, {"kind": "vi"}, {"columns": None}]))
def test_fast_path_matches_general_path(tmp_path, small_fast_path, header, names, perturbations, crlf, bom,
                                        text_column, seed, options):
    p = tmp_path / "fuzz.csv"
    rows = np.random.default_rng(seed).normal(size=(1500, len(names))) * 10.0 ** np.arange(len(names))
    _make_file(p, header, names, rows, perturbations, crlf, bom, text_column)
    if "columns" in options:
        options = {"columns": ",".join(names)} if header == "none" else {}
    _same(_outcome(p, True, **options), _outcome(p, False, **options))
