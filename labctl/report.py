"""Run reports: ``labctl report RUN`` writes Markdown (or HTML) with PNG figures.

A report collects, for a run folder (or a single data file), the station
snapshot, the parameters of every step, the analysis results (Tc, Ic, the model
comparison, the verdicts) with a unit on every number, and one figure per
result: R(T) with the Tc marks per sweep, V-I on linear and log-log axes, B(r)
per current with every model's fitted curve, the ratios B2/B1, B3/B1 against
each model's prediction, J(r) with its band, the residual voltage with its
trend.  Steps that are missing or did not complete get one line instead.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no
display, no global backend switch), so a report can be made from the GUI's
process too.  Nothing named in a data file is imported (loading goes through
:func:`labctl.analysis.load`).

    from labctl.report import build_report
    path = build_report("data/runs/20250101-120000-protocol")          # .../report/report.md
"""
from __future__ import annotations

import base64
import html as _html
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from labctl.errors import ConfigError, LabctlError

DEFAULT_DATA_DIR = "data/runs"
DPI = 120
SIZE = (7.0, 4.5)  # one panel (inches)
WIDE = (11.0, 4.5)  # two panels side by side

STEP_KINDS = {"rt": "rt", "vi": "vi", "normal-control": "radial-field", "radial-field": "radial-field",
              "radial-scan": "radial-scan", "residual": "residual"}
STEP_TITLES = {
    "rt": "R(T): critical temperature",
    "vi": "V–I: critical current",
    "normal-control": "Normal-state control (T > Tc): B(r)",
    "radial-field": "Radial field B(r) below Tc",
    "radial-scan": "Radial scan: J(r)",
    "residual": "Residual voltage against current",
}
KIND_TITLES = {"rt": "R(T)", "vi": "V–I", "radial-field": "Radial field B(r)", "radial-scan": "Radial scan J(r)",
               "residual": "Residual voltage"}
MODEL_COLORS = {"uniform": "tab:blue", "linear-j": "tab:red", "meissner": "tab:green", "bean": "tab:purple",
                "intermediate": "tab:orange"}
SWEEP_COLORS = {"cooling": "tab:blue", "warming": "tab:red", "sweep": "black"}
PARAM_NAMES = {"k": "k", "lambda": "λ", "ic": "Ic", "hc": "Hc"}
RATIO_CAP = 50.0  # a predicted ratio above this is drawn as "→ ∞", never as a number on the axis
LOAD_OPTIONS = ("mapping", "columns", "skip_rows", "delimiter")


# ---------------------------------------------------------------------------
# numbers with units
# ---------------------------------------------------------------------------
def qu(value, unit: str = "", digits: int = 4, err=None, prefix: bool = True) -> str:
    """A number with its unit (SI prefixes, Ω for ohm); 'n/a' for None."""
    from labctl.analysis import q

    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = q(value, unit, digits, err=err, prefix=prefix)
    return text.replace("ohm", "Ω")


def qt(value, err=None, digits: int = 5) -> str:
    """A temperature in K, never with a prefix."""
    return qu(value, "K", digits, err=err, prefix=False)


def qa(value, err=None, digits: int = 5) -> str:
    """A current in A, never with a prefix."""
    return qu(value, "A", digits, err=err, prefix=False)


def num(value, fmt: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, fmt)


def ratio_text(entry: dict | None) -> str:
    from labctl.analysis.text import ratio_text as _text

    return _text(entry)


def param_text(key: str, p: dict) -> str:
    name = PARAM_NAMES.get(key, key)
    unit = p.get("unit") or ""
    if key == "k":
        return f"k = {qu(p.get('value'), '', 6, err=p.get('err'))} (calibration, dimensionless)"
    if p.get("at_bound"):
        text = f"{name} = {qu(p.get('value'), unit, 3)} (at the end of its fit range)"
    elif p.get("upper_limit_95") is not None:
        text = f"{name} < {qu(p['upper_limit_95'], unit, 3)} (95 %)"
    elif p.get("lower_limit_95") is not None:
        text = f"{name} > {qu(p['lower_limit_95'], unit, 3)} (95 %)"
    elif p.get("err") is not None:
        text = f"{name} = {qu(p.get('value'), unit, 4, err=p.get('err'))}"
    else:
        text = f"{name} = {qu(p.get('value'), unit, 3)}" + (f" ({p['note']})" if p.get("note") else "")
    if key == "hc" and p.get("silsbee_current") is not None:
        text += f" (Silsbee current 2πR·Hc = {qa(p['silsbee_current'], digits=4)})"
    return text


def model_param(model: dict) -> float | None:
    """The model's own fitted parameter (λ, Ic or Hc) in SI, or None."""
    for key in ("lambda", "ic", "hc"):
        if key in model.get("params", {}):
            return model["params"][key].get("value")
    return None


# ---------------------------------------------------------------------------
# the document: blocks rendered as Markdown or HTML
# ---------------------------------------------------------------------------
class Doc:
    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def quote(self, text: str) -> None:
        self.blocks.append(("quote", text))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: list[str], rows: list[list]) -> None:
        if rows:
            self.blocks.append(("table", list(header), [[str(c) for c in r] for r in rows]))

    def figure(self, filename: str, caption: str) -> None:
        self.blocks.append(("fig", filename, caption))

    # ------------------------------------------------------------ markdown
    def markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(b[1])
            elif kind == "quote":
                out.append("> " + b[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in b[1]))
            elif kind == "table":
                header, rows = b[1], b[2]
                cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
                lines = ["| " + " | ".join(cell(h) for h in header) + " |",
                         "|" + "|".join("---" for _ in header) + "|"]
                lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "fig":
                out.append(f"![{Path(b[1]).stem}]({b[1]})\n\n*{b[2]}*")
        return "\n\n".join(out) + "\n"

    # ---------------------------------------------------------------- html
    @staticmethod
    def _inline(text: str) -> str:
        s = _html.escape(text, quote=False)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        return s

    def html(self, folder: Path, embed: bool, title: str) -> str:
        parts = [
            "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_html.escape(title)}</title>",
            ("<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
            "color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0}"
            "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
            "th{background:#f2f2f2}img{max-width:100%;border:1px solid #ddd}"
            "blockquote{border-left:4px solid #88a;margin:.8em 0;padding:.2em 1em;background:#f6f6fb}"
            "figure{margin:1em 0}figcaption{font-style:italic;color:#555}code{background:#f3f3f3}</style>"),
            "</head><body>",
        ]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                parts.append(f"<h{b[1]}>{self._inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                parts.append(f"<p>{self._inline(b[1])}</p>")
            elif kind == "quote":
                parts.append(f"<blockquote>{self._inline(b[1])}</blockquote>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{self._inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "table":
                head = "".join(f"<th>{self._inline(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{self._inline(c)}</td>" for c in r) + "</tr>"
                               for r in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "fig":
                src = _html.escape(b[1])
                if embed:
                    data = base64.b64encode((folder / b[1]).read_bytes()).decode("ascii")
                    src = f"data:image/png;base64,{data}"
                parts.append(f'<figure><img src="{src}" alt="{_html.escape(b[2])}">'
                             f"<figcaption>{self._inline(b[2])}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# what is in the run
# ---------------------------------------------------------------------------
@dataclass
class Step:
    name: str  # step name (rt, vi, normal-control, ...) or the file's stem
    file: Path | None
    status: str  # completed, failed, aborted, interrupted, running, not run, recorded
    reason: str = ""
    rows: int | None = None
    parameters: dict = field(default_factory=dict)  # from parameters.json (attribute: value)
    kind: str | None = None
    dataset: object | None = None
    result: dict | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.status in ("completed", "recorded")


def resolve_run(run: str | Path, data_dir: str | Path | None = None) -> Path:
    """A run folder or data file path, a run id in the data dir, or 'latest'."""
    from labctl import datadir

    home = datadir.resolve(data_dir)
    found = datadir.find_run(run, home)
    if found is not None:
        return found
    raise ConfigError(f"no run folder or data file {str(run)!r} (looked in {home.describe()}); "
                      "list the runs with `labctl runs`")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect_steps(path: Path, state: dict | None) -> list[Step]:
    """The steps of a run folder (from parameters.json when present), or one data file."""
    from labctl.analysis.loading import step_kind_hint

    if path.is_file():
        return [Step(name=path.stem, file=path, status="recorded")]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".txt"))
    steps: list[Step] = []
    used: set[str] = set()
    if state:
        plan = (state.get("plan") or {}).get("steps") or list(state.get("steps", {}))
        options = (state.get("plan") or {}).get("options") or {}
        info_all = state.get("steps", {})
        for name in list(dict.fromkeys(list(plan) + list(info_all))):
            info = info_all.get(name)
            if info is None:
                skipped = name == "radial-scan" and str(options.get("scan", True)).lower() in ("false", "0", "no")
                steps.append(Step(name=name, file=None, status="not in the plan" if skipped else "not run",
                                  reason="protocol.scan = false" if skipped else
                                  f"the run ended before this step ({state.get('status', '?')}"
                                  + (f": {state['reason']}" if state.get("reason") else "") + ")"))
                continue
            f = path / info["file"] if info.get("file") else None
            if f is not None:
                used.add(f.name)
            steps.append(Step(name=name, file=f, status=info.get("status", "?"), reason=info.get("reason") or "",
                              rows=info.get("rows"), parameters=info.get("parameters") or {}))
    for f in files:
        if f.name in used or (state and not step_kind_hint(f.name)):
            continue
        steps.append(Step(name=step_kind_hint(f.name) or f.stem, file=f, status="recorded"))
    return steps


def analyse_steps(steps: list[Step], load_options: dict, analysis_options: dict, kind: str | None) -> None:
    from labctl.analysis import analyze_dataset, load
    from labctl.analysis.loading import step_kind_hint

    for st in steps:
        if st.file is None or not st.usable:
            continue
        if not st.file.exists():
            st.error = f"{st.file.name}: file missing"
            continue
        hint = step_kind_hint(st.file.name)
        want = kind or STEP_KINDS.get(st.name)
        try:
            ds = load(st.file, kind=want, kind_hint=hint, **load_options)
            st.dataset = ds
            st.kind = want or ds.kind
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                st.result = analyze_dataset(ds, kind=st.kind, **analysis_options)
        except LabctlError as exc:
            st.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one step's trouble must not stop the report
            st.error = f"{st.file.name}: analysis failed ({exc.__class__.__name__}: {exc})"


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------
def _figure(size=SIZE):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI)
    return path.name


