"""Dropout: cumulative incidence of dropout by arm (or exposure tertile), completion competing,
with the number at risk, the cause-specific log-rank test, and the dropout models' odds and
cause-specific hazard ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd

from accord.core.disclosure import coarsened_steps, suppress_count, suppress_table, suppressed_label
from accord.models.competing import END_EVENT, aalen_johansen, cif_interval, end_event_codes
from accord.models.dropout import exposure_tertiles
from accord.report.aggregate import ALL_CLIENTS, group_key, has_arms
from accord.report.context import ReportContext
from accord.report.figures import km_figure, to_plot
from accord.report.labels import label, term_label
from accord.report.numbers import finite, interval, num, p_phrase, p_value
from accord.report.parts import Section, Text, table
from accord.report.sections.sample import fewer_tertiles

TIME, EVENT = "sessions_to_dropout", "dropout_event"


def build(ctx: ReportContext) -> Section:
    """The Dropout section."""
    section = Section("dropout", "Dropout")
    section.add(Text(f"Dropout: {ctx.dropout_text()}."))
    section.add(*_cumulative_incidence(ctx))
    section.add(*_logrank(ctx))
    section.add(*_ratios(ctx))
    return section


def dropout_groups(ctx: ReportContext) -> tuple[pd.DataFrame | None, str, bool]:
    """Per client: group, time and cause (1 dropout, 2 completion, 0 censored), the name of
    the grouping (arm, else tertiles of the primary exposure) and whether completion is known
    (from `end_event`; without it every client who did not drop out is censored). None without
    the columns."""
    clients = ctx.clients
    if clients is None or TIME not in clients.columns:
        return None, "", False
    competing = END_EVENT in clients.columns
    if not competing and EVENT not in clients.columns:
        return None, "", False
    if "arm" in clients.columns and clients["arm"].notna().any():
        group, name = clients["arm"].astype(object), "arm"
    elif ctx.exposure in clients.columns:
        group, _ = exposure_tertiles(clients[ctx.exposure])
        name = f"tertile of {ctx.exposure}"
    else:
        group, name = pd.Series("All clients", index=clients.index, dtype=object), "all clients"
    cause = (
        end_event_codes(clients[END_EVENT], "report")
        if competing
        else clients[EVENT].astype("boolean").astype(float)
    )
    frame = pd.DataFrame(
        {
            "group": group,
            "time": pd.to_numeric(clients[TIME], errors="coerce").astype(float),
            "cause": cause,
        }
    ).dropna()
    frame["group"] = frame["group"].astype(str)
    return frame, name, competing


def cif_curve(part: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Cumulative incidence of dropout, completion competing (Aalen-Johansen, pointwise 95% CIs
    on the log(-log) scale; `accord.models.competing`), from time 0, cut at the last time with
    at least `min_cell` clients at risk."""
    steps = aalen_johansen(part["time"].to_numpy(), part["cause"].to_numpy(dtype=np.int64))
    rows = []
    for _, step in steps.iterrows():
        if step["n_at_risk"] < min_cell:
            break
        low, high = cif_interval(float(step["cif"]), float(step["variance"]))
        if step["time"] == 0:
            low = high = 0.0
        rows.append(
            {
                "time": float(step["time"]),
                "incidence": float(step["cif"]),
                "ci_low": low,
                "ci_high": high,
                "at_risk": int(step["n_at_risk"]),
            }
        )
    curve = pd.DataFrame(rows)
    # Extend the last step to the last time with min_cell clients still at risk: no dropout
    # falls in between (the first dropout with fewer at risk is where the curve was cut).
    times = np.sort(part["time"].unique())
    at_risk = np.array([int((part["time"] >= t).sum()) for t in times])
    eligible = times[at_risk >= min_cell]
    if eligible.size and float(eligible[-1]) > curve["time"].iloc[-1]:
        end = float(eligible[-1])
        curve = pd.concat(
            [curve, curve.iloc[[-1]].assign(time=end, at_risk=int((part["time"] >= end).sum()))],
            ignore_index=True,
        )
    return curve


