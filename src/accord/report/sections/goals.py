"""Goals: agreement, attainment and check-ins.

Three questions, each answered by models declared in config: whether client and therapist
agree on the goals and whether agreement is associated with outcomes (kinds ``congruence`` and
``goal_congruence``: the response surface, its a1..a4 and the agreement shares); whether goals
set jointly, or meeting SMART criteria, are attained more (kind ``goal_attainment``); and
whether clients go off track and a goal review at the next session is associated with getting
back on track (kind ``not_on_track``).

Every estimate is withheld when its model analysed fewer than ``min_cell`` clients; shares are
shown only when every count behind them, and its complement, is 0 or at least ``min_cell``;
the surface is drawn from the fitted polynomial, and the expected-recovery figure only from
cells of at least ``min_cell`` clients. Nothing here is randomised, so the text says "is
associated with".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from accord.core.disclosure import suppress_count, suppressed_label
from accord.report.context import ReportContext
from accord.report.figures import to_plot
from accord.report.labels import in_words, label
from accord.report.numbers import estimate_digits, finite, interval, num, p_value
from accord.report.parts import Heading, Section, Text, table
from accord.report.surface import congruence_surface_figure, not_on_track_figure
from accord.report.text import instrument_label, scale_label

SURFACE_TERMS = {
    "a1": "a1: slope along agreement (C = T)",
    "a2": "a2: curvature along agreement",
    "a3": "a3: slope along disagreement (C = \u2212T)",
    "a4": "a4: curvature along disagreement",
}
AGREEMENT_LABELS = {
    "client_higher": "Client rated higher",
    "agreement": "In agreement",
    "therapist_higher": "Therapist rated higher",
}
GOAL_TERMS = {
    "set_by[joint]": "Set jointly (vs by the client)",
    "set_by[therapist]": "Set by the therapist (vs by the client)",
    "smart_specific": "Specific",
    "smart_measurable": "Measurable",
    "smart_achievable": "Achievable",
    "smart_relevant": "Relevant",
    "smart_time_bound": "Time-bound",
    "importance_agreement": "Importance agreement (0\u20131)",
    "set_session": "Session the goal was set",
}
GOAL_OUTCOMES = {"gas_level": "GAS level", "achieved": "Goal achieved"}
CHECK_IN_TERMS = {
    "back_on_track:goal_review": "Back on track at the next assessment, after a goal review",
    "recovery:reviewed_after_flag": "Recovery, after a goal review following the first flag",
}


def build(ctx: ReportContext) -> Section:
    """The Goals section: agreement, attainment and check-ins."""
    section = Section("goals", "Goals: agreement, attainment and check-ins")
    section.add(Heading("Agreement between client and therapist", "goals-agreement"))
    section.add(*_agreement(ctx))
    section.add(Heading("Goal-level attainment", "goals-attainment"))
    section.add(*_attainment(ctx))
    section.add(Heading("Check-ins: clients not on track", "goals-check-ins"))
    section.add(*_check_ins(ctx))
    return section


def models_of_kind(ctx: ReportContext, *kinds: str) -> list[str]:
    """The fitted models of `kinds` with coefficient rows, in the gathered table's order."""
    c = ctx.coefficients
    if c is None or c.empty:
        return []
    fitted = [str(m) for m in dict.fromkeys(c["model"].astype(str))]
    return [m for m in fitted if ctx.diagnostics.get(m, {}).get("kind") in kinds]


def _rows(ctx: ReportContext, model: str) -> pd.DataFrame:
    c = ctx.coefficients
    return c.loc[c["model"].astype(str) == model]


def _n_clients(part: pd.DataFrame) -> int:
    values = pd.to_numeric(part["n_clients"], errors="coerce")
    return int(values.max()) if values.notna().any() else 0


def _not_fitted(ctx: ReportContext, kinds: Sequence[str], what: str) -> Text:
    """Why no model answers `what`: the plan's reasons, or that none was declared."""
    reasons = [
        f"{label(model)}: {d.get('reason')}"
        for model, d in ctx.diagnostics.items()
        if d.get("kind") in kinds and d.get("status") != "fitted" and d.get("reason")
    ]
    if reasons:
        return Text(f"No {what} was fitted for this study ({'; '.join(reasons)}).", "missing")
    return Text(f"No {what} is in the model results.", "missing")


# -- agreement -------------------------------------------------------------------------------


