"""Engagement, alliance and goal-setting: the process measures by arm, the alliance trajectory
and ruptures, and the goal-setting exposures with how they relate to alliance and engagement."""

from __future__ import annotations

import numpy as np
import pandas as pd

from accord.core.disclosure import suppress_proportion, suppressed_label, suppression_mask
from accord.measures.alliance import rupture_column
from accord.report import aggregate as agg
from accord.report.context import ReportContext
from accord.report.figures import share_histogram, to_plot, trajectory_figure, trajectory_summary
from accord.report.ledger import Ledger
from accord.report.numbers import num
from accord.report.parts import Heading, Plot, Section, Table, Text, table
from accord.report.text import instrument_label, scale_label

#: The goal-setting measures shown in the report, with their labels and display formats: the
#: exposures, then goal attainment (an outcome of treatment, shown alongside, never an exposure).
EXPOSURES = {
    "joint_goal_share": ("Joint goal share", "{:.2f}"),
    "late_goal_share": ("Late goal share", "{:.2f}"),
    "goal_alliance_client": ("Goal alliance (client)", "{:.2f}"),
    "goal_consensus": ("Goal consensus", "{:.2f}"),
    "goal_agreement": ("Goal agreement", "{:.2f}"),
    "smart_quality": ("SMART quality", "{:.2f}"),
    "gas_t": ("GAS T-score (last; an outcome)", "{:.1f}"),
}


def build(ctx: ReportContext) -> Section:
    """The Engagement, alliance and goal-setting section."""
    section = Section("process", "Engagement, alliance and goal-setting")
    section.add(Heading("Engagement", "engagement"))
    section.add(*_engagement(ctx))
    section.add(Heading("Alliance", "alliance"))
    section.add(*_alliance(ctx))
    section.add(Heading("Goal-setting", "goal-setting"))
    section.add(*_goalsetting(ctx))
    return section


def alliance_label(settings) -> str:
    """ "WAI-SR total, client-rated"."""
    instrument = str(settings.get("alliance_instrument", "wai_sr"))
    scale = str(settings.get("alliance_scale", "total"))
    rater = str(settings.get("alliance_rater", "client"))
    return f"{instrument_label(instrument)} {scale}, {rater}-rated"


def _engagement(ctx: ReportContext) -> list:
    clients, min_cell = ctx.clients, ctx.min_cell
    if clients is None:
        return [Text("No client measures were found (client_measures.parquet).", "missing")]
    grouped = agg.groups(clients)
    columns = {
        "sessions_attended": "{:.1f}",
        "attendance_rate": "{:.0%}",
        "homework_rate": "{:.0%}",
        "goal_review_rate": "{:.0%}",
    }
    rows = []
    for name, part in grouped:
        row = {"group": name}
        for column, fmt in columns.items():
            row[column] = agg.mean_sd(part, column, min_cell, fmt=fmt)
        rows.append(row)
    agg.protect_overall(rows, list(columns), min_cell)
    # Dropouts and non-dropouts per group, with the overall row as the total: a small count
    # in one arm must not be recoverable from the others.
    counts = pd.DataFrame(
        [_dropout_counts(part) for _, part in grouped], index=[name for name, _ in grouped]
    )
    hidden = suppression_mask(
        counts,
        ["dropout", "stayed", "defined"],
        min_cell,
        total_row=grouped[-1][0],
        total_column="defined",
    )
    for row, (name, c) in zip(rows, counts.iterrows(), strict=True):
        if hidden.loc[name, ["dropout", "stayed"]].any():
            row["dropout_rate"] = suppressed_label(min_cell)
        else:
            row["dropout_rate"] = suppress_proportion(
                int(c["dropout"]), int(c["defined"]), min_cell
            )
    definition = str(ctx.settings.get("dropout_definition"))
    return [
        table(
            "engagement",
            f"Attendance, homework, goal reviews and dropout{agg.by_arm(clients)}: mean (SD), "
            "dropout rate",
            [
                "Group",
                "Sessions attended",
                "Attendance rate",
                "Homework completion",
                "Goal-review rate",
                "Dropout rate",
            ],
            [[r["group"], *(r[c] for c in columns), r["dropout_rate"]] for r in rows],
            note=(
                "Attendance rate: attended / scheduled sessions. Homework completion: mean "
                "completion over sessions with homework set (clients with homework only). "
                "Goal-review rate: share of attended sessions with a goal review. Dropout: "
                f"{ctx.dropout_text()} (dropout_definition = {definition}); the rate is over "
                "clients for whom dropout is defined."
            ),
        )
    ]


