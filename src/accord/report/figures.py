"""Figures for the study report: aggregates only, drawn with matplotlib's Agg canvas.

A figure never shows a group of fewer than ``min_cell`` clients (privacy.md, section 2) and
never a single client's line. Figures are PNG bytes with no timestamp or software stamp, so the
same data give the same bytes; they are drawn on their own `Figure` objects, leaving pyplot and
the user's backend alone.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

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


def trajectory_figure(summary: pd.DataFrame, outcome_label: str) -> bytes | None:
    """PNG of the mean trajectories with 95% CI bands, one line per group; None if no group
    has a session with enough clients to draw."""
    shown = summary.loc[summary["shown"]]
    if shown.empty:
        return None
    sessions = np.arange(summary["session_number"].min(), summary["session_number"].max() + 1)
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
        ax.set_xlabel("Session (0 = intake)")
        ax.set_ylabel(f"Mean {outcome_label} (95% CI)")
        ax.set_xticks(sessions)
        ax.legend(frameon=False)
        fig.tight_layout()
        return figure_png(fig)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes without a software stamp (the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, metadata={"Software": None})
    return buffer.getvalue()
