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
import pyarrow.parquet as pq
import yaml

import accord
from accord.alliance import rupture_column
from accord.disclosure import (
    COMPLEMENTARY_LABEL,
    NOT_AVAILABLE,
    is_small,
    suppress_count,
    suppress_proportion,
    suppress_statistic,
    suppress_table,
    suppressed_label,
    suppression_mask,
)
from accord.errors import AccordError, ConfigError
from accord.instruments import Instrument, load_registry
from accord.io import write_text_atomic
from accord.report.figures import share_histogram, trajectory_figure, trajectory_summary

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
    "gas": "GAS",
}
_DROPOUT_TEXT = {
    "end_reason": "the recorded end reason is dropout",
    "min_sessions": "fewer than {min_sessions} sessions attended",
    "last_scheduled_missed": "the last scheduled session was missed",
}
#: The goal-setting exposures shown in the report, with their labels and display formats.
_EXPOSURES = {
    "joint_goal_share": ("Joint goal share", "{:.2f}"),
    "goal_consensus": ("Goal consensus", "{:.2f}"),
    "goal_agreement": ("Goal agreement", "{:.2f}"),
    "smart_quality": ("SMART quality", "{:.2f}"),
    "gas_t": ("GAS T-score (last)", "{:.1f}"),
}
_CATEGORY_LABELS = {
    "recovered": "Recovered",
    "improved": "Improved",
    "unchanged": "Unchanged",
    "deteriorated": "Deteriorated",
}
#: NHS Talking Therapies indicators: column, label, and what the percentage is of.
_NHS_INDICATORS = (
    ("nhs_finished", "Finished", "clients"),
    ("nhs_caseness", "At caseness", "finished"),
    ("nhs_recovery", "Recovery", "cases"),
    ("nhs_reliable_improvement", "Reliable improvement", "finished"),
    ("nhs_reliable_recovery", "Reliable recovery", "cases"),
    ("nhs_reliable_deterioration", "Reliable deterioration", "finished"),
)
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

    Reads validation/summary.json, validation/quarantine.csv, reliability.csv, the scoring
    settings in scores.parquet's metadata, measures_metadata.json, client_measures.parquet,
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
    reliability = inputs.csv("reliability.csv")
    scoring = inputs.parquet_metadata("scores.parquet", "accord")
    measures_metadata = inputs.json("measures_metadata.json")
    clients = inputs.parquet("client_measures.parquet")
    panel = inputs.parquet("session_panel.parquet")
    coefficients = inputs.csv("models/coefficients.csv")
    diagnostics = _diagnostics(inputs)
    settings = _measure_settings(measures_metadata, analysis)

    sections = {
        "data": _data_section(summary_json, quarantine, min_cell),
        "sample": _sample_section(clients, panel, min_cell),
        "measures": _measures_section(
            reliability, scoring, measures_metadata, settings, config, min_cell
        ),
        "engagement": _engagement_section(clients, settings, min_cell),
        "alliance": _alliance_section(clients, panel, settings, min_cell),
        "goalsetting": _goalsetting_section(clients, outcome_column, outcome_label, min_cell),
        "outcomes": _outcomes_section(panel, outcome_column, outcome_label, min_cell),
        "change": _change_section(clients, outcome_column, outcome_label, min_cell),
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
    clients: pd.DataFrame | None, settings: Mapping[str, Any], min_cell: int
) -> dict:
    section: dict[str, Any] = {
        "available": clients is not None,
        "dropout_definition": str(settings["dropout_definition"]),
        "dropout_text": _dropout_text(settings),
        "rows": [],
    }
    if clients is None:
        return section
    groups = _groups(clients)
    columns = {
        "sessions_attended": "{:.1f}",
        "attendance_rate": "{:.0%}",
        "homework_rate": "{:.0%}",
        "goal_review_rate": "{:.0%}",
    }
    rows = []
    for name, part in groups:
        row = {"group": name}
        for column, fmt in columns.items():
            row[column] = _mean_sd(part, column, min_cell, fmt=fmt)
        rows.append(row)
    _protect_overall(rows, list(columns), min_cell)
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
    section["figure"] = _data_uri(trajectory_figure(summary, outcome_label))
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


