"""Outcomes: mean trajectories with 95% CIs by arm, clinical-change categories, NHS Talking
Therapies indicators, and the binned pre/post plot with the reliable-change band and cut-off."""

from __future__ import annotations

import pandas as pd

from accord.core.disclosure import NOT_AVAILABLE, suppress_count, suppress_table, suppressed_label
from accord.report import aggregate as agg
from accord.report.context import ReportContext
from accord.report.figures import prepost_figure, to_plot, trajectory_figure, trajectory_summary
from accord.report.ledger import Ledger
from accord.report.numbers import finite, num
from accord.report.parts import Heading, Section, Text, table
from accord.report.text import instrument_label

CATEGORY_LABELS = {
    "recovered": "Recovered",
    "improved": "Improved",
    "unchanged": "Unchanged",
    "deteriorated": "Deteriorated",
}
#: NHS Talking Therapies indicators: column, label, and what the percentage is of.
NHS_INDICATORS = (
    ("nhs_finished", "Finished", "clients"),
    ("nhs_caseness", "At caseness", "finished"),
    ("nhs_recovery", "Recovery", "cases"),
    ("nhs_reliable_improvement", "Reliable improvement", "finished"),
    ("nhs_reliable_recovery", "Reliable recovery", "cases"),
    ("nhs_reliable_deterioration", "Reliable deterioration", "finished"),
)


def build(ctx: ReportContext) -> Section:
    """The Outcomes section."""
    section = Section("outcomes", "Outcomes")
    section.add(Heading("Trajectories", "trajectory"))
    outcomes = list(dict.fromkeys([ctx.outcome, *ctx.secondary_outcomes]))
    for k, outcome in enumerate(outcomes):
        if k and (ctx.panel is None or outcome not in ctx.panel.columns):
            continue
        section.add(*_trajectory(ctx, outcome, instrument_label(outcome)))
    section.add(Heading("Clinical change", "clinical-change"))
    section.add(*_change(ctx))
    section.add(Heading("Pre/post scores", "pre-post"))
    section.add(*_prepost(ctx))
    return section


def _trajectory(ctx: ReportContext, outcome: str, label: str) -> list:
    panel, min_cell = ctx.panel, ctx.min_cell
    if panel is None or outcome not in panel.columns:
        return [Text(f"No {label} scores were found in the session panel.", "missing")]
    summary = trajectory_summary(panel, outcome, group="arm", min_cell=min_cell)
    arms = agg.by_arm(ctx.clients, " and arm")
    out: list = []
    fig = trajectory_figure(summary, label)
    if fig is not None:
        out.append(
            to_plot(
                fig,
                f"outcomes_trajectory_{outcome}",
                alt=f"Mean {label} by session{arms} with 95% confidence bands",
                caption=(
                    f"Mean {label} by session (0 = intake){arms}, with 95% confidence "
                    f"intervals over the clients assessed at each session. Sessions with fewer "
                    f"than {min_cell} clients{agg.by_arm(ctx.clients, ' in an arm')} are not "
                    "drawn."
                ),
            )
        )
    else:
        out.append(
            Text(
                f"No session had {min_cell} or more clients with a {label} score in any arm, so "
                "nothing is drawn."
            )
        )
    groups = sorted(summary["group"].unique())
    # Clients assessed per session over all arms; per-arm counts are left out, as at intake
    # they would give away arm sizes withheld in the Sample section.
    assessed = panel.loc[panel[outcome].notna()].groupby("session_number")["client_id"].nunique()
    rows = []
    for session, part in summary.groupby("session_number", sort=True):
        cells = {
            r["group"]: (
                f"{num(r['mean'], 1)} [{num(r['ci_low'], 1)}, {num(r['ci_high'], 1)}]"
                if r["shown"]
                else suppressed_label(min_cell)
            )
            for _, r in part.iterrows()
        }
        rows.append(
            [
                str(int(session)),
                *(cells.get(g, NOT_AVAILABLE) for g in groups),
                suppress_count(int(assessed.get(session, 0)), min_cell),
            ]
        )
    out.append(
        table(
            f"outcomes_trajectory_{outcome}",
            f"Mean {label} [95% CI]{agg.by_arm(ctx.clients)}, and clients assessed",
            ["Session", *groups, "Clients assessed"],
            rows,
        )
    )
    return out


