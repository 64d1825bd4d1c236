"""Models declared in config: one `ModelSpec` per entry, fitted by the function of its kind.

A researcher adds a model by adding an entry under `models:` in the config; each entry is its
own Snakemake job. Every kind's function has the same shape::

    fit(panel, client_measures, spec, context) -> ModelResult

where `panel` is the session panel, `client_measures` the per-client table, `spec` the entry
and `context` the study-wide settings (seed, primary outcome and exposure, min_cell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import Any

import pandas as pd

from accord.core.errors import ConfigError
from accord.measures.goalsetting import OUTCOME_ONLY
from accord.models.tidy import ModelResult

# kind -> "module:function"; imported on use so a kind's dependencies load only when fitted.
KINDS: Mapping[str, str] = {
    "growth": "accord.models.growth:fit_growth_spec",
    "lagged": "accord.models.lagged:fit_lagged_spec",
    "therapist": "accord.models.therapist:fit_therapist_spec",
    "logistic": "accord.models.dropout:fit_logistic_spec",
    "cox": "accord.models.dropout:fit_cox_spec",
    "kaplan_meier": "accord.models.dropout:fit_kaplan_meier_spec",
    "cumulative_incidence": "accord.models.competing:fit_cumulative_incidence_spec",
    "clinical_change": "accord.models.clinical_change:fit_clinical_change_spec",
    "mediation": "accord.models.mediation:fit_mediation_spec",
    "ancova": "accord.models.ancova:fit_ancova_spec",
    "ancova_mice": "accord.models.ancova:fit_ancova_mice_spec",
    "lrt": "accord.models.lrt:fit_lrt_spec",
    "congruence": "accord.models.congruence:fit_congruence_spec",
    "goal_congruence": "accord.models.congruence:fit_goal_congruence_spec",
    "goal_attainment": "accord.models.goal_attainment:fit_goal_attainment_spec",
    "not_on_track": "accord.models.not_on_track:fit_not_on_track_spec",
}

# Validated tables (results/<study>/validated/<name>.parquet) a kind reads besides the session
# panel and the client measures; its fit function takes each as a keyword argument.
KIND_TABLES: Mapping[str, tuple[str, ...]] = {
    "goal_attainment": ("goals", "measures"),
    "goal_congruence": ("goals", "measures"),
    "not_on_track": ("sessions",),
}

# The part of a validated table the kinds read, where that is a small part: the goal models read
# only the GAS ratings of the item-level measures (a few percent of their rows), so a study of a
# million clients does not hold hundreds of millions of item rows in a model's job.
KIND_TABLE_PARTS: Mapping[str, dict[str, Any]] = {
    "measures": {
        "columns": ["client_id", "session_number", "instrument", "item", "value"],
        "filters": [("instrument", "==", "gas")],
    },
}


def read_kind_tables(kind: str, paths: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The validated tables a model kind reads (`KIND_TABLES`), each from its path in `paths`,
    read in the part the kinds use (`KIND_TABLE_PARTS`), text as plain strings."""
    from accord.core.stages import read_validated

    return {
        name: read_validated(paths[name], **KIND_TABLE_PARTS.get(name, {}))
        for name in KIND_TABLES.get(kind, ())
    }


@dataclass(frozen=True)
class ModelSpec:
    """One model entry of the config."""

    id: str
    kind: str
    outcome: str
    exposure: str
    covariates: tuple[str, ...] = ()
    time_coding: str = "linear"
    therapist_effect: bool = True
    primary: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    role: str | None = None

    @property
    def model_role(self) -> str:
        """Where the model's exposure effect stands for multiplicity (`ROLES`): ``primary`` for
        the model marked primary, else its configured role, else its kind's default."""
        if self.primary:
            return "primary"
        return self.role or DEFAULT_ROLES.get(self.kind, "secondary")


#: Roles of a model's exposure effect (analyses.md, Multiplicity): one primary test; the
#: secondary family, Benjamini-Hochberg adjusted; and rows outside the family.
ROLES = ("primary", "secondary", "sensitivity", "decomposition", "descriptive")
#: The role of a kind's models when config names none (secondary for every other kind).
DEFAULT_ROLES: Mapping[str, str] = {
    "mediation": "decomposition",
    "lrt": "sensitivity",
    "therapist": "descriptive",
    "kaplan_meier": "descriptive",
    "cumulative_incidence": "descriptive",
    # A response surface is read as a whole (a1..a4), with no single exposure term to enter
    # the secondary family: its estimates are shown with unadjusted CIs, labelled descriptive.
    "congruence": "descriptive",
    "goal_congruence": "descriptive",
}