def _agreement(ctx: ReportContext) -> list:
    models = models_of_kind(ctx, "congruence", "goal_congruence")
    if not models:
        return [_not_fitted(ctx, ("congruence", "goal_congruence"), "congruence model")]
    out: list = [_surface_table(ctx, models)]
    first = next((m for m in models if _enough(ctx, m)), None)
    if first is not None:
        out.append(_surface_plot(ctx, first))
    out.append(_agreement_table(ctx, models))
    for model in models:
        extras = ctx.diagnostics.get(model, {}).get("extras") or {}
        if _enough(ctx, model) and extras.get("reading"):
            out.append(Text(f"{label(model)}: {in_words(extras['reading'])}"))
    return out


def _enough(ctx: ReportContext, model: str) -> bool:
    return _n_clients(_rows(ctx, model)) >= ctx.min_cell


def _rated(ctx: ReportContext, model: str) -> str:
    """What both raters rated, for a table: "WAI-SR goal", "WAI-SR", "Goal importance"."""
    part = _rows(ctx, model)
    exposure = str(part["exposure"].iloc[0])
    if exposure == "goal_importance":
        return "Goal importance (per goal)"
    instrument, _, scale = exposure.partition("_sr_")
    if scale:
        return scale_label(f"{instrument}_sr", scale)
    return instrument_label(exposure)


def _outcome(part: pd.DataFrame) -> str:
    raw = str(part["outcome"].iloc[0])
    if raw in GOAL_OUTCOMES:
        return GOAL_OUTCOMES[raw]
    for suffix in ("_post", "_change"):
        if raw.endswith(suffix):
            return f"{instrument_label(raw.removesuffix(suffix))} {suffix[1:]}"
    return instrument_label(raw).replace("_", " ")


def _surface_table(ctx: ReportContext, models: Sequence[str]) -> Any:
    hide = suppressed_label(ctx.min_cell)
    rows = []
    for model in models:
        part = _rows(ctx, model).set_index("term")
        enough = _enough(ctx, model)
        clients = ctx.ledger.model_clients(model, _n_clients(part.reset_index()))
        for term, parameter in SURFACE_TERMS.items():
            if term not in part.index:
                continue
            r = part.loc[term]
            rows.append(
                [
                    label(model),
                    _rated(ctx, model),
                    _outcome(part.reset_index()),
                    parameter,
                    num(r["estimate"], estimate_digits(r["std_error"])) if enough else hide,
                    interval(r["ci_low"], r["ci_high"], estimate_digits(r["std_error"]))
                    if enough
                    else hide,
                    p_value(r["p_value"]) if enough else hide,
                    clients,
                ]
            )
    return table(
        "goals_surface",
        "Response surface of client and therapist ratings: a1\u2013a4 with 95% CIs",
        ["Model", "Rated", "Outcome", "Surface parameter", "Estimate", "95% CI", "p", "Clients"],
        rows,
        text_columns=frozenset({1, 3}),
        note=(
            "Polynomial regression of the outcome on the client rating C, the therapist rating "
            "T, C\u00b2, C\u00d7T and T\u00b2, both centred on the scale midpoint (Edwards & "
            "Parry 1993; Shanock et al. 2010), with the surface parameters as in the R package "
            "RSA: a1 = b1 + b2, a2 = b3 + b4 + b5, a3 = b1 \u2212 b2, a4 = b3 \u2212 b4 + b5, "
            "Wald CIs from the coefficient covariance. An instrument outcome is its post score "
            "adjusted for intake; a yes/no outcome is on the log-odds scale; goal importance is "
            "fitted per goal with SEs clustered by client. Descriptive: the surface is read as "
            "a whole, outside the secondary family (no adjusted p-value)."
        ),
    )


def _surface_plot(ctx: ReportContext, model: str) -> Any:
    diag = ctx.diagnostics.get(model, {})
    extras = diag.get("extras") or {}
    b, limits = extras.get("b") or {}, extras.get("rating_range") or []
    if len(limits) != 2 or not all(finite(v) for v in limits) or limits[0] >= limits[1]:
        return None
    outcome = _outcome(_rows(ctx, model))
    rated = _rated(ctx, model)
    fig = congruence_surface_figure(
        b,
        midpoint=float(extras.get("midpoint", 3.0)),
        limits=limits,
        outcome_label=outcome,
        rating_label=rated,
        logistic=extras.get("link") == "logit",
    )
    return to_plot(
        fig,
        f"goals_surface_{model}",
        alt=(
            f"Contour plot of the fitted {outcome} over client ratings (horizontal) and "
            f"therapist ratings (vertical) of {rated}, with the lines of agreement and "
            "disagreement"
        ),
        caption=(
            f"The fitted response surface of {label(model)}: {outcome} relative to agreement "
            "at the scale midpoint, over the central 90% of the ratings (5th to 95th percentile). "
            "Solid line: client and therapist agree (C = T); dashed: they disagree by the same "
            "amount in either direction. Drawn from the model\u2019s coefficients, not from "
            "any client\u2019s ratings."
        ),
    )


