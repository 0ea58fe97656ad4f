"""The short summary printed at the end of a run: Tc, Ic, the field table, the ratios."""
from __future__ import annotations

import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table


def _pm(value, err, scale=1.0, fmt=".4g") -> str:
    """value ± err, rounded to the uncertainty's second significant digit."""
    if value is None or not math.isfinite(value):
        return "n/a"
    v = value * scale
    if err is None or not math.isfinite(err) or err <= 0:
        return f"{v:{fmt}}"
    e = err * scale
    digits = min(9, max(0, 1 - math.floor(math.log10(e))))
    return f"{v:.{digits}f} ± {e:.{digits}f}"


def _ratio(r: dict | None) -> str:
    from labctl.analysis.text import ratio_short

    return ratio_short(r)


def summarize(state: dict) -> dict:
    """Analysis of each step of a finished run (errors kept as text, never raised)."""
    from labctl.analysis import analyze

    out = {}
    run_dir = Path(state["path"])
    for step, info in state.get("steps", {}).items():
        path = run_dir / info["file"]
        if not path.exists() or not info.get("rows"):
            continue
        kind = "radial-field" if step == "normal-control" else step
        try:
            out[step] = analyze(str(path), kind=kind)
        except Exception as e:  # the summary must never hide the run's own outcome
            out[step] = {"error": str(e)}
    return out


def print_summary(state: dict, console) -> dict:
    results = summarize(state)
    colour = "green" if state["status"] == "completed" else "red"
    reason = f" ({escape(state['reason'])})" if state.get("reason") else ""  # DANGER / UNVERIFIED lines in red too
    console.print(f"\nrun [bold]{state['id']}[/bold]: [{colour}]{state['status']}{reason}[/{colour}]")
    console.print(f"data: {state['path']}")
    rt = results.get("rt")
    if rt and "error" not in rt:
        label = {"partial": " — PARTIAL drop, R does not reach zero", "multi-step": " — multi-step"}.get(
            rt.get("transition"), "")
        console.print(f"Tc (R(T), {'cooling' if rt.get('cooling') else 'single sweep'}): "
                      f"onset {_pm(rt.get('tc_onset'), None, fmt='.4g')} K, midpoint {_pm(rt.get('tc_mid'), None, fmt='.4g')} K, "
                      f"zero {_pm(rt.get('tc_zero'), None, fmt='.4g')} K, 10–90 % width {_pm(rt.get('width_10_90'), None)} K"
                      + label)
    vi = results.get("vi")
    if vi and "error" not in vi:
        win = (vi.get("n_window") or {}).get("text")
        console.print(f"Ic (Ec = 1 µV/cm over {_pm(vi.get('tap_spacing'), None, 1e3)} mm, criterion crossing): "
                      f"{_pm(vi.get('ic'), vi.get('ic_err'), fmt='.4g')} A, n = {_pm(vi.get('n'), vi.get('n_err'))}"
                      + (f" (E window {win})" if win else ""))
    for step in ("normal-control", "radial-field"):
        res = results.get(step)
        if not res or "error" in res:
            if res:
                console.print(f"{step}: analysis failed: {res['error']}")
            continue
        table = Table(title=f"{step}: field (mT, offset removed, mean ± s.e.)", show_lines=False)
        per = res.get("per_current", [])
        radii = sorted({r for p in per for r in (p.get("radii") or [])})
        table.add_column("I (A)", justify="right")
        for r in radii:
            table.add_column(f"B({r * 1e3:g} mm)", justify="right")
        table.add_column("B2/B1", justify="right")
        table.add_column("B3/B1", justify="right")
        for p in per:
            fields = dict(zip(p.get("radii") or [], zip(p.get("fields") or [], p.get("errs") or [])))
            cells = [f"{p.get('current', 0):.1f}"]
            for r in radii:
                b = fields.get(r)
                cells.append(_pm(b[0], b[1], 1e3) if b else "")
            cells += [_ratio(p.get("B2/B1")), _ratio(p.get("B3/B1"))]
            table.add_row(*cells)
        console.print(table)
        from labctl.analysis.text import noise_text, ratio_text

        ratios = res.get("ratios", {})
        exp = res.get("exponent") or {}
        console.print(f"pooled: B2/B1 = {ratio_text(ratios.get('B2/B1'))}, B3/B1 = {ratio_text(ratios.get('B3/B1'))}; "
                      f"B ∝ r^n with n = {_pm(exp.get('value'), exp.get('err'))}; "
                      f"best model: {res.get('best_model') or 'none (no verdict)'}")
        nt = noise_text(res)
        if nt:
            console.print(escape(nt))
        oc = res.get("outer_check") or {}
        outer = oc.get("per_current") or []
        if outer:
            worst = max(outer, key=lambda o: abs(o["ratio"] - 1))
            console.print(f"outer reading vs µ0I/2πR: measured/expected = {worst['ratio']:.4f} ± "
                          f"{worst['ratio_err']:.4f} (worst of {len(outer)} currents)"
                          + (" — FLAGGED: " + oc["message"].split(" — ", 1)[-1] if oc.get("flag") else ""))
        if res.get("verdict"):
            console.print(f"verdict: {res['verdict']}")
    res = results.get("residual")
    if res and "error" not in res and res.get("verdict"):
        console.print(f"residual voltage: {res['verdict']}")
    for step, res in results.items():
        for w in (res or {}).get("warnings", []) or []:
            console.print(f"[yellow]{escape(f'{step}: warning: {w}')}[/yellow]")
    return results
