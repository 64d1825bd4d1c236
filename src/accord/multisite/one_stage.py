"""One-stage individual-participant-data meta-analysis of the growth model.

Where the sites' row-level data may be pooled, the growth model (`accord.models.growth`) is
fitted once to the stacked session panels of the local sites, with the site as a fixed effect:

    y_it = b0 + b1 time + b2 x_i + b3 time x x_i + covariates_i + site_s(i) + time x site_s(i)
           + therapist, client intercept and slope random effects, as in each site's model.

The site enters as a categorical baseline covariate (``site``, dummy-coded against the first
site in name order) with its own time slope (``time:site``), so each site keeps its own mean
outcome level and its own course over time, as each site's model in the two-stage analysis
has: comparisons are made within sites, as a stratified two-stage analysis does (Burke, Ensor &
Riley 2017, Stat Med 36:855, recommend stratified intercepts over a common one, and
stratifying the other nuisance terms in the same way). Client and therapist pseudonyms are
prefixed with the site name, so ids that happen to repeat across sites stay distinct, and
therapists are nested in sites.

What the one-stage model does not have, and why the two approaches can differ:

* one time x exposure effect for all sites (a common effect). The random-effects two-stage
  estimate lets the effect vary between sites; with little heterogeneity (tau^2 near 0) the two
  target the same quantity and agree to within sampling error (Burke et al. 2017). Its
  common-effect two-stage counterpart is in ``pooled.csv`` (``common_estimate``).
* site-specific exposure main effects, covariate effects and variance components: these are
  common to all sites, and the random-effect variances are pooled across sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from accord.core.errors import AccordError
from accord.models.spec import ModelSpec
from accord.models.tidy import ModelResult
from accord.multisite.consortium import Consortium

SITE_COLUMN = "site"
ONE_STAGE_COLUMNS = ["consortium", "n_sites", "sites"]


def stack_sites(
    sites: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local sites' session panels and client measures stacked, with a ``site`` column.

    `sites` maps a site name to its (session panel, client measures). Client and therapist ids
    are prefixed with the site name (``north/...``); sites are stacked in name order.
    """
    panels, clients = [], []
    for name in sorted(sites):
        panel, client_measures = sites[name]
        panels.append(_with_site(panel, name))
        clients.append(_with_site(client_measures, name))
    return (
        pd.concat(panels, ignore_index=True, sort=False),
        pd.concat(clients, ignore_index=True, sort=False),
    )


def _with_site(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("client_id", "therapist_id"):
        if column in frame.columns:
            ids = frame[column].astype(object)
            frame[column] = (name + "/" + ids.astype(str)).where(ids.notna(), None)
    frame[SITE_COLUMN] = name
    return frame


def fit_one_stage(
    sites: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    spec: ModelSpec,
    *,
    consortium: str = "",
) -> ModelResult:
    """Fit the growth model `spec` to the stacked rows of `sites` with site fixed effects.

    Returns the `ModelResult` of `fit_growth` (terms ``site[T.<name>]`` and
    ``time:site[T.<name>]`` for every site but the first) with the columns ``consortium``,
    ``n_sites`` and ``sites`` added to its coefficients and a ``one_stage`` record in its
    diagnostics. Raises AccordError for a model that is not a
    growth model or fewer than two sites.
    """
    if spec.kind != "growth":
        raise AccordError(
            f"consortium {consortium!r}: the one-stage model is the growth model; model "
            f"{spec.id!r} is of kind {spec.kind!r}"
        )
    if len(sites) < 2:
        raise AccordError(
            f"consortium {consortium!r}: the one-stage model needs the rows of at least 2 sites"
        )
    panel, client_measures = stack_sites(sites)
    from accord.models.growth import fit_growth  # here: the workflow imports this module to plan

    result = fit_growth(
        panel,
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        time=spec.options.get("time", "session_number"),
        time_coding=spec.time_coding,  # type: ignore[arg-type]
        covariates=[*spec.covariates, SITE_COLUMN],
        time_interactions=[SITE_COLUMN],
        therapist_effect=spec.therapist_effect,
        model_id=spec.id,
        primary=spec.primary,
        exposure_reference=spec.options.get("exposure_reference"),
    )
    names = sorted(sites)
    coefficients = result.coefficients.copy()
    coefficients.insert(0, "consortium", consortium)
    coefficients["n_sites"] = len(names)
    coefficients["sites"] = " ".join(names)
    result.coefficients = coefficients
    record: dict[str, Any] = {
        "consortium": consortium,
        "sites": names,
        "site_effects": f"fixed: one intercept and one time slope per site, reference {names[0]}",
        "site_term": SITE_COLUMN,
    }
    result.diagnostics = {**result.diagnostics, "one_stage": record}
    return result


def one_stage_specs(specs: Sequence[ModelSpec], consortium: Consortium) -> list[ModelSpec]:
    """The config's growth models that the one-stage model refits: those named under the
    consortium's `pool` or, without `pool`, every growth model of the config."""
    growth = [spec for spec in specs if spec.kind == "growth"]
    if consortium.pool:
        named = {target.model for target in consortium.pool}
        growth = [spec for spec in growth if spec.id in named]
    return growth
