"""Data: records received, quarantined and validated per table; clients from validation to each
analysis; identifier-guard warnings; missing outcome data by instrument and session; attrition
(clients without a post score) by arm and by session of the last assessment, and its relation to
the exposure."""

from __future__ import annotations

import pandas as pd

from accord.core.disclosure import (
    COMPLEMENTARY_LABEL,
    NOT_AVAILABLE,
    is_small,
    structural_count,
    suppress_count,
    suppress_table,
    suppressed_label,
)
from accord.models.missingness import (
    attrition_by_last_session,
    attrition_flag,
    attrition_vs_exposure,
)
from accord.report import aggregate as agg
from accord.report.context import ReportContext
from accord.report.labels import label
from accord.report.ledger import SIZE, Ledger
from accord.report.numbers import interval, num, p_phrase, p_value
from accord.report.parts import Bullets, Heading, Section, Text, table
from accord.report.sections.summary import primary_row
from accord.report.text import instrument_label

NOT_GIVEN = "not given"


def build(ctx: ReportContext) -> Section:
    """The Data section."""
    section = Section("data", "Data")
    section.add(Heading("Flow of records and clients", "data-flow"))
    if ctx.summary is None:
        section.add(Text("No validation summary was found (validation/summary.json).", "missing"))
    else:
        section.add(_flow(ctx))
    section.add(_analysed(ctx))
    section.add(*_quarantine(ctx))
    section.add(*_guard(ctx))
    section.add(Heading("Missing data", "missing-data"))
    section.add(*_missing(ctx))
    section.add(Heading("Attrition", "attrition"))
    section.add(*_attrition(ctx))
    return section


def _flow(ctx: ReportContext):
    tables = (ctx.summary or {}).get("tables", {})
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
        columns=["table", "rows_in", "rows_accepted", "rows_quarantined", "missing_codes_replaced"],
    )
    rows = [_flow_row(r, ctx.min_cell) for _, r in frame.iterrows()]
    return table(
        "data_flow",
        "Records received, validated and quarantined, by table",
        ["Table", "Received", "Validated", "Quarantined", "Missing codes replaced"],
        rows,
        note=(
            "Received = validated + quarantined. A quarantined row is left out of every "
            "analysis; the reasons follow. Missing codes are values declared as meaning "
            "\u201cmissing\u201d in the config. Rows and cells are counts of records, shown "
            "whole; only the clients validated, a count of people, is withheld when small."
        ),
    )


def _flow_row(r: pd.Series, min_cell: int) -> tuple:
    """One table's records: received, validated and quarantined rows and missing codes are
    data-quality counts, shown whole; a clients table's validated rows are its clients, a
    count of people, withheld from 1 to ``min_cell - 1`` with the rows received (which would
    give it back by subtraction)."""
    received = structural_count(r["rows_in"])
    validated = structural_count(r["rows_accepted"])
    if r["table"] == "clients" and is_small(r["rows_accepted"], min_cell):
        received, validated = COMPLEMENTARY_LABEL, suppressed_label(min_cell)
    return (
        r["table"],
        received,
        validated,
        structural_count(r["rows_quarantined"]),
        structural_count(r["missing_codes_replaced"]),
    )


def _analysed(ctx: ReportContext):
    """Clients with validated records and clients in each model (the CONSORT 'analysed' box)."""
    if ctx.clients is None or ctx.coefficients is None or "n_clients" not in ctx.coefficients:
        return None
    n_valid = int(ctx.clients["client_id"].nunique()) if "client_id" in ctx.clients else 0
    per_model = ctx.coefficients.groupby("model", sort=False)["n_clients"].max()
    primary = primary_row(ctx)
    first = [str(primary["model"])] if primary is not None else []
    order = list(dict.fromkeys([*first, *per_model.index.astype(str)]))
    records = []
    for model in order:
        analysed = per_model.get(model)
        if analysed is None or pd.isna(analysed) or int(analysed) > n_valid:
            continue
        analysed = int(analysed)
        records.append(
            {"model": model, "valid": n_valid, "analysed": analysed, "left": n_valid - analysed}
        )
    if not records:
        return None
    frame = pd.DataFrame(records).set_index("model", drop=False)
    shown = suppress_table(frame, ["analysed", "left", "valid"], ctx.min_cell, total_column="valid")
    rows = [_analysed_row(ctx.ledger, r, frame.loc[model]) for model, r in shown.iterrows()]
    return table(
        "data_clients_analysed",
        "Clients with validated records and clients analysed, by model",
        ["Model", "Clients validated", "Analysed", "Left out"],
        rows,
        note=(
            "Left out: clients without the model's outcome, exposure or covariates (see each "
            "model's warnings). The primary model is listed first."
        ),
    )


