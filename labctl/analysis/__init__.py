"""Analysis of recorded runs and foreign data files (DESIGN.md sections 2, 5, 5a).

Entry points::

    from labctl.analysis import analyze, summary_text, load, load_run
    result = analyze("data/run-42")                 # a run folder: every step
    result = analyze("vi.txt", tap_spacing="12.89mm")
    print(summary_text(result))

Every result is a JSON-able dict in SI units with stable keys (docs/analysis.md).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from labctl.analysis.loading import (
    KINDS,
    REQUIRED,
    AnalysisError,
    Dataset,
    LoadError,
    Run,
    as_dataset,
    detect_kind,
    load,
    load_run,
)
from labctl.analysis.radial import analyze_radial_field
from labctl.analysis.residual import analyze_residual
from labctl.analysis.rt import analyze_rt
from labctl.analysis.scan import analyze_radial_scan
from labctl.analysis.vi import analyze_vi

__all__ = [
    "KINDS", "AnalysisError", "Dataset", "LoadError", "Run", "analyze", "analyze_dataset",
    "analyze_run", "detect_kind", "load", "load_run", "summary_text", "to_jsonable",
]

ANALYZERS = {
    "rt": analyze_rt,
    "vi": analyze_vi,
    "radial-field": analyze_radial_field,
    "radial-scan": analyze_radial_scan,
    "residual": analyze_residual,
}
LOAD_OPTIONS = ("mapping", "columns", "skip_rows", "delimiter")


def to_jsonable(obj):
    """numpy scalars/arrays -> Python, NaN/inf -> None, tuples -> lists, Path -> str."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def analyze_dataset(ds: Dataset, kind: str | None = None, **options) -> dict:
    """Analyse a loaded Dataset as ``kind`` (default: the kind found when loading)."""
    kind = kind or ds.kind or detect_kind(ds.frame)
    if kind not in ANALYZERS:
        raise AnalysisError(f"{ds.name}: cannot tell what kind of data this is; give --kind ({'|'.join(KINDS)})")
    missing = [c for c in REQUIRED[kind] if c not in ds.frame.columns]
    if missing:
        raise AnalysisError(
            f"{ds.name}: missing column(s) {', '.join(repr(c) for c in missing)} for {kind} data; "
            f"columns found: {', '.join(repr(c) for c in ds.frame.columns)}"
        )
    try:
        result = ANALYZERS[kind](ds, **options)
    except (LoadError, AnalysisError) as exc:
        if ds.path is not None and not str(exc).startswith(str(ds.path)) and ds.name not in str(exc):
            raise AnalysisError(f"{ds.path}: {exc}") from None
        raise
    except (ValueError, ArithmeticError, IndexError, KeyError, np.linalg.LinAlgError) as exc:
        raise AnalysisError(f"{ds.name}: {kind} analysis failed: {exc.__class__.__name__}: {exc}") from exc
    result["kind"] = kind
    result["source"] = str(ds.path) if ds.path else None
    result["procedure"] = ds.procedure
    result["warnings"] = list(ds.warnings) + list(result.pop("notes", []) or [])
    return to_jsonable(result)


def analyze_run(folder, **options) -> dict:
    """Analyse every step of a run folder: ``{'kind': 'run', 'path', 'steps': {file: result}}``.

    A step that cannot be loaded or analysed gets ``{'kind', 'error'}`` instead.
    """
    options.pop("kind", None)
    load_opts = {k: options.pop(k) for k in LOAD_OPTIONS if k in options}
    run = load_run(folder, **load_opts)
    steps = {}
    for name, item in run.steps:
        if isinstance(item, LoadError):
            steps[name] = {"kind": None, "error": str(item)}
            continue
        try:
            steps[name] = analyze_dataset(item, **options)
        except (LoadError, AnalysisError) as exc:
            steps[name] = {"kind": item.kind, "error": str(exc)}
    return to_jsonable({"kind": "run", "path": str(run.path), "steps": steps, "warnings": run.warnings})


