"""Two-stage individual-participant-data meta-analysis: each site fits the model, the pooled
estimate combines the sites' estimates (Burke, Ensor & Riley 2017, Stat Med 36:855).

For each (model, term) with k included sites, estimates y_i and variances v_i = SE_i^2:

* common effect: weights w_i = 1 / v_i, mu_CE = sum w_i y_i / sum w_i, SE = (sum w_i)^-1/2;
* heterogeneity: Cochran's Q = sum w_i (y_i - mu_CE)^2 on k - 1 degrees of freedom (its
  chi-square p-value), I^2 = max(0, (Q - (k - 1)) / Q) (Higgins & Thompson 2002);
* random effects: between-site variance tau^2, weights w*_i = 1 / (v_i + tau^2), pooled
  estimate mu = sum w*_i y_i / sum w*_i, SE = (sum w*_i)^-1/2, a normal 95% CI and z test;
* the Hartung-Knapp-Sidik-Jonkman interval (Hartung & Knapp 2001, Stat Med 20:3875; Sidik &
  Jonkman 2002, Stat Med 21:3153): SE_HK = (q* / sum w*_i)^1/2 with
  q* = sum w*_i (y_i - mu)^2 / (k - 1), and mu +/- t_{k-1} SE_HK, with its t test; with few
  sites its coverage is closer to 95% than the normal interval's (IntHout, Ioannidis & Borm
  2014, BMC Med Res Methodol 14:25), so report it when there are fewer than about ten sites.
  Under Paule-Mandel with tau^2 > 0, q* is 1 by construction and only the t quantile differs;
* a 95% prediction interval for the effect at a new site, mu +/- t_{k-2} (tau^2 + SE^2)^1/2
  (Higgins, Thompson & Spiegelhalter 2009, JRSS A 172:137), given for k >= 3 only (with
  fewer sites it has no degrees of freedom).

tau^2 is estimated by Paule-Mandel (``paule_mandel``, the default: it solves the generalised
Q equation sum w*_i (y_i - mu)^2 = k - 1, and is recommended over DerSimonian-Laird by
Veroniki et al. 2016, Res Synth Methods 7:55, and Langan et al. 2019, Res Synth Methods
10:83) or DerSimonian-Laird (``dersimonian_laird``: tau^2 = max(0, (Q - (k - 1)) /
(sum w_i - sum w_i^2 / sum w_i))), both from statsmodels' `combine_effects` (``method_re`` "pm"
and "dl"); statsmodels has no REML estimator for this. Both are truncated at zero.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from accord.core.errors import StudyError
from accord.multisite.consortium import DEFAULT_METHOD, Consortium
from accord.multisite.sites import pool_targets, read_site_results, site_estimates

STATSMODELS_METHODS = {"paule_mandel": "pm", "dersimonian_laird": "dl"}
LEVEL = 0.95
POOLED_COLUMNS = [
    "consortium",
    "model",
    "outcome",
    "exposure",
    "term",
    "method",
    "k_sites",
    "sites_excluded",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "z",
    "p_value",
    "hk_std_error",
    "hk_ci_low",
    "hk_ci_high",
    "hk_p_value",
    "tau2",
    "tau",
    "i2",
    "q",
    "q_df",
    "q_p_value",
    "prediction_low",
    "prediction_high",
    "common_estimate",
    "common_std_error",
    "common_ci_low",
    "common_ci_high",
    "n_obs",
    "n_clients",
]


def random_effects_pool(
    estimates: Sequence[float], std_errors: Sequence[float], method: str = DEFAULT_METHOD
) -> dict[str, Any]:
    """Pool site estimates by random effects (and common effect); see the module docstring.

    Returns a dict with estimate, std_error, ci_low, ci_high, z, p_value, the
    Hartung-Knapp SE, CI and p (hk_...), tau2, tau, i2, q, q_df, q_p_value, prediction_low,
    prediction_high, the common-effect estimate, SE and CI,
    k_sites and the relative weights (``weights_random``, ``weights_common``, summing to 1).
    With one site the pooled values are that site's and the heterogeneity values are NaN; with
    none everything is NaN.
    """
    if method not in STATSMODELS_METHODS:
        raise ValueError(f"unknown pooling method {method!r}: use {', '.join(STATSMODELS_METHODS)}")
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(std_errors, dtype=float) ** 2
    k = int(y.size)
    z_crit = float(stats.norm.ppf(0.5 + LEVEL / 2))
    first, last = POOLED_COLUMNS.index("estimate"), POOLED_COLUMNS.index("common_ci_high")
    out: dict[str, Any] = dict.fromkeys(POOLED_COLUMNS[first : last + 1], math.nan)
    out.update(k_sites=k, q_df=max(k - 1, 0), weights_random=[], weights_common=[])
    if k == 0:
        return out
    if k == 1:
        se = math.sqrt(float(v[0]))
        single = _wald(float(y[0]), se, z_crit)
        out.update(single)
        out.update(
            common_estimate=single["estimate"],
            common_std_error=se,
            common_ci_low=single["ci_low"],
            common_ci_high=single["ci_high"],
            weights_random=[1.0],
            weights_common=[1.0],
        )
        return out
    result = combine_effects(y, v, method_re=STATSMODELS_METHODS[method], alpha=1 - LEVEL)
    tau2 = max(float(result.tau2), 0.0)
    mean_re, se_re = float(result.mean_effect_re), float(result.sd_eff_w_re)
    mean_ce, se_ce = float(result.mean_effect_fe), float(result.sd_eff_w_fe)
    q, df = float(result.q), k - 1
    out.update(_wald(mean_re, se_re, z_crit))
    out.update(
        tau2=tau2,
        tau=math.sqrt(tau2),
        i2=max(0.0, (q - df) / q) if q > 0 else 0.0,
        q=q,
        q_df=df,
        q_p_value=float(stats.chi2.sf(q, df)),
        common_estimate=mean_ce,
        common_std_error=se_ce,
        common_ci_low=mean_ce - z_crit * se_ce,
        common_ci_high=mean_ce + z_crit * se_ce,
        weights_random=[float(w) for w in np.asarray(result.weights_rel_re)],
        weights_common=[float(w) for w in np.asarray(result.weights_rel_fe)],
    )
    # Hartung-Knapp: statsmodels' "random effect wls" scale, on a t with k - 1 df.
    se_hk = float(result.sd_eff_w_re_hksj)
    t_crit = float(stats.t.ppf(0.5 + LEVEL / 2, df))
    t_hk = mean_re / se_hk if se_hk > 0 else math.nan
    out.update(
        hk_std_error=se_hk,
        hk_ci_low=mean_re - t_crit * se_hk,
        hk_ci_high=mean_re + t_crit * se_hk,
        hk_p_value=float(2 * stats.t.sf(abs(t_hk), df)) if math.isfinite(t_hk) else math.nan,
    )
    if k >= 3:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, k - 2)) * math.sqrt(tau2 + se_re**2)
        out.update(prediction_low=mean_re - half, prediction_high=mean_re + half)
    return out


def _wald(estimate: float, se: float, z_crit: float) -> dict[str, float]:
    z = estimate / se if se > 0 else math.nan
    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": estimate - z_crit * se,
        "ci_high": estimate + z_crit * se,
        "z": z,
        "p_value": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan,
    }


def pool_sites(
    site_table: pd.DataFrame, method: str = DEFAULT_METHOD
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pool every (model, term) of a sites table (`accord.multisite.sites.site_estimates`).

    Returns the pooled table (`POOLED_COLUMNS`, one row per model and term, in the sites
    table's order) and the sites table with each included site's relative weights
    (``weight_common``, ``weight_random``; missing for excluded sites).
    """
    sites = site_table.copy()
    sites["weight_common"] = np.nan
    sites["weight_random"] = np.nan
    rows = []
    for (model, term), part in sites.groupby(["model", "term"], sort=False):
        used = part.loc[part["included"].astype(bool)]
        pooled = random_effects_pool(
            used["estimate"].to_numpy(float), used["std_error"].to_numpy(float), method
        )
        sites.loc[used.index, "weight_common"] = pooled.pop("weights_common")
        sites.loc[used.index, "weight_random"] = pooled.pop("weights_random")
        first = part.iloc[0]
        rows.append(
            {
                **pooled,
                "consortium": first["consortium"],
                "model": model,
                "outcome": first["outcome"],
                "exposure": first["exposure"],
                "term": term,
                "method": method,
                "sites_excluded": int((~part["included"].astype(bool)).sum()),
                "n_obs": _total(used["n_obs"]),
                "n_clients": _total(used["n_clients"]),
            }
        )
    pooled_table = pd.DataFrame(rows, columns=POOLED_COLUMNS)
    for column in ("k_sites", "sites_excluded", "q_df", "n_obs", "n_clients"):
        pooled_table[column] = pooled_table[column].astype("Int64")
    return pooled_table, sites