def _scale(values, unit: str) -> tuple[float, str]:
    """(factor, label) so that values * factor read naturally: (1e3, 'mT')."""
    arr = np.abs(np.asarray([v for v in np.ravel(values) if v is not None and np.isfinite(v)], float))
    top = float(arr.max()) if arr.size else 1.0
    for factor, prefix in ((1e-6, "M"), (1e-3, "k"), (1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p")):
        if top * factor >= 0.999 or factor == 1e12:
            unit_text = "Ω" if unit == "ohm" else unit
            return factor, f"{prefix}{unit_text}"
    return 1.0, unit


def fig_rt(st: Step, out: Path, slug: str) -> str:
    from labctl.analysis.rt import split_sweeps

    f = st.dataset.frame
    t = f["Temperature (K)"].to_numpy(float)
    r = f["Resistance (ohm)"].to_numpy(float)
    res = st.result
    masks = split_sweeps(t, f["Direction"].to_numpy() if "Direction" in f else None,
                         f["Sweep"].to_numpy() if "Sweep" in f else None)
    sweeps = {name: res.get(name) or (res if name == res.get("sweep") else {}) for name in masks}
    has_tc = any((s or {}).get("tc_mid") is not None for s in sweeps.values())
    fig = _figure(WIDE if has_tc else SIZE)
    axes = fig.subplots(1, 2) if has_tc else [fig.subplots()]
    factor, runit = _scale(r, "ohm")
    for ax in axes:
        for name, m in masks.items():
            order = np.argsort(t[m]) if name == "sweep" else np.arange(m.sum())
            ax.plot(t[m][order], r[m][order] * factor, ".-", ms=3, lw=0.8, color=SWEEP_COLORS.get(name, "k"),
                    label=f"{name} ({int(m.sum())} points)")
        ax.set_xlabel("Temperature T (K)")
        ax.set_ylabel(f"Resistance R ({runit})")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"R(T), full sweep — {st.file.name}", fontsize=10)
    if has_tc:
        ax = axes[1]
        styles = {"tc_onset": ("--", "onset (90 % of Rn)"), "tc_mid": ("-", "midpoint (50 %)"),
                  "tc_zero": (":", "zero resistance")}
        lo, hi = [], []
        for name, s in sweeps.items():
            if not s or s.get("tc_mid") is None:
                continue
            for key, (ls, _label) in styles.items():
                if s.get(key) is not None:
                    ax.axvline(s[key], ls=ls, lw=1.2, color=SWEEP_COLORS.get(name, "k"), alpha=0.85)
            w = max(s.get("width_10_90") or 0.0, 1e-3)
            margin = max(5 * w, 0.004 * s["tc_mid"])
            lo.append(min(x for x in (s.get("tc_zero"), s["tc_mid"]) if x is not None) - margin)
            hi.append((s.get("tc_onset") or s["tc_mid"]) + margin)
        x0, x1 = min(lo), max(hi)
        ax.set_xlim(x0, x1)
        inside = (t >= x0) & (t <= x1)
        if inside.any():
            span = np.nanmax(r[inside]) - min(0.0, np.nanmin(r[inside]))
            ax.set_ylim(min(0.0, np.nanmin(r[inside])) * factor - 0.05 * span * factor,
                        np.nanmax(r[inside]) * factor + 0.08 * span * factor)
        ax.set_title("transition, with the Tc marks of each sweep", fontsize=10)
        axes[0].axvspan(x0, x1, color="0.85", zorder=0)
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.3", ls=ls) for ls, _ in styles.values()]
        labels += [f"Tc {lab}" for _, lab in styles.values()]
        ax.legend(handles, labels, fontsize=8, loc="upper left")
    axes[0].legend(fontsize=8, loc="upper left")
    return _save(fig, out / f"{slug}.png")


def _vi_data(st: Step):
    from labctl.analysis.vi import _combine_polarity

    f = st.dataset.frame
    i = f["Current (A)"].to_numpy(float)
    v = f["Voltage (V)"].to_numpy(float)
    if "Polarity" in f:
        pol = f["Polarity"].to_numpy(float)
        if (pol > 0).any() and (pol < 0).any():
            i, v = _combine_polarity(i, v, pol)
    bg = st.result.get("background") or {}
    vcorr = v - (bg.get("offset") or 0.0) - (bg.get("slope") or 0.0) * i
    return i, vcorr, bool(bg)


def fig_vi(st: Step, out: Path, slug: str) -> str:
    res = st.result
    i, v, corrected = _vi_data(st)
    vc, ic, n = res.get("criterion_voltage"), res.get("ic"), res.get("n")
    fig = _figure(WIDE)
    ax_lin, ax_log = fig.subplots(1, 2)
    vscale, vunit = _scale([vc or 0, *v], "V")
    ylabel = f"Voltage V{' − background' if corrected else ''} ({vunit})"
    fit_lo, fit_hi = (res.get("fit_range") or [None, None])[:2]
    in_fit = (i >= fit_lo) & (i <= fit_hi) if fit_lo is not None else np.zeros(len(i), bool)
    for ax in (ax_lin, ax_log):
        ax.set_xlabel("Current I (A)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax_lin.plot(i[~in_fit], v[~in_fit] * vscale, "o", ms=3, color="tab:blue", label="measured")
    if in_fit.any():
        ax_lin.plot(i[in_fit], v[in_fit] * vscale, "o", ms=4, color="tab:orange", label="used in the power-law fit")
    if vc:
        ax_lin.axhline(vc * vscale, color="tab:red", ls="--", lw=1,
                       label=f"criterion Vc = Ec·d = {qu(vc, 'V', 3)} (Ec = {qu(res.get('ec'), 'V/m', 3, prefix=False)})")
    if ic is not None:
        ax_lin.axvline(ic, color="k", ls=":", lw=1.2, label=f"Ic = {qa(ic, res.get('ic_err'))}")
    if ic is not None and n is not None and vc:
        ii = np.linspace(max(0.0, float(np.nanmin(i))), float(np.nanmax(i)), 400)
        ax_lin.plot(ii, vc * (ii / ic) ** n * vscale, "-", color="tab:green", lw=1.3,
                    label=f"V = Vc (I/Ic)^n, n = {num(n, '.3g')} ± {num(res.get('n_err'), '.1g')}")
    top = float(np.nanmax(v)) if len(v) else 1.0
    bottom = float(np.nanmin(v)) if len(v) else 0.0
    if vc and top > 15 * vc:  # e.g. a type-I jump to the resistive state: keep the criterion readable
        top = 12 * vc
        over = v > top
        ax_lin.plot(i[over], np.full(over.sum(), top * 0.97) * vscale, "^", ms=7, color="tab:purple", ls="none",
                    label=f"off scale (up to {qu(float(np.nanmax(v)), 'V', 3)})")
    span = max(top - bottom, 1e-30)
    ax_lin.set_ylim((bottom - 0.05 * span) * vscale, (top + 0.06 * span) * vscale)
    ax_lin.set_title(f"V–I, linear axes — {st.file.name}", fontsize=10)
    ax_lin.legend(fontsize=7.5, loc="upper left")

    pos = v > 0
    ax_log.set_xscale("log")
    ax_log.set_yscale("log")
    ax_log.plot(i[pos & ~in_fit], v[pos & ~in_fit] * vscale, "o", ms=3, color="tab:blue", label="measured (V > 0)")
    if (pos & in_fit).any():
        ax_log.plot(i[pos & in_fit], v[pos & in_fit] * vscale, "o", ms=4, color="tab:orange", label="fit points")
    if vc:
        ax_log.axhline(vc * vscale, color="tab:red", ls="--", lw=1, label="criterion Vc")
    if res.get("noise"):
        ax_log.axhline(3 * res["noise"] * vscale, color="0.5", ls="-.", lw=1,
                       label=f"3σ noise = {qu(3 * res['noise'], 'V', 2)}")
    if ic is not None:
        ax_log.axvline(ic, color="k", ls=":", lw=1.2, label="Ic")
    if ic is not None and n is not None and vc:
        lo = (fit_lo or ic) * 0.85
        ii = np.geomspace(lo, float(np.nanmax(i)) * 1.02, 200)
        ax_log.plot(ii, vc * (ii / ic) ** n * vscale, "-", color="tab:green", lw=1.3, label="power-law fit")
        ax_log.set_xlim(min(lo, ic * 0.8), float(np.nanmax(i)) * 1.06)
        floor = max(min(float(np.nanmin(v[pos])) if pos.any() else vc * 1e-3, vc * 0.3),
                    (res.get("noise") or vc * 1e-3) * 0.3)
        ax_log.set_ylim(floor * vscale, max(float(np.nanmax(v)), vc) * 3 * vscale)
    _plain_log_ticks(ax_log)
    ax_log.set_title("log–log axes (transition region)", fontsize=10)
    ax_log.legend(fontsize=7.5, loc="upper left")
    return _save(fig, out / f"{slug}.png")


def _plain_log_ticks(ax) -> None:
    """Log axes spanning less than a decade: label the minor ticks as plain numbers (not 3.4×10²)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda x, _pos: f"{x:g}")
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_formatter(plain)
        if lo > 0 and hi / lo < 12:
            axis.set_minor_formatter(plain)
        else:
            axis.set_minor_formatter(NullFormatter())


def _sci(x: float | None, digits: int = 3, plain_below: float = 1e4) -> str:
    """33300 -> '3.3×10⁴' (mathtext), numbers between 0.01 and ``plain_below`` plainly."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0 or 1e-2 <= abs(x) < plain_below:
        return f"{x:.{digits}g}"
    e = math.floor(math.log10(abs(x)))
    return f"${x / 10**e:.2g}\\times10^{{{e}}}$"


def _current_colors(n: int):
    from matplotlib import colormaps

    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.85, max(n, 1))]


