"""Models: one APA-style table per fitted model (b, SE, 95% CI, p; random-effect variances, ICC,
numbers of observations, clients and therapists; convergence), an overview of every model's
fit, and a forest plot of the exposure effects across outcomes and sensitivity analyses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from accord.core.disclosure import (
    NOT_AVAILABLE,
    structural_count,
    suppress_counts_in,
    suppressed_label,
)
from accord.core.errors import AccordError
from accord.models.engine.inference import PROFILE_MAX_CLIENTS
from accord.models.gather import LRT_TERM_PREFIX
from accord.models.plan import FITTED, STATUS_LABELS
from accord.models.spec import model_specs
from accord.report.context import ReportContext
from accord.report.figures import FOREST_SCALES, forest_figure, forest_scale, to_plot
from accord.report.labels import in_words, label, term_label
from accord.report.numbers import chi_square, coef, estimate_digits, finite, interval, num, p_value
from accord.report.parts import Heading, Section, Table, Text, table
from accord.report.text import int_or_none, outcome_label, truthy
from accord.report.tidy import DIGITS, P_DIGITS, coefficient_data, significant

RANDOM_LABELS = {
    "therapist_intercept": "Therapist intercept",
    "client_intercept": "Client intercept",
    "client_slope": "Client slope (time)",
    "client_intercept_slope_covariance": "Client intercept-slope covariance",
    "residual": "Residual",
}
#: Kinds of model whose rows are described elsewhere in the report (Dropout, Therapist
#: effects, Mediation) but are still listed here with the rest.
COLUMNS = ["Term", "b", "SE", "95% CI", "p", "p (FDR)"]
#: A mixed model's fixed effects also show lmerTest's Satterthwaite df and t-test p-value.
SATTERTHWAITE_COLUMNS = ["df", "p (Satterthwaite)"]
#: The variance parameters' profile intervals (diagnostics ``variance_parameters``) beside the
#: variance components they belong to.
PROFILE_TERMS = {
    "therapist_intercept": "therapist_intercept_sd",
    "client_intercept": "client_intercept_sd",
    "client_slope": "client_slope_sd",
    "residual": "residual_sd",
}


def build(ctx: ReportContext) -> Section:
    """The Models section."""
    section = Section("models", "Models")
    statuses = model_statuses(ctx)
    if statuses:
        section.add(_plan_table(statuses))
    c = ctx.coefficients
    if c is None or c.empty:
        section.add(Text("No model results were found (models/coefficients.csv).", "missing"))
        return section
    section.add(
        Text(
            "Each model as fitted, in the order of the results. The primary estimate is "
            "highlighted; p (FDR) is the Benjamini\u2013Hochberg adjusted p-value over the "
            "secondary exposure effects. A model fitted to fewer than "
            f"{ctx.min_cell} clients has its estimates withheld."
        )
    )
    section.add(_overview(ctx))
    section.add(Heading("Exposure terms across models", "forest"))
    section.add(*_forest(ctx))
    every: list[tuple[str, Table]] = []
    for model_id, part in c.groupby("model", sort=False):
        diag = ctx.diagnostics.get(str(model_id), {})
        section.add(*_model(str(model_id), part, diag, ctx, every))
    section.add(_all_coefficients(every))
    return section


def model_statuses(ctx: ReportContext) -> list[tuple[str, str, str, str]]:
    """(model, kind, status, reason) for every model of the study's plan, in the plan's order.

    Results gathered without a plan list only their fitted models."""
    rows = []
    last = len(ctx.diagnostics)
    ordered = sorted(ctx.diagnostics.items(), key=lambda item: item[1].get("plan_position", last))
    for model_id, diag in ordered:
        status = str(diag.get("status") or FITTED)
        rows.append((model_id, str(diag.get("kind", "")), status, str(diag.get("reason") or "")))
    return rows


def status_counts(statuses: list[tuple[str, str, str, str]]) -> dict[str, list[str]]:
    """Model ids by status (fitted, not_estimable, not_applicable), in the plan's order."""
    counts: dict[str, list[str]] = {}
    for model_id, _, status, _ in statuses:
        counts.setdefault(status, []).append(model_id)
    return counts


