"""Small-cell suppression for everything meant for sharing (privacy.md, section 2).

Counts from 1 to ``min_cell - 1`` are shown as ``"<11"`` (for the default threshold of 11, the
CMS cell-size suppression policy); 0 may be shown. A percentage, mean or other statistic
computed from fewer than ``min_cell`` clients is shown as ``"<11"`` too. Where a table carries
totals, complementary suppression hides the next smallest cell of any row or column that would
otherwise have exactly one hidden cell, so a hidden cell cannot be recovered by subtraction.

A cell hidden only to protect another reads ``"*"`` rather than ``"<11"``: its value may be
large, and showing which cell was complemented reveals nothing, since the protected cell's value
is already known to lie between 1 and 10. Every function returns text for display; the numbers
themselves stay with the caller.

The audit: a reader knows every shown value, that each line adds up to its total, that a cell
shown as "<11" lies between 1 and 10 and that any other hidden cell is not negative. The least
and greatest value of each withheld count under those constraints are two linear programmes
(`deducible_interval`, as tau-argus and sdcTable audit a table); a withheld count is protected
while that range spans at least `protection_width` (half the range "<11" stands for). The same
audit runs over every count a report publishes together (`accord.report.ledger`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from numbers import Real

import numpy as np
import pandas as pd

DEFAULT_MIN_CELL = 11
NOT_AVAILABLE = "–"
COMPLEMENTARY_LABEL = "*"


def suppressed_label(min_cell: int = DEFAULT_MIN_CELL) -> str:
    """The text shown in place of a suppressed value, e.g. ``"<11"``."""
    return f"<{min_cell}"


def is_small(n: float, min_cell: int = DEFAULT_MIN_CELL) -> bool:
    """True for a count from 1 to ``min_cell - 1``: a cell that must not be shown."""
    return 0 < n < min_cell


def suppress_count(n: float | None, min_cell: int = DEFAULT_MIN_CELL) -> str:
    """A count for display: ``"0"``, ``"<11"`` for 1..10, otherwise the count itself.

    A missing count is shown as an en dash. Raises ValueError for a negative or fractional
    count, which would mean a caller passed something other than a count.
    """
    _check_min_cell(min_cell)
    if _is_missing(n):
        return NOT_AVAILABLE
    if n < 0 or float(n) != math.floor(float(n)):
        raise ValueError(f"a count must be a whole number >= 0, got {n!r}")
    if is_small(n, min_cell):
        return suppressed_label(min_cell)
    return str(int(n))


def structural_count(n: float | None) -> str:
    """A count that is not a count of people's attributes, shown whole (privacy.md, section 2).

    Structural counts (therapists, sites, instruments, models) describe the study's design, and
    data-quality counts (rows received or quarantined, cells emptied, duplicates, forms
    prorated) describe the records; neither says how many clients have some attribute, so
    neither is suppressed (docs/disclosure.md lists which count is which). A missing count is
    shown as an en dash.
    """
    if _is_missing(n):
        return NOT_AVAILABLE
    if n < 0 or float(n) != math.floor(float(n)):
        raise ValueError(f"a count must be a whole number >= 0, got {n!r}")
    return str(int(n))


def coarsened_steps(counts: Sequence[Sequence[int]], min_cell: int = DEFAULT_MIN_CELL) -> list[int]:
    """Which time points of a numbers-at-risk table to publish, so that no two successive
    published counts of a group give a small count of people away by their difference.

    `counts` holds one sequence per group of its number at risk at each candidate time (the
    same times for every group, non-increasing). The first time is always kept; a later one
    is kept when, for every group, the clients who left the risk set since the last kept
    time (dropouts and censorings) number 0 or at least `min_cell`, or either count is itself
    withheld as small (then the difference is known only to within the 1 to ``min_cell - 1``
    of the withheld count). At risk 57 then 52 would show 5 clients leaving: that time is
    skipped, and the next one is compared with 57.
    """
    _check_min_cell(min_cell)
    if not counts or not len(counts[0]):
        return []
    kept = [0]
    for k in range(1, len(counts[0])):
        last = kept[-1]
        if all(
            is_small(group[k], min_cell)
            or is_small(group[last], min_cell)
            or not is_small(group[last] - group[k], min_cell)
            for group in counts
        ):
            kept.append(k)
    return kept


def suppress_statistic(
    value: float | None,
    n_clients: int,
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    fmt: str = "{:.1f}",
) -> str:
    """A mean, percentage or other statistic for display, computed from `n_clients` clients.

    Shown as ``"<11"`` when fewer than ``min_cell`` clients (but at least one) contributed;
    a statistic from no clients, or a missing value, is shown as an en dash.
    """
    _check_min_cell(min_cell)
    if n_clients < 0:
        raise ValueError(f"n_clients must be >= 0, got {n_clients!r}")
    if n_clients == 0 or _is_missing(value):
        return NOT_AVAILABLE
    if n_clients < min_cell:
        return suppressed_label(min_cell)
    return fmt.format(value)


def suppress_proportion(
    count: int,
    n_clients: int,
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    fmt: str = "{:.1%}",
) -> str:
    """`count` out of `n_clients` as a percentage for display, e.g. a dropout rate.

    Next to its denominator a percentage gives its count away, so it is suppressed when the
    count, or the rest (``n_clients - count``), is a small cell, as well as when fewer than
    ``min_cell`` clients contributed.
    """
    if not 0 <= count <= n_clients:
        raise ValueError(f"count {count!r} must lie between 0 and n_clients ({n_clients!r})")
    if n_clients and (is_small(count, min_cell) or is_small(n_clients - count, min_cell)):
        return suppressed_label(min_cell)
    return suppress_statistic(
        count / n_clients if n_clients else None, n_clients, min_cell, fmt=fmt
    )


def suppression_mask(
    df: pd.DataFrame,
    count_columns: Sequence[Hashable],
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    total_row: Hashable | None = None,
    total_column: Hashable | None = None,
) -> pd.DataFrame:
    """Which cells of `count_columns` must be hidden (a boolean frame of those columns).

    Primary suppression hides every count from 1 to ``min_cell - 1``, totals included.
    Complementary suppression applies where the table shows totals: `total_column` names the
    column holding each row's total (so every row is an additive line), `total_row` the index
    label of the row holding each column's total (so every column is one). A line whose cells
    and total contain exactly one hidden value would give that value away by subtraction, so
    its smallest shown cell is hidden too (ties: the first in table order); this repeats
    until no line has a single hidden value. A reader can also combine lines (a shown zero
    whose own total is zero, say, or two cells of 1 whose sum is known), so each small cell is
    then audited: the least and greatest value it can take given everything shown (a small
    cell between 1 and ``min_cell - 1``) are found by linear programming, and while that
    range is narrower than `protection_width`, another cell on one of its lines is hidden.
    """
    small, complementary = _suppression(df, count_columns, min_cell, total_row, total_column)
    return pd.DataFrame(small | complementary, index=df.index, columns=list(count_columns))


def suppress_table(
    df: pd.DataFrame,
    count_columns: Sequence[Hashable],
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    total_row: Hashable | None = None,
    total_column: Hashable | None = None,
) -> pd.DataFrame:
    """A copy of `df` with its count columns as display text, small cells suppressed.

    Small cells read ``"<11"``; cells hidden to protect them (complementary suppression, see
    `suppression_mask` for the rules and the meaning of the totals) read ``"*"``. Other
    columns are returned unchanged.
    """
    _, complementary = _suppression(df, count_columns, min_cell, total_row, total_column)
    out = df.copy()
    for j, column in enumerate(count_columns):
        shown = [
            COMPLEMENTARY_LABEL if complementary[i, j] else suppress_count(value, min_cell)
            for i, value in enumerate(df[column])
        ]
        out[column] = pd.Series(shown, index=df.index, dtype=object)
    return out


def _suppression(
    df: pd.DataFrame,
    count_columns: Sequence[Hashable],
    min_cell: int,
    total_row: Hashable | None,
    total_column: Hashable | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(small, complementary): boolean arrays over the rows x count columns of `df`."""
    _check_min_cell(min_cell)
    columns = list(count_columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"count columns not in the table: {missing}")
    if total_column is not None and total_column not in columns:
        raise KeyError(f"total_column {total_column!r} is not one of the count columns")
    if not df.index.is_unique:
        raise ValueError("the table's index must be unique to find rows and totals")
    if total_row is not None and total_row not in df.index:
        raise KeyError(f"total_row {total_row!r} is not in the table's index")

    values = df[columns].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    if (values < 0).any() or (np.mod(values[~np.isnan(values)], 1) != 0).any():
        raise ValueError("counts must be whole numbers >= 0")
    small = (values > 0) & (values < min_cell)
    hidden = small.copy()

    # Each additive line: its cells and the cell holding their total.
    lines: list[tuple[list[tuple[int, int]], tuple[int, int]]] = []
    rows = range(len(df))
    if total_column is not None:
        t = columns.index(total_column)
        interior = [j for j in range(len(columns)) if j != t]
        lines += [([(i, j) for j in interior], (i, t)) for i in rows]
    if total_row is not None:
        r = df.index.get_loc(total_row)
        lines += [([(i, j) for i in rows if i != r], (r, j)) for j in range(len(columns))]

    # Hiding more cells only widens what a reader can deduce, so a cell found protected stays
    # protected and is not audited again.
    safe: set[Cell] = set()
    while True:
        _protect_lines(hidden, values, lines)
        # A reader can still narrow a cell down through several lines at once (e.g. a shown
        # zero whose own total is zero): hide one more cell on a line of an exposed cell.
        complement = _next_complement(values, small, hidden, lines, min_cell, safe)
        if complement is None:
            break
        hidden[complement] = True
    return small, hidden & ~small


