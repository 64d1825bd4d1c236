"""Data contract v1: the four input tables as pandera models.

The models hold the per-column rules (types, ranges, allowed labels, ID pattern, nullability);
rules that need several rows or several tables (unique keys, references between tables, `day`
non-decreasing within a client, item ranges that depend on the instrument) live in
`accord.validate.study`, because they depend on the study's configuration.

In memory every text column is a pandas ``category``: the measures table can hold tens of
millions of rows over a handful of distinct labels, and categorical checks touch each distinct
label once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

CONTRACT_VERSION = "1"

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_COLUMNS = frozenset({"client_id", "therapist_id", "site_id", "goal_id"})
# No client has more scheduled appointments than this; a larger session_number is a data error
# (and keeps (client, session) keys within int64 without collisions).
MAX_SESSION_NUMBER = 100_000
# The contract's gender labels; a study may declare its own under categories.
GENDERS = ("female", "male", "non_binary", "other", "unknown")
END_REASONS = ("completed", "dropout", "referred", "ongoing", "other")
SESSION_STATUSES = ("attended", "cancelled", "no_show")
MODALITIES = ("in_person", "video", "phone", "other")
RATERS = ("client", "therapist", "observer")
PHASES = ("intake", "treatment", "follow_up")
SET_BY = ("client", "therapist", "joint")
GOAL_STATUSES = ("active", "achieved", "revised", "abandoned")
SMART_CRITERIA = (
    "smart_specific",
    "smart_measurable",
    "smart_achievable",
    "smart_relevant",
    "smart_time_bound",
)


def _id(description: str, *, nullable: bool = False, unique: bool = False) -> pa.Field:
    return pa.Field(
        str_matches=ID_PATTERN,
        nullable=nullable,
        unique=unique,
        title="id",
        description=description,
    )


def _label(values: tuple[str, ...], description: str, *, nullable: bool = True) -> pa.Field:
    return pa.Field(isin=list(values), nullable=nullable, title="string", description=description)


def _text(description: str) -> pa.Field:
    return pa.Field(nullable=True, title="string", description=description)


def _integer(description: str, *, ge=None, le=None, nullable: bool = True) -> pa.Field:
    return pa.Field(ge=ge, le=le, nullable=nullable, title="integer", description=description)


def _number(description: str, *, ge=None, le=None, nullable: bool = True) -> pa.Field:
    return pa.Field(ge=ge, le=le, nullable=nullable, title="number", description=description)


def _boolean(description: str) -> pa.Field:
    return pa.Field(nullable=True, title="boolean", description=description)


class Clients(pa.DataFrameModel):
    """clients.csv: one row per client."""

    client_id: Series[pa.Category] = _id("random pseudonym; unique", unique=True)
    therapist_id: Series[pa.Category] = _id("therapist pseudonym; empty = unknown", nullable=True)
    site_id: Series[pa.Category] | None = _id("site pseudonym", nullable=True)
    arm: Series[pa.Category] | None = _text("trial arm or condition label")
    intake_year: Series[pd.Int64Dtype] | None = _integer("year of intake", ge=1900, le=2100)
    age: Series[pd.Int64Dtype] | None = _integer(
        "age in years; 90 or more is an identifier (use age_band 90+)", ge=0, le=89
    )
    age_band: Series[pa.Category] | None = _text("age band, e.g. 18-24, 65-89, 90+")
    gender: Series[pa.Category] | None = _text(
        "female, male, non_binary, other or unknown, or a label declared under categories; "
        "any other label is read as other"
    )
    end_reason: Series[pa.Category] | None = _label(END_REASONS, "how treatment ended")

    class Config:
        name = "clients"
        description = "One row per client."


class Sessions(pa.DataFrameModel):
    """sessions.csv: one row per scheduled appointment."""

    client_id: Series[pa.Category] = _id("must exist in clients")
    session_number: Series[pd.Int64Dtype] = _integer(
        "order of scheduled appointments; unique per client",
        ge=1,
        le=MAX_SESSION_NUMBER,
        nullable=False,
    )
    status: Series[pa.Category] = _label(SESSION_STATUSES, "attendance", nullable=False)
    day: Series[pd.Int64Dtype] | None = _integer(
        "days since the client's first scheduled appointment; non-decreasing", ge=0
    )
    duration_min: Series[pd.Float64Dtype] | None = _number("minutes", ge=0, le=600)
    modality: Series[pa.Category] | None = _label(MODALITIES, "how the session was held")
    homework_assigned: Series[pd.BooleanDtype] | None = _boolean("homework was assigned")
    homework_completion: Series[pd.Float64Dtype] | None = _number(
        "fraction of assigned homework done; missing where none assigned", ge=0, le=1
    )
    goal_review: Series[pd.BooleanDtype] | None = _boolean("goals reviewed together")

    class Config:
        name = "sessions"
        description = "One row per scheduled appointment; key (client_id, session_number)."


class Measures(pa.DataFrameModel):
    """measures.csv: long format, one row per item response or supplied total."""

    client_id: Series[pa.Category] = _id("must exist in clients")
    session_number: Series[pd.Int64Dtype] = _integer(
        "0 = intake assessment; otherwise a session of this client",
        ge=0,
        le=MAX_SESSION_NUMBER,
        nullable=False,
    )
    instrument: Series[pa.Category] = pa.Field(
        nullable=False, title="string", description="a key of the instrument registry"
    )
    rater: Series[pa.Category] | None = _label(RATERS, "who rated; default client")
    item: Series[pa.Category] = pa.Field(
        nullable=False,
        title="string",
        description="item number 1..k; total for a supplied total; the goal_id for gas",
    )
    value: Series[pd.Float64Dtype] = _number(
        "within the instrument's item (or total) range", nullable=False
    )
    phase: Series[pa.Category] | None = _label(
        PHASES, "default: intake for session 0, else treatment"
    )

    class Config:
        name = "measures"
        description = (
            "One row per item response or supplied score; "
            "key (client_id, session_number, instrument, rater, item)."
        )


class Goals(pa.DataFrameModel):
    """goals.csv: one row per treatment goal (optional table)."""

    client_id: Series[pa.Category] = _id("must exist in clients")
    goal_id: Series[pa.Category] = _id("unique within client")
    set_session: Series[pd.Int64Dtype] = _integer(
        "session at which the goal was agreed", ge=0, nullable=False
    )
    set_by: Series[pa.Category] = _label(SET_BY, "who set the goal", nullable=False)
    client_importance: Series[pd.Int64Dtype] | None = _integer("1..5", ge=1, le=5)
    therapist_importance: Series[pd.Int64Dtype] | None = _integer("1..5", ge=1, le=5)
    smart_specific: Series[pd.BooleanDtype] | None = _boolean("SMART: specific")
    smart_measurable: Series[pd.BooleanDtype] | None = _boolean("SMART: measurable")
    smart_achievable: Series[pd.BooleanDtype] | None = _boolean("SMART: achievable")
    smart_relevant: Series[pd.BooleanDtype] | None = _boolean("SMART: relevant")
    smart_time_bound: Series[pd.BooleanDtype] | None = _boolean("SMART: time-bound")
    status: Series[pa.Category] | None = _label(GOAL_STATUSES, "goal status")
    revised_session: Series[pd.Int64Dtype] | None = _integer(
        "session at which the goal was revised; >= set_session", ge=0
    )

    class Config:
        name = "goals"
        description = "One row per treatment goal; key (client_id, goal_id)."


MODELS: Mapping[str, type[pa.DataFrameModel]] = {
    "clients": Clients,
    "sessions": Sessions,
    "measures": Measures,
    "goals": Goals,
}
REQUIRED_TABLES = ("clients", "sessions", "measures")
OPTIONAL_TABLES = ("goals",)
TABLES = REQUIRED_TABLES + OPTIONAL_TABLES

KEYS: Mapping[str, tuple[str, ...]] = {
    "clients": ("client_id",),
    "sessions": ("client_id", "session_number"),
    "measures": ("client_id", "session_number", "instrument", "rater", "item"),
    "goals": ("client_id", "goal_id"),
}


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column: its logical type and whether it must be present."""

    name: str
    kind: str  # id | string | integer | number | boolean
    required: bool
    nullable: bool


@cache
def columns(table: str) -> dict[str, ColumnSpec]:
    """The contract's columns of `table`, in contract order."""
    schema = MODELS[table].to_schema()
    return {
        name: ColumnSpec(name, col.title or "string", col.required, col.nullable)
        for name, col in schema.columns.items()
    }


def schema_yaml(table: str) -> str:
    """The pandera schema of `table` as YAML (the exported form in data/schemas/)."""
    return MODELS[table].to_schema().to_yaml()


def export_schemas(folder: str | Path) -> list[Path]:
    """Write one YAML file per table into `folder`; return the paths written."""
    from accord.core.io import write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in TABLES:
        path = folder / f"{table}.yaml"
        header = f"# accord data contract v{CONTRACT_VERSION}: {table}. Generated; do not edit.\n"
        write_text_atomic(path, header + schema_yaml(table))
        written.append(path)
    return written