def _agreement_table(ctx: ReportContext, models: Sequence[str]) -> Any:
    hide = suppressed_label(ctx.min_cell)
    rows = []
    for model in models:
        shares = (ctx.diagnostics.get(model, {}).get("extras") or {}).get("agreement") or []
        for row in shares:
            shown = not row.get("withheld") and finite(row.get("share"))
            rows.append(
                [
                    label(model),
                    _rated(ctx, model),
                    AGREEMENT_LABELS.get(str(row.get("group")), str(row.get("group"))),
                    f"{num(100 * float(row['share']), 0)}%" if shown else hide,
                ]
            )
    return table(
        "goals_agreement",
        "Agreement between client and therapist ratings",
        ["Model", "Rated", "Ratings", "Share of clients"],
        rows,
        text_columns=frozenset({1, 2}),
        note=(
            "Both ratings standardised by the mean and SD of the pooled ratings; in agreement "
            "when they differ by less than 0.5 SD, else the higher rater is named (Fleenor et "
            "al. 1996; Shanock et al. 2010, as the R package RSA). Rows of goal importance count "
            f"goals. Shares are withheld ({hide}) for a model where any group holds fewer than "
            f"{ctx.min_cell}."
        ),
    )


# -- goal-level attainment -------------------------------------------------------------------


def _attainment(ctx: ReportContext) -> list:
    models = models_of_kind(ctx, "goal_attainment")
    if not models:
        return [_not_fitted(ctx, ("goal_attainment",), "goal-level attainment model")]
    hide = suppressed_label(ctx.min_cell)
    rows, readings = [], []
    for model in models:
        part = _rows(ctx, model)
        enough = _n_clients(part) >= ctx.min_cell
        clients = ctx.ledger.model_clients(model, _n_clients(part))
        goals = suppress_count(pd.to_numeric(part["n_obs"], errors="coerce").max(), ctx.min_cell)
        odds = str(part["outcome"].iloc[0]) == "achieved"
        for r in part.itertuples(index=False):
            if r.term not in GOAL_TERMS:
                continue
            low, high = (r.ratio_ci_low, r.ratio_ci_high) if odds else (r.ci_low, r.ci_high)
            rows.append(
                [
                    label(model),
                    "Achieved (odds ratio)" if odds else "GAS level (points)",
                    GOAL_TERMS[r.term],
                    num(r.ratio if odds else r.estimate, 2) if enough else hide,
                    interval(low, high, 2) if enough else hide,
                    p_value(r.p_value) if enough else hide,
                    p_value(getattr(r, "p_fdr", None)) if enough else hide,
                    goals,
                    clients,
                ]
            )
        if enough:
            readings.append(_joint_reading(part, odds))
    out: list = [
        table(
            "goals_attainment",
            "Goal-level attainment: who set the goal and its SMART criteria",
            [
                "Model",
                "Outcome",
                "Predictor",
                "Estimate",
                "95% CI",
                "p",
                "p (FDR)",
                "Goals",
                "Clients",
            ],
            rows,
            text_columns=frozenset({1, 2}),
            note=(
                "One row per goal. GAS level at the goal\u2019s last rating (\u22122 to +2): "
                "linear mixed model with random intercepts per client and per therapist (REML). "
                "Achieved: GEE, binomial, exchangeable within client, robust SEs; odds ratios. "
                "Predictors recorded when the goal was set; a predictor that did not vary was "
                "left out. p (FDR): Benjamini\u2013Hochberg within the secondary family, for the "
                "terms of who set the goal in a secondary model; a sensitivity model has none."
            ),
        )
    ]
    out.extend(Text(text) for text in readings if text)
    return out


