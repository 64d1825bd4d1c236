"""Summary: the question, then one short paragraph per part of it (the outcome; the alliance;
engagement and dropout; goal agreement when the congruence models ran), each with the estimate,
its 95% CI, the number of clients it rests on and a plain-words reading, written from the
model results.

The readings are observational ("is associated with") unless the exposure is a randomised arm.
An estimate that cannot be read as it stands (a ratio whose CI spans more than a factor of 10,
separation, a variance on the boundary, a fit that did not converge) is said to be imprecise
rather than shown bare. Numbers go through `accord.report.numbers`, so the Summary and the
model tables show the same decimals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from accord.core.disclosure import structural_count
from accord.models.plan import FITTED, NOT_APPLICABLE, NOT_ESTIMABLE, STATUS_LABELS
from accord.report import aggregate as agg
from accord.report.context import ReportContext
from accord.report.labels import in_words, label, term_label
from accord.report.ledger import SIZE
from accord.report.numbers import (
    coef,
    estimate_ci,
    estimate_digits,
    finite,
    interval,
    num,
    p_phrase,
    ratio_imprecise,
)
from accord.report.parts import Bullets, Section, Text, table
from accord.report.sections.engagement import alliance_label
from accord.report.sections.goals import models_of_kind
from accord.report.sections.models import (
    model_statuses,
    primary_row,
    ratio_kind,
    status_counts,
)
from accord.report.text import int_or_none, outcome_label, truthy

__all__ = ["build", "primary_row"]

_EXPOSURE_WORDS = {
    "joint_goal_share": "setting goals jointly (client and therapist together)",
    "goal_alliance_client": "the client\u2019s rating of the goal alliance",
    "goal_consensus": "client-therapist divergence on goals",
    "goal_agreement": "client-therapist agreement on goal importance",
    "smart_quality": "the SMART quality of goals",
}
_DROPOUT_OUTCOMES = ("dropout", "sessions_to_dropout")


def build(ctx: ReportContext) -> Section:
    """The Summary section."""
    section = Section("summary", "Summary")
    section.add(
        Text(
            f"Primary question: is {exposure_words(ctx.exposure)} associated with a faster "
            f"improvement in {ctx.outcome_label} over the course of therapy, and with the "
            "alliance and engagement?",
            "lead",
        )
    )
    sample = _sample(ctx)
    if sample:
        section.add(Text(sample))
    primary = primary_row(ctx)
    outcome, primary_table = _outcome(ctx, primary)
    section.add(Text(outcome), primary_table)
    for paragraph in (_alliance(ctx), _engagement(ctx), _goal_agreement(ctx)):
        if paragraph:
            section.add(Text(paragraph))
    findings = _findings(ctx)
    if findings:
        section.add(Bullets(tuple(("", f) for f in findings)))
    plan_note = _plan_note(ctx)
    if plan_note:
        section.add(Text(plan_note, "note"))
    return section


def exposure_words(exposure: str) -> str:
    """The exposure in words for a sentence ("setting goals jointly ...")."""
    return _EXPOSURE_WORDS.get(exposure, label(exposure).lower())


def _sample(ctx: ReportContext) -> str:
    if ctx.clients is None or "client_id" not in ctx.clients.columns:
        return ""
    n_clients = ctx.ledger.count("clients", ctx.clients["client_id"].nunique(), role=SIZE)
    therapists = ""
    for frame in (ctx.panel, ctx.clients):
        if frame is not None and "therapist_id" in frame.columns:
            n = structural_count(frame["therapist_id"].dropna().nunique())
            therapists = f" seen by {n} therapists"
            break
    return f"The analysed sample holds {n_clients} clients{therapists}."


def _plan_note(ctx: ReportContext) -> str:
    """Which models of the plan were fitted, not estimable or not applicable (see Models)."""
    by_status = status_counts(model_statuses(ctx))
    if set(by_status) <= {FITTED}:
        return ""
    total = sum(len(ids) for ids in by_status.values())
    parts = [f"{len(by_status.get(FITTED, []))} fitted"]
    for status in (NOT_ESTIMABLE, NOT_APPLICABLE):
        ids = by_status.get(status, [])
        if ids:
            names = ", ".join(label(i) for i in ids)
            parts.append(f"{len(ids)} {STATUS_LABELS[status]} ({names})")
    return (
        f"Of the {total} models of the analysis plan: {'; '.join(parts)}. The Models section "
        "gives each one's reason."
    )


# -- the outcome -----------------------------------------------------------------------------


def _outcome(ctx: ReportContext, primary: pd.Series | None) -> tuple[str, Any]:
    """The outcome paragraph and the primary estimate's table (None when withheld)."""
    if primary is None:
        return "Outcome: No primary model estimate was found in the results.", None
    n_clients = int_or_none(primary["n_clients"]) or 0
    if n_clients < ctx.min_cell:
        return (
            "Outcome: The primary estimate is withheld: fewer than "
            f"{ctx.min_cell} clients entered the model.",
            None,
        )
    model = str(primary["model"])
    diag = ctx.diagnostics.get(model, {})
    clients = ctx.ledger.model_clients(model, n_clients)
    observations = ctx.ledger.model_observations(model, int_or_none(primary["n_obs"]), n_clients)
    digits = estimate_digits(primary["std_error"])
    sentences = [
        _outcome_estimate(
            ctx, primary, diag, digits, f"{clients} clients, {observations} assessments"
        ),
        _outcome_reading(ctx, primary),
        _standardized(diag),
        _caution(diag, truthy(primary["converged"])),
    ]
    text = " ".join(s for s in sentences if s)
    return text, _primary_table(primary, digits, clients, observations)