def fig_field_models(st: Step, out: Path, slug: str) -> str:
    """B(r) per current (offset removed, ±1σ) with every model's fitted curve, one panel per model."""
    from matplotlib.lines import Line2D

    from labctl.analysis.radial import model_field

    res = st.result
    radius = res["sample_radius"]
    pcs = res["per_current"]
    models = res["models"]
    colors = _current_colors(len(pcs))
    npan = len(models) + 1
    ncols = 3 if npan > 4 else 2
    nrows = math.ceil(npan / ncols)
    fig = _figure((11.0, 3.4 * nrows + 0.4))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
    allb = [b for pc in pcs for b in pc["fields"]]
    bscale, bunit = _scale(allb, "T")
    rr = np.unique(np.concatenate([np.linspace(0.0, radius, 400),
                                   radius - np.geomspace(1e-8, 0.2 * radius, 150), [radius]]))
    rr = rr[(rr >= 0) & (rr <= radius)]
    for ax, m in zip(axes, models):
        k = m["params"]["k"]["value"]
        param = model_param(m)
        for pc, col in zip(pcs, colors):
            curve = k * model_field(m["name"], rr, np.full(len(rr), pc["current"]), radius, param)
            ax.plot(rr * 1e3, curve * bscale, "--", color=col, lw=1.2)
            ax.errorbar(np.array(pc["radii"]) * 1e3, np.array(pc["fields"]) * bscale,
                        yerr=np.array(pc["errs"]) * bscale, fmt="o", ms=4, color=col, capsize=2, lw=1)
        best = m is models[0]
        p = m.get("p_value")
        dchi = m["delta_aic"]
        title = (f"{m['name']}{'  (best)' if best else ''}\nχ²/dof = {_sci(m['chi2'], 4)}/{m['dof']}, "
                 f"p = {num(p, '.2g')}, ΔAIC = {'+' if dchi >= 0 else '−'}{_sci(abs(dchi), 3)}")
        ax.set_title(title, fontsize=9, fontweight="bold" if best else "normal")
        ax.axvline(radius * 1e3, color="0.6", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    for ax in axes[:len(models)]:
        ax.set_xlabel("Radius r (mm)")
        ax.set_ylabel(f"Field B ({bunit})")
        ax.tick_params(labelbottom=True, labelleft=True)
    for ax in axes[len(models):]:
        ax.axis("off")
    leg = axes[len(models)]
    handles = [Line2D([], [], marker="o", ls="none", color=c, label=f"I = {qa(pc['current'], digits=4)}")
               for pc, c in zip(pcs, colors)]
    handles += [Line2D([], [], marker="o", ls="none", color="0.3", label="measured, offset removed (±1σ)"),
                Line2D([], [], ls="--", color="0.3", label="model fitted to all currents\n(common calibration k)"),
                Line2D([], [], ls=":", color="0.6", label=f"wall, R = {qu(radius * 1e3, 'mm', 3, prefix=False)}")]
    leg.legend(handles=handles, loc="center", fontsize=9, frameon=False,
               title=f"{STEP_TITLES.get(st.name) or ('Normal-state control (T > Tc)' if res.get('control') else KIND_TITLES['radial-field'])}"
                     f"\n{st.file.name}", title_fontsize=9)
    axes[0].set_xlim(0, radius * 1e3 * 1.04)
    return _save(fig, out / f"{slug}.png")


def _predicted_ratio(m: dict, currents: np.ndarray, r1: float, rk: float, radius: float) -> np.ndarray:
    from labctl.analysis.radial import model_field

    param = model_param(m)
    with np.errstate(all="ignore"):
        b1 = model_field(m["name"], np.full(len(currents), r1), currents, radius, param)
        bk = model_field(m["name"], np.full(len(currents), rk), currents, radius, param)
        ratio = bk / b1
    bad = ~np.isfinite(ratio) | (np.abs(b1) <= 1e-4 * np.abs(bk)) | (ratio > RATIO_CAP)
    return np.where(bad, np.nan, ratio)


def _only_bounded(m: dict) -> bool:
    """True when the model's own parameter is only a limit (its prediction is one of many allowed)."""
    for key in ("lambda", "ic", "hc"):
        p = m.get("params", {}).get(key)
        if p and (p.get("err") is None):
            return True
    return False


def fig_ratios(st: Step, out: Path, slug: str) -> str | None:
    """B2/B1 and B3/B1 against current, with each model's prediction (fitted parameters)."""
    from matplotlib.lines import Line2D

    res = st.result
    radii = res["radii"]
    radius = res["sample_radius"]
    keys = [k for k in ("B2/B1", "B3/B1") if len(radii) >= int(k[1])]
    if not keys:
        return None
    pcs = res["per_current"]
    cur = np.array([pc["current"] for pc in pcs], float)
    span = max(float(cur.max() - cur.min()), 0.1 * float(cur.max()))
    grid = np.linspace(max(float(cur.min()) - 0.05 * span, 1e-6), float(cur.max()) + 0.05 * span, 240)
    fig = _figure(WIDE if len(keys) == 2 else SIZE)
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    models = res["models"]
    drawn: set[str] = set()
    marks: dict[str, object] = {}
    for ax, key in zip(axes, keys):
        rk = radii[int(key[1]) - 1]
        r1 = radii[0]
        preds = {m["name"]: _predicted_ratio(m, grid, r1, rk, radius) for m in models}
        top = 2.5 if key == "B2/B1" else 4.6  # room for the uniform and linear-J constants
        for pc in pcs:
            e = pc.get(key) or {}
            if e.get("status") == "ok":
                top = max(top, e["value"] + (e.get("err") or 0))
            elif e.get("status") == "bound" and e["value"] < 12:
                top = max(top, e["value"] * 1.2)
        for pred in preds.values():
            if np.isfinite(pred).any():
                top = max(top, min(float(np.nanmax(pred)), 12.0))
        ymax = top * 1.15
        off = []
        for k, m in enumerate(models):
            pred = preds[m["name"]]
            best = k == 0
            if np.isfinite(pred).any():
                ax.plot(grid, pred, ls="-" if best else "--", lw=2.4 if best else 1.4,
                        color=MODEL_COLORS.get(m["name"], f"C{k}"), alpha=0.55 if _only_bounded(m) else 1.0,
                        zorder=3 if best else 2)
                drawn.add(m["name"])
            if not np.isfinite(pred).all():
                off.append(m["name"] if np.isnan(pred).all() else f"{m['name']} (partly)")
        for pc in pcs:
            e = pc.get(key) or {}
            i = pc["current"]
            status = e.get("status")
            if status == "ok":
                iv = e.get("interval") or [e["value"] - (e.get("err") or 0), e["value"] + (e.get("err") or 0)]
                yerr = [[max(e["value"] - iv[0], 0.0)], [max(iv[1] - e["value"], 0.0)]]  # Fieller: may be skewed
                ax.errorbar([i], [e["value"]], yerr=yerr, fmt="o", color="k", ms=5, capsize=3, zorder=5)
                marks.setdefault("data", Line2D([], [], marker="o", ls="none", color="k",
                                                label="measured (68 % Fieller interval)"))
            elif status == "bound":
                y = min(e["value"], 0.88 * ymax)
                ax.plot([i], [y], marker="^", color="k", ms=8, ls="none", zorder=5)
                ax.annotate("", xy=(i, min(y + 0.1 * ymax, ymax)), xytext=(i, y),
                            arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.3})
                if e["value"] > 0.88 * ymax:
                    right = i > 0.5 * (grid[0] + grid[-1])
                    ax.annotate(f"> {_sci(e['value'], plain_below=100)}", (i, y), textcoords="offset points",
                                xytext=(-7 if right else 7, -14), ha="right" if right else "left", fontsize=8)
                marks.setdefault("bound", Line2D([], [], marker="^", ls="none", color="k",
                                                 label="measured lower bound (B1 consistent with 0)"))
            else:
                ax.plot([i], [0.04 * ymax], marker="x", color="k", ms=8, mew=2, ls="none", zorder=5)
                marks.setdefault("undef", Line2D([], [], marker="x", mew=2, ls="none", color="k",
                                                 label="measured: undefined (B1 and Bk consistent with 0)"))
        ax.set_ylim(0, ymax)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_xlabel("Current I (A)")
        ax.set_ylabel(f"{key} (dimensionless)")
        title = f"{key} = B({qu(rk * 1e3, 'mm', 3, prefix=False)}) / B({qu(r1 * 1e3, 'mm', 3, prefix=False)})"
        if off:
            title += "\nB1 = 0 (ratio → ∞, not drawn): " + ", ".join(off)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    handles = []
    for k, m in enumerate(models):
        best = k == 0
        label = m["name"] + (" (best fit)" if best else "")
        if m["name"] not in drawn:
            label += ": B1 = 0 everywhere, not drawn"
        elif _only_bounded(m):
            label += ": parameter only bounded"
        handles.append(Line2D([], [], ls="-" if best else "--", lw=2.4 if best else 1.4,
                              color=MODEL_COLORS.get(m["name"], f"C{k}"),
                              alpha=0.55 if _only_bounded(m) else 1.0, label=label))
    handles += list(marks.values())
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False,
               title="lines: each model's prediction with its fitted parameters", title_fontsize=8)
    what = STEP_TITLES.get(st.name) or ("Normal-state control (T > Tc)" if res.get("control") else "Radial field")
    fig.suptitle(f"{what} — field ratios per current ({st.file.name})", fontsize=10)
    return _save(fig, out / f"{slug}.png")


