"""The analysis plan of one study: which configured models apply to what the study has.

Before any model is fitted, each entry of `models:` is checked against the study's measures:

- **not applicable**: the study lacks what the model is about (an instrument that was never
  administered, no therapist IDs, no arm column to group by, no goals table, a mediator or
  covariate with no values; for the goal models, no therapist ratings of the rated scale, no
  GAS or importance ratings of the goals, an outcome without severity bands). The model is
  left out of the plan with its reason.
- **not estimable**: the model applies but the data cannot estimate it (fewer therapists than
  a therapist variance needs, an outcome or exposure that does not vary, no group large enough
  for a Kaplan-Meier curve, fewer than 10 clients rated by both client and therapist, fewer
  clients than twice the cross-fitting folds). The model keeps its job, which records the
  reason instead of failing (a fitter finds further cases, e.g. no pair of consecutive
  assessed sessions, or no goal with a status, and says so with `NotEstimableError`).
- **planned**: fitted; its result says `fitted` once it is.

The checks read only the session panel and the client measures, so the same plan comes out of
the workflow (`results/<study>/models/plan.json`) and of `accord plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from accord.core.errors import AccordError, NotEstimableError
from accord.models.spec import ModelContext, ModelSpec, fit_model
from accord.models.therapist import MIN_THERAPISTS
from accord.models.tidy import COEFFICIENT_COLUMNS, ModelResult

PLANNED = "planned"
FITTED = "fitted"
NOT_ESTIMABLE = "not_estimable"
NOT_APPLICABLE = "not_applicable"
# How each status reads in the report.
STATUS_LABELS = {
    FITTED: "fitted",
    NOT_ESTIMABLE: "not estimable",
    NOT_APPLICABLE: "not applicable",
    PLANNED: "planned",
}

# Kinds whose outcome is an instrument scored per session (a column of the session panel).
PANEL_OUTCOME_KINDS = ("growth", "lagged", "therapist", "lrt")
# Kinds whose outcome is an instrument summarised per client (<outcome>_first, _last, _change).
CLIENT_OUTCOME_KINDS = ("ancova", "ancova_mice", "mediation", "clinical_change")
# Kinds whose outcome is a client-level yes/no column (dropout and its alternatives).
EVENT_KINDS = ("logistic", "cox", "kaplan_meier", "cumulative_incidence")
# Kinds that compare groups of clients (options.group, default arm).
GROUPED_KINDS = ("kaplan_meier", "cumulative_incidence", "clinical_change")
# Kinds whose exposure is their own (the two raters' ratings, who set a goal), not the
# configured exposure; not_on_track uses the configured one only to form exposure tertiles.
OWN_EXPOSURE_KINDS = ("congruence", "goal_congruence", "goal_attainment", "not_on_track")
# Kinds fitted on the goals table, one row per goal.
GOAL_LEVEL_KINDS = ("goal_congruence", "goal_attainment")
# Client measures built from the goals table, and from alliance ratings, for the reasons.
GOAL_MEASURES = (
    "joint_goal_share",
    "late_goal_share",
    "goal_agreement",
    "smart_quality",
    "goal_revisions",
    "n_goals",
    "gas_t",
    "gas_change",
)
ALLIANCE_MEASURES = (
    "alliance",
    "early_alliance",
    "mean_alliance",
    "alliance_slope",
    "goal_alliance_client",
    "goal_consensus",
)


@dataclass(frozen=True)
class PlanEntry:
    """One model of the plan: planned, not estimable or not applicable, and why."""

    id: str
    kind: str
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def plan_models(
    specs: Sequence[ModelSpec],
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    context: ModelContext,
) -> list[PlanEntry]:
    """Every configured model with its status for this study, in the config's order."""
    entries: dict[str, PlanEntry] = {}
    for spec in specs:
        reason = applicability_reason(spec, panel, client_measures, entries)
        if reason:
            entries[spec.id] = PlanEntry(spec.id, spec.kind, NOT_APPLICABLE, reason)
            continue
        reason = estimability_reason(spec, panel, client_measures, context)
        status = NOT_ESTIMABLE if reason else PLANNED
        entries[spec.id] = PlanEntry(spec.id, spec.kind, status, reason or "")
    return list(entries.values())