def analyze(dataset_or_path, kind: str | None = None, **options) -> dict:
    """Analyse a Dataset, a DataFrame (SI columns), a data file or a run folder.

    ``kind``: rt | vi | radial-field | radial-scan | residual (default: from the
    procedure name, the step file name, or the columns).  Loading options:
    ``mapping``, ``columns``, ``skip_rows``, ``delimiter``; analysis options:
    ``tap_spacing`` (m or '12.89mm'), ``ec``, ``bootstrap``, ``seed``,
    ``sample_radius`` (m or '10mm'), ``n_mc``, ``alpha``.
    """
    if kind is not None and kind not in KINDS:
        raise AnalysisError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if "sample_radius" in options and options["sample_radius"] is not None:
        from labctl.analysis.units import UnitError, parse_quantity

        try:
            options["sample_radius"] = parse_quantity(options["sample_radius"], "length")
        except UnitError as exc:
            raise AnalysisError(f"--sample-radius: {exc}") from None
    if isinstance(dataset_or_path, (str, Path)) and Path(dataset_or_path).is_dir():
        return analyze_run(dataset_or_path, **options)
    load_opts = {k: options.pop(k) for k in LOAD_OPTIONS if k in options}
    ds = as_dataset(dataset_or_path, kind=kind, **load_opts)
    return analyze_dataset(ds, kind=kind, **options)


