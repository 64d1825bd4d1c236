"""Methods: a paragraph a researcher can paste into a paper and edit, drafted from the config,
the measure settings recorded with the results and the models actually fitted."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from typing import Any

import pandas as pd

import accord
from accord.models.engine.inference import PROFILE_MAX_CLIENTS
from accord.report import aggregate as agg
from accord.report.context import ReportContext
from accord.report.labels import in_words
from accord.report.numbers import finite, num
from accord.report.parts import Section, Text
from accord.report.sections.summary import primary_row
from accord.report.sections.therapist import mediation_inferences
from accord.report.text import instrument_label


def build(ctx: ReportContext) -> Section:
    """The Methods section: one paragraph per topic."""
    section = Section("methods", "Methods")
    section.add(
        Text(
            "Drafted from the settings and models of this run; check it against the study "
            "protocol before use.",
            "note",
        )
    )
    for paragraph in methods_paragraphs(ctx):
        section.add(Text(paragraph, "methods"))
    return section


def methods_paragraphs(ctx: ReportContext) -> list[str]:
    """The methods text, as paragraphs."""
    return [p for p in (_measures(ctx), _models(ctx), _missing(ctx), _reporting(ctx)) if p]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _short_source(source: str) -> str:
    """ "Kroenke, Spitzer & Williams 2001 (items, ...); NHS ..." -> "Kroenke, Spitzer &
    Williams 2001"."""
    first = re.split(r"[;(]", source, maxsplit=1)[0].strip().rstrip(",.")
    return first


def _measures(ctx: ReportContext) -> str:
    registry = ctx.registry()
    scoring = ctx.scoring if isinstance(ctx.scoring, dict) else {}
    scored = sorted(
        {str(r.get("instrument")) for r in scoring.get("summary") or [] if isinstance(r, dict)}
    )
    if not scored and ctx.panel is not None:
        scored = [k for k in registry if k in ctx.panel.columns]
    parts = []
    for key in scored:
        inst = registry.get(key)
        if inst is None:
            continue
        source = _short_source(inst.source) if inst.source else ""
        text = f"the {inst.name} ({instrument_label(key)}{'; ' + source if source else ''})"
        if inst.prorate_max_missing > 0 and inst.items:
            text += (
                f", prorated when at most {inst.prorate_max_missing} of {inst.items} items "
                "were missing"
            )
        parts.append(text)
    sentences = []
    if parts:
        sentences.append("Clients completed " + _join(parts) + ".")
    s = ctx.settings
    thresholds = {}
    if isinstance(ctx.measures_metadata, dict):
        thresholds = ctx.measures_metadata.get("change_thresholds") or {}
    t = thresholds.get(ctx.outcome) or {}
    if t:
        if t.get("reliable_change_method") == "published" and finite(t.get("reliable_change")):
            rc = f"a change of at least {num(t['reliable_change'], 0)} points (published value)"
        elif finite(t.get("rci_threshold_points")):
            rc = (
                f"a reliable change index above {num(t.get('rci_z', 1.96), 2)} (Jacobson & "
                f"Truax 1991; {num(t['rci_threshold_points'], 2)} points)"
            )
        else:
            rc = "the reliable change index (Jacobson & Truax 1991)"
        cutoff = (
            f" and the clinical cut-off was {num(t['cutoff'], 0)}"
            if finite(t.get("cutoff"))
            else ""
        )
        sentences.append(
            f"Reliable change on the {ctx.outcome_label} was {rc}{cutoff}; clients were "
            "classified as recovered, improved, unchanged or deteriorated from their first to "
            "their last assessment (Jacobson & Truax 1991)."
        )
    sentences.append(f"Dropout was defined as {ctx.dropout_text()}.")
    if s.get("alliance_instrument"):
        sentences.append(
            f"Early alliance was the mean {instrument_label(str(s['alliance_instrument']))} "
            f"{s.get('alliance_scale', 'total')} score ({s.get('alliance_rater', 'client')}-rated) "
            f"over the first {s.get('early_sessions', 3)} assessed sessions."
        )
    exposure = ctx.exposure
    if exposure == "joint_goal_share":
        sentences.append(
            "The primary exposure, the joint goal share, was the proportion of a client\u2019s "
            "goals that client and therapist set together."
        )
    else:
        sentences.append(f"The primary exposure was {in_words(exposure)}.")
    return " ".join(sentences)


