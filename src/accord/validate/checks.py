"""The contract's rules on rows, across rows and across tables, as quarantine issues.

Per-column rules come from the pandera models (`accord.core.contract`), collected lazily so
every failure is reported; rules that need several rows or tables (unique keys, ``day``
non-decreasing within a client, one revision chain per goal, item ranges and steps of each
instrument, GAS ratings of known goals) follow. Each issue names the table, row, column and
rule, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

from accord.core import contract
from accord.core.errors import StudyError
from accord.core.instruments import Registry

# A client's state in the cascade: not in clients, quarantined, accepted.
UNKNOWN, QUARANTINED, ACCEPTED = 0, 1, 2


def schema_issues(table: str, frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Per-column rules through pandera, collected lazily; keys are checked in `key_issues`."""
    schema = contract.MODELS[table].to_schema()
    schema = schema.update_columns({name: {"unique": False} for name in schema.columns})
    present = {name: col for name, col in schema.columns.items() if name in frame}
    schema = pa.DataFrameSchema(present, name=schema.name, strict=False)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        row_level = cases["index"].notna()
        if not row_level.all():
            unexpected = cases.loc[~row_level, ["column", "check"]].astype(str)
            first = unexpected.iloc[0]
            raise StudyError(
                f"{file}: column '{first['column']}' breaks rule {first['check']} as a whole.",
                file=file,
                column=first["column"],
            ) from None
        rows = cases["index"].astype(np.int64).to_numpy()
        return pd.DataFrame(
            {"row": rows, "rule": cases["check"].astype(str).to_numpy(), "column": cases["column"]}
        )
    return issue_frame(np.array([], dtype=np.int64), "", "")


def empty_optional_cells(
    table: str, frame: pd.DataFrame, cell_issues: list[pd.DataFrame]
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """A bad cell of an optional column is emptied (and counted), not its row quarantined.

    An ``NA`` in homework_completion says nothing about whether the session happened, so
    the session and its measures stay; the cell becomes missing. Returns the issues that
    still quarantine rows, and the emptied cells (row, rule, column).
    """
    keys = set(contract.KEYS[table])
    optional = {
        name
        for name, spec in contract.columns(table).items()
        if not spec.required and spec.nullable and name not in keys and name in frame
    }
    parts = [part for part in cell_issues if len(part)]
    if not parts or not optional:
        return parts, issue_frame(np.array([], dtype=np.int64), "", "")
    found = pd.concat(parts, ignore_index=True)
    soft = found["column"].isin(optional).to_numpy()
    cells = found.loc[soft].reset_index(drop=True)
    for column, rows in cells.groupby("column"):
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows["row"].to_numpy()] = True
        frame[column] = frame[column].mask(mask)
    return [found.loc[~soft].reset_index(drop=True)], cells


def emptied_notes(
    names: Mapping[str, str], emptied: Mapping[str, Sequence[Mapping[str, object]]]
) -> list[str]:
    """A note per optional column with emptied cells, from each table's `emptied_summary`."""
    notes = []
    for table, entries in emptied.items():
        for entry in entries:
            notes.append(
                f"{names[table]}: {entry['cells']} cell(s) of the optional column "
                f"{entry['column']} broke {entry['rule']} and were emptied; their rows stay"
            )
    return notes


def emptied_summary(cells: pd.DataFrame) -> list[dict[str, object]]:
    if cells.empty:
        return []
    counts = cells.drop_duplicates(["row", "column"]).groupby(["rule", "column"]).size()
    return [
        {"rule": rule, "column": column, "cells": int(n)}
        for (rule, column), n in counts.sort_index().items()
    ]


def _key_codes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One int64 per row identifying its key, from each key column's integer codes."""
    key = np.zeros(len(frame), dtype=np.int64)
    for name in columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes, size = column.cat.codes.to_numpy().astype(np.int64), len(column.cat.categories)
        else:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            low = np.nanmin(values) if np.isfinite(values).any() else 0
            codes = np.where(np.isfinite(values), values - low, -1).astype(np.int64)
            size = int(codes.max()) + 1 if len(codes) else 0
        key = key * (size + 1) + (codes + 1)
    return key


