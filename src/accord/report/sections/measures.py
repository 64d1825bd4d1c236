"""Measures: internal consistency, score distributions and the scoring choices that were used
(measures.md: each instrument's scoring rule and source)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from accord.core.disclosure import (
    NOT_AVAILABLE,
    structural_count,
    suppress_count,
    suppress_counts_in,
    suppressed_label,
)
from accord.core.instruments import Instrument
from accord.report.context import ReportContext, dropout_text
from accord.report.figures import score_distributions, to_plot
from accord.report.labels import in_words
from accord.report.numbers import coef, finite, num
from accord.report.parts import Bullets, Heading, Section, Text, table
from accord.report.text import instrument_label, int_or_none, scale_label


def build(ctx: ReportContext) -> Section:
    """The Measures section."""
    section = Section("measures", "Measures")
    section.add(Heading("Reliability", "reliability"))
    r = ctx.reliability
    if r is not None and {"instrument", "scale", "wave", "n", "alpha"} <= set(r.columns):
        rows, notes = _reliability_rows(r, ctx.min_cell)
        section.add(
            table(
                "measures_reliability",
                "Internal consistency: Cronbach\u2019s \u03b1 [95% CI] and McDonald\u2019s "
                "\u03c9 at intake and at the first treatment wave",
                [
                    "Scale",
                    "n",
                    "\u03b1 [95% CI]",
                    "\u03c9",
                    "Wave",
                    "n",
                    "\u03b1 [95% CI]",
                    "\u03c9",
                    "\u03b1, all waves",
                ],
                [
                    [
                        x["measure"],
                        x["intake"]["n"],
                        x["intake"]["alpha"],
                        x["intake"]["omega"],
                        x["first_wave"],
                        x["first"]["n"],
                        x["first"]["alpha"],
                        x["first"]["omega"],
                        x["alpha_range"],
                    ]
                    for x in rows
                ],
                spans=(("", 1), ("Intake (wave 0)", 3), ("First treatment wave", 4), ("", 1)),
                note=(
                    "Wave = session number (0 = intake); n = complete forms at that wave. "
                    "\u03c9 is omega total from a one-factor model per scale; for a total whose "
                    "subscales split its items (WAI-SR), from the subscales as correlated "
                    "factors. The last column gives the "
                    f"range of \u03b1 over the waves with {ctx.min_cell} or more complete forms."
                ),
            )
        )
        if notes:
            section.add(Bullets(tuple(("", n) for n in notes), "note"))
    else:
        section.add(Text("No reliability table was found (reliability.csv).", "missing"))
    section.add(Heading("Score distributions", "score-distributions"))
    section.add(*_distributions(ctx))
    section.add(Heading("Scoring and measure choices", "scoring-choices"))
    scoring = ctx.scoring if isinstance(ctx.scoring, dict) else {}
    metadata = ctx.measures_metadata if isinstance(ctx.measures_metadata, dict) else {}
    choices = _choices(scoring, metadata, ctx.settings, ctx.registry(), ctx.min_cell)
    if choices:
        section.add(
            table(
                "measures_scoring_choices",
                "Scoring rules and definitions used in this run",
                ["Choice", "Setting"],
                [(c["label"], c["text"]) for c in choices],
                text_columns=frozenset({0, 1}),
            )
        )
    if not (isinstance(ctx.scoring, dict) or isinstance(ctx.measures_metadata, dict)):
        tail = "; the dropout definition above is the configured one" if choices else ""
        section.add(
            Text(
                "No scoring settings (scores.parquet) or measure settings "
                f"(measures_metadata.json) were found{tail}.",
                "missing",
            )
        )
    return section


def _distributions(ctx: ReportContext) -> list:
    """Intake scores of each outcome instrument."""
    panel = ctx.panel
    outcomes = list(dict.fromkeys([ctx.outcome, *ctx.secondary_outcomes]))
    if panel is None or "session_number" not in panel.columns:
        return [Text("No session panel was found (session_panel.parquet).", "missing")]
    first = panel.sort_values("session_number", kind="stable")
    scores = {}
    for column in outcomes:
        if column not in panel.columns:
            continue
        per_client = first.dropna(subset=[column]).drop_duplicates("client_id")[column]
        scores[f"{instrument_label(column)}, first assessment"] = per_client
    fig = score_distributions(scores, min_cell=ctx.min_cell)
    if fig is None:
        return [
            Text(
                f"No outcome measure has {ctx.min_cell} or more scored clients, so no "
                "distribution is drawn."
            )
        ]
    return [
        to_plot(
            fig,
            "measures_score_distributions",
            alt="Histograms of the first assessed outcome scores",
            caption=(
                "Each client's first assessed score, as % of the clients with a score. A bin "
                f"with fewer than {ctx.min_cell} clients, and a bin withheld so that it cannot "
                f"be worked out from the others, is not drawn and is marked "
                f"\u201c{suppressed_label(ctx.min_cell)}\u201d."
            ),
        )
    ]


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
        label = scale_label(str(instrument), str(scale))
        if several_raters:
            label += f" ({rater})"
        intake = part.loc[part["wave"] == 0]
        later = part.loc[part["wave"] > 0]
        enough = part.loc[(part["n"] >= min_cell) & part["alpha"].map(finite)]
        if len(enough) > 1:
            spread = f"{coef(enough['alpha'].min())}\u2013{coef(enough['alpha'].max())}"
            spread += f" ({len(enough)} waves)"
        elif len(enough) == 1:
            spread = f"{coef(enough['alpha'].iloc[0])} (1 wave)"
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
                f"{label}, wave{plural} {listed}: {suppress_counts_in(str(reason), min_cell)}"
            )
    return rows, notes


def _reliability_cells(row: pd.Series | None, min_cell: int) -> dict[str, str]:
    if row is None:
        return {"n": NOT_AVAILABLE, "alpha": NOT_AVAILABLE, "omega": NOT_AVAILABLE}
    n = int_or_none(row["n"]) or 0
    if n < min_cell:
        hidden = suppressed_label(min_cell) if n else NOT_AVAILABLE
        return {"n": suppress_count(n, min_cell), "alpha": hidden, "omega": hidden}
    alpha = coef(row["alpha"])
    if alpha != NOT_AVAILABLE and finite(row["alpha_ci_low"]) and finite(row["alpha_ci_high"]):
        alpha += f" [{coef(row['alpha_ci_low'])}, {coef(row['alpha_ci_high'])}]"
    return {"n": suppress_count(n, min_cell), "alpha": alpha, "omega": coef(row["omega"])}


def _choices(
    scoring: Mapping[str, Any],
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
    registry: Mapping[str, Instrument],
    min_cell: int,
) -> list[dict[str, str]]:
    """The scoring and measure choices behind the results, as (label, text) items."""
    items = [
        *_scoring_choices(scoring, registry, min_cell),
        *_outcome_choices(metadata, settings),
        *_process_choices(settings),
    ]
    return [{"label": label, "text": text} for label, text in items]


def _scoring_choices(
    scoring: Mapping[str, Any], registry: Mapping[str, Instrument], min_cell: int
) -> list[tuple[str, str]]:
    """How each instrument was scored (prorating, with the scored counts), how supplied
    totals were treated and the GAS T-score's settings."""
    items: list[tuple[str, str]] = []
    summary = scoring.get("summary") or []
    scored = sorted({str(r.get("instrument")) for r in summary if isinstance(r, dict)})
    for key in scored:
        inst = registry.get(key)
        if inst is None or inst.score == "gas":
            continue
        text = _prorating_text(inst)
        counts = _scored_counts(summary, key, min_cell)
        items.append((f"Scoring, {instrument_label(key)}", f"{text}{counts}"))
    rules = scoring.get("scoring") or {}
    if rules.get("supplied_total"):
        text = str(rules["supplied_total"])
        items.append(("Supplied totals", f"{text[:1].upper()}{text[1:]}."))
    if "gas_rho" in rules:
        weights = {
            "equal": "equal goal weights",
            "importance": "the client's importance ratings as goal weights",
        }.get(str(rules.get("gas_weights")), f"goal weights: {rules.get('gas_weights')}")
        items.append(
            (
                "GAS T-score",
                f"Kiresuk-Sherman T-score with \u03c1 = {num(rules['gas_rho'], 2)} and "
                f"{weights}; goals without a rating are left out.",
            )
        )
    return items