def _outcome_estimate(
    ctx: ReportContext, primary: pd.Series, diag: Mapping[str, Any], digits: int, n_text: str
) -> str:
    """ "Outcome (Growth; 150 clients, 1248 assessments): ... (b = ..., 95% CI [...], p ...)"."""
    extras = diag.get("extras") or {}
    est = primary["estimate"]
    stats = (
        f"b = {num(est, digits)}, 95% CI {interval(primary['ci_low'], primary['ci_high'], digits)}"
        f", p {p_phrase(primary['p_value'])}"
    )
    model = label(primary["model"])
    if not str(primary["term"]).startswith("time:"):
        return (
            f"Outcome ({model}; {n_text}): {term_label(primary['term'])} in "
            f"{outcome_label(str(primary['outcome']))}, {stats}."
        )
    unit = "per unit of log(session + 1)" if extras.get("time_coding") == "log" else "per session"
    coding = str(extras.get("exposure_coding", "as given"))
    exposure = label(primary["exposure"])
    if coding.startswith("1 = ") and ", 0 = " in coding:
        one, zero = coding.removeprefix("1 = ").split(", 0 = ", 1)
        contrast = f"with {exposure} {one} rather than {zero}"
    else:
        contrast = f"for each unit of {exposure}"
    direction = "fell" if est < 0 else "rose"
    return (
        f"Outcome ({model}; {n_text}): {contrast}, {ctx.outcome_label} scores {direction} by "
        f"{num(abs(est), digits)} points more {unit} ({stats})."
    )


def _outcome_reading(ctx: ReportContext, primary: pd.Series) -> str:
    """The estimate in plain words, in observational language unless the exposure is an arm."""
    low, high = primary["ci_low"], primary["ci_high"]
    exposure = exposure_words(str(primary["exposure"]))
    if not (finite(low) and finite(high)) or low <= 0 <= high:
        return (
            f"The confidence interval includes zero: the data are compatible with "
            f"{exposure} having no association with the course of {ctx.outcome_label}."
        )
    key = str(ctx.analysis.get("primary_outcome", "phq9")).partition(".")[0]
    instrument = ctx.registry().get(key)
    worse = instrument is None or instrument.higher_is == "worse"
    better = (primary["estimate"] < 0) == worse
    pace = "faster" if better else "slower"
    verb = "leads to" if str(primary["exposure"]) == "arm" else "is associated with"
    return (
        f"The confidence interval excludes zero: {exposure} {verb} {pace} improvement in "
        f"{ctx.outcome_label}."
    )


def _standardized(diag: Mapping[str, Any]) -> str:
    standardized = (diag.get("extras") or {}).get("standardized_effect") or {}
    if not (finite(standardized.get("estimate")) and finite(standardized.get("planned_sessions"))):
        return ""
    return (
        f"Over the planned duration of {int(standardized['planned_sessions'])} sessions, the "
        f"model-implied difference in change ({standardized.get('contrast', '')}) is "
        f"{num(standardized['estimate'], 2)} intake standard deviations (Feingold d, 95% CI "
        f"{interval(standardized['ci_low'], standardized['ci_high'], 2)})."
    )


def _caution(diag: Mapping[str, Any], converged: bool) -> str:
    """Why an estimate is imprecise or unstable: no convergence, a variance on the boundary."""
    if not converged:
        return "The model did not converge: the estimate is unstable and not to be relied on."
    if diag.get("boundary"):
        return (
            "The estimate is imprecise: a random-effect variance is on the boundary "
            "(estimated as zero), so the model is simpler than planned (see Models)."
        )
    return ""


