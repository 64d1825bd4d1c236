"""The study report: one self-contained HTML file built from a study's results folder.

The report reads only files under ``results/<study>/`` and shows aggregates only: every count
from 1 to ``min_cell - 1`` reads ``"<11"``, every statistic from fewer than ``min_cell`` clients
is withheld, and no client id or row of data is ever printed (privacy.md, section 2; the rules
live in `accord.disclosure`). CSS and figures are inline (PNG as data URIs), so the file opens
anywhere without a network. The same results, config and run date give the same bytes; the run
date is a parameter, else the ``SOURCE_DATE_EPOCH`` environment variable, else today (UTC).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml

import accord
from accord.disclosure import (
    NOT_AVAILABLE,
    suppress_count,
    suppress_proportion,
    suppress_statistic,
    suppress_table,
    suppressed_label,
    suppression_mask,
)
from accord.errors import AccordError
from accord.io import write_text_atomic
from accord.report.figures import trajectory_figure, trajectory_summary

TEMPLATE = "report.html.j2"
PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "pyarrow", "jinja2")
_MINUS = "\u2212"
_COUNT_IN_TEXT = re.compile(r"\b(\d+)( (?:client|therapist)(?:s\b|\(s\)|\b))")
_INSTRUMENT_LABELS = {
    "phq9": "PHQ-9",
    "gad7": "GAD-7",
    "core10": "CORE-10",
    "ors": "ORS",
    "srs": "SRS",
    "wai_sr": "WAI-SR",
}
_TERM_LABELS = {"Intercept": "Intercept", "time": "Time"}
_RANDOM_LABELS = {
    "therapist_intercept": "Therapist intercept",
    "client_intercept": "Client intercept",
    "client_slope": "Client slope (time)",
    "client_intercept_slope_covariance": "Client intercept-slope covariance",
    "residual": "Residual",
}


def render_report(
    results_dir: Path,
    out_html: Path,
    *,
    study: str,
    config: Mapping[str, Any],
    min_cell: int = 11,
    run_date: dt.date | str | None = None,
) -> None:
    """Write the study report for `study` from the files in `results_dir` to `out_html`.

    Reads validation/summary.json, validation/quarantine.csv, client_measures.parquet,
    session_panel.parquet, models/coefficients.csv and the models' diagnostics JSON (the
    gathered models/diagnostics.json, else models/*.json and models/*/diagnostics.json).
    Every file is optional: a section whose input is missing says so. Raises AccordError if
    `results_dir` does not exist.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise AccordError(f"report: the results folder {results_dir} does not exist")
    inputs = _Inputs(results_dir)
    analysis = config.get("analysis", {}) or {}
    outcome = str(analysis.get("primary_outcome", "phq9"))
    outcome_column = outcome.replace(".", "_")
    outcome_label = _outcome_label(outcome)

    summary_json = inputs.json("validation/summary.json")
    quarantine = inputs.csv("validation/quarantine.csv")
    clients = inputs.parquet("client_measures.parquet")
    panel = inputs.parquet("session_panel.parquet")
    coefficients = inputs.csv("models/coefficients.csv")
    diagnostics = _diagnostics(inputs)

    sections = {
        "data": _data_section(summary_json, quarantine, min_cell),
        "sample": _sample_section(clients, panel, min_cell),
        "engagement": _engagement_section(clients, analysis, min_cell),
        "outcomes": _outcomes_section(panel, outcome_column, outcome_label, min_cell),
        "models": _models_section(coefficients, diagnostics, min_cell),
    }
    summary = _summary_section(coefficients, diagnostics, outcome_label, sections, min_cell)
    context = {
        "study": study,
        "min_cell": min_cell,
        "suppressed": suppressed_label(min_cell),
        "summary": summary,
        **sections,
        "provenance": _provenance(inputs, config, _run_date(run_date)),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template(TEMPLATE).render(**context)
    write_text_atomic(out_html, html)


class _Inputs:
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
        return pd.read_parquet(path) if path else None

    def glob(self, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(pattern))


def _diagnostics(inputs: _Inputs) -> dict[str, dict]:
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


# -- sections -----------------------------------------------------------------------------


def _data_section(summary: Any, quarantine: pd.DataFrame | None, min_cell: int) -> dict:
    section: dict[str, Any] = {"available": summary is not None, "tables": [], "reasons": []}
    if summary is not None:
        tables = summary.get("tables", {})
        frame = pd.DataFrame(
            [
                {
                    "table": name,
                    "rows_in": int(t.get("rows_in", 0)),
                    "rows_accepted": int(t.get("rows_accepted", 0)),
                    "rows_quarantined": int(t.get("rows_quarantined", 0)),
                    "missing_codes_replaced": int(t.get("missing_codes_replaced", 0)),
                }
                for name, t in sorted(tables.items())
            ],
            columns=[
                "table",
                "rows_in",
                "rows_accepted",
                "rows_quarantined",
                "missing_codes_replaced",
            ],
        )
        # rows_in = accepted + quarantined: each table's row is an additive line.
        shown = suppress_table(
            frame,
            ["rows_accepted", "rows_quarantined", "rows_in"],
            min_cell,
            total_column="rows_in",
        )
        shown["missing_codes_replaced"] = [
            suppress_count(n, min_cell) for n in frame["missing_codes_replaced"]
        ]
        section["tables"] = shown.to_dict("records")
    if quarantine is not None and len(quarantine) and {"table", "rule"} <= set(quarantine):
        reasons = (
            quarantine.assign(column=quarantine.get("column", pd.Series(dtype=object)))
            .fillna({"column": NOT_AVAILABLE})
            .groupby(["table", "rule", "column"], sort=True)
            .size()
            .reset_index(name="rows")
        )
        reasons["rows"] = [suppress_count(n, min_cell) for n in reasons["rows"]]
        section["reasons"] = reasons.to_dict("records")
    section["quarantine_read"] = quarantine is not None
    return section


def _sample_section(
    clients: pd.DataFrame | None, panel: pd.DataFrame | None, min_cell: int
) -> dict:
    section: dict[str, Any] = {"available": clients is not None or panel is not None}
    ids = _client_ids(clients, panel)
    section["n_clients"] = suppress_count(len(ids), min_cell)
    section["n_therapists"] = _distinct(panel, "therapist_id", min_cell)
    section["n_sites"] = _distinct(panel, "site_id", min_cell)
    section["by_arm"] = []
    arms = _arms(clients, panel)
    if arms is not None:
        counts = arms.value_counts(sort=False).sort_index()
        table = pd.DataFrame({"arm": counts.index.astype(str), "clients": counts.to_numpy()})
        table = pd.concat(
            [table, pd.DataFrame({"arm": ["Total"], "clients": [int(counts.sum())]})],
            ignore_index=True,
        ).set_index("arm", drop=False)
        section["by_arm"] = suppress_table(table, ["clients"], min_cell, total_row="Total").to_dict(
            "records"
        )
    return section


def _engagement_section(
    clients: pd.DataFrame | None, analysis: Mapping[str, Any], min_cell: int
) -> dict:
    section: dict[str, Any] = {
        "available": clients is not None,
        "dropout_definition": str(analysis.get("dropout_definition", "end_reason")),
        "rows": [],
    }
    if clients is None:
        return section
    groups = _groups(clients)
    rows = []
    for name, part in groups:
        rows.append(
            {
                "group": name,
                "attendance_rate": _mean_sd(part, "attendance_rate", min_cell, fmt="{:.0%}"),
                "sessions_attended": _mean_sd(part, "sessions_attended", min_cell),
            }
        )
    _protect_overall(rows, ["attendance_rate", "sessions_attended"], min_cell)
    # Dropouts and non-dropouts per group, with the overall row as the total: a small count
    # in one arm must not be recoverable from the others.
    counts = pd.DataFrame(
        [_dropout_counts(part) for _, part in groups], index=[name for name, _ in groups]
    )
    hidden = suppression_mask(
        counts,
        ["dropout", "stayed", "defined"],
        min_cell,
        total_row=groups[-1][0],
        total_column="defined",
    )
    for row, (name, c) in zip(rows, counts.iterrows(), strict=True):
        if hidden.loc[name, ["dropout", "stayed"]].any():
            row["dropout_rate"] = suppressed_label(min_cell)
        else:
            row["dropout_rate"] = suppress_proportion(
                int(c["dropout"]), int(c["defined"]), min_cell
            )
    section["rows"] = rows
    section["has_dropout"] = "dropout" in clients.columns
    return section


def _outcomes_section(
    panel: pd.DataFrame | None, outcome: str, outcome_label: str, min_cell: int
) -> dict:
    section: dict[str, Any] = {
        "available": panel is not None and outcome in panel.columns,
        "outcome_label": outcome_label,
        "figure": None,
        "rows": [],
        "groups": [],
    }
    if not section["available"]:
        return section
    summary = trajectory_summary(panel, outcome, group="arm", min_cell=min_cell)
    png = trajectory_figure(summary, outcome_label)
    if png is not None:
        section["figure"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    groups = sorted(summary["group"].unique())
    section["groups"] = groups
    # Clients assessed per session over all arms; per-arm counts are left out, as at intake
    # they would give away arm sizes withheld in the Sample section.
    assessed = panel.loc[panel[outcome].notna()].groupby("session_number")["client_id"].nunique()
    for session, part in summary.groupby("session_number", sort=True):
        cells = {
            r["group"]: (
                f"{_num(r['mean'], 1)} [{_num(r['ci_low'], 1)}, {_num(r['ci_high'], 1)}]"
                if r["shown"]
                else suppressed_label(min_cell)
            )
            for _, r in part.iterrows()
        }
        section["rows"].append(
            {
                "session": int(session),
                "cells": [cells.get(g, NOT_AVAILABLE) for g in groups],
                "assessed": suppress_count(int(assessed.get(session, 0)), min_cell),
            }
        )
    return section


def _models_section(
    coefficients: pd.DataFrame | None, diagnostics: dict[str, dict], min_cell: int
) -> dict:
    section: dict[str, Any] = {"available": coefficients is not None, "models": []}
    if coefficients is None:
        return section
    for model_id, part in coefficients.groupby("model", sort=False):
        diag = diagnostics.get(str(model_id), {})
        n_clients = int(part["n_clients"].max()) if part["n_clients"].notna().any() else 0
        enough = n_clients >= min_cell
        terms = []
        for _, r in part.iterrows():
            digits = 3 if _finite(r["std_error"]) and r["std_error"] < 0.1 else 2
            terms.append(
                {
                    "term": _term_label(str(r["term"])),
                    "primary": _truthy(r.get("primary")),
                    "b": _num(r["estimate"], digits) if enough else suppressed_label(min_cell),
                    "se": _num(r["std_error"], digits) if enough else suppressed_label(min_cell),
                    "ci": (
                        f"[{_num(r['ci_low'], digits)}, {_num(r['ci_high'], digits)}]"
                        if enough
                        else suppressed_label(min_cell)
                    ),
                    "p": _p_value(r["p_value"]) if enough else suppressed_label(min_cell),
                }
            )
        order = list(_RANDOM_LABELS)
        variances = sorted(
            (diag.get("random_effects") or {}).items(),
            key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
        )
        random = [
            {
                "component": _RANDOM_LABELS.get(name, name),
                "variance": _num(value, 3, significant=True)
                if enough
                else suppressed_label(min_cell),
                "sd": (
                    _num(math.sqrt(value), 3, significant=True)
                    if enough and _finite(value) and value >= 0 and "covariance" not in name
                    else NOT_AVAILABLE
                    if enough
                    else suppressed_label(min_cell)
                ),
            }
            for name, value in variances
        ]
        first = part.iloc[0]
        converged = diag.get("converged", _truthy(first["converged"]))
        extras = diag.get("extras") or {}
        section["models"].append(
            {
                "id": str(model_id),
                "outcome": str(first["outcome"]),
                "exposure": str(first["exposure"]),
                "formula": diag.get("formula", ""),
                "structure": extras.get("structure", ""),
                "time_coding": extras.get("time_coding", ""),
                "method": diag.get("method", ""),
                "optimizer": diag.get("optimizer", ""),
                "converged": "yes" if converged else "no",
                "boundary": (
                    "yes: " + ", ".join(diag.get("boundary_components") or [])
                    if diag.get("boundary")
                    else "no"
                ),
                "warnings": [_suppress_counts_in(w, min_cell) for w in diag.get("warnings") or []],
                "n_obs": suppress_count(_int_or_none(first["n_obs"]), min_cell),
                "n_clients": suppress_count(n_clients, min_cell),
                "n_therapists": suppress_count(diag.get("n_therapists"), min_cell),
                "terms": terms,
                "random_effects": random,
                "standardized": _standardized_text(extras.get("standardized_effect"), enough),
            }
        )
    return section


def _summary_section(
    coefficients: pd.DataFrame | None,
    diagnostics: dict[str, dict],
    outcome_label: str,
    sections: dict,
    min_cell: int,
) -> dict:
    sentences = []
    sample = sections["sample"]
    if sample["available"]:
        sentences.append(
            f"The analysed sample holds {sample['n_clients']} clients seen by "
            f"{sample['n_therapists']} therapists."
        )
    primary = None
    if coefficients is not None and "primary" in coefficients.columns:
        flagged = coefficients.loc[coefficients["primary"].map(_truthy)]
        primary = flagged.iloc[0] if len(flagged) else None
    if primary is None:
        sentences.append("No primary model estimate was found in the results.")
        return {"sentences": sentences}
    diag = diagnostics.get(str(primary["model"]), {})
    extras = diag.get("extras") or {}
    n_clients = _int_or_none(primary["n_clients"]) or 0
    unit = "per unit of log(session + 1)" if extras.get("time_coding") == "log" else "per session"
    if n_clients < min_cell:
        sentences.append(
            f"The primary estimate is withheld: fewer than {min_cell} clients entered the model."
        )
        return {"sentences": sentences}
    est, low, high = primary["estimate"], primary["ci_low"], primary["ci_high"]
    direction = "falls" if est < 0 else "rises"
    exposure = str(primary["exposure"])
    coding = str(extras.get("exposure_coding", "as given"))
    if coding.startswith("1 = ") and ", 0 = " in coding:
        one, zero = coding.removeprefix("1 = ").split(", 0 = ", 1)
        contrast = f"with {exposure} {one} rather than {zero}"
    else:
        contrast = f"for each unit of {exposure}"
    sentences.append(
        f"Primary analysis ({primary['model']} model): {contrast}, "
        f"{outcome_label} {direction} by {_num(abs(est), 3)} points more {unit} "
        f"(time \u00d7 {exposure}: b = {_num(est, 3)}, 95% CI "
        f"{_num(low, 3)} to {_num(high, 3)}, p {_p_phrase(primary['p_value'])}; "
        f"{suppress_count(n_clients, min_cell)} clients, "
        f"{suppress_count(_int_or_none(primary['n_obs']), min_cell)} assessments)."
    )
    standardized = extras.get("standardized_effect") or {}
    if _finite(standardized.get("estimate")):
        sentences.append(
            f"At session {int(standardized['last_session'])} the model-implied difference "
            f"({standardized.get('contrast', '')}) is {_num(standardized['estimate'], 2)} intake "
            f"standard deviations (95% CI {_num(standardized['ci_low'], 2)} to "
            f"{_num(standardized['ci_high'], 2)})."
        )
    if not _truthy(primary["converged"]):
        sentences.append("The model did not converge: read its estimates with caution.")
    if diag.get("boundary"):
        sentences.append(
            "A random-effect variance is on the boundary (estimated as zero): see Models."
        )
    return {"sentences": sentences}


def _provenance(inputs: _Inputs, config: Mapping[str, Any], run_date: str) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "accord_version": accord.__version__,
        "run_date": run_date,
        "config_yaml": yaml.safe_dump(_plain(config), sort_keys=True, allow_unicode=True),
        "files": [{"path": k, "sha256": v} for k, v in sorted(inputs.read.items())],
        "packages": [{"name": k, "version": v} for k, v in versions.items()],
    }


# -- helpers ------------------------------------------------------------------------------


def _run_date(run_date: dt.date | str | None) -> str:
    if run_date is not None:
        return run_date.isoformat() if isinstance(run_date, dt.date) else str(run_date)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).date().isoformat()
    return dt.datetime.now(tz=dt.UTC).date().isoformat()