def _measures_section(
    reliability: pd.DataFrame | None,
    scoring: Any,
    metadata: Any,
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    min_cell: int,
) -> dict:
    required = {"instrument", "scale", "wave", "n", "alpha"}
    section: dict[str, Any] = {
        "reliability_available": reliability is not None and required <= set(reliability),
        "reliability": [],
        "reliability_notes": [],
        "choices": [],
        "choices_available": isinstance(metadata, dict) or isinstance(scoring, dict),
    }
    if section["reliability_available"]:
        rows, notes = _reliability_rows(reliability, min_cell)
        section["reliability"], section["reliability_notes"] = rows, notes
    section["choices"] = _choices(
        scoring if isinstance(scoring, dict) else {},
        metadata if isinstance(metadata, dict) else {},
        settings,
        _registry(config),
        min_cell,
    )
    return section


def _reliability_rows(reliability: pd.DataFrame, min_cell: int) -> tuple[list[dict], list[str]]:
    """One row per instrument, scale and rater: the intake wave, the first treatment wave and
    the range of alpha over every wave with enough clients; notes say why a value is missing."""
    table = reliability.copy()
    if "rater" not in table.columns:
        table["rater"] = "client"
    for column in ("alpha_ci_low", "alpha_ci_high", "omega", "reason"):
        if column not in table.columns:
            table[column] = np.nan
    table["rater"] = table["rater"].fillna("client").astype(str)
    several_raters = table["rater"].nunique() > 1
    rows, notes = [], []
    keys = sorted(
        table.groupby(["instrument", "scale", "rater"], sort=False).groups,
        key=lambda k: (str(k[0]), str(k[1]) != "total", str(k[1]), str(k[2])),
    )
    for instrument, scale, rater in keys:
        part = table.loc[
            (table["instrument"] == instrument)
            & (table["scale"] == scale)
            & (table["rater"] == rater)
        ].sort_values("wave")
        label = _scale_label(str(instrument), str(scale))
        if several_raters:
            label += f" ({rater})"
        intake = part.loc[part["wave"] == 0]
        later = part.loc[part["wave"] > 0]
        enough = part.loc[(part["n"] >= min_cell) & part["alpha"].map(_finite)]
        if len(enough) > 1:
            spread = f"{_coef(enough['alpha'].min())}\u2013{_coef(enough['alpha'].max())}"
            spread += f" ({len(enough)} waves)"
        elif len(enough) == 1:
            spread = f"{_coef(enough['alpha'].iloc[0])} (1 wave)"
        else:
            spread = NOT_AVAILABLE
        rows.append(
            {
                "measure": label,
                "intake": _reliability_cells(intake.iloc[0] if len(intake) else None, min_cell),
                "first_wave": str(int(later["wave"].iloc[0])) if len(later) else NOT_AVAILABLE,
                "first": _reliability_cells(later.iloc[0] if len(later) else None, min_cell),
                "alpha_range": spread,
            }
        )
        reasons = part.loc[part["reason"].notna() & (part["reason"].astype(str) != "")]
        for reason, waves in reasons.groupby("reason", sort=True)["wave"]:
            listed = ", ".join(str(int(w)) for w in sorted(waves))
            plural = "s" if len(waves) > 1 else ""
            notes.append(
                f"{label}, wave{plural} {listed}: {_suppress_counts_in(str(reason), min_cell)}"
            )
    return rows, notes


def _reliability_cells(row: pd.Series | None, min_cell: int) -> dict[str, str]:
    if row is None:
        return {"n": NOT_AVAILABLE, "alpha": NOT_AVAILABLE, "omega": NOT_AVAILABLE}
    n = _int_or_none(row["n"]) or 0
    if n < min_cell:
        hidden = suppressed_label(min_cell) if n else NOT_AVAILABLE
        return {"n": suppress_count(n, min_cell), "alpha": hidden, "omega": hidden}
    alpha = _coef(row["alpha"])
    if alpha != NOT_AVAILABLE and _finite(row["alpha_ci_low"]) and _finite(row["alpha_ci_high"]):
        alpha += f" [{_coef(row['alpha_ci_low'])}, {_coef(row['alpha_ci_high'])}]"
    return {"n": suppress_count(n, min_cell), "alpha": alpha, "omega": _coef(row["omega"])}


