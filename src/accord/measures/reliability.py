"""Internal consistency per instrument, scale and assessment wave: Cronbach's alpha and omega.

For each instrument (GAS excepted), each scale (the total and every subscale), each rater and each
wave (wave = session_number; the intake assessment is wave 0), the complete cases on that scale's
items give:

- Cronbach's (1951) alpha, k / (k - 1) * (1 - sum of item variances / variance of the sum), with
  the Feldt (1965; Feldt, Woodruff & Salih 1987) 95 % interval, as R's psych::alpha.ci computes it:
  1 - (1 - alpha) * F(1 - p/2) and 1 - (1 - alpha) * F(p/2), F with n - 1 and (n - 1)(k - 1)
  degrees of freedom.
- McDonald's omega total from a one-factor model fitted by maximum likelihood (Joereskog 1967, the
  algorithm of R's factanal): omega = (sum loadings)^2 / ((sum loadings)^2 + sum uniquenesses).
  The model is fitted to the correlation matrix and its loadings rescaled by the item standard
  deviations (ML is scale-free), so omega, like alpha, describes the unweighted sum of raw items.
  The total of an instrument whose subscales split its items (the WAI-SR's goal, task and bond)
  is not one-dimensional, so a one-factor omega would misstate it: its omega is that of the
  correlated-factors model, each subscale a factor (McDonald 1999, ch. 6; stratified like
  Cronbach, Schoenemann & McKie 1965): omega = 1 - (sum of all items' uniquenesses from each
  subscale's one-factor model) / variance of the total; each subscale's own omega is reported
  on its row.

Reverse-keyed items are reversed first. A cell with fewer than `min_n` complete cases, or whose
items do not vary, gets NaN statistics and a `reason`; so does omega where the factor model
fails, and an omega whose model has a uniqueness at its lower bound (a Heywood case) is kept
but flagged in `reason`.

The table is computed from each cell's sufficient statistics (`CellSums`: the number of complete
cases, the item sums and the item cross-products), so a study scored in partitions of clients
adds its partitions' statistics and gets the one-job table to the last bit. The statistics are
exact: responses enter reliability on a grid of 1/1000 of a point (round(x * 1000); whole-number
items are unchanged, a visual-analogue rating such as 7.25 becomes 7250), their sums and
cross-products are integers, and the covariance (n S_jk - S_j S_k) / (n (n - 1)) is formed once
from them with a single rounding. Floating-point sums would depend on the order the cases were
added in; these do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from accord.core.instruments import Registry
from accord.measures.scoring import prepare_forms, scale_columns

__all__ = [
    "GRID",
    "RELIABILITY_COLUMNS",
    "CellSums",
    "ReliabilitySums",
    "add_reliability_sums",
    "alpha_ci",
    "cell_sums",
    "covariance_from_sums",
    "cronbach_alpha",
    "grid_responses",
    "omega_correlated_factors",
    "omega_total",
    "one_factor_ml",
    "reliability_from_sums",
    "reliability_sums",
    "reliability_table",
    "sums_from_records",
    "sums_to_records",
]

RELIABILITY_COLUMNS = (
    "instrument",
    "scale",
    "rater",
    "wave",
    "n",
    "k_items",
    "alpha",
    "alpha_ci_low",
    "alpha_ci_high",
    "omega",
    "reason",
)
# Responses enter reliability as whole numbers of 1/GRID point.
GRID = 1000
# factanal's lower bound on uniquenesses (of standardised items).
_PSI_LOWER = 0.005


def cronbach_alpha(cov: np.ndarray) -> float:
    """Cronbach's alpha from an item covariance matrix: k/(k-1) * (1 - trace / sum)."""
    cov = np.asarray(cov, dtype="float64")
    k = cov.shape[0]
    total_variance = cov.sum()
    if k < 2 or not total_variance > 0:
        return math.nan
    return k / (k - 1) * (1 - np.trace(cov) / total_variance)