Cell = tuple[int, int]
Line = tuple[list[Cell], Cell]


def _next_complement(
    values: np.ndarray,
    small: np.ndarray,
    hidden: np.ndarray,
    lines: list[Line],
    min_cell: int,
    safe: set[Cell],
) -> Cell | None:
    """A shown cell to hide for the first exposed small cell that has one on its lines;
    cells found protected are added to `safe`."""
    for cell in zip(*np.nonzero(small), strict=True):
        if cell in safe:
            continue
        if not _exposed(values, small, hidden, lines, cell, min_cell):
            safe.add(cell)
            continue
        candidates = [
            member
            for cells, total in lines
            if cell in cells or cell == total
            for member in [*cells, total]
            if not hidden[member] and not np.isnan(values[member])
        ]
        if candidates:
            return min(candidates, key=lambda c: (values[c] == 0, values[c]))
    return None


def _protect_lines(hidden: np.ndarray, values: np.ndarray, lines: list[Line]) -> None:
    """Hide a second cell on every line with exactly one hidden value, until none is left.

    The complement is the line's smallest shown cell (ties: the first in table order), else
    the line's total.
    """
    changed = True
    while changed:
        changed = False
        for cells, total in lines:
            if sum(hidden[c] for c in cells) + hidden[total] != 1:
                continue
            shown = [c for c in cells if not hidden[c] and not np.isnan(values[c])]
            if shown:
                hidden[min(shown, key=lambda c: values[c])] = True
                changed = True
            elif not hidden[total]:
                # No cell left to hide: the lone hidden cell equals the total, so hide that.
                hidden[total] = True
                changed = True


