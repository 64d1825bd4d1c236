"""Figures for the study report: aggregates only, drawn with matplotlib's Agg canvas.

A figure never shows a group of fewer than ``min_cell`` clients (privacy.md, section 2) and
never a single client's line or point. Each figure is drawn on its own `Figure` object
(leaving pyplot and the user's backend alone) and saved twice by `to_plot`:

* SVG, embedded in the report and written to ``figures/<name>.svg``, with a fixed hash salt
  and no date, so the same data give the same bytes;
* PNG of ``FIGURE_SIZE_PX`` = 1600 x 1000 pixels (8 x 5 inches at 200 dpi) without a software
  stamp, written to ``figures/<name>.png`` for manuscripts.

Every figure has the same size, so they line up in the report and in a manuscript.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from scipy import stats

from accord.core.disclosure import suppress_count, suppressed_label, suppression_mask
from accord.report.parts import Plot

ALL_CLIENTS = "All clients"
#: Figure size in inches and resolution of the PNG: 1600 x 1000 pixels.
FIGURE_SIZE_IN = (8.0, 5.0)
PNG_DPI = 200
FIGURE_SIZE_PX = (1600, 1000)
# Okabe-Ito: distinguishable with common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
_STYLE = {
    "font.size": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "accord-report",
    "svg.fonttype": "path",
    "path.simplify": False,
}
_MARK = "#555555"


def new_figure(*, rows: int = 1, height_ratios: Sequence[float] | None = None) -> Figure:
    """A blank figure of the report's size with `rows` stacked axes."""
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=100)
    FigureCanvasAgg(fig)
    if rows == 1:
        fig.add_subplot()
    else:
        grid = fig.add_gridspec(rows, 1, height_ratios=height_ratios)
        for i in range(rows):
            fig.add_subplot(grid[i])
    return fig


#: Plots already saved while the report is built more than once (its disclosure audit may ask
#: for another build; a figure's bytes do not change between builds).
PLOT_CACHE: ContextVar[dict[tuple[str, str, str], Plot] | None] = ContextVar(
    "accord_plot_cache", default=None
)


def to_plot(
    fig: Figure, name: str, *, alt: str, caption: str, data: pd.DataFrame | None = None
) -> Plot:
    """The figure as a report `Plot` with deterministic SVG and PNG bytes; `data` is what it
    draws (written beside it as CSV)."""
    cache = PLOT_CACHE.get()
    if cache is not None and (name, alt, caption) in cache:
        return cache[(name, alt, caption)]
    plot = _save(fig, name, alt=alt, caption=caption, data=data)
    if cache is not None:
        cache[(name, alt, caption)] = plot
    return plot


def _save(
    fig: Figure, name: str, *, alt: str, caption: str, data: pd.DataFrame | None = None
) -> Plot:
    with matplotlib.rc_context(_STYLE):
        svg = io.BytesIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return Plot(
        name=name,
        alt=alt,
        caption=caption,
        svg=svg.getvalue(),
        png=png.getvalue(),
        data=None if data is None else data.reset_index(drop=True),
    )


def style() -> Any:
    """The report's matplotlib settings, as a context manager for drawing."""
    return matplotlib.rc_context(_STYLE)


def trajectory_summary(
    panel: pd.DataFrame,
    outcome: str,
    *,
    group: str | None = "arm",
    min_cell: int = 11,
) -> pd.DataFrame:
    """Mean `outcome` per group and session with a t-based 95% CI, from clients with a score.

    Columns: group, session_number, n_clients, mean, sd, ci_low, ci_high, shown. A row from
    fewer than `min_cell` clients has ``shown`` False and its statistics blanked (NaN), so
    nothing downstream can print or draw them. Without a usable `group` column every client
    is in one group, ``"All clients"``.
    """
    rows = panel.loc[panel[outcome].notna(), ["client_id", "session_number", outcome]].copy()
    if group is not None and group in panel.columns and panel[group].notna().any():
        rows["group"] = panel.loc[rows.index, group].astype(object).fillna("(no arm)").astype(str)
    else:
        rows["group"] = ALL_CLIENTS
    rows[outcome] = pd.to_numeric(rows[outcome]).astype(float)
    # One score per client and session (the panel's key), so n counts clients.
    per = rows.groupby(["group", "session_number"], sort=True)
    out = per.agg(
        n_clients=("client_id", "nunique"), mean=(outcome, "mean"), sd=(outcome, "std")
    ).reset_index()
    half = (
        stats.t.ppf(0.975, np.maximum(out["n_clients"] - 1, 1))
        * out["sd"]
        / np.sqrt(out["n_clients"])
    )
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out["shown"] = out["n_clients"] >= min_cell
    out.loc[~out["shown"], ["mean", "sd", "ci_low", "ci_high"]] = np.nan
    out["session_number"] = out["session_number"].astype(int)
    return out