def _choices(
    scoring: Mapping[str, Any],
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
    registry: Mapping[str, Instrument],
    min_cell: int,
) -> list[dict[str, str]]:
    """The scoring and measure choices behind the results, as (label, text) items."""
    choices: list[dict[str, str]] = []

    def add(label: str, text: str) -> None:
        choices.append({"label": label, "text": text})

    summary = scoring.get("summary") or []
    scored = sorted({str(r.get("instrument")) for r in summary if isinstance(r, dict)})
    for key in scored:
        inst = registry.get(key)
        if inst is None or inst.score == "gas":
            continue
        text = _prorating_text(inst)
        counts = _scored_counts(summary, key, min_cell)
        add(f"Scoring, {_instrument_label(key)}", f"{text}{counts}")
    rules = scoring.get("scoring") or {}
    if rules.get("supplied_total"):
        text = str(rules["supplied_total"])
        add("Supplied totals", f"{text[:1].upper()}{text[1:]}.")
    if "gas_rho" in rules:
        weights = {
            "equal": "equal goal weights",
            "importance": "the client's importance ratings as goal weights",
        }.get(str(rules.get("gas_weights")), f"goal weights: {rules.get('gas_weights')}")
        add(
            "GAS T-score",
            f"Kiresuk-Sherman T-score with \u03c1 = {_num(rules['gas_rho'], 2)} and {weights}; "
            "goals without a rating are left out.",
        )
    if settings.get("dropout_definition"):
        add(
            "Dropout",
            f"{_dropout_text(settings).capitalize()} "
            f"(dropout_definition = {settings['dropout_definition']}).",
        )
    thresholds = metadata.get("change_thresholds") or {}
    if isinstance(thresholds, dict) and thresholds:
        # Outcome instruments in the order the study lists them (the primary one first).
        listed = [str(k) for k in metadata.get("outcome_instruments") or [] if k in thresholds]
        keys = listed + sorted(k for k in thresholds if k not in listed)
        method = settings.get("change_method", "published")
        parts = [_reliable_change_text(k, thresholds[k]) for k in keys]
        add(f"Reliable change (change_method = {method})", "; ".join(parts) + ".")
        cutoff = str(settings.get("clinical_cutoff", "registry"))
        parts = [_cutoff_text(k, thresholds[k], cutoff) for k in keys]
        add(f"Clinical cut-offs (clinical_cutoff = {cutoff})", "; ".join(parts) + ".")
    if settings.get("alliance_instrument"):
        early = settings.get("early_sessions", 3)
        add(
            "Alliance",
            f"{_alliance_label(settings)}; early alliance is the mean of the first {early} "
            "assessed sessions.",
        )
    if settings.get("goal_consensus_instrument"):
        scale = str(settings.get("goal_consensus_scale", "goal"))
        add(
            "Goal consensus",
            f"{_scale_label(str(settings['goal_consensus_instrument']), scale)}, client-rated, "
            f"mean of the first {settings.get('early_sessions', 3)} assessed sessions.",
        )
    if settings.get("rupture_sds"):
        sds = " and ".join(f"{_num(k, 1).removesuffix('.0')}" for k in settings["rupture_sds"])
        window = settings.get("rupture_repair_window", 3)
        add(
            "Ruptures",
            f"An assessed session whose alliance falls at least k of the client's own SDs below "
            f"the previous assessed session, k = {sds}; repaired when the alliance is back to "
            f"its pre-rupture level within {window} assessed sessions.",
        )
    if "srs_alert_threshold" in settings:
        add(
            "SRS alerts",
            f"SRS below {_num(settings['srs_alert_threshold'], 0)}, or a drop of "
            f"{_num(settings.get('srs_alert_drop', 1), 0)} point or more from the previous "
            "session.",
        )
    if settings.get("primary_exposure"):
        add("Primary exposure", f"{settings['primary_exposure']}.")
    return choices