def _total(values: pd.Series) -> Any:
    values = pd.to_numeric(values, errors="coerce")
    return int(values.sum()) if len(values) and values.notna().all() else pd.NA


def pool_consortium(
    consortium: Consortium, *, min_cell: int = 11
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read every site's results and pool them: (pooled table, sites table, record).

    The record holds the method, the pooled (model, term) pairs, notes on what was not pooled
    and, per site, its files with their SHA-256 checksums (provenance).
    """
    results = {site.name: read_site_results(site, consortium.name) for site in consortium.sites}
    targets, notes = pool_targets(consortium, results)
    if not targets:
        raise StudyError(
            f"consortium {consortium.name!r}: the sites have no model exposure effect in common "
            "to pool; name the models and terms under pool:"
        )
    site_table = site_estimates(consortium, results, targets, min_cell=min_cell)
    pooled, site_table = pool_sites(site_table, consortium.method)
    for row in site_table.loc[~site_table["included"].astype(bool)].itertuples(index=False):
        notes.append(f"site {row.site}, {row.model} {row.term}: excluded ({row.reason})")
    record = {
        "consortium": consortium.name,
        "method": consortium.method,
        "pooled": [{"model": model, "term": term} for model, term in targets],
        "notes": notes,
        "sites": {
            site.name: {
                "source": site.source,
                "study": site.study,
                "coefficients": str(site.coefficients),
                "diagnostics": str(site.diagnostics),
                "sha256": {
                    Path(path).name: hashlib.sha256(Path(path).read_bytes()).hexdigest()
                    for path in (site.coefficients, site.diagnostics)
                },
            }
            for site in consortium.sites
        },
    }
    return pooled, site_table, record
