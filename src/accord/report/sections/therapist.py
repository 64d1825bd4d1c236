"""Therapist effects (ICC with its bootstrap CI and a caterpillar plot of the therapists'
random intercepts) and mediation (ACME, ADE, total effect, proportion mediated)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from accord.core.disclosure import structural_count, suppressed_label
from accord.report.context import ReportContext
from accord.report.figures import caterpillar_figure, to_plot
from accord.report.labels import label
from accord.report.numbers import coef, estimate_digits, finite, interval, num, p_value
from accord.report.parts import Heading, Section, Text, table
from accord.report.text import instrument_label

_MEDIATION_COLUMNS = (
    "Mediator",
    "Effect",
    "Estimate",
    "95% CI",
    "p",
    "\u03c1 at ACME = 0",
    "Clients",
)
_MEDIATION_TERMS = {
    "acme": "Indirect association (ACME)",
    "ade": "Direct association (ADE)",
    "total_effect": "Total association",
    "proportion_mediated": "Proportion mediated",
}


def build(ctx: ReportContext) -> Section:
    """The Therapist effects and mediation section."""
    section = Section("therapist-effects", "Therapist effects and mediation")
    section.add(*_therapist(ctx))
    section.add(Heading("Mediation", "mediation"))
    section.add(*_mediation(ctx))
    return section


def therapist_models(ctx: ReportContext) -> list[str]:
    """Models with an ``icc_therapist`` row, those of the post-adjusted design first."""
    c = ctx.coefficients
    if c is None:
        return []
    models = list(
        dict.fromkeys(c.loc[c["term"].astype(str) == "icc_therapist", "model"].astype(str))
    )
    return sorted(models, key=lambda m: not is_post_design(ctx, m))


def is_post_design(ctx: ReportContext, model: str) -> bool:
    """Whether `model` is the therapist model of post scores adjusted for intake."""
    extras = ctx.diagnostics.get(model, {}).get("extras") or {}
    return "adjusted for intake" in str(extras.get("design", ""))


def _design_label(ctx: ReportContext, model: str) -> str:
    if is_post_design(ctx, model):
        return "Post score adjusted for intake"
    return "Null model, all assessments (descriptive)"


def _therapist(ctx: ReportContext) -> list:
    models = therapist_models(ctx)
    if not models:
        return [Text("No therapist model was found in the model results.", "missing")]
    c, min_cell = ctx.coefficients, ctx.min_cell
    hide = suppressed_label(min_cell)
    rows = []
    for model in models:
        part = c.loc[c["model"].astype(str) == model]
        diag = ctx.diagnostics.get(model, {})
        n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else 0
        enough = n_clients >= min_cell
        boot = (diag.get("extras") or {}).get("bootstrap") or {}
        for term, name in (("icc_therapist", "Therapist ICC"), ("icc_client", "Client ICC")):
            r = part.loc[part["term"] == term]
            if r.empty:
                continue
            r = r.iloc[0]
            ci = (
                f"[{coef(r['ci_low'])}, {coef(r['ci_high'])}]"
                if finite(r["ci_low"]) and finite(r["ci_high"])
                else "\u2013"
            )
            rows.append(
                [
                    label(model),
                    _design_label(ctx, model),
                    instrument_label(str(r["outcome"]).removesuffix("_post")),
                    name,
                    coef(r["estimate"]) if enough else hide,
                    ci if enough else hide,
                    ctx.ledger.model_clients(model, n_clients),
                    structural_count(diag.get("n_therapists")),
                    str(boot.get("replicates", "\u2013")),
                ]
            )
    out: list = [
        table(
            "therapist_icc",
            "Therapist effects: intraclass correlations with 95% bootstrap CIs",
            [
                "Model",
                "Design",
                "Outcome",
                "Share",
                "ICC",
                "95% CI",
                "Clients",
                "Therapists",
                "Replicates",
            ],
            rows,
            text_columns=frozenset({1}),
            note=(
                "Post score adjusted for intake: the therapist share of the variance in "
                "end-of-treatment scores left after intake severity (clients with a post score "
                "in therapists, REML), the design behind published therapist effects of about "
                "5%. Null model (descriptive): the therapist share of the variance over all "
                "assessments, intake included, which also reflects differences in the "
                "therapists\u2019 caseloads at intake; client ICC: the share between clients of "
                "the same therapist. 95% percentile intervals from a cluster bootstrap that "
                "resamples therapists with their clients."
            ),
        )
    ]
    out.extend(_slopes(ctx, models[0]))
    out.extend(_caterpillar(ctx, models[0]))
    return out


def _slopes(ctx: ReportContext, model: str) -> list:
    """The therapist variance in the intake slope of the post-adjusted design, in words."""
    extras = ctx.diagnostics.get(model, {}).get("extras") or {}
    slopes = extras.get("slopes_model") or {}
    n_clients = ctx.diagnostics.get(model, {}).get("n_clients") or 0
    if not slopes or not finite(slopes.get("var_therapist_slope")) or n_clients < ctx.min_cell:
        return []
    return [
        Text(
            "Therapist variance in the slope of post scores on intake (random intercept and "
            f"intake slope per therapist, REML): {num(slopes['var_therapist_slope'], 4)} "
            f"(SD {num(float(slopes['var_therapist_slope']) ** 0.5, 3)} points per intake "
            f"point), intercept variance {num(slopes['var_therapist_intercept'], 3)}, "
            f"correlation {coef(slopes.get('correlation'))}. A variance near zero: therapists "
            "differ little in how post scores follow intake severity."
        )
    ]


def _caterpillar(ctx: ReportContext, model: str) -> list:
    extras = ctx.diagnostics.get(model, {}).get("extras") or {}
    effects = pd.DataFrame(extras.get("therapist_effects") or [])
    min_cell = ctx.min_cell
    if effects.empty or not {"effect", "ci_low", "ci_high"} <= set(effects.columns):
        return [Text("The therapist model recorded no therapist effects to plot.", "missing")]
    if "n_clients" not in effects.columns:
        return [
            Text(
                "The therapist model did not record each therapist\u2019s number of clients, so "
                f"effects from fewer than {min_cell} clients cannot be told apart; the "
                "caterpillar plot is not drawn. Refit the therapist model to draw it."
            )
        ]
    shown = drawable_effects(effects, min_cell)
    left_out = len(effects) - len(shown)
    if len(shown) < 2:
        return [
            Text(
                f"Fewer than two therapists saw {min_cell} or more clients, so no caterpillar "
                "plot is drawn."
            )
        ]
    outcome = ""
    c = ctx.coefficients
    if c is not None:
        raw = str(c.loc[c["model"].astype(str) == model, "outcome"].iloc[0])
        outcome = instrument_label(raw.removesuffix("_post"))
        if is_post_design(ctx, model):
            outcome += " at post, adjusted for intake,"
    fig = caterpillar_figure(shown, ylabel=f"Therapist effect on {outcome} (points, 95% CI)")
    # Therapist counts are counts like any other: the note names none.
    note = f" Therapists who saw fewer than {min_cell} clients are not drawn." if left_out else ""
    return [
        to_plot(
            fig,
            "therapist_caterpillar",
            alt="Therapist effects ranked from lowest to highest with 95% intervals",
            caption=(
                "Each therapist\u2019s random intercept (the predicted deviation of their "
                f"clients\u2019 mean {outcome} from the average therapist, shrunken towards "
                "zero) with a 95% interval from its conditional SE, ranked; therapists are not "
                "named. Intervals that cross zero are compatible with an average therapist." + note
            ),
        )
    ]


def drawable_effects(effects: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The therapist effects that may be drawn: those of therapists with at least `min_cell`
    clients (an effect is a statistic of the therapist's clients)."""
    return effects.loc[pd.to_numeric(effects["n_clients"], errors="coerce") >= min_cell]