def _duplicated(key: np.ndarray) -> np.ndarray:
    """Every row whose key occurs more than once (sort-based: fast on tens of millions)."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    flagged = np.zeros(len(key), dtype=bool)
    flagged[order[1:][same]] = True
    flagged[order[:-1][same]] = True
    return flagged


def key_issues(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = contract.KEYS[table]
    complete = frame[list(columns)].notna().all(axis=1).to_numpy()
    duplicated = _duplicated(_key_codes(frame, columns)) & complete
    rule = f"duplicate_key({', '.join(columns)})"
    return issue_frame(np.flatnonzero(duplicated), rule, columns[-1])


def day_order_issues(sessions: pd.DataFrame) -> pd.DataFrame:
    """`day` must not decrease as session_number increases within a client."""
    if "day" not in sessions:
        return issue_frame(np.array([], dtype=np.int64), "", "")
    ordered = sessions[["client_id", "session_number", "day"]].dropna()
    ordered = ordered.sort_values(["client_id", "session_number"], kind="stable")
    running_max = ordered.groupby("client_id", observed=True)["day"].cummax()
    previous = running_max.groupby(ordered["client_id"], observed=True).shift(1)
    decreasing = (ordered["day"] < previous).fillna(False).to_numpy(dtype=bool)
    return issue_frame(ordered.index.to_numpy()[decreasing], "day_decreasing", "day")


def revision_issues(goals: pd.DataFrame) -> pd.DataFrame:
    if "revised_session" not in goals:
        return issue_frame(np.array([], dtype=np.int64), "", "")
    before = (goals["revised_session"] < goals["set_session"]).fillna(False).to_numpy(dtype=bool)
    return issue_frame(np.flatnonzero(before), "revised_before_set", "revised_session")


def instrument_issues(measures: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    """Instrument known, item a label of that instrument, value within the item/total range."""
    instrument = measures["instrument"].astype("category")
    item = measures["item"].astype("category")
    inst_labels = list(instrument.cat.categories)
    item_labels = list(item.cat.categories)
    known = np.array([label in registry for label in inst_labels] + [False])
    allowed = np.zeros((len(inst_labels) + 1, len(item_labels) + 1), dtype=bool)
    low = np.full((len(inst_labels) + 1, len(item_labels) + 1), np.nan)
    high = np.full_like(low, np.nan)
    for i, key in enumerate(inst_labels):
        if key not in registry:
            continue
        spec = registry[key]
        labels = set(spec.item_labels)
        for j, label in enumerate(item_labels):
            if label == "total":
                if spec.total_min is not None and spec.total_max is not None:
                    allowed[i, j] = True
                    low[i, j], high[i, j] = spec.total_min, spec.total_max
            elif label in labels or not spec.item_labels:
                allowed[i, j] = True
                low[i, j], high[i, j] = spec.item_min, spec.item_max
    inst_codes = instrument.cat.codes.to_numpy().astype(np.int64)
    item_codes = item.cat.codes.to_numpy().astype(np.int64)
    inst_codes[inst_codes < 0] = len(inst_labels)
    item_codes[item_codes < 0] = len(item_labels)
    present = measures["instrument"].notna().to_numpy() & measures["item"].notna().to_numpy()
    unknown_instrument = present & ~known[inst_codes]
    unknown_item = present & ~unknown_instrument & ~allowed[inst_codes, item_codes]
    value = measures["value"].to_numpy(dtype=float, na_value=np.nan)
    lo, hi = low[inst_codes, item_codes], high[inst_codes, item_codes]
    checkable = present & ~unknown_instrument & ~unknown_item & np.isfinite(value)
    out_of_range = checkable & ((value < lo) | (value > hi))
    parts = [
        issue_frame(np.flatnonzero(unknown_instrument), "unknown_instrument", "instrument"),
        issue_frame(np.flatnonzero(unknown_item), "unknown_item_for_instrument", "item"),
    ]
    for i, key in enumerate(inst_labels):
        rows = np.flatnonzero(out_of_range & (inst_codes == i))
        if len(rows) == 0:
            continue
        spec = registry[key]
        is_total = np.array([label == "total" for label in item_labels] + [False])[item_codes[rows]]
        for mask, (a, b) in (
            (~is_total, (spec.item_min, spec.item_max)),
            (is_total, (spec.total_min, spec.total_max)),
        ):
            if mask.any():
                parts.append(issue_frame(rows[mask], f"in_range({a:g}, {b:g})", "value"))
    parts.append(_step_issues(registry, inst_labels, inst_codes, item_labels, item_codes, value))
    return pd.concat(parts, ignore_index=True)


def _step_issues(
    registry: Registry,
    inst_labels: Sequence[str],
    inst_codes: np.ndarray,
    item_labels: Sequence[str],
    item_codes: np.ndarray,
    value: np.ndarray,
) -> pd.DataFrame:
    """Item responses off the instrument's answer steps (a GAD-7 item of 1.5)."""
    is_item = np.array([label != "total" for label in item_labels] + [False])[item_codes]
    parts = [issue_frame(np.array([], dtype=np.int64), "", "")]
    for i, key in enumerate(inst_labels):
        step = registry[key].item_step if key in registry else None
        if not step:
            continue
        rows = np.flatnonzero((inst_codes == i) & is_item & np.isfinite(value))
        offset = (value[rows] - registry[key].item_min) / step
        off = np.abs(offset - np.round(offset)) > 1e-9
        parts.append(issue_frame(rows[off], f"item_step({step:g})", "value"))
    return pd.concat(parts, ignore_index=True)


