"""Dropout models: logistic, Cox and Kaplan-Meier, checked by hand and on simulated data."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures
from scipy import stats

from accord.core.errors import AccordError, ConfigError
from accord.models.dropout import (
    exposure_tertiles,
    fit_cox,
    fit_cox_spec,
    fit_kaplan_meier,
    fit_kaplan_meier_spec,
    fit_logistic,
    fit_logistic_spec,
)
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS, write_model_result

Z = stats.norm.ppf(0.975)
COVARIATES = ["phq9_first", "early_alliance"]


@cache
def simulated(n_clients: int, **effects: float) -> tuple[pd.DataFrame, dict]:
    """Client measures of a simulated study (built once per argument set) and its truth."""
    _, client_measures, truth = simulated_measures(
        n_clients=n_clients, n_therapists=60, seed=31, **effects
    )
    return client_measures, truth


def row(result, term: str) -> pd.Series:
    return result.coefficients.set_index("term").loc[term]


# --- logistic --------------------------------------------------------------------------------


def two_by_two(a: int, b: int, c: int, d: int) -> pd.DataFrame:
    """a dropouts and b stayers with exposure 1; c dropouts and d stayers with exposure 0."""
    x = [1.0] * (a + b) + [0.0] * (c + d)
    y = [True] * a + [False] * b + [True] * c + [False] * d
    return pd.DataFrame(
        {"client_id": [f"C{i}" for i in range(len(x))], "dropout": y, "joint_goal_share": x}
    )


def test_logistic_odds_ratio_equals_the_2x2_cross_product():
    # Exposed: 3 of 12 drop out, odds 3/9; unexposed: 6 of 12, odds 6/6. OR = (3/9)/(6/6) = 1/3.
    frame = two_by_two(3, 9, 6, 6)
    result = fit_logistic(frame)
    exposure = row(result, "joint_goal_share")
    assert exposure["ratio"] == pytest.approx(1 / 3, rel=1e-6)
    assert exposure["estimate"] == pytest.approx(-math.log(3), rel=1e-6)
    # Woolf's SE of the log odds ratio: sqrt(1/a + 1/b + 1/c + 1/d).
    se = math.sqrt(1 / 3 + 1 / 9 + 1 / 6 + 1 / 6)
    assert exposure["std_error"] == pytest.approx(se, rel=1e-5)
    assert exposure["ratio_ci_low"] == pytest.approx(math.exp(-math.log(3) - Z * se), rel=1e-5)
    assert exposure["ratio_ci_high"] == pytest.approx(math.exp(-math.log(3) + Z * se), rel=1e-5)
    # Intercept: log-odds among the unexposed, log(6/6) = 0.
    assert row(result, "Intercept")["estimate"] == pytest.approx(0.0, abs=1e-8)
    # Log-likelihood: sum over cells of n log p, p = 1/4 (exposed) and 1/2 (unexposed).
    llf = 3 * math.log(0.25) + 9 * math.log(0.75) + 12 * math.log(0.5)
    assert result.diagnostics["log_likelihood"] == pytest.approx(llf, rel=1e-8)
    assert result.diagnostics["extras"]["aic"] == pytest.approx(-2 * llf + 4, rel=1e-8)
    assert result.diagnostics["converged"] is True
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    assert result.diagnostics["n_obs"] == 24 and result.diagnostics["extras"]["n_events"] == 9


def test_logistic_counts_rows_left_out_for_missing_values():
    frame = two_by_two(3, 9, 6, 6)
    frame["dropout"] = frame["dropout"].astype("boolean")
    frame.loc[0, "dropout"] = pd.NA
    frame.loc[[1, 2], "joint_goal_share"] = np.nan
    result = fit_logistic(frame)
    extras = result.diagnostics["extras"]
    assert extras["rows_excluded_missing"] == 3
    assert extras["rows_missing_by_column"] == {"outcome dropout": 1, "joint_goal_share": 2}
    assert result.diagnostics["n_obs"] == 21
    assert any("3 row(s) left out" in w for w in result.diagnostics["warnings"])


def test_logistic_reports_perfect_separation():
    frame = two_by_two(6, 0, 0, 6)
    result = fit_logistic(frame)
    assert result.diagnostics["extras"]["perfect_separation"] is True
    assert any("PerfectSeparation" in w for w in result.diagnostics["warnings"])


def test_logistic_codes_a_two_level_text_exposure_and_refuses_bad_input():
    frame = two_by_two(3, 9, 6, 6)
    frame["arm"] = np.where(frame["joint_goal_share"] == 1, "collaborative", "usual_care")
    result = fit_logistic(frame, exposure="arm", exposure_reference="usual_care")
    assert row(result, "arm")["ratio"] == pytest.approx(1 / 3, rel=1e-6)
    coding = result.diagnostics["extras"]["predictor_coding"]["arm"]
    assert coding == "1 = collaborative, 0 = usual_care"
    with pytest.raises(ConfigError, match="no column"):
        fit_logistic(frame, covariates=["nope"])
    with pytest.raises(ConfigError, match="yes/no"):
        fit_logistic(frame.assign(dropout=np.arange(len(frame))))
    with pytest.raises(AccordError, match="does not vary"):
        fit_logistic(frame.assign(dropout=False))


def test_logistic_recovers_the_planted_exposure_log_odds():
    # With no effect of early alliance dips the planted log-odds is also the observed-data
    # (marginal) one; see the module docstring for the default case.
    measures, truth = simulated(3000, dropout_log_odds_alliance=0.0)
    planted = truth["dropout"]["log_odds_exposure"]
    assert truth["dropout"]["log_odds_alliance"] == 0.0
    spec = ModelSpec(
        id="dropout_logistic",
        kind="logistic",
        outcome="dropout",
        exposure="joint_goal_share",
        covariates=tuple(COVARIATES),
        primary=True,
    )
    result = fit_logistic_spec(pd.DataFrame(), measures, spec, ModelContext())
    exposure = row(result, "joint_goal_share")
    assert exposure["ci_low"] <= planted <= exposure["ci_high"]
    assert exposure["primary"] and not row(result, "phq9_first")["primary"]
    assert result.diagnostics["converged"] is True
    assert result.diagnostics["n_clients"] == exposure["n_obs"]


def test_logistic_exposure_lowers_dropout_with_default_effects():
    measures, truth = simulated(3000)
    assert truth["dropout"]["log_odds_exposure"] < 0
    result = fit_logistic(measures, covariates=COVARIATES)
    assert row(result, "joint_goal_share")["ci_high"] < 0
    # Early alliance (which carries the planted dips) lowers dropout too.
    assert row(result, "early_alliance")["ci_high"] < 0


# --- Cox ---------------------------------------------------------------------------------------


def test_cox_without_ties_matches_the_partial_likelihood_by_hand():
    # A (x=1) leaves at 1, B (x=0) at 2, C (x=1) at 3. With u = exp(b) the partial likelihood
    # is u / (2u + 1) * 1 / (1 + u) * 1, maximal where 2u^2 = 1: b = -log(2) / 2.
    frame = pd.DataFrame(
        {"client_id": ["A", "B", "C"], "t": [1, 2, 3], "e": [True] * 3, "x": [1.0, 0.0, 1.0]}
    )
    for ties in ("efron", "breslow"):
        result = fit_cox(frame, time="t", event="e", exposure="x", ties=ties)
        assert row(result, "x")["estimate"] == pytest.approx(-math.log(2) / 2, abs=1e-6)
        assert row(result, "x")["ratio"] == pytest.approx(2**-0.5, abs=1e-6)
        assert result.diagnostics["converged"] is True


def test_cox_ties_efron_differs_from_breslow_as_worked_by_hand():
    # A (x=1) and B (x=0) both leave at 1; C (x=0) is censored at 2. Risk set {A, B, C}.
    # Breslow: u / (u + 2)^2, maximal at u = 2.
    # Efron: u / ((u + 2)(u + 2 - (u + 1) / 2)) = 2u / ((u + 2)(u + 3)), maximal at u^2 = 6.
    frame = pd.DataFrame(
        {
            "client_id": ["A", "B", "C"],
            "t": [1, 1, 2],
            "e": [True, True, False],
            "x": [1.0, 0.0, 0.0],
        }
    )
    efron = fit_cox(frame, time="t", event="e", exposure="x")
    breslow = fit_cox(frame, time="t", event="e", exposure="x", ties="breslow")
    assert row(efron, "x")["estimate"] == pytest.approx(math.log(6) / 2, abs=1e-6)
    assert row(breslow, "x")["estimate"] == pytest.approx(math.log(2), abs=1e-6)
    assert efron.diagnostics["extras"]["ties"] == "efron"
    with pytest.raises(ConfigError, match="ties"):
        fit_cox(frame, time="t", event="e", exposure="x", ties="exact")


def test_cox_on_simulated_data_gives_a_protective_hazard_ratio():
    measures, _ = simulated(3000)
    spec = ModelSpec(
        id="dropout_cox",
        kind="cox",
        outcome="phq9",
        exposure="joint_goal_share",
        covariates=tuple(COVARIATES),
        primary=True,
    )
    result = fit_cox_spec(pd.DataFrame(), measures, spec, ModelContext())
    exposure = row(result, "joint_goal_share")
    assert exposure["ratio_ci_high"] < 1
    assert exposure["ratio"] == pytest.approx(math.exp(exposure["estimate"]))
    # The entry's outcome (the filled-in primary outcome) is not what the Cox model fits.
    assert not result.coefficients["primary"].any()
    assert result.outcome == "sessions_to_dropout"
    diagnostics = result.diagnostics
    assert diagnostics["converged"] is True
    assert diagnostics["extras"]["n_events"] == int(
        measures.loc[measures[COVARIATES].notna().all(axis=1), "dropout_event"].sum()
    )
    assert math.isfinite(diagnostics["log_likelihood"])


# --- Kaplan-Meier ------------------------------------------------------------------------------


def test_kaplan_meier_product_limit_by_hand():
    # Times 1, 2, 2+, 3, 4+, 5 (+ censored). At risk 6, 5, 3, 1 at the event times 1, 2, 3, 5:
    # S = 5/6, 5/6 * 4/5 = 2/3, 2/3 * 2/3 = 4/9, 0.
    frame = pd.DataFrame(
        {
            "client_id": list("ABCDEF"),
            "arm": ["a"] * 6,
            "t": [1, 2, 2, 3, 4, 5],
            "e": [True, True, False, True, False, True],
        }
    )
    result = fit_kaplan_meier(frame, time="t", event="e", min_cell=1)
    curve = pd.DataFrame(result.diagnostics["extras"]["curves"]["a"])
    assert curve["time"].tolist() == [0, 1, 2, 3, 5]
    assert curve["survival"].tolist() == pytest.approx([1, 5 / 6, 2 / 3, 4 / 9, 0])
    assert curve["n_at_risk"].tolist() == [6, 6, 5, 3, 1]
    # Greenwood at t = 1: SE = S sqrt(1 / (6 * 5)); log-scale CI S exp(+-1.96 SE / S).
    half = Z * math.sqrt(1 / 30)
    assert curve.loc[1, "ci_low"] == pytest.approx(5 / 6 * math.exp(-half))
    assert curve.loc[1, "ci_high"] == pytest.approx(min(1.0, 5 / 6 * math.exp(half)))
    # Median: first time S <= 0.5 is 3.
    assert row(result, "median:a")["estimate"] == 3
    table = pd.DataFrame(result.diagnostics["extras"]["risk_table"])
    assert table.set_index("time")["n_at_risk"].to_dict() == {0: 6, 2: 5, 4: 2}
    assert any("one group only" in w for w in result.diagnostics["warnings"])


def test_log_rank_statistic_by_hand():
    # Group A: 1, 3, 4+; group B: 2, 2, 5+.
    # t=1: n=6 (3 A), d=1, E_A = 1/2,  V = 1 * 1/2 * 1/2 * 5/5 = 1/4
    # t=2: n=5 (2 A), d=2, E_A = 4/5,  V = 2 * 2/5 * 3/5 * 3/4 = 9/25
    # t=3: n=3 (2 A), d=1, E_A = 2/3,  V = 1 * 2/3 * 1/3 * 2/2 = 2/9
    # O_A = 2; chi2 = (O_A - E_A)^2 / V.
    frame = pd.DataFrame(
        {
            "client_id": list("ABCDEF"),
            "arm": list("AAABBB"),
            "t": [1, 3, 4, 2, 2, 5],
            "e": [True, True, False, True, True, False],
        }
    )
    expected, variance = 1 / 2 + 4 / 5 + 2 / 3, 1 / 4 + 9 / 25 + 2 / 9
    chi2 = (2 - expected) ** 2 / variance
    result = fit_kaplan_meier(frame, time="t", event="e", min_cell=3)
    logrank = row(result, "logrank_chi2")
    assert logrank["estimate"] == pytest.approx(chi2, rel=1e-8)
    assert logrank["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-8)
    assert result.diagnostics["extras"]["logrank_df"] == 1
    assert math.isnan(row(result, "median:B")["estimate"]) is False  # B falls to 1/3 at t=2
    assert row(result, "median:B")["estimate"] == 2


def test_kaplan_meier_leaves_out_small_groups():
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(14)],
            "arm": ["big"] * 12 + ["small"] * 2,
            "t": [*range(1, 13), 1, 2],
            "e": [True, False] * 7,
        }
    )
    result = fit_kaplan_meier(frame, time="t", event="e", min_cell=11)
    extras = result.diagnostics["extras"]
    assert set(extras["curves"]) == {"big"}
    assert extras["groups_left_out"] == 1
    assert {r["group"] for r in extras["risk_table"]} == {"big"}
    assert "median:small" not in set(result.coefficients["term"])
    assert any("fewer than 11 clients" in w for w in result.diagnostics["warnings"])
    with pytest.raises(AccordError, match="no group"):
        fit_kaplan_meier(frame, time="t", event="e", min_cell=20)


def test_exposure_tertiles_cut_at_the_thirds():
    values = pd.Series([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, np.nan])
    labels, ranges = exposure_tertiles(values)
    # Cut points: quantiles 1/3 and 2/3 of 0..0.8 are 0.2667 and 0.5333.
    assert labels.iloc[:9].tolist() == ["T1 (low)"] * 3 + ["T2"] * 3 + ["T3 (high)"] * 3
    assert pd.isna(labels.iloc[9])
    assert ranges[1] == {"group": "T2", "min": 0.3, "max": 0.5}


def test_kaplan_meier_spec_on_simulated_data(tmp_path):
    measures, _ = simulated(3000)
    spec = ModelSpec(
        id="dropout_km",
        kind="kaplan_meier",
        outcome="phq9",
        exposure="joint_goal_share",
        options={"group": "exposure_tertile", "risk_times": [0, 3, 6]},
    )
    result = fit_kaplan_meier_spec(pd.DataFrame(), measures, spec, ModelContext(min_cell=11))
    extras = result.diagnostics["extras"]
    assert set(extras["curves"]) == {"T1 (low)", "T2", "T3 (high)"}
    assert sum(extras["group_sizes"].values()) == result.diagnostics["n_obs"]
    for name, points in extras["curves"].items():
        survival = [p["survival"] for p in points]
        assert survival[0] == 1 and all(np.diff(survival) <= 0)
        assert points[0]["n_at_risk"] == extras["group_sizes"][name]
        assert set(points[0]) == {"time", "survival", "ci_low", "ci_high", "n_at_risk", "n_events"}
    assert {r["time"] for r in extras["risk_table"]} == {0, 3, 6}
    assert extras["logrank_df"] == 2
    # More joint goal-setting, less dropout: the high tertile ends with higher survival.
    last = {name: points[-1]["survival"] for name, points in extras["curves"].items()}
    assert last["T3 (high)"] > last["T1 (low)"]
    assert row(result, "logrank_chi2")["p_value"] < 0.05
    write_model_result(result, tmp_path / "coefficients.csv", tmp_path / "diagnostics.json")
    written = json.loads((tmp_path / "diagnostics.json").read_text())
    assert set(written["extras"]["curves"]) == set(extras["curves"])
