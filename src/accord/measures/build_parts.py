"""The files of a study whose measures are built in partitions of clients.

A study validated in partitions (`accord.validate.split`, `accord.validate.gather`) builds its
measures in the same partitions: each partition's statistics (`measure_statistics_file`), then
each partition's client measures and panel with the study's scalars (`build_partition_folder`),
then the gather (`write_gathered_measures`), which writes the files the one-job build writes,
byte for byte (`accord.measures.build`).

A partition's scores are those its scoring job wrote (`accord.measures.partitions`): the
gathered scores of its clients, in their order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from accord.core.io import write_json, write_parquet
from accord.core.stages import plain_text, read_validated
from accord.measures.build import (
    MeasureSettings,
    MeasuresResult,
    build_partition,
    gather_client_measures,
    gather_panel,
    measures_metadata,
    partition_statistics,
    study_thresholds,
)
from accord.measures.partitions import SCORES
from accord.measures.statistics import MeasureStatistics, combine_statistics
from accord.validate.gather import read_part

CLIENT_MEASURES = "client_measures.parquet"
SESSION_PANEL = "session_panel.parquet"


def read_partition_tables(
    folder: str | Path, scored: str | Path, names: Sequence[str] = ("clients", "sessions", "goals")
) -> dict[str, Any]:
    """A validated partition's tables `names` (`accord.validate.gather.write_part`; None for
    a table the study has not) and its scores (the folder `scored` its scoring job wrote),
    read as `read_validated` reads the study's."""
    part = read_part(folder)
    tables: dict[str, Any] = {
        name: plain_text(part.tables[name]) if name in part.tables else None for name in names
    }
    tables["scores"] = read_validated(Path(scored) / SCORES)
    return tables


def measure_statistics_file(
    folder: str | Path, scored: str | Path, out: str | Path, settings: MeasureSettings
) -> MeasureStatistics:
    """Pass 1: write a partition's statistics (`accord.measures.statistics`) as JSON."""
    tables = read_partition_tables(folder, scored, ("clients", "goals"))
    statistics = partition_statistics(
        tables["clients"], tables["goals"], tables["scores"], settings
    )
    write_json(out, statistics.to_dict())
    return statistics


def read_study_statistics(paths: Sequence[str | Path]) -> MeasureStatistics:
    """The study's statistics from every partition's file."""
    parts = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
    return combine_statistics([MeasureStatistics.from_dict(part) for part in parts])


def build_partition_folder(
    folder: str | Path,
    scored: str | Path,
    statistics: Sequence[str | Path],
    out: str | Path,
    registry: Any,
    settings: MeasureSettings,
) -> tuple[int, int]:
    """Pass 2: write a partition's client measures and panel, built with the study's scalars,
    under `out`; returns their rows."""
    tables = read_partition_tables(folder, scored)
    study = read_study_statistics(statistics)
    client_measures, panel = build_partition(
        tables["clients"],
        tables["sessions"],
        tables["goals"],
        tables["scores"],
        registry,
        settings,
        study,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / CLIENT_MEASURES, client_measures)
    write_parquet(out / SESSION_PANEL, panel)
    return len(client_measures), len(panel)


def write_gathered_measures(
    folders: Sequence[str | Path],
    statistics: Sequence[str | Path],
    paths: Any,
    registry: Any,
    settings: MeasureSettings,
) -> dict[str, Any]:
    """Gather the partitions' client measures and panels into `paths.client_measures`,
    `paths.session_panel` and `paths.metadata`, one table at a time; returns the metadata."""
    study = read_study_statistics(statistics)
    folders = [Path(folder) for folder in folders]
    n_panel_rows = sum(pq.ParquetFile(f / SESSION_PANEL).metadata.num_rows for f in folders)
    metadata = measures_metadata(
        settings, study_thresholds(registry, settings, study), study, n_panel_rows
    )
    client_measures = gather_client_measures(
        [pd.read_parquet(f / CLIENT_MEASURES) for f in folders]
    )
    write_parquet(paths.client_measures, client_measures, metadata)
    del client_measures
    panel = gather_panel([pd.read_parquet(f / SESSION_PANEL) for f in folders])
    write_parquet(paths.session_panel, panel, metadata)
    write_json(paths.metadata, metadata)
    return metadata


def write_measures(result: MeasuresResult, paths: Any) -> None:
    """Write a one-job build's outputs to `paths.client_measures`, `.session_panel`, `.metadata`."""
    write_parquet(paths.client_measures, result.client_measures, result.metadata)
    write_parquet(paths.session_panel, result.session_panel, result.metadata)
    write_json(paths.metadata, result.metadata)