def _prorating_text(inst: Instrument) -> str:
    k, m = inst.items, inst.prorate_max_missing
    if m > 0:
        how = "mean of the answered items" if inst.score == "mean" else f"sum \u00d7 {k} / answered"
        text = f"total prorated ({how}) when at most {m} of {k} items are missing"
    else:
        text = f"all {k} items needed for the total"
    if inst.subscales:
        s = inst.subscale_prorate_max_missing
        text += (
            "; each subscale needs all its items"
            if s == 0
            else f"; a subscale is prorated when at most {s} of its items are missing"
        )
    if inst.reverse_items:
        text += f"; reverse-keyed items {', '.join(inst.reverse_items)}"
    return text[0].upper() + text[1:]


def _scored_counts(summary: list, key: str, min_cell: int) -> str:
    """Forms scored, prorated and not scored on the instrument's total (all raters)."""
    rows = [
        r
        for r in summary
        if isinstance(r, dict) and r.get("instrument") == key and r.get("scale") == "total"
    ]
    if not rows:
        return "."
    total = {name: sum(int(r.get(name) or 0) for r in rows) for name in ("scored", "prorated")}
    not_scored = sum(int(r.get("not_scored") or 0) for r in rows)
    return (
        f" ({suppress_count(total['prorated'], min_cell)} of "
        f"{suppress_count(total['scored'], min_cell)} scored forms prorated; "
        f"{suppress_count(not_scored, min_cell)} not scored)."
    )


def _reliable_change_text(key: str, t: Mapping[str, Any]) -> str:
    """How much change counts as reliable for one instrument (from the change thresholds)."""
    label = _instrument_label(key)
    points = t.get("reliable_change")
    if t.get("reliable_change_method") == "published" and _finite(points):
        return f"{label} {_num(points, 1).removesuffix('.0')} points (published value)"
    if not _finite(t.get("rci_threshold_points")):
        return f"{label} not available"
    text = (
        f"{label} |RCI| > {_num(t.get('rci_z', 1.96), 2)}, i.e. "
        f"{_num(t['rci_threshold_points'], 2)} points (Jacobson-Truax"
    )
    if _finite(t.get("reliability")) and _finite(t.get("sd_pre")):
        text += (
            f" with r_xx = {_coef(t['reliability'])} and SD_pre = {_num(t['sd_pre'], 2)} "
            f"from {t.get('sd_source', 'intake')}"
        )
    return text + ")"


def _cutoff_text(key: str, t: Mapping[str, Any], setting: str) -> str:
    """The clinical cut-off of one instrument; its source is named where it is not the one
    the setting asked for (an instrument without norms keeps its registry cut-off)."""
    label = _instrument_label(key)
    if not _finite(t.get("cutoff")):
        return f"{label} none"
    sign = "\u2265" if t.get("higher_is", "worse") == "worse" else "<"
    text = f"{label} {sign} {_num(t['cutoff'], 2).removesuffix('.00')}"
    source = str(t.get("cutoff_source", setting))
    return text if source == setting else f"{text} ({source})"


