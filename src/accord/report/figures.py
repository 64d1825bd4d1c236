"""Figures for the study report: aggregates only, drawn with matplotlib's Agg canvas.

A figure never shows a group of fewer than ``min_cell`` clients (privacy.md, section 2) and
never a single client's line. Figures are PNG bytes with no timestamp or software stamp, so the
same data give the same bytes; they are drawn on their own `Figure` objects, leaving pyplot and
the user's backend alone.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from accord.disclosure import suppressed_label, suppression_mask

ALL_CLIENTS = "All clients"
# Okabe-Ito: distinguishable with common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
_STYLE = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


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
) -> bytes | None:
    """PNG of the mean trajectories with 95% CI bands, one line per group; None if no group
    has a session with enough clients to draw.

    The x axis holds the sessions at which anyone was assessed, so a measure given every other
    session is drawn as one line; a session withheld for a group breaks that group's line.
    """
    shown = summary.loc[summary["shown"]]
    if shown.empty:
        return None
    sessions = np.sort(summary["session_number"].unique())
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 3.6), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for k, (name, part) in enumerate(summary.groupby("group", sort=True)):
            # Reindex on every session so a suppressed or absent session breaks the line.
            part = part.set_index("session_number").reindex(sessions)
            if not part["shown"].fillna(False).astype(bool).any():
                continue
            colour = PALETTE[k % len(PALETTE)]
            ax.plot(sessions, part["mean"], marker="o", markersize=3, color=colour, label=name)
            ax.fill_between(
                sessions, part["ci_low"], part["ci_high"], color=colour, alpha=0.18, linewidth=0
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"Mean {outcome_label} (95% CI)")
        ax.set_xticks(sessions)
        ax.legend(frameon=False)
        fig.tight_layout()
        return figure_png(fig)


def share_histogram(
    groups: Sequence[tuple[str, pd.Series]],
    *,
    xlabel: str,
    bins: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    min_cell: int = 11,
) -> bytes | None:
    """PNG of grouped bars: each group's clients per bin of a share (0..1), as % of the group.

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
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(6.4, 2.9), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for k, (name, row) in enumerate(counts.iterrows()):
            offset = x - 0.4 + width * (k + 0.5)
            share = 100 * row[labels].to_numpy(dtype=float) / row["total"]
            drawn = ~hidden.loc[name, labels].to_numpy()
            colour = PALETTE[k % len(PALETTE)]
            ax.bar(offset[drawn], share[drawn], width=width * 0.95, color=colour, label=name)
            for position in offset[~drawn]:
                # In axes coordinates vertically, so the mark never stretches the axes.
                ax.text(
                    position,
                    0.01,
                    suppressed_label(min_cell),
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="#555555",
                )
        ax.set_xticks(x, labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("% of the group's clients")
        if len(groups) > 1:
            ax.legend(frameon=False)
        fig.tight_layout()
        return figure_png(fig)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes without a software stamp (the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, metadata={"Software": None})
    return buffer.getvalue()
