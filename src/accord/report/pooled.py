"""The pooled report of a consortium: the two-stage meta-analysis, the one-stage model and a
forest plot by site, in one self-contained HTML file (reports/consortia/<name>/pooled.html).

It reads only the consortium's results (pooled.csv, sites.csv, pooling.json and, where the
sites' rows may be pooled, one_stage.csv) and shows aggregates only: site estimates come from
sites with at least ``min_cell`` clients (others are listed as excluded, without numbers), and
every count from 1 to ``min_cell - 1`` reads ``"<11"`` (privacy.md, section 2). The forest
plot is embedded as an SVG data URI and also written as SVG and PNG; both are deterministic
(fixed SVG hash salt, no date or software stamp), and the page carries no run date, so the same
results give the same bytes. The site files pooled are listed with their SHA-256 checksums.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

import accord
from accord.core.disclosure import NOT_AVAILABLE, structural_count, suppress_count
from accord.core.io import atomic_path, write_text_atomic

TEMPLATE = "pooled.html.j2"
PNG_DPI = 200
METHOD_LABELS = {"paule_mandel": "Paule-Mandel", "dersimonian_laird": "DerSimonian-Laird"}
_STYLE = {
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.spines.left": False,
    "svg.hashsalt": "accord-pooled",
    "svg.fonttype": "path",
    "path.simplify": False,
}
_SITE_COLOUR = "#0072B2"
_POOLED_COLOUR = "#D55E00"
_ONE_STAGE_COLOUR = "#009E73"
_MINUS = "\u2212"


def forest_figure(
    sites: pd.DataFrame, pooled: pd.DataFrame, one_stage: pd.DataFrame | None = None
) -> tuple[bytes, bytes]:
    """A forest plot by site, one panel per pooled (model, term): SVG and PNG bytes.

    Each included site is a square (area in proportion to its random-effects weight) with its
    95% CI; excluded sites are named with the reason and no estimate. Below them: the
    random-effects estimate as a diamond spanning its 95% CI with the prediction interval as a
    line, the common-effect estimate, and the one-stage estimate if given.
    """
    panels = []
    for row in pooled.itertuples(index=False):
        part = sites.loc[(sites["model"] == row.model) & (sites["term"] == row.term)]
        lines = _forest_lines(part, row, one_stage)
        panels.append((f"{row.model}: {row.term}", lines))
    heights = [len(lines) + 1.5 for _, lines in panels] or [1.0]
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.5, 0.32 * sum(heights) + 0.8), dpi=100)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(max(len(panels), 1), 1, height_ratios=heights)
        for i, (title, lines) in enumerate(panels):
            _draw_panel(fig.add_subplot(grid[i]), title, lines)
        fig.tight_layout()
        svg, png = io.BytesIO(), io.BytesIO()
        FigureCanvasSVG(fig)
        fig.savefig(svg, format="svg", metadata={"Date": None})
        FigureCanvasAgg(fig)
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return svg.getvalue(), png.getvalue()


def _forest_lines(
    part: pd.DataFrame, row: Any, one_stage: pd.DataFrame | None
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for site in part.itertuples(index=False):
        if bool(site.included):
            lines.append(
                {
                    "label": site.site,
                    "kind": "site",
                    "estimate": site.estimate,
                    "low": site.ci_low,
                    "high": site.ci_high,
                    "weight": site.weight_random,
                }
            )
        else:
            lines.append({"label": f"{site.site} (excluded: {site.reason})", "kind": "excluded"})
    lines.append(
        {
            "label": f"Random effects ({METHOD_LABELS.get(row.method, row.method)})",
            "kind": "pooled",
            "estimate": row.estimate,
            "low": row.ci_low,
            "high": row.ci_high,
            "prediction": (row.prediction_low, row.prediction_high),
        }
    )
    lines.append(
        {
            "label": "Common effect",
            "kind": "common",
            "estimate": row.common_estimate,
            "low": row.common_ci_low,
            "high": row.common_ci_high,
        }
    )
    match = _one_stage_row(one_stage, row.model, row.term)
    if match is not None:
        lines.append(
            {
                "label": "One-stage model",
                "kind": "one_stage",
                "estimate": match["estimate"],
                "low": match["ci_low"],
                "high": match["ci_high"],
            }
        )
    return lines


def _draw_panel(ax: Any, title: str, lines: list[dict[str, Any]]) -> None:
    n = len(lines)
    ys = np.arange(n, 0, -1, dtype=float)
    weights = [line.get("weight", math.nan) for line in lines if line["kind"] == "site"]
    top = max((w for w in weights if math.isfinite(w)), default=1.0)
    for y, line in zip(ys, lines, strict=True):
        est, low, high = (line.get(k, math.nan) for k in ("estimate", "low", "high"))
        if line["kind"] == "excluded" or not math.isfinite(est):
            continue
        if line["kind"] == "site":
            size = 30 + 120 * (line["weight"] / top if math.isfinite(line["weight"]) else 0.0)
            ax.plot([low, high], [y, y], color=_SITE_COLOUR, linewidth=1.2)
            ax.scatter([est], [y], s=size, marker="s", color=_SITE_COLOUR, zorder=3)
        elif line["kind"] == "pooled":
            p_low, p_high = line["prediction"]
            if math.isfinite(p_low) and math.isfinite(p_high):
                ax.plot([p_low, p_high], [y, y], color=_POOLED_COLOUR, linewidth=1.0)
            diamond = [[low, y], [est, y + 0.3], [high, y], [est, y - 0.3]]
            ax.fill(*zip(*diamond, strict=True), color=_POOLED_COLOUR, zorder=3)
        else:
            colour = _ONE_STAGE_COLOUR if line["kind"] == "one_stage" else "#555555"
            ax.plot([low, high], [y, y], color=colour, linewidth=1.2)
            ax.scatter([est], [y], s=40, marker="D", color=colour, zorder=3)
    ax.axvline(0.0, color="#999999", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, [line["label"] for line in lines])
    ax.set_ylim(0.4, n + 0.6)
    ax.tick_params(axis="y", length=0)
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("Estimate (95% CI)")


def _one_stage_row(one_stage: pd.DataFrame | None, model: str, term: str) -> dict | None:
    if one_stage is None or one_stage.empty:
        return None
    found = one_stage.loc[(one_stage["model"] == model) & (one_stage["term"] == term)]
    return None if found.empty else found.iloc[0].to_dict()


def _site_rows(sites: pd.DataFrame, min_cell: int) -> list[dict[str, Any]]:
    """One display row per site and term: its estimate, interval and random-effects weight
    when it entered the pooling, why it was left out otherwise (counts suppressed)."""
    site_rows = []
    for site in sites.itertuples(index=False):
        shown = bool(site.included)
        site_rows.append(
            {
                "site": site.site,
                "source": "row-level data" if site.source == "study" else "shared results",
                "model": site.model,
                "term": site.term,
                "estimate": _fmt(site.estimate) if shown else NOT_AVAILABLE,
                "ci": _ci(site.ci_low, site.ci_high) if shown else NOT_AVAILABLE,
                "n_clients": _count(site.n_clients, min_cell),
                "n_therapists": structural_count(_whole(site.n_therapists)),
                "weight": _percent(site.weight_random) if shown else NOT_AVAILABLE,
                "status": "included" if shown else f"excluded: {site.reason}",
            }
        )
    return site_rows


def _pooled_rows(
    pooled: pd.DataFrame, one_stage: pd.DataFrame | None, min_cell: int
) -> list[dict[str, Any]]:
    """One display row per pooled term: the random-effects estimate with its Hartung-Knapp
    and prediction intervals, heterogeneity, the common-effect estimate and, when fitted, the
    one-stage model's estimate of the same term (counts suppressed)."""
    pooled_rows = []
    for row in pooled.itertuples(index=False):
        match = _one_stage_row(one_stage, row.model, row.term)
        pooled_rows.append(
            {
                "model": row.model,
                "outcome": row.outcome,
                "exposure": row.exposure,
                "term": row.term,
                "method": METHOD_LABELS.get(row.method, row.method),
                "k_sites": int(row.k_sites),
                "sites_excluded": int(row.sites_excluded),
                "estimate": _fmt(row.estimate),
                "ci": _ci(row.ci_low, row.ci_high),
                "p_value": _p(row.p_value),
                "hk_ci": _ci(row.hk_ci_low, row.hk_ci_high),
                "hk_p_value": _p(row.hk_p_value),
                "prediction": _ci(row.prediction_low, row.prediction_high),
                "tau2": _fmt(row.tau2, 4),
                "i2": _percent(row.i2),
                "q": _fmt(row.q, 2),
                "q_df": row.q_df,
                "q_p_value": _p(row.q_p_value),
                "common_estimate": _fmt(row.common_estimate),
                "common_ci": _ci(row.common_ci_low, row.common_ci_high),
                "n_clients": _count(row.n_clients, min_cell),
                "one_stage_estimate": _fmt(match["estimate"]) if match else None,
                "one_stage_ci": _ci(match["ci_low"], match["ci_high"]) if match else None,
                "one_stage_converged": bool(match["converged"]) if match else None,
                "one_stage_sites": match.get("sites", "") if match else "",
                "one_stage_n_clients": _count(match["n_clients"], min_cell) if match else None,
            }
        )
    return pooled_rows