def fig_scan(st: Step, out: Path, slug: str) -> str:
    res = st.result
    r = np.array(res["radius"], float)
    b = np.array(res["field"], float)
    be = np.array([x if x is not None else np.nan for x in res["field_err"]], float)
    j = np.array([x if x is not None else np.nan for x in res["j"]], float)
    je = np.nan_to_num(np.array([x if x is not None else np.nan for x in res["j_err"]], float))
    radius = (st.dataset.parameter("Sample radius", "length") if st.dataset is not None else None) or 0.010
    cur = res.get("current")
    fig = _figure((7.5, 6.8))
    ax_b, ax_j = fig.subplots(2, 1, sharex=True)
    bscale, bunit = _scale(b, "T")
    ax_b.errorbar(r * 1e3, b * bscale, yerr=np.nan_to_num(be) * bscale, fmt="o", ms=4, capsize=2,
                  color="tab:blue", label="measured, offset removed (±1σ)")
    ax_b.set_ylabel(f"Field B ({bunit})")
    ax_b.set_title(f"Radial scan — {st.file.name}" + (f", I = {qa(cur, digits=4)}" if cur else ""), fontsize=10)
    ax_b.grid(alpha=0.3)
    jf = 1e-6  # A/m^2 -> A/mm^2
    r0 = float(np.nanmin(r))
    rr = np.linspace(r0, max(radius, float(np.nanmax(r))), 100)
    j0 = cur / (math.pi * radius**2) if cur else None
    # y range: the reference densities and the bulk of the data; spikes (e.g. a surface current, or the
    # spline ringing next to it) are drawn as off-scale arrows with their value, not as the axis range
    lo_d = float(np.nanpercentile(j - je, 10))
    hi_d = float(np.nanpercentile(j + je, 90))
    hi = max(hi_d, 1.6 * j0 if j0 else 0.0)
    lo = min(lo_d, 0.0)
    reach = 2.5 * max(abs(hi), abs(lo), 1e-30)  # beyond this a point is a spike, drawn off scale
    fine = np.isfinite(j) & (np.abs(j) <= reach)
    if fine.any():
        hi = max(hi, float(np.nanmax(j[fine])))
        lo = min(lo, float(np.nanmin(j[fine])))
    pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    lo, hi = lo - pad, hi + pad
    inner = res.get("j_r_inner")
    edges = np.r_[inner[0], r] if inner else np.r_[0.0, r]
    shown = np.clip(j, lo, hi)
    ax_j.stairs(np.clip(j + je, lo, hi) * jf, edges * 1e3, baseline=np.clip(j - je, lo, hi) * jf, fill=True,
                color="tab:orange", alpha=0.3, label="±1σ band (field errors propagated)")
    ax_j.stairs(shown * jf, edges * 1e3, color="tab:orange", lw=1.5,
                label="mean J in each bin = ΔI_enc / π Δ(r²), I_enc = 2πrB/µ0")
    r = 0.5 * (edges[:-1] + edges[1:])  # bin centres for the off-scale marks
    if j0:
        ax_j.plot(rr * 1e3, np.full(len(rr), j0 * jf), color="tab:blue", ls="--", lw=1.2,
                  label=f"uniform: I/πR² = {qu(j0 * jf, 'A/mm²', 3, prefix=False)}")
        ax_j.plot(rr * 1e3, 3 * cur * rr / (2 * math.pi * radius**3) * jf, color="tab:red", ls="-.", lw=1.2,
                  label="linear-J hypothesis: J = 3I r / (2πR³)")
        b_out = 4e-7 * math.pi * cur / (2 * math.pi * radius)
        ax_b.axhline(b_out * bscale, color="0.5", ls=":", lw=1, label=f"µ0I/2πR = {qu(b_out, 'T', 3)}")
    over, under = j > hi, j < lo
    if over.any() or under.any():
        ax_j.plot(r[over] * 1e3, np.full(over.sum(), hi - 0.04 * (hi - lo)) * jf, "^", color="tab:purple", ms=7,
                  ls="none", label="off scale")
        ax_j.plot(r[under] * 1e3, np.full(under.sum(), lo + 0.04 * (hi - lo)) * jf, "v", color="tab:purple", ms=7,
                  ls="none")
        k = int(np.nanargmax(np.abs(np.where(over | under, j, 0.0))))
        right = r[k] > 0.5 * (r0 + max(radius, float(np.nanmax(r))))
        ax_j.annotate(f"J = {_sci(j[k] * jf)} A/mm² at r = {r[k] * 1e3:.3g} mm (off scale)",
                      (r[k] * 1e3, (hi if j[k] > 0 else lo) * jf), textcoords="offset points",
                      xytext=(-10 if right else 10, -22 if j[k] > 0 else 14), ha="right" if right else "left",
                      fontsize=8, color="tab:purple")
    ax_j.set_ylim(lo * jf, hi * jf)
    ax_j.set_xlabel("Radius r (mm)")
    ax_j.set_ylabel("Current density J (A/mm²)")
    ax_j.grid(alpha=0.3)
    ax_j.set_xlim(min(r0, float(edges[0])) * 1e3 - 0.3, max(radius, float(np.nanmax(r))) * 1e3 + 0.3)
    ax_b.legend(fontsize=8, loc="upper left")
    ax_j.legend(fontsize=8, loc="upper left")
    return _save(fig, out / f"{slug}.png")