def _alliance_section(
    clients: pd.DataFrame | None,
    panel: pd.DataFrame | None,
    settings: Mapping[str, Any],
    min_cell: int,
) -> dict:
    label = _alliance_label(settings)
    measures = ["early_alliance", "mean_alliance", "alliance_slope"]
    section: dict[str, Any] = {
        "available": clients is not None and any(c in clients.columns for c in measures),
        "label": label,
        "short_label": _scale_label(
            str(settings.get("alliance_instrument", "wai_sr")),
            str(settings.get("alliance_scale", "total")),
        ),
        "early_sessions": settings.get("early_sessions", 3),
        "repair_window": settings.get("rupture_repair_window", 3),
        "rows": [],
        "ruptures": [],
        "rupture_sds": [],
        "figure": None,
        "panel_available": panel is not None and "alliance" in panel.columns,
    }
    if section["panel_available"]:
        summary = trajectory_summary(panel, "alliance", group="arm", min_cell=min_cell)
        png = trajectory_figure(summary, section["short_label"], xlabel="Session")
        section["figure"] = _data_uri(png)
    if not section["available"]:
        return section
    groups = _groups(clients)
    n_early = _n_cells(groups, "early_alliance", min_cell)
    rows = []
    for (name, part), n in zip(groups, n_early, strict=True):
        rows.append(
            {
                "group": name,
                "n": n,
                "early_alliance": _mean_sd(part, "early_alliance", min_cell, fmt="{:.2f}"),
                "mean_alliance": _mean_sd(part, "mean_alliance", min_cell, fmt="{:.2f}"),
                "alliance_slope": _mean_sd(part, "alliance_slope", min_cell, fmt="{:.3f}"),
            }
        )
    _protect_overall(rows, measures, min_cell)
    section["rows"] = rows

    sds = [k for k in settings.get("rupture_sds") or [1, 2] if rupture_column(k) in clients]
    flags = {}
    for k in sds:
        count = pd.to_numeric(clients[rupture_column(k)], errors="coerce")
        repaired = pd.to_numeric(
            clients.get(rupture_column(k, True), pd.Series(np.nan, index=clients.index)),
            errors="coerce",
        )
        flags[f"_rupture_{k:g}"] = _flag(count > 0, count.isna())
        # Repair is defined for clients with at least one rupture.
        flags[f"_repaired_{k:g}"] = _flag(repaired > 0, ~(count > 0) | repaired.isna())
    if flags:
        flagged = _groups(clients.assign(**flags))
        cells = {name: _rate_cells(flagged, name, min_cell) for name in flags}
        section["rupture_sds"] = [_num(k, 1).removesuffix(".0") for k in sds]
        section["ruptures"] = [
            {
                "group": name,
                "cells": [
                    c
                    for k in sds
                    for c in (cells[f"_rupture_{k:g}"][i], cells[f"_repaired_{k:g}"][i])
                ],
            }
            for i, (name, _) in enumerate(flagged)
        ]
    return section


def _goalsetting_section(
    clients: pd.DataFrame | None, outcome: str, outcome_label: str, min_cell: int
) -> dict:
    exposures = [c for c in _EXPOSURES if clients is not None and c in clients.columns]
    section: dict[str, Any] = {
        "available": bool(exposures),
        "groups": [],
        "rows": [],
        "figure": None,
        "figure_note": "",
        "correlations": [],
        "correlates": [],
    }
    if not exposures:
        return section
    groups = _groups(clients)
    section["groups"] = [name for name, _ in groups]
    for column in exposures:
        label, fmt = _EXPOSURES[column]
        means = [
            {"group": name, "value": _mean_sd(part, column, min_cell, fmt=fmt)}
            for name, part in groups
        ]
        _protect_overall(means, ["value"], min_cell)
        counts = _n_cells(groups, column, min_cell)
        section["rows"].append(
            {
                "label": label,
                "cells": [
                    {"value": m["value"], "n": n} for m, n in zip(means, counts, strict=True)
                ],
            }
        )
    if "joint_goal_share" in clients.columns:
        arms = groups[:-1] or groups
        shares = [(name, part["joint_goal_share"]) for name, part in arms]
        png = share_histogram(shares, xlabel="Joint goal share", min_cell=min_cell)
        section["figure"] = _data_uri(png)
        if png is None:
            section["figure_note"] = (
                f"The joint goal share is not drawn: an arm has fewer than {min_cell} clients "
                f"with a value, or every bin would be withheld."
            )
    correlates = [
        ("early_alliance", "Early alliance"),
        ("attendance_rate", "Attendance rate"),
        (f"{outcome}_change", f"{outcome_label} change"),
    ]
    section["correlates"] = [label for _, label in correlates]
    for column in ("joint_goal_share", "goal_consensus"):
        if column not in clients.columns:
            continue
        section["correlations"].append(
            {
                "label": _EXPOSURES[column][0],
                "cells": [_correlation(clients, column, y, min_cell) for y, _ in correlates],
            }
        )
    return section