def _exposed(
    values: np.ndarray,
    small: np.ndarray,
    hidden: np.ndarray,
    lines: list[Line],
    cell: Cell,
    min_cell: int,
) -> bool:
    """Whether a reader can narrow the small hidden `cell` down further than the rule allows.

    The reader knows every shown value, that every line adds up to its total, that a cell
    shown as "<11" lies between 1 and ``min_cell - 1`` and that any other hidden cell is not
    negative; the least and greatest value of `cell` are two linear programmes.
    """
    knowledge: dict[Hashable, tuple[float, float]] = {}
    for c in zip(*np.nonzero(~np.isnan(values)), strict=True):
        if not hidden[c]:
            knowledge[c] = (values[c], values[c])
        elif small[c]:
            knowledge[c] = (1.0, float(min_cell - 1))
        else:
            knowledge[c] = (0.0, math.inf)
    relations = [
        {**{c: 1.0 for c in cells}, total: -1.0}
        for cells, total in lines
        if all(not np.isnan(values[m]) for m in [*cells, total])
    ]
    low, high = deducible_interval(cell, knowledge, relations)
    return not is_protected(low, high, min_cell)


def protection_width(min_cell: int = DEFAULT_MIN_CELL) -> int:
    """How wide, at the least, the range a reader can deduce for a withheld count must be.

    "<11" says 1 to 10; what is published beside it may narrow that range, but never below
    half of it: for the default threshold a withheld count must keep at least six possible
    values (width 5), so no count is pinned and none is placed within a couple of its value.
    """
    return (min_cell - 1) // 2


