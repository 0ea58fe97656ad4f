"""Seeded Monte Carlo calibration of the analysis against known truth (DESIGN.md section 10).

The data come from tests/known_truth.py, which shares no code with the analysis.  Each
figure is a rate over a few dozen datasets, so the per-case assertions allow the binomial
scatter that sample size implies (3 sigma); the pooled figures are held to the targets of
issue 14 ("Done when").  The default sizes keep the whole module to a few seconds; a
larger run for the documentation::

    LABCTL_CALIBRATION_N=300 .venv/bin/python tests/test_calibration.py     # prints the table

(``LABCTL_CALIBRATION_N`` also scales the pytest run.)
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from known_truth import TRUE_RATIOS, radial_dataset, residual_dataset, vi_dataset  # noqa: E402

from labctl.analysis import analyze  # noqa: E402
from labctl.analysis.loading import Dataset  # noqa: E402
from labctl.analysis.residual import analyze_residual_arrays  # noqa: E402
from labctl.analysis.vi import analyze_vi_arrays  # noqa: E402

N = int(os.environ.get("LABCTL_CALIBRATION_N", "0") or 0)
N_RADIAL = N or 40  # datasets per (format, truth)
N_MEISSNER = N or 30
N_VI = N or 50  # per n value
N_RESIDUAL = N or 100
FORMATS = ("foreign", "labctl")
VI_N = (5, 10, 20, 40)
ONE_SIGMA = 0.6827


def tol(p: float, n: int) -> float:
    """3 sigma binomial scatter of a rate p measured on n trials."""
    return 3 * math.sqrt(p * (1 - p) / n)


def radial_case(fmt: str, model: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    p05 = p003 = shape = 0
    cov_pooled, cov_pc, ok_zero, ratios_zero = [], [], 0, 0
    for _ in range(n):
        frame = radial_dataset(model, rng, fmt)
        res = analyze(Dataset(frame=frame, kind="radial-field"), models=(model,))
        m = res["models"][0]
        p05 += m["p_value"] is not None and m["p_value"] < 0.05
        p003 += m["p_value"] is not None and m["p_value"] < 0.003
        shape += res["linearity"]["consistent"] is False
        entries = [(res["ratios"], cov_pooled)] + [(pc, cov_pc) for pc in res["per_current"]]
        for holder, sink in entries:
            for key, k in (("B2/B1", 0), ("B3/B1", 1)):
                e = holder[key]
                if e["status"] == "bound" or e["status"] == "ok":
                    assert e["value"] > 0 or e["status"] == "ok", "a bound is never negative"
                if model in TRUE_RATIOS:
                    truth = TRUE_RATIOS[model][k]
                    sink.append(e["status"] == "ok" and e["interval"][0] <= truth <= e["interval"][1])
                else:
                    ratios_zero += 1
                    ok_zero += e["status"] == "ok"
    return {"n": n, "p05": p05 / n, "p003": p003 / n, "shape": shape / n,
            "cov_pooled": float(np.mean(cov_pooled)) if cov_pooled else None, "n_pooled": len(cov_pooled),
            "cov_per_current": float(np.mean(cov_pc)) if cov_pc else None, "n_per_current": len(cov_pc),
            "ok_zero": ok_zero / ratios_zero if ratios_zero else None, "n_zero": ratios_zero}


def vi_case(n_value: float, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    cov_ic, cov_n, pull_ic = [], [], []
    for _ in range(n):
        i, v, truth = vi_dataset(rng, n_value)
        r = analyze_vi_arrays(i, v, truth["tap"])
        cov_ic.append(abs(r["ic"] - truth["ic"]) <= r["ic_err"])
        cov_n.append(abs(r["n"] - n_value) <= r["n_err"])
        pull_ic.append((r["ic"] - truth["ic"]) / r["ic_err"])
    return {"n": n, "cov_ic": float(np.mean(cov_ic)), "cov_n": float(np.mean(cov_n)),
            "bias_ic": float(np.mean(pull_ic)), "bias_ic_err": float(np.std(pull_ic) / math.sqrt(n))}


def residual_case(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    false_dec = 0
    for _ in range(n):
        f = residual_dataset(rng, 0.0)
        r = analyze_residual_arrays(f["Current (A)"], f["Voltage (V)"], None, f["Polarity"])
        false_dec += r["decreasing"]
    return {"n": n, "false_decrease": false_dec / n}


@pytest.fixture(scope="module")
def radial():
    out = {}
    for f, fmt in enumerate(FORMATS):
        for m, model in enumerate(("uniform", "linear-j", "meissner")):
            n = N_MEISSNER if model == "meissner" else N_RADIAL
            out[fmt, model] = radial_case(fmt, model, n, seed=1000 + 10 * f + m)
    return out


@pytest.fixture(scope="module")
def vi():
    return {nv: vi_case(nv, N_VI, seed=2000 + nv) for nv in VI_N}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["uniform", "linear-j", "meissner"])
def test_true_model_p_values_are_calibrated(radial, fmt, model):
    c = radial[fmt, model]
    assert c["p05"] <= 0.05 + tol(0.05, c["n"])
    assert c["p003"] <= 0.003 + tol(0.003, c["n"])


def test_true_model_rejection_rate_pooled(radial):
    n = sum(c["n"] for c in radial.values())
    rate = sum(c["p05"] * c["n"] for c in radial.values()) / n
    assert rate <= 0.10


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["uniform", "linear-j", "meissner"])
def test_no_false_shape_change(radial, fmt, model):
    c = radial[fmt, model]
    assert c["shape"] <= 0.06


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["uniform", "linear-j"])
def test_ratio_one_sigma_coverage(radial, fmt, model):
    c = radial[fmt, model]
    # the ratios of one dataset share its probe offsets: count datasets (two ratios each), not ratios
    for key in ("cov_pooled", "cov_per_current"):
        assert abs(c[key] - ONE_SIGMA) <= max(0.10, tol(ONE_SIGMA, 2 * c["n"])), (key, c[key])


def test_ratio_coverage_pooled_over_cases(radial):
    cases = [radial[f, m] for f in FORMATS for m in ("uniform", "linear-j")]
    for key, count in (("cov_pooled", "n_pooled"), ("cov_per_current", "n_per_current")):
        n = sum(c[count] for c in cases)
        cov = sum(c[key] * c[count] for c in cases) / n
        assert 0.58 <= cov <= 0.78, (key, cov)


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_denominator_is_never_ok(radial, fmt):
    c = radial[fmt, "meissner"]
    assert c["ok_zero"] <= 0.06


@pytest.mark.parametrize("n_value", VI_N)
def test_vi_ic_and_n_coverage(vi, n_value):
    c = vi[n_value]
    for key in ("cov_ic", "cov_n"):
        assert abs(c[key] - ONE_SIGMA) <= max(0.10, tol(ONE_SIGMA, c["n"])), (key, c[key])


def test_vi_no_bias_at_n5(vi):
    c = vi[5]
    assert abs(c["bias_ic"]) < 0.5  # mean pull: far below one sigma


def test_residual_trend_false_decrease_rate():
    c = residual_case(N_RESIDUAL, seed=3000)
    assert c["false_decrease"] <= 0.05 + tol(0.05, c["n"])


# ---------------------------------------------------------------------------
# the documentation table (a larger run)
# ---------------------------------------------------------------------------
def table(n: int) -> str:
    lines = ["| format | truth | datasets | true model p < 0.05 | p < 0.003 | false \"shape changes\" | "
             "pooled ratio 1σ coverage | per-current ratio 1σ coverage | `ok` with B1 = 0 |",
             "|---|---|---|---|---|---|---|---|---|"]
    pct = lambda x: "—" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    for f, fmt in enumerate(FORMATS):
        for m, model in enumerate(("uniform", "linear-j", "meissner")):
            c = radial_case(fmt, model, n, seed=1000 + 10 * f + m)
            lines.append(f"| {fmt} | {model} | {c['n']} | {pct(c['p05'])} | {pct(c['p003'])} | {pct(c['shape'])} | "
                         f"{pct(c['cov_pooled'])} | {pct(c['cov_per_current'])} | {pct(c['ok_zero'])} |")
    lines += ["", "| V–I n | datasets | Ic 1σ coverage | n 1σ coverage | mean Ic pull (bias / σ) |",
              "|---|---|---|---|---|"]
    for nv in VI_N:
        c = vi_case(nv, n, seed=2000 + nv)
        lines.append(f"| {nv} | {c['n']} | {pct(c['cov_ic'])} | {pct(c['cov_n'])} | "
                     f"{c['bias_ic']:+.2f} ± {c['bias_ic_err']:.2f} |")
    c = residual_case(n, seed=3000)
    lines += ["", f"Residual-voltage trend, no true slope: false \"decrease\" (α = 0.05) in "
                  f"{pct(c['false_decrease'])} of {c['n']} datasets."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(int(sys.argv[1]) if len(sys.argv) > 1 else (N or 300)))
