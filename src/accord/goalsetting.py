"""Collaborative goal-setting per client: the exposures.

- n_goals, joint_goal_share: share of the client's goals set jointly (set_by = joint).
- goal_consensus: WAI-SR Goal subscale (Hatcher & Gillaspy 2006), client-rated, mean of the
  first 3 assessed sessions (as early_alliance). Goal consensus - outcome r = .24 (Tryon, Birch &
  Verkuilen 2018).
- goal_agreement: 1 - mean(|client_importance - therapist_importance|) / 4 over the goals both
  rated (importance runs 1..5, so 4 is the largest possible gap).
- smart_quality: per goal, the share of the 5 SMART criteria met among those recorded; the
  client's mean over goals with at least one recorded criterion.
- goal_revisions: number of goals with status `revised`.
- gas_t: GAS T-score (Kiresuk & Sherman 1968) at the client's last rated session; gas_change:
  last minus first (from two rated sessions on).

Without a goals table every goal-table measure is NA; with one, a client without goals has
n_goals 0 and NA shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from accord.contract import SMART_CRITERIA
from accord.panel import (
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
    "joint_goal_share",
    "goal_consensus",
    "goal_agreement",
    "smart_quality",
    "goal_revisions",
    "gas_t",
    "gas_change",
)


def _mean_by(code: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    use = ~np.isnan(values)
    count = np.bincount(code[use], minlength=n)
    total = np.bincount(code[use], weights=values[use], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def goal_table_measures(goals: pd.DataFrame | None, client_ids: pd.Index) -> pd.DataFrame:
    """n_goals, joint_goal_share, goal_agreement, smart_quality, goal_revisions per client."""
    n = len(client_ids)
    out = pd.DataFrame(index=client_ids)
    if goals is None or goals.empty:
        out["n_goals"] = nullable_int(np.full(n, np.nan))
        for column in ("joint_goal_share", "goal_agreement", "smart_quality"):
            out[column] = np.nan
        out["goal_revisions"] = nullable_int(np.full(n, np.nan))
        return out[
            ["n_goals", "joint_goal_share", "goal_agreement", "smart_quality", "goal_revisions"]
        ]

    require_columns(goals, ["client_id", "goal_id", "set_by"], "goals")
    code = client_codes(goals["client_id"], client_ids)
    keep = code >= 0
    goals = goals.loc[keep]
    code = code[keep]
    n_goals = np.bincount(code, minlength=n)
    out["n_goals"] = pd.array(n_goals, dtype="Int64")
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
        out["goal_revisions"] = pd.array(
            np.bincount(code, weights=revised, minlength=n).astype(np.int64), dtype="Int64"
        )
    else:
        out["goal_revisions"] = nullable_int(np.full(n, np.nan))
    return out


def goal_measures(
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    *,
    consensus_instrument: str = "wai_sr",
    consensus_scale: str = "goal",
    consensus_rater: str = "client",
    early_sessions: int = 3,
    gas_instrument: str = "gas",
    gas_rater: str = "client",
) -> pd.DataFrame:
    """Goal-setting exposures, one row per client in `client_ids` (index: client_id).

    Columns in `GOAL_COLUMNS` order.
    """
    out = goal_table_measures(goals, client_ids)
    scores = ScoreTable.of(scores, client_ids)
    consensus = ClientSeries.from_scores(
        scores, client_ids, consensus_instrument, consensus_scale, consensus_rater
    )
    out["goal_consensus"] = consensus.mean(where=consensus.pos < early_sessions)
    gas = ClientSeries.from_scores(scores, client_ids, gas_instrument, "t_score", gas_rater)
    out["gas_t"] = gas.last()
    out["gas_change"] = np.where(gas.count >= 2, gas.last() - gas.first(), np.nan)
    return out[list(GOAL_COLUMNS)]
