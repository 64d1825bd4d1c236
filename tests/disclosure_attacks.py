"""A reader's attacks on a published report: work a withheld count back from counts and
percentages printed elsewhere (privacy.md, section 2).

Each attack reads the report's table CSVs as a reader would (display text only) and returns the
counts from 1 to ``min_cell - 1`` it recovers, described; an empty list means the attack failed.

* subtraction, models: clients validated minus a model's clients (printed in the models, summary,
  therapist and mediation tables) where the clients left out of that model are withheld;
* subtraction, groups: an arm's size (Table 1) minus the clients of that arm with a measure
  (an "n", "Total" or "Clients" column of a table by arm, or a column "<arm>: n"), i.e. the
  clients without it, a count Table 1 withholds when small;
* percentage: a cell "k (p%)" pins its denominator d when only one whole number fits the
  rounding; then d - k (the rest of the denominator) and the group's size minus d (the clients
  outside the denominator) must not be small counts. This reaches Table 1's categories, the
  change categories and every rate table;
* row totals: a row's printed total ("n", "Total" or "Clients") minus its printed counts is the
  sum of its withheld cells, each 1 to ``min_cell - 1``; one withheld cell is then exact, and so
  are several at their smallest or largest possible sum. (A percentage whose denominator the
  row prints as its total gives nothing beyond this.)
* numbers at risk: two successive printed numbers at risk of a group (a Kaplan-Meier or
  cumulative-incidence table) differ by the clients who left the risk set in between, and the
  first differs from the group's size (Table 1) by its clients without a time.

`reports_under` finds every rendered report below a folder, so the attacks can run on each
report the test suite renders (tests/conftest.py), with the report's own threshold.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pandas as pd

GROUP_TOTALS = ("All clients", "Total")
TOTAL_COLUMNS = ("n", "Total", "Clients")
PERCENT_CELL = re.compile(r"^(\d+) \((\d+(?:\.(\d+))?)%\)$")


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        p.stem: pd.read_csv(p, dtype=str, keep_default_na=False)
        for p in sorted((folder / "tables").glob("*.csv"))
    }


def _exact(cell: str) -> int | None:
    cell = str(cell).strip()
    return int(cell) if cell.isdigit() else None


def _small(n: int, min_cell: int) -> bool:
    return 0 < n < min_cell


def group_sizes(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Each group's size as Table 1 prints it (exact sizes only); the total as "All clients"."""
    table1 = tables.get("table1_sample")
    if table1 is None:
        return {}
    row = table1.loc[table1.iloc[:, 0] == "Clients, n"]
    if row.empty:
        return {}
    sizes = {}
    for column in table1.columns[1:]:
        n = _exact(row.iloc[0][column])
        if n is not None:
            sizes["All clients" if column in GROUP_TOTALS else column] = n
    return sizes


def model_subtraction(folder: Path, min_cell: int) -> list[str]:
    """Clients validated minus a model's printed clients, where the left-out count is withheld."""
    tables = _tables(folder)
    analysed = tables.get("data_clients_analysed")
    if analysed is None:
        return []
    withheld = {}
    for _, row in analysed.iterrows():
        valid = _exact(row["Clients validated"])
        if valid is not None and _exact(row["Left out"]) is None:
            withheld[row["Model"]] = valid
    printed: list[tuple[str, str, str]] = []  # (model, where, cell)
    for name, column in (
        ("models_fit", "Clients"),
        ("models_fit", "Observations"),
        ("summary_primary_estimate", "Clients"),
        ("summary_primary_estimate", "Observations"),
        ("therapist_icc", "Clients"),
    ):
        table = tables.get(name)
        if table is not None and column in table.columns:
            printed += [(r["Model"], f"{name}.{column}", r[column]) for _, r in table.iterrows()]
    mediation = tables.get("mediation")
    if mediation is not None and "Clients" in mediation.columns:
        printed += [
            (f"mediation_{r['Mediator']}", "mediation.Clients", r["Clients"])
            for _, r in mediation.iterrows()
        ]
    found = []
    for model, where, cell in printed:
        n = _exact(cell)
        if model in withheld and n is not None and _small(withheld[model] - n, min_cell):
            found.append(f"{model}: {withheld[model]} validated - {n} ({where}) left out")
    return found


def group_subtraction(folder: Path, min_cell: int) -> list[str]:
    """An arm's size minus the clients of the arm with a measure (columns "<group>: n")."""
    tables = _tables(folder)
    sizes = group_sizes(tables)
    found = []
    for name, table in tables.items():
        if name == "table1_sample":
            continue
        # Rows per group with a count column ("Total" of a category table, "Clients").
        for column in table.columns[1:]:
            if column not in ("n", "Total", "Clients"):
                continue
            for _, row in table.iterrows():
                group = "All clients" if row.iloc[0] in GROUP_TOTALS else str(row.iloc[0])
                n = _exact(row[column])
                if group in sizes and n is not None and _small(sizes[group] - n, min_cell):
                    found.append(f"{name}, {group}: {sizes[group]} - {n} ({column})")
        for column in table.columns:
            group, _, label = column.rpartition(": ")
            if label != "n" or group not in sizes:
                continue
            for _, row in table.iterrows():
                n = _exact(row[column])
                if n is not None and _small(sizes[group] - n, min_cell):
                    found.append(
                        f"{name}, {row.iloc[0]}, {group}: {sizes[group]} - {n} without a value"
                    )
    return found


