"""Group summaries for report tables, with small cells suppressed (privacy.md, section 2).

Groups are the trial arms in sorted order followed by all clients together; the last group is
the total of the others, so a small arm is protected by complementary suppression.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from accord.core.disclosure import (
    COMPLEMENTARY_LABEL,
    NOT_AVAILABLE,
    is_small,
    suppress_statistic,
    suppress_table,
    suppressed_label,
    suppression_mask,
)
from accord.report.ledger import Ledger
from accord.report.numbers import MINUS, coef

ALL_CLIENTS = "All clients"
NO_ARM = "(no arm)"

Groups = list[tuple[str, pd.DataFrame]]


def groups(clients: pd.DataFrame) -> Groups:
    """(name, rows) per arm in sorted order, then all clients together last."""
    out = []
    if "arm" in clients.columns and clients["arm"].notna().any():
        arm = clients["arm"].astype(object).fillna(NO_ARM).astype(str)
        out = [(name, part) for name, part in clients.groupby(arm, sort=True)]
    return [*out, (ALL_CLIENTS, clients)]


def has_arms(clients: pd.DataFrame | None) -> bool:
    """True when the clients table records an arm for some client."""
    return clients is not None and "arm" in clients.columns and clients["arm"].notna().any()


def by_arm(clients: pd.DataFrame | None, words: str = " by arm") -> str:
    """`words` for a caption when the study has arms, else nothing: no "by arm" without arms."""
    return words if has_arms(clients) else ""


def withheld_sizes(grouped: Groups, min_cell: int) -> set[str]:
    """Arms whose size the report withholds: small arms, and the arms hidden by complementary
    suppression against the total (Sample section). Counts that add up to such an arm's size,
    and percentages of it, would give it away."""
    if len(grouped) < 2:
        return set()
    sizes = pd.DataFrame(
        {"n": [len(part) for _, part in grouped]}, index=[name for name, _ in grouped]
    )
    shown = suppress_table(sizes, ["n"], min_cell, total_row=grouped[-1][0])["n"]
    return {name for name, text in shown.items() if not str(text).isdigit()}


def mean_sd(frame: pd.DataFrame, column: str, min_cell: int, fmt: str = "{:.1f}") -> str:
    """ "mean (SD)" of a client measure; withheld from fewer than `min_cell` clients."""
    if column not in frame.columns:
        return NOT_AVAILABLE
    values = pd.to_numeric(frame[column], errors="coerce").dropna().astype(float)
    n = len(values)
    mean = suppress_statistic(values.mean() if n else None, n, min_cell, fmt=fmt)
    if mean in (NOT_AVAILABLE, suppressed_label(min_cell)):
        return mean
    sd = values.std(ddof=1) if n > 1 else math.nan
    return f"{mean} ({fmt.format(sd)})".replace("-", MINUS)


def protect_overall(rows: list[dict], columns: list[str], min_cell: int) -> None:
    """With exactly one arm's statistic withheld, the overall one would let a reader work it
    out from the other arms, so it is withheld too (the last row is the overall one)."""
    label = suppressed_label(min_cell)
    arms, overall = rows[:-1], rows[-1]
    for column in columns:
        if sum(r[column] == label for r in arms) == 1 and len(arms) > 1:
            overall[column] = label


def group_key(name: str) -> str:
    """The ledger's key for the number of clients in group `name` (all clients: ``clients``)."""
    return "clients" if name == ALL_CLIENTS else f"clients[{name}]"


def n_cells(
    grouped: Groups, column: str, min_cell: int, *, ledger: Ledger | None = None
) -> list[str]:
    """Clients with a value of `column` per group, the last group the total.

    With a `ledger`, each count is published as a part of its group: the group's size minus
    it (clients without a value) is a count of people, audited with the rest of the report.
    """
    counts = pd.DataFrame(
        {
            "n": [
                int(pd.to_numeric(part[column], errors="coerce").notna().sum())
                if column in part.columns
                else 0
                for _, part in grouped
            ]
        },
        index=[name for name, _ in grouped],
    )
    total_row = grouped[-1][0] if len(grouped) > 1 else None
    shown = suppress_table(counts, ["n"], min_cell, total_row=total_row)["n"]
    withheld = withheld_sizes(grouped, min_cell)
    texts = [
        COMPLEMENTARY_LABEL if name in withheld and text.isdigit() else text
        for name, text in shown.items()
    ]
    if ledger is None:
        return texts
    keys = [f"n[{column}][{name}]" for name in counts.index]
    out = [
        ledger.subset(key, n, of=group_key(name), rest=f"without[{column}][{name}]", text=text)
        for key, name, n, text in zip(keys, counts.index, counts["n"], texts, strict=True)
    ]
    if total_row is not None:
        ledger.relate(keys[-1], keys[:-1])
    return out


def flag(condition: pd.Series, missing: pd.Series) -> pd.Series:
    """A nullable boolean column: `condition`, NA where `missing`."""
    values = pd.array(condition.fillna(False).astype(bool).to_numpy(), dtype="boolean")
    values[missing.fillna(True).astype(bool).to_numpy()] = pd.NA
    return pd.Series(values, index=condition.index)


