"""The study as validation sees it: its declaration, the tables read, and the result.

`StudyInput` is one study's entry in the config (folder, format, missing codes, decimal mark,
acknowledged columns, vocabularies); `ValidationResult` holds the accepted tables, the
quarantine, the guard's report and the summary that `write_validation` writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.identifiers import (
    GuardReport,
)

ID_REGEX = contract.ID_PATTERN


@dataclass(frozen=True)
class StudyInput:
    """Where a study's tables are and the study's own settings from the config."""

    name: str
    path: Path
    missing_codes: tuple = ()
    extra_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    acknowledged_columns: tuple[str, ...] = ()
    quasi_identifier_k: int = 5
    format: str = "contract"
    entry: Mapping[str, Any] = field(default_factory=dict)
    categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    decimal: str = "."


@dataclass
class ValidationResult:
    """Accepted rows per table, the quarantine, and the counts that reconcile them."""

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    summary: dict
    guard: GuardReport


@dataclass
class Inputs:
    """A study's tables as read, and where each row came from (file, row, column)."""

    raw: dict[str, pd.DataFrame]
    names: dict[str, str]
    source: dict[str, np.ndarray]
    row_number: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    issues: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    replaced: dict[str, dict[str, int]] = field(default_factory=dict)
    ingested: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def source_columns(self, table: str, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The source column behind each quarantined (row, contract column)."""
        if table in self.ingested:
            return self.ingested[table].origin(rows, columns)
        return np.asarray(columns, dtype=object)


@dataclass
class PartResult:
    """The validation of one partition of clients (or of a whole study, as one partition).

    `tables` are the accepted rows, `row_numbers` each accepted row's data row in its source
    file, `quarantine` the refused rows, and `tally` (JSON-ready) the counts and labels the
    study's summary and notes are made of: counts that add up over partitions, labels that
    are the same in each.
    """

    tables: dict[str, pd.DataFrame]
    row_numbers: dict[str, np.ndarray]
    quarantine: pd.DataFrame
    tally: dict[str, Any]
