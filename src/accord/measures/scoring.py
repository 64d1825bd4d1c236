"""Scoring: item responses to one score per client x session x instrument x rater x scale.

The rules come from the instrument registry (measures.md):

- A *form* is one client's answers to one instrument at one session by one rater.
- Reverse-keyed items (CORE-10 items 2 and 3) are scored item_min + item_max - response first.
- Sum scores with at most `prorate_max_missing` items missing are prorated: each missing item is
  replaced by the mean of the answered items, i.e. total = k * sum / answered (PHQ-9 up to 2
  missing, NHS Data Dictionary; GAD-7 and CORE-10 up to 1, a choice; SRS, ORS none). Mean scores
  (WAI-SR) are the mean of the answered items under the same limit; the WAI-SR total needs all 12
  items and each subscale all 4 of its items (Hatcher & Gillaspy 2006; measures.md).
- A form with more missing items than that is *not scored*: it gets no row in the scores table
  and is counted as `not_scored` in the scoring summary.
- A supplied total (`item == "total"`) is used as is (not prorated, `items_answered` NA) only
  where no item-derived total exists. Where both exist the item-derived score wins, and a
  supplied total that disagrees with it is returned in the disagreements table.
- GAS: the Kiresuk & Sherman (1968) T-score over the goals rated at a session,
  T = 50 + 10 * sum(w x) / sqrt((1 - rho) * sum(w^2) + rho * (sum w)^2), rho = 0.3 by default;
  weights are 1, or the client's importance rating of each goal (`gas_weights="importance"`).
  Every GAS row is a goal rating (its `item` is the goal id); unrated goals are left out.

Everything is vectorised over integer codes (no Python loop over clients or forms), so tens of
millions of item rows score in seconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import ConfigError, StudyError
from accord.core.instruments import Instrument, Registry

__all__ = [
    "DISAGREEMENT_COLUMNS",
    "EXTRA_SCORE_COLUMNS",
    "SCORE_COLUMNS",
    "SUMMARY_COLUMNS",
    "ScoringResult",
    "ScoringSettings",
    "gas_t_score",
    "score_measures",
    "score_measures_with_summary",
    "summary_table",
]

log = logging.getLogger(__name__)

KEY_COLUMNS = ("client_id", "session_number", "instrument", "rater")
SCORE_COLUMNS = (*KEY_COLUMNS, "scale", "score", "items_answered", "prorated")
EXTRA_SCORE_COLUMNS = ("items_expected", "source", "phase")
DISAGREEMENT_COLUMNS = (
    *KEY_COLUMNS,
    "supplied_total",
    "item_total",
    "items_answered",
    "prorated",
)
SUMMARY_COLUMNS = (
    "instrument",
    "rater",
    "scale",
    "forms",
    "scored",
    "from_items",
    "prorated",
    "supplied_total",
    "not_scored",
)
GAS_WEIGHTS = ("equal", "importance")
SOURCES = ("items", "supplied_total")
_REQUIRED_COLUMNS = ("client_id", "session_number", "instrument", "item", "value")


@dataclass(frozen=True)
class ScoringSettings:
    """The scoring choices that are settings rather than registry facts (recorded with outputs).

    gas_rho: the assumed correlation between goal scores in the GAS T-score (Kiresuk & Sherman
        1968 use 0.3).
    gas_weights: "equal" (every goal weighs 1) or "importance" (the client's importance rating
        from goals.client_importance; a session with a rated goal lacking one is not scored).
    total_tolerance: a supplied total further than this from the item-derived total is reported
        as a disagreement.
    """

    gas_rho: float = 0.3
    gas_weights: str = "equal"
    total_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if isinstance(self.gas_rho, bool) or not isinstance(self.gas_rho, int | float):
            raise ConfigError("scoring.gas_rho: must be a number")
        if not 0 <= self.gas_rho < 1:
            raise ConfigError("scoring.gas_rho: must lie in [0, 1)")
        if self.gas_weights not in GAS_WEIGHTS:
            raise ConfigError(f"scoring.gas_weights: must be one of {', '.join(GAS_WEIGHTS)}")
        if isinstance(self.total_tolerance, bool) or not isinstance(
            self.total_tolerance, int | float
        ):
            raise ConfigError("scoring.total_tolerance: must be a number")
        if not self.total_tolerance >= 0:
            raise ConfigError("scoring.total_tolerance: must not be negative")

    def as_dict(self) -> dict[str, Any]:
        """The settings and the fixed rules they sit beside, for output metadata."""
        return {
            **asdict(self),
            "not_scored": "forms with too many missing items are left out of scores",
            "supplied_total": "used only where no item-derived total exists",
        }


@dataclass(frozen=True)
class ScoringResult:
    """Scores, supplied totals that disagree with the items, and counts per instrument and scale."""

    scores: pd.DataFrame
    total_disagreements: pd.DataFrame
    summary: pd.DataFrame
    settings: ScoringSettings


def gas_t_score(
    attainment: np.ndarray | list[float],
    weights: np.ndarray | list[float] | None = None,
    rho: float = 0.3,
) -> float:
    """Kiresuk & Sherman (1968) T-score of one set of goal ratings (-2..+2); NaN ratings ignored.

    T = 50 + 10 * sum(w x) / sqrt((1 - rho) * sum(w^2) + rho * (sum w)^2).
    """
    x = np.asarray(attainment, dtype="float64")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    rated = ~np.isnan(x)
    x, w = x[rated], w[rated]
    if x.size == 0:
        return math.nan
    denominator = math.sqrt((1 - rho) * np.sum(w * w) + rho * np.sum(w) ** 2)
    return 50.0 + 10.0 * float(np.sum(w * x)) / denominator


def score_measures(
    measures: pd.DataFrame,
    registry: Registry,
    *,
    settings: ScoringSettings | None = None,
    goals: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the validated long measures table: returns (scores, total_disagreements).

    `scores` has the contract columns (client_id, session_number, instrument, rater, scale,
    score, items_answered, prorated) followed by items_expected, source ("items" or
    "supplied_total") and phase; one row per scored client x session x instrument x rater x
    scale, sorted by those keys. Forms with too many missing items are left out (see
    `score_measures_with_summary` for the counts). `goals` (with client_importance) is needed
    only when `settings.gas_weights == "importance"`.
    """
    result = score_measures_with_summary(measures, registry, settings=settings, goals=goals)
    return result.scores, result.total_disagreements


