"""A study's results, opened for exploration: the contract's output tables and model refits.

Notebooks and other tools read a study's outputs (data contract, "Outputs") through this one
module rather than through hard-coded paths::

    from accord.results import open_results

    results = open_results("demo", root=".")
    results.flow()                               # rows in, accepted, quarantined per table
    results.session_panel().describe()
    results.coefficients("growth")
    log_time = results.refit("growth", time_coding="log")
    log_time.coefficients

Every accessor reads its file when called, so a rerun of the workflow is seen at once. A file
that is not there raises `ResultsNotFoundError`, naming the file, the workflow rule that
writes it and the command that makes it.

`refit` fits one configured model again on the study's session panel and client measures,
with some of its settings changed. It calls the same fitting function, with the same study-wide
settings, as the workflow's `fit_model` job, so a refit with no changes reproduces the
workflow's estimates. Those settings come from the configuration the results were made with:
the one given to `open_results`, else the one recorded in the report's provenance section, else
``config/config.yaml`` under `root`.

The tables returned hold one row per client or session, with client IDs: they are for
exploring on the machine that holds the data. Anything meant for sharing is aggregated and
small cells suppressed (`accord.core.disclosure`, with `StudyResults.min_cell`).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pandas as pd
import yaml

from accord.config import load_config, schema, validate_config
from accord.core.errors import AccordError, ConfigError
from accord.core.stages import read_validated

if TYPE_CHECKING:
    from accord.models.spec import ModelContext, ModelSpec
    from accord.models.tidy import ModelResult

VALIDATED_TABLES = ("clients", "sessions", "measures", "goals")


@dataclass(frozen=True)
class OutputFile:
    """One output of a study: its path under ``results/<study>/`` and the rule that writes it."""

    path: str
    rule: str


# The contract's outputs (data-contract.md, "Outputs") and the files beside them.
OUTPUTS: Mapping[str, OutputFile] = {
    **{
        table: OutputFile(f"validated/{table}.parquet", "validate_study")
        for table in VALIDATED_TABLES
    },
    "quarantine": OutputFile("validation/quarantine.csv", "validate_study"),
    "summary": OutputFile("validation/summary.json", "validate_study"),
    "scores": OutputFile("scores.parquet", "score_measures"),
    "reliability": OutputFile("reliability.csv", "score_measures"),
    "session_panel": OutputFile("session_panel.parquet", "build_measures"),
    "client_measures": OutputFile("client_measures.parquet", "build_measures"),
    "measures_metadata": OutputFile("measures_metadata.json", "build_measures"),
    "coefficients": OutputFile("models/coefficients.csv", "gather_models"),
    "diagnostics": OutputFile("models/diagnostics.json", "gather_models"),
    "missing_by_session": OutputFile("models/missing_by_session.csv", "describe_missingness"),
    "missingness_vs_exposure": OutputFile(
        "models/missingness_vs_exposure.csv", "describe_missingness"
    ),
}

# The settings of a model entry that `refit` may change (the id and kind name the model).
REFIT_SETTINGS = ("outcome", "exposure", "covariates", "time_coding", "therapist_effect", "options")


class ResultsNotFoundError(AccordError, FileNotFoundError):
    """An output the caller asked for has not been made yet; the message says how to make it."""


def open_results(
    study: str,
    root: str | Path = ".",
    *,
    config: str | Path | Mapping[str, Any] | None = None,
) -> StudyResults:
    """Open the results of `study` under `root` (the folder the workflow ran in).

    `config` is the configuration the results were made with (a YAML path or a mapping); by
    default the one recorded in ``reports/<study>/report.html``, else ``config/config.yaml``
    under `root`. It is read only when a model is refitted or `min_cell` is asked for.

    Raises ResultsNotFoundError when ``results/<study>/`` does not exist.

    Example::

        results = open_results("demo")
        results.client_measures()["attendance_rate"].describe()
    """
    root = Path(root)
    folder = root / "results" / study
    if not folder.is_dir():
        made = sorted(p.name for p in (root / "results").glob("*") if p.is_dir())
        found = f" (results found for: {', '.join(made)})" if made else ""
        raise ResultsNotFoundError(
            f"results/{study} not found under {root.resolve()}{found}: run `accord run {study}` "
            f"or `snakemake -c2 reports/{study}/report.html` there first."
        )
    return StudyResults(study=study, root=root, config_given=config)


@dataclass(frozen=True)
class StudyResults:
    """The outputs of one study's run, each read from ``results/<study>/`` on request."""

    study: str
    root: Path
    config_given: str | Path | Mapping[str, Any] | None = None

    # -- where things are ------------------------------------------------------------------

    @property
    def results_dir(self) -> Path:
        """``results/<study>`` under the root."""
        return self.root / "results" / self.study

    @property
    def report_path(self) -> Path:
        """``reports/<study>/report.html`` under the root."""
        return self.root / "reports" / self.study / "report.html"

    def path(self, name: str) -> Path:
        """The path of output `name` (a key of `OUTPUTS`), checked to exist.

        Raises ResultsNotFoundError naming the file, its rule and the command that makes it.
        """
        if name not in OUTPUTS:
            raise KeyError(f"unknown output {name!r}; known: {', '.join(OUTPUTS)}")
        return self._existing(OUTPUTS[name])

    def _existing(self, output: OutputFile) -> Path:
        path = self.results_dir / output.path
        if not path.exists():
            target = f"results/{self.study}/{output.path}"
            raise ResultsNotFoundError(
                f"{target} not found: run `accord run {self.study}` or "
                f"`snakemake -c2 {target}` (rule {output.rule}) in {self.root.resolve()}."
            )
        return path

    # -- validation ------------------------------------------------------------------------

    def validated(self, table: str) -> pd.DataFrame:
        """The accepted rows of input `table` (clients, sessions, measures or goals), typed."""
        if table not in VALIDATED_TABLES:
            raise KeyError(f"unknown table {table!r}; known: {', '.join(VALIDATED_TABLES)}")
        return read_validated(self.path(table))

    def quarantine(self) -> pd.DataFrame:
        """Every rejected row: table, row_number, client_id, rule, column."""
        return pd.read_csv(self.path("quarantine"), dtype={"client_id": "string"})

    def summary(self) -> dict[str, Any]:
        """The validation summary (per table: rows_in, rows_accepted, rows_quarantined, ...)."""
        return _read_json(self.path("summary"))

    def flow(self) -> pd.DataFrame:
        """Rows in, accepted and quarantined and missing codes replaced, one row per table.

        For every table ``rows_in == rows_accepted + rows_quarantined`` (data contract).
        """
        tables = self.summary()["tables"]
        order = [t for t in VALIDATED_TABLES if t in tables] + sorted(
            set(tables) - {*VALIDATED_TABLES}
        )
        tables = {t: tables[t] for t in order}
        columns = ["rows_in", "rows_accepted", "rows_quarantined", "missing_codes_replaced"]
        frame = pd.DataFrame(
            [[counts.get(c) for c in columns] for counts in tables.values()],
            index=pd.Index(list(tables), name="table"),
            columns=columns,
        )
        return frame.astype("Int64")

    # -- measures --------------------------------------------------------------------------

    def scores(self) -> pd.DataFrame:
        """Questionnaire scores: client x session x instrument x rater x scale."""
        return read_validated(self.path("scores"))

    def reliability(self) -> pd.DataFrame:
        """Cronbach's alpha (95% CI) and McDonald's omega per instrument, scale, rater and wave."""
        return pd.read_csv(self.path("reliability"))

    def session_panel(self) -> pd.DataFrame:
        """One row per client and session: status, scored scales, within/between-person parts."""
        return read_validated(self.path("session_panel"))

    def client_measures(self) -> pd.DataFrame:
        """One row per client: engagement, alliance, goal-setting and outcome-change measures."""
        return read_validated(self.path("client_measures"))

    def measures_metadata(self) -> dict[str, Any]:
        """How the measures were made: settings, change thresholds, grand means, counts."""
        return _read_json(self.path("measures_metadata"))

    def missing_by_session(self) -> pd.DataFrame:
        """Expected and scored assessments, and the missing share, by instrument and session."""
        return pd.read_csv(self.path("missing_by_session"))

    def missingness_vs_exposure(self) -> pd.DataFrame:
        """Whether a missing score goes with the exposure (logistic, per instrument)."""
        return pd.read_csv(self.path("missingness_vs_exposure"))

    # -- models ----------------------------------------------------------------------------

    def coefficients(self, model: str | None = None) -> pd.DataFrame:
        """Every model's tidy estimates (with ``p_fdr``), or those of one `model`."""
        table = pd.read_csv(self.path("coefficients"))
        if model is None:
            return table
        if model not in set(table["model"]):
            known = ", ".join(sorted(set(table["model"])))
            raise KeyError(f"{OUTPUTS['coefficients'].path}: no model {model!r} (models: {known})")
        return table[table["model"] == model].reset_index(drop=True)

    def diagnostics(self, model: str | None = None) -> dict[str, Any]:
        """Convergence, warnings, log-likelihood, variances and counts: per model, or of one."""
        records = _read_json(self.path("diagnostics"))
        if model is None:
            return records
        if model not in records:
            known = ", ".join(sorted(records))
            raise KeyError(f"{OUTPUTS['diagnostics'].path}: no model {model!r} (models: {known})")
        return records[model]

    def model_coefficients_path(self, model: str) -> Path:
        """``results/<study>/models/<model>/coefficients.csv``, as the model's own job wrote it."""
        return self._existing(OutputFile(f"models/{model}/coefficients.csv", "fit_model"))

    # -- configuration and refits ----------------------------------------------------------

    @cached_property
    def config(self) -> dict[str, Any]:
        """The configuration the results were made with, validated, defaults filled in."""
        return self._config_and_source[0]

    @property
    def config_source(self) -> str:
        """Where `config` came from: the path or report it was read from, or ``"given"``."""
        return self._config_and_source[1]

    @cached_property
    def _config_and_source(self) -> tuple[dict[str, Any], str]:
        given = self.config_given
        if isinstance(given, Mapping):
            return validate_config(given), "given"
        if given is not None:
            return load_config(given), str(given)
        recorded = recorded_config(self.report_path)
        if recorded is not None:
            return validate_config(recorded), str(self.report_path)
        default = self.root / "config" / "config.yaml"
        if not default.exists():
            raise ConfigError(
                f"No configuration for study {self.study!r}: {self.report_path} records none "
                f"and {default} does not exist. Pass it: open_results({self.study!r}, "
                f"config='path/to/config.yaml')."
            )
        return load_config(default), str(default)

    @property
    def min_cell(self) -> int:
        """The smallest group shown in anything shared (privacy.min_cell of the config)."""
        return int(self.config["privacy"]["min_cell"])

    def model_specs(self) -> list[ModelSpec]:
        """The models of the configuration, as the workflow fitted them."""
        # The model modules load statsmodels: imported on first use, not with the tables.
        from accord.models.spec import model_specs

        return model_specs(self.config)

    def model_spec(self, model_id: str) -> ModelSpec:
        """The configured model `model_id`."""
        from accord.models.spec import find_spec

        return find_spec(self.model_specs(), model_id)

    def model_context(self) -> ModelContext:
        """The study-wide model settings: primary outcome and exposure, seed, min_cell."""
        from accord.models.spec import model_context

        return model_context(self.config)

    def refit(self, model_id: str, *, label: str | None = None, **changes: Any) -> ModelResult:
        """Fit the configured model `model_id` again, with `changes` to its settings.

        `changes` may set outcome, exposure, covariates, time_coding, therapist_effect and
        options (merged into the configured options). The result's model id is `label`, by
        default `model_id`. With no changes the fit is the workflow's own; with changes it is
        not the primary analysis, so no row is marked primary. (Workflow jobs use one BLAS
        thread: for agreement to the last digit on a fit near a boundary, start Python with
        ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``.)

        Example::

            results.refit("growth", time_coding="log", covariates=["gad7_first"],
                          label="growth_log_time").coefficients
        """
        from accord.models.plan import fit_planned

        spec = self.changed_spec(model_id, label=label, **changes)
        # As the workflow fits it: data that cannot estimate the model give its status record.
        return fit_planned(spec, self.session_panel(), self.client_measures(), self.model_context())

    def changed_spec(self, model_id: str, *, label: str | None = None, **changes: Any) -> ModelSpec:
        """The spec `refit` fits: the configured model with `changes`, checked like config."""
        spec = self.model_spec(model_id)
        unknown = sorted(set(changes) - set(REFIT_SETTINGS))
        if unknown:
            raise ConfigError(
                f"refit({model_id!r}): {unknown[0]!r} is not a model setting that can be "
                f"changed (allowed: {', '.join(REFIT_SETTINGS)})"
            )
        entry: dict[str, Any] = {"id": label or spec.id, "kind": spec.kind}
        for name in REFIT_SETTINGS:
            value = getattr(spec, name)
            entry[name] = list(value) if name == "covariates" else value
        entry["options"] = dict(spec.options)
        for name, value in changes.items():
            if name == "options":
                entry["options"].update(value)
            elif name == "covariates":
                entry["covariates"] = [value] if isinstance(value, str) else list(value)
            else:
                entry[name] = value
        _check_model_entry(entry, model_id)
        entry["covariates"] = tuple(entry["covariates"])
        # A changed model is not the analysis plan's primary one, whatever it was refitted from.
        entry["primary"] = spec.primary and not changes
        return dataclasses.replace(spec, **entry)


def recorded_config(report: str | Path) -> dict[str, Any] | None:
    """The configuration recorded in a report's provenance section, or None if there is none.

    The report shows the run's configuration as YAML in a ``<pre>`` block of the section with
    id ``provenance``.
    """
    report = Path(report)
    if not report.exists():
        return None
    text = report.read_text(encoding="utf-8")
    start = text.find('id="provenance"')
    if start < 0:
        return None
    for block in re.findall(r"<pre[^>]*>(.*?)</pre>", text[start:], flags=re.DOTALL):
        try:
            data = yaml.safe_load(html.unescape(re.sub(r"<[^>]+>", "", block)))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and "studies" in data:
            return data
    return None


def _check_model_entry(entry: Mapping[str, Any], model_id: str) -> None:
    item_schema = schema()["properties"]["models"]["items"]
    errors = sorted(
        jsonschema.Draft202012Validator(item_schema).iter_errors(dict(entry)),
        key=lambda e: list(e.path),
    )
    if errors:
        key = ".".join(str(part) for part in errors[0].path) or "entry"
        raise ConfigError(f"refit({model_id!r}): {key}: {errors[0].message}")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