def _simulated_truth(simulated: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The mean effect and between-site spread the simulator drew the sites with, formatted;
    None when the sites are not simulated."""
    if not simulated:
        return None
    return {
        "mean_effect": _fmt(simulated["mean_effect"]),
        "between_site_sd": _fmt(simulated["between_site_sd"]),
        "tau2": _fmt(float(simulated["between_site_sd"]) ** 2, 4),
    }


def pooled_context(
    name: str,
    pooled: pd.DataFrame,
    sites: pd.DataFrame,
    one_stage: pd.DataFrame | None,
    *,
    notes: list[str] | None = None,
    min_cell: int = 11,
    forest_svg: bytes = b"",
    simulated: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values the template shows, formatted for display (counts suppressed).

    `simulated` is the consortium's ``simulate`` settings when its sites were drawn by the
    simulator: the report then states the effect the pooled estimate should recover.
    """
    return {
        "name": name,
        "pooled": _pooled_rows(pooled, one_stage, min_cell),
        "sites": _site_rows(sites, min_cell),
        "notes": list(notes or []),
        "one_stage": one_stage is not None,
        "min_cell": min_cell,
        "simulated": _simulated_truth(simulated),
        "forest_src": (
            "data:image/svg+xml;base64," + base64.b64encode(forest_svg).decode("ascii")
            if forest_svg
            else ""
        ),
    }


def render_pooled_report(
    out_html: str | Path,
    *,
    name: str,
    pooled: pd.DataFrame,
    sites: pd.DataFrame,
    one_stage: pd.DataFrame | None = None,
    notes: list[str] | None = None,
    record: dict[str, Any] | None = None,
    min_cell: int = 11,
    forest_svg_path: str | Path | None = None,
    forest_png_path: str | Path | None = None,
    simulated: Mapping[str, Any] | None = None,
) -> None:
    """Write the consortium's pooled report (and the forest plot as SVG and PNG, if paths are
    given), each atomically. `record` is the pooling record (``pooling.json``): its per-site
    files and checksums are listed as the report's provenance. `simulated`: see
    `pooled_context`."""
    svg, png = forest_figure(sites, pooled, one_stage)
    if forest_svg_path is not None:
        with atomic_path(forest_svg_path) as tmp:
            tmp.write_bytes(svg)
    if forest_png_path is not None:
        with atomic_path(forest_png_path) as tmp:
            tmp.write_bytes(png)
    context = pooled_context(
        name,
        pooled,
        sites,
        one_stage,
        notes=notes,
        min_cell=min_cell,
        forest_svg=svg,
        simulated=simulated,
    )
    context["provenance"] = [
        {"site": site, "source": entry["source"], "file": entry[kind], "sha256": digest}
        for site, entry in sorted((record or {}).get("sites", {}).items())
        for kind, digest in (
            ("coefficients", entry["sha256"]["coefficients.csv"]),
            ("diagnostics", entry["sha256"]["diagnostics.json"]),
        )
    ]
    context["accord_version"] = accord.__version__
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    write_text_atomic(out_html, environment.get_template(TEMPLATE).render(**context))


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NOT_AVAILABLE
    if not math.isfinite(number):
        return NOT_AVAILABLE
    return f"{number:.{digits}f}".replace("-", _MINUS)


def _ci(low: Any, high: Any) -> str:
    a, b = _fmt(low), _fmt(high)
    return NOT_AVAILABLE if NOT_AVAILABLE in (a, b) else f"{a} to {b}"


def _p(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NOT_AVAILABLE
    if not math.isfinite(number):
        return NOT_AVAILABLE
    return "<0.001" if number < 0.001 else f"{number:.3f}"


def _percent(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NOT_AVAILABLE
    return f"{100 * number:.1f}%" if math.isfinite(number) else NOT_AVAILABLE


def _whole(value: Any) -> int | None:
    """A count read from a results table (None where it is missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _count(value: Any, min_cell: int) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    return suppress_count(int(value), min_cell)