def fig_residual(st: Step, out: Path, slug: str) -> str:
    res = st.result
    i = np.array(res["currents"], float)
    v = np.array(res["voltages"], float)
    e = np.array([x if x is not None else np.nan for x in (res.get("voltage_errs") or [None] * len(v))], float)
    fig = _figure(SIZE)
    ax = fig.subplots()
    vscale, vunit = _scale(np.concatenate([np.abs(v) + np.nan_to_num(e), [1e-12]]), "V")
    has_err = bool(np.isfinite(e).any())
    ax.errorbar(i, v * vscale, yerr=np.nan_to_num(e) * vscale if has_err else None, fmt="o", ms=5,
                capsize=3, color="tab:blue",
                label="measured, reversal-corrected" + (" (±1σ)" if has_err else
                                                        " (no per-point errors: fit weighted by the scatter)"))
    ii = np.linspace(0, float(i.max()) * 1.05, 50)
    if res.get("slope") is not None:
        ax.plot(ii, (res["intercept"] + res["slope"] * ii) * vscale, "--", color="tab:red",
                label=f"trend: dV/dI = {qu(res['slope'], 'V/A', 3, err=res.get('slope_err'))}, "
                      f"p(decrease) = {num(res.get('p_value'), '.2g')}")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("Current I (A)")
    ax.set_ylabel(f"Residual voltage V ({vunit})")
    ax.set_title(f"Residual voltage — {st.file.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out / f"{slug}.png")


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "step"


def _parameter_rows(st: Step) -> list[list[str]]:
    """Parameters as recorded, with units: the CSV header's text, else parameters.json (+ units)."""
    ds = st.dataset
    if ds is not None and ds.parameters:
        return [[k, v] for k, v in ds.parameters.items()]
    rows = []
    units = {}
    try:
        from procedures import PROCEDURES

        if st.name in PROCEDURES:
            units = {k: (p.name, p.units) for k, p in PROCEDURES[st.name]().parameter_objects().items()}
    except Exception:  # noqa: BLE001 - units are a nicety
        units = {}
    for key, value in st.parameters.items():
        label, unit = units.get(key, (key, None))
        rows.append([label, f"{value} {unit}".strip() if unit else str(value)])
    return rows


def _rt_section(doc: Doc, st: Step, out: Path, figs: list[str]) -> None:
    res = st.result
    rows = []
    for name in ("cooling", "warming", "sweep"):
        s = res.get(name) if isinstance(res.get(name), dict) else None
        if s is None and name == res.get("sweep") and name not in ("cooling", "warming"):
            s = res
        if not s:
            continue
        rows.append([name, qt(s.get("tc_onset")), qt(s.get("tc_mid")), qt(s.get("tc_zero")),
                     qt(s.get("width_10_90"), digits=3), qu(s.get("r_normal"), "ohm"),
                     f"{qt(s.get('t_min'), digits=4)} – {qt(s.get('t_max'), digits=4)}" if s.get("t_min") else "n/a",
                     {"partial": "**partial** (not superconducting)", "multi-step": "multi-step"}.get(
                         s.get("transition"), s.get("transition") or "—"),
                     s.get("message", "")])
    doc.table(["sweep", "Tc onset", "Tc mid", "Tc zero", "10–90 % width", "R_n", "T range", "transition", "note"],
              rows)
    if res.get("hysteresis_mid") is not None:
        doc.p(f"Warming − cooling (Tc mid): {qt(res['hysteresis_mid'], digits=3)}.")
    _add_figure(doc, figs, fig_rt, st, out, f"{_slug(st.name)}",
                "R(T) on cooling and warming; right: the transition with Tc onset (90 % of R_n), midpoint (50 %) "
                "and zero-resistance marks per sweep.")


def _vi_section(doc: Doc, st: Step, out: Path, figs: list[str]) -> None:
    r = st.result
    bg = r.get("background") or {}
    rows = [
        ["Ic (criterion crossing)", qa(r.get("ic"), r.get("ic_err"))],
        ["n-value (dimensionless), E window " + ((r.get("n_window") or {}).get("text") or "n/a"),
         f"{num(r.get('n'), '.4g')} ± {num(r.get('n_err'), '.2g')}"],
        ["Ic, n of the joint fit (background + power law)",
         f"{qa(r.get('ic_fit'), r.get('ic_fit_err'))}; {num(r.get('n_fit'), '.4g')} ± {num(r.get('n_fit_err'), '.2g')}"],
        ["Ic bootstrap error (whole pipeline)", qa(r.get("ic_err_bootstrap"), digits=2)],
        ["Ic by interpolation (starting value)", qa(r.get("ic_interp"))],
        ["criterion field Ec", qu(r.get("ec"), "V/m", 3, prefix=False)],
        ["tap spacing d", qu(r.get("tap_spacing"), "m")],
        ["criterion voltage Vc = Ec·d", qu(r.get("criterion_voltage"), "V")],
        ["background offset / slope",
         f"{qu(bg.get('offset'), 'V')} / {qu(bg.get('slope'), 'V/A')}" if bg else "n/a"],
        ["noise σ (joint-fit residuals)", qu(r.get("noise"), "V", 2)],
        ["fit range", (f"{qa((r.get('fit_range') or [None])[0], digits=4)} – "
                      f"{qa((r.get('fit_range') or [None, None])[1], digits=4)} ({r.get('fit_points', 'n/a')} points)")],
        ["temperature (from the file)", qt(r.get("temperature"), digits=4)],
    ]
    doc.table(["quantity", "value"], rows)
    if r.get("message"):
        doc.p(r["message"] + ".")
    _add_figure(doc, figs, fig_vi, st, out, _slug(st.name),
                "V–I after background subtraction: linear axes (left) and log–log axes (right), with the "
                "criterion voltage, Ic and the power-law fit.")


def _radial_section(doc: Doc, st: Step, out: Path, figs: list[str]) -> None:
    r = st.result
    if r.get("control"):
        doc.p("Normal-state control: above Tc the current is uniform, so B ∝ r is expected "
              "(B2/B1 = √2 ≈ 1.414, B3/B1 = 2).")
    doc.quote("Verdict: " + (r.get("verdict") or "n/a"))
    radii = r.get("radii", [])
    header = ["I"] + [f"B({qu(x * 1e3, 'mm', 3, prefix=False)})" for x in radii] + ["B2/B1", "B3/B1"]
    rows = []
    for pc in r.get("per_current", []):
        by_r = dict(zip([round(x, 9) for x in pc["radii"]], zip(pc["fields"], pc["errs"])))
        cells = [qa(pc["current"], digits=5)]
        for x in radii:
            b = by_r.get(round(x, 9))
            cells.append(qu(b[0], "T", 4, err=b[1]) if b else "—")
        cells += [ratio_text(pc.get("B2/B1")), ratio_text(pc.get("B3/B1"))]
        rows.append(cells)
    pooled = r.get("ratios", {})
    rows.append(["pooled (B/I)"] + ["" for _ in radii] + [ratio_text(pooled.get("B2/B1")),
                                                          ratio_text(pooled.get("B3/B1"))])
    from labctl.analysis.text import noise_text

    nt = noise_text(r)
    doc.p(f"Fields with the offset removed ({r.get('offset_method')}), pooled over repeats; "
          + (nt[0].upper() + nt[1:] + "; " if nt else "") + "ratios with Fieller 68 % intervals, `ok` only "
          "when B1 is more than 3σ above zero. Sample radius R = " + qu(r.get("sample_radius"), "m") +
          (f"; mean temperature {qt(r['temperature'], digits=4)}" if r.get("temperature") is not None else "") + ".")
    doc.table(header, rows)
    lin = r.get("linearity") or {}
    ex = r.get("exponent") or {}
    oc = r.get("outer_check") or {}
    items = []
    if ex.get("value") is not None:
        items.append(f"Exponent of B ∝ rⁿ: n = {num(ex['value'], '.4g')} ± {num(ex.get('err'), '.2g')} "
                     "(dimensionless; uniform 1, linear-J 2)")
    else:
        items.append(f"Exponent of B ∝ rⁿ: {ex.get('message', 'n/a')}")
    if lin:
        items.append(f"Shape independent of current (B = I·b(r)): χ² = {num(lin.get('chi2'), '.4g')} for "
                     f"{lin.get('dof')} dof, p = {num(lin.get('p_value'), '.2g')} → "
                     + ("consistent" if lin.get("consistent") else "rejected: the profile changes with current"
                        if lin.get("consistent") is False else "not tested"))
    if oc.get("ratio") is not None:
        items.append(f"Outer check (model independent): B(R) / (µ0 I / 2πR) = "
                     f"{qu(oc['ratio'], '', 5, err=oc.get('ratio_err'))} (dimensionless)"
                     + (" — **flagged**: " + oc["message"].split(" — ", 1)[-1] if oc.get("flag") else ""))
    elif oc.get("message"):
        items.append(f"Outer check: {oc['message']}")
    doc.bullets(items)
    mrows = []
    for m in r.get("models", []):
        p = m.get("p_value")
        status = "least squares only (no verdict)" if r.get("refused") else "best" if m is r["models"][0] else (
            "rejected" if p is not None and p < 0.003 else "disfavoured" if m["delta_aic"] > 10 else "not rejected")
        mrows.append([m["name"], status, num(m["chi2"], ".4g"), m["dof"], num(p, ".2g"), num(m["aic"], ".4g"),
                      f"{m['delta_aic']:+.3g}", num(m["bic"], ".4g"),
                      "; ".join(param_text(k, v) for k, v in m["params"].items())
                      + (f"; {m['limit']}" if m.get("limit") else "")])
    doc.p("Model comparison (generalised least squares on every field at every current and radius, probe "
          "positions marginalised; p from the F-test against the pooled noise; χ², AIC, BIC and "
          "p are dimensionless):")
    doc.table(["model", "status", "χ²", "dof", "p", "AIC", "ΔAIC", "BIC", "fitted parameters"], mrows)
    _add_figure(doc, figs, fig_field_models, st, out, f"{_slug(st.name)}_field",
                "B(r) per current (points: measured, offset removed, ±1σ) with each model's fitted curve "
                "(dashed), one panel per model, best first.")
    _add_figure(doc, figs, fig_ratios, st, out, f"{_slug(st.name)}_ratios",
                "B2/B1 and B3/B1 per current against each model's prediction (fitted parameters). Lower bounds "
                "are arrows, undefined ratios crosses; a model with no field at r1 is marked ∞.")


def _scan_section(doc: Doc, st: Step, out: Path, figs: list[str]) -> None:
    r = st.result
    items = [f"Current: {qa(r.get('current'), digits=5)}" if r.get("current") is not None else "Current: n/a",
             f"{len(r.get('radius', []))} radii from {qu(min(r['radius']), 'm')} to {qu(max(r['radius']), 'm')}",
             f"J: {r.get('method', 'bin averages')}; band: the field errors propagated exactly"]
    if r.get("i_enclosed_outer_ratio") is not None:
        items.append(f"Enclosed current at the outermost radius / I = {num(r['i_enclosed_outer_ratio'], '.4g')} "
                     "(dimensionless; Ampère: 1 at the wall)")
    doc.bullets(items)
    _add_figure(doc, figs, fig_scan, st, out, _slug(st.name),
                "Top: B(r) along the scan. Bottom: the mean current density in each bin between neighbouring radii, "
                "from Ampère's enclosed current 2πrB/µ0, with its 1σ band, against the uniform "
                "and the linear-J (J = A r) current densities for the same total current.")


def _residual_section(doc: Doc, st: Step, out: Path, figs: list[str]) -> None:
    r = st.result
    doc.quote("Verdict: " + (r.get("verdict") or "n/a"))
    doc.table(["quantity", "value"], [
        ["slope dV/dI", qu(r.get("slope"), "V/A", 3, err=r.get("slope_err"))],
        ["intercept", qu(r.get("intercept"), "V", 3)],
        ["one-sided p (decrease)", f"{num(r.get('p_value'), '.3g')} (dimensionless)"],
        ["two-sided p", f"{num(r.get('p_two_sided'), '.3g')} (dimensionless)"],
        ["Spearman ρ (p)", f"{num(r.get('spearman_rho'), '.3g')} ({num(r.get('spearman_p'), '.2g')}) (dimensionless)"],
        ["currents", (f"{len(r.get('currents', []))} from {qa(min(r['currents']), digits=4)} to "
                     f"{qa(max(r['currents']), digits=4)}")],
    ])
    _add_figure(doc, figs, fig_residual, st, out, _slug(st.name),
                "Residual voltage against current (reversal-corrected) with the weighted straight-line trend.")


SECTIONS = {"rt": _rt_section, "vi": _vi_section, "radial-field": _radial_section,
            "radial-scan": _scan_section, "residual": _residual_section}


def _add_figure(doc: Doc, figs: list[str], fn, st: Step, out: Path, slug: str, caption: str) -> None:
    try:
        name = fn(st, out, slug)
    except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn is one line, not a crash
        doc.p(f"(figure {slug}.png could not be drawn: {exc.__class__.__name__}: {exc})")
        return
    if name:
        figs.append(name)
        doc.figure(name, caption)


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
@dataclass
class Report:
    path: Path  # report.md / report.html
    figures: list[Path]
    steps: list[Step]


def _station_section(doc: Doc, station: dict | None) -> None:
    doc.h(2, "Station")
    if not station:
        doc.p("No station snapshot (station.json) with this data.")
        return
    cfg = station.get("config") or {}
    st = cfg.get("station") or {}
    doc.p(f"Station **{st.get('name', '?')}**, backend `{st.get('backend') or 'system VISA'}`"
          + (f", station file `{cfg['source_path']}`" if cfg.get("source_path") else "") + ".")
    rows = []
    for role, entry in (station.get("instruments") or {}).items():
        state = ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}"
                          for k, v in (entry.get("state") or {}).items())
        rows.append([role, entry.get("driver", ""), f"`{entry.get('address', '')}`",
                     entry.get("identity") or entry.get("error", ""), state])
    doc.table(["role", "driver", "address", "identity", "state at the start"], rows)
    sample = cfg.get("sample")
    if sample:
        doc.table(["sample", "expected Tc", "working temperature", "radius R", "tap spacing", "hole radii"], [[
            sample.get("name", "?"), qt(sample.get("expected_tc")), qt(sample.get("working_temperature")),
            qu(sample.get("radius"), "m"), qu(sample.get("tap_spacing"), "m"),
            ", ".join(f"{x:g}" for x in sample.get("hole_radii", [])) + " mm"]])
    limits = []
    for role in ("current_source", "voltmeter", "temperature", "gaussmeter", "stage"):
        for k, v in ((cfg.get(role) or {}).get("limits") or {}).items():
            if v is not None:
                limits.append(f"{role}.{k} = {v:g}" if isinstance(v, (int, float)) else f"{role}.{k} = {v}")
    if limits:
        doc.p("Limits (station units: A, A/s, V, K, K/min, T, mm, mm/s): " + "; ".join(limits) + ".")
    sim = station.get("sim")
    if sim:
        doc.p("Virtual lab — hidden truth (for rehearsals only; a real run has none):")
        doc.table(["sample", "field model", "Tc", "working temperature", "Ic at the working temperature", "seed"],
                  [[sim.get("sample"), sim.get("field_model"), qt(sim.get("tc")), qt(sim.get("working_temperature")),
                    qa(sim.get("ic_at_working_temperature"), digits=5), sim.get("seed")]])