def _mediation(ctx: ReportContext) -> list:
    c = ctx.coefficients
    if c is None:
        return [Text("No mediation model was found in the model results.", "missing")]
    models = list(dict.fromkeys(c.loc[c["term"].astype(str) == "acme", "model"].astype(str)))
    if not models:
        return [Text("No mediation model was found in the model results.", "missing")]
    hide = suppressed_label(ctx.min_cell)
    rows = []
    for model in models:
        part = c.loc[c["model"].astype(str) == model].set_index("term")
        extras = ctx.diagnostics.get(model, {}).get("extras") or {}
        mediator = label(str(extras.get("mediator", model)))
        n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else 0
        enough = n_clients >= ctx.min_cell
        for term, name in _MEDIATION_TERMS.items():
            if term not in part.index:
                continue
            r = part.loc[term]
            rho = ""
            if term == "acme":
                zero = (extras.get("sensitivity") or {}).get("rho_at_zero_acme")
                rho = num(zero, 2) if enough and finite(zero) else ""
            rows.append(
                [
                    mediator,
                    name,
                    num(r["estimate"], estimate_digits(r["std_error"])) if enough else hide,
                    interval(r["ci_low"], r["ci_high"], estimate_digits(r["std_error"]))
                    if enough
                    else hide,
                    p_value(r["p_value"], floor=extras.get("p_value_resolution"))
                    if enough
                    else hide,
                    rho,
                    ctx.ledger.model_clients(model, n_clients),
                ]
            )
    first = ctx.diagnostics.get(models[0], {}).get("extras") or {}
    exposure = str(c.loc[c["model"] == models[0], "exposure"].iloc[0])
    column = str(first.get("outcome_column", ""))
    key, _, end = column.rpartition("_")
    outcome = f"the {instrument_label(key)} {end} score" if key else "the outcome"
    caption = (
        f"Mediation of the effect of the randomised arm on {outcome}"
        if exposure == "arm"
        else f"Decomposition of the association between {label(exposure).lower()} and {outcome}"
    )
    return [
        table(
            "mediation",
            caption,
            _MEDIATION_COLUMNS,
            rows,
            note=_mediation_note(ctx, models),
        )
    ]


