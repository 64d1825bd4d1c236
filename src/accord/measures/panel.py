"""The session panel (one row per client and session) and the per-client series it is built from.

Every per-client measure works on flat arrays sorted by client, then session: a client is an
integer code (its position in the sorted client ids), so grouping is `np.bincount` and shifting
within a client is an array shift masked at client boundaries. Nothing loops over clients, which
keeps 100,000 clients and a few million score rows to seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accord.core.errors import StudyError
from accord.measures.exact import Moments

#: How a scale is named in a panel column: the total is the bare instrument key, the GAS T-score
#: is `gas_t`, any other subscale is appended (`wai_sr_goal`).
SCALE_LABELS: dict[str, str] = {"total": "", "t_score": "t"}
RATER_ORDER = ("client", "therapist", "observer")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    """Stop with a message naming the table and column when a required column is absent."""
    for column in columns:
        if column not in frame.columns:
            raise StudyError(
                f"{table}: required column '{column}' is missing", file=table, column=column
            )


def client_index(clients: pd.DataFrame) -> pd.Index:
    """The study's client ids, sorted: a client's code is its position here."""
    require_columns(clients, ["client_id"], "clients")
    ids = pd.Index(clients["client_id"]).drop_duplicates().sort_values()
    return ids.rename("client_id")


def client_codes(ids: pd.Series, client_ids: pd.Index) -> np.ndarray:
    """Position of each id in `client_ids` (-1 for an id that is not a known client)."""
    return np.asarray(client_ids.get_indexer(ids), dtype=np.int64)


def flag(series: pd.Series, value: str) -> np.ndarray:
    """`series == value` as a plain bool array; a missing entry is False."""
    return np.asarray(series.eq(value).fillna(False), dtype=bool)


def as_float(series: pd.Series) -> np.ndarray:
    """A numeric or nullable (boolean, Int64, Float64) column as float64 with NaN for missing."""
    if series.dtype == object:
        series = series.astype("Float64")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def nullable_bool(values: np.ndarray, defined: np.ndarray) -> pd.arrays.BooleanArray:
    """A nullable boolean array: `values` where `defined`, NA elsewhere."""
    defined = np.asarray(defined, dtype=bool)
    return pd.arrays.BooleanArray(np.asarray(values, dtype=bool) & defined, ~defined)


def nullable_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole numbers held as float (NaN = not defined) as a nullable Int64 array."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def scale_column(instrument: str, scale: str, rater: str = "client") -> str:
    """Panel column name of one scored scale: `phq9`, `wai_sr_goal`, `gas_t`, `wai_sr_therapist`."""
    parts = [instrument, SCALE_LABELS.get(scale, scale)]
    if rater != "client":
        parts.append(rater)
    return "_".join(part for part in parts if part)


def session_keys(code: np.ndarray, session: np.ndarray, top: int) -> np.ndarray:
    """One int64 key per (client, session) that sorts by client, then session."""
    return code.astype(np.int64) * top + session.astype(np.int64)


def sort_order(code: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Stable order by client, then session (cheap when the input is already in that order)."""
    if len(code) == 0:
        return np.array([], dtype=np.int64)
    shifted = session - min(int(session.min()), 0)
    return np.argsort(session_keys(code, shifted, int(shifted.max()) + 1), kind="stable")