def alpha_ci(alpha: float, n: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt (1965) confidence interval for alpha from n cases and k items (psych::alpha.ci)."""
    if not math.isfinite(alpha) or n < 2 or k < 2:
        return math.nan, math.nan
    tail = (1 - level) / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * stats.f.ppf(1 - tail, df1, df2)
    high = 1 - (1 - alpha) * stats.f.ppf(tail, df1, df2)
    return float(low), float(high)


def one_factor_ml(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Maximum-likelihood one-factor model of a correlation matrix: (loadings, uniquenesses, ok).

    Follows R's factanal: for given uniquenesses Psi the best loadings come from the largest
    eigenvalue of Psi^-1/2 R Psi^-1/2, and Psi is found by L-BFGS-B on the ML discrepancy with
    uniquenesses bounded to [0.005, 1].
    """
    corr = np.asarray(corr, dtype="float64")
    p = corr.shape[0]
    try:
        start = (1 - 0.5 / p) / np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError:
        start = np.full(p, 0.5)
    start = np.clip(start, _PSI_LOWER, 1.0)

    def scaled(psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        root = 1 / np.sqrt(psi)
        return np.linalg.eigh(corr * np.outer(root, root))

    def discrepancy(psi: np.ndarray) -> float:
        values = scaled(psi)[0][:-1]  # all but the largest eigenvalue
        if np.any(values <= 0):
            return math.inf
        return -float(np.sum(np.log(values) - values) - 1 + p)

    def loadings(psi: np.ndarray) -> np.ndarray:
        values, vectors = scaled(psi)
        return np.sqrt(psi) * vectors[:, -1] * math.sqrt(max(values[-1] - 1, 0.0))

    def gradient(psi: np.ndarray) -> np.ndarray:
        load = loadings(psi)
        return (load * load + psi - np.diag(corr)) / psi**2

    result = optimize.minimize(
        discrepancy,
        start,
        jac=gradient,
        method="L-BFGS-B",
        bounds=[(_PSI_LOWER, 1.0)] * p,
        options={"ftol": 1e-12, "gtol": 1e-9, "maxiter": 1000},
    )
    psi = result.x
    load = loadings(psi)
    if load.sum() < 0:  # the eigenvector's sign is arbitrary
        load = -load
    ok = bool(result.success) and bool(np.all(np.isfinite(load)))
    return load, psi, ok


def omega_total(cov: np.ndarray) -> float:
    """McDonald's omega total of the unweighted item sum, from a one-factor ML model of `cov`."""
    return _omega(cov)[0]


def _omega(cov: np.ndarray) -> tuple[float, bool]:
    """(omega, whether a uniqueness sits at its lower bound: a Heywood case)."""
    cov = np.asarray(cov, dtype="float64")
    if cov.shape[0] < 3:
        return math.nan, False
    sd = np.sqrt(np.diag(cov))
    if not np.all(sd > 0):
        return math.nan, False
    load, psi, ok = one_factor_ml(cov / np.outer(sd, sd))
    if not ok:
        return math.nan, False
    common = float(np.sum(load * sd)) ** 2
    heywood = bool(np.any(psi <= _PSI_LOWER * (1 + 1e-6)))
    return common / (common + float(np.sum(psi * sd**2))), heywood


def omega_correlated_factors(cov: np.ndarray, parts: Sequence[Sequence[int]]) -> float:
    """Omega of the unweighted sum when `parts` (item index lists) are correlated factors:
    1 - (sum of the items' unique variances) / (variance of the sum).

    The unique variances come from a one-factor ML model of each part on its own, which equals
    the joint correlated-factors model's where that model fits (a congeneric item loads on its
    own factor only); on sample data the two can differ slightly."""
    return _omega_parts(cov, parts)[0]


def _omega_parts(cov: np.ndarray, parts: Sequence[Sequence[int]]) -> tuple[float, bool]:
    cov = np.asarray(cov, dtype="float64")
    error, heywood = 0.0, False
    for part in parts:
        sub = cov[np.ix_(list(part), list(part))]
        if sub.shape[0] < 3:
            return math.nan, False
        sd = np.sqrt(np.diag(sub))
        if not np.all(sd > 0):
            return math.nan, False
        _, psi, ok = one_factor_ml(sub / np.outer(sd, sd))
        if not ok:
            return math.nan, False
        error += float(np.sum(psi * sd**2))
        heywood |= bool(np.any(psi <= _PSI_LOWER * (1 + 1e-6)))
    return 1.0 - error / float(cov.sum()), heywood


def _subscale_parts(inst) -> list[list[int]] | None:
    """The subscales' item columns when they split the items (two or more), else None."""
    parts = [columns for name, columns, _ in scale_columns(inst) if name != "total"]
    covered = sorted(c for part in parts for c in part)
    return parts if len(parts) >= 2 and covered == list(range(inst.items)) else None


# ---------------------------------------------------------------------------------------------
# Sufficient statistics: the table from exact sums, the same for any partition of the clients


@dataclass(frozen=True)
class CellSums:
    """The sufficient statistics of one reliability cell on the response grid (`GRID`).

    n: complete cases; sums: each item's sum; products: the item cross-products
    (products[j][k] = sum of x_j * x_k). All are exact integers in grid units, so cells from
    partitions of the clients add up to the whole study's cell whatever the order.
    """

    n: int
    sums: tuple[int, ...]
    products: tuple[tuple[int, ...], ...]

    @property
    def k_items(self) -> int:
        return len(self.sums)

    def __add__(self, other: CellSums) -> CellSums:
        if other.k_items != self.k_items:
            raise ValueError("cells of different numbers of items cannot be added")
        return CellSums(
            self.n + other.n,
            tuple(a + b for a, b in zip(self.sums, other.sums, strict=True)),
            tuple(
                tuple(a + b for a, b in zip(row, other_row, strict=True))
                for row, other_row in zip(self.products, other.products, strict=True)
            ),
        )

    def to_record(self) -> dict:
        return {"n": self.n, "sums": list(self.sums), "products": [list(r) for r in self.products]}

    @classmethod
    def from_record(cls, record: Mapping) -> CellSums:
        return cls(
            int(record["n"]),
            tuple(int(v) for v in record["sums"]),
            tuple(tuple(int(v) for v in row) for row in record["products"]),
        )


# (instrument, scale, rater, wave) -> the cell's sums
CellKey = tuple[str, str, str, int]
ReliabilitySums = dict[CellKey, CellSums]


def grid_responses(data: np.ndarray) -> np.ndarray:
    """Responses as whole numbers of 1/`GRID` point: round(x * GRID), half to even."""
    return np.rint(np.asarray(data, dtype="float64") * GRID).astype(np.int64)


def cell_sums(data: np.ndarray) -> CellSums:
    """The exact sums of a complete-case matrix (rows = cases, columns = items).

    Responses go onto the grid (`grid_responses`); sums and cross-products are taken in int64
    over chunks of rows small enough that no sum of products can overflow, and the chunks are
    added as Python integers (unbounded).
    """
    grid = grid_responses(data)
    n, k = grid.shape
    largest = int(np.abs(grid).max()) if grid.size else 0
    rows = (2**63 - 1) // max(largest * largest, 1)
    if rows == 0:  # a single product would overflow int64: Python integers throughout
        grid, rows = grid.astype(object), max(n, 1)
    sums = [0] * k
    products = [[0] * k for _ in range(k)]
    for start in range(0, n, rows):
        chunk = grid[start : start + rows]
        chunk_sums = chunk.sum(axis=0).tolist()
        chunk_products = (chunk.T @ chunk).tolist()
        for j in range(k):
            sums[j] += chunk_sums[j]
            for m in range(k):
                products[j][m] += chunk_products[j][m]
    return CellSums(n, tuple(sums), tuple(tuple(row) for row in products))


def covariance_from_sums(cell: CellSums) -> np.ndarray:
    """The item covariance matrix (n - 1 denominator) of a cell, in response units.

    cov_jk = (n S_jk - S_j S_k) / (n (n - 1) GRID^2): the numerator is an exact integer and
    the one division of Python integers is correctly rounded, so the matrix depends on the
    sums alone, never on the order the cases were added in.
    """
    n, k = cell.n, cell.k_items
    if n < 2:
        raise ValueError("a covariance needs at least 2 cases")
    scale = n * (n - 1) * GRID * GRID
    cov = np.empty((k, k), dtype="float64")
    for j in range(k):
        for m in range(j, k):
            value = (n * cell.products[j][m] - cell.sums[j] * cell.sums[m]) / scale
            cov[j, m] = cov[m, j] = value
    return cov


def reliability_sums(
    measures: pd.DataFrame, registry: Registry, *, raters: Sequence[str] | None = ("client",)
) -> ReliabilitySums:
    """The sufficient statistics of every reliability cell of the measures table.

    A cell is an instrument (GAS excepted), scale, rater and wave in which some form has at
    least one answered item of the instrument; its sums cover the complete cases on the
    scale's items (possibly none). `raters` limits the raters (None: every rater).
    """
    prepared = prepare_forms(measures, registry)
    cells: ReliabilitySums = {}
    for block in prepared.blocks:
        inst = block.instrument
        if inst.score == "gas" or block.matrix is None:
            continue
        keep = np.ones(block.n_forms, dtype=bool)
        if raters is not None:
            wanted = prepared.raters.get_indexer(list(raters))
            keep = np.isin(block.rater, wanted[wanted >= 0])
        keep &= (~np.isnan(block.matrix)).any(axis=1)
        forms = np.flatnonzero(keep)
        if forms.size == 0:
            continue
        groups = (
            pd.DataFrame({"rater": block.rater[forms], "session": block.session[forms]})
            .groupby(["rater", "session"], sort=True)
            .indices
        )
        for scale, columns, _ in scale_columns(inst):
            matrix = block.matrix[np.ix_(forms, columns)]
            complete = ~np.isnan(matrix).any(axis=1)
            for (rater, session), members in groups.items():
                key = (inst.key, scale, str(prepared.raters[rater]), int(session))
                cells[key] = cell_sums(matrix[members[complete[members]]])
    return cells


def add_reliability_sums(parts: Iterable[ReliabilitySums]) -> ReliabilitySums:
    """The cells of several partitions of clients added up (a cell in any part is kept)."""
    total: ReliabilitySums = {}
    for part in parts:
        for key, cell in part.items():
            total[key] = total[key] + cell if key in total else cell
    return total


def sums_to_records(cells: ReliabilitySums) -> list[dict]:
    """The cells as JSON-ready records (integers stay exact), sorted by key."""
    return [
        {"instrument": i, "scale": s, "rater": r, "wave": w, **cells[(i, s, r, w)].to_record()}
        for i, s, r, w in sorted(cells)
    ]


def sums_from_records(records: Iterable[Mapping]) -> ReliabilitySums:
    """The inverse of `sums_to_records`."""
    return {
        (str(r["instrument"]), str(r["scale"]), str(r["rater"]), int(r["wave"])): (
            CellSums.from_record(r)
        )
        for r in records
    }


def reliability_table(
    measures: pd.DataFrame,
    registry: Registry,
    *,
    raters: Sequence[str] | None = ("client",),
    min_n: int = 10,
    level: float = 0.95,
) -> pd.DataFrame:
    """Alpha (with its Feldt interval) and omega per instrument, scale, rater and wave.

    `raters` limits the raters (None: every rater in the data). One row per cell in which some
    form has at least one answered item; `n` counts the complete cases on that scale. Sorted by
    instrument, scale, rater, wave. Computed from the cells' sufficient statistics
    (`reliability_sums`, `reliability_from_sums`), so responses enter on a grid of 1/1000 of
    a point and a study scored in partitions of clients gets the same table to the last bit.
    """
    _check_min_n(min_n)
    cells = reliability_sums(measures, registry, raters=raters)
    return reliability_from_sums(cells, registry, min_n=min_n, level=level)


def reliability_from_sums(
    cells: ReliabilitySums, registry: Registry, *, min_n: int = 10, level: float = 0.95
) -> pd.DataFrame:
    """The reliability table (RELIABILITY_COLUMNS) from the cells' sufficient statistics.

    Each cell's covariance matrix is formed once, exactly (`covariance_from_sums`), from
    responses held on a grid of 1/1000 of a point; alpha, its interval and omega follow from it.
    """
    _check_min_n(min_n)
    rows = []
    for instrument, scale, rater, wave in sorted(cells):
        parts = _subscale_parts(registry[instrument]) if scale == "total" else None
        cell = cells[(instrument, scale, rater, wave)]
        rows.append(
            {
                "instrument": instrument,
                "scale": scale,
                "rater": rater,
                "wave": wave,
                **_cell_statistics(cell, min_n, level, parts),
            }
        )
    table = pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS))
    table = table.astype({"wave": np.int64, "n": np.int64, "k_items": np.int64})
    return table.sort_values(["instrument", "scale", "rater", "wave"], ignore_index=True)


