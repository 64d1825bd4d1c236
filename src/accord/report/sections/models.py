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
from accord.models.plan import FITTED, STATUS_LABELS
from accord.report.context import ReportContext
from accord.report.figures import forest_figure, to_plot
from accord.report.parts import Heading, Section, Table, Text, table
from accord.report.text import (
    coef,
    digits_for,
    finite,
    int_or_none,
    interval,
    num,
    p_value,
    term_label,
    truthy,
)
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
    every: list[Table] = []
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
        [model_id, kind or NOT_AVAILABLE, STATUS_LABELS.get(status, status), reason or "\u2014"]
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
                str(model_id),
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


# One row per exposure term drawn in the forest plot (`forest_rows`).
FOREST_COLUMNS = (
    "label",
    "estimate",
    "ci_low",
    "ci_high",
    "scale",
    "term",
    "p",
    "p_floor",
    "p_fdr",
    "primary",
    "role",
)


def forest_rows(ctx: ReportContext) -> pd.DataFrame:
    """The exposure effects to draw: label, estimate, ci_low, ci_high, scale (ratio models on
    the ratio scale), p; models from fewer than min_cell clients left out."""
    c = ctx.coefficients
    if c is None or "exposure_effect" not in c.columns:
        return pd.DataFrame(columns=list(FOREST_COLUMNS))
    rows = []
    for _, r in c.loc[c["exposure_effect"].map(truthy)].iterrows():
        part = c.loc[c["model"] == r["model"]]
        if not enough_clients(part, ctx.min_cell):
            continue
        diag = ctx.diagnostics.get(str(r["model"]), {})
        method = str(diag.get("method", ""))
        if finite(r.get("ratio")):
            kind = "HR" if "partial likelihood" in method else "OR"
            scale = "Odds or hazard ratio"
            est, low, high = r["ratio"], r["ratio_ci_low"], r["ratio_ci_high"]
        else:
            kind, scale = "b", "Estimate (b, outcome units)"
            est, low, high = r["estimate"], r["ci_low"], r["ci_high"]
        if not (finite(est) and finite(low) and finite(high)):
            continue
        several = int(c.loc[c["model"] == r["model"], "exposure_effect"].map(truthy).sum()) > 1
        label = f"{r['model']}, {r['outcome']}" if several else str(r["model"])
        rows.append(
            {
                "label": f"{label} ({kind})",
                "estimate": float(est),
                "ci_low": float(low),
                "ci_high": float(high),
                "scale": scale,
                "term": f"{r['outcome']}: {term_label(str(r['term']))}",
                "p": r["p_value"],
                "p_floor": (diag.get("extras") or {}).get("p_value_resolution"),
                "p_fdr": r.get("p_fdr"),
                "primary": truthy(r.get("primary")),
                "role": _role(r),
            }
        )
    return pd.DataFrame(rows, columns=list(FOREST_COLUMNS))


def exposure_data(rows: pd.DataFrame) -> pd.DataFrame:
    """The forest rows as numbers for the tidy CSV: estimates and CIs on their scale."""
    out = rows[["label", "role", "term", "scale"]].copy()
    for name in ("estimate", "ci_low", "ci_high", "p", "p_fdr"):
        out[name] = significant(rows[name], P_DIGITS if name.startswith("p") else DIGITS)
    out["primary"] = rows["primary"].astype(int)
    return out


ROLE_NOTE = (
    "Role: the one primary test (the model marked primary, its exposure term: p not adjusted); "
    "secondary tests, whose p-values are Benjamini\u2013Hochberg adjusted together (p (FDR)); "
    "sensitivity analyses, mediation decompositions and descriptive models, which are outside "
    "that family and have no adjusted p-value."
)


def _role(row: pd.Series) -> str:
    """A row's role as the gathered table records it (for a table without roles: primary for
    the primary row, else secondary)."""
    if truthy(row.get("primary")):
        return "primary"
    role = row.get("role")
    return str(role) if isinstance(role, str) and role else "secondary"