class ScoreTable:
    """Scores in contract format, indexed once: client codes, sessions and values as arrays, and
    the rows of each (instrument, scale, rater). Rows of unknown clients and missing scores are
    left out."""

    COLUMNS = ("client_id", "session_number", "instrument", "rater", "scale", "score")

    def __init__(self, scores: pd.DataFrame | None, client_ids: pd.Index) -> None:
        self.client_ids = client_ids
        self.groups: dict[tuple[str, str, str], np.ndarray] = {}
        if scores is None or scores.empty:
            self.code = self.session = np.array([], dtype=np.int64)
            self.value = np.array([], dtype=np.float64)
            return
        require_columns(scores, self.COLUMNS, "scores")
        code = client_codes(scores["client_id"], client_ids)
        value = as_float(scores["score"])
        keep = (code >= 0) & ~np.isnan(value)
        self.code = code[keep]
        self.session = scores["session_number"].to_numpy(dtype=np.int64)[keep]
        self.value = value[keep]
        keys = scores.loc[keep, ["instrument", "scale", "rater"]]
        for combo, rows in keys.groupby(
            list(keys.columns), observed=True, sort=False
        ).indices.items():
            self.groups[tuple(str(part) for part in combo)] = rows

    @classmethod
    def of(cls, scores: pd.DataFrame | ScoreTable | None, client_ids: pd.Index) -> ScoreTable:
        """`scores` itself when already indexed for these clients, else a new index of it."""
        if isinstance(scores, ScoreTable) and scores.client_ids.equals(client_ids):
            return scores
        if isinstance(scores, ScoreTable):
            raise ValueError("the score table was indexed for a different set of clients")
        return cls(scores, client_ids)

    def rows(self, instrument: str, scale: str = "total", rater: str = "client") -> np.ndarray:
        """Positions (in `code`, `session`, `value`) of one scale's scores."""
        return self.groups.get((instrument, scale, rater), np.array([], dtype=np.int64))


class ClientSeries:
    """Values per client in session order, as flat arrays sorted by client code then session.

    Per-client results are arrays of length `n_clients` (NaN where a client has no value).
    """

    def __init__(
        self, code: np.ndarray, session: np.ndarray, value: np.ndarray, n_clients: int
    ) -> None:
        code = np.asarray(code, dtype=np.int64)
        session = np.asarray(session, dtype=np.int64)
        order = sort_order(code, session)
        self.code = code[order]
        self.session = session[order]
        self.value = np.asarray(value, dtype=np.float64)[order]
        self.n_clients = n_clients
        self.count = np.bincount(self.code, minlength=n_clients)
        size = len(self.code)
        starts = np.flatnonzero(np.r_[True, self.code[1:] != self.code[:-1]]) if size else []
        starts = np.asarray(starts, dtype=np.int64)
        self.pos = np.arange(size) - np.repeat(starts, np.diff(np.r_[starts, size]))
        self.size = self.count[self.code]

    @classmethod
    def from_scores(
        cls,
        scores: pd.DataFrame | ScoreTable | None,
        client_ids: pd.Index,
        instrument: str,
        scale: str = "total",
        rater: str = "client",
    ) -> ClientSeries:
        """One scale's scores (missing scores left out) for the clients in `client_ids`."""
        table = ScoreTable.of(scores, client_ids)
        rows = table.rows(instrument, scale, rater)
        return cls(table.code[rows], table.session[rows], table.value[rows], len(client_ids))

    def __len__(self) -> int:
        return len(self.code)

    def shift(self, k: int, values: np.ndarray | None = None) -> np.ndarray:
        """Each entry's value k entries earlier (k > 0) or later (k < 0) for the same client.

        `values` (default: the series' own) must be aligned with the series' sorted order.
        """
        values = self.value if values is None else values
        out = np.full(len(values), np.nan)
        if k == 0 or abs(k) >= len(values):
            return values.astype(np.float64) if k == 0 else out
        if k > 0:
            out[k:] = values[:-k]
            out[self.pos < k] = np.nan
        else:
            out[:k] = values[-k:]
            out[self.pos - k >= self.size] = np.nan
        return out

    def total(
        self, values: np.ndarray | None = None, where: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-client sum (0 where a client has nothing)."""
        values = self.value if values is None else values
        if where is not None:
            values = np.where(where, values, 0.0)
        return np.bincount(self.code, weights=values, minlength=self.n_clients)

    def n(self, where: np.ndarray) -> np.ndarray:
        """Per-client count of entries where `where` holds."""
        return np.bincount(self.code, weights=where.astype(np.float64), minlength=self.n_clients)

    def mean(self, values: np.ndarray | None = None, where: np.ndarray | None = None) -> np.ndarray:
        """Per-client mean over entries where `where` holds and the value is not missing."""
        values = self.value if values is None else values
        use = ~np.isnan(values)
        if where is not None:
            use &= where
        count = self.n(use)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, self.total(values, use) / count, np.nan)

    def std(self) -> np.ndarray:
        """Per-client sample SD (ddof = 1) of the values; NaN below two values."""
        centred = self.value - self.mean()[self.code]
        ss = self.total(centred**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count >= 2, np.sqrt(ss / (self.count - 1)), np.nan)

    def first(self, values: np.ndarray | None = None) -> np.ndarray:
        """Per-client value at the first entry."""
        return self._at(self.pos == 0, values)

    def last(self, values: np.ndarray | None = None) -> np.ndarray:
        """Per-client value at the last entry."""
        return self._at(self.pos == self.size - 1, values)

    def _at(self, where: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        values = self.value if values is None else values
        out = np.full(self.n_clients, np.nan)
        out[self.code[where]] = values[where]
        return out


def client_means(values: np.ndarray, code: np.ndarray, n_clients: int) -> np.ndarray:
    """Each client's mean of its present values (NaN for a client without one)."""
    present = ~np.isnan(values)
    count = np.bincount(code[present], minlength=n_clients)
    sums = np.bincount(code[present], weights=values[present], minlength=n_clients)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / count, np.nan)