def fit_planned(
    spec: ModelSpec,
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    context: ModelContext,
    **pooled: Any,
) -> ModelResult:
    """Fit `spec`, or its not-estimable record when the data cannot estimate it.

    Any other error (a bug, a corrupt file, a config mistake) propagates: it stops the run.
    """
    reason = estimability_reason(spec, panel, client_measures, context)
    if reason is None:
        try:
            result = fit_model(panel, client_measures, spec, context, **pooled)
        except NotEstimableError as exc:
            reason = str(exc)
        else:
            result.diagnostics["status"] = FITTED
            result.diagnostics.setdefault("kind", spec.kind)
            return result
    return status_result(spec, NOT_ESTIMABLE, reason)


def status_result(spec: ModelSpec, status: str, reason: str) -> ModelResult:
    """The result of a model that was not fitted: no coefficients, its status and reason."""
    diagnostics = {
        "model": spec.id,
        "kind": spec.kind,
        "outcome": spec.outcome,
        "exposure": spec.exposure,
        "role": spec.model_role,
        "status": status,
        "reason": reason,
    }
    return ModelResult(
        model=spec.id,
        outcome=spec.outcome,
        exposure=spec.exposure,
        coefficients=pd.DataFrame(columns=COEFFICIENT_COLUMNS),
        diagnostics=diagnostics,
    )


def planned_entry(plan: Mapping[str, Any], model_id: str) -> dict[str, Any]:
    """A model's entry in a study's plan (plan.json); AccordError when the model does not
    apply to the study, so asking for its results names the reason."""
    for entry in plan["models"]:
        if entry["id"] == model_id:
            if entry["status"] == NOT_APPLICABLE:
                raise AccordError(
                    f"model {model_id!r} does not apply to this study: {entry['reason']}"
                )
            return entry
    raise AccordError(f"model {model_id!r} is not in the study's plan (models/plan.json)")


def fitted_ids(plan: Sequence[PlanEntry | Mapping[str, Any]]) -> list[str]:
    """The models of a plan that get a job: every one that applies to the study."""
    rows = [e.as_dict() if isinstance(e, PlanEntry) else e for e in plan]
    return [row["id"] for row in rows if row["status"] != NOT_APPLICABLE]


def applicability_reason(
    spec: ModelSpec,
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    earlier: Mapping[str, PlanEntry] | None = None,
) -> str | None:
    """Why `spec` does not apply to this study, or None when it does."""
    if spec.kind == "lrt":
        full = spec.options.get("full_model", {}).get("id", spec.options.get("full"))
        entry = (earlier or {}).get(full)
        if entry is not None and entry.status == NOT_APPLICABLE:
            return f"the model it tests, {full!r}, does not apply: {entry.reason}"
    for role, column in _needed_columns(spec):
        if not _has_values(column, panel, client_measures):
            source = _source(column)
            return f"{role} {column!r} has no values in this study" + (
                f": {source}" if source else ""
            )
    if spec.kind == "therapist" and not _has_values("therapist_id", panel, client_measures):
        return "the study has no therapist IDs (therapist_id is empty for every client)"
    return _goal_model_reason(spec, panel, client_measures)


def _goal_model_reason(
    spec: ModelSpec, panel: pd.DataFrame, client_measures: pd.DataFrame
) -> str | None:
    """Why a congruence, goal-level or not-on-track model does not apply, or None."""
    if spec.kind == "congruence":
        column = _rated_column(spec)
        for name, rater in ((column, "client"), (f"{column}_therapist", "therapist")):
            if not _has_values(name, panel, client_measures):
                return (
                    f"no {rater} ratings of {column} in this study: congruence needs the "
                    "client's and the therapist's ratings of the same scale"
                )
    if spec.kind in GOAL_LEVEL_KINDS:
        if not _has_values("n_goals", panel, client_measures):
            return "the study has no goals table"
        if spec.outcome == "gas_level" and not _has_values("gas_t", panel, client_measures):
            return "no GAS ratings of the goals in this study (gas_level is their last level)"
        needs_importance = spec.kind == "goal_congruence"
        if needs_importance and not _has_values("goal_agreement", panel, client_measures):
            return "the goals table has no client_importance and therapist_importance ratings"
    if spec.kind == "not_on_track" and "bands" not in spec.options:
        from accord.core.instruments import load_registry

        registry = load_registry()
        if spec.outcome not in registry or not registry[spec.outcome].bands:
            return f"{spec.outcome} has no severity bands (give options.bands)"
    return None