def _cumulative_incidence(ctx: ReportContext) -> list:
    frame, grouping, competing = dropout_groups(ctx)
    min_cell = ctx.min_cell
    if frame is None or frame.empty:
        return [
            Text(f"No {TIME} and {END_EVENT} columns were found in the client measures.", "missing")
        ]
    sizes = frame["group"].value_counts().sort_index()
    keep = [g for g, n in sizes.items() if n >= min_cell]
    left_out = len(sizes) - len(keep)
    tied = _fewer_tertiles(ctx, grouping, list(sizes.index))
    out: list = []
    if not keep:
        return [Text(f"No group has {min_cell} or more clients, so no curve is drawn.")]
    curves = {g: cif_curve(frame.loc[frame["group"] == g], min_cell) for g in keep}
    risk = _number_at_risk(ctx, frame, sizes, keep)
    fig = km_figure(curves, risk, value="incidence", ylabel="Dropped out (95% CI)")
    handling = (
        "completion (treatment ended otherwise) is a competing event and a client still in "
        "treatment is censored at their last attended session"
        if competing
        else "no end of treatment other than dropout is recorded, so every client who did not "
        "drop out is censored at their last attended session"
    )
    if fig is not None:
        out.append(
            to_plot(
                fig,
                "dropout_cumulative_incidence",
                alt=f"Cumulative incidence of dropout by {grouping}",
                caption=(
                    f"Share of clients who dropped out by sessions attended, by {grouping} "
                    "(cumulative incidence, Aalen\u2013Johansen, pointwise 95% CIs on the "
                    f"log(\u2212log) scale): {handling}. A curve stops where fewer than "
                    f"{min_cell} clients are at risk; counts at risk from 1 to {min_cell - 1} "
                    f"read \u201c{suppressed_label(min_cell)}\u201d."
                    + (
                        f" {left_out} group(s) with fewer than {min_cell} clients are not "
                        "drawn, and a size at time 0 that would give them away reads \u201c*\u201d."
                        if left_out
                        else ""
                    )
                    + tied
                ),
            )
        )
    out.append(
        table(
            "dropout_number_at_risk",
            f"Number at risk by sessions attended, by {grouping}",
            [grouping.capitalize(), *risk.columns],
            [[g, *risk.loc[g]] for g in keep],
            note=" ".join(
                part
                for part in (
                    "Clients still in treatment and not yet censored at each session shown. A "
                    "session at which a group's number fell by 1 to "
                    f"{min_cell - 1} since the last one shown is left out, so that no count of "
                    "clients leaving between two columns can be worked out by subtraction.",
                    tied.strip(),
                )
                if part
            ),
        )
    )
    return out


def _fewer_tertiles(ctx: ReportContext, grouping: str, groups: list[str]) -> str:
    """Table 1's sentence for tertiles of the exposure that formed fewer than three groups
    (tied values at the cut points), else nothing."""
    if grouping != f"tertile of {ctx.exposure}":
        return ""
    return fewer_tertiles(groups, pd.Series(dtype=object, name=f"{ctx.exposure} tertile"))


def _number_at_risk(
    ctx: ReportContext, frame: pd.DataFrame, sizes: pd.Series, keep: list[str]
) -> pd.DataFrame:
    """The numbers at risk of the drawn groups as printed: at sessions where no small count of
    clients left in between (`accord.core.disclosure.coarsened_steps`), audited with the report."""
    min_cell = ctx.min_cell
    last = float(frame["time"].max())
    candidates = [float(t) for t in np.arange(0.0, last + 1.0, 2.0 if last > 8 else 1.0)]
    counts = {
        g: [int((frame.loc[frame["group"] == g, "time"] >= t).sum()) for t in candidates]
        for g in keep
    }
    steps = coarsened_steps(list(counts.values()), min_cell)
    counts = {g: [counts[g][k] for k in steps] for g in keep}
    risk = pd.DataFrame(
        [[suppress_count(n, min_cell) for n in counts[g]] for g in keep],
        index=keep,
        columns=[f"{candidates[k]:g}" for k in steps],
    )
    # The number at risk at time 0 is each group's size: with a group left out as small, the
    # sizes shown and the total would give it away, so they get complementary suppression.
    if len(keep) < len(sizes):
        sizes_table = pd.DataFrame(
            {"n": [*sizes.to_numpy(), int(sizes.sum())]}, index=[*sizes.index, "__total__"]
        )
        shown = suppress_table(sizes_table, ["n"], min_cell, total_row="__total__")["n"]
        risk[risk.columns[0]] = [shown[g] for g in keep]
    return _publish_at_risk(ctx, risk, counts)