def _dropout_counts(part: pd.DataFrame) -> dict[str, int]:
    if "dropout" not in part.columns:
        return {"dropout": 0, "stayed": 0, "defined": 0}
    values = part["dropout"].dropna().astype(bool)
    dropout = int(values.sum())
    return {"dropout": dropout, "stayed": len(values) - dropout, "defined": len(values)}


def _alliance(ctx: ReportContext) -> list:
    clients, panel, settings, min_cell = ctx.clients, ctx.panel, ctx.settings, ctx.min_cell
    label = alliance_label(settings)
    short = scale_label(
        str(settings.get("alliance_instrument", "wai_sr")),
        str(settings.get("alliance_scale", "total")),
    )
    measures = ["early_alliance", "mean_alliance", "alliance_slope"]
    out: list = []
    available = clients is not None and any(c in clients.columns for c in measures)
    if available:
        grouped = agg.groups(clients)
        n_early = agg.n_cells(grouped, "early_alliance", min_cell, ledger=ctx.ledger)
        rows = []
        for (name, part), n in zip(grouped, n_early, strict=True):
            rows.append(
                {
                    "group": name,
                    "n": n,
                    "early_alliance": agg.mean_sd(part, "early_alliance", min_cell, fmt="{:.2f}"),
                    "mean_alliance": agg.mean_sd(part, "mean_alliance", min_cell, fmt="{:.2f}"),
                    "alliance_slope": agg.mean_sd(part, "alliance_slope", min_cell, fmt="{:.3f}"),
                }
            )
        agg.protect_overall(rows, measures, min_cell)
        early = settings.get("early_sessions", 3)
        out.append(
            table(
                "alliance",
                f"Alliance ({label}){agg.by_arm(clients)}: mean (SD)",
                ["Group", "Clients", "Early alliance", "Mean alliance", "Slope per session"],
                [[r["group"], r["n"], *(r[m] for m in measures)] for r in rows],
                note=(
                    f"Early alliance: mean of the first {early} assessed sessions; clients: "
                    "those with an early alliance score. Slope: least-squares change per "
                    "session (clients with two or more assessments)."
                ),
            )
        )
    else:
        out.append(Text("No alliance measures were found in the client measures.", "missing"))
    if panel is not None and "alliance" in panel.columns:
        summary = trajectory_summary(panel, "alliance", group="arm", min_cell=min_cell)
        arms = agg.by_arm(ctx.clients, " and arm")
        fig = trajectory_figure(summary, short, xlabel="Session")
        if fig is not None:
            out.append(
                to_plot(
                    fig,
                    "alliance_trajectory",
                    alt=f"Mean {short} by session{arms} with 95% confidence bands",
                    caption=(
                        f"Mean alliance ({label}) by session{arms}, with 95% confidence "
                        "intervals over the clients assessed at each session. Only sessions at "
                        "which the alliance was assessed are shown; sessions with fewer than "
                        f"{min_cell} clients{agg.by_arm(ctx.clients, ' in an arm')} are not "
                        "drawn."
                    ),
                )
            )
        else:
            out.append(
                Text(
                    f"No session had {min_cell} or more clients with an alliance score in any "
                    "arm, so no trajectory is drawn."
                )
            )
    else:
        out.append(Text("No alliance scores were found in the session panel.", "missing"))
    if available:
        out.append(_ruptures(clients, settings, min_cell, ctx.ledger))
    return out