def _plan_table(statuses: list[tuple[str, str, str, str]]) -> Table:
    rows = [
        [
            label(model_id),
            label(kind) if kind else NOT_AVAILABLE,
            STATUS_LABELS.get(status, status),
            reason or "\u2014",
        ]
        for model_id, kind, status, reason in statuses
    ]
    return table(
        "models_plan",
        "The analysis plan: every configured model and whether it was fitted",
        ["Model", "Kind", "Status", "Reason"],
        rows,
        text_columns=frozenset({1, 2, 3}),
        note=(
            "Not applicable: the study lacks what the model needs (an instrument, therapist "
            "IDs, an arm, the goals table), so it was left out. Not estimable: the model "
            "applies but these data cannot estimate it. Edit the plan under `models:` in the "
            "config (`accord plan` writes it for a study)."
        ),
    )


def enough_clients(part: pd.DataFrame, min_cell: int) -> bool:
    """True when the model's largest client count reaches `min_cell`."""
    n = part["n_clients"].max() if part["n_clients"].notna().any() else 0
    return int(n) >= min_cell


def _overview(ctx: ReportContext):
    rows = []
    for model_id, part in ctx.coefficients.groupby("model", sort=False):
        diag = ctx.diagnostics.get(str(model_id), {})
        first = part.iloc[0]
        n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else None
        converged = diag.get("converged", truthy(first["converged"]))
        rows.append(
            [
                label(model_id),
                str(diag.get("method", "")) or NOT_AVAILABLE,
                ctx.ledger.model_observations(
                    str(model_id), int_or_none(first["n_obs"]), n_clients
                ),
                ctx.ledger.model_clients(str(model_id), n_clients),
                structural_count(diag.get("n_therapists")),
                "yes" if converged else "no",
                "yes" if diag.get("boundary") else "no",
                str(len(diag.get("warnings") or [])),
            ]
        )
    return table(
        "models_fit",
        "Models fitted: estimation, numbers analysed and convergence",
        [
            "Model",
            "Estimation",
            "Observations",
            "Clients",
            "Therapists",
            "Converged",
            "Boundary",
            "Warnings",
        ],
        rows,
        text_columns=frozenset({1}),
        note=(
            "Outcome, exposure and formula are given with each model below. Boundary: a "
            "random-effect variance estimated as zero. Warnings are listed under each model."
        ),
    )


# One row per exposure term drawn in the forest plot (`forest_rows`); the figure's CSV.
FOREST_COLUMNS = (
    "label",
    "estimate",
    "ci_low",
    "ci_high",
    "digits",
    "scale",
    "term",
    "p",
    "p_floor",
    "p_fdr",
    "n_clients",
    "primary",
    "role",
)


def forest_rows(ctx: ReportContext) -> pd.DataFrame:
    """The exposure effects to draw: label, estimate, ci_low, ci_high, the decimals to show,
    scale (`accord.report.figures.FOREST_SCALES`: ratio models on the ratio scale), term, p,
    clients; models from fewer than min_cell clients left out. Only the one primary estimate
    (`primary_row`) is marked primary."""
    c = ctx.coefficients
    if c is None or "exposure_effect" not in c.columns:
        return pd.DataFrame(columns=list(FOREST_COLUMNS))
    chosen = primary_row(ctx)
    rows = []
    for _, r in c.loc[c["exposure_effect"].map(truthy)].iterrows():
        part = c.loc[c["model"] == r["model"]]
        if not enough_clients(part, ctx.min_cell):
            continue
        diag = ctx.diagnostics.get(str(r["model"]), {})
        row = _forest_row(r, diag, by=_forest_by(c.loc[c["model"] == r["model"]]))
        if row is None:
            continue
        n_clients = int_or_none(part["n_clients"].max())
        row["n_clients"] = ctx.ledger.model_clients(str(r["model"]), n_clients)
        row["primary"] = chosen is not None and _same_row(r, chosen)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FOREST_COLUMNS))