def _results_table(doc: Doc, steps: list[Step], sim: dict | None) -> None:
    rows = []
    truth = bool(sim)

    def add(quantity, value, step, true=""):
        rows.append([quantity, value, step] + ([true] if truth else []))

    for st in steps:
        r = st.result
        if not r:
            continue
        if st.kind == "rt":
            label = {"partial": " — **partial drop, not superconducting**", "multi-step": " — multi-step"}.get(
                r.get("transition"), "")
            add("Tc midpoint (50 %)", qt(r.get("tc_mid")) + label, st.name, qt(sim.get("tc")) if sim else "")
            add("Tc onset / zero", f"{qt(r.get('tc_onset'))} / {qt(r.get('tc_zero'))}", st.name)
            add("10–90 % width", qt(r.get("width_10_90"), digits=3), st.name)
        elif st.kind == "vi":
            t = r.get("temperature")
            true = ""
            if sim and (t is None or abs(t - sim.get("working_temperature", -1)) < 0.05):
                true = qa(sim.get("ic_at_working_temperature"), digits=5)
            add("Ic (1 µV/cm)" + (f" at {qt(t, digits=3)}" if t else ""), qa(r.get("ic"), r.get("ic_err")),
                st.name, true)
            add("n-value", f"{num(r.get('n'), '.4g')} ± {num(r.get('n_err'), '.2g')} (dimensionless)", st.name)
        elif st.kind == "radial-field":
            label = "normal-state control: best model" if r.get("control") else "B(r): best model"
            true = ""
            if sim:
                true = "uniform (normal state)" if r.get("control") else sim.get("field_model", "")
            add(label, f"**{r.get('best_model')}**" if r.get("best_model") else "none (no verdict: "
                f"{r.get('refused') or 'see the step'})", st.name, true)
            rat = r.get("ratios", {})
            add("B2/B1, B3/B1 (pooled, dimensionless)",
                f"{ratio_text(rat.get('B2/B1'))}; {ratio_text(rat.get('B3/B1'))}", st.name)
        elif st.kind == "radial-scan" and r.get("i_enclosed_outer_ratio") is not None:
            add("enclosed current at the wall / I", f"{num(r['i_enclosed_outer_ratio'], '.4g')} (dimensionless)",
                st.name)
        elif st.kind == "residual":
            add("residual dV/dI", f"{qu(r.get('slope'), 'V/A', 3, err=r.get('slope_err'))} "
                                  f"(p for a decrease {num(r.get('p_value'), '.2g')})", st.name)
    if rows:
        doc.h(2, "Results")
        doc.table(["quantity", "value", "step"] + (["virtual-lab truth"] if truth else []), rows)