def _analysed_row(ledger: Ledger, shown: pd.Series, counts: pd.Series) -> tuple:
    """One model's row, its counts published to the report's audit: validated = analysed +
    left out, where a model's analysed clients are printed in other sections too."""
    model = str(counts["model"])
    valid = ledger.count("clients", counts["valid"], shown["valid"], role=SIZE)
    analysed = ledger.count(f"model[{model}].clients", counts["analysed"], shown["analysed"])
    left = ledger.count(f"model[{model}].left", counts["left"], shown["left"])
    ledger.relate("clients", [f"model[{model}].clients", f"model[{model}].left"])
    return (label(model), valid, analysed, left)


def _quarantine(ctx: ReportContext) -> list:
    q = ctx.quarantine
    if q is not None and len(q) and {"table", "rule"} <= set(q):
        reasons = (
            q.assign(column=q.get("column", pd.Series(dtype=object)))
            .fillna({"column": NOT_AVAILABLE})
            .groupby(["table", "rule", "column"], sort=True)
            .size()
            .reset_index(name="rows")
        )
        rows = [
            (r["table"], r["rule"], r["column"], structural_count(r["rows"]))
            for _, r in reasons.iterrows()
        ]
        return [
            table(
                "data_quarantine_reasons",
                "Quarantine reasons (rows; a row can have more than one reason)",
                ["Table", "Rule", "Column", "Rows"],
                rows,
                text_columns=frozenset({1, 2}),
            )
        ]
    if q is not None:
        return [Text("No row was quarantined.")]
    return [Text("No quarantine list was found (validation/quarantine.csv).", "missing")]


def _guard(ctx: ReportContext) -> list:
    guard = (ctx.summary or {}).get("identifier_guard") or {}
    warnings = [w for w in guard.get("warnings") or [] if isinstance(w, dict)]
    if not warnings:
        if guard:
            return [Text("The identifier guard raised no warning.")]
        return []
    items = []
    for w in warnings:
        columns = ", ".join(str(c) for c in w.get("columns") or [])
        items.append(
            (
                f"{w.get('table', 'table')}",
                f"{suppress_count(w.get('combinations'), ctx.min_cell)} combinations of "
                f"({columns}) are shared by fewer than {w.get('k', '?')} clients "
                f"({suppress_count(w.get('clients'), ctx.min_cell)} clients in all). Share no "
                "client-level output without coarser bands.",
            )
        )
    return [
        Text("Identifier-guard warnings (quasi-identifiers):"),
        Bullets(tuple(items), "warnings"),
    ]


def _missing(ctx: ReportContext) -> list:
    out: list = []
    m = ctx.missing_by_session
    need = {"instrument", "session_number", "expected", "scored"}
    if m is None or not need <= set(m.columns):
        out.append(
            Text("No missing-data summary was found (models/missing_by_session.csv).", "missing")
        )
    else:
        out.append(_missing_table(m, ctx.min_cell))
    v = ctx.missingness_vs_exposure
    if v is not None and len(v) and {"instrument", "odds_ratio"} <= set(v.columns):
        rows = []
        for _, r in v.iterrows():
            enough = int(r.get("n_clients", 0) or 0) >= ctx.min_cell
            hide = suppressed_label(ctx.min_cell)
            rows.append(
                (
                    instrument_label(str(r["instrument"])),
                    suppress_count(r.get("n_clients"), ctx.min_cell),
                    suppress_count(r.get("n_sessions"), ctx.min_cell),
                    f"{num(r['missing_share'] * 100, 1)}%" if enough else hide,
                    num(r["odds_ratio"], 2) if enough else hide,
                    interval(r["ci_low"], r["ci_high"], 2) if enough else hide,
                    p_value(r["p_value"]) if enough else hide,
                )
            )
        exposure = str(v["exposure"].iloc[0]) if "exposure" in v.columns else ctx.exposure
        out.append(
            table(
                "data_missingness_vs_exposure",
                f"Is a missing score related to {label(exposure).lower()}? Logistic regression "
                "per instrument",
                ["Instrument", "Clients", "Sessions", "Missing", "Odds ratio", "95% CI", "p"],
                rows,
                note=(
                    "Odds of a missing score at an attended session per unit of the exposure "
                    "(logistic regression, SEs robust to clustering within client). An odds "
                    "ratio far from 1 means scores are not "
                    "missing completely at random with respect to the exposure."
                ),
            )
        )
    return out