def _publish_at_risk(
    ctx: ReportContext, risk: pd.DataFrame, counts: dict[str, list[int]]
) -> pd.DataFrame:
    """The numbers at risk as the report's audit lets them be printed (`accord.report.ledger`).

    Successive counts of a group differ by the clients who left the risk set in between, a
    count of people the report does not print; the count at time 0 is the group's clients
    with a dropout time, part of the group's size (its rest: clients without one).
    """
    ledger, by_arm = ctx.ledger, has_arms(ctx.clients)
    out = risk.copy()
    for g, row in risk.iterrows():
        keys = [f"at_risk[{g}][{t}]" for t in risk.columns]
        size = group_key(str(g)) if by_arm or g == ALL_CLIENTS else None
        for j, (key, text) in enumerate(zip(keys, row, strict=True)):
            value = counts[str(g)][j]
            if j == 0 and size is not None:
                out.loc[g, risk.columns[j]] = ledger.subset(
                    key, value, of=size, rest=f"no_dropout_time[{g}]", text=str(text)
                )
            else:
                out.loc[g, risk.columns[j]] = ledger.count(key, value, str(text))
            if j:
                left = f"left_risk_set[{g}][{risk.columns[j - 1]}-{risk.columns[j]}]"
                ledger.unpublished(left, counts[str(g)][j - 1] - value)
                ledger.relate(keys[j - 1], [key, left])
    return out


def _logrank(ctx: ReportContext) -> list:
    c = ctx.coefficients
    if c is None:
        return []
    rows = c.loc[c["term"].astype(str).isin(["logrank_chi2", "logrank_cause_specific"])]
    out = []
    for _, r in rows.iterrows():
        diag = ctx.diagnostics.get(str(r["model"]), {})
        df = (diag.get("extras") or {}).get("logrank_df")
        n = int(r["n_clients"]) if finite(r["n_clients"]) else 0
        if n < ctx.min_cell or not finite(r["estimate"]):
            continue
        grouping = (diag.get("extras") or {}).get("grouping", "group")
        df_text = f"({int(df)})" if finite(df) else ""
        out.append(
            Text(
                f"Log-rank test of equal cause-specific hazards of dropout by {grouping} "
                f"({label(r['model'])}; completers censored): "
                f"\u03c7\u00b2{df_text} = {num(r['estimate'], 2)}, p {p_phrase(r['p_value'])}."
            )
        )
    return out


def _ratios(ctx: ReportContext) -> list:
    c = ctx.coefficients
    if c is None or "ratio" not in c.columns:
        return [Text("No dropout model results were found.", "missing")]
    outcome = c["outcome"].astype(str)
    dropout = outcome.str.startswith("dropout") | (outcome == TIME)
    picked = c.loc[dropout & c["ratio"].map(finite) & (c["term"].astype(str) != "Intercept")]
    if picked.empty:
        return [Text("No odds or hazard ratios of a dropout model were found.", "missing")]
    rows = []
    hide = suppressed_label(ctx.min_cell)
    for _, r in picked.iterrows():
        diag = ctx.diagnostics.get(str(r["model"]), {})
        kind = "HR" if "partial likelihood" in str(diag.get("method", "")) else "OR"
        n = int(r["n_clients"]) if finite(r["n_clients"]) else 0
        enough = n >= ctx.min_cell
        role = str(r.get("role")) if isinstance(r.get("role"), str) else ""
        rows.append(
            [
                label(r["model"]) + (f" ({role})" if role == "sensitivity" else ""),
                term_label(str(r["term"])),
                kind,
                num(r["ratio"], 2) if enough else hide,
                interval(r["ratio_ci_low"], r["ratio_ci_high"], 2) if enough else hide,
                p_value(r["p_value"]) if enough else hide,
                suppress_count(n, ctx.min_cell),
            ]
        )
    return [
        table(
            "dropout_ratios",
            "Dropout models: odds ratios (logistic) and cause-specific hazard ratios (Cox)",
            ["Model", "Term", "Ratio", "Estimate", "95% CI", "p", "Clients"],
            rows,
            text_columns=frozenset({1}),
            note=(
                "Per unit of each predictor, adjusted for the others in the model; the exposure "
                "is the term named after it. A ratio below 1: less dropout at higher values of the "
                "predictor. The default logistic model adjusts for intake severity only (the "
                "total association); a model also adjusted for early alliance, which lies on "
                "the path from goal-setting to dropout, is a labelled sensitivity analysis. The "
                "Cox model is cause-specific: completers are censored, so its hazard ratio "
                "compares dropout among clients still in treatment."
            ),
        )
    ]
