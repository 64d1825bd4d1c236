"""Each site's estimates of the terms to pool, read from the files the site's accord run wrote.

A site contributes its model's row of a term (estimate, standard error, counts) unless one of
these holds, in which case the row is kept in ``sites.csv`` with ``included`` false and the
reason, never dropped silently:

* the model did not converge (in coefficients.csv or diagnostics.json);
* the number of clients is suppressed (a shared file may show ``<11``), missing or below the
  small-cell threshold: a statistic from fewer than ``min_cell`` clients is not shown
  (privacy.md, section 2), so its estimate is blanked as well;
* the estimate or its standard error is missing or not positive.

A missing file, a model or term asked for but absent at a site, or a model whose outcome or
exposure differs between sites stops the run with a message naming the site and the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from accord.core.errors import StudyError
from accord.models.multiplicity import exposure_effect
from accord.multisite.consortium import Consortium, PoolTarget, Site

REQUIRED_COLUMNS = (
    "model",
    "outcome",
    "exposure",
    "term",
    "estimate",
    "std_error",
    "n_obs",
    "n_clients",
    "converged",
)
SITE_COLUMNS = [
    "consortium",
    "site",
    "source",
    "model",
    "outcome",
    "exposure",
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "n_obs",
    "n_clients",
    "n_therapists",
    "converged",
    "included",
    "reason",
]
# Site CIs are Wald intervals from the estimate and SE, the quantities the pooling weighs.
_Z = float(stats.norm.ppf(0.975))


def read_site_results(site: Site, consortium: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A site's coefficients table and its diagnostics (keyed by model).

    Raises StudyError naming the consortium, site and file for a missing or unreadable file
    or a missing column.
    """
    where = f"consortium {consortium!r}, site {site.name!r}"
    for path in (site.coefficients, site.diagnostics):
        if not Path(path).is_file():
            raise StudyError(f"{where}: {path} does not exist.", file=str(path))
    try:
        coefficients = pd.read_csv(site.coefficients, dtype={"model": str, "term": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        raise StudyError(
            f"{where}: {site.coefficients} cannot be read as CSV.", file=str(site.coefficients)
        ) from None
    missing = [column for column in REQUIRED_COLUMNS if column not in coefficients.columns]
    if missing:
        raise StudyError(
            f"{where}: {site.coefficients} has no column {missing[0]!r}.",
            file=str(site.coefficients),
            column=missing[0],
        )
    try:
        diagnostics = json.loads(Path(site.diagnostics).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StudyError(
            f"{where}: {site.diagnostics} is not valid JSON.", file=str(site.diagnostics)
        ) from None
    if not isinstance(diagnostics, dict):
        raise StudyError(
            f"{where}: {site.diagnostics} does not hold diagnostics keyed by model.",
            file=str(site.diagnostics),
        )
    # A single model's diagnostics file (one model's folder) rather than the gathered one.
    if "model" in diagnostics and "converged" in diagnostics:
        diagnostics = {str(diagnostics["model"]): diagnostics}
    return coefficients, diagnostics


def pool_targets(
    consortium: Consortium, results: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (model, term) pairs to pool, and notes on models left out of the default.

    With no `pool` in config: every model present at all sites, and of each its exposure-effect
    terms (`accord.models.multiplicity.exposure_effect`) present at all sites. With `pool`:
    exactly those models (and terms), each of which must be at every site.
    """
    notes: list[str] = []
    if consortium.pool:
        return _requested(consortium, results, consortium.pool), notes
    per_site = {name: _effect_rows(frame) for name, (frame, _) in results.items()}
    models = [set(rows["model"]) for rows in per_site.values()]
    common = set.intersection(*models) if models else set()
    partial = sorted(set.union(*models) - common) if models else []
    if partial:
        notes.append(
            "not reported by every site, so not pooled: " + ", ".join(partial) + " (models)"
        )
    pairs = []
    for model in sorted(common):
        terms = [set(rows.loc[rows["model"] == model, "term"]) for rows in per_site.values()]
        shared = set.intersection(*terms)
        if set.union(*terms) - shared:
            notes.append(f"model {model}: exposure terms not at every site are not pooled")
        pairs += [(model, term) for term in sorted(shared)]
    return pairs, notes


def _effect_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if "exposure_effect" in frame.columns:
        flags = frame["exposure_effect"].astype(str).str.lower().isin(["true", "1", "1.0"])
    else:
        flags = exposure_effect(frame)
    return frame.loc[flags.to_numpy(dtype=bool), ["model", "term"]]


def _requested(
    consortium: Consortium,
    results: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]],
    targets: Sequence[PoolTarget],
) -> list[tuple[str, str]]:
    sites = {site.name: site for site in consortium.sites}
    pairs: list[tuple[str, str]] = []
    for target in targets:
        for name, (frame, _) in results.items():
            if target.model not in set(frame["model"]):
                raise StudyError(
                    f"consortium {consortium.name!r}, site {name!r}: model {target.model!r} "
                    f"is not in {sites[name].coefficients}.",
                    file=str(sites[name].coefficients),
                )
            if target.term is not None:
                terms = set(frame.loc[frame["model"] == target.model, "term"])
                if target.term not in terms:
                    raise StudyError(
                        f"consortium {consortium.name!r}, site {name!r}: model "
                        f"{target.model!r} has no term {target.term!r} in "
                        f"{sites[name].coefficients}.",
                        file=str(sites[name].coefficients),
                    )
        if target.term is not None:
            pairs.append((target.model, target.term))
            continue
        per_site = [
            set(_effect_rows(frame.loc[frame["model"] == target.model])["term"])
            for frame, _ in results.values()
        ]
        shared = sorted(set.intersection(*per_site))
        if not shared:
            raise StudyError(
                f"consortium {consortium.name!r}: model {target.model!r} has no exposure "
                "effect that every site reports; name the term to pool (pool: term)."
            )
        pairs += [(target.model, term) for term in shared]
    return list(dict.fromkeys(pairs))


def site_estimates(
    consortium: Consortium,
    results: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]],
    targets: Sequence[tuple[str, str]],
    *,
    min_cell: int = 11,
) -> pd.DataFrame:
    """One row per site and (model, term): the site's estimate, or why it is left out.

    Columns `SITE_COLUMNS`. Raises StudyError naming the site and file when a model's outcome
    or exposure differs from the first site's.
    """
    rows = []
    for model, term in targets:
        reference: tuple[str, str, str] | None = None
        for site in consortium.sites:
            frame, diagnostics = results[site.name]
            found = frame.loc[(frame["model"] == model) & (frame["term"] == term)]
            if found.empty:
                raise StudyError(
                    f"consortium {consortium.name!r}, site {site.name!r}: model {model!r} has "
                    f"no term {term!r} in {site.coefficients}.",
                    file=str(site.coefficients),
                )
            if len(found) > 1:
                raise StudyError(
                    f"consortium {consortium.name!r}, site {site.name!r}: model {model!r} has "
                    f"{len(found)} rows of term {term!r} in {site.coefficients}; expected one.",
                    file=str(site.coefficients),
                    column="term",
                )
            row = found.iloc[0]
            outcome, exposure = str(row["outcome"]), str(row["exposure"])
            if reference is None:
                reference = (site.name, outcome, exposure)
            elif (outcome, exposure) != reference[1:]:
                raise StudyError(
                    f"consortium {consortium.name!r}, site {site.name!r}: model {model!r} in "
                    f"{site.coefficients} is of outcome {outcome!r} and exposure {exposure!r}, "
                    f"but at site {reference[0]!r} of outcome {reference[1]!r} and exposure "
                    f"{reference[2]!r}; pool only the same model across sites.",
                    file=str(site.coefficients),
                    column="outcome",
                )
            rows.append(_site_row(consortium.name, site, row, diagnostics.get(model), min_cell))
    frame = pd.DataFrame(rows, columns=SITE_COLUMNS)
    for column in ("n_obs", "n_clients", "n_therapists"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _site_row(
    consortium: str, site: Site, row: pd.Series, diagnostics: Any, min_cell: int
) -> dict[str, Any]:
    estimate, se = _number(row["estimate"]), _number(row["std_error"])
    n_clients, n_obs = _number(row["n_clients"]), _number(row["n_obs"])
    converged = _flag(row["converged"])
    n_therapists = math.nan
    if isinstance(diagnostics, Mapping):
        if "converged" in diagnostics and diagnostics["converged"] is not None:
            converged = converged and bool(diagnostics["converged"])
        n_therapists = _number(diagnostics.get("n_therapists"))
    reason = ""
    if not converged:
        reason = "model did not converge"
    elif not math.isfinite(n_clients) or n_clients < min_cell:
        reason = f"number of clients suppressed or below {min_cell}"
    elif not (math.isfinite(estimate) and math.isfinite(se) and se > 0):
        reason = "no estimate or standard error"
    small = not math.isfinite(n_clients) or n_clients < min_cell
    ci = (estimate - _Z * se, estimate + _Z * se)
    out = {
        "consortium": consortium,
        "site": site.name,
        "source": site.source,
        "model": str(row["model"]),
        "outcome": str(row["outcome"]),
        "exposure": str(row["exposure"]),
        "term": str(row["term"]),
        "estimate": estimate,
        "std_error": se,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "n_obs": n_obs,
        "n_clients": n_clients,
        "n_therapists": n_therapists,
        "converged": converged,
        "included": reason == "",
        "reason": reason,
    }
    if small:
        # Nothing computed from fewer than min_cell clients is passed on.
        for key in ("estimate", "std_error", "ci_low", "ci_high", "n_obs", "n_clients"):
            out[key] = math.nan
    for key in ("n_obs", "n_clients", "n_therapists"):
        out[key] = pd.NA if not math.isfinite(out[key]) else int(out[key])
    return out


def _number(value: Any) -> float:
    """A number from a cell that may hold text such as ``<11`` (then NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if np.isfinite(number) else math.nan


def _flag(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return str(value).strip().lower() in ("true", "1", "1.0")