def is_protected(low: float, high: float, min_cell: int = DEFAULT_MIN_CELL) -> bool:
    """Whether a withheld count that a reader can place in [`low`, `high`] is protected.

    Counts are whole numbers, so the range is first narrowed to whole numbers.
    """
    if math.isinf(high):
        return True
    return math.floor(high + 1e-6) - math.ceil(low - 1e-6) >= protection_width(min_cell)


def deducible_interval(
    target: Hashable,
    knowledge: Mapping[Hashable, tuple[float, float]],
    relations: Sequence[Mapping[Hashable, float]] = (),
    ratios: Sequence[tuple[Hashable, Hashable, float, float]] = (),
    binding: set | None = None,
) -> tuple[float, float]:
    """The least and greatest value of the count `target` a reader can deduce.

    `knowledge` gives what is published about each count as a range (a shown count is
    ``(n, n)``, one shown as "<11" is ``(1, 10)``, one hidden as a complement ``(0, inf)``);
    each relation ``{count: coefficient}`` says the weighted counts add up to zero (a total and
    its parts, a count in two tables); each ratio ``(numerator, denominator, low, high)`` says
    a published percentage puts numerator / denominator between `low` and `high` (its
    rounding). Solved as two linear programmes, as tau-argus and sdcTable audit a table.
    A `binding` set receives the counts whose published range limits the answer (a nonzero
    bound marginal in either programme): withholding one of those is what can widen it.
    """
    from scipy.optimize import linprog

    names = list(knowledge)
    index = {name: k for k, name in enumerate(names)}
    a_eq, b_eq = [], []
    for relation in relations:
        if not all(name in index for name in relation):
            continue
        row = np.zeros(len(names))
        for name, weight in relation.items():
            row[index[name]] += weight
        a_eq.append(row)
        b_eq.append(0.0)
    a_ub, b_ub = [], []
    for numerator, denominator, low, high in ratios:
        if numerator not in index or denominator not in index:
            continue
        for sign, share in ((1.0, high), (-1.0, low)):  # num <= high * den, num >= low * den
            row = np.zeros(len(names))
            row[index[numerator]] += sign
            row[index[denominator]] -= sign * share
            a_ub.append(row)
            b_ub.append(0.0)
    bounds = [(lo, None if math.isinf(hi) else hi) for lo, hi in knowledge.values()]
    target_row = np.zeros(len(names))
    target_row[index[target]] = 1.0
    options = {
        "A_eq": np.array(a_eq) if a_eq else None,
        "b_eq": b_eq or None,
        "A_ub": np.array(a_ub) if a_ub else None,
        "b_ub": b_ub or None,
        "bounds": bounds,
        "method": "highs",
    }
    low, high = linprog(target_row, **options), linprog(-target_row, **options)
    if not low.success:  # what is published is contradictory or the model unbounded
        return knowledge[target]
    if binding is not None:
        for result in (low, high):
            if not result.success:
                continue
            marginals = np.abs(result.lower.marginals) + np.abs(result.upper.marginals)
            binding.update(names[k] for k in np.nonzero(marginals > 1e-9)[0])
    return float(low.fun), (float(-high.fun) if high.success else math.inf)