def _change(ctx: ReportContext) -> list:
    clients, outcome, label, min_cell = ctx.clients, ctx.outcome, ctx.outcome_label, ctx.min_cell
    out: list = []
    category = f"{outcome}_category"
    if clients is None or category not in clients.columns:
        out.append(
            Text(f"No {label} change categories were found in the client measures.", "missing")
        )
    else:
        out.append(_categories(clients, category, label, min_cell, ctx.ledger))
    nhs = [c for c in NHS_INDICATORS if clients is not None and c[0] in clients.columns]
    if nhs:
        grouped = agg.groups(clients)
        cells = {
            column: agg.rate_cells(grouped, column, min_cell, ledger=ctx.ledger)
            for column, _, _ in nhs
        }
        _nhs_denominators(ctx.ledger, [name for name, _ in grouped], [c for c, _, _ in nhs])
        out.append(
            table(
                "outcomes_nhs_indicators",
                f"NHS Talking Therapies indicators{agg.by_arm(clients)}, clients (%)",
                ["Group", *(f"{lab} (% of {of})" for _, lab, of in nhs)],
                [
                    [name, *(cells[column][i] for column, _, _ in nhs)]
                    for i, (name, _) in enumerate(grouped)
                ],
                note=(
                    "Finished: treatment ended (not ongoing) after two or more attended "
                    "sessions. Caseness: PHQ-9 \u2265 10 or GAD-7 "
                    "\u2265 8 at first; cases: finished clients at caseness. Recovery rate = "
                    "recovered / cases, recovered meaning below caseness on both at last. "
                    "Reliable improvement: on PHQ-9 or GAD-7 and reliable deterioration on "
                    "neither; reliable recovery: recovery with reliable improvement; reliable "
                    "deterioration: on either. Indicators other than finished need first and "
                    "last scores on both measures."
                ),
            )
        )
    else:
        out.append(
            Text(
                "No NHS Talking Therapies indicators were found in the client measures.", "missing"
            )
        )
    response = [
        c for c in ("phq9_response", "phq9_remission") if clients is not None and c in clients
    ]
    if response:
        grouped = agg.groups(clients)
        cells = {
            column: agg.rate_cells(grouped, column, min_cell, ledger=ctx.ledger)
            for column in response
        }
        names = {"phq9_response": "Response", "phq9_remission": "Remission"}
        out.append(
            table(
                "outcomes_phq9_response",
                f"PHQ-9 response and remission{agg.by_arm(clients)}, clients (%)",
                ["Group", *(names[c] for c in response)],
                [
                    [name, *(cells[column][i] for column in response)]
                    for i, (name, _) in enumerate(grouped)
                ],
                note=(
                    "Both among baseline cases only: the denominator is the clients starting at "
                    "10 or more with an end-of-treatment score. Response: PHQ-9 at most half "
                    "the intake score; remission: PHQ-9 below 5."
                ),
            )
        )
    return out


#: Each NHS indicator's denominator is another indicator's count ("% of finished", "% of
#: cases"): a reader can equate them, so the audit does too (where they are equal).
_NHS_DENOMINATORS = {
    "nhs_caseness": "nhs_finished",
    "nhs_recovery": "nhs_caseness",
    "nhs_reliable_recovery": "nhs_caseness",
    "nhs_reliable_improvement": "nhs_finished",
    "nhs_reliable_deterioration": "nhs_finished",
}


def _nhs_denominators(ledger, groups: list[str], columns: list[str]) -> None:
    for column, of in _NHS_DENOMINATORS.items():
        if column in columns and of in columns:
            for group in groups:
                ledger.same(f"rate[{column}][{group}].defined", f"rate[{of}][{group}].yes")


