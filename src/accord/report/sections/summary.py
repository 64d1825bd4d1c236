"""Summary: the primary question, the primary estimate with its CI, and the main findings in
plain words, written from the model results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from accord.core.disclosure import structural_count
from accord.core.errors import AccordError
from accord.models.plan import FITTED, NOT_APPLICABLE, NOT_ESTIMABLE, STATUS_LABELS
from accord.models.spec import model_specs
from accord.report.context import ReportContext
from accord.report.ledger import SIZE
from accord.report.parts import Bullets, Section, Text, table
from accord.report.sections.models import model_statuses, status_counts
from accord.report.text import (
    TIMES,
    coef,
    finite,
    int_or_none,
    interval,
    num,
    outcome_label,
    p_phrase,
    truthy,
)

_EXPOSURE_WORDS = {
    "joint_goal_share": "setting goals jointly (client and therapist together)",
    "goal_alliance_client": "the client\u2019s rating of the goal alliance",
    "goal_consensus": "client-therapist divergence on goals",
    "goal_agreement": "client-therapist agreement on goal importance",
    "smart_quality": "the SMART quality of goals",
}


def build(ctx: ReportContext) -> Section:
    """The Summary section."""
    section = Section("summary", "Summary")
    exposure = _EXPOSURE_WORDS.get(ctx.exposure, ctx.exposure)
    section.add(
        Text(
            f"Primary question: does {exposure} go with a faster improvement in "
            f"{ctx.outcome_label} over the course of therapy?",
            "lead",
        )
    )
    sentences, primary_table = _primary(ctx)
    section.add(*(Text(sentence) for sentence in sentences))
    section.add(primary_table)
    findings = _findings(ctx)
    if findings:
        section.add(Bullets(tuple(("", f) for f in findings)))
    plan_note = _plan_note(ctx)
    if plan_note:
        section.add(Text(plan_note, "note"))
    return section


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
            parts.append(f"{len(ids)} {STATUS_LABELS[status]} ({', '.join(ids)})")
    return (
        f"Of the {total} models of the analysis plan: {'; '.join(parts)}. The Models section "
        "gives each one's reason."
    )


def primary_row(ctx: ReportContext) -> pd.Series | None:
    """The primary estimate: of the rows flagged primary (the primary outcome and exposure,
    with their sensitivity analyses), the one of the model declared primary in the config,
    else of a growth model (a time-by-exposure term), else the first."""
    coefficients = ctx.coefficients
    if coefficients is None or "primary" not in coefficients.columns:
        return None
    flagged = coefficients.loc[coefficients["primary"].map(truthy)]
    if flagged.empty:
        return None
    try:
        declared = [spec.id for spec in model_specs(ctx.config) if spec.primary]
    except AccordError:
        declared = []
    for picked in (
        flagged.loc[flagged["model"].astype(str).isin(declared)],
        flagged.loc[flagged["term"].astype(str).str.startswith("time:")],
        flagged,
    ):
        if len(picked):
            return picked.iloc[0]
    return None


def _primary(ctx: ReportContext) -> tuple[list[str], Any]:
    sentences = []
    min_cell = ctx.min_cell
    if ctx.clients is not None and "client_id" in ctx.clients.columns:
        n_clients = ctx.ledger.count("clients", ctx.clients["client_id"].nunique(), role=SIZE)
        therapists = ""
        for frame in (ctx.panel, ctx.clients):
            if frame is not None and "therapist_id" in frame.columns:
                n = structural_count(frame["therapist_id"].dropna().nunique())
                therapists = f" seen by {n} therapists"
                break
        sentences.append(f"The analysed sample holds {n_clients} clients{therapists}.")
    primary = primary_row(ctx)
    if primary is None:
        sentences.append("No primary model estimate was found in the results.")
        return sentences, None
    diag = ctx.diagnostics.get(str(primary["model"]), {})
    extras = diag.get("extras") or {}
    n_clients = int_or_none(primary["n_clients"]) or 0
    if n_clients < min_cell:
        sentences.append(
            f"The primary estimate is withheld: fewer than {min_cell} clients entered the model."
        )
        return sentences, None
    est, low, high = primary["estimate"], primary["ci_low"], primary["ci_high"]
    shown_clients = ctx.ledger.model_clients(str(primary["model"]), n_clients)
    shown_observations = ctx.ledger.model_observations(
        str(primary["model"]), int_or_none(primary["n_obs"]), n_clients
    )
    exposure = str(primary["exposure"])
    term = str(primary["term"])
    label = ctx.outcome_label
    if term.startswith("time:"):
        unit = (
            "per unit of log(session + 1)" if extras.get("time_coding") == "log" else "per session"
        )
        direction = "falls" if est < 0 else "rises"
        coding = str(extras.get("exposure_coding", "as given"))
        if coding.startswith("1 = ") and ", 0 = " in coding:
            one, zero = coding.removeprefix("1 = ").split(", 0 = ", 1)
            contrast = f"with {exposure} {one} rather than {zero}"
        else:
            contrast = f"for each unit of {exposure}"
        sentences.append(
            f"Primary analysis ({primary['model']} model): {contrast}, {label} {direction} by "
            f"{num(abs(est), 3)} points more {unit} (time {TIMES} {exposure}: b = "
            f"{num(est, 3)}, 95% CI {num(low, 3)} to {num(high, 3)}, p "
            f"{p_phrase(primary['p_value'])}; {shown_clients} clients, "
            f"{shown_observations} assessments)."
        )
    else:
        sentences.append(
            f"Primary analysis ({primary['model']} model, {term}): b = {num(est, 3)}, 95% CI "
            f"{num(low, 3)} to {num(high, 3)}, p {p_phrase(primary['p_value'])} "
            f"({shown_clients} clients)."
        )
    standardized = extras.get("standardized_effect") or {}
    if finite(standardized.get("estimate")) and finite(standardized.get("planned_sessions")):
        sentences.append(
            "Over the planned duration of "
            f"{int(standardized['planned_sessions'])} sessions, the model-implied difference in "
            f"change ({standardized.get('contrast', '')}) is "
            f"{num(standardized['estimate'], 2)} intake standard deviations (Feingold d, 95% CI "
            f"{num(standardized['ci_low'], 2)} to {num(standardized['ci_high'], 2)})."
        )
    if not truthy(primary["converged"]):
        sentences.append("The model did not converge: read its estimates with caution.")
    if diag.get("boundary"):
        sentences.append(
            "A random-effect variance is on the boundary (estimated as zero): see Models."
        )
    verdict = (
        "The confidence interval excludes zero."
        if finite(low) and finite(high) and (low > 0 or high < 0)
        else "The confidence interval includes zero: the data are compatible with no effect."
    )
    sentences.append(verdict)
    rows = [
        [
            str(primary["model"]),
            str(primary["outcome"]),
            str(primary["term"]).replace(":", f" {TIMES} "),
            num(est, 3),
            interval(low, high, 3),
            p_phrase(primary["p_value"]).removeprefix("= "),
            shown_clients,
            shown_observations,
        ]
    ]
    return sentences, table(
        "summary_primary_estimate",
        "Primary estimate",
        ["Model", "Outcome", "Term", "b", "95% CI", "p", "Clients", "Observations"],
        rows,
        highlight=frozenset({0}),
    )


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
                f"Of {len(secondary)} secondary exposure effects, {k} "
                f"{'has' if k == 1 else 'have'} a Benjamini\u2013Hochberg adjusted p below .05 "
                "(Models)."
            )
    dropout = (
        c.loc[
            c["exposure_effect"].map(truthy)
            & c["ratio"].map(finite)
            & enough
            & c["outcome"].astype(str).isin(["dropout", "sessions_to_dropout"])
            & ~c.get("role", pd.Series("", index=c.index)).isin(["sensitivity"])
        ]
        if {"exposure_effect", "ratio"} <= set(c.columns)
        else c.iloc[0:0]
    )
    for _, r in dropout.iterrows():
        kind = "hazard" if r["outcome"] == "sessions_to_dropout" else "odds"
        out.append(
            f"Dropout ({r['model']}): {kind} ratio {num(r['ratio'], 2)} per unit of "
            f"{r['exposure']} (95% CI {num(r['ratio_ci_low'], 2)} to "
            f"{num(r['ratio_ci_high'], 2)}, p {p_phrase(r['p_value'])})."
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
            f"{str(r['outcome']).removesuffix('_post')} at the end of treatment adjusted for "
            f"intake (ICC {coef(r['estimate'])}, 95% CI {coef(r['ci_low'])} to "
            f"{coef(r['ci_high'])}); published estimates of this share are about 5%."
        )
    acme = c.loc[(c["term"].astype(str) == "acme") & enough]
    for _, r in acme.iterrows():
        mediator = _mediator(ctx.diagnostics.get(str(r["model"]), {}), str(r["model"]))
        if finite(r["ci_low"]) and finite(r["ci_high"]) and (r["ci_low"] > 0 or r["ci_high"] < 0):
            out.append(_mediation_sentence(r, mediator))
    return out


def _mediation_sentence(r: Mapping[str, Any], mediator: str) -> str:
    """Causal wording only for a randomised arm; an observed exposure is "associated"."""
    interval = f"{num(r['estimate'], 2)}, 95% CI {num(r['ci_low'], 2)} to {num(r['ci_high'], 2)}"
    outcome = outcome_label(str(r["outcome"]))
    if str(r["exposure"]) == "arm":
        return (
            f"Part of the effect of the randomised arm on the {outcome} post score is mediated "
            f"by {mediator} (indirect effect {interval}), if nothing unmeasured confounds "
            f"{mediator} and the outcome, which randomisation does not ensure."
        )
    exposure = str(r["exposure"]).replace("_", " ")
    return (
        f"Part of the association between {exposure} and the {outcome} post score is "
        f"accounted for by {mediator} (indirect association {interval}); this decomposition "
        f"assumes no unmeasured confounding of {exposure}, {mediator} and the outcome."
    )


def _mediator(diag: Mapping[str, Any], model: str) -> str:
    return str((diag.get("extras") or {}).get("mediator", model)).replace("_", " ")
