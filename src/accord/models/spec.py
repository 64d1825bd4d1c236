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

from accord.errors import ConfigError
from accord.models.tidy import ModelResult

# kind -> "module:function"; imported on use so a kind's dependencies load only when fitted.
KINDS: Mapping[str, str] = {
    "growth": "accord.models.growth:fit_growth_spec",
    "lagged": "accord.models.lagged:fit_lagged_spec",
    "therapist": "accord.models.therapist:fit_therapist_spec",
    "logistic": "accord.models.dropout:fit_logistic_spec",
    "cox": "accord.models.dropout:fit_cox_spec",
    "kaplan_meier": "accord.models.dropout:fit_kaplan_meier_spec",
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


@dataclass(frozen=True)
class ModelContext:
    """Study-wide settings every model may need."""

    primary_outcome: str = "phq9"
    primary_exposure: str = "joint_goal_share"
    seed: int = 2026
    min_cell: int = 11


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
    if any(spec.kind == "lrt" for spec in specs):
        specs = [resolve_lrt_spec(spec, specs) if spec.kind == "lrt" else spec for spec in specs]
    return specs


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
    )


def find_spec(specs: Sequence[ModelSpec], model_id: str) -> ModelSpec:
    for spec in specs:
        if spec.id == model_id:
            return spec
    raise ConfigError(f"models: no model with id {model_id!r}")


# The analysis plan of analyses.md. Entries without outcome or exposure take the primary ones.
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
        "options": {"predictor": "alliance", "detrend": True},
    },
    {
        "id": "lagged_goal_consensus",
        "kind": "lagged",
        "exposure": "goal_consensus",
        "options": {"predictor": "goal_consensus"},
    },
    {"id": "therapist", "kind": "therapist", "exposure": "none", "options": {"n_boot": 200}},
    {
        "id": "dropout",
        "kind": "logistic",
        "outcome": "dropout",
        "covariates": ["phq9_first", "early_alliance"],
    },
    {"id": "dropout_cox", "kind": "cox", "outcome": "dropout", "covariates": ["phq9_first"]},
    {"id": "dropout_km", "kind": "kaplan_meier", "outcome": "dropout", "options": {"group": "arm"}},
    {"id": "clinical_change", "kind": "clinical_change"},
    *(
        {
            "id": f"mediation_{mediator}",
            "kind": "mediation",
            "covariates": ["phq9_first"],
            "options": {"mediator": mediator, "n_boot": 500},
        }
        for mediator in ("attendance_rate", "homework_rate", "early_alliance")
    ),
    {"id": "ancova", "kind": "ancova", "covariates": []},
    {
        "id": "sensitivity_completers",
        "kind": "ancova",
        "options": {"completers_only": True},
    },
    {"id": "sensitivity_mice", "kind": "ancova_mice"},
    {
        "id": "sensitivity_dropout_min_sessions",
        "kind": "logistic",
        "outcome": "dropout_min_sessions",
        "covariates": ["phq9_first", "early_alliance"],
    },
    {"id": "sensitivity_goal_consensus", "kind": "growth", "exposure": "goal_consensus"},
]