def _forest_row(r: pd.Series, diag: Mapping[str, Any], *, by: str) -> dict | None:
    """One exposure term as the forest plot draws it; None when its CI is missing."""
    scale = forest_scale(r, diag)
    ratio = scale == "ratio"
    if ratio:
        est, low, high = r["ratio"], r["ratio_ci_low"], r["ratio_ci_high"]
    else:
        est, low, high = r["estimate"], r["ci_low"], r["ci_high"]
    if not (finite(est) and finite(low) and finite(high)):
        return None
    kind = ratio_kind(diag) if ratio else "b"
    name = label(r["model"])
    if by == "outcome":
        name = f"{name}, {outcome_label(str(r['outcome']))}"
    elif by == "term":
        name = f"{name}, {term_label(str(r['term']))}"
    return {
        "label": f"{name} ({kind})",
        "estimate": float(est),
        "ci_low": float(low),
        "ci_high": float(high),
        "digits": 2 if ratio else estimate_digits(r.get("std_error")),
        "scale": FOREST_SCALES[scale],
        "term": f"{outcome_label(str(r['outcome']))}: {term_label(str(r['term']))}",
        "p": r["p_value"],
        "p_floor": (diag.get("extras") or {}).get("p_value_resolution"),
        "p_fdr": r.get("p_fdr"),
        "role": _role(r),
    }


def _forest_by(part: pd.DataFrame) -> str:
    """What tells a model's exposure terms apart in the forest plot: nothing for one term,
    else the outcome when each term has its own, else the term."""
    terms = part.loc[part["exposure_effect"].map(truthy)]
    if len(terms) <= 1:
        return ""
    return "outcome" if terms["outcome"].nunique() == len(terms) else "term"


def ratio_kind(diag: Mapping[str, Any]) -> str:
    """ "HR" for a Cox model (partial likelihood), else "OR"."""
    return "HR" if "partial likelihood" in str(diag.get("method", "")) else "OR"


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