def _rated_column(spec: ModelSpec) -> str:
    """The session-panel column of a congruence model's rated scale (client rater)."""
    instrument = spec.options.get("instrument", "wai_sr")
    scale = spec.options.get("scale", "goal")
    return instrument if scale == "total" else f"{instrument}_{scale}"


def estimability_reason(
    spec: ModelSpec, panel: pd.DataFrame, client_measures: pd.DataFrame, context: ModelContext
) -> str | None:
    """Why the data cannot estimate `spec` although it applies, or None (the fitter may still
    find a reason, raising NotEstimableError)."""
    if spec.kind == "therapist":
        scored = panel.loc[panel[spec.outcome].notna(), "therapist_id"]
        n = int(scored.dropna().nunique())
        if n < MIN_THERAPISTS:
            return (
                f"{n} therapist(s) with {spec.outcome} scores; at least {MIN_THERAPISTS} "
                "needed to estimate a therapist variance"
            )
    if spec.kind in PANEL_OUTCOME_KINDS:
        sessions = panel.loc[panel[spec.outcome].notna(), "session_number"].nunique()
        if sessions < 2:
            return f"{spec.outcome} is observed at {sessions} session(s); at least 2 needed"
    if spec.kind == "logistic":
        reason = _varies(client_measures[spec.outcome], spec.outcome)
        if reason:
            return reason
    if spec.kind in ("cox", "kaplan_meier", "cumulative_incidence"):
        event = spec.options.get("event", "dropout_event")
        if not client_measures[event].fillna(False).astype(bool).any():
            return f"no events: {event} is false for every client"
    if spec.kind in GROUPED_KINDS:
        group = spec.options.get("group", "arm")
        if group != "exposure_tertile" and group in client_measures:
            sizes = client_measures[group].dropna().astype(str).value_counts()
            if not (sizes >= context.min_cell).any():
                return f"no {group} has at least {context.min_cell} clients"
    reason = _goal_model_estimability(spec, panel, client_measures)
    if reason:
        return reason
    if spec.kind in OWN_EXPOSURE_KINDS and not _uses_exposure(spec):
        return None
    if spec.exposure != "none" and spec.exposure in client_measures:
        return _varies(client_measures[spec.exposure], f"the exposure {spec.exposure}")
    return None


def _uses_exposure(spec: ModelSpec) -> bool:
    """Whether a model reads the configured exposure (not_on_track only for its tertiles)."""
    if spec.kind in OWN_EXPOSURE_KINDS:
        return spec.kind == "not_on_track" and spec.options.get("group") == "exposure_tertile"
    return True


def _goal_model_estimability(
    spec: ModelSpec, panel: pd.DataFrame, client_measures: pd.DataFrame
) -> str | None:
    """Why the data cannot estimate a congruence or not-on-track model although it applies."""
    if spec.kind == "congruence":
        from accord.models.congruence import congruence_not_applicable

        scale = spec.options.get("scale", "goal")
        return congruence_not_applicable(panel, spec.options.get("instrument", "wai_sr"), scale)
    if spec.kind == "not_on_track":
        folds = int(spec.options.get("folds", 5))
        scored = panel.loc[panel[spec.outcome].notna(), "client_id"].nunique()
        if scored < 2 * folds:
            return (
                f"{scored} client(s) with {spec.outcome} scores; at least {2 * folds} needed "
                f"for {folds} cross-fitting folds"
            )
    return None