def _categories(clients: pd.DataFrame, category: str, label: str, min_cell: int, ledger: Ledger):
    grouped = agg.groups(clients)
    values = clients[category].astype(object).where(clients[category].notna(), None)
    counts = pd.DataFrame(
        [
            {
                **{c: int((values.loc[part.index] == c).sum()) for c in CATEGORY_LABELS},
                "n": int(values.loc[part.index].isin(list(CATEGORY_LABELS)).sum()),
            }
            for _, part in grouped
        ],
        index=[name for name, _ in grouped],
    )
    shown = suppress_table(
        counts,
        [*CATEGORY_LABELS, "n"],
        min_cell,
        total_row=grouped[-1][0] if len(grouped) > 1 else None,
        total_column="n",
    )
    rows = []
    for name in counts.index:
        # Clients with a category, a part of the group: the rest have none (audited).
        n_text = ledger.subset(
            f"n[{category}][{name}]",
            counts.loc[name, "n"],
            of=agg.group_key(str(name)),
            rest=f"without[{category}][{name}]",
            text=shown.loc[name, "n"],
        )
        # Each category's count, a part of that total (audited as such, so a withheld total
        # cannot be summed back from its row).
        cells = []
        for c in CATEGORY_LABELS:
            key = f"n[{category}][{name}][{c}]"
            text = ledger.count(key, counts.loc[name, c], shown.loc[name, c])
            if text.isdigit() and n_text.isdigit() and counts.loc[name, "n"] > 0:
                text += f" ({counts.loc[name, c] / counts.loc[name, 'n']:.1%})"
                ledger.percentage(key, f"n[{category}][{name}]", text)
            cells.append(text)
        ledger.relate(
            f"n[{category}][{name}]", [f"n[{category}][{name}][{c}]" for c in CATEGORY_LABELS]
        )
        rows.append([name, *cells, n_text])
    if len(counts) > 1:
        names = list(counts.index)
        for c in [*(f"[{c}]" for c in CATEGORY_LABELS), ""]:
            ledger.relate(
                f"n[{category}][{names[-1]}]{c}", [f"n[{category}][{g}]{c}" for g in names[:-1]]
            )
    return table(
        "outcomes_change_categories",
        f"{label}: Jacobson\u2013Truax categories{agg.by_arm(clients)}, clients (% of the row)",
        ["Group", *CATEGORY_LABELS.values(), "Total"],
        rows,
        note=(
            "Intake to the end-of-treatment (post) assessment, clients with a post score; "
            "clients without one are counted under Attrition (Data), and a category from the "
            "last observed score (LOCF) is kept only as a sensitivity column (category_last). "
            "Recovered: clinical at intake, not at post, with reliable improvement; improved: "
            "reliable improvement without "
            "recovery; deteriorated: reliable worsening. The cut-off and reliable-change values "
            "are listed under Measures."
        ),
    )


def _prepost(ctx: ReportContext) -> list:
    clients, outcome, label, min_cell = ctx.clients, ctx.outcome, ctx.outcome_label, ctx.min_cell
    first, last = f"{outcome}_first", f"{outcome}_post"
    if clients is None or first not in clients.columns or last not in clients.columns:
        return [Text(f"No intake and post {label} scores were found.", "missing")]
    # Clients with a post score (the change column is defined for them).
    several = clients
    if f"{outcome}_change" in clients.columns:
        several = clients.loc[pd.to_numeric(clients[f"{outcome}_change"], errors="coerce").notna()]
    thresholds = {}
    if isinstance(ctx.measures_metadata, dict):
        thresholds = (ctx.measures_metadata.get("change_thresholds") or {}).get(outcome) or {}
    rc = thresholds.get("reliable_change")
    if not finite(rc):
        rc = thresholds.get("rci_threshold_points")
    cutoff = thresholds.get("cutoff")
    fig = prepost_figure(
        several[first],
        several[last],
        label=label,
        reliable_change=float(rc) if finite(rc) else None,
        cutoff=float(cutoff) if finite(cutoff) else None,
        min_cell=min_cell,
    )
    if fig is None:
        return [
            Text(
                f"Fewer than {min_cell} clients have intake and post {label} scores, or every "
                "cell would be withheld, so the pre/post plot is not drawn."
            )
        ]
    rc_text = f"{num(rc, 1).removesuffix('.0')} points" if finite(rc) else "not available"
    return [
        to_plot(
            fig,
            f"outcomes_prepost_{outcome}",
            alt=f"Binned counts of intake against post {label} with the reliable-change band",
            caption=(
                f"Intake against post (end-of-treatment) {label} (clients with both), as counts "
                f"per cell of a grid; no client is drawn as a point. Cells with fewer than "
                f"{min_cell} clients, and cells withheld so that such a cell cannot be worked out "
                "from the row and column totals, are left blank. Below the diagonal is "
                f"improvement; the grey band is change smaller than the reliable change "
                f"({rc_text}); the dashed lines are the clinical cut-off."
            ),
        )
    ]