def grand_mean(means: np.ndarray) -> float:
    """The mean of the client means (each client counts once), an exact sum rounded once:
    the same for any order and any partition of the clients (`accord.measures.exact`)."""
    return Moments.of(means).mean()


def within_between(
    values: np.ndarray, code: np.ndarray, n_clients: int, grand: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Person-mean centring of a time-varying predictor.

    within = value - the client's mean; between = the client's mean - the grand mean of client
    means (each client counts once; `grand` is the whole study's when these are a partition of
    its clients). Returns (within, between, grand_mean); within + between + grand_mean is the
    observed value.
    """
    client_mean = client_means(values, code, n_clients)
    grand = grand_mean(client_mean) if grand is None else grand
    between = client_mean[code] - grand
    within = values - client_mean[code]
    return within, between, grand


def session_panel(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    scores: pd.DataFrame | ScoreTable | None,
    *,
    alliance: tuple[str, str, str] = ("wai_sr", "total", "client"),
    goal_alliance_client: tuple[str, str, str] = ("wai_sr", "goal", "client"),
    score_groups: Sequence[tuple[str, str, str]] | None = None,
    grand_means: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """One row per client and session: every scheduled session, plus any scored session not in
    the schedule (session 0, the intake assessment, in validated data).

    Columns: client_id, session_number, status (missing at session 0), day, attended (False at
    session 0), therapist_id, site_id, arm; one column per scored scale (`scale_column` names;
    client-rated first, then therapist- and observer-rated); then `alliance`, `alliance_between`,
    `alliance_within` and `goal_alliance_client`, `goal_alliance_client_between`,
    `goal_alliance_client_within` (`alliance` and `goal_alliance_client` are the (instrument,
    scale, rater) given: by default the client-rated WAI-SR total and Goal subscale).

    For a partition of a study's clients, `score_groups` gives the study's scored (instrument,
    scale, rater) (a scale no client of the partition has is a column of NaN) and `grand_means`
    the study's grand means of `alliance` and `goal_alliance_client` (`panel_series`); None
    takes both from these clients.

    Returns the panel and the grand means used for centring.
    """
    require_columns(sessions, ["client_id", "session_number", "status"], "sessions")
    client_ids = client_index(clients)
    s_code = client_codes(sessions["client_id"], client_ids)
    s_keep = s_code >= 0
    s_code = s_code[s_keep]
    s_num = sessions["session_number"].to_numpy(dtype=np.int64)[s_keep]
    table = ScoreTable.of(scores, client_ids)
    rows = _PanelRows.of(s_code, s_num, table.code, table.session)

    panel = pd.DataFrame(
        {"client_id": client_ids.take(rows.client), "session_number": rows.session}
    )
    _add_session_columns(panel, sessions.loc[s_keep], rows.of_sessions)
    _add_client_columns(panel, clients, client_ids, rows.client)
    groups = table.groups if score_groups is None else score_groups
    score_columns = _score_columns(table, groups, rows.of_scores, len(panel))
    panel = pd.concat([panel, pd.DataFrame(score_columns, index=panel.index)], axis=1)

    used: dict[str, float] = {}
    series = panel_series(alliance, goal_alliance_client)
    for name, combo in series.items():
        values = score_columns.get(scale_column(*combo), np.full(len(panel), np.nan))
        given = None if grand_means is None else grand_means[name]
        within, between, used[name] = within_between(values, rows.client, len(client_ids), given)
        panel[name] = values
        panel[f"{name}_between"] = between
        panel[f"{name}_within"] = within
    return panel, used


def panel_series(
    alliance: tuple[str, str, str], goal_alliance_client: tuple[str, str, str]
) -> dict[str, tuple[str, str, str]]:
    """The panel's person-mean centred series and the scored scale each one is."""
    return {"alliance": alliance, "goal_alliance_client": goal_alliance_client}


@dataclass(frozen=True)
class _PanelRows:
    """The panel's rows: the distinct (client, session) keys of the sessions and the scores,
    sorted, with the panel row of every session row and of every score row."""

    client: np.ndarray
    session: np.ndarray
    of_sessions: np.ndarray
    of_scores: np.ndarray

    @classmethod
    def of(
        cls, s_code: np.ndarray, s_num: np.ndarray, c_code: np.ndarray, c_num: np.ndarray
    ) -> _PanelRows:
        top = int(max(s_num.max(initial=0), c_num.max(initial=0))) + 1
        all_keys = np.concatenate(
            [session_keys(s_code, s_num, top), session_keys(c_code, c_num, top)]
        )
        order = np.argsort(all_keys, kind="stable")
        ordered = all_keys[order]
        new_row = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.array([], bool)
        row_of = np.empty(len(all_keys), dtype=np.int64)
        row_of[order] = np.cumsum(new_row) - 1
        keys = ordered[new_row]
        return cls(keys // top, keys % top, row_of[: len(s_code)], row_of[len(s_code) :])


def _add_session_columns(panel: pd.DataFrame, sessions: pd.DataFrame, rows: np.ndarray) -> None:
    """status, day and attended from the schedule (missing where a score has no session)."""
    status = np.full(len(panel), None, dtype=object)
    status[rows] = sessions["status"].astype("string").to_numpy(dtype=object, na_value=None)
    panel["status"] = pd.array(status, dtype="string")
    day = np.full(len(panel), np.nan)
    if "day" in sessions.columns:
        day[rows] = as_float(sessions["day"])
    panel["day"] = nullable_int(day)
    panel["attended"] = np.asarray(panel["status"].eq("attended").fillna(False), dtype=bool)


def _add_client_columns(
    panel: pd.DataFrame, clients: pd.DataFrame, client_ids: pd.Index, row_client: np.ndarray
) -> None:
    ordered_clients = (
        clients.drop_duplicates("client_id").set_index("client_id").reindex(client_ids)
    )
    for column in ("therapist_id", "site_id", "arm"):
        if column in ordered_clients.columns:
            panel[column] = ordered_clients[column].to_numpy()[row_client]
        else:
            panel[column] = pd.Series(pd.NA, index=panel.index, dtype="string")


def _score_columns(
    table: ScoreTable, groups: Iterable[tuple[str, str, str]], rows: np.ndarray, n_rows: int
) -> dict[str, np.ndarray]:
    """One column per scored (instrument, scale, rater): client-rated first, then therapist-
    and observer-rated; totals before subscales."""

    def column_order(combo: tuple[str, str, str]) -> tuple:
        instrument, scale, rater = combo
        rank = RATER_ORDER.index(rater) if rater in RATER_ORDER else len(RATER_ORDER)
        return (rank, rater, instrument, scale != "total", scale)

    columns: dict[str, np.ndarray] = {}
    for combo in sorted(groups, key=column_order):
        members = table.groups.get(combo, np.array([], dtype=np.int64))
        column = np.full(n_rows, np.nan)
        column[rows[members]] = table.value[members]
        columns[scale_column(*combo)] = column
    return columns
