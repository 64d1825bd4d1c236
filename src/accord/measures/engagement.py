"""Engagement per client: attendance, time in treatment, homework, check-ins and dropout.

- attendance_rate = attended / scheduled.
- weeks_in_treatment = (day of the last attended session - day of the first scheduled one) / 7;
  mean_gap_days = mean of the day differences between consecutive attended sessions. Both need
  `day`.
- homework_rate: mean homework_completion over sessions with homework assigned (and a
  completion recorded).
- goal_review_rate: share of attended sessions with goal_review true, among the attended
  sessions where goal_review was recorded ("regular check-ins").

Dropout is defined three ways, because the definition moves dropout rates a lot (Swift &
Greenberg 2012: 19.7 % overall, varying with the definition):

- `end_reason`: the client's recorded end reason is `dropout` (ended without agreement).
- `min_sessions`: fewer than N sessions attended (N = 2: the NHS Talking Therapies rule for
  having finished a course of treatment).
- `last_scheduled_missed`: the client's last scheduled appointment was cancelled or missed.

All three are returned; `dropout` is the one chosen in the settings. A client whose end reason
is `ongoing` has not ended treatment, so `min_sessions` and `last_scheduled_missed` leave them
undefined (NA) rather than call a client still in therapy a dropout.

For survival models, `sessions_to_dropout` is the number of sessions attended (a dropout leaves
after their last attended session; a censored client was last seen there) and `dropout_event` is
the chosen definition (False = censored). `end_event` says how treatment ended for competing-risk
curves: `dropout` (the chosen definition), `completion` (treatment ended, end reason recorded and
not `ongoing`, without dropout: completed, referred on or other), or `censored` (still in
treatment, or no end recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.measures.panel import (
    ClientSeries,
    as_float,
    client_codes,
    flag,
    nullable_bool,
    require_columns,
)

DROPOUT_DEFINITIONS = ("end_reason", "min_sessions", "last_scheduled_missed")

ENGAGEMENT_COLUMNS = (
    "sessions_scheduled",
    "sessions_attended",
    "cancellations",
    "no_shows",
    "attendance_rate",
    "weeks_in_treatment",
    "mean_gap_days",
    "homework_rate",
    "early_attendance_rate",
    "early_homework_rate",
    "goal_review_rate",
    "dropout",
    "dropout_end_reason",
    "dropout_min_sessions",
    "dropout_last_scheduled_missed",
    "sessions_to_dropout",
    "dropout_event",
    "end_event",
)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def engagement_measures(
    sessions: pd.DataFrame,
    client_ids: pd.Index,
    end_reason: pd.Series | None = None,
    *,
    dropout_definition: str = "end_reason",
    min_sessions: int = 2,
    early_sessions: int = 3,
) -> pd.DataFrame:
    """Engagement measures, one row per client in `client_ids` (index: client_id).

    `end_reason` is indexed by client_id (missing or absent: `dropout_end_reason` is NA).
    Rates are NaN where their denominator is empty; weeks and gaps need `day`.
    early_attendance_rate and early_homework_rate are the same rates over the first
    `early_sessions` scheduled appointments (session_number <= early_sessions): measured before
    the end of treatment, so they can serve as mediators of a post-treatment outcome.
    """
    if dropout_definition not in DROPOUT_DEFINITIONS:
        raise ValueError(f"dropout_definition must be one of {DROPOUT_DEFINITIONS}")
    require_columns(sessions, ["client_id", "session_number", "status"], "sessions")
    rows = _SessionRows.of(sessions, client_ids)
    out = pd.DataFrame(index=client_ids)
    for columns in (
        _attendance(rows, early_sessions),
        _timing(rows),
        _homework(rows, early_sessions),
        _goal_review(rows),
        _dropout(rows, client_ids, end_reason, dropout_definition, min_sessions),
    ):
        for name, values in columns.items():
            out[name] = values
    return out[list(ENGAGEMENT_COLUMNS)]


@dataclass(frozen=True)
class _SessionRows:
    """The sessions of the clients in `client_ids`, coded 0..n-1 by client."""

    frame: pd.DataFrame
    code: np.ndarray
    session: np.ndarray
    attended: np.ndarray
    n: int

    @classmethod
    def of(cls, sessions: pd.DataFrame, client_ids: pd.Index) -> _SessionRows:
        code = client_codes(sessions["client_id"], client_ids)
        keep = code >= 0
        frame = sessions.loc[keep]
        return cls(
            frame=frame,
            code=code[keep],
            session=frame["session_number"].to_numpy(dtype=np.int64),
            attended=flag(frame["status"], "attended"),
            n=len(client_ids),
        )

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per client, the number of its rows where `mask` holds."""
        weights = mask.astype(np.float64)
        return np.bincount(self.code, weights=weights, minlength=self.n).astype(np.int64)

    def total(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per client, the sum of `values` over its rows where `mask` holds."""
        return np.bincount(self.code[mask], weights=values[mask], minlength=self.n)


def _attendance(rows: _SessionRows, early_sessions: int) -> dict[str, Any]:
    status = rows.frame["status"]
    scheduled = np.bincount(rows.code, minlength=rows.n)
    attended = rows.count(rows.attended)
    early = rows.session <= early_sessions
    return {
        "sessions_scheduled": pd.array(scheduled, dtype="Int64"),
        "sessions_attended": pd.array(attended, dtype="Int64"),
        "cancellations": pd.array(rows.count(flag(status, "cancelled")), dtype="Int64"),
        "no_shows": pd.array(rows.count(flag(status, "no_show")), dtype="Int64"),
        "attendance_rate": _ratio(attended, scheduled),
        "early_attendance_rate": _ratio(rows.count(rows.attended & early), rows.count(early)),
    }


def _timing(rows: _SessionRows) -> dict[str, np.ndarray]:
    """Weeks from the first session to the last attended one, and the mean gap in days between
    attended sessions (NaN without ``day``)."""
    weeks = gaps = np.full(rows.n, np.nan)
    if "day" in rows.frame.columns:
        day = as_float(rows.frame["day"])
        has_day = ~np.isnan(day)
        first_day = np.full(rows.n, np.inf)
        np.minimum.at(first_day, rows.code[has_day], day[has_day])
        first_day[np.isinf(first_day)] = np.nan
        seen = rows.attended & has_day
        days = ClientSeries(rows.code[seen], rows.session[seen], day[seen], rows.n)
        weeks = (days.last() - first_day) / 7.0
        gaps = days.mean(days.value - days.shift(1))
    return {"weeks_in_treatment": weeks, "mean_gap_days": gaps}


def _homework(rows: _SessionRows, early_sessions: int) -> dict[str, np.ndarray]:
    """Mean completion of assigned homework, over all sessions and over the early ones."""
    homework = early_homework = np.full(rows.n, np.nan)
    if {"homework_assigned", "homework_completion"} <= set(rows.frame.columns):
        assigned = as_float(rows.frame["homework_assigned"]) == 1.0
        completion = as_float(rows.frame["homework_completion"])
        use = assigned & ~np.isnan(completion)
        homework = _ratio(rows.total(use, completion), rows.count(use))
        use_early = use & (rows.session <= early_sessions)
        early_homework = _ratio(rows.total(use_early, completion), rows.count(use_early))
    return {"homework_rate": homework, "early_homework_rate": early_homework}


def _goal_review(rows: _SessionRows) -> dict[str, np.ndarray]:
    review = np.full(rows.n, np.nan)
    if "goal_review" in rows.frame.columns:
        reviewed = as_float(rows.frame["goal_review"])
        use = rows.attended & ~np.isnan(reviewed)
        review = _ratio(rows.count(use & (reviewed == 1.0)), rows.count(use))
    return {"goal_review_rate": review}


def _dropout(
    rows: _SessionRows,
    client_ids: pd.Index,
    end_reason: pd.Series | None,
    definition: str,
    min_sessions: int,
) -> dict[str, Any]:
    """Dropout by each definition, the chosen one as ``dropout``, and the end event."""
    n = rows.n
    if end_reason is not None:
        reason = end_reason.reindex(client_ids).astype("string")
        by_reason = pd.array(reason.eq("dropout"), dtype="boolean")
        ongoing = np.asarray(reason.eq("ongoing").fillna(False), dtype=bool)
        ended = np.asarray((reason.notna() & ~reason.eq("ongoing")).fillna(False), dtype=bool)
    else:
        by_reason = pd.array([pd.NA] * n, dtype="boolean")
        ongoing = ended = np.zeros(n, dtype=bool)
    n_attended = rows.count(rows.attended)
    by_count = nullable_bool(n_attended < min_sessions, ~ongoing)
    last_attended = ClientSeries(
        rows.code, rows.session, rows.attended.astype(np.float64), n
    ).last()
    by_last = nullable_bool(last_attended == 0.0, ~np.isnan(last_attended) & ~ongoing)
    definitions = {
        "end_reason": by_reason,
        "min_sessions": by_count,
        "last_scheduled_missed": by_last,
    }
    chosen = np.asarray(definitions[definition].fillna(False), dtype=bool)
    return {
        "dropout": definitions[definition],
        "dropout_end_reason": by_reason,
        "dropout_min_sessions": by_count,
        "dropout_last_scheduled_missed": by_last,
        "sessions_to_dropout": pd.array(n_attended, dtype="Int64"),
        "dropout_event": definitions[definition],
        "end_event": pd.array(
            np.where(chosen, "dropout", np.where(ended, "completion", "censored")),
            dtype="string",
        ),
    }