def _outcome_choices(
    metadata: Mapping[str, Any], settings: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The dropout definition, and the reliable change thresholds and clinical cut-offs of
    each outcome instrument."""
    items: list[tuple[str, str]] = []
    if settings.get("dropout_definition"):
        items.append(
            (
                "Dropout",
                f"{dropout_text(settings).capitalize()} "
                f"(dropout_definition = {settings['dropout_definition']}).",
            )
        )
    thresholds = metadata.get("change_thresholds") or {}
    if isinstance(thresholds, dict) and thresholds:
        # Outcome instruments in the order the study lists them (the primary one first).
        listed = [str(k) for k in metadata.get("outcome_instruments") or [] if k in thresholds]
        keys = listed + sorted(k for k in thresholds if k not in listed)
        method = settings.get("change_method", "published")
        parts = [_reliable_change_text(k, thresholds[k]) for k in keys]
        items.append((f"Reliable change (change_method = {method})", "; ".join(parts) + "."))
        cutoff = str(settings.get("clinical_cutoff", "registry"))
        parts = [_cutoff_text(k, thresholds[k], cutoff) for k in keys]
        items.append((f"Clinical cut-offs (clinical_cutoff = {cutoff})", "; ".join(parts) + "."))
    return items


def _process_choices(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """How the process measures were formed: alliance, goal alliance and consensus, the early
    goals, ruptures, SRS alerts and the primary exposure."""
    items: list[tuple[str, str]] = []
    early = settings.get("early_sessions", 3)
    if settings.get("alliance_instrument"):
        items.append(
            (
                "Alliance",
                f"{alliance_label(settings)}; early alliance is the mean of the first {early} "
                "assessed sessions.",
            )
        )
    if settings.get("goal_alliance_instrument"):
        items.extend(_goal_alliance_choices(settings, early))
    if settings.get("rupture_sds"):
        sds = " and ".join(f"{num(k, 1).removesuffix('.0')}" for k in settings["rupture_sds"])
        window = settings.get("rupture_repair_window", 3)
        items.append(
            (
                "Ruptures",
                f"An assessed session whose alliance falls at least k of the client's own SDs "
                f"below the previous assessed session, k = {sds}; repaired when the alliance is "
                f"back to its pre-rupture level within {window} assessed sessions.",
            )
        )
    if "srs_alert_threshold" in settings:
        items.append(
            (
                "SRS alerts",
                f"SRS below {num(settings['srs_alert_threshold'], 0)}, or a drop of "
                f"{num(settings.get('srs_alert_drop', 1), 0)} point or more from the previous "
                "session.",
            )
        )
    if settings.get("primary_exposure"):
        items.append(("Primary exposure", f"{in_words(settings['primary_exposure'])}."))
    return items


def _goal_alliance_choices(settings: Mapping[str, Any], early: Any) -> list[tuple[str, str]]:
    """The client-rated goal alliance, the client-therapist goal consensus and the window of
    early goals."""
    scale = str(settings.get("goal_alliance_scale", "goal"))
    label = scale_label(str(settings["goal_alliance_instrument"]), scale)
    return [
        (
            "Goal alliance (client)",
            f"{label}, client-rated, mean of the first {early} assessed sessions: the "
            "client's view of the goal bond, not a consensus.",
        ),
        (
            "Goal consensus",
            f"Client-therapist divergence on the {label}: mean |client \u2212 therapist| over "
            f"the sessions both rated within the client's first {early} assessed sessions.",
        ),
        (
            "Early goals",
            f"Goal-setting exposures use the goals set by session {early}; goals set later "
            "are counted in the late goal share.",
        ),
    ]


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
        f" ({structural_count(total['prorated'])} of "
        f"{structural_count(total['scored'])} scored forms prorated; "
        f"{structural_count(not_scored)} not scored)."
    )


def _reliable_change_text(key: str, t: Mapping[str, Any]) -> str:
    """How much change counts as reliable for one instrument (from the change thresholds)."""
    label = instrument_label(key)
    points = t.get("reliable_change")
    if t.get("reliable_change_method") == "published" and finite(points):
        return f"{label} {num(points, 1).removesuffix('.0')} points (published value)"
    if not finite(t.get("rci_threshold_points")):
        return f"{label} not available"
    text = (
        f"{label} |RCI| > {num(t.get('rci_z', 1.96), 2)}, i.e. "
        f"{num(t['rci_threshold_points'], 2)} points (Jacobson-Truax"
    )
    if finite(t.get("reliability")) and finite(t.get("sd_pre")):
        text += (
            f" with r_xx = {coef(t['reliability'])} and SD_pre = {num(t['sd_pre'], 2)} "
            f"from {t.get('sd_source', 'intake')}"
        )
    return text + ")"


def _cutoff_text(key: str, t: Mapping[str, Any], setting: str) -> str:
    """The clinical cut-off of one instrument; its source is named where it is not the one
    the setting asked for (an instrument without norms keeps its registry cut-off)."""
    label = instrument_label(key)
    if not finite(t.get("cutoff")):
        return f"{label} none"
    sign = "\u2265" if t.get("higher_is", "worse") == "worse" else "<"
    text = f"{label} {sign} {num(t['cutoff'], 2).removesuffix('.00')}"
    source = str(t.get("cutoff_source", setting))
    return text if source == setting else f"{text} ({source})"


def alliance_label(settings: Mapping[str, Any]) -> str:
    instrument = str(settings.get("alliance_instrument", "wai_sr"))
    scale = str(settings.get("alliance_scale", "total"))
    rater = str(settings.get("alliance_rater", "client"))
    return f"{instrument_label(instrument)} {scale}, {rater}-rated"
