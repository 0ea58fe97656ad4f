"""Wording shared by every place that shows analysis results (CLI summary, run summary,
report, GUI), so that a ratio's status reads the same everywhere."""
from __future__ import annotations

import math


def _fmt_pm(value: float, err: float) -> str:
    if err is None or not math.isfinite(err) or err <= 0:
        return f"{value:.4g}"
    digits = min(9, max(0, 1 - math.floor(math.log10(err))))
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def ratio_text(entry: dict | None, short: bool = False) -> str:
    """'1.414 ± 0.007', '> 12.3 (B1 consistent with zero)', 'undefined (reason)';
    ``short`` (table cells) leaves out the parenthesis."""
    if not entry:
        return "n/a"
    status = entry.get("status")
    if status == "ok" and entry.get("value") is not None:
        return _fmt_pm(float(entry["value"]), entry.get("err"))
    if status == "bound" and entry.get("value") is not None:
        return f"> {entry['value']:.3g}" + ("" if short else " (B1 consistent with zero)")
    if short:
        return "undefined"
    return f"undefined ({entry.get('reason') or 'B1 and Bk consistent with zero'})"


def ratio_short(entry: dict | None) -> str:
    """A compact form for table cells: '1.414 ± 0.007', '> 12.3', 'undefined'."""
    return ratio_text(entry, short=True)


def noise_text(result: dict) -> str | None:
    """One line on the radial noise model, or None."""
    nz = result.get("noise") or {}
    if result.get("refused"):
        return "noise: not estimable (one repeat, no per-row errors): no uncertainties, no verdict"
    model = nz.get("model")
    if not model:
        return None
    dof = nz.get("dof")
    dof_text = "known" if dof is None or (isinstance(dof, float) and not math.isfinite(dof)) else f"{dof} dof"
    what = {"constant": "pooled within-cell scatter", "a^2+(bB)^2": "pooled, sigma^2 = a^2 + (b B)^2",
            "instrument": "the instrument's own scatter ('Field std')"}.get(model, model)
    sigma = nz.get("sigma")
    text = f"noise: {what}" + (f", sigma = {sigma * 1e6:.3g} µT per repeat" if sigma else "") + f" ({dof_text})"
    if nz.get("floor_used"):
        text += f"; instrument floor used for {nz['floor_used']} cells"
    pos = result.get("position_err")
    if pos:
        text += f"; probe position ± {pos * 1e3:.3g} mm per radius (nuisance)"
    return text