def _forest(ctx: ReportContext) -> list:
    rows = forest_rows(ctx)
    if rows.empty:
        return [Text("No exposure effect is marked in the model results.", "missing")]
    out: list = []
    fig = forest_figure(rows)
    if fig is not None:
        out.append(
            to_plot(
                fig,
                "models_forest",
                alt="Forest plot of the exposure terms across models with 95% CIs",
                caption=(
                    "The exposure term of every model with 95% CIs, grouped by scale: "
                    "regression coefficients (null at 0) and odds or hazard ratios (log axis, "
                    "null at 1). Sensitivity analyses sit next to the models they check."
                ),
            )
        )
    out.append(
        table(
            "models_exposure_effects",
            "Exposure terms across models",
            ["Model", "Role", "Term", "Estimate", "95% CI", "p", "p (FDR)"],
            [
                [
                    r["label"],
                    r["role"],
                    r["term"],
                    num(r["estimate"], 3),
                    interval(r["ci_low"], r["ci_high"], 3),
                    p_value(r["p"], floor=r.get("p_floor")),
                    p_value(r["p_fdr"]),
                ]
                for _, r in rows.iterrows()
            ],
            text_columns=frozenset({0, 1, 2}),
            highlight=frozenset(i for i, p in enumerate(rows["primary"]) if p),
            note=ROLE_NOTE,
            data=exposure_data(rows),
        )
    )
    return out