def _change_section(
    clients: pd.DataFrame | None, outcome: str, outcome_label: str, min_cell: int
) -> dict:
    category = f"{outcome}_category"
    nhs = [c for c in _NHS_INDICATORS if clients is not None and c[0] in clients.columns]
    section: dict[str, Any] = {
        "outcome_label": outcome_label,
        "categories_available": clients is not None and category in clients.columns,
        "categories": [],
        "category_labels": list(_CATEGORY_LABELS.values()),
        "nhs_available": bool(nhs),
        "nhs_columns": [{"label": label, "of": of} for _, label, of in nhs],
        "nhs": [],
        "response": [],
        "response_columns": [],
    }
    if clients is None:
        return section
    groups = _groups(clients)
    total_row = groups[-1][0]
    if section["categories_available"]:
        values = clients[category].astype(object).where(clients[category].notna(), None)
        counts = pd.DataFrame(
            [
                {
                    **{c: int((values.loc[part.index] == c).sum()) for c in _CATEGORY_LABELS},
                    "n": int(values.loc[part.index].isin(list(_CATEGORY_LABELS)).sum()),
                }
                for _, part in groups
            ],
            index=[name for name, _ in groups],
        )
        columns = [*_CATEGORY_LABELS, "n"]
        shown = suppress_table(
            counts,
            columns,
            min_cell,
            total_row=total_row if len(groups) > 1 else None,
            total_column="n",
        )
        for name in counts.index:
            n_text = shown.loc[name, "n"]
            cells = []
            for c in _CATEGORY_LABELS:
                text = shown.loc[name, c]
                if text.isdigit() and n_text.isdigit() and counts.loc[name, "n"] > 0:
                    text += f" ({counts.loc[name, c] / counts.loc[name, 'n']:.1%})"
                cells.append(text)
            section["categories"].append({"group": name, "cells": cells, "n": n_text})
    if nhs:
        cells = {column: _rate_cells(groups, column, min_cell) for column, _, _ in nhs}
        section["nhs"] = [
            {"group": name, "cells": [cells[column][i] for column, _, _ in nhs]}
            for i, (name, _) in enumerate(groups)
        ]
    response = [c for c in ("phq9_response", "phq9_remission") if c in clients.columns]
    if response:
        cells = {column: _rate_cells(groups, column, min_cell) for column in response}
        section["response"] = [
            {"group": name, "cells": [cells[column][i] for column in response]}
            for i, (name, _) in enumerate(groups)
        ]
        section["response_columns"] = [
            {"phq9_response": "Response", "phq9_remission": "Remission"}[c] for c in response
        ]
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


def _dropout_text(settings: Mapping[str, Any]) -> str:
    definition = str(settings.get("dropout_definition"))
    text = _DROPOUT_TEXT.get(definition, definition)
    return text.format(min_sessions=settings.get("dropout_min_sessions", 2))


def _registry(config: Mapping[str, Any]) -> Mapping[str, Instrument]:
    """The instrument registry with the config's own instruments (built-ins only if those are
    not valid: the choices list then leaves the custom ones out)."""
    try:
        return load_registry(config.get("instruments") or None)
    except ConfigError:
        return load_registry()


def _instrument_label(key: str) -> str:
    return _INSTRUMENT_LABELS.get(key, key)


def _scale_label(instrument: str, scale: str) -> str:
    label = _instrument_label(instrument)
    return label if scale in ("total", "t_score", "") else f"{label} {scale}"


def _alliance_label(settings: Mapping[str, Any]) -> str:
    instrument = str(settings.get("alliance_instrument", "wai_sr"))
    scale = str(settings.get("alliance_scale", "total"))
    rater = str(settings.get("alliance_rater", "client"))
    return f"{_instrument_label(instrument)} {scale}, {rater}-rated"


