"""Growth-model predictions with and without random effects: a case worked by hand, statsmodels'
fittedvalues and predict, and lme4's predict(fit) and predict(fit, re.form = NA)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from accord.core.errors import ConfigError
from accord.models.growth import GrowthModel, fit_growth_model
from accord.models.predict import PREDICTION_COLUMNS, predict_growth
from accord.models.tidy import ModelResult

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"


def hand_model(time_coding: str = "linear") -> GrowthModel:
    """y = 16 - 0.5 t + 1.0 x - 0.2 t x; client C1: intercept +2, slope -0.1; therapist T1:
    +0.5, T2: -1. C1 (x = 1) is seen by T1 at sessions 0 and 4."""
    data = pd.DataFrame(
        {
            "client": ["C1", "C1"],
            "therapist": ["T1", "T1"],
            "session": [0.0, 4.0],
            "x": [1.0, 1.0],
            "y": [0.0, 0.0],
        }
    )
    data["time"] = np.log1p(data["session"]) if time_coding == "log" else data["session"]
    spec = smf.ols("y ~ time * x", data.assign(y=[0.0, 1.0])).data.model_spec
    return GrowthModel(
        result=ModelResult("growth", "y", "x", pd.DataFrame()),
        fe_params=pd.Series({"Intercept": 16.0, "time": -0.5, "x": 1.0, "time:x": -0.2}),
        client_effects=pd.DataFrame({"intercept": [2.0], "slope": [-0.1]}, index=["C1"]),
        therapist_effects=pd.Series({"T1": 0.5, "T2": -1.0}),
        model_spec=spec,
        data=data,
        time="session_number",
        time_coding=time_coding,
        exposure="x",
        exposure_levels=None,
    )


def test_fitted_predictions_worked_by_hand() -> None:
    predictions = predict_growth(hand_model())
    assert list(predictions.columns) == PREDICTION_COLUMNS
    # Session 4: population 16 - 2 + 1 - 0.8 = 14.2; conditional + 2 - 0.4 + 0.5 = 16.3.
    # Session 0: population 17; conditional 17 + 2 + 0.5 = 19.5.
    np.testing.assert_allclose(predictions["fitted_population"], [17.0, 14.2])
    np.testing.assert_allclose(predictions["fitted_conditional"], [19.5, 16.3])


def test_new_data_take_each_effect_by_its_own_id_worked_by_hand() -> None:
    new = pd.DataFrame(
        {
            "client_id": ["C1", "C9", "C8", "C7"],
            "session_number": [4, 4, 4, 3],
            "therapist_id": ["T2", "T1", "T5", None],
            "x": [1.0, 1.0, 0.0, 0.0],
        }
    )
    predictions = predict_growth(hand_model(), new)
    # C1 with another therapist: 14.2 + 2 - 0.4 - 1 = 14.8; new client C9 of T1: 14.2 + 0.5;
    # new client of an unknown therapist, x = 0: 16 - 2 = 14; no therapist: 16 - 1.5.
    np.testing.assert_allclose(predictions["fitted_population"], [14.2, 14.2, 14.0, 14.5])
    np.testing.assert_allclose(predictions["fitted_conditional"], [14.8, 14.7, 14.0, 14.5])


def test_log_time_predictions_worked_by_hand() -> None:
    new = pd.DataFrame({"client_id": ["C1"], "session_number": [3], "x": [1.0]})
    predictions = predict_growth(hand_model("log"), new)
    t = math.log(4)
    assert predictions["time"].iloc[0] == pytest.approx(t)
    assert predictions["fitted_population"].iloc[0] == pytest.approx(17 - 0.7 * t)
    assert predictions["fitted_conditional"].iloc[0] == pytest.approx(19 - 0.8 * t)


def test_new_data_without_a_predictor_are_refused() -> None:
    new = pd.DataFrame({"client_id": ["C1"], "session_number": [3]})
    with pytest.raises(ConfigError, match="no column 'x'"):
        predict_growth(hand_model(), new)


def simulate(n_clients: int = 60, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frames = []
    x = rng.uniform(size=n_clients)
    for i in range(n_clients):
        s = np.arange(int(rng.integers(3, 10)))
        y = 15 + x[i] + rng.normal(0, 3) + (-0.4 - 0.3 * x[i] + rng.normal(0, 0.3)) * s
        frames.append(
            pd.DataFrame(
                {
                    "client_id": f"C{i:03d}",
                    "session_number": s,
                    "therapist_id": f"T{i % 8}",
                    "phq9": y + rng.normal(0, 2, len(s)),
                }
            )
        )
    measures = pd.DataFrame({"client_id": [f"C{i:03d}" for i in range(n_clients)], "x": x})
    return pd.concat(frames, ignore_index=True), measures


def test_client_level_predictions_match_statsmodels() -> None:
    """Without a therapist term the model is statsmodels' groups = client, re_formula ~time:
    its fittedvalues are the conditional predictions and its predict the population ones."""
    panel, measures = simulate()
    model = fit_growth_model(panel, measures, exposure="x", therapist_effect=False)
    ours = predict_growth(model)
    mixed = smf.mixedlm("phq9 ~ time * x", model.data, groups="client", re_formula="~time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = mixed.fit(method="lbfgs")
        fit = mixed.fit(method="bfgs", gtol=1e-10, maxiter=5000, start_params=first.params_object)
    assert model.result.diagnostics["log_likelihood"] == pytest.approx(fit.llf, abs=1e-6)
    sd = math.sqrt(fit.scale)
    np.testing.assert_allclose(ours["fitted_conditional"], fit.fittedvalues, rtol=0, atol=1e-6 * sd)
    np.testing.assert_allclose(
        ours["fitted_population"], fit.predict(model.data), rtol=0, atol=1e-6 * sd
    )


@pytest.mark.parametrize("name", ["growth_negcorr", "growth_sparse"])
def test_nested_predictions_match_lme4(name: str) -> None:
    """predict(fit) and predict(fit, re.form = NA) of lme4 run to a tight tolerance
    (tests/data/reference/lmm): measured agreement about 1e-8 of the residual SD."""
    panel = pd.read_csv(REFERENCE / f"{name}.csv")
    measures = panel.groupby("client_id", as_index=False)["joint_goal_share"].first()
    model = fit_growth_model(panel, measures)
    reference = pd.read_csv(REFERENCE / "lmm" / "predictions.csv", comment="#")
    reference = reference.query("dataset == @name")
    ours = predict_growth(model).merge(
        reference,
        left_on=["client_id", "session"],
        right_on=["client_id", "session_number"],
        suffixes=("", "_lme4"),
        validate="one_to_one",
    )
    assert len(ours) == len(panel)
    sd = math.sqrt(model.result.diagnostics["random_effects"]["residual"])
    for column in ("fitted_conditional", "fitted_population"):
        np.testing.assert_allclose(ours[column], ours[f"{column}_lme4"], rtol=0, atol=1e-6 * sd)
