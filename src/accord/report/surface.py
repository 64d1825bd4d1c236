"""Figures of the goal models: the response surface of a congruence model as a contour, and
the expected-recovery bands of a not_on_track model.

The surface is drawn from the fitted polynomial alone, never from clients' ratings, so it
shows no single client. Its height is the predicted outcome relative to agreement at the scale
midpoint (C = T = midpoint), on the model's scale (points of the outcome, or log-odds for a
yes/no outcome), which keeps covariates out of the picture. The line of congruence (C = T) is
drawn solid and the line of incongruence (C + T = 2 x midpoint) dashed, as in the R package
RSA's plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from accord.report.figures import new_figure, style

POLYNOMIAL_TERMS = ("C", "T", "C^2", "C*T", "T^2")


def surface_height(
    b: Mapping[str, float], client: np.ndarray, therapist: np.ndarray, midpoint: float
) -> np.ndarray:
    """b1 C + b2 T + b3 C^2 + b4 C T + b5 T^2 at ratings centred on `midpoint`."""
    c = np.asarray(client, dtype=float) - midpoint
    t = np.asarray(therapist, dtype=float) - midpoint
    terms = (c, t, c * c, c * t, t * t)
    return sum(b[name] * term for name, term in zip(POLYNOMIAL_TERMS, terms, strict=True))


def congruence_surface_figure(
    b: Mapping[str, float],
    *,
    midpoint: float,
    limits: Sequence[float],
    outcome_label: str,
    rating_label: str = "WAI-SR Goal",
    logistic: bool = False,
    grid_points: int = 61,
) -> Figure:
    """A filled contour of the fitted surface over `limits` (low, high) on both rating axes,
    with the lines of congruence and incongruence (see the module docstring)."""
    low, high = float(limits[0]), float(limits[1])
    axis = np.linspace(low, high, grid_points)
    client, therapist = np.meshgrid(axis, axis)
    height = surface_height(b, client, therapist, midpoint)
    scale = "log-odds" if logistic else "points"
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        filled = ax.contourf(client, therapist, height, levels=12, cmap="viridis")
        lines = ax.contour(client, therapist, height, levels=12, colors="white", linewidths=0.4)
        ax.clabel(lines, fontsize=7, fmt="%.2g")
        ax.plot([low, high], [low, high], color="black", linewidth=1.5, label="congruence (C = T)")
        ax.plot(
            [low, high],
            [2 * midpoint - low, 2 * midpoint - high],
            color="black",
            linewidth=1.5,
            linestyle="--",
            label="incongruence (C + T constant)",
        )
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel(f"Client rating ({rating_label})")
        ax.set_ylabel(f"Therapist rating ({rating_label})")
        colorbar = fig.colorbar(filled, ax=ax)
        colorbar.set_label(f"{outcome_label}: difference from agreement at {midpoint:g} ({scale})")
        ax.legend(loc="upper left", fontsize=8, frameon=True)
        fig.tight_layout()
    return fig


def not_on_track_figure(
    trajectories: Sequence[Mapping[str, float | str]], *, outcome_label: str, band: float = 0.8
) -> Figure | None:
    """Mean observed scores per intake band and session against the mean expected curve and
    its tolerance band (rows of a not_on_track model's ``extras["trajectories"]``, which hold
    only cells of at least min_cell clients). None when there is nothing to draw."""
    if not trajectories:
        return None
    from accord.report.figures import PALETTE

    bands = sorted({str(row["severity"]) for row in trajectories})
    with style():
        fig = new_figure()
        ax = fig.axes[0]
        for colour, name in zip(PALETTE, bands, strict=False):
            rows = sorted(
                (r for r in trajectories if r["severity"] == name),
                key=lambda r: float(r["session_number"]),
            )
            session = [float(r["session_number"]) for r in rows]
            ax.fill_between(
                session,
                [float(r["lower"]) for r in rows],
                [float(r["upper"]) for r in rows],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
            ax.plot(session, [float(r["expected"]) for r in rows], color=colour, linestyle="--")
            ax.plot(
                session,
                [float(r["observed"]) for r in rows],
                color=colour,
                marker="o",
                markersize=3,
                label=f"{name} at intake",
            )
        ax.set_xlabel("Session")
        ax.set_ylabel(outcome_label)
        ax.set_title(
            f"Observed means (points), expected (dashed) and central {band:.0%} band",
            fontsize=10,
        )
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
    return fig