def score_measures_with_summary(
    measures: pd.DataFrame,
    registry: Registry,
    *,
    settings: ScoringSettings | None = None,
    goals: pd.DataFrame | None = None,
) -> ScoringResult:
    """`score_measures` plus a summary: per instrument, rater and scale, how many forms there
    were, how many were scored (from items, of which prorated, or from a supplied total) and how
    many were not scored."""
    settings = settings or ScoringSettings()
    if settings.gas_weights == "importance" and (
        goals is None or "client_importance" not in goals.columns
    ):
        raise ConfigError(
            "scoring.gas_weights: 'importance' needs the goals table with client_importance"
        )
    prepared = prepare_forms(measures, registry)
    chunks: list[dict[str, Any]] = []
    disagreements: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for block in prepared.blocks:
        if block.instrument.score == "gas":
            weights = None
            if settings.gas_weights == "importance":
                weights = _importance_weights(block, prepared, goals)
            parts = _score_gas(block, settings.gas_rho, weights)
        else:
            parts = _score_items(block, settings.total_tolerance)
        for scale, chunk, counts, disagree in parts:
            chunks.append(chunk)
            summary.extend(_summary_rows(block, prepared, scale, counts))
            if disagree is not None:
                disagreements.append(disagree)

    scores = _assemble_scores(chunks, prepared)
    table = _assemble_disagreements(disagreements, prepared)
    summary_frame = summary_table(summary)
    not_scored = int(summary_frame["not_scored"].sum()) if len(summary_frame) else 0
    log.info(
        "scored %d rows from %d measure rows; %d form-scales not scored; %d supplied totals "
        "disagree with their items",
        len(scores),
        len(measures),
        not_scored,
        len(table),
    )
    return ScoringResult(scores, table, summary_frame, settings)


# ---------------------------------------------------------------------------------------------
# Forms: the measures table turned into one item matrix per instrument (shared with reliability)