def gas_goal_issues(measures: pd.DataFrame, goals: pd.DataFrame) -> pd.DataFrame:
    """A GAS rating's item names a goal; that goal must exist for the client."""
    is_gas = (measures["instrument"] == "gas").to_numpy(dtype=bool)
    if not is_gas.any():
        return issue_frame(np.array([], dtype=np.int64), "", "")
    rated = measures.loc[is_gas, ["client_id", "item"]].astype(str)
    known = pd.MultiIndex.from_frame(goals[["client_id", "goal_id"]].astype(str))
    found = pd.MultiIndex.from_frame(rated).isin(known)
    return issue_frame(rated.index.to_numpy()[~found], "gas_goal_not_in_goals", "item")


def issue_frame(rows: np.ndarray, rule: str, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"row": np.asarray(rows, dtype=np.int64), "rule": rule, "column": column},
        columns=["row", "rule", "column"],
    )


def collect_issues(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    if not parts:
        return issue_frame(np.array([], dtype=np.int64), "", "")
    out = pd.concat(parts, ignore_index=True)
    return out.drop_duplicates(ignore_index=True)


def recode(column: pd.Series, categories: pd.Index) -> np.ndarray:
    """Codes of `column` in another table's categories (-1 where the label is not there)."""
    return pd.Categorical(column, categories=categories).codes.astype(np.int64)


def session_key(client_codes: np.ndarray, session_number: pd.Series) -> np.ndarray:
    """One int64 per (client, session): client * (MAX + 1) + session, so no two pairs share one.

    Session numbers beyond the contract's maximum break its rule and get no key (-1).
    """
    number = session_number.to_numpy(dtype=float, na_value=np.nan)
    top = contract.MAX_SESSION_NUMBER
    ok = (client_codes >= 0) & np.isfinite(number) & (number >= 0) & (number <= top)
    session = np.where(ok, number, 0).astype(np.int64)
    return np.where(ok, client_codes.astype(np.int64) * (top + 1) + session, -1)


def parent_issues(
    child_codes: np.ndarray, has_value: np.ndarray, state: np.ndarray
) -> pd.DataFrame:
    """Rows whose client_id is not among the clients, or belongs to a quarantined client."""
    # Code -1 (a label absent from clients) indexes the trailing UNKNOWN slot of `state`.
    child_state = state[np.where(child_codes >= 0, child_codes, len(state) - 1)]
    return pd.concat(
        [
            issue_frame(
                np.flatnonzero((child_state == UNKNOWN) & has_value), "not_in_clients", "client_id"
            ),
            issue_frame(
                np.flatnonzero(child_state == QUARANTINED),
                "parent_quarantined(clients)",
                "client_id",
            ),
        ],
        ignore_index=True,
    )