#: ``analysis.mediation.bootstrap_max_clients``: a mediation model with ``method: auto`` is
#: bootstrapped in a study of up to this many clients and fitted quasi-Bayesian above it.
DEFAULT_BOOTSTRAP_MAX_CLIENTS = 100_000
#: The values of a mediation model's option ``method``.
MEDIATION_METHODS = ("bootstrap", "quasi_bayesian", "auto")


@dataclass(frozen=True)
class ModelContext:
    """Study-wide settings every model may need."""

    primary_outcome: str = "phq9"
    primary_exposure: str = "joint_goal_share"
    seed: int = 2026
    min_cell: int = 11
    mediation_bootstrap_max_clients: int = DEFAULT_BOOTSTRAP_MAX_CLIENTS


# The model kinds a likelihood-ratio test (kind lrt) can compare, and the fields it takes from
# the model it names.
LRT_COMPARABLE_KINDS = ("growth", "lagged")
_LRT_INHERITED = ("outcome", "exposure", "covariates", "time_coding", "therapist_effect")

FitFunction = Callable[[pd.DataFrame, pd.DataFrame, ModelSpec, ModelContext], ModelResult]


def fit_function(kind: str) -> FitFunction:
    """The function that fits models of `kind`."""
    if kind not in KINDS:
        raise ConfigError(f"models: unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    module, name = KINDS[kind].split(":")
    return getattr(import_module(module), name)


def model_specs(config: Mapping[str, Any]) -> list[ModelSpec]:
    """The config's `models` entries as specs, primary outcome and exposure filled in."""
    analysis = config.get("analysis", {})
    specs = []
    for entry in config.get("models", DEFAULT_MODELS):
        values = dict(entry)
        values.setdefault("outcome", analysis.get("primary_outcome", "phq9"))
        values.setdefault("exposure", analysis.get("primary_exposure", "joint_goal_share"))
        values.setdefault("time_coding", analysis.get("time_coding", "linear"))
        values["covariates"] = tuple(values.get("covariates", ()))
        values["options"] = dict(values.get("options", {}))
        if values.get("kind") == "growth":
            values["options"].setdefault("planned_sessions", planned_sessions(analysis))
        values.setdefault("primary", False)
        specs.append(ModelSpec(**values))
    ids = [spec.id for spec in specs]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"models: the id {dupes[0]!r} is used more than once")
    for spec in specs:
        if spec.kind not in KINDS:
            raise ConfigError(
                f"models: unknown kind {spec.kind!r}; known: {', '.join(sorted(KINDS))}"
            )
        _check_role(spec)
        if spec.kind == "mediation":
            mediation_method(spec)
        if spec.exposure in OUTCOME_ONLY:
            raise ConfigError(
                f"models: {spec.id!r} has the exposure {spec.exposure!r}, a goal-attainment "
                "outcome (attainment follows treatment); it can be an outcome, never an exposure"
            )
    primaries = [spec.id for spec in specs if spec.primary]
    if len(primaries) > 1:
        raise ConfigError(
            f"models: {', '.join(repr(i) for i in primaries)} are all marked primary; exactly "
            "one model is the primary test (mark the others with a role such as secondary)"
        )
    if any(spec.kind == "lrt" for spec in specs):
        specs = [resolve_lrt_spec(spec, specs) if spec.kind == "lrt" else spec for spec in specs]
    return specs


#: The planned number of sessions when config gives neither a session-number end of treatment
#: nor analysis.planned_sessions (the schema's default).
DEFAULT_PLANNED_SESSIONS = 12


def planned_sessions(analysis: Mapping[str, Any]) -> int:
    """T, the planned duration in sessions: ``analysis.end_of_treatment`` when it is a session
    number, else ``analysis.planned_sessions``."""
    end = analysis.get("end_of_treatment")
    if isinstance(end, int) and not isinstance(end, bool):
        return end
    return int(analysis.get("planned_sessions", DEFAULT_PLANNED_SESSIONS))


def mediation_method(spec: ModelSpec) -> str:
    """A mediation model's option ``method`` (`MEDIATION_METHODS`, default auto); ConfigError
    naming the setting for any other value."""
    return check_mediation_method(spec.options.get("method", "auto"), spec.id)