def _mediation_note(ctx: ReportContext, models: list[str]) -> str:
    """The mediation table's note: the models, how each model's uncertainty was computed, the
    assumptions and how to read rho at ACME = 0."""
    first = ctx.diagnostics.get(models[0], {}).get("extras") or {}
    inference = mediation_inferences(ctx.diagnostics, models)
    return (
        "Mediation analysis (Imai, Keele & Tingley 2010, as R\u2019s mediation) with "
        "linear models for the mediator (measured in the early sessions) and the post "
        "score, both adjusted for the intake score; "
        f"{first.get('contrast', 'exposure 1 vs 0')}. {inference[:1].upper()}{inference[1:]}; "
        "a p-value at the smallest the replicates or draws can give reads "
        "\u201c\u2264\u201d. The split into "
        "indirect and direct parts has a causal reading only if nothing unmeasured "
        "confounds the exposure and the mediator, the exposure and the outcome, or the "
        "mediator and the outcome; the last is not ensured even by randomisation. With "
        "an observed exposure it describes associations. "
        "\u03c1 at ACME = 0: the correlation between the errors of the mediator and "
        "outcome models (e.g. from an unmeasured mediator\u2013outcome confounder) at "
        "which the indirect effect would vanish (Imai, Keele & Yamamoto 2010). "
        "Decompositions are outside the secondary family (no adjusted p-value)."
    )


def mediation_inferences(diagnostics: Mapping[str, Any], models: list[str]) -> str:
    """`mediation_inference` of the mediation `models`: once when they share it, else per
    mediator (per model when two models have the same mediator)."""
    extras = {m: (diagnostics.get(m, {}) or {}).get("extras") or {} for m in models}
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(mediation_inference(extras[model]), []).append(model)
    if len(groups) == 1:
        return next(iter(groups))
    mediators = [str(extras[m].get("mediator", m)) for m in models]
    names = {
        m: m if mediators.count(mediator) > 1 else label(mediator).lower()
        for m, mediator in zip(models, mediators, strict=True)
    }
    return "; ".join(
        f"for {' and '.join(names[m] for m in group)}, {text}" for text, group in groups.items()
    )


def mediation_inference(extras: Mapping[str, Any]) -> str:
    """How a mediation model's estimates, CIs and p-values were computed, in words: the
    nonparametric bootstrap or the quasi-Bayesian Monte Carlo draws (and, when the study's
    size chose the latter, why)."""
    uncertainty = extras.get("uncertainty") or {}
    if uncertainty.get("method") == "quasi_bayesian":
        why = ""
        if uncertainty.get("setting") == "auto" and finite(uncertainty.get("threshold")):
            why = (
                f", used as the study has more than {int(uncertainty['threshold']):,} clients, "
                "the most the bootstrap is used for"
            )
        return (
            f"estimates are the means of {int(extras.get('sims', 1000)):,} quasi-Bayesian Monte "
            "Carlo draws of both models\u2019 coefficients from their normal approximation "
            "(King, Tomz & Wittenberg 2000; R\u2019s default; for the proportion mediated, "
            "the median), CIs the draws\u2019 2.5th and 97.5th percentiles and p-values twice "
            f"the share of draws on the far side of zero{why}"
        )
    return (
        "point estimates from the sample, percentile 95% CIs and p-values from "
        f"{extras.get('n_boot', 'the')} nonparametric bootstrap replicates, each refitting "
        "both models on one resample"
    )