def _outcome_label(outcome: str) -> str:
    key, _, scale = outcome.partition(".")
    label = _INSTRUMENT_LABELS.get(key, key)
    return f"{label} {scale}" if scale else label


def _client_ids(clients: pd.DataFrame | None, panel: pd.DataFrame | None) -> pd.Index:
    if clients is not None and "client_id" in clients.columns:
        return pd.Index(clients["client_id"].unique())
    if panel is not None and "client_id" in panel.columns:
        return pd.Index(panel["client_id"].unique())
    return pd.Index([])


def _distinct(frame: pd.DataFrame | None, column: str, min_cell: int) -> str:
    if frame is None or column not in frame.columns:
        return NOT_AVAILABLE
    return suppress_count(int(frame[column].dropna().nunique()), min_cell)


def _arms(clients: pd.DataFrame | None, panel: pd.DataFrame | None) -> pd.Series | None:
    if clients is not None and "arm" in clients.columns:
        arms = clients.drop_duplicates("client_id")["arm"]
    elif panel is not None and "arm" in panel.columns:
        arms = panel.drop_duplicates("client_id")["arm"]
    else:
        return None
    arms = arms.astype(object)
    if arms.isna().all():
        return None
    return arms.fillna("(no arm)").astype(str)


def _groups(clients: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name, rows) per arm in sorted order, then all clients together last."""
    groups = []
    if "arm" in clients.columns and clients["arm"].notna().any():
        arm = clients["arm"].astype(object).fillna("(no arm)").astype(str)
        groups = [(name, part) for name, part in clients.groupby(arm, sort=True)]
    return [*groups, ("All clients", clients)]


def _mean_sd(frame: pd.DataFrame, column: str, min_cell: int, fmt: str = "{:.1f}") -> str:
    if column not in frame.columns:
        return NOT_AVAILABLE
    values = pd.to_numeric(frame[column], errors="coerce").dropna()
    n = len(values)
    mean = suppress_statistic(values.mean() if n else None, n, min_cell, fmt=fmt)
    if mean in (NOT_AVAILABLE, suppressed_label(min_cell)):
        return mean
    return f"{mean} ({fmt.format(values.std(ddof=1))})".replace("-", _MINUS)


def _protect_overall(rows: list[dict], columns: list[str], min_cell: int) -> None:
    """With exactly one arm's statistic withheld, the overall one would let a reader work it
    out from the other arms, so it is withheld too."""
    label = suppressed_label(min_cell)
    arms, overall = rows[:-1], rows[-1]
    for column in columns:
        if sum(r[column] == label for r in arms) == 1 and len(arms) > 1:
            overall[column] = label


def _dropout_counts(part: pd.DataFrame) -> dict[str, int]:
    if "dropout" not in part.columns:
        return {"dropout": 0, "stayed": 0, "defined": 0}
    values = part["dropout"].dropna().astype(bool)
    dropout = int(values.sum())
    return {"dropout": dropout, "stayed": len(values) - dropout, "defined": len(values)}


def _suppress_counts_in(text: str, min_cell: int) -> str:
    """A model warning with any count of clients or therapists in it suppressed."""
    return _COUNT_IN_TEXT.sub(
        lambda m: suppress_count(int(m.group(1)), min_cell) + m.group(2), str(text)
    )


def _standardized_text(effect: Mapping[str, Any] | None, enough: bool) -> str:
    if not effect or not _finite(effect.get("estimate")) or not enough:
        return ""
    return (
        f"Standardized effect at session {int(effect['last_session'])} "
        f"({effect.get('contrast', '')}, in intake SDs of the outcome): "
        f"{_num(effect['estimate'], 2)} [{_num(effect['ci_low'], 2)}, "
        f"{_num(effect['ci_high'], 2)}]"
    )


def _term_label(term: str) -> str:
    if term in _TERM_LABELS:
        return _TERM_LABELS[term]
    return term.replace("time:", "Time \u00d7 ").replace(":", " \u00d7 ")


def _num(value: Any, digits: int, *, significant: bool = False) -> str:
    if not _finite(value):
        return NOT_AVAILABLE
    text = f"{float(value):.{digits}g}" if significant else f"{float(value):.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", _MINUS)


def _p_value(p: Any) -> str:
    """APA style: three decimals without the leading zero, "< .001" below that."""
    if not _finite(p):
        return NOT_AVAILABLE
    if p < 0.001:
        return "< .001"
    return f"{p:.3f}".removeprefix("0")


def _p_phrase(p: Any) -> str:
    text = _p_value(p)
    return text if text.startswith("<") else f"= {text}"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) if value is not None and value is not pd.NA and value == value else False


def _int_or_none(value: Any) -> int | None:
    return int(value) if _finite(value) else None


def _plain(value: Any) -> Any:
    """Config as plain YAML types (tuples and numpy scalars become lists and numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