@dataclass
class FormBlock:
    """All forms of one instrument.

    Forms are sorted by (client, session, rater). For item instruments `matrix` holds the
    responses (forms x items, reverse-keyed items already reversed, NaN = not answered) and
    `supplied` the supplied totals (NaN = none). For GAS the rows are kept as they are
    (`row_form`, `row_item`, `row_value`).
    """

    instrument: Instrument
    client: np.ndarray
    session: np.ndarray
    rater: np.ndarray
    first_row: np.ndarray
    matrix: np.ndarray | None = None
    supplied: np.ndarray | None = None
    row_form: np.ndarray | None = None
    row_item: np.ndarray | None = None
    row_value: np.ndarray | None = None

    @property
    def n_forms(self) -> int:
        return len(self.client)


@dataclass
class PreparedForms:
    """Integer codes for the key columns and one `FormBlock` per instrument (sorted by key)."""

    clients: pd.Index
    raters: pd.Index
    items: pd.Index
    instrument_rank: dict[str, int]
    phase: tuple[np.ndarray | None, np.ndarray] | None
    blocks: list[FormBlock]


def prepare_forms(measures: pd.DataFrame, registry: Registry) -> PreparedForms:
    """Factorise the key columns once and build each instrument's item matrix.

    Raises StudyError for what the validated table must not contain: a missing key column or
    value, an instrument not in the registry, an item the instrument does not have, a supplied
    total for an instrument that takes none, or a duplicated key.
    """
    missing = [column for column in _REQUIRED_COLUMNS if column not in measures.columns]
    if missing:
        raise StudyError(
            f"measures: required column {missing[0]!r} is missing",
            file="measures",
            column=missing[0],
        )
    n_rows = len(measures)
    client, clients = _sorted_codes(measures["client_id"], "client_id")
    if "rater" in measures.columns:
        rater, raters = _sorted_codes(measures["rater"], "rater")
    else:
        rater, raters = np.zeros(n_rows, dtype=np.int64), pd.Index(["client"], dtype=object)
    instrument, instruments = _codes(measures["instrument"], "instrument")
    item, items = _codes(measures["item"], "item")
    items = pd.Index(items.astype(str), dtype=object)
    session = _session_numbers(measures["session_number"])
    value = measures["value"].to_numpy(dtype="float64", na_value=np.nan)
    phase = _phase_lookup(measures["phase"]) if "phase" in measures.columns else None

    unknown = [name for name in instruments if name not in registry]
    if unknown:
        raise StudyError(
            f"measures: instrument {unknown[0]!r} is not in the instrument registry",
            file="measures",
            column="instrument",
        )
    names = sorted(str(name) for name in instruments)
    rank = {name: i for i, name in enumerate(names)}

    s_min = int(session.min()) if n_rows else 0
    span = (int(session.max()) - s_min + 1) if n_rows else 1
    n_raters = max(len(raters), 1)
    keyspace = max(len(clients), 1) * span * n_raters

    blocks = []
    for code, name in enumerate(instruments):
        rows = np.flatnonzero(instrument == code)
        if rows.size == 0:
            continue
        form, f_client, f_session, f_rater = _form_codes(
            client[rows], session[rows], rater[rows], s_min, span, n_raters, keyspace
        )
        first_row = np.full(len(f_client), n_rows, dtype=np.int64)
        np.minimum.at(first_row, form, rows)
        block = FormBlock(
            instrument=registry[name],
            client=f_client,
            session=f_session,
            rater=f_rater,
            first_row=first_row,
        )
        _fill_block(block, form, item[rows], value[rows], items)
        blocks.append(block)
    blocks.sort(key=lambda b: rank[b.instrument.key])
    return PreparedForms(clients, raters, items, rank, phase, blocks)


def _phase_lookup(column: pd.Series) -> tuple[np.ndarray | None, np.ndarray]:
    """(codes, labels) of the phase column; codes None means labels are the rows themselves."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        labels = np.append(np.asarray(column.cat.categories, dtype=object), None)
        return column.cat.codes.to_numpy(), labels  # code -1 picks the appended None
    return None, column.to_numpy(dtype=object)


def _sorted_codes(column: pd.Series, name: str) -> tuple[np.ndarray, pd.Index]:
    """Codes whose order is the sorted order of the values (so sorting codes sorts values)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        order = np.asarray(categories.argsort())
        rank = np.empty(len(categories), dtype=np.int64)
        rank[order] = np.arange(len(categories))
        raw = column.cat.codes.to_numpy()
        if (raw < 0).any():
            raise _missing_key(name)
        return rank[raw], categories[order]
    codes, uniques = pd.factorize(column, sort=True)
    if (codes < 0).any():
        raise _missing_key(name)
    return codes, pd.Index(uniques)