def trajectory_figure(
    summary: pd.DataFrame, outcome_label: str, *, xlabel: str = "Session (0 = intake)"
) -> Figure | None:
    """Mean trajectories with 95% CI bands, one line per group; None if no group has a
    session with enough clients to draw.

    The x axis holds the sessions at which anyone was assessed, so a measure given every other
    session is drawn as one line; a session withheld for a group breaks that group's line.
    """
    shown = summary.loc[summary["shown"]]
    if shown.empty:
        return None
    sessions = np.sort(summary["session_number"].unique())
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        for k, (name, part) in enumerate(summary.groupby("group", sort=True)):
            # Reindex on every session so a suppressed or absent session breaks the line.
            part = part.set_index("session_number").reindex(sessions)
            # Sessions added by the reindex have no "shown" value: they are not shown.
            if not (part["shown"] == True).any():  # noqa: E712
                continue
            colour = PALETTE[k % len(PALETTE)]
            ax.plot(sessions, part["mean"], marker="o", markersize=4, color=colour, label=name)
            ax.fill_between(
                sessions, part["ci_low"], part["ci_high"], color=colour, alpha=0.18, linewidth=0
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"Mean {outcome_label} (95% CI)")
        ax.set_xticks(sessions)
        ax.legend(frameon=False)
        fig.tight_layout()
    return fig