def _engine(diagnostics: dict, statsmodels_version: str) -> str:
    """How the mixed model was estimated, from the engine its diagnostics name."""
    optimizer = diagnostics.get("optimizer", "lbfgs")
    if diagnostics.get("engine") == "statsmodels" or "engine" not in diagnostics:
        return f"with statsmodels {statsmodels_version} (MixedLM, optimizer {optimizer})"
    return (
        f"maximising the profiled log-likelihood of Bates et al. (2015) as lme4 does, with "
        f"accord {accord.__version__} ({optimizer})"
    )


def _mixed_model_extras(diags: dict, models: list[str]) -> list[str]:
    """Sentences on the Satterthwaite df, the R^2 and the variance parameters' intervals,
    for the growth models whose diagnostics carry them."""
    out = []
    if any(diags[m].get("r_squared") for m in models):
        out.append(
            "Fixed effects are reported with Wald 95% CIs and, as lmerTest does, "
            "Satterthwaite degrees of freedom and t-test p-values (Kuznetsova et al. 2017). "
            "The share of variance explained is the marginal (fixed effects) and conditional "
            "(fixed and random effects) R\u00b2 of Nakagawa and Schielzeth (2013), with "
            "random slopes as in Johnson (2014)."
        )
    methods = {
        str(row.get("method", ""))
        for m in models
        for row in diags[m].get("variance_parameters") or []
    }
    if any(method.startswith("profile") for method in methods):
        out.append(
            "95% CIs of the random-effect SDs, the client intercept-slope correlation and "
            "the residual SD are profile-likelihood intervals from the maximum-likelihood "
            'refit, as lme4\'s confint(method = "profile") gives them.'
        )
    if any(method.startswith("Wald") for method in methods):
        out.append(
            f"In models of more than {PROFILE_MAX_CLIENTS:,} clients the 95% CIs of the "
            "random-effect SDs, the correlation and the residual SD are Wald intervals (the "
            "curvature of the deviance carried to the SD scale by the delta method), as "
            "profiling each limit would take hours at that size and the likelihood is close "
            "to quadratic there."
        )
    return out


def _models(ctx: ReportContext) -> str:
    """The models fitted, one family at a time: growth, lagged, therapist, dropout, ANCOVA
    and mediation models, each named with how it was estimated."""
    if ctx.coefficients is None or ctx.coefficients.empty:
        return ""
    c, diags = ctx.coefficients, ctx.diagnostics
    models = list(dict.fromkeys(c["model"].astype(str)))
    methods = {m: str(diags.get(m, {}).get("method", "")) for m in models}
    sentences = [
        *_growth_sentences(ctx, models),
        *_lagged_sentences(c, models),
        *_therapist_sentences(c, diags, models),
        *_dropout_sentences(methods),
        *_ancova_sentences(methods),
        *_mediation_sentences(c, diags, models),
    ]
    return " ".join(sentences)


def _growth_sentences(ctx: ReportContext, models: list[str]) -> list[str]:
    """The linear mixed-effects growth models (REML models with time in the formula): their
    formulas, random-effects structure, engine and the primary model."""
    diags = ctx.diagnostics
    primary = primary_row(ctx)
    primary_id = str(primary["model"]) if primary is not None else None
    statsmodels_version = _version("statsmodels")
    growth = [
        m
        for m in models
        if str(diags.get(m, {}).get("method")) == "REML"
        and "time" in str(diags.get(m, {}).get("formula", ""))
    ]
    if not growth:
        return []
    d = diags[growth[0]]
    extras = d.get("extras") or {}
    structure = extras.get("structure", "random intercepts and slopes")
    return [
        f"Change in the outcomes over sessions was analysed with linear mixed-effects growth "
        f"models ({_join(_formulas(diags, growth))}) with {structure}, estimated by "
        f"restricted maximum likelihood (REML), {_engine(d, statsmodels_version)}"
        + (f"; the primary model was {primary_id}" if primary_id else "")
        + ".",
        *_mixed_model_extras(diags, growth),
    ]


