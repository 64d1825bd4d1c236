"""Collaborative goal-setting per client: the exposures (measures.md).

Temporal order: the goal-table exposures use only the goals set within the early window
(set_session <= `early_sessions`, default 3), so that a goal set because a client was already
improving does not count toward the exposure; goals set later are counted in late_goal_share.

- n_goals: all the client's goals; late_goal_share: the share of them set after the early
  window (set_session > early_sessions).
- joint_goal_share: share of the client's early goals set jointly (set_by = joint).
- goal_alliance_client: WAI-SR Goal subscale (Hatcher & Gillaspy 2006), client-rated, mean of
  the first 3 assessed sessions (as early_alliance). The client's view of the goal bond, not a
  consensus.
- goal_consensus: client-therapist divergence on the WAI-SR Goal subscale in the early window,
  the mean of |client - therapist| over the sessions both rated, up to the client's last rating
  counted in goal_alliance_client (0 = full agreement; item means run 1..5, so 4 is the largest
  gap). NA where no session in that window has both ratings.
- goal_agreement: 1 - mean(|client_importance - therapist_importance|) / 4 over the early goals
  both rated (importance runs 1..5, so 4 is the largest possible gap).
- smart_quality: per early goal, the share of the 5 SMART criteria met among those recorded;
  the client's mean over goals with at least one recorded criterion.
- goal_revisions: number of early goals with status `revised`.
- gas_t: GAS T-score (Kiresuk & Sherman 1968) at the client's last rated session; gas_change:
  last minus first (from two rated sessions on). These are goal-attainment OUTCOMES, never
  exposures (`OUTCOME_ONLY`).

Without a goals table every goal-table measure is NA; with one, a client without goals has
n_goals 0 and NA shares (and a client whose goals were all set late, NA early-goal measures).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from accord.core.contract import SMART_CRITERIA
from accord.measures.panel import (
    ClientSeries,
    ScoreTable,
    as_float,
    client_codes,
    flag,
    nullable_int,
    require_columns,
)

#: Largest possible |client - therapist| importance gap on the 1..5 scale.
IMPORTANCE_RANGE = 4.0

GOAL_COLUMNS = (
    "n_goals",
    "late_goal_share",
    "joint_goal_share",
    "goal_alliance_client",
    "goal_consensus",
    "goal_agreement",
    "smart_quality",
    "goal_revisions",
    "gas_t",
    "gas_change",
)
#: Goal measures that are outcomes of treatment (attainment follows it): never exposures.
OUTCOME_ONLY = ("gas_t", "gas_change")
#: The goal-table measures computed from the early goals only.
EARLY_GOAL_COLUMNS = ("joint_goal_share", "goal_agreement", "smart_quality", "goal_revisions")


def _mean_by(code: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    use = ~np.isnan(values)
    count = np.bincount(code[use], minlength=n)
    total = np.bincount(code[use], weights=values[use], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def goal_table_measures(
    goals: pd.DataFrame | None,
    client_ids: pd.Index,
    early_sessions: int = 3,
    study_has_goals: bool | None = None,
) -> pd.DataFrame:
    """n_goals, late_goal_share and, from the goals set by session `early_sessions`,
    joint_goal_share, goal_agreement, smart_quality, goal_revisions per client.

    `study_has_goals` says whether the study's goals table has rows when `client_ids` are a
    partition of its clients (a partition without goals then has n_goals 0); None: whether
    `goals` has rows."""
    n = len(client_ids)
    out = pd.DataFrame(index=client_ids)
    columns = ["n_goals", "late_goal_share", *EARLY_GOAL_COLUMNS]
    if study_has_goals is None:
        study_has_goals = goals is not None and not goals.empty
    if goals is None or not study_has_goals:
        for column in columns:
            out[column] = np.nan
        out["n_goals"] = nullable_int(np.full(n, np.nan))
        out["goal_revisions"] = nullable_int(np.full(n, np.nan))
        return out[columns]

    require_columns(goals, ["client_id", "goal_id", "set_by", "set_session"], "goals")
    code = client_codes(goals["client_id"], client_ids)
    keep = code >= 0
    goals = goals.loc[keep]
    code = code[keep]
    n_goals = np.bincount(code, minlength=n)
    out["n_goals"] = pd.array(n_goals, dtype="Int64")
    late = as_float(goals["set_session"]) > early_sessions
    out["late_goal_share"] = _mean_by(code, late.astype(float), n)
    early = _early_goal_measures(goals.loc[~late], code[~late], n)
    for column in EARLY_GOAL_COLUMNS:
        out[column] = early[column]
    return out[columns]


def _early_goal_measures(goals: pd.DataFrame, code: np.ndarray, n: int) -> dict[str, object]:
    """joint_goal_share, goal_agreement, smart_quality and goal_revisions from `goals`."""
    out: dict[str, object] = {}
    out["joint_goal_share"] = _mean_by(code, flag(goals["set_by"], "joint").astype(float), n)

    agreement = np.full(n, np.nan)
    if {"client_importance", "therapist_importance"} <= set(goals.columns):
        gap = np.abs(as_float(goals["client_importance"]) - as_float(goals["therapist_importance"]))
        agreement = 1.0 - _mean_by(code, gap, n) / IMPORTANCE_RANGE
    out["goal_agreement"] = agreement

    criteria = np.column_stack(
        [
            as_float(goals[c]) if c in goals.columns else np.full(len(goals), np.nan)
            for c in SMART_CRITERIA
        ]
    )
    recorded = (~np.isnan(criteria)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(recorded > 0, np.nansum(criteria, axis=1) / recorded, np.nan)
    out["smart_quality"] = _mean_by(code, share, n)

    if "status" in goals.columns:
        revised = flag(goals["status"], "revised").astype(float)
        counts = np.bincount(code, weights=revised, minlength=n).astype(np.int64)
        out["goal_revisions"] = pd.array(counts, dtype="Int64")
    else:
        out["goal_revisions"] = nullable_int(np.full(n, np.nan))
    return out


def goal_measures(
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    *,
    goal_instrument: str = "wai_sr",
    goal_scale: str = "goal",
    early_sessions: int = 3,
    gas_instrument: str = "gas",
    gas_rater: str = "client",
    study_has_goals: bool | None = None,
) -> pd.DataFrame:
    """Goal-setting measures, one row per client in `client_ids` (index: client_id).

    `goal_instrument` / `goal_scale` give the goal-alliance scale rated by client and therapist
    (WAI-SR Goal subscale). Columns in `GOAL_COLUMNS` order.
    """
    out = goal_table_measures(goals, client_ids, early_sessions, study_has_goals)
    scores = ScoreTable.of(scores, client_ids)
    client = ClientSeries.from_scores(scores, client_ids, goal_instrument, goal_scale, "client")
    early = client.pos < early_sessions
    out["goal_alliance_client"] = client.mean(where=early)
    out["goal_consensus"] = _goal_divergence(
        client,
        early,
        ClientSeries.from_scores(scores, client_ids, goal_instrument, goal_scale, "therapist"),
    )
    gas = ClientSeries.from_scores(scores, client_ids, gas_instrument, "t_score", gas_rater)
    out["gas_t"] = gas.last()
    out["gas_change"] = np.where(gas.count >= 2, gas.last() - gas.first(), np.nan)
    return out[list(GOAL_COLUMNS)]


def _goal_divergence(
    client: ClientSeries, early: np.ndarray, therapist: ClientSeries
) -> np.ndarray:
    """Mean |client - therapist| over the sessions both rated, up to the client's last rating
    in the early window (`early` marks the client's early ratings)."""
    n = client.n_clients
    window_end = np.full(n, -1, dtype=np.int64)
    np.maximum.at(window_end, client.code[early], client.session[early])
    top = int(max(client.session.max(initial=0), therapist.session.max(initial=0))) + 1
    client_key = client.code * top + client.session
    therapist_key = therapist.code * top + therapist.session
    _, c_at, t_at = np.intersect1d(client_key, therapist_key, return_indices=True)
    code = client.code[c_at]
    in_window = client.session[c_at] <= window_end[code]
    gap = np.abs(client.value[c_at] - therapist.value[t_at])[in_window]
    return _mean_by(code[in_window], gap, n)