#: Keys of a results record whose whole-number values count clients (or their rows): a model's
#: clients and observations, clients per category or therapist, events, numbers at risk,
#: clients or rows left out. Therapists, sites, replicates and iterations are not among them.
_COUNT_KEY = re.compile(
    r"^n$|^n_(obs|clients|group|events|censored|at_risk|cases|missing|excluded)$"
    r"|clients|excluded|missing|^rows_|sizes|at_risk|events"
)
#: Keys naming the clients a record's statistics come from.
_SIZE_KEYS = frozenset({"n", "n_clients", "n_obs", "n_group", "n_at_risk"})
#: Counts that are not of clients: the design, the fit (kept whole in a shared record).
_STRUCTURAL_KEYS = frozenset(
    {
        "n_therapists",
        "n_sites",
        "n_instruments",
        "n_models",
        "n_parameters",
        "n_iterations",
        "n_starts",
        "n_boot",
        "n_folds",
        "n_replicates",
    }
)
#: Keys of statistics about clients (shares, rates, means), not counts of them.
_STATISTIC_PREFIXES = ("share", "rate", "proportion", "mean", "median")
#: Numbers beside a small size that describe the entry rather than its clients.
_LABEL_KEYS = frozenset({"time", "session", "session_number", "rank"})
#: Parts of a record withheld whole from a shared copy: per-time survival curves give each
#: interval's events away through the ratio of successive survival values.
_WITHHELD_PARTS = ("curves",)
WITHHELD_TEXT = "withheld (per-time counts of clients)"
#: Parts of a record holding messages, whose counts of clients or rows are suppressed.
_MESSAGE_KEYS = ("warnings",)


def shareable_record(record: object, min_cell: int = DEFAULT_MIN_CELL) -> object:
    """A copy of a JSON-like results record (a model's diagnostics) fit to share outside the
    study: every count of clients from 1 to ``min_cell - 1`` reads ``"<11"``; in an entry whose
    size (``n``, ``n_clients``, ...) is such a count, every other number (a statistic from
    those clients: a therapist's effect, its interval) reads ``"<11"`` too; per-time curves
    are withheld whole.
    """
    _check_min_cell(min_cell)
    return _shareable(record, min_cell, counting=False)


def shareable_coefficients(
    coefficients: pd.DataFrame, min_cell: int = DEFAULT_MIN_CELL
) -> pd.DataFrame:
    """A copy of a coefficients table fit to share: the rows of a model fitted to 1 to
    ``min_cell - 1`` clients keep their labels but lose every number (estimates from so few
    clients, and the counts themselves)."""
    _check_min_cell(min_cell)
    out = coefficients.copy()
    if "n_clients" not in out.columns:
        return out
    n = pd.to_numeric(out["n_clients"], errors="coerce")
    few = (n > 0) & (n < min_cell)
    numeric = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c])]
    numeric = [c for c in numeric if not pd.api.types.is_bool_dtype(out[c])]
    out.loc[few, numeric] = np.nan
    return out