def _ruptures(clients: pd.DataFrame, settings, min_cell: int, ledger: Ledger):
    sds = [k for k in settings.get("rupture_sds") or [1, 2] if rupture_column(k) in clients]
    if not sds:
        return Text("No rupture counts were found in the client measures.", "missing")
    flags = {}
    for k in sds:
        count = pd.to_numeric(clients[rupture_column(k)], errors="coerce")
        repaired = pd.to_numeric(
            clients.get(rupture_column(k, True), pd.Series(np.nan, index=clients.index)),
            errors="coerce",
        )
        flags[f"_rupture_{k:g}"] = agg.flag(count > 0, count.isna())
        # Repair is defined for clients with at least one rupture.
        flags[f"_repaired_{k:g}"] = agg.flag(repaired > 0, ~(count > 0) | repaired.isna())
    flagged = agg.groups(clients.assign(**flags))
    cells = {name: agg.rate_cells(flagged, name, min_cell, ledger=ledger) for name in flags}
    labels = [num(k, 1).removesuffix(".0") for k in sds]
    rows = [
        [
            name,
            *(c for k in sds for c in (cells[f"_rupture_{k:g}"][i], cells[f"_repaired_{k:g}"][i])),
        ]
        for i, (name, _) in enumerate(flagged)
    ]
    window = settings.get("rupture_repair_window", 3)
    return table(
        "alliance_ruptures",
        f"Alliance ruptures{agg.by_arm(clients)}: clients (%)",
        ["Group", *(c for _ in sds for c in ("\u2265 1 rupture", "Repaired"))],
        rows,
        spans=(("", 1), *((f"{k} SD", 2) for k in labels)),
        note=(
            "A rupture: an assessed session whose alliance falls at least k of the client\u2019s "
            "own SDs below the previous assessed session. \u201c\u2265 1 rupture\u201d is of the "
            "clients with two or more alliance assessments; \u201crepaired\u201d is of the "
            "clients with a rupture, counting those with at least one rupture repaired "
            f"(alliance back to its pre-rupture level within {window} assessed sessions)."
        ),
    )


def _goalsetting(ctx: ReportContext) -> list:
    """Goal-setting: the exposures by arm, the joint goal share's distribution and how the
    exposures correlate with alliance, engagement and change."""
    clients = ctx.clients
    exposures = [c for c in EXPOSURES if clients is not None and c in clients.columns]
    if not exposures:
        return [Text("No goal-setting measures were found in the client measures.", "missing")]
    grouped = agg.groups(clients)
    out: list = [_goalsetting_exposures(ctx, exposures, grouped)]
    if "joint_goal_share" in clients.columns:
        out.append(_joint_goal_share_plot(ctx, grouped))
    correlations = _goalsetting_correlations(ctx)
    if correlations is not None:
        out.append(correlations)
    return out


def _goalsetting_exposures(ctx: ReportContext, exposures: list[str], grouped: list) -> Table:
    """The table of each goal-setting measure's mean (SD) and n by arm (cells suppressed)."""
    clients, min_cell = ctx.clients, ctx.min_cell
    names = [name for name, _ in grouped]
    rows = []
    for column in exposures:
        label, fmt = EXPOSURES[column]
        means = [
            {"group": name, "value": agg.mean_sd(part, column, min_cell, fmt=fmt)}
            for name, part in grouped
        ]
        agg.protect_overall(means, ["value"], min_cell)
        counts = agg.n_cells(grouped, column, min_cell, ledger=ctx.ledger)
        rows.append(
            [label, *(c for m, n in zip(means, counts, strict=True) for c in (m["value"], n))]
        )
    return table(
        "goalsetting_exposures",
        f"Collaborative goal-setting measures{agg.by_arm(clients)}",
        ["Measure", *(c for _ in names for c in ("Mean (SD)", "n"))],
        rows,
        spans=(("", 1), *((name, 2) for name in names)),
        note=(
            "Exposures use the goals set in the early window; late goal share: share of "
            "the client\u2019s goals set after it. Joint goal share: share of the early goals "
            "set jointly. Goal alliance (client): WAI-SR Goal subscale (1\u20135), "
            "client-rated, early sessions. Goal consensus: mean |client \u2212 therapist| on "
            "the WAI-SR Goal subscale in the early sessions both rated (0 = agreement). Goal "
            "agreement: 1 \u2212 mean client\u2013therapist importance gap / 4. SMART "
            "quality: mean share of SMART criteria met. GAS T-score at the last rated "
            "session (50 = expected attainment), an outcome of treatment, not an exposure. "
            "n: clients with a value."
        ),
    )