def _lagged_sentences(c: pd.DataFrame, models: list[str]) -> list[str]:
    """The lagged mixed models, recognised by their within-client terms."""
    lagged = [
        m for m in models if "_within" in " ".join(c.loc[c["model"] == m, "term"].astype(str))
    ]
    if not lagged:
        return []
    return [
        "Session-to-session associations were estimated with lagged mixed models that "
        "separate within-client from between-client variation (person-mean centring; "
        f"{_join(lagged)})."
    ]


def _therapist_sentences(c: pd.DataFrame, diags: dict[str, Any], models: list[str]) -> list[str]:
    """The therapist-effect models: on end-of-treatment scores adjusted for intake, and the
    descriptive null three-level model, each with its bootstrap replicates."""
    sentences: list[str] = []
    therapist = [m for m in models if "icc_therapist" in set(c.loc[c["model"] == m, "term"])]
    post = [
        m
        for m in therapist
        if "adjusted for intake" in str((diags.get(m, {}).get("extras") or {}).get("design", ""))
    ]
    if post:
        boot = (diags.get(post[0], {}).get("extras") or {}).get("bootstrap") or {}
        sentences.append(
            "Therapist effects were estimated on end-of-treatment scores adjusted for intake "
            "severity (clients within therapists, REML), with the therapist variance in the "
            "intake slope from a model with a random intercept and slope per therapist; the "
            "therapist intraclass correlation has a 95% percentile interval from "
            f"{boot.get('replicates', 'a')} cluster-bootstrap replicates resampling therapists."
        )
    null = [m for m in therapist if m not in post]
    if null:
        boot = (diags.get(null[0], {}).get("extras") or {}).get("bootstrap") or {}
        sentences.append(
            "As a descriptive, a null three-level model (assessments within clients within "
            "therapists, REML) gives the therapist share of the variance over all assessments, "
            f"with a 95% percentile interval from {boot.get('replicates', 'a')} cluster-bootstrap "
            "replicates resampling therapists."
        )
    return sentences


def _dropout_sentences(methods: dict[str, str]) -> list[str]:
    """The dropout models by estimation method: logistic, cause-specific Cox, cumulative
    incidence with completion competing, and Kaplan-Meier curves."""
    logistic = [m for m, x in methods.items() if x.startswith("ML (GLM binomial")]
    cox = [m for m, x in methods.items() if "partial likelihood" in x]
    km = [m for m, x in methods.items() if x.startswith("Kaplan-Meier")]
    cif = [m for m, x in methods.items() if x.startswith("Aalen-Johansen")]
    if not (logistic or cox or km or cif):
        return []
    parts = []
    if logistic:
        parts.append(f"logistic regression ({_join(logistic)}; odds ratios)")
    if cox:
        parts.append(
            "cause-specific Cox proportional hazards regression with Efron ties, completers "
            f"censored ({_join(cox)}; hazard ratios)"
        )
    if cif:
        parts.append(
            "the cumulative incidence of dropout with completion as a competing event "
            f"(Aalen\u2013Johansen; {_join(cif)}), groups compared by the log-rank test "
            "of cause-specific hazards"
        )
    if km:
        parts.append("Kaplan\u2013Meier curves compared with the log-rank test")
    return [f"Dropout was analysed with {_join(parts)}; Wald 95% CIs."]


def _ancova_sentences(methods: dict[str, str]) -> list[str]:
    """The ANCOVA models of end-of-treatment scores (OLS on complete cases)."""
    ancova = [m for m, x in methods.items() if x == "OLS, complete cases"]
    if not ancova:
        return []
    return [
        "End-of-treatment scores were compared by ANCOVA: the post score (at the planned "
        "end-of-treatment assessment) on the exposure, adjusted for the intake score, in "
        f"clients with an observed post score ({_join(ancova)})."
    ]


