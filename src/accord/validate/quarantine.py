"""Refused rows, the cascade to their children, and the reconciled counts.

A refused client takes its sessions, measures and goals with it; a refused session its
measures. Every refused row is kept in ``quarantine.csv`` with its reasons, and the summary
reconciles rows read = rows accepted + rows quarantined for every table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.identifiers import (
    GuardReport,
    looks_identifying,
    withhold_text,
)
from accord.validate.checks import (
    ACCEPTED,
    QUARANTINED,
    UNKNOWN,
    collect_issues,
    issue_frame,
    parent_issues,
    recode,
    session_key,
)
from accord.validate.tables import ID_REGEX, Inputs, StudyInput, ValidationResult

QUARANTINE_COLUMNS = [
    "table",
    "row_number",
    "client_id",
    "rule",
    "column",
    "source",
    "source_column",
]


def cascade(typed: dict[str, pd.DataFrame], bad: dict[str, pd.DataFrame]) -> None:
    """Quarantine children of quarantined or unknown parents, naming which it is."""
    clients = typed["clients"]
    ids = clients["client_id"].cat.categories
    state = np.full(len(ids) + 1, UNKNOWN, dtype=np.int8)
    codes = clients["client_id"].cat.codes.to_numpy()
    state[codes[codes >= 0]] = QUARANTINED
    good = _accepted_mask(clients, bad["clients"]) & (codes >= 0)
    # A client ID is accepted only if no row carrying it was quarantined.
    accepted_ids = np.setdiff1d(codes[good], codes[(~good) & (codes >= 0)])
    state[accepted_ids] = ACCEPTED
    for table in ("sessions", "measures", "goals"):
        if table in typed:
            child = typed[table]["client_id"]
            issues = parent_issues(recode(child, ids), child.notna().to_numpy(), state)
            bad[table] = collect_issues([bad[table], issues])

    sessions = typed["sessions"]
    session_client = recode(sessions["client_id"], ids)
    session_keys = session_key(session_client, sessions["session_number"])
    good_sessions = _accepted_mask(sessions, bad["sessions"])
    measures = typed["measures"]
    measure_key = session_key(recode(measures["client_id"], ids), measures["session_number"])
    treated = (measures["session_number"] > 0).fillna(False).to_numpy(dtype=bool)
    treated &= measure_key >= 0
    known = np.isin(measure_key, session_keys[session_keys >= 0])
    # A session key counts as accepted only if none of its rows was quarantined.
    accepted_keys = np.setdiff1d(session_keys[good_sessions], session_keys[~good_sessions])
    accepted = np.isin(measure_key, accepted_keys)
    bad["measures"] = collect_issues(
        [
            bad["measures"],
            issue_frame(
                np.flatnonzero(treated & ~known), "session_not_in_sessions", "session_number"
            ),
            issue_frame(
                np.flatnonzero(treated & known & ~accepted),
                "parent_quarantined(sessions)",
                "session_number",
            ),
        ]
    )


def _accepted_mask(frame: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    keep[rows["row"].to_numpy()] = False
    return keep


def quarantine_rows(
    table: str, frame: pd.DataFrame, rows: pd.DataFrame, inputs: Inputs
) -> pd.DataFrame:
    if len(rows) == 0:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    index = rows["row"].to_numpy()
    client = frame["client_id"].astype(object).to_numpy()[index]
    # Only a well-formed pseudonym is repeated in the quarantine; anything else stays blank.
    well_formed = pd.Series(client, dtype=object).astype(str).str.fullmatch(ID_REGEX)
    client = np.where(well_formed.to_numpy() & pd.notna(client), client, "")
    return pd.DataFrame(
        {
            "table": table,
            "row_number": inputs.row_number[table][index],
            "client_id": client,
            "rule": rows["rule"].to_numpy(),
            "column": rows["column"].to_numpy(),
            "source": inputs.source[table][index],
            "source_column": [
                "(header withheld)" if looks_identifying(str(c)) else c
                for c in inputs.source_columns(table, index, rows["column"].to_numpy(dtype=object))
            ],
        }
    )


def validation_summary(
    study: StudyInput,
    counts: Mapping[str, Mapping[str, int]],
    quarantine: pd.DataFrame,
    replaced: Mapping[str, Mapping[str, int]],
    notes: Sequence[str],
    checksums: Mapping[str, str],
    guard: GuardReport,
) -> dict:
    """The summary's counts per table (`counts`: rows_in and rows_accepted), notes, input
    checksums and the guard's report."""
    tables = {}
    for table, count in counts.items():
        in_table = quarantine[quarantine["table"] == table]
        # A source row can yield several rows (a wide questionnaire row), so count rows here.
        rows_quarantined = count["rows_in"] - count["rows_accepted"]
        reasons = in_table.groupby(["rule", "column"]).size().sort_index()
        tables[table] = {
            "rows_in": count["rows_in"],
            "rows_accepted": count["rows_accepted"],
            "rows_quarantined": rows_quarantined,
            "missing_codes_replaced": int(sum(replaced[table].values())),
            "missing_codes_replaced_by_column": dict(sorted(replaced[table].items())),
            "quarantine_reasons": [
                {"rule": rule, "column": column, "rows": int(n)}
                for (rule, column), n in reasons.items()
            ],
        }
    return {
        "study": study.name,
        "contract_version": contract.CONTRACT_VERSION,
        "missing_codes": [str(code) for code in study.missing_codes],
        "tables": tables,
        "notes": [withhold_text(note) for note in notes],
        "input_checksums_sha256": dict(sorted(checksums.items())),
        "identifier_guard": guard.to_dict(),
    }


def write_validation(result: ValidationResult, paths: Mapping[str, str | Path]) -> None:
    """Write the validated tables, the quarantine and the summary to `paths` (keys as outputs)."""
    from accord.core.io import write_csv, write_json, write_parquet

    for table in contract.TABLES:
        frame = result.tables.get(table)
        if frame is None:
            frame = empty_table(table)
        write_parquet(paths[table], frame, metadata={"contract_version": contract.CONTRACT_VERSION})
    write_csv(paths["quarantine"], result.quarantine)
    write_json(paths["summary"], result.summary)


def empty_table(table: str) -> pd.DataFrame:
    """A table with the contract's required columns and no rows (an absent optional table)."""
    dtypes = {
        "id": "category",
        "string": "category",
        "integer": "Int64",
        "number": "Float64",
        "boolean": "boolean",
    }
    specs = contract.columns(table)
    return pd.DataFrame(
        {name: pd.Series(dtype=dtypes[spec.kind]) for name, spec in specs.items() if spec.required}
    )