def _check_min_n(min_n: int) -> None:
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 2:
        raise ValueError("min_n must be a whole number of at least 2")


def _cell_statistics(
    cell: CellSums, min_n: int, level: float, parts: list[list[int]] | None = None
) -> dict:
    n, k = cell.n, cell.k_items
    result = {
        "n": n,
        "k_items": k,
        "alpha": math.nan,
        "alpha_ci_low": math.nan,
        "alpha_ci_high": math.nan,
        "omega": math.nan,
        "reason": None,
    }
    if k < 2:
        result["reason"] = "fewer than 2 items"
        return result
    if n < min_n:
        result["reason"] = f"fewer than {min_n} complete cases"
        return result
    cov = covariance_from_sums(cell)
    if not cov.sum() > 0:
        result["reason"] = "no variance in the total"
        return result
    alpha = cronbach_alpha(cov)
    low, high = alpha_ci(alpha, n, k, level)
    result.update(alpha=alpha, alpha_ci_low=low, alpha_ci_high=high)
    if k < 3:
        result["reason"] = "omega needs at least 3 items"
    elif not np.all(np.diag(cov) > 0):
        result["reason"] = "omega: an item does not vary"
    elif parts is not None:
        result["omega"], heywood = _omega_parts(cov, parts)
        result["reason"] = "omega: correlated subscale factors"
        if math.isnan(result["omega"]):
            result["reason"] = "omega: a subscale's one-factor model did not converge"
        elif heywood:
            result["reason"] += "; Heywood case in a subscale"
    else:
        result["omega"], heywood = _omega(cov)
        if math.isnan(result["omega"]):
            result["reason"] = "omega: the one-factor model did not converge"
        elif heywood:
            # Kept, but flagged: one item carries the factor alone, so omega is not trustworthy.
            result["reason"] = "omega: Heywood case (a uniqueness at its lower bound)"
    return result
