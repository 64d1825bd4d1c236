"""Category labels: normalised, and published only from a known vocabulary.

A category column reaches Table 1 and every by-group table, so its labels are published. Only
labels of a vocabulary are kept:

- columns with a closed contract vocabulary (``status``, ``modality``, ``end_reason``...):
  a label that differs from one of the contract's values only by case, spacing, ``-``/``_``
  or invisible characters (an exported ``Attended``, a right-to-left mark before ``female``)
  is read as that value, when exactly one value matches; anything else stays as it is and
  breaks the contract's ``isin`` rule;
- open category columns (``gender``, ``age_band``, ``arm`` and the study's extra text columns):
  labels of the contract's vocabulary (gender: female, male, non_binary, other, unknown; age
  bands by shape: ``18-24``, ``65+``) or of the study's declared vocabulary (``categories:``
  in its config) are kept, matched the same way; every other label becomes ``other``. Where a
  column has neither vocabulary (an undeclared ``arm``), short plain labels (letters of any
  script, digits, spaces and ``_-.+/()&'``, at most 40 characters, once invisible characters
  are removed) are kept and anything else (a 100,000-character string, an emoji) becomes
  ``other``.

Only counts are recorded (how many distinct labels and rows were changed), never the labels.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.identifiers import looks_identifying

__all__ = ["OTHER", "CategoryChange", "label_key", "normalise_categories"]

OTHER = "other"
# Open category columns of the contract and their own vocabulary (None: no fixed list).
OPEN_COLUMNS: Mapping[str, Mapping[str, tuple[str, ...] | None]] = {
    "clients": {"gender": contract.GENDERS, "age_band": None, "arm": None},
}
_AGE_BAND = re.compile(r"(?:\d{1,2}\s*[-–]\s*\d{1,2}|\d{1,2}\s*\+|<\s*\d{1,2})")
_PLAIN_LABEL = re.compile(r"\w[\w .+/()&<>'-]{0,39}")


def _visible(label: object) -> str:
    """NFKC form without invisible or control characters, spaces collapsed and trimmed."""
    text = unicodedata.normalize("NFKC", str(label))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc"))
    return re.sub(r"\s+", " ", text).strip()


def label_key(label: object) -> str:
    """A label reduced for comparison: visible characters only, case- and space-folded."""
    return re.sub(r"[\s_-]+", "", _visible(label).casefold())


@dataclass(frozen=True)
class CategoryChange:
    """Labels of one column read as another label: counts only, never the labels."""

    table: str
    column: str
    kind: str  # "normalised" (read as a vocabulary value) | "other" (outside the vocabulary)
    labels: int
    rows: int

    def describe(self) -> str:
        if self.kind == "normalised":
            return (
                f"{self.table}.{self.column}: {self.labels} label(s) in {self.rows} row(s) "
                "differ from the vocabulary only by case, spaces, '-' or '_', or invisible "
                "characters, and were read as its values"
            )
        return (
            f"{self.table}.{self.column}: {self.labels} distinct value(s) in {self.rows} row(s) "
            f"are outside the vocabulary and are shown as '{OTHER}'; declare the study's "
            f"labels under categories: {{{self.column}: [...]}} in its config if they belong"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "column": self.column,
            "kind": self.kind,
            "labels": self.labels,
            "rows": self.rows,
            "message": self.describe(),
        }


@functools.cache
def _closed_vocabularies(table: str) -> dict[str, tuple[str, ...]]:
    checks = contract.MODELS[table].to_schema().columns
    out = {}
    for name, column in checks.items():
        for check in column.checks:
            allowed = check.statistics.get("allowed_values")
            if check.name == "isin" and allowed is not None:
                out[name] = tuple(str(v) for v in allowed)
    return out


def _matcher(vocabulary: Collection[str]) -> dict[str, str | None]:
    """key -> vocabulary value; None for a key that two values share (ambiguous)."""
    found: dict[str, str | None] = {}
    for value in vocabulary:
        key = label_key(value)
        found[key] = value if found.get(key, value) == value else None
    return found


def _relabel(column: pd.Series, new: list[object]) -> pd.Series:
    """The categorical column with each category replaced by ``new`` (None: missing)."""
    codes = column.cat.codes.to_numpy()
    labels = pd.Index([v for v in dict.fromkeys(new) if v is not None], dtype=object)
    lookup = np.array([labels.get_loc(v) if v is not None else -1 for v in new] + [-1])
    recoded = lookup[np.where(codes >= 0, codes, len(new))]
    return pd.Series(
        pd.Categorical.from_codes(recoded, categories=labels, validate=False), index=column.index
    )


def _rows(column: pd.Series, changed: np.ndarray) -> int:
    codes = column.cat.codes.to_numpy()
    present = codes >= 0
    return int(changed[codes[present]].sum())


def _open_vocabulary(
    table: str, name: str, declared: Mapping[str, Collection[str]]
) -> tuple[str, ...] | None:
    """The contract's and the study's labels of an open column; None when neither has any."""
    base = OPEN_COLUMNS.get(table, {}).get(name) or ()
    own = tuple(str(v) for v in declared.get(name, ()))
    return tuple(dict.fromkeys(base + own)) or None


def _plain(name: str, label: str) -> bool:
    """A label of a column without a vocabulary that may be published as it is."""
    shape = _AGE_BAND if name == "age_band" else _PLAIN_LABEL
    # an acknowledged column skips the guard, but its labels still never publish a name
    return shape.fullmatch(label) is not None and not looks_identifying(label)


def _normalise_column(
    table: str, name: str, column: pd.Series, vocabulary: tuple[str, ...] | None, closed: bool
) -> tuple[pd.Series, list[CategoryChange]]:
    labels = [str(v) for v in column.cat.categories]
    match = _matcher(vocabulary or ())
    new: list[object] = []
    normalised = np.zeros(len(labels), dtype=bool)
    other = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        value = match.get(label_key(label))
        if value is not None:
            new.append(value)
            normalised[i] = value != label
        elif closed:
            new.append(label)  # left for the isin rule to quarantine
        elif vocabulary is None and _plain(name, _visible(label)):
            new.append(_visible(label))
            normalised[i] = new[-1] != label
        else:
            new.append(OTHER)
            other[i] = label != OTHER
    changes = []
    for kind, mask in (("normalised", normalised), ("other", other)):
        if mask.any():
            changes.append(CategoryChange(table, name, kind, int(mask.sum()), _rows(column, mask)))
    if not changes:
        return column, []
    return _relabel(column, new), changes


def normalise_categories(
    table: str,
    frame: pd.DataFrame,
    declared: Mapping[str, Collection[str]] | None = None,
    text_columns: Collection[str] = (),
) -> tuple[pd.DataFrame, list[CategoryChange]]:
    """Normalise the category columns of one typed table; return it and what was changed.

    ``declared`` is the study's ``categories:`` (column -> labels); ``text_columns`` are the
    study's extra columns read as text, which are category columns too.
    """
    declared = declared or {}
    closed = _closed_vocabularies(table)
    changes: list[CategoryChange] = []
    frame = frame.copy(deep=False)  # columns are replaced, never changed in place
    for name in frame.columns:
        column = frame[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            continue
        if name in closed:
            vocabulary, is_closed = closed[name], True
        elif name in OPEN_COLUMNS.get(table, {}) or name in text_columns:
            vocabulary, is_closed = _open_vocabulary(table, name, declared), False
        else:
            continue
        frame[name], found = _normalise_column(table, name, column, vocabulary, is_closed)
        changes.extend(found)
    return frame, changes