# ---------------------------------------------------------------------------
# human-readable summary
# ---------------------------------------------------------------------------
_PREFIX = [(1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")]


def q(value, unit: str, digits: int = 4, err=None, prefix: bool = True) -> str:
    """'0.000594', 'ohm' -> '594 µohm'; with err: '74.39 ± 0.02 A'; None -> 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    scale, p = 1.0, ""
    if prefix and unit and v != 0:
        for s, name in _PREFIX:
            if abs(v) >= s * 0.9999:
                scale, p = s, name
                break
        else:
            scale, p = _PREFIX[-1]
    if err is not None and isinstance(err, (int, float)) and math.isfinite(err) and err > 0:
        e = err / scale
        decimals = min(max(0, -math.floor(math.log10(e)) + 1), 12)
        e_text = f"{e:.{decimals}f}" if decimals else f"{float(f'{e:.2g}'):.0f}"
        text = f"{v / scale:.{decimals}f} ± {e_text}"
    else:
        text = f"{v / scale:.{digits}g}"
    return f"{text} {p}{unit}".rstrip()


def _rt_lines(r: dict) -> list[str]:
    lines = []
    sweeps = [(n, r[n]) for n in ("cooling", "warming", "sweep") if isinstance(r.get(n), dict)]
    if not sweeps:
        sweeps = [(r.get("sweep", "sweep"), r)]
    for name, s in sweeps:
        if s.get("tc_mid") is None and s.get("tc_onset") is None:
            lines.append(f"  {name}: {s.get('message', 'no transition')}")
            continue
        label = {"partial": " [PARTIAL: R does not reach zero]", "multi-step": " [multi-step]"}.get(
            s.get("transition"), "")
        lines.append(
            f"  {name}{label}: Tc onset = {q(s.get('tc_onset'), 'K', 5, prefix=False)}, "
            f"Tc mid = {q(s.get('tc_mid'), 'K', 5, prefix=False)}, "
            f"Tc zero = {q(s.get('tc_zero'), 'K', 5, prefix=False)}, "
            f"10-90 % width = {q(s.get('width_10_90'), 'K', 3, prefix=False)}, "
            f"R_n = {q(s.get('r_normal'), 'ohm')}"
        )
        if s.get("message") and "; " in s["message"]:
            lines.append(f"    ({s['message'].split('; ', 1)[1]})")
        elif s.get("transition") == "partial":
            lines.append(f"    ({s['message']})")
    if r.get("hysteresis_mid") is not None:
        lines.append(f"  warming - cooling (Tc mid) = {q(r['hysteresis_mid'], 'K', 3, prefix=False)}")
    return lines


def _vi_lines(r: dict) -> list[str]:
    lines = [
        (f"  criterion Ec = {q(r.get('ec'), 'V/m', 3, prefix=False)} over taps "
         f"{q(r.get('tap_spacing'), 'm')}: Vc = {q(r.get('criterion_voltage'), 'V')}")
    ]
    if r.get("ic") is None:
        lines.append(f"  {r.get('message', 'no Ic')}")
        return lines
    lines.append(f"  Ic (criterion crossing) = {q(r['ic'], 'A', 5, r.get('ic_err'), prefix=False)}"
                 + (f" (bootstrap ± {q(r['ic_err_bootstrap'], 'A', 2, prefix=False)})"
                    if r.get("ic_err_bootstrap") is not None else ""))
    if r.get("n") is not None:
        win = (r.get("n_window") or {}).get("text", "")
        lines.append(f"  n = {r['n']:.4g} ± {r.get('n_err') or float('nan'):.2g} (dimensionless), "
                     f"from the E window {win}")
    if r.get("ic_fit") is not None:
        lines.append(f"  joint fit (background + power law, {q(r.get('fit_range', [None])[0], 'A', 4, prefix=False)} – "
                     f"{q(r.get('fit_range', [None, None])[1], 'A', 4, prefix=False)}): "
                     f"Ic = {q(r['ic_fit'], 'A', 5, r.get('ic_fit_err'), prefix=False)}, "
                     f"n = {r['n_fit']:.4g} ± {r.get('n_fit_err') or float('nan'):.2g}")
    if r.get("background"):
        bg = r["background"]
        lines.append(f"  background: {q(bg['offset'], 'V')} + {q(bg['slope'], 'V/A')} × I; "
                     f"noise {q(r.get('noise'), 'V', 2)}")
    if r.get("applied_field") is not None:
        lines.append(f"  applied field (from the file) = {q(r['applied_field'], 'T', 3, prefix=False)}")
    return lines


def _ratio_text(entry: dict) -> str:
    from labctl.analysis.text import ratio_text

    return ratio_text(entry)


def _radial_lines(r: dict) -> list[str]:
    lines = []
    if r.get("control"):
        lines.append("  normal-state control (expected: uniform, ratios √2 and 2)")
    radii = ", ".join(q(x, "m", 4) for x in r.get("radii", []))
    lines.append(f"  radii: {radii}; sample radius R = {q(r.get('sample_radius'), 'm')}; "
                 f"offsets removed by: {r.get('offset_method')}")
    from labctl.analysis.text import noise_text

    nt = noise_text(r)
    if nt:
        lines.append(f"  {nt}")
    if r.get("temperature") is not None:
        lines.append(f"  temperature = {q(r['temperature'], 'K', 4, prefix=False)}")
    rat = r.get("ratios", {})
    lin = r.get("linearity") or {}
    dep = (f" — NOT a constant: the shape changes with current (p = {lin['p_value']:.2g})"
           if lin.get("consistent") is False else "")
    lines.append(f"  pooled (field / current): B2/B1 = {_ratio_text(rat.get('B2/B1'))}, "
                 f"B3/B1 = {_ratio_text(rat.get('B3/B1'))}{dep}")
    for pc in r.get("per_current", []):
        lines.append(f"    I = {q(pc['current'], 'A', 4, prefix=False)}: "
                     + ", ".join(f"B({q(rr, 'm', 3)}) = {q(b, 'T', 4, e)}"
                                 for rr, b, e in zip(pc["radii"], pc["fields"], pc["errs"]))
                     + f"; B2/B1 = {_ratio_text(pc.get('B2/B1'))}, B3/B1 = {_ratio_text(pc.get('B3/B1'))}")
    for key in ("B2/B1", "B3/B1"):
        if (rat.get(key) or {}).get("reason", "").startswith("denominator significant only"):
            lines.append(f"  pooled {key}: {rat[key]['reason']}")
    ex = r.get("exponent") or {}
    if ex.get("value") is not None:
        lines.append(f"  exponent n (B ∝ r^n) = {ex['value']:.4g} ± {ex['err']:.2g} (dimensionless)")
    else:
        lines.append(f"  exponent n: {ex.get('message', 'n/a')}")
    lines.append("  models (best first):")
    for m in r.get("models", []):
        ps = []
        for key, e in m["params"].items():
            unit = e.get("unit", "")
            if e.get("at_bound"):
                ps.append(f"{key} = {q(e['value'], unit, 3)} (at the end of its fit range)")
            elif e.get("upper_limit_95") is not None:
                ps.append(f"{key} < {q(e['upper_limit_95'], unit, 3)} (95 %)")
            elif e.get("lower_limit_95") is not None:
                ps.append(f"{key} > {q(e['lower_limit_95'], unit, 3)} (95 %)")
            else:
                ps.append(f"{key} = {q(e['value'], unit, 5, e.get('err'), prefix=bool(unit))}")
        lines.append(f"    {m['name']:<12} chi2 = {m['chi2']:.4g} (dof {m['dof']}), p = "
                     f"{m['p_value'] if m['p_value'] is None else format(m['p_value'], '.3g')}, "
                     f"AIC = {m['aic']:.4g}, BIC = {m['bic']:.4g}; " + ", ".join(ps))
    lines.append(f"  verdict: {r.get('verdict')}")
    oc = r.get("outer_check") or {}
    if oc.get("message"):
        lines.append(f"  outer check{' [FLAGGED]' if oc.get('flag') else ''}: {oc['message']}")
    return lines


def _scan_lines(r: dict) -> list[str]:
    lines = []
    if r.get("current") is not None:
        lines.append(f"  current = {q(r['current'], 'A', 4, prefix=False)}")
    lines.append(f"  J: {r.get('method', 'bin averages')}")
    lines.append("  bin (mm)            B at outer edge (T)   mean J (A/m²)")
    inner = r.get("j_r_inner") or [None] * len(r.get("radius", []))
    for ri, rr, b, j, e in zip(inner, r.get("radius", []), r.get("field", []), r.get("j", []), r.get("j_err", [])):
        lo = f"{ri * 1e3:7.4g}" if ri is not None else "      ?"
        lines.append(f"  {lo} – {rr * 1e3:7.4g}   {b:12.5g}        {j:12.5g} ± {e if e is not None else float('nan'):.2g}")
    if r.get("i_enclosed_outer_ratio") is not None:
        lines.append(f"  enclosed current at the outermost radius / I = {r['i_enclosed_outer_ratio']:.4g}")
    return lines


def _residual_lines(r: dict) -> list[str]:
    dof = r.get("noise_dof")
    return [
        (f"  slope dV/dI = {q(r.get('slope'), 'V/A', 4, r.get('slope_err'))}, "
         f"one-sided p (decrease) = {_num(r.get('p_value'))}, two-sided p = {_num(r.get('p_two_sided'))}, "
         f"Spearman rho = {_num(r.get('spearman_rho'))} (p = {_num(r.get('spearman_p'))})"),
        f"  noise: {r.get('noise')} ({'known' if dof is None else f'{dof} dof'})",
        f"  {r.get('verdict')}",
    ]


def _num(x, fmt: str = ".3g") -> str:
    return "n/a" if x is None else format(x, fmt)


_TITLES = {"rt": "R(T)", "vi": "V-I", "radial-field": "radial field", "radial-scan": "radial scan",
           "residual": "residual voltage"}


def summary_text(result: dict) -> str:
    """A human-readable summary of an ``analyze`` result, units on every number."""
    if result.get("kind") == "run":
        parts = [f"run {result.get('path')}"]
        for name, step in result.get("steps", {}).items():
            parts.append(f"\n== {name} ==")
            parts.append(summary_text(step))
        return "\n".join(parts)
    if result.get("error"):
        return f"error: {result['error']}"
    kind = result.get("kind")
    lines = [f"{_TITLES.get(kind, kind)}" + (f" — {result['source']}" if result.get("source") else "")]
    body = {"rt": _rt_lines, "vi": _vi_lines, "radial-field": _radial_lines, "radial-scan": _scan_lines,
            "residual": _residual_lines}.get(kind)
    if body:
        lines += body(result)
    for w in result.get("warnings", []) or []:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