def _joint_goal_share_plot(ctx: ReportContext, grouped: list) -> Plot | Text:
    """The histogram of the joint goal share by arm, or a line saying why it is not drawn."""
    clients, min_cell = ctx.clients, ctx.min_cell
    arms = grouped[:-1] or grouped
    shares = [(name, part["joint_goal_share"]) for name, part in arms]
    whose = "each arm\u2019s" if agg.has_arms(clients) else "all"
    fig = share_histogram(shares, xlabel="Joint goal share", min_cell=min_cell)
    if fig is None:
        return Text(
            f"The joint goal share is not drawn: an arm has fewer than {min_cell} "
            "clients with a value, or every bin would be withheld."
        )
    return to_plot(
        fig,
        "goalsetting_joint_goal_share",
        alt=f"Distribution of the joint goal share{agg.by_arm(clients)}",
        caption=(
            f"Joint goal share{agg.by_arm(clients)}, as % of {whose} clients. "
            "A bin with "
            f"fewer than {min_cell} clients, and a bin withheld so that it cannot be "
            "worked out from the others, is not drawn and is marked "
            f"\u201c{suppressed_label(min_cell)}\u201d."
        ),
    )


def _goalsetting_correlations(ctx: ReportContext) -> Table | None:
    """Pearson r [95% CI] of each goal-setting exposure with alliance, engagement and change
    over all clients (a correlation from fewer than min_cell clients withheld); None when no
    pair is present."""
    clients, min_cell = ctx.clients, ctx.min_cell
    correlates = [
        ("early_alliance", "Early alliance"),
        ("mean_alliance", "Mean alliance"),
        ("attendance_rate", "Attendance rate"),
        ("homework_rate", "Homework completion"),
        (f"{ctx.outcome}_change", f"{ctx.outcome_label} change, intake to post"),
    ]
    correlates = [(c, label) for c, label in correlates if c in clients.columns]
    rows, sizes = [], []
    exposures = (
        "joint_goal_share",
        "goal_alliance_client",
        "goal_consensus",
        "goal_agreement",
        "smart_quality",
    )
    for column in exposures:
        if column not in clients.columns:
            continue
        cells = [agg.correlation(clients, column, y, min_cell) for y, _ in correlates]
        sizes += [int(c["n"]) for c in cells if c["n"]]
        rows.append([EXPOSURES[column][0], *(_r_cell(c) for c in cells)])
    if not (rows and correlates):
        return None
    n_text = (
        f"n = {min(sizes)}"
        if sizes and min(sizes) == max(sizes)
        else f"n = {min(sizes)} to {max(sizes)}"
        if sizes
        else ""
    )
    return table(
        "goalsetting_correlations",
        "How the goal-setting exposures relate to alliance and engagement: Pearson r "
        "[95% CI], all clients",
        ["Exposure", *(label for _, label in correlates)],
        rows,
        note=(
            f"Over the clients with both values ({n_text}); a correlation from fewer "
            f"than {min_cell} "
            "clients is withheld. Goal alliance (client) shares its items with the WAI-SR "
            "total, so its correlation with alliance is partly one of a scale with itself. "
            "Change is last minus first assessment."
        ),
    )


def _r_cell(cell: dict[str, str]) -> str:
    """ "r [low, high]"."""
    text = cell["r"]
    if cell["ci"]:
        text += f" {cell['ci']}"
    return text