def _steps_table(doc: Doc, steps: list[Step]) -> None:
    rows = []
    for st in steps:
        rows.append([st.name, f"`{st.file.name}`" if st.file else "—", st.status,
                     st.rows if st.rows is not None else (len(st.dataset.frame) if st.dataset is not None else "—"),
                     st.reason or (st.error or "")])
    doc.table(["step", "file", "status", "rows", "reason / problem"], rows)


def build_report(run, *, output=None, fmt: str = "md", embed: bool = False, data_dir=None, kind: str | None = None,
                 **options) -> Report:
    """Write the report of a run folder (or one data file); returns the paths written.

    ``options``: loading (``mapping``, ``columns``, ``skip_rows``, ``delimiter``) and analysis
    (``tap_spacing``, ``sample_radius``, ``bootstrap``, ``seed``...) options, as for ``analyze``.
    """
    if fmt not in ("md", "html"):
        raise ConfigError(f"--format {fmt!r}: choose md or html")
    path = resolve_run(run, data_dir)
    if path.is_dir():
        state = _read_json(path / "parameters.json")
        station = _read_json(path / "station.json")
        default_out = path / "report"
    else:
        state, station = None, None
        default_out = path.parent / f"{path.stem}-report"
    out = Path(output) if output else default_out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the report folder {out} ({exc.strerror or exc})") from None
    load_opts = {k: options.pop(k) for k in LOAD_OPTIONS if options.get(k) is not None}
    if options.get("sample_radius") is not None:
        from labctl.analysis.units import UnitError, parse_quantity

        try:
            options["sample_radius"] = parse_quantity(options["sample_radius"], "length")
        except UnitError as exc:
            raise ConfigError(f"--sample-radius: {exc}") from None
    options = {k: v for k, v in options.items() if v is not None}
    steps = collect_steps(path, state)
    if not steps:
        raise ConfigError(f"{path}: no data files (*.csv) and no parameters.json: not a run folder")
    analyse_steps(steps, load_opts, options, kind if path.is_file() else None)

    doc = Doc()
    title = f"Run {state['id']}" if state and state.get("id") else f"Report: {path.name}"
    doc.h(1, title)
    head = [f"Source: `{path}`"]
    if state:
        head.append(f"kind **{state.get('kind', '?')}**, status **{state.get('status', '?')}**"
                    + (f" ({state['reason']})" if state.get("reason") else ""))
    head.append(f"report written {datetime.now().strftime('%Y-%m-%d %H:%M:%S')} by `labctl report`")
    doc.p("; ".join(head) + ".")
    sim = (station or {}).get("sim")
    _results_table(doc, steps, sim)
    if state and state.get("derived"):
        d = state["derived"]
        items = []
        if d.get("tc") is not None:
            items.append(f"Tc fed forward: {qt(d['tc'])}")
        if d.get("ic") is not None:
            items.append(f"Ic fed forward: {qa(d['ic'], d.get('ic_err'))}"
                         + (f", n = {num(d.get('n'), '.4g')} (dimensionless)" if d.get("n") is not None else ""))
        if items:
            doc.p("Values the protocol derived and used for later steps: " + "; ".join(items) + ".")
    doc.h(2, "Steps")
    _steps_table(doc, steps)
    if station is not None or state is not None:
        _station_section(doc, station)
    figs: list[str] = []
    for st in steps:
        heading = STEP_TITLES.get(st.name) or KIND_TITLES.get(st.kind or "", st.name)
        doc.h(2, f"{heading}" + (f" — `{st.file.name}`" if st.file else ""))
        if not st.usable:
            rows = f"; {st.rows} row(s) recorded in `{st.file.name}` (analyse them with `labctl analyze`)" \
                if st.rows and st.file else ""
            doc.p(f"Step **{st.status}**" + (f": {st.reason}" if st.reason else "") + f"{rows}. Skipped.")
            continue
        if st.error:
            doc.p(f"Not analysed: {st.error}. Skipped.")
            continue
        if st.parameters or (st.dataset is not None and st.dataset.parameters):
            doc.h(3, "Parameters")
            doc.table(["parameter", "value"], _parameter_rows(st))
        doc.h(3, "Results")
        section = SECTIONS.get(st.kind)
        if section is None:
            doc.p(f"No report section for data of kind {st.kind!r}.")
            continue
        try:
            section(doc, st, out, figs)
        except Exception as exc:  # noqa: BLE001 - a malformed result is one line in the report
            doc.p(f"(this section could not be written: {exc.__class__.__name__}: {exc})")
        notes = list((st.result or {}).get("warnings") or [])
        if notes:
            doc.p("Analysis warnings:")
            doc.bullets(notes)
    if fmt == "md":
        target = out / "report.md"
        target.write_text(doc.markdown(), encoding="utf-8")
    else:
        target = out / "report.html"
        target.write_text(doc.html(out, embed, title), encoding="utf-8")
    return Report(path=target, figures=[out / f for f in figs], steps=steps)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def add_data_options(p) -> None:
    """Loading/analysis options for foreign files (shared with ``labctl replay``)."""
    p.add_argument("--kind", choices=("rt", "vi", "radial-field", "radial-scan", "residual"),
                   help="kind of data of a single file (default: from the file)")
    p.add_argument("--map", action="append", default=[], metavar="TARGET=SOURCE",
                   help="use column SOURCE as TARGET, e.g. 'Current (A)=I_src' (repeatable)")
    p.add_argument("--columns", metavar="NAMES", help="column names for a file without a header row")
    p.add_argument("--skip-rows", type=int, metavar="N", help="skip N lines at the top of the file")
    p.add_argument("--delimiter", metavar="CHAR", help="column delimiter (default: detected)")
    p.add_argument("--tap-spacing", metavar="VALUE", help="voltage-tap spacing, e.g. 12.89mm (V-I)")
    p.add_argument("--sample-radius", metavar="VALUE", help="sample radius, e.g. 10mm (radial models)")


