"""Everything a report section reads: the results folder's files, loaded once, and the settings.

Every file is optional; a section whose input is missing says so. Each file read is recorded
with its SHA-256 for the provenance section.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from accord.core.errors import AccordError, ConfigError
from accord.core.instruments import Instrument, load_registry
from accord.core.stages import read_validated
from accord.report.ledger import Ledger
from accord.report.text import outcome_label

_DROPOUT_TEXT = {
    "end_reason": "the recorded end reason is dropout",
    "min_sessions": "fewer than {min_sessions} sessions attended",
    "last_scheduled_missed": "the last scheduled session was missed",
}


class Inputs:
    """Reads files under the results folder, remembering each file read for provenance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.read: dict[str, str] = {}

    def path(self, relative: str) -> Path | None:
        path = self.root / relative
        if not path.is_file():
            return None
        self.read[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        return path

    def json(self, relative: str) -> Any:
        path = self.path(relative)
        return json.loads(path.read_text(encoding="utf-8")) if path else None

    def csv(self, relative: str) -> pd.DataFrame | None:
        path = self.path(relative)
        return pd.read_csv(path) if path else None

    def parquet(self, relative: str) -> pd.DataFrame | None:
        path = self.path(relative)
        # Read a column at a time (read_validated): a panel of millions of rows is held once.
        return read_validated(path, categorical=True) if path else None

    def parquet_metadata(self, relative: str, key: str) -> Any:
        """The JSON stored under `key` in a parquet file's schema metadata (None if absent)."""
        path = self.path(relative)
        if path is None:
            return None
        metadata = pq.read_schema(path).metadata or {}
        raw = metadata.get(key.encode("utf-8"))
        return json.loads(raw) if raw else None

    def glob(self, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(pattern))


@dataclass
class ReportContext:
    """The loaded results of one study and the settings the report needs."""

    study: str
    config: Mapping[str, Any]
    min_cell: int
    run_date: str
    inputs: Inputs
    summary: Any = None
    quarantine: pd.DataFrame | None = None
    validated_clients: pd.DataFrame | None = None
    reliability: pd.DataFrame | None = None
    scoring: Any = None
    measures_metadata: Any = None
    clients: pd.DataFrame | None = None
    panel: pd.DataFrame | None = None
    coefficients: pd.DataFrame | None = None
    diagnostics: dict[str, dict] = field(default_factory=dict)
    missing_by_session: pd.DataFrame | None = None
    missingness_vs_exposure: pd.DataFrame | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: The counts published so far, audited together once every section is built.
    ledger: Ledger = field(default_factory=Ledger)

    @property
    def analysis(self) -> Mapping[str, Any]:
        return self.config.get("analysis", {}) or {}

    @property
    def outcome(self) -> str:
        """The primary outcome's column in the panel and client measures ("phq9")."""
        return str(self.analysis.get("primary_outcome", "phq9")).replace(".", "_")

    @property
    def outcome_label(self) -> str:
        return outcome_label(str(self.analysis.get("primary_outcome", "phq9")))

    @property
    def exposure(self) -> str:
        return str(
            self.settings.get("primary_exposure")
            or self.analysis.get("primary_exposure", "joint_goal_share")
        )

    @property
    def secondary_outcomes(self) -> list[str]:
        return [str(o).replace(".", "_") for o in self.analysis.get("secondary_outcomes") or []]

    def registry(self) -> Mapping[str, Instrument]:
        """The instrument registry with the config's own instruments (built-ins only if those
        are not valid)."""
        try:
            return load_registry(self.config.get("instruments") or None)
        except ConfigError:
            return load_registry()

    def dropout_text(self) -> str:
        """The dropout definition used, in words."""
        return dropout_text(self.settings)


def dropout_text(settings: Mapping[str, Any]) -> str:
    """The dropout definition of the measure settings, in words."""
    definition = str(settings.get("dropout_definition"))
    text = _DROPOUT_TEXT.get(definition, definition)
    return text.format(min_sessions=settings.get("dropout_min_sessions", 2))


def load_context(
    results_dir: Path,
    *,
    study: str,
    config: Mapping[str, Any],
    min_cell: int,
    run_date: dt.date | str | None,
) -> ReportContext:
    """Read the results folder. Raises AccordError if `results_dir` does not exist."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise AccordError(f"report: the results folder {results_dir} does not exist")
    inputs = Inputs(results_dir)
    ctx = ReportContext(
        study=study,
        config=config,
        min_cell=int(min_cell),
        run_date=resolve_run_date(run_date),
        inputs=inputs,
        ledger=Ledger(int(min_cell)),
    )
    ctx.summary = inputs.json("validation/summary.json")
    ctx.quarantine = inputs.csv("validation/quarantine.csv")
    ctx.validated_clients = inputs.parquet("validated/clients.parquet")
    ctx.reliability = inputs.csv("reliability.csv")
    ctx.scoring = inputs.parquet_metadata("scores.parquet", "accord")
    ctx.measures_metadata = inputs.json("measures_metadata.json")
    ctx.clients = inputs.parquet("client_measures.parquet")
    ctx.panel = inputs.parquet("session_panel.parquet")
    ctx.coefficients = inputs.csv("models/coefficients.csv")
    ctx.diagnostics = _diagnostics(inputs)
    ctx.missing_by_session = inputs.csv("models/missing_by_session.csv")
    ctx.missingness_vs_exposure = inputs.csv("models/missingness_vs_exposure.csv")
    ctx.settings = _measure_settings(ctx.measures_metadata, ctx.analysis)
    return ctx


def resolve_run_date(run_date: dt.date | str | None) -> str:
    """The run date: as given, else ``SOURCE_DATE_EPOCH``, else today (UTC)."""
    if run_date is not None:
        return run_date.isoformat() if isinstance(run_date, dt.date) else str(run_date)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).date().isoformat()
    return dt.datetime.now(tz=dt.UTC).date().isoformat()


def _diagnostics(inputs: Inputs) -> dict[str, dict]:
    """Diagnostics per model id, from the gathered file or from one file per model."""
    gathered = inputs.json("models/diagnostics.json")
    if gathered is None:
        found = {}
        for relative in inputs.glob("models/*.json") + inputs.glob("models/*/diagnostics.json"):
            found.update(_by_model(inputs.json(relative), default=Path(relative).parent.name))
        return found
    return _by_model(gathered, default="model")


def _by_model(data: Any, *, default: str) -> dict[str, dict]:
    if not isinstance(data, dict):
        return {}
    if "converged" in data:  # a single model's diagnostics
        return {str(data.get("model", default)): data}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _measure_settings(metadata: Any, analysis: Mapping[str, Any]) -> dict[str, Any]:
    """The measure settings recorded with the results; the dropout definition falls back on
    the config when no metadata was found."""
    settings: dict[str, Any] = {}
    if isinstance(metadata, dict):
        settings = dict(metadata.get("settings") or {})
        settings.setdefault("dropout_definition", metadata.get("dropout_definition"))
    if not settings.get("dropout_definition"):
        settings["dropout_definition"] = str(analysis.get("dropout_definition", "end_reason"))
    return settings
