"""Scoring a study in partitions of clients: the one-job outputs, to the byte, for any number.

A study validated in partitions (`accord.validate.split`) is scored partition by partition: each
partition's validated measures and goals give its scores, the supplied totals that disagree
with their items, the scoring summary's counts and the reliability cells' sufficient
statistics (`accord.measures.reliability.CellSums`). Every form belongs to one client and every
client to one partition, so a form is scored the same in its partition as in the whole study.
The gather puts the rows back in the one-job order (each partition's rows are already in key
order, client first, and all of a client's rows are in one partition, so a stable sort on the
client label restores the whole order), adds the counts and the exact reliability sums, and
computes the reliability table from the sums, as a whole study does: both routes go through
`write_scoring`.

A partition's folder holds ``scores.parquet``, ``total_disagreements.parquet`` and
``counts.json`` (the summary rows and the reliability cells, integers kept exact).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from accord.core.instruments import Registry
from accord.core.io import write_csv, write_json, write_parquet
from accord.core.stages import plain_text
from accord.measures.reliability import (
    ReliabilitySums,
    add_reliability_sums,
    reliability_from_sums,
    reliability_sums,
    sums_from_records,
    sums_to_records,
)
from accord.measures.scoring import (
    SUMMARY_COLUMNS,
    ScoringResult,
    ScoringSettings,
    score_measures_with_summary,
    summary_table,
)
from accord.validate.gather import read_part
from accord.validate.quarantine import empty_table

__all__ = [
    "Scored",
    "gather_scored",
    "score_study",
    "score_validated_part",
    "write_scored_part",
    "write_scoring",
]

SCORES = "scores.parquet"
DISAGREEMENTS = "total_disagreements.parquet"
COUNTS = "counts.json"
_SUMMARY_KEY = list(SUMMARY_COLUMNS[:3])
_SUMMARY_COUNTS = list(SUMMARY_COLUMNS[3:])


@dataclass(frozen=True)
class Scored:
    """A study's or a partition's scoring and the sufficient statistics of its reliability."""

    result: ScoringResult
    reliability: ReliabilitySums


def score_study(
    measures: pd.DataFrame,
    registry: Registry,
    *,
    settings: ScoringSettings,
    goals: pd.DataFrame | None = None,
) -> Scored:
    """Score a validated measures table (a whole study or one partition of it)."""
    result = score_measures_with_summary(measures, registry, settings=settings, goals=goals)
    return Scored(result, reliability_sums(measures, registry))


def score_validated_part(
    folder: str | Path, registry: Registry, settings: ScoringSettings
) -> Scored:
    """Score the validated partition written under `folder` (`accord.validate.gather.write_part`).

    Its measures keep the whole study's labels and are put in source order, as the gathered
    table has them (a form's phase is that of its first row).
    """
    part = read_part(folder)
    measures = part.tables["measures"]
    rows = part.row_numbers["measures"]
    if np.any(np.diff(rows) < 0):
        measures = measures.take(np.argsort(rows, kind="stable")).reset_index(drop=True)
    has_goals = "goals" in part.tally["table_order"]
    goals = plain_text(part.tables["goals"] if has_goals else empty_table("goals"))
    return score_study(measures, registry, settings=settings, goals=goals)


def write_scored_part(scored: Scored, folder: str | Path) -> None:
    """Write a partition's scoring under `folder` (gathered by `gather_scored`)."""
    folder = Path(folder)
    write_parquet(folder / SCORES, scored.result.scores)
    write_parquet(folder / DISAGREEMENTS, scored.result.total_disagreements)
    counts = {
        "summary": scored.result.summary.to_dict("records"),
        "reliability": sums_to_records(scored.reliability),
    }
    write_json(folder / COUNTS, counts)


def gather_scored(folders: Sequence[str | Path], settings: ScoringSettings) -> Scored:
    """The study's scoring from its partitions written under `folders` (in any order): rows
    in the one-job order, counts and reliability sums added up."""
    if not folders:
        raise ValueError("there are no partitions to gather")
    folders = [Path(folder) for folder in folders]
    counts = [json.loads((f / COUNTS).read_text(encoding="utf-8")) for f in folders]
    result = ScoringResult(
        scores=_gather_rows([folder / SCORES for folder in folders]),
        total_disagreements=_gather_rows([folder / DISAGREEMENTS for folder in folders]),
        summary=_add_summaries([summary_table(c["summary"]) for c in counts]),
        settings=settings,
    )
    cells = add_reliability_sums(sums_from_records(c["reliability"]) for c in counts)
    return Scored(result, cells)


def _gather_rows(paths: Sequence[Path]) -> pd.DataFrame:
    """The partitions' rows, each file sorted by client first, in the order of the whole: by
    client label, and within a client as its partition has them (a client is in one partition).

    Read column by column, each partition's column let go once gathered: the gathered table
    and one column are held, not every partition's table besides."""
    filled = [path for path in paths if pq.ParquetFile(path).metadata.num_rows]
    if len(filled) <= 1:
        return pd.read_parquet((filled or list(paths))[0])
    clients = pd.concat([_column(path, "client_id") for path in filled], ignore_index=True)
    order = np.argsort(pd.factorize(clients, sort=True)[0], kind="stable")
    del clients
    gathered = {}
    for name in pq.read_schema(filled[0]).names:
        values = pd.concat([_column(path, name) for path in filled], ignore_index=True)
        gathered[name] = values.take(order).reset_index(drop=True)
        del values
    return pd.DataFrame(gathered, copy=False)


def _column(path: Path, name: str) -> pd.Series:
    return pd.read_parquet(path, columns=[name])[name]


def _add_summaries(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The scoring summaries' counts added per instrument, rater and scale."""
    totals: dict[tuple, dict[str, int]] = {}
    for frame in frames:
        for record in frame.to_dict("records"):
            key = tuple(record[name] for name in _SUMMARY_KEY)
            counts = totals.setdefault(key, dict.fromkeys(_SUMMARY_COUNTS, 0))
            for name in _SUMMARY_COUNTS:
                counts[name] += int(record[name])
    rows = [dict(zip(_SUMMARY_KEY, key, strict=True)) | counts for key, counts in totals.items()]
    return summary_table(rows)


def write_scoring(scored: Scored, registry: Registry, paths: Mapping[str, str | Path]) -> None:
    """Write ``scores`` (with the settings and the summary as metadata), ``disagreements``
    and ``reliability`` (from the summed sufficient statistics) to the paths given."""
    result = scored.result
    metadata = {"scoring": result.settings.as_dict(), "summary": result.summary.to_dict("records")}
    write_parquet(paths["scores"], result.scores, metadata=metadata)
    write_csv(paths["disagreements"], result.total_disagreements)
    write_csv(paths["reliability"], reliability_from_sums(scored.reliability, registry))