def data_options(args) -> dict:
    opts = {"mapping": list(args.map or []) or None, "columns": args.columns, "skip_rows": args.skip_rows,
            "delimiter": args.delimiter, "tap_spacing": args.tap_spacing, "sample_radius": args.sample_radius}
    return {k: v for k, v in opts.items() if v is not None}


def _cli(args) -> int:
    report = build_report(args.run, output=args.output, fmt=args.format, embed=args.embed,
                          data_dir=args.data_dir, kind=args.kind, **data_options(args))
    skipped = [s for s in report.steps if not s.usable or s.error]
    print(f"report: {report.path} ({len(report.figures)} figure(s)"
          + (f"; {len(skipped)} step(s) skipped: {', '.join(s.name for s in skipped)}" if skipped else "") + ")")
    return 0


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "report", help="write a report (tables + PNG figures) of a run folder or a data file",
        description="Write a self-contained report of a recorded run: station snapshot, parameters, Tc, Ic, "
                    "the model comparison and verdicts with units, and PNG figures (R(T), V-I, B(r) with every "
                    "model, ratios, J(r), residual voltage). Default output: RUN/report/.",
        epilog="examples:\n  labctl report data/examples/protocol_Pb_meissner\n  labctl report latest --format html --embed\n"
               "  labctl report data/examples/radial-field_Nb_bean.csv --output /tmp/bean",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder, run id in the data dir, 'latest', or one data file")
    p.add_argument("--data-dir", help="where run ids are looked up (default: $LABCTL_DATA, else the per-user "
                                      "data folder; see labctl/datadir.py)")
    p.add_argument("--format", choices=("md", "html"), default="md", help="report.md (default) or report.html")
    p.add_argument("--output", metavar="DIR", help="output folder (default: RUN/report/)")
    p.add_argument("--embed", action="store_true", help="html: embed the figures (base64) in report.html")
    add_data_options(p)
    p.set_defaults(func=_cli)