def _same_row(r: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    return all(str(r[k]) == str(other[k]) for k in ("model", "outcome", "term"))


ROLE_NOTE = (
    "Role: the one primary test (the model marked primary, its exposure term: p not adjusted); "
    "secondary tests, whose p-values are Benjamini\u2013Hochberg adjusted together (p (FDR)); "
    "sensitivity analyses, mediation decompositions and descriptive models, which are outside "
    "that family and have no adjusted p-value."
)


def _role(row: pd.Series) -> str:
    """A row's role as the gathered table records it (for a table without roles: primary for
    a row flagged primary, else secondary)."""
    role = row.get("role")
    if isinstance(role, str) and role:
        return role
    return "primary" if truthy(row.get("primary")) else "secondary"


_FOREST_CAPTIONS = {
    "slope": "differences in change per unit of time (time \u00d7 exposure; outcome points, "
    "null at 0)",
    "endpoint": "differences at the end of treatment (outcome points, null at 0)",
    "other": "other regression coefficients (in each outcome's units, null at 0)",
    "ratio": "odds and hazard ratios (log axis, null at 1; a ratio whose CI reaches 0, from "
    "separation, is listed in the table below but not drawn)",
    "mediation": "mediation decompositions (indirect effects, outcome points, null at 0)",
}


def _forest(ctx: ReportContext) -> list:
    """One forest plot per scale (slopes, end-point differences, other coefficients, ratios,
    mediation), each with its data as CSV, and the table of every exposure term."""
    rows = forest_rows(ctx)
    if rows.empty:
        return [Text("No exposure effect is marked in the model results.", "missing")]
    out: list = []
    for key, scale in FOREST_SCALES.items():
        part = rows.loc[rows["scale"] == scale]
        if key == "ratio":  # a CI reaching 0 (separation) has no place on a log axis
            part = part.loc[part["ci_low"] > 0]
        fig = forest_figure(part)
        if fig is None:
            continue
        name = f"models_forest_{key}"
        out.append(
            to_plot(
                fig,
                name,
                alt=f"Forest plot with 95% CIs: {_FOREST_CAPTIONS[key]}",
                caption=(
                    f"Exposure terms with their 95% CIs: {_FOREST_CAPTIONS[key]}. The primary "
                    "estimate is drawn in orange; sensitivity analyses sit next to the models "
                    f"they check. Data: figures/{name}.csv."
                ),
                data=part[["label", "term", "estimate", "ci_low", "ci_high", "p", "primary"]],
            )
        )
    out.append(_forest_table(rows))
    return out


def _forest_table(rows: pd.DataFrame) -> Table:
    return table(
        "models_exposure_effects",
        "Exposure terms across models",
        ["Model", "Role", "Term", "Estimate", "95% CI", "p", "p (FDR)", "N"],
        [
            [
                r["label"],
                r["role"],
                r["term"],
                num(r["estimate"], r["digits"]),
                interval(r["ci_low"], r["ci_high"], r["digits"]),
                p_value(r["p"], floor=r.get("p_floor")),
                p_value(r["p_fdr"]),
                r["n_clients"],
            ]
            for _, r in rows.iterrows()
        ],
        text_columns=frozenset({0, 1, 2}),
        note=ROLE_NOTE + " N: clients in the model.",
        data=exposure_data(rows),
    )


def exposure_data(rows: pd.DataFrame) -> pd.DataFrame:
    """The forest rows as numbers for the tidy CSV: estimates and CIs on their scale."""
    out = rows[["label", "role", "term", "scale"]].copy()
    for name in ("estimate", "ci_low", "ci_high", "p", "p_fdr"):
        out[name] = significant(rows[name], P_DIGITS if name.startswith("p") else DIGITS)
    out["primary"] = rows["primary"].astype(int)
    return out


def _model(
    model_id: str, part: pd.DataFrame, diag: Mapping[str, Any], ctx: ReportContext, every: list
) -> list:
    """One model: its heading and description, its estimates (or test), the standardized
    effect, random effects, numbers analysed and convergence, and the fit's warnings."""
    first = part.iloc[0]
    enough = enough_clients(part, ctx.min_cell)
    if str(first["term"]).startswith(LRT_TERM_PREFIX):
        estimates = _test_table(model_id, part, diag, enough, ctx.min_cell)
    else:
        estimates = _estimates_table(model_id, part, diag, enough, ctx)
    every.append((model_id, estimates))
    blocks = [
        Heading(model_heading(model_id, first), f"model-{model_id}"),
        _description(part, diag),
        estimates,
        _standardized(diag) if enough else None,
        _random_effects(model_id, diag, enough, ctx.min_cell),
        _fit_text(model_id, part, diag, ctx),
        _warnings(diag, ctx.min_cell),
    ]
    return [b for b in blocks if b is not None]


def model_heading(model_id: str, first: Mapping[str, Any]) -> str:
    """ "Growth: PHQ-9 on Joint goal-setting share"."""
    return (
        f"{label(model_id)}: {outcome_label(str(first['outcome']))} on {label(first['exposure'])}"
    )


def _description(part: pd.DataFrame, diag: Mapping[str, Any]) -> Text | None:
    """The model's formula, random effects, time coding, estimation and role."""
    extras = diag.get("extras") or {}
    described = []
    if diag.get("formula"):
        described.append(f"Model {in_words(diag['formula'])}")
    if extras.get("structure"):
        described.append(f"random effects: {extras['structure']}")
    if extras.get("time_coding"):
        described.append(f"time coded {extras['time_coding']}")
    if diag.get("method"):
        described.append(f"estimation: {diag['method']}")
    if "role" in part.columns:
        role = _role(part.iloc[0])
        outside = role not in ("primary", "secondary")
        described.append(f"role: {role}" + (" (outside the secondary family)" if outside else ""))
    return Text("; ".join(described) + ".") if described else None


def _estimates_table(
    model_id: str,
    part: pd.DataFrame,
    diag: Mapping[str, Any],
    enough: bool,
    ctx: ReportContext,
) -> Table:
    """b, SE, CI, p and p (FDR) per term (and the ratio for a logistic or Cox model); only the
    report's one primary estimate is highlighted and marked."""
    chosen = primary_row(ctx)
    floor = (diag.get("extras") or {}).get("p_value_resolution")
    has_ratio = part["ratio"].map(finite).any() if "ratio" in part.columns else False
    has_df = part["df"].map(finite).any() if "df" in part.columns else False
    rows, highlight, labels = [], set(), []
    for i, (_, r) in enumerate(part.iterrows()):
        primary = chosen is not None and _same_row(r, chosen)
        if primary:
            highlight.add(i)
        cells = _estimate_cells(r, floor, has_ratio, has_df)
        if not enough:
            cells = [suppressed_label(ctx.min_cell)] * len(cells)
        labels.append(term_label(str(r["term"])))
        rows.append([labels[-1] + (" (primary)" if primary else ""), *cells])
    columns = [
        *COLUMNS,
        *([f"{ratio_kind(diag)} [95% CI]"] if has_ratio else []),
        *(SATTERTHWAITE_COLUMNS if has_df else []),
    ]
    return table(
        f"models_{model_id}",
        f"{label(model_id)}: estimates ({diag.get('method') or 'as fitted'})",
        columns,
        rows,
        highlight=frozenset(highlight),
        data=coefficient_data(part, labels, withheld=not enough, ratio=has_ratio),
    )


def _estimate_cells(r: pd.Series, floor: Any, has_ratio: bool, has_df: bool) -> list[str]:
    digits = estimate_digits(r["std_error"])
    cells = [
        num(r["estimate"], digits),
        num(r["std_error"], digits),
        interval(r["ci_low"], r["ci_high"], digits) if finite(r["ci_low"]) else NOT_AVAILABLE,
        p_value(r["p_value"], floor=floor),
        p_value(r.get("p_fdr")),
    ]
    if has_ratio:
        cells.append(
            f"{num(r['ratio'], 2)} {interval(r['ratio_ci_low'], r['ratio_ci_high'], 2)}"
            if finite(r.get("ratio"))
            else NOT_AVAILABLE
        )
    if has_df:
        cells += [
            num(r["df"], 1) if finite(r.get("df")) else NOT_AVAILABLE,
            p_value(r.get("p_satterthwaite")),
        ]
    return cells


def _test_table(
    model_id: str, part: pd.DataFrame, diag: Mapping[str, Any], enough: bool, min_cell: int
) -> Table:
    """A likelihood-ratio test: the terms it drops, chi-square(df) and p."""
    df = (diag.get("extras") or {}).get("df")
    hide = suppressed_label(min_cell)
    rows = [
        [
            term_label(str(r["term"])),
            chi_square(r["estimate"], df) if enough else hide,
            p_value(r["p_value"]) if enough else hide,
        ]
        for _, r in part.iterrows()
    ]
    return table(
        f"models_{model_id}",
        f"{label(model_id)}: likelihood-ratio test ({diag.get('method') or 'as fitted'})",
        ["Test", "\u03c7\u00b2(df)", "p"],
        rows,
    )


def _standardized(diag: Mapping[str, Any]) -> Text | None:
    standardized = (diag.get("extras") or {}).get("standardized_effect") or {}
    if not (finite(standardized.get("estimate")) and finite(standardized.get("planned_sessions"))):
        return None
    return Text(
        "Standardized effect (Feingold 2009: the time \u00d7 exposure coefficient "
        f"times the planned duration of {int(standardized['planned_sessions'])} "
        f"sessions, {standardized.get('contrast', '')}, in intake SDs of the outcome): "
        f"d = {num(standardized['estimate'], 2)} "
        f"{interval(standardized['ci_low'], standardized['ci_high'], 2)}."
    )


def _fit_text(
    model_id: str, part: pd.DataFrame, diag: Mapping[str, Any], ctx: ReportContext
) -> Text:
    """Numbers analysed, convergence and variances on the boundary."""
    first = part.iloc[0]
    n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else None
    converged = diag.get("converged", truthy(first["converged"]))
    components = [RANDOM_LABELS.get(c, label(c)) for c in diag.get("boundary_components") or []]
    boundary = "yes: " + ", ".join(components) if diag.get("boundary") else "no"
    optimizer = f" (optimizer {diag['optimizer']})" if diag.get("optimizer") else ""
    observations = ctx.ledger.model_observations(model_id, int_or_none(first["n_obs"]), n_clients)
    return Text(
        f"Observations: {observations}; clients: "
        f"{ctx.ledger.model_clients(model_id, n_clients)}; therapists: "
        f"{structural_count(diag.get('n_therapists'))}. Converged: "
        f"{'yes' if converged else 'no'}{optimizer}. Variance on the boundary: {boundary}."
    )


def _warnings(diag: Mapping[str, Any], min_cell: int) -> Text | None:
    warnings = [in_words(suppress_counts_in(w, min_cell)) for w in diag.get("warnings") or []]
    if not warnings:
        return None
    return Text("Warnings from the fit: " + "; ".join(warnings) + ".", "warning")


def _random_effects(model_id: str, diag: Mapping[str, Any], enough: bool, min_cell: int):
    """Variance components with their SDs (and profile intervals where fitted), the ICCs and
    the marginal and conditional R\u00b2."""
    variances = diag.get("random_effects") or {}
    if not variances:
        return None
    hide = suppressed_label(min_cell)
    intervals = {str(row.get("term")): row for row in diag.get("variance_parameters") or []}
    rows = _variance_rows(variances, intervals, enough, hide)
    filler = [""] if intervals else []
    icc = intercept_iccs(variances)
    for name, value in icc.items():
        rows.append([name, coef(value) if enough else hide, "", *filler])
    r_squared = diag.get("r_squared") or {}
    for key, name in (("marginal", "R\u00b2 marginal"), ("conditional", "R\u00b2 conditional")):
        if finite(r_squared.get(key)):
            rows.append([name, coef(r_squared[key]) if enough else hide, "", *filler])
    return table(
        f"models_{model_id}_random_effects",
        f"{label(model_id)}: random effects",
        ["Component", "Variance", "SD", *(["SD 95% CI"] if intervals else [])],
        rows,
        note=" ".join(_random_effect_notes(bool(icc), intervals, bool(r_squared))),
    )


def _variance_rows(
    variances: Mapping[str, Any], intervals: Mapping[str, Any], enough: bool, hide: str
) -> list[list[str]]:
    order = list(RANDOM_LABELS)
    items = sorted(
        variances.items(),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    rows = []
    for name, value in items:
        sd = (
            num(math.sqrt(value), 3, significant=True)
            if finite(value) and value >= 0 and "covariance" not in name
            else NOT_AVAILABLE
        )
        row = [RANDOM_LABELS.get(name, name), num(value, 3, significant=True), sd]
        if intervals:
            row.append(_profile_interval(intervals.get(PROFILE_TERMS.get(name, ""))))
        rows.append(row if enough else [row[0], *[hide] * (len(row) - 1)])
        correlation = intervals.get("client_intercept_slope_correlation")
        if "covariance" in name and correlation is not None:
            row = [
                "Client intercept-slope correlation",
                "",
                num(correlation.get("estimate"), 2),
                _profile_interval(correlation),
            ]
            rows.append(row if enough else [row[0], "", hide, hide])
    return rows


def _random_effect_notes(icc: bool, intervals: Mapping[str, Any], r_squared: bool) -> list[str]:
    notes = []
    if icc:
        notes.append(
            "ICC: the share of the intercept-level variance (therapist + client + residual) "
            "at the therapist or client level; in a growth model this is the share at time 0."
        )
    methods = {str(row.get("method", "")) for row in intervals.values()}
    if any(method.startswith("Wald") for method in methods):
        notes.append(
            "95% CI: Wald interval of the SD (or correlation), the curvature of the deviance "
            "carried to the SD scale by the delta method: in a model of more than "
            f"{PROFILE_MAX_CLIENTS:,} clients, where profiling each limit would take hours "
            "and the likelihood is close to quadratic; none for an estimate on its bound."
        )
    elif intervals:
        notes.append(
            "95% CI: profile-likelihood interval of the SD (or correlation) from the "
            'maximum-likelihood refit, as lme4\'s confint(method = "profile"); a limit at 0 '
            "or \u00b11 is the parameter's bound."
        )
    if r_squared:
        notes.append(
            "R\u00b2: Nakagawa & Schielzeth's marginal (fixed effects) and conditional (fixed "
            "and random effects) share of variance, random slopes as in Johnson (2014)."
        )
    return notes


def _profile_interval(row: Mapping[str, Any] | None) -> str:
    if row is None or not (finite(row.get("ci_low")) and finite(row.get("ci_high"))):
        return NOT_AVAILABLE
    return interval(row["ci_low"], row["ci_high"], 2)


def intercept_iccs(variances: Mapping[str, Any]) -> dict[str, float]:
    """Therapist and client ICCs from the intercept variances and the residual."""
    t = variances.get("therapist_intercept")
    c = variances.get("client_intercept")
    e = variances.get("residual")
    parts = [v for v in (t, c, e) if finite(v)]
    if not finite(e) or len(parts) < 2:
        return {}
    total = sum(float(v) for v in parts)
    out = {}
    if finite(t):
        out["ICC, therapist"] = float(t) / total
    if finite(c):
        out["ICC, client" if not finite(t) else "ICC, client within therapist"] = float(c) / total
    return out


def _all_coefficients(every: list[tuple[str, Table]]) -> Table:
    """Every model's estimates in one table for a manuscript's supplement (CSV only: the same
    values as the per-model tables above; a likelihood-ratio test's chi-square under Test)."""
    rows, data = [], []
    for model_id, t in every:
        ratio = next((i for i, c in enumerate(t.columns) if c.endswith(" [95% CI]")), None)
        df = t.columns.index("df") if "df" in t.columns else None
        for r in t.rows:
            if len(r) == 3:  # a test: term, chi-square(df), p
                rows.append([label(model_id), r[0], *[""] * 3, r[2], *[""] * 4, r[1]])
                continue
            extra = [r[ratio] if ratio is not None else ""]
            extra += [r[df], r[df + 1]] if df is not None else ["", ""]
            rows.append([label(model_id), *r[: len(COLUMNS)], *extra, ""])
        if t.data is not None:
            data.append(t.data.assign(model=model_id))
    return table(
        "models_coefficients",
        "Every model's estimates",
        ["Model", *COLUMNS, "Ratio [95% CI]", *SATTERTHWAITE_COLUMNS, "Test"],
        rows,
        in_html=False,
        data=_with_model_first(data),
    )


def _with_model_first(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    if not frames:
        return None
    joined = pd.concat(frames, ignore_index=True)
    middle = [c for c in joined.columns if c not in ("model", "suppressed")]
    return joined[["model", *middle, "suppressed"]]