def _missing_table(m: pd.DataFrame, min_cell: int):
    instruments = list(dict.fromkeys(m["instrument"].astype(str)))
    sessions = sorted(int(s) for s in m["session_number"].unique())
    cells: dict[tuple[str, int], tuple[str, str]] = {}
    for _, r in m.iterrows():
        expected, scored = int(r["expected"]), int(r["scored"])
        line = pd.DataFrame(
            {"scored": [scored], "missing": [expected - scored], "expected": [expected]}
        )
        shown = suppress_table(
            line, ["scored", "missing", "expected"], min_cell, total_column="expected"
        ).iloc[0]
        missing = shown["missing"]
        if scored == 0 and expected > 0:
            missing = NOT_GIVEN
        elif missing.isdigit() and expected >= min_cell:
            missing = f"{missing} ({(expected - scored) / expected:.0%})"
        cells[(str(r["instrument"]), int(r["session_number"]))] = (shown["expected"], missing)
    rows = []
    for s in sessions:
        row = [str(s)]
        for inst in instruments:
            row.extend(cells.get((inst, s), (NOT_AVAILABLE, NOT_AVAILABLE)))
        rows.append(row)
    columns = ["Session"] + ["Expected", "Missing"] * len(instruments)
    spans = (("", 1), *((instrument_label(i), 2) for i in instruments))
    return table(
        "data_missing_by_session",
        "Missing scores by instrument and session (clients)",
        columns,
        rows,
        spans=spans,
        note=(
            "Expected: clients who attended the session (all clients at intake, session 0). "
            "Missing: expected but without a score, with the percentage of those expected; "
            f"\u201c{NOT_GIVEN}\u201d: no client has a score at that session, as when an "
            "instrument is given only at some sessions."
        ),
    )


def _attrition(ctx: ReportContext) -> list:
    """Clients without a post (end-of-treatment) score: by arm, by the session of their last
    assessment, and a logistic test against the exposure."""
    clients, outcome, label, min_cell = ctx.clients, ctx.outcome, ctx.outcome_label, ctx.min_cell
    needed = {f"{outcome}_first", f"{outcome}_post", f"{outcome}_last_session"}
    if clients is None or not needed <= set(clients.columns):
        return [Text(f"No {label} post scores were found in the client measures.", "missing")]
    flagged = clients.assign(_no_post=attrition_flag(clients, outcome))
    grouped = agg.groups(flagged)
    cells = agg.rate_cells(grouped, "_no_post", min_cell)
    out: list = [
        table(
            "data_attrition_by_arm",
            f"Attrition: clients without a {label} post score{agg.by_arm(clients, ', by arm')}",
            ["Group", "Without a post score (% of clients with an intake score)"],
            [[name, cell] for (name, _), cell in zip(grouped, cells, strict=True)],
            note=(
                "Post score: the score at the planned end-of-treatment assessment "
                "(analysis.end_of_treatment); a client not assessed there has none, whatever "
                "the reason (dropout, still in treatment, referred on, or a missed form)."
            ),
        )
    ]
    by_session = attrition_by_last_session(clients, outcome)
    if len(by_session):
        frame = by_session.set_index("last_session")[["clients", "without_post"]]
        frame.index = frame.index.astype(str)
        frame.loc["All"] = frame.sum()
        shown = suppress_table(
            frame, ["clients", "without_post"], min_cell, total_row="All", total_column="clients"
        )
        out.append(
            table(
                "data_attrition_by_session",
                f"Attrition by the session of the last {label} assessment (clients)",
                ["Last assessed at session", "Clients", "Without a post score"],
                [[name, r["clients"], r["without_post"]] for name, r in shown.iterrows()],
                note="Clients with an intake score, by the session of their last assessment.",
            )
        )
    out.append(_attrition_test(attrition_vs_exposure(clients, outcome, ctx.exposure), ctx))
    return out


def _attrition_test(row: dict, ctx: ReportContext) -> Text:
    exposure = label(str(row.get("exposure", ctx.exposure))).lower()
    if "odds_ratio" not in row or int(row.get("n_clients", 0)) < ctx.min_cell:
        return Text(f"Whether attrition relates to {exposure} could not be tested.")
    return Text(
        f"Is attrition related to {exposure}? Logistic regression of having no post score on "
        f"{exposure} ({row['n_clients']} clients with an intake score): odds ratio "
        f"{num(row['odds_ratio'], 2)} per unit, 95% CI {interval(row['ci_low'], row['ci_high'], 2)}"
        f", p {p_phrase(row['p_value'])}. An odds ratio far from 1 means the complete-case "
        "analysis of post scores compares clients selected differently by exposure; the "
        "multiple-imputation analysis is the one to read then."
    )