def _shareable(node: object, min_cell: int, *, counting: bool) -> object:
    label = suppressed_label(min_cell)
    if isinstance(node, list):
        items = [_shareable(item, min_cell, counting=counting) for item in node]
        return _complement_entries(items, label)
    if not isinstance(node, dict):
        if counting and _is_count(node) and is_small(node, min_cell):
            return label
        return node
    sizes = {k: v for k, v in node.items() if k in _SIZE_KEYS and _is_count(v)}
    # "n" is the entry's size unless another size is given ({"n": 5, "n_group": 48}: a part).
    few = any(is_small(v, min_cell) for k, v in sizes.items() if k != "n" or len(sizes) == 1)
    part = not few and any(
        _counts_people(k) and _is_count(v) and is_small(v, min_cell) for k, v in node.items()
    )
    out = {}
    for key, value in node.items():
        statistic = (
            key not in _LABEL_KEYS and isinstance(value, Real) and not isinstance(value, bool)
        )
        if key in _WITHHELD_PARTS:
            out[key] = WITHHELD_TEXT
        elif key in _MESSAGE_KEYS:
            out[key] = _shareable_messages(value, min_cell)
        elif few and statistic:
            out[key] = label  # a count of few clients, or a statistic from them
        elif part and statistic and not _counts_people(key):
            out[key] = COMPLEMENTARY_LABEL  # a share that would give the small count away
        else:
            counts = counting or _counts_people(str(key))
            out[key] = _shareable(value, min_cell, counting=counts)
    return out


def _counts_people(key: str) -> bool:
    """Whether a record's key names a count of clients (structural counts excepted)."""
    if key in _STRUCTURAL_KEYS or key.startswith(_STATISTIC_PREFIXES):
        return False
    return bool(_COUNT_KEY.search(key)) or key.startswith("n_")


def _complement_entries(items: list, label: str) -> list:
    """Sibling entries (a group's categories, say) whose counts add up to a shown size: where
    exactly one entry's count is withheld, the smallest other one is withheld too ("*", with
    its shares), so the withheld count cannot be worked out by subtraction."""
    lines: dict[str, list[dict]] = {}  # the entries of one group add up together
    for item in items:
        if isinstance(item, dict):
            lines.setdefault(str(item.get("group", "")), []).append(item)
    for entries in lines.values():
        # Numbers at risk over time are not parts of a whole.
        keys = {k for item in entries for k in item if _counts_people(k) and k != "n_at_risk"}
        for key in sorted(keys):
            hidden = [item for item in entries if item.get(key) == label]
            shown = [item for item in entries if _is_count(item.get(key))]
            if len(hidden) != 1 or not shown:
                continue
            chosen = min(shown, key=lambda item: (item[key] == 0, item[key]))
            for k, v in chosen.items():
                if k == key or (
                    not _counts_people(k)
                    and k not in _LABEL_KEYS
                    and isinstance(v, Real)
                    and not isinstance(v, bool)
                ):
                    chosen[k] = COMPLEMENTARY_LABEL
    return items


def _shareable_messages(value: object, min_cell: int) -> object:
    """A model's warnings with their counts of clients or rows suppressed ("4 row(s) left out
    for a missing value (early_alliance: 4)"), as the report prints them."""
    if isinstance(value, str):
        return suppress_counts_in(value, min_cell)
    if isinstance(value, list):
        return [_shareable_messages(item, min_cell) for item in value]
    return value


def _is_count(value: object) -> bool:
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and float(value) == math.floor(float(value))
    )


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, Real) and math.isnan(float(value))


def _check_min_cell(min_cell: int) -> None:
    if int(min_cell) != min_cell or min_cell < 1:
        raise ValueError(f"min_cell must be a whole number >= 1, got {min_cell!r}")


# "4 clients", "3 row(s)": a count of people or of their records in a message. Therapists are
# a structural count (docs/disclosure.md) and are shown whole.
_COUNT_IN_TEXT = re.compile(r"\b(\d+)( (?:client|row|assessment|observation|pair)(?:s\b|\(s\)|\b))")
# "(early_alliance: 4)": a count per column in a model's warning.
_COUNT_PER_COLUMN = re.compile(r"(\w: )(\d+)\b")


def suppress_counts_in(text: str, min_cell: int) -> str:
    """A message with any count of clients, rows, assessments or pairs in it suppressed, and
    any per-column count ("early_alliance: 4")."""
    text = _COUNT_IN_TEXT.sub(
        lambda m: suppress_count(int(m.group(1)), min_cell) + m.group(2), str(text)
    )
    return _COUNT_PER_COLUMN.sub(
        lambda m: m.group(1) + suppress_count(int(m.group(2)), min_cell), text
    )