def check_mediation_method(method: Any, model_id: str) -> str:
    """`method` if it is one of `MEDIATION_METHODS`, else ConfigError naming the setting."""
    if method not in MEDIATION_METHODS:
        raise ConfigError(
            f"models: {model_id!r}: options.method {method!r} is not one of "
            f"{', '.join(MEDIATION_METHODS)} (bootstrap: resample clients; quasi_bayesian: "
            "draw the coefficients from their normal approximation; auto: bootstrap up to "
            "analysis.mediation.bootstrap_max_clients)"
        )
    return str(method)


def _check_role(spec: ModelSpec) -> None:
    if spec.role is None:
        return
    allowed = [role for role in ROLES if role != "primary"]
    if spec.role == "primary":
        raise ConfigError(f"models: {spec.id!r}: mark the primary model with primary: true")
    if spec.role not in allowed:
        raise ConfigError(f"models: {spec.id!r}: role {spec.role!r} is not one of {allowed}")
    if spec.primary:
        raise ConfigError(
            f"models: {spec.id!r} is marked primary and given the role {spec.role!r}; choose one"
        )


def fit_model(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    **kwargs: Any,
) -> ModelResult:
    """Fit `spec` by the function of its kind; its diagnostics record the model's `role`, which
    the gathered table uses to form the primary test and the secondary family."""
    result = fit_function(spec.kind)(panel, client_measures, spec, context, **kwargs)
    result.diagnostics["role"] = spec.model_role
    return result


def resolve_lrt_spec(spec: ModelSpec, specs: Sequence[ModelSpec]) -> ModelSpec:
    """An ``lrt`` entry with the models it names filled in (called by `model_specs`).

    The entry takes its outcome, exposure, covariates, time coding and therapist effect from
    options.full; ``full_model`` (and ``reduced_model`` for options.reduced) in its options
    hold the named entries' fields, so a change to either model reruns the test.
    """
    by_id = {s.id: s for s in specs}
    options = dict(spec.options)
    resolved: dict[str, Any] = {}
    for key in ("full", "reduced"):
        if key not in options:
            continue
        named = options[key]
        if named not in by_id:
            raise ConfigError(
                f"models: {spec.id!r} (lrt) options.{key} {named!r} is not the id of a model"
            )
        other = by_id[named]
        if other.kind not in LRT_COMPARABLE_KINDS:
            raise ConfigError(
                f"models: {spec.id!r} (lrt) options.{key} names a model of kind {other.kind!r}; "
                f"an lrt compares models of kind {' or '.join(LRT_COMPARABLE_KINDS)}"
            )
        resolved[f"{key}_model"] = {
            "id": other.id,
            "kind": other.kind,
            "outcome": other.outcome,
            "exposure": other.exposure,
            "covariates": list(other.covariates),
            "time_coding": other.time_coding,
            "therapist_effect": other.therapist_effect,
            "options": dict(other.options),
        }
    if "full_model" not in resolved:
        raise ConfigError(f"models: {spec.id!r} (lrt) needs options.full, a model id")
    drop = options.get("drop", [])
    if isinstance(drop, str):
        drop = [drop]
    options["drop"] = list(drop)
    full = resolved["full_model"]
    return replace(
        spec,
        options={**options, **resolved},
        **{key: full[key] for key in _LRT_INHERITED if key != "covariates"},
        covariates=tuple(full["covariates"]),
    )


def model_context(config: Mapping[str, Any]) -> ModelContext:
    analysis = config.get("analysis", {})
    return ModelContext(
        primary_outcome=analysis.get("primary_outcome", "phq9"),
        primary_exposure=analysis.get("primary_exposure", "joint_goal_share"),
        seed=analysis.get("seed", 2026),
        min_cell=config.get("privacy", {}).get("min_cell", 11),
        mediation_bootstrap_max_clients=int(
            (analysis.get("mediation") or {}).get(
                "bootstrap_max_clients", DEFAULT_BOOTSTRAP_MAX_CLIENTS
            )
        ),
    )


def find_spec(specs: Sequence[ModelSpec], model_id: str) -> ModelSpec:
    for spec in specs:
        if spec.id == model_id:
            return spec
    raise ConfigError(f"models: no model with id {model_id!r}")