def _data_uri(png: bytes | None) -> str | None:
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _flag(condition: pd.Series, missing: pd.Series) -> pd.Series:
    """A nullable boolean column: `condition`, NA where `missing`."""
    values = pd.array(condition.fillna(False).astype(bool).to_numpy(), dtype="boolean")
    values[missing.fillna(True).astype(bool).to_numpy()] = pd.NA
    return pd.Series(values, index=condition.index)


def _n_cells(groups: list[tuple[str, pd.DataFrame]], column: str, min_cell: int) -> list[str]:
    """Clients with a value of `column` per group; the last group (all clients) is the total,
    so a small arm is protected by complementary suppression."""
    counts = pd.DataFrame(
        {
            "n": [
                int(pd.to_numeric(part[column], errors="coerce").notna().sum())
                if column in part.columns
                else 0
                for _, part in groups
            ]
        },
        index=[name for name, _ in groups],
    )
    total_row = groups[-1][0] if len(groups) > 1 else None
    return list(suppress_table(counts, ["n"], min_cell, total_row=total_row)["n"])


def _rate_cells(
    groups: list[tuple[str, pd.DataFrame]], column: str, min_cell: int, *, fmt: str = "{:.1%}"
) -> list[str]:
    """A yes/no measure per group as "count (percent)" of the clients for whom it is defined.

    Yes, no and defined counts form a table whose last row (all clients) is the total and whose
    defined column is each row's total; a cell whose yes or no count is hidden there is
    withheld, "<11" when the yes count itself is small or too few clients are defined, "*"
    when it is hidden to protect another cell.
    """
    counts = pd.DataFrame(
        [_flag_counts(part, column) for _, part in groups], index=[name for name, _ in groups]
    )
    hidden = suppression_mask(
        counts,
        ["yes", "no", "defined"],
        min_cell,
        total_row=groups[-1][0] if len(groups) > 1 else None,
        total_column="defined",
    )
    cells = []
    for name, c in counts.iterrows():
        yes, defined = int(c["yes"]), int(c["defined"])
        if defined == 0:
            cells.append(NOT_AVAILABLE)
        elif is_small(yes, min_cell) or defined < min_cell:
            cells.append(suppressed_label(min_cell))
        elif hidden.loc[name, ["yes", "no", "defined"]].any():
            cells.append(COMPLEMENTARY_LABEL)
        else:
            cells.append(f"{yes} ({fmt.format(yes / defined)})")
    return cells


def _flag_counts(part: pd.DataFrame, column: str) -> dict[str, int]:
    if column not in part.columns:
        return {"yes": 0, "no": 0, "defined": 0}
    values = part[column].dropna().astype(bool)
    yes = int(values.sum())
    return {"yes": yes, "no": len(values) - yes, "defined": len(values)}


def _correlation(frame: pd.DataFrame, x: str, y: str, min_cell: int) -> dict[str, str]:
    """Pearson r of two client measures over the clients with both, with a Fisher-z 95% CI."""
    empty = {"r": NOT_AVAILABLE, "ci": "", "n": ""}
    if x not in frame.columns or y not in frame.columns:
        return empty
    pair = frame[[x, y]].apply(pd.to_numeric, errors="coerce").astype(float).dropna()
    n = len(pair)
    if n == 0:
        return empty
    if n < min_cell:
        return {**empty, "r": suppressed_label(min_cell)}
    if pair[x].std() == 0 or pair[y].std() == 0:
        return {**empty, "n": str(n)}
    r = float(np.corrcoef(pair[x], pair[y])[0, 1])
    ci = ""
    if n > 3 and abs(r) < 1:
        half = 1.959963984540054 / math.sqrt(n - 3)
        ci = f"[{_coef(math.tanh(math.atanh(r) - half))}, {_coef(math.tanh(math.atanh(r) + half))}]"
    return {"r": _coef(r), "ci": ci, "n": str(n)}


def _coef(value: Any) -> str:
    """A coefficient bounded by 1 (alpha, omega, r) in APA style: two decimals, no leading zero."""
    text = _num(value, 2)
    if text.lstrip(_MINUS).startswith("0."):
        text = text.replace("0.", ".", 1)
    return text


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
