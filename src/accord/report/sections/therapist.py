"""Therapist effects (ICC with its bootstrap CI and a caterpillar plot of the therapists'
random intercepts) and mediation (ACME, ADE, total effect, proportion mediated)."""

from __future__ import annotations

import pandas as pd

from accord.disclosure import suppress_count, suppressed_label
from accord.report.context import ReportContext
from accord.report.figures import caterpillar_figure, to_plot
from accord.report.parts import Heading, Section, Text, table
from accord.report.text import coef, finite, instrument_label, interval, num, p_value

_MEDIATION_COLUMNS = (
    "Mediator",
    "Effect",
    "Estimate",
    "95% CI",
    "p",
    "p (FDR)",
    "\u03c1 at ACME = 0",
    "Clients",
)
_MEDIATION_TERMS = {
    "acme": "Indirect effect (ACME)",
    "ade": "Direct effect (ADE)",
    "total_effect": "Total effect",
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
    """Models with an ``icc_therapist`` row."""
    c = ctx.coefficients
    if c is None:
        return []
    return list(dict.fromkeys(c.loc[c["term"].astype(str) == "icc_therapist", "model"].astype(str)))


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
        for term, label in (("icc_therapist", "Therapist ICC"), ("icc_client", "Client ICC")):
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
                    model,
                    instrument_label(str(r["outcome"])),
                    label,
                    coef(r["estimate"]) if enough else hide,
                    ci if enough else hide,
                    ctx.ledger.model_clients(model, n_clients),
                    suppress_count(diag.get("n_therapists"), min_cell),
                    str(boot.get("replicates", "\u2013")),
                ]
            )
    out: list = [
        table(
            "therapist_icc",
            "Therapist effects: intraclass correlations with 95% bootstrap CIs",
            ["Model", "Outcome", "Share", "ICC", "95% CI", "Clients", "Therapists", "Replicates"],
            rows,
            note=(
                "Therapist ICC: the share of the outcome\u2019s variance between therapists, from "
                "the null three-level model (assessments in clients in therapists, REML). "
                "Client ICC: the share between clients of the same therapist. 95% percentile "
                "intervals from a cluster bootstrap that resamples therapists with their clients."
            ),
        )
    ]
    out.extend(_caterpillar(ctx, models[0]))
    return out


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
        outcome = instrument_label(str(c.loc[c["model"].astype(str) == model, "outcome"].iloc[0]))
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
    rows, highlight = [], set()
    for model in models:
        part = c.loc[c["model"].astype(str) == model].set_index("term")
        extras = ctx.diagnostics.get(model, {}).get("extras") or {}
        mediator = str(extras.get("mediator", model))
        n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else 0
        enough = n_clients >= ctx.min_cell
        for term, label in _MEDIATION_TERMS.items():
            if term not in part.index:
                continue
            r = part.loc[term]
            rho = ""
            if term == "acme":
                highlight.add(len(rows))
                zero = (extras.get("sensitivity") or {}).get("rho_at_zero_acme")
                rho = num(zero, 2) if enough and finite(zero) else ""
            rows.append(
                [
                    mediator,
                    label,
                    num(r["estimate"], 3) if enough else hide,
                    interval(r["ci_low"], r["ci_high"], 3) if enough else hide,
                    p_value(r["p_value"]) if enough else hide,
                    p_value(r.get("p_fdr")) if enough and term == "acme" else "",
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
        else f"Decomposition of the association between {exposure.replace('_', ' ')} and {outcome}"
    )
    return [
        table(
            "mediation",
            caption,
            _MEDIATION_COLUMNS,
            rows,
            highlight=frozenset(highlight),
            note=(
                "Mediation analysis (Imai, Keele & Tingley 2010, as R\u2019s mediation) with "
                "linear models for the mediator (measured in the early sessions) and the post "
                "score, both adjusted for the intake score; "
                f"{first.get('contrast', 'exposure 1 vs 0')}. Estimates from the sample; CIs "
                f"and p-values from {first.get('n_boot', 'the')} nonparametric bootstrap "
                "replicates, each refitting both models on one resample. The split into "
                "indirect and direct parts has a causal reading only if nothing unmeasured "
                "confounds the exposure and the mediator, the exposure and the outcome, or the "
                "mediator and the outcome; the last is not ensured even by randomisation. "
                "\u03c1 at ACME = 0: the correlation between the errors of the mediator and "
                "outcome models (e.g. from an unmeasured mediator\u2013outcome confounder) at "
                "which the indirect effect would vanish (Imai, Keele & Yamamoto 2010)."
            ),
        )
    ]