def _model(
    model_id: str, part: pd.DataFrame, diag: Mapping[str, Any], ctx: ReportContext, every: list
) -> list:
    min_cell = ctx.min_cell
    first = part.iloc[0]
    enough = enough_clients(part, min_cell)
    hide = suppressed_label(min_cell)
    extras = diag.get("extras") or {}
    out: list = [
        Heading(f"{model_id}: {first['outcome']} on {first['exposure']}", f"model-{model_id}")
    ]
    described = []
    if diag.get("formula"):
        described.append(f"Model {diag['formula']}")
    if extras.get("structure"):
        described.append(f"random effects: {extras['structure']}")
    if extras.get("time_coding"):
        described.append(f"time coded {extras['time_coding']}")
    if diag.get("method"):
        described.append(f"estimation: {diag['method']}")
    if "role" in part.columns:
        role = _role(first)
        outside = role not in ("primary", "secondary")
        described.append(f"role: {role}" + (" (outside the secondary family)" if outside else ""))
    if described:
        out.append(Text("; ".join(described) + "."))
    rows, highlight, labels = [], set(), []
    ratio_name = "HR" if "partial likelihood" in str(diag.get("method", "")) else "OR"
    has_ratio = part["ratio"].map(finite).any() if "ratio" in part.columns else False
    has_df = part["df"].map(finite).any() if "df" in part.columns else False
    for i, (_, r) in enumerate(part.iterrows()):
        digits = digits_for(r["std_error"])
        primary = truthy(r.get("primary"))
        if primary:
            highlight.add(i)
        label = term_label(str(r["term"])) + (" (primary)" if primary else "")
        labels.append(term_label(str(r["term"])))
        cells = [
            num(r["estimate"], digits),
            num(r["std_error"], digits),
            interval(r["ci_low"], r["ci_high"], digits) if finite(r["ci_low"]) else NOT_AVAILABLE,
            p_value(r["p_value"], floor=extras.get("p_value_resolution")),
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
        if not enough:
            cells = [hide] * len(cells)
        rows.append([label, *cells])
    columns = [
        *COLUMNS,
        *([f"{ratio_name} [95% CI]"] if has_ratio else []),
        *(SATTERTHWAITE_COLUMNS if has_df else []),
    ]
    fixed = table(
        f"models_{model_id}",
        f"{model_id}: estimates ({diag.get('method') or 'as fitted'})",
        columns,
        rows,
        highlight=frozenset(highlight),
        data=coefficient_data(part, labels, withheld=not enough, ratio=has_ratio),
    )
    every.append(fixed)
    out.append(fixed)
    standardized = extras.get("standardized_effect") or {}
    if (
        enough
        and finite(standardized.get("estimate"))
        and finite(standardized.get("planned_sessions"))
    ):
        out.append(
            Text(
                "Standardized effect (Feingold 2009: the time \u00d7 exposure coefficient "
                f"times the planned duration of {int(standardized['planned_sessions'])} "
                f"sessions, {standardized.get('contrast', '')}, in intake SDs of the outcome): "
                f"d = {num(standardized['estimate'], 2)} "
                f"{interval(standardized['ci_low'], standardized['ci_high'], 2)}."
            )
        )
    random = _random_effects(model_id, diag, enough, min_cell)
    if random is not None:
        out.append(random)
    n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else None
    converged = diag.get("converged", truthy(first["converged"]))
    boundary = (
        "yes: " + ", ".join(diag.get("boundary_components") or []) if diag.get("boundary") else "no"
    )
    optimizer = f" (optimizer {diag['optimizer']})" if diag.get("optimizer") else ""
    observations = ctx.ledger.model_observations(model_id, int_or_none(first["n_obs"]), n_clients)
    out.append(
        Text(
            f"Observations: {observations}; clients: "
            f"{ctx.ledger.model_clients(model_id, n_clients)}; therapists: "
            f"{structural_count(diag.get('n_therapists'))}. Converged: "
            f"{'yes' if converged else 'no'}{optimizer}. Variance on the boundary: {boundary}."
        )
    )
    warnings = [suppress_counts_in(w, min_cell) for w in diag.get("warnings") or []]
    if warnings:
        out.append(Text("Warnings from the fit: " + "; ".join(warnings) + ".", "warning"))
    return out


def _random_effects(model_id: str, diag: Mapping[str, Any], enough: bool, min_cell: int):
    variances = diag.get("random_effects") or {}
    if not variances:
        return None
    hide = suppressed_label(min_cell)
    order = list(RANDOM_LABELS)
    items = sorted(
        variances.items(),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    intervals = {str(row.get("term")): row for row in diag.get("variance_parameters") or []}
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
    filler = [""] if intervals else []
    icc = intercept_iccs(variances)
    for name, value in icc.items():
        rows.append([name, coef(value) if enough else hide, "", *filler])
    r_squared = diag.get("r_squared") or {}
    for key, label in (("marginal", "R\u00b2 marginal"), ("conditional", "R\u00b2 conditional")):
        if finite(r_squared.get(key)):
            rows.append([label, coef(r_squared[key]) if enough else hide, "", *filler])
    notes = []
    if icc:
        notes.append(
            "ICC: the share of the intercept-level variance (therapist + client + residual) "
            "at the therapist or client level; in a growth model this is the share at time 0."
        )
    if intervals:
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
    return table(
        f"models_{model_id}_random_effects",
        f"{model_id}: random effects",
        ["Component", "Variance", "SD", *(["SD 95% CI"] if intervals else [])],
        rows,
        note=" ".join(notes),
    )


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


def _all_coefficients(every: list[Table]) -> Table:
    """Every model's estimates in one table for a manuscript's supplement (CSV only: the same
    values as the per-model tables above)."""
    rows, data = [], []
    for t in every:
        model = t.name.removeprefix("models_")
        ratio = next((i for i, c in enumerate(t.columns) if c.endswith(" [95% CI]")), None)
        df = t.columns.index("df") if "df" in t.columns else None
        for r in t.rows:
            extra = [r[ratio] if ratio is not None else ""]
            extra += [r[df], r[df + 1]] if df is not None else ["", ""]
            rows.append([model, *r[: len(COLUMNS)], *extra])
        data.append(t.data.assign(model=model))
    return table(
        "models_coefficients",
        "Every model's estimates",
        ["Model", *COLUMNS, "Ratio [95% CI]", *SATTERTHWAITE_COLUMNS],
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