# The analysis plan of analyses.md. Entries without outcome or exposure take the primary ones;
# entries without a role take their kind's default (`DEFAULT_ROLES`, else secondary).
DEFAULT_MODELS: list[dict[str, Any]] = [
    {"id": "growth", "kind": "growth", "primary": True},
    {"id": "growth_gad7", "kind": "growth", "outcome": "gad7"},
    {
        "id": "growth_lrt_interaction",
        "kind": "lrt",
        "options": {"full": "growth", "drop": ["time:exposure"]},
    },
    {
        "id": "lagged",
        "kind": "lagged",
        "exposure": "alliance",
        "options": {"predictor": "alliance"},
    },
    {
        "id": "lagged_detrended",
        "kind": "lagged",
        "exposure": "alliance",
        "role": "sensitivity",
        "options": {"predictor": "alliance", "detrend": True},
    },
    {
        "id": "lagged_goal_alliance_client",
        "kind": "lagged",
        "exposure": "goal_alliance_client",
        "options": {"predictor": "goal_alliance_client"},
    },
    # The therapist ICC of post scores adjusted for intake (and the therapist variance in the
    # intake slope); the null model over all assessments only as a labelled descriptive.
    {"id": "therapist", "kind": "therapist", "exposure": "none", "options": {"n_boot": 200}},
    {
        "id": "therapist_null",
        "kind": "therapist",
        "exposure": "none",
        "role": "descriptive",
        "options": {"design": "null", "n_boot": 200},
    },
    # The total association: early alliance lies on the path from goal-setting to dropout, so
    # it is added only in the labelled sensitivity model below.
    {"id": "dropout", "kind": "logistic", "outcome": "dropout", "covariates": ["phq9_first"]},
    {
        "id": "sensitivity_dropout_alliance",
        "kind": "logistic",
        "outcome": "dropout",
        "role": "sensitivity",
        "covariates": ["phq9_first", "early_alliance"],
    },
    {"id": "dropout_cox", "kind": "cox", "outcome": "dropout", "covariates": ["phq9_first"]},
    {
        "id": "dropout_cif",
        "kind": "cumulative_incidence",
        "outcome": "dropout",
        "options": {"group": "arm"},
    },
    {"id": "clinical_change", "kind": "clinical_change"},
    # Mediators measured before the outcome (the early window); the outcome is the post score
    # adjusted for intake (phq9_first enters both models).
    *(
        {
            "id": f"mediation_{mediator}",
            "kind": "mediation",
            "covariates": ["phq9_first"],
            "options": {"mediator": mediator, "n_boot": 500},
        }
        for mediator in ("early_attendance_rate", "early_homework_rate", "early_alliance")
    ),
    {"id": "ancova", "kind": "ancova", "role": "sensitivity", "covariates": []},
    {"id": "sensitivity_locf", "kind": "ancova", "role": "sensitivity", "options": {"end": "last"}},
    {
        "id": "sensitivity_completers",
        "kind": "ancova",
        "role": "sensitivity",
        "options": {"completers_only": True},
    },
    {"id": "sensitivity_mice", "kind": "ancova_mice", "role": "sensitivity"},
    {
        "id": "sensitivity_dropout_min_sessions",
        "kind": "logistic",
        "outcome": "dropout_min_sessions",
        "role": "sensitivity",
        "covariates": ["phq9_first"],
    },
    {
        "id": "sensitivity_goal_alliance_client",
        "kind": "growth",
        "exposure": "goal_alliance_client",
        "role": "sensitivity",
    },
    # Goals: agreement, attainment and check-ins. Client-therapist congruence on the WAI-SR
    # Goal subscale and on the total (descriptive: a surface, no single exposure term); the
    # goal-level variant on the two importance ratings of each goal.
    {"id": "congruence_goal_phq9", "kind": "congruence"},
    {"id": "congruence_total", "kind": "congruence", "options": {"scale": "total"}},
    {"id": "goal_importance_congruence", "kind": "goal_congruence", "outcome": "gas_level"},
    # Are jointly set goals attained more: who set the goal (set_by) is the exposure effect in
    # the secondary family; goal status achieved is the same question on another outcome.
    {"id": "goal_attainment_gas", "kind": "goal_attainment", "outcome": "gas_level"},
    {
        "id": "goal_attainment_achieved",
        "kind": "goal_attainment",
        "outcome": "achieved",
        "role": "sensitivity",
    },
    # Check-ins: the association of a goal review with getting back on track is secondary;
    # not-on-track rates by tertile of the primary exposure.
    {"id": "not_on_track", "kind": "not_on_track", "options": {"group": "exposure_tertile"}},
]