def _joint_reading(part: pd.DataFrame, odds: bool) -> str:
    """Observational reading of the joint-vs-client term of one goal-level model."""
    row = part.loc[part["term"] == "set_by[joint]"]
    if row.empty:
        return ""
    r = row.iloc[0]
    what = "whether it was achieved" if odds else "the GAS level it reached"
    low, high = float(r["ci_low"]), float(r["ci_high"])
    if not (finite(low) and finite(high)) or low <= 0 <= high:
        return (
            f"The data cannot tell whether setting a goal jointly is associated with {what}: "
            "the 95% CI of the joint-vs-client difference includes no difference."
        )
    higher = low > 0
    if odds:
        found = f"were {'more' if higher else 'less'} often achieved"
    else:
        found = f"reached {'higher' if higher else 'lower'} GAS levels"
    size = (
        f"odds ratio {num(r['ratio'], 2)}, "
        f"95% CI {interval(r['ratio_ci_low'], r['ratio_ci_high'], 2)}"
        if odds
        else f"{num(r['estimate'], 2)} GAS levels, 95% CI {interval(low, high, 2)}"
    )
    return (
        f"Goals set jointly {found} than goals the client set ({size}), other goal features "
        "held equal. Who set a goal was not randomised, so this is an association only."
    )


# -- check-ins -------------------------------------------------------------------------------


def _check_ins(ctx: ReportContext) -> list:
    models = models_of_kind(ctx, "not_on_track")
    fitted = [m for m in ctx.diagnostics if ctx.diagnostics[m].get("kind") == "not_on_track"]
    fitted = [m for m in fitted if ctx.diagnostics[m].get("status") == "fitted"]
    if not fitted:
        return [_not_fitted(ctx, ("not_on_track",), "not-on-track model")]
    model = fitted[0]
    diag = ctx.diagnostics[model]
    extras = diag.get("extras") or {}
    out: list = [_rates_table(ctx, model, extras)]
    out.append(_trajectory_plot(ctx, model, extras))
    signal = _signal_text(extras.get("signal") or {}, ctx.min_cell)
    if signal:
        out.append(Text(signal))
    if model in models:
        out.append(_check_in_table(ctx, model))
        out.extend(_check_in_reading(ctx, model))
    else:
        out.append(
            Text(
                "The association of a goal review with getting back on track could not be "
                "estimated (too few not-on-track assessments with and without a review).",
                "missing",
            )
        )
    return out


def _shown_share(n: Any, total: Any, min_cell: int) -> bool:
    """Whether a share n / total may be shown: total is positive, and n and total - n are
    each 0 or at least min_cell."""
    if not (finite(n) and finite(total)) or int(total) <= 0:
        return False
    return all(k == 0 or k >= min_cell for k in (int(n), int(total) - int(n)))


def _rates_table(ctx: ReportContext, model: str, extras: Mapping[str, Any]) -> Any:
    hide = suppressed_label(ctx.min_cell)
    rows = []
    for row in extras.get("rates") or []:
        shown = _shown_share(row.get("n_not_on_track"), row.get("n_clients"), ctx.min_cell)
        rows.append(
            [
                str(row.get("group")),
                f"{num(100 * float(row['share_clients']), 0)}%" if shown else hide,
                f"{num(100 * float(row['share_assessments']), 0)}%" if shown else hide,
            ]
        )
    grouping = str(extras.get("grouping", "group"))
    band = float(extras.get("band", 0.8))
    return table(
        "goals_not_on_track",
        f"Clients not on track, by {in_words(grouping)}",
        ["Group", "Clients ever not on track", "Assessments not on track"],
        rows,
        text_columns=frozenset({0}),
        note=(
            _curve_sentence(extras, band)
            + f" Groups of fewer than {ctx.min_cell} clients are not shown, and no "
            "group\u2019s size is, so none can be worked out from the clients the model "
            "analysed; shares "
            f"whose count or its complement is 1 to {ctx.min_cell - 1} read {hide}."
        ),
    )


def _curve_sentence(extras: Mapping[str, Any], band: float) -> str:
    """How the expected scores were formed: cross-fitted on the study, or a published curve."""
    if extras.get("curve") == "published":
        return (
            "Expected-recovery curves per intake severity band (a + b log(1 + session) + c "
            f"intake) as published ({extras.get('curve_source', 'source not given')}); not on "
            "track at a session where the score is worse than the curve\u2019s published "
            "tolerance limit."
        )
    return (
        "Expected-recovery curves per intake severity band (a + b log(1 + session) + c "
        f"intake), cross-fitted over {extras.get('folds', 5)} folds of clients so that no "
        "client\u2019s own scores enter the curve they are judged against; not on track at "
        f"a session where the score is worse than the central {band:.0%} band of the curve."
    )


