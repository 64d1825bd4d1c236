"""Sample: "Table 1", the clients' baseline characteristics by arm (or by exposure tertile when
the study has no arms), with standardised mean differences and missing counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from accord.disclosure import (
    COMPLEMENTARY_LABEL,
    NOT_AVAILABLE,
    suppress_count,
    suppress_table,
    suppressed_label,
    suppression_mask,
)
from accord.models.dropout import exposure_tertiles
from accord.report.aggregate import group_key
from accord.report.context import ReportContext
from accord.report.labels import label as name_label
from accord.report.ledger import SIZE, Ledger
from accord.report.parts import Section, Text, table
from accord.report.text import MINUS, num

TOTAL = "Total"
#: Continuous baseline characteristics: column, label, summary ("mean" or "median"), format.
_CONTINUOUS = (
    ("age", "Age, years", "mean", "{:.1f}"),
    ("phq9_first", "PHQ-9 at intake", "mean", "{:.1f}"),
    ("gad7_first", "GAD-7 at intake", "mean", "{:.1f}"),
    ("n_goals", "Goals set", "median", "{:.0f}"),
    ("joint_goal_share", "Joint goal share", "median", "{:.2f}"),
    ("sessions_scheduled", "Sessions scheduled", "median", "{:.0f}"),
)
_CATEGORICAL = (("gender", "Gender"), ("age_band", "Age band"))


def build(ctx: ReportContext) -> Section:
    """The Sample section."""
    section = Section("sample", "Sample")
    clients = _baseline(ctx)
    if clients is None:
        section.add(Text("No client measures or session panel were found.", "missing"))
        return section
    n_therapists = _distinct(ctx, "therapist_id")
    n_sites = _distinct(ctx, "site_id")
    section.add(
        Text(
            f"Clients: {ctx.ledger.count('clients', clients['client_id'].nunique(), role=SIZE)}. "
            f"Therapists: {n_therapists}. Sites: {n_sites}."
        )
    )
    groups, by = _grouping(clients, ctx.exposure)
    section.add(_table1(clients, groups, by, ctx.min_cell, ctx.ledger))
    return section


def _baseline(ctx: ReportContext) -> pd.DataFrame | None:
    """One row per client: client measures joined with the validated client table's
    demographics (age, gender, age band)."""
    clients = ctx.clients
    if clients is None and ctx.panel is not None and "client_id" in ctx.panel.columns:
        keep = [c for c in ("client_id", "arm", "therapist_id", "site_id") if c in ctx.panel]
        clients = ctx.panel[keep].drop_duplicates("client_id")
    if clients is None or "client_id" not in clients.columns:
        return None
    clients = clients.drop_duplicates("client_id").reset_index(drop=True)
    v = ctx.validated_clients
    if v is not None and "client_id" in v.columns:
        extra = [c for c in ("age", "gender", "age_band") if c in v.columns and c not in clients]
        if extra:
            demo = v.drop_duplicates("client_id").set_index("client_id")[extra]
            clients = clients.join(demo, on="client_id")
    return clients


def _distinct(ctx: ReportContext, column: str) -> str:
    for frame in (ctx.panel, ctx.clients):
        if frame is not None and column in frame.columns:
            return suppress_count(int(frame[column].dropna().nunique()), ctx.min_cell)
    return NOT_AVAILABLE


def _grouping(clients: pd.DataFrame, exposure: str) -> tuple[list[str], pd.Series]:
    """Group labels per client: the arm, else the tertile of the primary exposure."""
    if "arm" in clients.columns and clients["arm"].notna().any():
        by = clients["arm"].astype(object).fillna("(no arm)").astype(str)
    elif exposure in clients.columns and clients[exposure].notna().any():
        labels, _ = exposure_tertiles(clients[exposure])
        by = labels.astype(object).fillna("(no exposure)").astype(str)
        by.name = f"{name_label(exposure)} tertile"
    else:
        by = pd.Series("All clients", index=clients.index)
    return sorted(by.unique()), by


def _table1(clients: pd.DataFrame, groups: list[str], by: pd.Series, min_cell: int, ledger: Ledger):
    several = len(groups) > 1
    columns = [*groups, TOTAL] if several else [TOTAL]
    sizes = pd.DataFrame(
        {"clients": [int((by == g).sum()) for g in groups] + [len(clients)]},
        index=[*groups, TOTAL],
    )
    shown_sizes = suppress_table(sizes, ["clients"], min_cell, total_row=TOTAL if several else None)
    _publish_sizes(ledger, sizes, shown_sizes, arms=by.name == "arm")
    small_group = any(n < min_cell for n in sizes["clients"].iloc[:-1]) if several else False
    rows: list[list[str]] = [
        ["Clients, n", *[shown_sizes.loc[c, "clients"] for c in columns], "", ""]
    ]
    for column, label, kind, fmt in _CONTINUOUS:
        if column not in clients.columns:
            continue
        values = pd.to_numeric(clients[column], errors="coerce").astype(float)
        if values.notna().sum() == 0:
            continue
        cells = [
            _summary(values[by == g] if c != TOTAL else values, kind, fmt, min_cell)
            for g, c in zip([*groups, None], [*groups, TOTAL], strict=True)
            if c in columns
        ]
        # With exactly one group's statistic withheld, the total's would let a reader work it
        # out from the other groups, so it is withheld too.
        hidden_groups = sum(cell == suppressed_label(min_cell) for cell in cells[:-1])
        if several and hidden_groups == 1:
            cells[-1] = suppressed_label(min_cell)
        smd = (
            _smd_continuous([values[by == g].dropna() for g in groups], min_cell)
            if several and not small_group
            else ""
        )
        how = "mean (SD)" if kind == "mean" else "median [IQR]"
        rows.append([f"{label}, {how}", *cells, smd, _missing(values, min_cell)])
    for column, label in _CATEGORICAL:
        if column not in clients.columns or clients[column].notna().sum() == 0:
            continue
        rows.extend(
            _categorical(clients[column], by, groups, columns, label, min_cell, small_group)
        )
    # A group whose size is withheld would be given away by its category counts (they add up
    # to it) and their percentages, so those are withheld too.
    withheld = [i + 1 for i, c in enumerate(columns) if not shown_sizes.loc[c, "clients"].isdigit()]
    for row in rows[1:]:
        if row[0].startswith("\u2003"):
            for i in withheld:
                if row[i] != suppressed_label(min_cell):
                    row[i] = COMPLEMENTARY_LABEL
    caption = "Baseline characteristics"
    if isinstance(by.name, str):
        caption += f" by {by.name}"
    return table(
        "table1_sample",
        caption,
        ["Characteristic", *columns, "SMD", "Missing"],
        rows,
        text_columns=frozenset({0}),
        note=(
            "n (%) of the clients with a value. SMD: standardised mean difference between "
            "groups (for a category, of its proportion), the largest over pairs of groups when "
            f"there are more than two; |SMD| above 0.1 is a notable imbalance. Missing: clients "
            f"without a value. A count from 1 to {min_cell - 1}, and a statistic from fewer "
            f"than {min_cell} clients, reads \u201c{suppressed_label(min_cell)}\u201d; "
            "\u201c*\u201d is withheld so that such a count cannot be worked out from a total."
            + fewer_tertiles(groups, by)
        ),
    )


def fewer_tertiles(groups: list[str], by: pd.Series) -> str:
    """A sentence for a tertile grouping that formed fewer than three groups (ties at the cut
    points: a share of two to four goals takes few values), else nothing."""
    if not (isinstance(by.name, str) and by.name.endswith(" tertile")):
        return ""
    formed = [g for g in groups if g != "(no exposure)"]
    if len(formed) >= 3:
        return ""
    return (
        f" The exposure takes few distinct values, so its tertile cut points coincide: "
        f"{len(formed)} group{'s' if len(formed) != 1 else ''} instead of three."
    )


def _publish_sizes(ledger: Ledger, sizes: pd.DataFrame, shown: pd.DataFrame, *, arms: bool) -> None:
    """The group sizes, for the audit of the whole report: the total always, the arms (whose
    sizes other sections subtract from) when the groups are arms."""
    ledger.count("clients", sizes.loc[TOTAL, "clients"], shown.loc[TOTAL, "clients"], role=SIZE)
    if not arms or len(sizes) < 2:
        return
    keys = []
    for group in sizes.index[:-1]:
        keys.append(group_key(str(group)))
        ledger.count(keys[-1], sizes.loc[group, "clients"], shown.loc[group, "clients"], role=SIZE)
    ledger.relate("clients", keys)


def _summary(values: pd.Series, kind: str, fmt: str, min_cell: int) -> str:
    present = values.dropna()
    n = len(present)
    if n == 0:
        return NOT_AVAILABLE
    if n < min_cell:
        return suppressed_label(min_cell)
    if kind == "mean":
        sd = present.std(ddof=1) if n > 1 else math.nan
        text = f"{fmt.format(present.mean())} ({fmt.format(sd)})"
    else:
        q1, q2, q3 = np.percentile(present.to_numpy(), [25, 50, 75])
        text = f"{fmt.format(q2)} [{fmt.format(q1)}, {fmt.format(q3)}]"
    return text.replace("-", MINUS)


def _smd_continuous(parts: list[pd.Series], min_cell: int) -> str:
    if any(len(p) < min_cell for p in parts):
        return suppressed_label(min_cell)
    best = 0.0
    for a, b in itertools.combinations(parts, 2):
        pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        if pooled > 0:
            best = max(best, abs(a.mean() - b.mean()) / pooled)
    return num(best, 2)


def _missing(values: pd.Series, min_cell: int) -> str:
    return suppress_count(int(values.isna().sum()), min_cell)


def _categorical(
    values: pd.Series,
    by: pd.Series,
    groups: list[str],
    columns: list[str],
    label: str,
    min_cell: int,
    small_group: bool,
) -> list[list[str]]:
    """Rows "level, n (%)" with complementary suppression over levels (columns add up to the
    group's clients with a value) and groups (rows add up to the total)."""
    text = values.astype(object).where(values.notna())
    levels = sorted(str(v) for v in text.dropna().unique())
    several = len(groups) > 1
    counts = pd.DataFrame(
        [
            [int(((text == lvl) & (by == g)).sum()) for g in groups] + [int((text == lvl).sum())]
            for lvl in levels
        ],
        index=levels,
        columns=[*groups, TOTAL],
    )
    counts.loc["__n__"] = [int((text.notna() & (by == g)).sum()) for g in groups] + [
        int(text.notna().sum())
    ]
    count_columns = [*groups, TOTAL] if several else [TOTAL]
    hidden = suppression_mask(
        counts,
        count_columns,
        min_cell,
        total_row="__n__",
        total_column=TOTAL if several else None,
    )
    rows = [[f"{label}, n (%)", *[""] * len(columns), "", _missing(values, min_cell)]]
    for lvl in levels:
        cells = []
        for c in columns:
            k, n = int(counts.loc[lvl, c]), int(counts.loc["__n__", c])
            if hidden.loc[lvl, c]:
                cells.append(
                    suppressed_label(min_cell) if 0 < k < min_cell else COMPLEMENTARY_LABEL
                )
            elif n < min_cell and n > 0:
                cells.append(suppressed_label(min_cell))
            else:
                cells.append(f"{k} ({k / n:.1%})" if n else NOT_AVAILABLE)
        smd = ""
        if several and not small_group:
            if hidden.loc[lvl, groups].any():
                smd = suppressed_label(min_cell)
            else:
                props = [
                    (counts.loc[lvl, g] / counts.loc["__n__", g], counts.loc["__n__", g])
                    for g in groups
                ]
                smd = _smd_proportions(props, min_cell)
        rows.append([f"\u2003{lvl}", *cells, smd, ""])
    return rows


def _smd_proportions(props: list[tuple[float, int]], min_cell: int) -> str:
    if any(n < min_cell for _, n in props):
        return suppressed_label(min_cell)
    best = 0.0
    for (p, _), (q, _) in itertools.combinations(props, 2):
        pooled = math.sqrt((p * (1 - p) + q * (1 - q)) / 2)
        if pooled > 0:
            best = max(best, abs(p - q) / pooled)
    return num(best, 2)