def _mediation_sentences(c: pd.DataFrame, diags: dict[str, Any], models: list[str]) -> list[str]:
    """The causal mediation analyses (models with an ACME term), with the assumptions their
    causal reading rests on."""
    mediation = [m for m in models if "acme" in set(c.loc[c["model"] == m, "term"])]
    if not mediation:
        return []
    inference = mediation_inferences(diags, mediation)
    mediators = [str((diags.get(m, {}).get("extras") or {}).get("mediator", m)) for m in mediation]
    return [
        "Indirect associations of the exposure with the outcome via "
        + _join([in_words(m).lower() for m in mediators])
        + " (each measured in the early sessions, before the outcome) were estimated as "
        "average causal mediation and direct effects on the post score adjusted for intake (Imai, "
        f"Keele & Tingley 2010, as R’s mediation package): {inference}; and the error "
        "correlation between the mediator and outcome models at which the indirect effect "
        "would vanish (medsens; Imai, Keele & Yamamoto 2010). These effects have a causal "
        "reading only if there is no unmeasured confounding of the exposure and the "
        "mediator, of the exposure and the outcome, or of the mediator and the outcome; "
        "the data cannot check this."
    ]


def _missing(ctx: ReportContext) -> str:
    c = ctx.coefficients
    groups = agg.by_arm(ctx.clients, " by arm and")
    sentences = [
        "Mixed models used every observed assessment, which is valid when scores are missing "
        f"at random; missing scores per session, attrition (clients without a post score){groups}"
        " by the session of the last assessment, and their relation to the exposure are "
        "reported."
    ]
    if c is not None and not c.empty:
        methods = {
            m: str(ctx.diagnostics.get(m, {}).get("method", ""))
            for m in dict.fromkeys(c["model"].astype(str))
        }
        mice = [m for m, x in methods.items() if "multiple imputation" in x]
        locf = [m for m, x in methods.items() if "LOCF" in x]
        if mice or locf:
            sentences.append(_sensitivity_sentence(ctx, mice, locf, methods))
        sentences.append(
            "The primary test was not adjusted; p-values of the secondary exposure effects were "
            "adjusted for multiple testing with the Benjamini\u2013Hochberg false discovery rate "
            "(1995)."
        )
    return " ".join(sentences)


def _sensitivity_sentence(
    ctx: ReportContext, mice: list[str], locf: list[str], methods: dict[str, str]
) -> str:
    parts = []
    if mice:
        extras = ctx.diagnostics.get(mice[0], {}).get("extras") or {}
        auxiliary = [_auxiliary_label(str(a)) for a in extras.get("auxiliary") or []]
        parts.append(
            "after multiple imputation of the missing post scores by chained equations "
            f"({extras.get('n_imputations', 'several')} imputations"
            + (f"; auxiliary variables {_join(auxiliary)}" if auxiliary else "")
            + "), pooled by Rubin\u2019s rules with Barnard\u2013Rubin degrees of freedom and t "
            "reference distributions"
        )
    if any("completers" in m for m in methods):
        parts.append("in completers only")
    if locf:
        parts.append(
            "with the last observed score carried forward as the end score (LOCF), which "
            "treats a dropout\u2019s last score as their end score"
        )
    return f"As sensitivity analyses, the ANCOVA was repeated {_join(parts)}."


def _auxiliary_label(column: str) -> str:
    if column.endswith("_last_before_post_session"):
        return "the session of the last score before the end assessment"
    if column.endswith("_last_before_post"):
        return "the last score before the end assessment"
    return column.replace("_", " ")


def _reporting(ctx: ReportContext) -> str:
    return (
        f"Analyses were run with accord {accord.__version__} (Python {platform.python_version()}, "
        f"pandas {_version('pandas')}, statsmodels {_version('statsmodels')}, scipy "
        f"{_version('scipy')}). To protect confidentiality, counts from 1 to {ctx.min_cell - 1} "
        f"and statistics computed from fewer than {ctx.min_cell} clients are not reported, with "
        "complementary suppression, audited over every table together by linear programming, "
        "so that a withheld count cannot be recovered from totals, from differences between "
        "tables or from percentages."
    )


def _formulas(diags: dict, models: list[str]) -> list[str]:
    return [in_words(str(diags[m].get("formula", m))) for m in models]


def _join(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