def flag_counts(part: pd.DataFrame, column: str) -> dict[str, int]:
    """Yes, no and defined counts of a yes/no client measure."""
    if column not in part.columns:
        return {"yes": 0, "no": 0, "defined": 0}
    values = part[column].dropna().astype(bool)
    yes = int(values.sum())
    return {"yes": yes, "no": len(values) - yes, "defined": len(values)}


def rate_cells(
    grouped: Groups,
    column: str,
    min_cell: int,
    *,
    fmt: str = "{:.1%}",
    ledger: Ledger | None = None,
) -> list[str]:
    """A yes/no measure per group as "count (percent)" of the clients for whom it is defined.

    Yes, no and defined counts form a table whose last row (all clients) is the total and whose
    defined column is each row's total; a cell whose yes or no count is hidden there is
    withheld, "<11" when the yes count itself is small or too few clients are defined, "*"
    when it is hidden to protect another cell. With a `ledger`, the counts and the percentage
    (which bounds count / defined) are published to the report's audit, and a count it
    withholds reads "*".
    """
    counts = pd.DataFrame(
        [flag_counts(part, column) for _, part in grouped], index=[name for name, _ in grouped]
    )
    hidden = suppression_mask(
        counts,
        ["yes", "no", "defined"],
        min_cell,
        total_row=grouped[-1][0] if len(grouped) > 1 else None,
        total_column="defined",
    )
    withheld = withheld_sizes(grouped, min_cell)
    cells = []
    for name, c in counts.iterrows():
        yes, defined = int(c["yes"]), int(c["defined"])
        key = f"rate[{column}][{name}]"
        if defined == 0:
            cells.append(NOT_AVAILABLE)
        elif is_small(yes, min_cell) or defined < min_cell:
            cells.append(suppressed_label(min_cell))
        elif (
            hidden.loc[name, ["yes", "no", "defined"]].any()
            or name in withheld
            or (ledger is not None and ledger.is_withheld(f"{key}.yes"))
        ):
            cells.append(COMPLEMENTARY_LABEL)
        else:
            cells.append(f"{yes} ({fmt.format(yes / defined)})")
        if ledger is not None:
            _publish_rate(ledger, key, name, c, cells[-1], min_cell)
    if ledger is not None and len(grouped) > 1:
        names = [f"rate[{column}][{name}]" for name in counts.index]
        for part in ("yes", "no", "defined"):
            ledger.relate(f"{names[-1]}.{part}", [f"{n}.{part}" for n in names[:-1]])
    return cells


def _publish_rate(ledger: Ledger, key: str, group: str, c: pd.Series, cell: str, min_cell: int):
    """One group's yes, no and defined counts of a yes/no measure, as its cell shows them."""
    yes, no, defined = int(c["yes"]), int(c["no"]), int(c["defined"])
    label = suppressed_label(min_cell)
    shown = cell.split(" ")[0] if cell not in (NOT_AVAILABLE, label) else None
    if cell == label and is_small(yes, min_cell):
        ledger.count(f"{key}.yes", yes, label)
    else:
        ledger.count(f"{key}.yes", yes, shown if shown and shown.isdigit() else "*")
    ledger.unpublished(f"{key}.no", no)
    ledger.subset(
        f"{key}.defined",
        defined,
        of=group_key(group),
        rest=f"{key}.undefined",
        text=label if is_small(defined, min_cell) else COMPLEMENTARY_LABEL,
    )
    ledger.relate(f"{key}.defined", [f"{key}.yes", f"{key}.no"])
    if shown and shown.isdigit():
        ledger.percentage(f"{key}.yes", f"{key}.defined", cell)


def correlation(frame: pd.DataFrame, x: str, y: str, min_cell: int) -> dict[str, str]:
    """Pearson r of two client measures over the clients with both, with a Fisher-z 95% CI."""
    empty = {"r": NOT_AVAILABLE, "ci": "", "n": ""}
    r, low, high, n = correlation_values(frame, x, y)
    if n == 0:
        return empty
    if n < min_cell:
        return {**empty, "r": suppressed_label(min_cell)}
    if not math.isfinite(r):
        return {**empty, "n": str(n)}
    ci = f"[{coef(low)}, {coef(high)}]" if math.isfinite(low) else ""
    return {"r": coef(r), "ci": ci, "n": str(n)}


def correlation_values(frame: pd.DataFrame, x: str, y: str) -> tuple[float, float, float, int]:
    """(r, ci_low, ci_high, n): Pearson r over the clients with both measures and its Fisher-z
    95% CI; NaN where undefined (a constant measure; n <= 3 or |r| = 1 for the CI)."""
    nan = math.nan
    if x not in frame.columns or y not in frame.columns:
        return nan, nan, nan, 0
    pair = frame[[x, y]].apply(pd.to_numeric, errors="coerce").astype(float).dropna()
    n = len(pair)
    if n == 0 or pair[x].std() == 0 or pair[y].std() == 0:
        return nan, nan, nan, n
    r = float(np.corrcoef(pair[x], pair[y])[0, 1])
    if n <= 3 or abs(r) >= 1:
        return r, nan, nan, n
    half = 1.959963984540054 / math.sqrt(n - 3)
    return r, math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half), n
