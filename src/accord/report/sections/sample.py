"""Sample: "Table 1", the clients' baseline characteristics by arm (or by exposure tertile when
the study has no arms), with standardised mean differences and missing counts."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accord.core.disclosure import (
    COMPLEMENTARY_LABEL,
    NOT_AVAILABLE,
    is_small,
    structural_count,
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
from accord.report.numbers import MINUS, num
from accord.report.parts import Section, Text, table

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
            return structural_count(int(frame[column].dropna().nunique()))
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
    # A group whose size is withheld would be given away by its category counts (they add up
    # to it) and their percentages, so those are withheld too.
    withheld = {c for c in columns if not shown_sizes.loc[c, "clients"].isdigit()}
    for column, label in _CATEGORICAL:
        if column not in clients.columns or clients[column].notna().sum() == 0:
            continue
        levels = _CategoryTable(column, by, groups, columns, min_cell, ledger, withheld)
        rows.extend(levels.rows(clients[column], label, small_group))
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
            "\u201c*\u201d (or a range) is withheld so that such a count cannot be worked out "
            "from a total, a percentage or another table." + fewer_tertiles(groups, by)
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


@dataclass
class _CategoryTable:
    """Rows "level, n (%)" of one characteristic, with complementary suppression over levels
    (columns add up to the group's clients with a value) and groups (rows add up to the
    total), every count and percentage published to the report's audit."""

    column: str
    by: pd.Series
    groups: list[str]
    columns: list[str]
    min_cell: int
    ledger: Ledger
    withheld: set[str]

    def rows(self, values: pd.Series, label: str, small_group: bool) -> list[list[str]]:
        text = values.astype(object).where(values.notna())
        levels = sorted(str(v) for v in text.dropna().unique())
        groups, by, min_cell = self.groups, self.by, self.min_cell
        several = len(groups) > 1
        counts = pd.DataFrame(
            [
                [int(((text == lvl) & (by == g)).sum()) for g in groups]
                + [int((text == lvl).sum())]
                for lvl in levels
            ],
            index=levels,
            columns=[*groups, TOTAL],
        )
        counts.loc["__n__"] = [int((text.notna() & (by == g)).sum()) for g in groups] + [
            int(text.notna().sum())
        ]
        hidden = suppression_mask(
            counts,
            [*groups, TOTAL] if several else [TOTAL],
            min_cell,
            total_row="__n__",
            total_column=TOTAL if several else None,
        )
        missing = self._publish_missing(values)
        for c in self.columns:
            n = int(counts.loc["__n__", c])
            self.ledger.implied(self._key(c), n, of=self._size_key(c), rest=self._missing_key(c))
        rows = [[f"{label}, n (%)", *[""] * len(self.columns), "", missing]]
        for lvl in levels:
            cells = [self._cell(lvl, c, counts, bool(hidden.loc[lvl, c])) for c in self.columns]
            smd = ""
            if several and not small_group:
                if hidden.loc[lvl, groups].any():
                    smd = suppressed_label(min_cell)
                elif any("%" not in cell for cell in cells[: len(groups)]):
                    smd = COMPLEMENTARY_LABEL  # its proportions would give a withheld count away
                else:
                    props = [
                        (counts.loc[lvl, g] / counts.loc["__n__", g], counts.loc["__n__", g])
                        for g in groups
                    ]
                    smd = _smd_proportions(props, min_cell)
            rows.append([f"\u2003{lvl}", *cells, smd, ""])
        self._relate(levels)
        return rows

    def _key(self, c: str, level: str | None = None) -> str:
        return f"table1[{self.column}][{c}]" + (f"[{level}]" if level is not None else "")

    def _cell(self, lvl: str, c: str, counts: pd.DataFrame, hidden: bool) -> str:
        """One level's count in group `c`, "k (p%)" of the group's clients with a value."""
        k, n = int(counts.loc[lvl, c]), int(counts.loc["__n__", c])
        label = suppressed_label(self.min_cell)
        if hidden:
            text = label if is_small(k, self.min_cell) else COMPLEMENTARY_LABEL
        elif is_small(n, self.min_cell):
            text = label  # a percentage of fewer than min_cell clients
        elif c in self.withheld:
            text = COMPLEMENTARY_LABEL
        else:
            shown = self.ledger.count(self._key(c, lvl), k)
            if not n or not shown.isdigit():
                return shown if n else NOT_AVAILABLE
            cell = f"{k} ({k / n:.1%})"
            self.ledger.percentage(self._key(c, lvl), self._key(c), cell)
            return cell
        if c in self.withheld and text != label:
            text = COMPLEMENTARY_LABEL
        # What a reader learns: "<11" bounds only a count from 1 to min_cell - 1.
        reading = text if text != label or is_small(k, self.min_cell) else COMPLEMENTARY_LABEL
        self.ledger.count(self._key(c, lvl), k, reading)
        return text

    def _size_key(self, c: str) -> str:
        return "clients" if c == TOTAL else group_key(c)

    def _missing_key(self, c: str) -> str:
        return f"without[{self.column}][{c}]"

    def _publish_missing(self, values: pd.Series) -> str:
        """The clients without a value, printed for all clients (the Missing column)."""
        missing = int(values.isna().sum())
        text = suppress_count(missing, self.min_cell)
        return self.ledger.count(self._missing_key(TOTAL), missing, text)

    def _relate(self, levels: list[str]) -> None:
        for c in self.columns:
            self.ledger.relate(self._key(c), [self._key(c, lvl) for lvl in levels])
        if len(self.groups) > 1:
            for lvl in [*levels, None]:
                self.ledger.relate(self._key(TOTAL, lvl), [self._key(g, lvl) for g in self.groups])


def _smd_proportions(props: list[tuple[float, int]], min_cell: int) -> str:
    if any(n < min_cell for _, n in props):
        return suppressed_label(min_cell)
    best = 0.0
    for (p, _), (q, _) in itertools.combinations(props, 2):
        pooled = math.sqrt((p * (1 - p) + q * (1 - q)) / 2)
        if pooled > 0:
            best = max(best, abs(p - q) / pooled)
    return num(best, 2)
