"""Multiple imputation: pooling equal to R's mice::pool, and by simulation complete case biased
and multiple imputation not when the post score is missing at random given an auxiliary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from accord.models.ancova import fit_ancova, fit_ancova_mice
from accord.models.imputation import barnard_rubin_df, impute, pool

HERE = Path(__file__).resolve().parents[1] / "data" / "reference" / "mice"


def test_pooling_equals_mice_pool():
    """Rubin's rules and Barnard-Rubin df on the completed data sets R's mice made
    (make_mice_reference.R): every pooled quantity equals mice::pool's."""
    completed = pd.read_csv(HERE / "completed.csv", comment="#")
    reference = pd.read_csv(HERE / "pooled.csv", comment="#").set_index("term")
    fits = [smf.ols("chl ~ age + bmi", part).fit() for _, part in completed.groupby(".imp")]
    pooled = pool(
        np.array([f.params.to_numpy() for f in fits]),
        np.array([np.diag(f.cov_params().to_numpy()) for f in fits]),
        float(fits[0].df_resid),
        list(fits[0].params.index),
    )
    ref = reference.loc[pooled.terms]
    assert pooled.df_com == ref["dfcom"].iloc[0] == 22
    for ours, theirs in [
        (pooled.estimate, "estimate"),
        (pooled.ubar, "ubar"),
        (pooled.b, "b"),
        (pooled.t, "t"),
        (pooled.df, "df"),
        (pooled.riv, "riv"),
        (pooled.lambda_, "lambda"),
        (pooled.fmi, "fmi"),
        (pooled.std_error, "std_error"),
        (pooled.p_value(), "p_value"),
        (pooled.conf_int()[0], "ci_low"),
        (pooled.conf_int()[1], "ci_high"),
    ]:
        np.testing.assert_allclose(ours, ref[theirs].to_numpy(), rtol=1e-9, err_msg=theirs)


def test_barnard_rubin_df_by_hand():
    # m = 5, B = 1, T = 3: lambda = 1.2 / 3 = 0.4; df_old = 4 / 0.16 = 25;
    # df_obs = (20 + 1) / (20 + 3) * 20 * 0.6 = 252 / 23 = 10.9565; df = 25 df_obs / (25 + df_obs)
    df_obs = 21 / 23 * 20 * 0.6
    assert barnard_rubin_df(5, np.array([1.0]), np.array([3.0]), 20)[0] == pytest.approx(
        25 * df_obs / (25 + df_obs)
    )
    # without a complete-data df, Rubin's (1987) df_old
    assert barnard_rubin_df(5, np.array([1.0]), np.array([3.0]), np.inf)[0] == pytest.approx(25)


def simulate_mar(seed: int, n: int = 3000) -> pd.DataFrame:
    """y_post = 4 + 0.5 y_first - 3 x + 2 z + e, with z an auxiliary (say early alliance or the
    last score before the end) correlated with the exposure x. y_post is missing at random
    given z: P(missing) = expit(-0.4 + 1.5 z), so the complete cases over-represent low z."""
    rng = np.random.default_rng(seed)
    first = rng.normal(16, 4, n)
    x = rng.uniform(0, 1, n)
    z = 1.2 * (x - 0.5) + rng.normal(0, 1, n)
    post = 4 + 0.5 * first - 3 * x + 2 * z + rng.normal(0, 1, n)
    missing = rng.random(n) < 1 / (1 + np.exp(-(-0.4 + 1.5 * z)))
    post[missing] = np.nan
    return pd.DataFrame(
        {"client_id": [f"C{i:05d}" for i in range(n)], "x": x, "y_first": first, "y_post": post}
    ).assign(z=z)


def test_complete_case_is_biased_and_imputation_is_not_under_mar():
    # The full-data regression of y_post on x and y_first has slope -3 + 2 * 1.2 = -0.6 for x
    # (z's part that x predicts): the estimand both analyses target.
    estimand = -3 + 2 * 1.2
    cc, mi = [], []
    for seed in (1, 2, 3):
        data = simulate_mar(seed)
        cc.append(fit_ancova(data, outcome="y", exposure="x").coefficients)
        mi.append(
            fit_ancova_mice(
                data, outcome="y", exposure="x", auxiliary=["z"], n_imputations=10, seed=seed
            ).coefficients
        )
    cc_x = np.array([c.set_index("term").loc["x", "estimate"] for c in cc])
    mi_x = np.array([c.set_index("term").loc["x", "estimate"] for c in mi])
    mi_se = np.array([c.set_index("term").loc["x", "std_error"] for c in mi])
    print("estimand", estimand, "complete case", cc_x, "imputation", mi_x, "SE", mi_se)
    # complete case: selecting on z weakens z's share of x's slope (toward -3), by several SEs
    assert abs(cc_x.mean() - estimand) > 0.4
    # multiple imputation with z recovers it within sampling error
    assert abs(mi_x.mean() - estimand) < 2 * mi_se.mean() / np.sqrt(3)
    assert abs(mi_x.mean() - estimand) < abs(cc_x.mean() - estimand) / 4


def test_imputation_differs_from_complete_case_and_is_seeded():
    data = simulate_mar(9, n=400)
    kwargs = dict(outcome="y", exposure="x", auxiliary=["z"], n_imputations=5, seed=4)
    result = fit_ancova_mice(data, **kwargs)
    again = fit_ancova_mice(data, **kwargs)
    pd.testing.assert_frame_equal(result.coefficients, again.coefficients)
    other = fit_ancova_mice(data, **{**kwargs, "seed": 5})
    assert not other.coefficients["estimate"].equals(result.coefficients["estimate"])
    extras = result.diagnostics["extras"]
    assert extras["missing_values"]["y_post"] == data["y_post"].isna().sum() > 0
    assert extras["clients_with_post"] == data["y_post"].notna().sum()
    # t reference with Barnard-Rubin df, below the complete-data df
    assert 0 < extras["degrees_of_freedom"]["x"] < extras["df_complete"] == 400 - 3
    assert 0 < extras["fraction_missing_information"]["x"] < 1
    cc = fit_ancova(data, outcome="y", exposure="x").coefficients.set_index("term")
    mi = result.coefficients.set_index("term")
    assert mi.loc["x", "estimate"] != cc.loc["x", "estimate"]
    assert mi.loc["x", "n_obs"] == 400 > cc.loc["x", "n_obs"]


def test_impute_fills_every_missing_value_and_keeps_binary_columns_binary():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=50), "b": (rng.random(50) < 0.5).astype(float), "c": np.arange(50.0)}
    )
    frame.loc[::7, "a"] = np.nan
    frame.loc[::5, "b"] = np.nan
    for method in ("norm", "pmm"):
        sets = impute(frame, 3, np.random.default_rng(1), n_iterations=3, method=method)
        for done in sets:
            assert not done.isna().any().any()
            assert set(done["b"]) <= {0.0, 1.0}
            pd.testing.assert_series_equal(done["c"], frame["c"])
            observed = frame["a"].notna()
            pd.testing.assert_series_equal(done.loc[observed, "a"], frame.loc[observed, "a"])