def _primary_table(primary: pd.Series, digits: int, clients: str, observations: str) -> Any:
    rows = [
        [
            label(primary["model"]),
            outcome_label(str(primary["outcome"])),
            term_label(str(primary["term"])),
            num(primary["estimate"], digits),
            interval(primary["ci_low"], primary["ci_high"], digits),
            p_phrase(primary["p_value"]).removeprefix("= "),
            clients,
            observations,
        ]
    ]
    return table(
        "summary_primary_estimate",
        "Primary estimate",
        ["Model", "Outcome", "Term", "b", "95% CI", "p", "N (clients)", "Observations"],
        rows,
        text_columns=frozenset({0, 1, 2}),
    )


# -- alliance, engagement and dropout, goal agreement ----------------------------------------


def _association(ctx: ReportContext, y: str, what: str) -> str:
    """ "is associated with a higher early alliance (r = .68, 95% CI [.60, .75], 150 clients)",
    from the Pearson r of the exposure and client measure `y`; "" when there is none to show."""
    if ctx.clients is None:
        return ""
    r, low, high, n = agg.correlation_values(ctx.clients, ctx.exposure, y)
    if n == 0 or not finite(r):
        return ""
    if n < ctx.min_cell:
        return f"its correlation with {what} is withheld (fewer than {ctx.min_cell} clients)"
    clients = ctx.ledger.count(f"clients_with[{ctx.exposure},{y}]", n)
    stats = f"r = {coef(r)}, 95% CI [{coef(low)}, {coef(high)}], {clients} clients"
    if finite(low) and low <= 0 <= high:
        return f"the data are compatible with no correlation with {what} ({stats})"
    side = "higher" if r > 0 else "lower"
    return f"it is associated with {side} {what} ({stats})"


def _alliance(ctx: ReportContext) -> str:
    """The exposure and the early alliance (a correlation across clients)."""
    found = _association(ctx, "early_alliance", f"early alliance ({alliance_label(ctx.settings)})")
    if not found:
        return ""
    return f"Alliance: for {exposure_words(ctx.exposure)}, {found}."


def _engagement(ctx: ReportContext) -> str:
    """The exposure with attendance, and the dropout models' odds or hazard ratios."""
    parts = []
    found = _association(ctx, "attendance_rate", "attendance (attended / scheduled sessions)")
    if found:
        parts.append(f"For {exposure_words(ctx.exposure)}, {found}.")
    for _, r in _dropout_rows(ctx).iterrows():
        parts.append(_dropout_sentence(ctx, r))
    return "Engagement and dropout: " + " ".join(parts) if parts else ""


def _dropout_rows(ctx: ReportContext) -> pd.DataFrame:
    """The dropout models' exposure terms (not their sensitivity analyses), from enough
    clients."""
    c = ctx.coefficients
    if c is None or c.empty or not {"exposure_effect", "ratio"} <= set(c.columns):
        return pd.DataFrame()
    enough = c.groupby("model")["n_clients"].transform("max").fillna(0) >= ctx.min_cell
    role = c["role"] if "role" in c.columns else pd.Series("", index=c.index)
    return c.loc[
        c["exposure_effect"].map(truthy)
        & c["ratio"].map(finite)
        & enough
        & c["outcome"].astype(str).isin(_DROPOUT_OUTCOMES)
        & ~role.isin(["sensitivity"])
    ]


def _dropout_sentence(ctx: ReportContext, r: pd.Series) -> str:
    """One dropout model: its ratio and CI, the clients, and a reading; an imprecise ratio
    (CI upper over lower limit above 10, or separation) is said to be imprecise."""
    model = str(r["model"])
    kind = ratio_kind(ctx.diagnostics.get(model, {}))
    name = "hazard ratio" if kind == "HR" else "odds ratio"
    clients = ctx.ledger.model_clients(model, _model_clients(ctx.coefficients, model))
    low, high = r["ratio_ci_low"], r["ratio_ci_high"]
    stats = (
        f"{kind} = {num(r['ratio'], 2)} per unit of {label(r['exposure'])}, 95% CI "
        f"{interval(low, high, 2)}, p {p_phrase(r['p_value'])}, {clients} clients"
    )
    if ratio_imprecise(low, high):
        return (
            f"The {name} of dropout ({label(model)}) is too imprecise to read: its 95% CI "
            f"spans more than a factor of 10 or is unbounded, so the data cannot tell the size "
            f"or direction of the association ({stats})."
        )
    if low <= 1 <= high:
        reading = "the data are compatible with no association with dropout"
    else:
        side = "higher" if r["ratio"] > 1 else "lower"
        risk = "hazard" if kind == "HR" else "odds"
        reading = f"it is associated with {'a ' if kind == 'HR' else ''}{side} {risk} of dropout"
    return f"In the {label(model)} model, {reading} ({stats})."