def _varies(values: pd.Series, name: str) -> str | None:
    observed = values.dropna()
    if observed.empty:
        return f"{name} has no values"
    if observed.astype(str).nunique() < 2:
        return f"{name} does not vary (every client has {observed.astype(str).iloc[0]})"
    return None


def _needed_columns(spec: ModelSpec) -> list[tuple[str, str]]:
    """(role, column) for every variable the model names."""
    needed: list[tuple[str, str]] = []
    if spec.kind in PANEL_OUTCOME_KINDS:
        needed.append(("the outcome", spec.outcome))
    elif spec.kind in CLIENT_OUTCOME_KINDS:
        needed.append(("the outcome", f"{spec.outcome}_last"))
    elif spec.kind in ("logistic", "kaplan_meier", "cumulative_incidence"):
        needed.append(("the outcome", spec.outcome))
    if spec.kind in ("cox", "kaplan_meier", "cumulative_incidence"):
        needed.append(("the event", spec.options.get("event", "dropout_event")))
    if spec.exposure != "none" and _uses_exposure(spec):
        needed.append(("the exposure", spec.exposure))
    if spec.kind == "congruence":
        from accord.core.instruments import load_registry

        if spec.outcome in load_registry():
            needed.append(("the outcome", f"{spec.outcome}_first"))
        else:
            needed.append(("the outcome", spec.options.get("outcome_column", spec.outcome)))
    elif spec.kind == "not_on_track":
        needed.append(("the outcome", spec.outcome))
    for key in ("predictor", "mediator"):
        if key in spec.options:
            needed.append((f"the {key}", spec.options[key]))
    if spec.kind in GROUPED_KINDS and spec.options.get("group", "arm") != "exposure_tertile":
        needed.append(("the grouping", spec.options.get("group", "arm")))
    needed.extend(("the covariate", name) for name in spec.covariates)
    return needed


def _has_values(column: str, panel: pd.DataFrame, client_measures: pd.DataFrame) -> bool:
    frames = (client_measures, panel)
    return any(column in frame and frame[column].notna().any() for frame in frames)


def _source(column: str) -> str:
    """Where a column's values come from, so the reason says what the study lacks."""
    if column in GOAL_MEASURES:
        return "it is built from the goals table"
    if column in ALLIANCE_MEASURES:
        return "it is built from the alliance ratings"
    if column == "arm":
        return "the clients table has no arm"
    if column == "therapist_id":
        return "the clients table has no therapist IDs"
    for suffix in ("_first", "_last", "_change"):
        if column.endswith(suffix):
            return f"the study has no {column.removesuffix(suffix)} scores"
    if column.startswith("dropout") or column == "sessions_to_dropout":
        return "the dropout definition gives no value"
    return ""


def plan_frame(plan: Sequence[PlanEntry]) -> pd.DataFrame:
    """The plan as a table (id, kind, status, reason)."""
    return pd.DataFrame([e.as_dict() for e in plan], columns=["id", "kind", "status", "reason"])


def plan_yaml(
    entries: Sequence[Mapping[str, Any]],
    plan: Sequence[PlanEntry] | None,
    header: str,
) -> str:
    """The `models:` list of a config, each entry with its status and reason as comments.

    `entries` are the config's model entries as written (or the default plan); `plan` their
    statuses for one study, or None when no study was read (every entry is then unchecked).
    """
    import textwrap

    import yaml

    status = {entry.id: entry for entry in plan or ()}
    lines = [f"# {line}".rstrip() for line in textwrap.wrap(header, 90)]
    lines.append("models:")
    for entry in entries:
        checked = status.get(entry["id"])
        if checked is None:
            lines.append(f"  # {entry['id']}: checked against the study when the workflow runs")
        else:
            label = STATUS_LABELS[checked.status]
            lines.append(
                f"  # {entry['id']}: {label}" + (f": {checked.reason}" if checked.reason else "")
            )
        text = yaml.safe_dump([dict(entry)], sort_keys=False, default_flow_style=None, width=88)
        lines.extend(f"  {line}" for line in text.splitlines())
    return "\n".join(lines) + "\n"