def pinned_denominator(count: int, percent: str) -> int | None:
    """The one whole denominator d with count / d rounding to `percent`, if only one fits."""
    share = float(percent) / 100
    decimals = len(percent.partition(".")[2])
    half = 0.5 * 10 ** -(decimals + 2)
    if share - half <= 0:
        return None
    low = math.ceil(count / (share + half) - 1e-9)
    high = math.floor(count / (share - half) + 1e-9)
    return low if low == high else None


def percentage_attack(folder: Path, min_cell: int) -> list[str]:
    """Denominators pinned by "k (p%)" cells, and the small counts they give away."""
    tables = _tables(folder)
    sizes = group_sizes(tables)
    found = []
    for name, table in tables.items():
        for _, row in table.iterrows():
            label = str(row.iloc[0])
            group = "All clients" if label in GROUP_TOTALS else label
            for column in table.columns[1:]:
                match = PERCENT_CELL.match(str(row[column]).strip())
                if not match:
                    continue
                k = int(match.group(1))
                d = pinned_denominator(k, match.group(2))
                if d is None:
                    continue
                where = f"{name}, {label}, {column}: {row[column]} gives {d}"
                # A denominator the row prints itself adds nothing: what its total gives away
                # is the row attack's question.
                printed = any(_exact(row[c]) == d for c in table.columns if c in TOTAL_COLUMNS)
                if _small(d - k, min_cell) and not printed:
                    found.append(f"{where}; the rest of it is {d - k}")
                for size_group in (group, column):
                    size = sizes.get(size_group)
                    if size is not None and _small(size - d, min_cell):
                        found.append(f"{where}; {size_group} has {size} so {size - d} are outside")
    return found


def row_subtraction(folder: Path, min_cell: int) -> list[str]:
    """A row's printed total minus its printed counts: the sum of its withheld cells, each 1 to
    ``min_cell - 1``. One withheld cell is then known exactly, and so are several whose sum is
    their smallest or their largest possible sum."""
    found = []
    for name, table in _tables(folder).items():
        totals = [c for c in table.columns[1:] if c in TOTAL_COLUMNS]
        if len(totals) != 1 or name == "table1_sample":
            continue
        parts = [c for c in table.columns[1:] if c != totals[0]]
        for _, row in table.iterrows():
            total = _exact(row[totals[0]])
            cells = [str(row[c]).strip() for c in parts]
            if total is None or not cells:
                continue
            shown = [_count(cell) for cell in cells]
            if any(
                n is None and cell != f"<{min_cell}" for n, cell in zip(shown, cells, strict=True)
            ):
                continue  # not a row of counts
            hidden = sum(n is None for n in shown)
            rest = total - sum(n for n in shown if n is not None)
            if hidden == 1 or (hidden and rest in (hidden, hidden * (min_cell - 1))):
                found.append(f"{name}, {row.iloc[0]}: {total} - shown = {rest} in {hidden} cell(s)")
    return found


def _count(cell: str) -> int | None:
    """The count of a cell "k" or "k (p%)"."""
    match = PERCENT_CELL.match(cell)
    return int(match.group(1)) if match else _exact(cell)


def at_risk_subtraction(folder: Path, min_cell: int) -> list[str]:
    """Successive numbers at risk, and the first against the group's size, differing by a
    small count."""
    tables = _tables(folder)
    sizes = group_sizes(tables)
    found = []
    for name, table in tables.items():
        if "at_risk" not in name:
            continue
        for _, row in table.iterrows():
            group = "All clients" if row.iloc[0] in GROUP_TOTALS else str(row.iloc[0])
            cells = [(column, _exact(row[column])) for column in table.columns[1:]]
            first = cells[0][1] if cells else None
            if first is not None and group in sizes and _small(sizes[group] - first, min_cell):
                found.append(f"{name}, {group}: size {sizes[group]} - {first} at 0")
            for (t0, a), (t1, b) in itertools.pairwise(cells):
                if a is not None and b is not None and _small(a - b, min_cell):
                    found.append(f"{name}, {group}: {a} at {t0} - {b} at {t1} left")
    return found


def every_attack(folder: Path, min_cell: int) -> list[str]:
    """What every attack above recovers from the report in `folder`."""
    return [
        *model_subtraction(folder, min_cell),
        *group_subtraction(folder, min_cell),
        *percentage_attack(folder, min_cell),
        *row_subtraction(folder, min_cell),
        *at_risk_subtraction(folder, min_cell),
    ]


_THRESHOLD = re.compile(r"A count from 1 to (\d+),")


def reports_under(root: Path) -> list[tuple[Path, int]]:
    """Every study report rendered below `root` (a report.html with its tables/ folder), with
    the threshold the report states."""
    found = []
    for html in sorted(root.rglob("report.html")):
        if not (html.parent / "tables").is_dir():
            continue
        match = _THRESHOLD.search(html.read_text(encoding="utf-8", errors="replace"))
        if match:
            found.append((html.parent, int(match.group(1)) + 1))
    return found