def _trajectory_plot(ctx: ReportContext, model: str, extras: Mapping[str, Any]) -> Any:
    outcome = instrument_label(str(ctx.diagnostics[model].get("outcome", ctx.outcome)))
    band = float(extras.get("band", 0.8))
    fig = not_on_track_figure(extras.get("trajectories") or [], outcome_label=outcome, band=band)
    if fig is None:
        return None
    return to_plot(
        fig,
        "goals_not_on_track",
        alt=(
            f"Mean observed {outcome} per session and intake severity band against the "
            f"expected curve and its central {band:.0%} band"
        ),
        caption=(
            f"Mean observed {outcome} (points) against the mean expected score (dashed) and "
            + (
                "the published tolerance limits"
                if extras.get("curve") == "published"
                else f"the central {band:.0%} tolerance band"
            )
            + ", per intake severity band; only sessions and bands with at least "
            f"{ctx.min_cell} clients are drawn."
        ),
    )


def _signal_text(signal: Mapping[str, Any], min_cell: int) -> str:
    if not signal or signal.get("withheld"):
        return ""
    parts = []
    if _shown_share(
        signal.get("n_deteriorated_flagged_early"), signal.get("n_deteriorated"), min_cell
    ):
        parts.append(
            f"{num(100 * float(signal['sensitivity']), 0)}% of the clients who reliably "
            "deteriorated by their last assessment were flagged before it"
        )
    if _shown_share(signal.get("n_false_alarms"), signal.get("n_flagged"), min_cell):
        parts.append(
            f"{num(100 * float(signal['false_alarm_share']), 0)}% of the flagged clients did "
            "not reliably deteriorate"
        )
    if not parts:
        return ""
    return (
        "How the flags relate to reliable deterioration: "
        + "; ".join(parts)
        + ". Published figures for the OQ-45 signal system come from another instrument and "
        "setting and are not comparable."
    )


def _check_in_table(ctx: ReportContext, model: str) -> Any:
    rows = []
    for r in _rows(ctx, model).itertuples(index=False):
        if r.term not in CHECK_IN_TERMS:
            continue
        hide = suppressed_label(ctx.min_cell)
        enough = finite(r.n_clients) and int(r.n_clients) >= ctx.min_cell
        label = CHECK_IN_TERMS[r.term]
        if not (finite(r.ratio_ci_low) and finite(r.ratio_ci_high)):
            # Separation (no recovery in one group): no interval, so no estimate is shown.
            label, enough = f"{label} (not estimable: an infinite CI)", False
            hide = "\u2013"
        rows.append(
            [
                label,
                num(r.ratio, 2) if enough else hide,
                interval(r.ratio_ci_low, r.ratio_ci_high, 2) if enough else hide,
                p_value(r.p_value) if enough else hide,
                p_value(getattr(r, "p_fdr", None)) if enough else hide,
                suppress_count(r.n_clients, ctx.min_cell),
            ]
        )
    return table(
        "goals_check_in",
        "Goal review after going off track: odds ratios with 95% CIs",
        ["Association", "Odds ratio", "95% CI", "p", "p (FDR)", "Clients"],
        rows,
        text_columns=frozenset({0}),
        note=(
            "Back on track: among assessments not on track, GEE (binomial, exchangeable, "
            "clustered by client) of being back on track at the first assessment after the "
            "next attended session on whether that session had a goal review. Recovery: among "
            "clients ever not on track and clinical at intake, logistic regression of recovery "
            "on a goal review at the first attended session after the first flag, adjusted for "
            "the intake score. p (FDR): the back-on-track term is in the secondary family."
        ),
    )


def _check_in_reading(ctx: ReportContext, model: str) -> list:
    row = _rows(ctx, model)
    row = row.loc[row["term"] == "back_on_track:goal_review"]
    if row.empty or not finite(row.iloc[0]["n_clients"]):
        return []
    r = row.iloc[0]
    if int(r["n_clients"]) < ctx.min_cell:
        return []
    low, high = float(r["ratio_ci_low"]), float(r["ratio_ci_high"])
    if low <= 1 <= high:
        text = (
            "The data cannot tell whether a goal review after a client went off track is "
            "associated with getting back on track: the 95% CI of the odds ratio includes 1."
        )
    else:
        word = "more" if low > 1 else "less"
        text = (
            f"Clients who had a goal review at the session after going off track were {word} "
            f"often back on track at the next assessment (odds ratio {num(r['ratio'], 2)}, "
            f"95% CI {interval(low, high, 2)}). Reviews were not randomised: therapists may "
            "review goals with some clients more than others, so this is an association."
        )
    return [Text(text)]