def _model_clients(c: pd.DataFrame, model: Any) -> int | None:
    """The clients a model analysed: the most of any of its rows."""
    return int_or_none(c.loc[c["model"] == model, "n_clients"].max())


def _goal_agreement(ctx: ReportContext) -> str:
    """The congruence models' reading of client-therapist agreement, when they ran."""
    sentences = []
    for model in models_of_kind(ctx, "congruence", "goal_congruence"):
        part = ctx.coefficients.loc[ctx.coefficients["model"].astype(str) == model]
        n = int_or_none(part["n_clients"].max()) or 0
        if n < ctx.min_cell:
            continue
        terms = part.set_index("term")
        stats = [
            f"{term} = {estimate_ci(r['estimate'], r['ci_low'], r['ci_high'], digits)}"
            for term in ("a1", "a2", "a3", "a4")
            if term in terms.index
            for r in [terms.loc[term]]
            for digits in [estimate_digits(r["std_error"])]
        ]
        reading = in_words(str((ctx.diagnostics[model].get("extras") or {}).get("reading", "")))
        clients = ctx.ledger.model_clients(model, n)
        sentences.append(
            f"{label(model)} ({clients} clients; {', '.join(stats)}): {reading}".strip()
        )
    if not sentences:
        return ""
    return (
        "Goal agreement (response surface, 95% CIs; a1, a2: slope and curvature along the line "
        "of agreement, where client and therapist give the same rating; a3, a4: along the "
        "line of disagreement): " + " ".join(sentences)
    )


# -- further findings ------------------------------------------------------------------------


def _findings(ctx: ReportContext) -> list[str]:
    """A few sentences on the secondary results that the sections below detail."""
    c, min_cell, out = ctx.coefficients, ctx.min_cell, []
    if c is None or c.empty:
        return out
    enough = c.groupby("model")["n_clients"].transform("max").fillna(0) >= min_cell
    if "p_fdr" in c.columns and "exposure_effect" in c.columns:
        secondary = c.loc[
            c["exposure_effect"].map(truthy)
            & ~c["primary"].map(truthy)
            & c["p_fdr"].notna()
            & enough
        ]
        if len(secondary):
            k = int((secondary["p_fdr"] < 0.05).sum())
            out.append(
                f"Of {len(secondary)} secondary exposure associations, {k} "
                f"{'has' if k == 1 else 'have'} a Benjamini\u2013Hochberg adjusted p below .05 "
                "(Models)."
            )
    # The published "about 5%" is the share of post scores adjusted for intake; the null
    # model over all assessments is descriptive and not compared with it.
    icc = c.loc[
        (c["term"].astype(str) == "icc_therapist")
        & c["outcome"].astype(str).str.endswith("_post")
        & enough
    ]
    for _, r in icc.head(1).iterrows():
        out.append(
            f"Therapists account for {num(100 * r['estimate'], 1)}% of the variance in "
            f"{label(str(r['outcome']))} adjusted for intake (ICC {coef(r['estimate'])}, 95% CI "
            f"[{coef(r['ci_low'])}, {coef(r['ci_high'])}], "
            f"{ctx.ledger.model_clients(str(r['model']), _model_clients(c, r['model']))} "
            "clients); "
            "published estimates of this share are about 5%."
        )
    acme = c.loc[(c["term"].astype(str) == "acme") & enough]
    for _, r in acme.iterrows():
        mediator = _mediator(ctx.diagnostics.get(str(r["model"]), {}), str(r["model"]))
        if finite(r["ci_low"]) and finite(r["ci_high"]) and (r["ci_low"] > 0 or r["ci_high"] < 0):
            out.append(_mediation_sentence(r, mediator))
    return out


def _mediation_sentence(r: Mapping[str, Any], mediator: str) -> str:
    """Causal wording only for a randomised arm; an observed exposure is "associated"."""
    digits = estimate_digits(r.get("std_error"))
    shown = f"{num(r['estimate'], digits)}, 95% CI {interval(r['ci_low'], r['ci_high'], digits)}"
    outcome = outcome_label(str(r["outcome"]))
    if str(r["exposure"]) == "arm":
        return (
            f"Part of the effect of the randomised arm on {outcome} is mediated by "
            f"{mediator} (indirect effect {shown}), if nothing unmeasured confounds "
            f"{mediator} and the outcome, which randomisation does not ensure."
        )
    exposure = label(r["exposure"]).lower()
    return (
        f"Part of the association between {exposure} and {outcome} is accounted for by "
        f"{mediator} (indirect association {shown}); this decomposition assumes no unmeasured "
        f"confounding of {exposure}, {mediator} and the outcome."
    )


def _mediator(diag: Mapping[str, Any], model: str) -> str:
    return label(str((diag.get("extras") or {}).get("mediator", model))).lower()