def _codes(column: pd.Series, name: str) -> tuple[np.ndarray, pd.Index]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
    else:
        codes, uniques = pd.factorize(column)
        uniques = pd.Index(uniques)
    if (codes < 0).any():
        raise _missing_key(name)
    return codes, uniques


def _missing_key(name: str) -> StudyError:
    return StudyError(f"measures: {name} is missing in some rows", file="measures", column=name)


def _session_numbers(column: pd.Series) -> np.ndarray:
    if column.isna().any():
        raise _missing_key("session_number")
    return column.to_numpy(dtype=np.int64)


def _form_codes(
    client: np.ndarray,
    session: np.ndarray,
    rater: np.ndarray,
    s_min: int,
    span: int,
    n_raters: int,
    keyspace: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Number the forms 0..m-1 in (client, session, rater) order; return codes and their keys."""
    if keyspace >= 2**62:  # mixed-radix key would overflow: let pandas group instead
        frame = pd.DataFrame({"c": client, "s": session, "r": rater})
        grouped = frame.groupby(["c", "s", "r"], sort=True)
        form = grouped.ngroup().to_numpy()
        first = frame.groupby(form).first()
        return form, first["c"].to_numpy(), first["s"].to_numpy(), first["r"].to_numpy()
    key = (client.astype(np.int64) * span + (session - s_min)) * n_raters + rater
    if keyspace <= 2 * len(key) + (1 << 22):
        # Dense ranking: one pass, already in key order.
        present = np.zeros(keyspace, dtype=bool)
        present[key] = True
        rank = np.cumsum(present, dtype=np.int64) - 1
        form = rank[key]
        unique_keys = np.flatnonzero(present)
    else:
        form, unique_keys = pd.factorize(key, sort=True)
        unique_keys = np.asarray(unique_keys)
    f_rater = unique_keys % n_raters
    rest = unique_keys // n_raters
    f_session = rest % span + s_min
    f_client = rest // span
    return form, f_client, f_session, f_rater


def _fill_block(
    block: FormBlock, form: np.ndarray, item: np.ndarray, value: np.ndarray, items: pd.Index
) -> None:
    inst = block.instrument
    n_forms = block.n_forms
    if inst.score == "gas":
        pair = form.astype(np.int64) * len(items) + item
        if pd.Index(pair).has_duplicates:
            raise _duplicate(inst.key)
        block.row_form, block.row_item, block.row_value = form, item, value
        return

    # Position of each distinct item label in this instrument: 0..k-1, -1 total, -2 unknown.
    lookup = np.full(len(items), -2, dtype=np.int64)
    found = items.get_indexer(list(inst.item_labels))
    lookup[found[found >= 0]] = np.flatnonzero(found >= 0)
    total_at = items.get_indexer(["total"])[0]
    if total_at >= 0:
        lookup[total_at] = -1
    position = lookup[item]
    if (position == -2).any():
        bad = items[np.unique(item[position == -2])[0]]
        raise StudyError(
            f"measures: item {bad!r} is not an item of {inst.key} "
            f"(items are 1..{inst.items} or total)",
            file="measures",
            column="item",
        )

    k = inst.items
    is_item = position >= 0
    flat = form[is_item] * k + position[is_item]
    if flat.size and np.bincount(flat, minlength=n_forms * k).max() > 1:
        raise _duplicate(inst.key)
    matrix = np.full((n_forms, k), np.nan)
    matrix.reshape(-1)[flat] = value[is_item]
    if inst.reverse_items:
        columns = [inst.item_labels.index(label) for label in inst.reverse_items]
        matrix[:, columns] = inst.item_min + inst.item_max - matrix[:, columns]
    block.matrix = matrix

    is_total = position == -1
    supplied = np.full(n_forms, np.nan)
    if is_total.any():
        if inst.total_min is None:
            raise StudyError(
                f"measures: {inst.key} takes no supplied total", file="measures", column="item"
            )
        total_form = form[is_total]
        if np.bincount(total_form, minlength=n_forms).max() > 1:
            raise _duplicate(inst.key)
        supplied[total_form] = value[is_total]
    block.supplied = supplied


def _duplicate(key: str) -> StudyError:
    return StudyError(
        f"measures: an item of {key} appears twice for one client, session and rater "
        "(client_id, session_number, instrument, rater, item must be unique)",
        file="measures",
        column="item",
    )


# ---------------------------------------------------------------------------------------------
# Scoring one block

_Part = tuple[str, dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]


def scale_columns(inst: Instrument) -> Iterator[tuple[str, list[int], int]]:
    """(scale, item columns, most missing items allowed) for the total and each subscale."""
    yield "total", list(range(inst.items)), inst.prorate_max_missing
    for name, labels in inst.subscales.items():
        columns = [inst.item_labels.index(label) for label in labels]
        yield name, columns, inst.subscale_prorate_max_missing


def _score_items(block: FormBlock, tolerance: float) -> list[_Part]:
    inst = block.instrument
    answered = ~np.isnan(block.matrix)
    filled = np.where(answered, block.matrix, 0.0)
    parts = []
    for scale, columns, max_missing in scale_columns(inst):
        whole = len(columns) == inst.items
        n_answered = (answered if whole else answered[:, columns]).sum(axis=1)
        total = (filled if whole else filled[:, columns]).sum(axis=1)
        k = len(columns)
        scored = (n_answered > 0) & (k - n_answered <= max_missing)
        divisor = np.maximum(n_answered, 1)
        if inst.score == "sum":
            # Each missing item replaced by the mean of the answered ones: k * sum / answered.
            score = np.where(n_answered == k, total, total * k / divisor)
        else:
            score = total / divisor
        # Sums of one-decimal ratings carry binary noise (8.6 + 9.7 + 9.9 + 7.8 gives
        # 35.99999999999999), enough to flip an SRS `< 36` cut-off: round it away.
        score = np.round(score, 9)
        score[~scored] = np.nan
        prorated = scored & (n_answered < k)

        counts = {
            "scored": scored,
            "from_items": scored,
            "prorated": prorated,
            "supplied_total": np.zeros(block.n_forms, dtype=bool),
        }
        disagree = None
        use_supplied = np.zeros(block.n_forms, dtype=bool)
        if scale == "total":
            has_supplied = ~np.isnan(block.supplied)
            use_supplied = has_supplied & ~scored
            both = has_supplied & scored
            differs = both & (np.abs(block.supplied - score) > tolerance)
            where = np.flatnonzero(differs)
            disagree = {
                "form": where,
                "block": block,
                "supplied_total": block.supplied[where],
                "item_total": score[where],
                "items_answered": n_answered[where],
                "prorated": prorated[where],
            }
            counts["scored"] = scored | use_supplied
            counts["supplied_total"] = use_supplied
            score = np.where(use_supplied, block.supplied, score)

        keep = np.flatnonzero(scored | use_supplied)
        chunk = {
            "block": block,
            "form": keep,
            "scale": scale,
            "score": score[keep],
            "items_answered": n_answered[keep],
            "answered_known": ~use_supplied[keep],
            "prorated": prorated[keep],
            "items_expected": np.full(keep.size, k, dtype=np.int64),
            "expected_known": np.ones(keep.size, dtype=bool),
            "source": use_supplied[keep].astype(np.int8),
        }
        parts.append((scale, chunk, counts, disagree))
    return parts


def _importance_weights(
    block: FormBlock, prepared: PreparedForms, goals: pd.DataFrame
) -> np.ndarray:
    """The client's importance rating of each GAS row's goal (NaN where there is none)."""
    for column in ("client_id", "goal_id", "client_importance"):
        if column not in goals.columns:
            raise StudyError(f"goals: column {column!r} is missing", file="goals", column=column)
    n_items = len(prepared.items)
    g_client = prepared.clients.get_indexer(goals["client_id"])
    g_item = prepared.items.get_indexer(goals["goal_id"].astype(str))
    importance = pd.to_numeric(goals["client_importance"], errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    if (importance <= 0).any():
        raise StudyError(
            "goals: client_importance must be positive to weight GAS goals",
            file="goals",
            column="client_importance",
        )
    known = (g_client >= 0) & (g_item >= 0) & ~np.isnan(importance)
    goal_key = pd.Index(g_client[known].astype(np.int64) * n_items + g_item[known])
    if goal_key.has_duplicates:
        raise StudyError(
            "goals: goal_id must be unique within a client", file="goals", column="goal_id"
        )
    row_key = block.client[block.row_form].astype(np.int64) * n_items + block.row_item
    at = goal_key.get_indexer(row_key)
    return np.where(at >= 0, importance[known][np.maximum(at, 0)], np.nan)


def _score_gas(block: FormBlock, rho: float, weights: np.ndarray | None) -> list[_Part]:
    n_forms = block.n_forms
    rated = ~np.isnan(block.row_value)
    form = block.row_form[rated]
    x = block.row_value[rated]
    w = np.ones_like(x) if weights is None else weights[rated]
    unweighted = np.isnan(w)
    missing_weight = np.zeros(n_forms, dtype=bool)
    missing_weight[form[unweighted]] = True
    w = np.where(unweighted, 0.0, w)

    n_rated = np.bincount(form, minlength=n_forms)
    sum_w = np.bincount(form, weights=w, minlength=n_forms)
    sum_w2 = np.bincount(form, weights=w * w, minlength=n_forms)
    sum_wx = np.bincount(form, weights=w * x, minlength=n_forms)
    scored = (n_rated > 0) & ~missing_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        t_score = 50.0 + 10.0 * sum_wx / np.sqrt((1 - rho) * sum_w2 + rho * sum_w**2)

    keep = np.flatnonzero(scored)
    chunk = {
        "block": block,
        "form": keep,
        "scale": "t_score",
        "score": t_score[keep],
        "items_answered": n_rated[keep],
        "answered_known": np.ones(keep.size, dtype=bool),
        "prorated": np.zeros(keep.size, dtype=bool),
        "items_expected": np.zeros(keep.size, dtype=np.int64),
        "expected_known": np.zeros(keep.size, dtype=bool),
        "source": np.zeros(keep.size, dtype=np.int8),
    }
    counts = {
        "scored": scored,
        "from_items": scored,
        "prorated": np.zeros(n_forms, dtype=bool),
        "supplied_total": np.zeros(n_forms, dtype=bool),
    }
    if missing_weight.any():
        log.info(
            "gas: %d sessions not scored because a rated goal has no client_importance",
            int(missing_weight.sum()),
        )
    return [("t_score", chunk, counts, None)]


# ---------------------------------------------------------------------------------------------
# Output tables


def _assemble_scores(chunks: list[dict[str, Any]], prepared: PreparedForms) -> pd.DataFrame:
    if not chunks:
        return _empty_scores()
    scales = sorted({chunk["scale"] for chunk in chunks})
    scale_rank = {name: i for i, name in enumerate(scales)}
    names = ("client", "session", "instrument", "rater", "scale", "score", "answered")
    names += ("answered_known", "prorated", "expected", "expected_known", "source", "row")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for chunk in chunks:
        block, form = chunk["block"], chunk["form"]
        size = form.size
        parts["client"].append(block.client[form])
        parts["session"].append(block.session[form])
        parts["instrument"].append(
            np.full(size, prepared.instrument_rank[block.instrument.key], dtype=np.int64)
        )
        parts["rater"].append(block.rater[form])
        parts["scale"].append(np.full(size, scale_rank[chunk["scale"]], dtype=np.int64))
        parts["score"].append(chunk["score"])
        parts["answered"].append(chunk["items_answered"])
        parts["answered_known"].append(chunk["answered_known"])
        parts["prorated"].append(chunk["prorated"])
        parts["expected"].append(chunk["items_expected"])
        parts["expected_known"].append(chunk["expected_known"])
        parts["source"].append(chunk["source"])
        parts["row"].append(block.first_row[form])
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    order = _key_order(arrays, len(prepared.instrument_rank), len(prepared.raters), len(scales))
    arrays = {name: values[order] for name, values in arrays.items()}

    if prepared.phase is not None:
        codes, labels = prepared.phase
        phase = labels[arrays["row"]] if codes is None else labels[codes[arrays["row"]]]
    else:
        phase = np.array(["treatment", "intake"], dtype=object)[
            (arrays["session"] == 0).astype(np.int64)
        ]
    instrument_names = np.array(list(prepared.instrument_rank), dtype=object)
    columns = {
        "client_id": np.asarray(prepared.clients, dtype=object)[arrays["client"]],
        "session_number": arrays["session"].astype(np.int64),
        "instrument": instrument_names[arrays["instrument"]],
        "rater": np.asarray(prepared.raters, dtype=object)[arrays["rater"]],
        "scale": np.array(scales, dtype=object)[arrays["scale"]],
        "score": arrays["score"].astype("float64"),
        "items_answered": pd.arrays.IntegerArray(
            arrays["answered"].astype(np.int64), ~arrays["answered_known"]
        ),
        "prorated": arrays["prorated"].astype(bool),
        "items_expected": pd.arrays.IntegerArray(
            arrays["expected"].astype(np.int64), ~arrays["expected_known"]
        ),
        "source": np.array(SOURCES, dtype=object)[arrays["source"]],
        "phase": phase,
    }
    # copy=False keeps one block per column: consolidating millions of object cells costs seconds.
    return pd.DataFrame(columns, copy=False)


def _key_order(arrays: dict[str, np.ndarray], n_instruments: int, n_raters: int, n_scales: int):
    """Row order by (client, session, instrument, rater, scale): all codes sort as their values."""
    session = arrays["session"] - (arrays["session"].min() if arrays["session"].size else 0)
    span = int(session.max()) + 1 if session.size else 1
    n_clients = int(arrays["client"].max()) + 1 if session.size else 1
    if n_clients * span * n_instruments * n_raters * n_scales < 2**62:
        key = arrays["client"].astype(np.int64) * span + session
        key = (key * n_instruments + arrays["instrument"]) * n_raters + arrays["rater"]
        return np.argsort(key * n_scales + arrays["scale"])
    return np.lexsort(
        (arrays["scale"], arrays["rater"], arrays["instrument"], session, arrays["client"])
    )


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.Series([], dtype=object),
            "session_number": pd.Series([], dtype=np.int64),
            "instrument": pd.Series([], dtype=object),
            "rater": pd.Series([], dtype=object),
            "scale": pd.Series([], dtype=object),
            "score": pd.Series([], dtype="float64"),
            "items_answered": pd.Series([], dtype="Int64"),
            "prorated": pd.Series([], dtype=bool),
            "items_expected": pd.Series([], dtype="Int64"),
            "source": pd.Series([], dtype=object),
            "phase": pd.Series([], dtype=object),
        }
    )


def _assemble_disagreements(parts: list[dict[str, Any]], prepared: PreparedForms) -> pd.DataFrame:
    frames = []
    for part in parts:
        block, form = part["block"], part["form"]
        if form.size == 0:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "client_id": np.asarray(prepared.clients, dtype=object)[block.client[form]],
                    "session_number": block.session[form].astype(np.int64),
                    "instrument": block.instrument.key,
                    "rater": np.asarray(prepared.raters, dtype=object)[block.rater[form]],
                    "supplied_total": part["supplied_total"],
                    "item_total": part["item_total"],
                    "items_answered": part["items_answered"].astype(np.int64),
                    "prorated": part["prorated"].astype(bool),
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                "client_id": pd.Series([], dtype=object),
                "session_number": pd.Series([], dtype=np.int64),
                "instrument": pd.Series([], dtype=object),
                "rater": pd.Series([], dtype=object),
                "supplied_total": pd.Series([], dtype="float64"),
                "item_total": pd.Series([], dtype="float64"),
                "items_answered": pd.Series([], dtype=np.int64),
                "prorated": pd.Series([], dtype=bool),
            }
        )
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(list(KEY_COLUMNS), kind="stable", ignore_index=True)


def _summary_rows(
    block: FormBlock, prepared: PreparedForms, scale: str, counts: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    n_raters = len(prepared.raters)
    forms = np.bincount(block.rater, minlength=n_raters)
    tallies = {
        name: np.bincount(block.rater, weights=flags, minlength=n_raters).astype(np.int64)
        for name, flags in counts.items()
    }
    rows = []
    for code in np.flatnonzero(forms):
        row = {
            "instrument": block.instrument.key,
            "rater": prepared.raters[code],
            "scale": scale,
            "forms": int(forms[code]),
        }
        row.update({name: int(tally[code]) for name, tally in tallies.items()})
        row["not_scored"] = row["forms"] - row["scored"]
        rows.append(row)
    return rows


def summary_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The scoring summary (SUMMARY_COLUMNS) from its rows, sorted by instrument, rater, scale."""
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if table.empty:
        return table.astype({name: np.int64 for name in SUMMARY_COLUMNS[3:]})
    return table.sort_values(["instrument", "rater", "scale"], ignore_index=True)