def share_histogram(
    groups: Sequence[tuple[str, pd.Series]],
    *,
    xlabel: str,
    bins: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    min_cell: int = 11,
) -> Figure | None:
    """Grouped bars: each group's clients per bin of a share (0..1), as % of the group.

    Drawn only when every group has at least `min_cell` clients with a value and some bin can be
    shown (else None). Within a group, a bin of 1 to ``min_cell - 1`` clients is not drawn, and
    neither is the bin hidden to protect it (complementary suppression against the group's
    total, which the percentages give away); a withheld bin is marked with the suppression label
    at its foot.
    """
    edges = np.asarray(bins, dtype=float)
    values = [pd.to_numeric(v, errors="coerce").dropna().to_numpy(dtype=float) for _, v in groups]
    if not groups or any(len(v) < min_cell for v in values):
        return None
    labels = [f"{lo:g}\u2013{hi:g}" for lo, hi in itertools.pairwise(edges)]
    counts = pd.DataFrame(
        [np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0] for v in values],
        columns=labels,
        index=[name for name, _ in groups],
    )
    counts["total"] = [len(v) for v in values]
    hidden = suppression_mask(counts, [*labels, "total"], min_cell, total_column="total")
    if not ((counts[labels] > 0) & ~hidden[labels]).to_numpy().any():
        return None
    width = 0.8 / len(groups)
    x = np.arange(len(labels))
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        for k, (name, row) in enumerate(counts.iterrows()):
            offset = x - 0.4 + width * (k + 0.5)
            share = 100 * row[labels].to_numpy(dtype=float) / row["total"]
            drawn = ~hidden.loc[name, labels].to_numpy()
            colour = PALETTE[k % len(PALETTE)]
            ax.bar(offset[drawn], share[drawn], width=width * 0.95, color=colour, label=name)
            for position in offset[~drawn]:
                _withheld_mark(ax, position, min_cell)
        ax.set_xticks(x, labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("% of the group's clients")
        if len(groups) > 1:
            ax.legend(frameon=False)
        fig.tight_layout()
    return fig


def score_distributions(
    scores: Mapping[str, pd.Series], *, min_cell: int = 11, n_bins: int = 10
) -> Figure | None:
    """Histograms of scores (one panel per measure, e.g. the intake PHQ-9 and GAD-7), as % of
    the clients with a score. A measure with fewer than `min_cell` scores is left out; within a
    panel, a bin of 1 to ``min_cell - 1`` clients, and the bin hidden to protect it against the
    panel's total, is not drawn. None when nothing can be drawn."""
    panels = []
    for label, series in scores.items():
        values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)
        if len(values) < min_cell:
            continue
        edges = bin_edges(values, n_bins)
        bins = list(range(len(edges) - 1))
        counts = pd.DataFrame([np.histogram(values, bins=edges)[0]], columns=bins)
        counts["total"] = len(values)
        hidden = suppression_mask(counts, [*bins, "total"], min_cell, total_column="total")
        drawn = ~hidden[bins].to_numpy()[0]
        panels.append((label, edges, counts[bins].to_numpy(float)[0], drawn, len(values)))
    if not panels:
        return None
    with style():
        fig = Figure(figsize=FIGURE_SIZE_IN, dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for k, (ax, (label, edges, counts, drawn, n)) in enumerate(zip(axes, panels, strict=True)):
            centres = (edges[:-1] + edges[1:]) / 2
            width = np.diff(edges)
            share = 100 * counts / n
            ax.bar(
                centres[drawn],
                share[drawn],
                width=width[drawn] * 0.95,
                color=PALETTE[k % len(PALETTE)],
            )
            for position in centres[~drawn & (counts > 0)]:
                _withheld_mark(ax, position, min_cell)
            # The axis spans every bin, drawn or withheld (with every bin withheld, the
            # withheld marks would otherwise lie outside the default axis).
            ax.set_xlim(edges[0], edges[-1])
            ax.set_xlabel(label)
            ax.set_title(f"n = {suppress_count(n, min_cell)}", fontsize=10, loc="left")
        axes[0].set_ylabel("% of clients")
        fig.tight_layout()
    return fig


def prepost_figure(
    first: pd.Series,
    last: pd.Series,
    *,
    label: str,
    reliable_change: float | None,
    cutoff: float | None,
    min_cell: int = 11,
    n_bins: int = 9,
) -> Figure | None:
    """Binned pre/post counts: clients per cell of (first, last) score, with the line of no
    change, the band of change smaller than `reliable_change` around it, and the clinical
    `cutoff` on both axes.

    No client is drawn as a point. A cell of 1 to ``min_cell - 1`` clients is not drawn, and
    complementary suppression over the grid's rows and columns (whose totals are the
    distributions of first and last scores) hides the cells that would give one away. None
    with fewer than `min_cell` clients or no cell left to draw.
    """
    pair = pd.DataFrame({"first": first, "last": last}).apply(pd.to_numeric, errors="coerce")
    pair = pair.dropna().astype(float)
    if len(pair) < min_cell:
        return None
    edges = bin_edges(pair.to_numpy().ravel(), n_bins)
    n_bins = len(edges) - 1
    low, high = float(edges[0]), float(edges[-1])
    grid, _, _ = np.histogram2d(pair["last"], pair["first"], bins=[edges, edges])
    table = pd.DataFrame(grid.astype(int), columns=[f"c{j}" for j in range(n_bins)])
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    hidden = suppression_mask(
        table, list(table.columns), min_cell, total_row="total", total_column="total"
    )
    shown = hidden.iloc[:n_bins, :n_bins].to_numpy()
    counts = np.where(shown | (grid == 0), np.nan, grid)
    if np.isnan(counts).all():
        return None
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        mesh = ax.pcolormesh(
            edges, edges, counts, cmap="Blues", vmin=0, edgecolor="white", zorder=2
        )
        bar = fig.colorbar(mesh, ax=ax)
        bar.set_label("Clients per cell")
        line = np.array([low, high])
        ax.plot(line, line, color="#333333", linewidth=1, label="No change", zorder=3)
        if reliable_change is not None and np.isfinite(reliable_change):
            ax.fill_between(
                line,
                line - reliable_change,
                line + reliable_change,
                color="#999999",
                alpha=0.25,
                linewidth=0,
                zorder=1,
                label=f"Change under {reliable_change:g} points (not reliable)",
            )
        if cutoff is not None and np.isfinite(cutoff):
            ax.axvline(cutoff, color=PALETTE[1], linestyle="--", linewidth=1, zorder=3)
            ax.axhline(
                cutoff,
                color=PALETTE[1],
                linestyle="--",
                linewidth=1,
                zorder=3,
                label="Clinical cut-off",
            )
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel(f"First {label}")
        ax.set_ylabel(f"Last {label}")
        ax.legend(frameon=False, loc="upper left", fontsize=9)
        fig.tight_layout()
    return fig


#: The scales of a forest plot's panels, in the order drawn. Estimates on different scales
#: never share an axis: a per-session slope, an end-point difference, a ratio and a mediation
#: decomposition each get their own panel.
FOREST_SCALES: Mapping[str, str] = {
    "slope": "Difference in change per unit of time (outcome points)",
    "endpoint": "Difference at the end of treatment (outcome points)",
    "other": "Other regression coefficients (b)",
    "ratio": "Odds or hazard ratio (log scale)",
    "mediation": "Mediation decomposition (outcome points)",
}
_MEDIATION_TERMS = ("acme", "ade", "total_effect")
_ENDPOINT_KINDS = ("ancova", "ancova_mice", "therapist_post", "clinical_change")


def forest_scale(row: Mapping[str, Any], diag: Mapping[str, Any]) -> str:
    """The `FOREST_SCALES` key of a model's exposure term: a ratio for a model that gives one,
    a mediation decomposition, a time-by-exposure slope, an end-point difference (a post
    score or an ANCOVA), else another coefficient."""
    ratio = row.get("ratio")
    if ratio is not None and pd.notna(ratio):
        return "ratio"
    term, kind = str(row.get("term", "")), str(diag.get("kind", ""))
    if kind == "mediation" or term in _MEDIATION_TERMS:
        return "mediation"
    if term.startswith("time:"):
        return "slope"
    if kind in _ENDPOINT_KINDS or str(row.get("outcome", "")).endswith("_post"):
        return "endpoint"
    return "other"


#: Font sizes of a forest plot in points: the figure is 8 inches wide, so at a two-column
#: page width (about 7 inches) its smallest text still prints at 8 points or more.
FOREST_FONT = {"ticks": 10, "labels": 11}


def forest_figure(rows: pd.DataFrame) -> Figure | None:
    """A forest plot: one row per estimate (columns label, estimate, ci_low, ci_high, and
    ``scale``): one panel per scale, in the order of `FOREST_SCALES`, each with its own x
    axis; ratio scales are drawn on a log axis with the null line at 1, others at 0. The row
    marked ``primary`` (if any) is drawn in the second colour. None when `rows` is empty."""
    if rows.empty:
        return None
    order = list(FOREST_SCALES.values())
    scales = sorted(
        dict.fromkeys(rows["scale"]), key=lambda s: order.index(s) if s in order else len(order)
    )
    with style():
        fig = Figure(figsize=FIGURE_SIZE_IN, dpi=100)
        FigureCanvasAgg(fig)
        heights = [max(len(rows.loc[rows["scale"] == s]), 1) + 1.2 for s in scales]
        axes = fig.subplots(len(scales), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, scale in zip(axes, scales, strict=True):
            _forest_panel(ax, rows.loc[rows["scale"] == scale].reset_index(drop=True), scale)
        fig.tight_layout()
    return fig


def _forest_panel(ax: Any, part: pd.DataFrame, scale: str) -> None:
    y = np.arange(len(part))[::-1]
    ratio = "ratio" in scale.lower()
    est = part["estimate"].to_numpy(float)
    low = part["ci_low"].to_numpy(float)
    high = part["ci_high"].to_numpy(float)
    primary = (
        part["primary"].fillna(False).astype(bool).to_numpy()
        if "primary" in part.columns
        else np.zeros(len(part), dtype=bool)
    )
    for mask, colour in ((~primary, PALETTE[0]), (primary, PALETTE[1])):
        if mask.any():
            ax.errorbar(
                est[mask],
                y[mask],
                xerr=[est[mask] - low[mask], high[mask] - est[mask]],
                fmt="o",
                color=colour,
                ecolor=colour,
                capsize=3,
                markersize=5,
            )
    ax.axvline(1.0 if ratio else 0.0, color="#777777", linewidth=1, linestyle=":")
    if ratio:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y, part["label"])
    ax.set_ylim(-0.7, len(part) - 0.3)
    ax.set_xlabel(scale, fontsize=FOREST_FONT["labels"])
    ax.tick_params(axis="both", labelsize=FOREST_FONT["ticks"])


def km_figure(
    curves: Mapping[str, pd.DataFrame],
    risk: pd.DataFrame,
    *,
    xlabel: str = "Sessions attended",
    value: str = "survival",
    ylabel: str = "Still in treatment (95% CI)",
) -> Figure | None:
    """Step curves over time (columns time, `value`, ci_low, ci_high: Kaplan-Meier survival or
    a cumulative incidence) with pointwise 95% bands, and below them the number at risk (`risk`:
    one row per group, one column per time, display text already suppressed). None without a
    curve."""
    if not curves:
        return None
    with style():
        fig = new_figure(rows=2, height_ratios=[3.2, 1])
        ax, table_ax = fig.axes
        for k, (name, curve) in enumerate(curves.items()):
            colour = PALETTE[k % len(PALETTE)]
            ax.step(curve["time"], curve[value], where="post", color=colour, label=name)
            ax.fill_between(
                curve["time"],
                curve["ci_low"],
                curve["ci_high"],
                step="post",
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
        times = [float(t) for t in risk.columns]
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(ylabel)
        ax.set_xlim(min([*times, 0.0]) - 0.3, max([*times, 1.0]) + 0.3)
        ax.legend(frameon=False, loc="lower left" if value == "survival" else "upper left")
        ax.set_xticks(times)
        ax.set_xlabel(xlabel)
        table_ax.set_xlim(ax.get_xlim())
        table_ax.set_ylim(-0.5, len(risk) - 0.5)
        for i, (name, row) in enumerate(risk.iterrows()):
            y = len(risk) - 1 - i
            for t, text in zip(times, row, strict=True):
                table_ax.text(t, y, str(text), ha="center", va="center", fontsize=9)
            table_ax.text(
                ax.get_xlim()[0],
                y,
                f"{name}  ",
                ha="right",
                va="center",
                fontsize=9,
                color=PALETTE[i % len(PALETTE)],
            )
        table_ax.set_title("Number at risk", fontsize=10, loc="left")
        table_ax.axis("off")
        fig.tight_layout()
    return fig


def caterpillar_figure(effects: pd.DataFrame, *, ylabel: str) -> Figure | None:
    """Therapist effects ranked from lowest to highest with 95% intervals (columns effect,
    ci_low, ci_high); no therapist is named. None when `effects` is empty."""
    if effects.empty:
        return None
    effects = effects.sort_values("effect", kind="stable").reset_index(drop=True)
    x = np.arange(1, len(effects) + 1)
    est = effects["effect"].to_numpy(float)
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        ax.errorbar(
            x,
            est,
            yerr=[
                est - effects["ci_low"].to_numpy(float),
                effects["ci_high"].to_numpy(float) - est,
            ],
            fmt="o",
            color=PALETTE[0],
            ecolor="#7aa6c8",
            capsize=2,
            markersize=4,
        )
        ax.axhline(0, color="#777777", linewidth=1, linestyle=":")
        ax.set_xlabel("Therapists, ranked by effect")
        ax.set_ylabel(ylabel)
        ax.set_xticks(x if len(x) <= 30 else x[:: max(len(x) // 15, 1)])
        fig.tight_layout()
    return fig


def bin_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """About `n_bins` equal bins over the values; for whole-number scores the edges fall
    half-way between scores, so each bin holds the same number of possible scores."""
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    if np.allclose(values, np.round(values)):
        width = max(1, math.ceil((high - low + 1) / n_bins))
        count = math.ceil((high - low + 1) / width)
        return low - 0.5 + width * np.arange(count + 1)
    if high == low:
        high = low + 1
    return np.linspace(low, high, n_bins + 1)


def _withheld_mark(ax: Any, position: float, min_cell: int) -> None:
    # In axes coordinates vertically, so the mark never stretches the axes.
    ax.text(
        position,
        0.01,
        suppressed_label(min_cell),
        transform=ax.get_xaxis_transform(),
        ha="center",
        va="bottom",
        fontsize=8,
        color=_MARK,
    )
