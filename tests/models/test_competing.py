"""Cumulative incidence of dropout with completion competing: by hand, against R's cmprsk,
and recovering a planted cumulative incidence where Kaplan-Meier overstates it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError
from accord.measures.engagement import engagement_measures
from accord.models.competing import aalen_johansen, cif_interval, fit_cumulative_incidence
from accord.models.dropout import fit_cox, fit_kaplan_meier
from accord.models.spec import model_specs

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "cmprsk"


def value_at(curve: pd.DataFrame, t: float, column: str = "cif") -> float:
    return float(curve.loc[curve["time"] <= t, column].iloc[-1])


def test_aalen_johansen_by_hand():
    # times 1, 1, 2, 3, 3 with causes dropout, completion, dropout, censored, completion.
    # t = 1: 5 at risk, S(1-) = 1, one dropout: F = 1/5 = .2; S(1) = 3/5.
    # t = 2: 3 at risk, one dropout: F = .2 + .6 / 3 = .4; S(2) = .6 * 2/3 = .4.
    # t = 3: a completion only: F stays .4 (no new step).
    curve = aalen_johansen(np.array([1, 1, 2, 3, 3]), np.array([1, 2, 1, 0, 2]))
    assert curve["time"].tolist() == [0.0, 1.0, 2.0]
    assert curve["cif"].tolist() == pytest.approx([0.0, 0.2, 0.4])
    assert curve["n_at_risk"].tolist() == [5, 5, 3]
    # Kaplan-Meier with completers censored: 1 - (4/5)(2/3) = .467, above the .4 that drop out.
    km = fit_kaplan_meier(
        pd.DataFrame({"g": "all", "t": [1, 1, 2, 3, 3], "e": [1, 0, 1, 0, 0]}),
        group="g",
        time="t",
        event="e",
        min_cell=1,
    )
    survival = km.diagnostics["extras"]["curves"]["all"][-1]["survival"]
    assert 1 - survival == pytest.approx(1 - 0.8 * 2 / 3)


def test_cumulative_incidence_equals_cmprsk():
    data = pd.read_csv(REFERENCE / "competing.csv")
    reference = pd.read_csv(REFERENCE / "cuminc.csv", comment="#").dropna()
    assert len(reference) > 40
    for (group, cause), expected in reference.groupby(["group", "cause"]):
        part = data.loc[data["group"] == group]
        curve = aalen_johansen(part["time"].to_numpy(), part["cause"].to_numpy(), cause)
        for _, row in expected.iterrows():
            assert value_at(curve, row["time"]) == pytest.approx(row["estimate"], abs=1e-10)
            assert value_at(curve, row["time"], "variance") == pytest.approx(
                row["variance"], abs=1e-10
            )


def test_interval_on_the_log_log_scale():
    # F = .3, SE = .05: exponent 1.96 * .05 / (.3 ln .3) = -0.27134; bounds .3^exp(+-0.27134)
    low, high = cif_interval(0.3, 0.05**2)
    assert low == pytest.approx(0.3 ** np.exp(0.271335), rel=1e-4)
    assert high == pytest.approx(0.3 ** np.exp(-0.271335), rel=1e-4)
    assert low < 0.3 < high
    assert np.isnan(cif_interval(0.0, 0.0)[0])


def test_planted_cumulative_incidence_is_recovered_where_kaplan_meier_overstates_it():
    # Each session a client drops out with probability .05, completes with .10, else goes on;
    # censored after session 12. True P(dropout by session t) = .05 * sum_{k<t} .85^k.
    rng = np.random.default_rng(2026)
    n, h1, h2, last = 4000, 0.05, 0.10, 12
    u = rng.random((n, last))
    event_at = np.argmax(u < h1 + h2, axis=1) + 1
    has_event = (u < h1 + h2).any(axis=1)
    cause = np.where(has_event, np.where(u[np.arange(n), event_at - 1] < h1, 1, 2), 0)
    time = np.where(has_event, event_at, last)
    truth = h1 * sum((1 - h1 - h2) ** k for k in range(last))
    curve = aalen_johansen(time, cause)
    assert value_at(curve, last) == pytest.approx(truth, abs=0.015)
    km = fit_kaplan_meier(
        pd.DataFrame({"g": "all", "t": time, "e": (cause == 1).astype(float)}),
        group="g",
        time="t",
        event="e",
        min_cell=1,
    )
    one_minus_km = 1 - km.diagnostics["extras"]["curves"]["all"][-1]["survival"]
    assert one_minus_km > truth + 0.05


def engagement(reasons: dict[str, str | None], attended: dict[str, int]) -> pd.DataFrame:
    sessions = pd.DataFrame(
        [(c, s, "attended") for c, k in attended.items() for s in range(1, k + 1)],
        columns=["client_id", "session_number", "status"],
    )
    ids = pd.Index(list(attended), name="client_id")
    return engagement_measures(sessions, ids, pd.Series(reasons))


def test_end_event_names_how_treatment_ended():
    out = engagement(
        {"a": "dropout", "b": "completed", "c": "referred", "d": "ongoing", "e": None},
        {"a": 2, "b": 8, "c": 5, "d": 6, "e": 4},
    )
    assert out["end_event"].tolist() == [
        "dropout",
        "completion",
        "completion",
        "censored",
        "censored",
    ]


def test_rows_name_their_grouping_and_the_test_is_cause_specific():
    data = pd.read_csv(REFERENCE / "competing.csv")
    labels = {1: "dropout", 2: "completion", 0: "censored"}
    measures = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(len(data))],
            "arm": data["group"],
            "sessions_to_dropout": data["time"],
            "end_event": data["cause"].map(labels),
            "joint_goal_share": np.linspace(0, 1, len(data)),
        }
    )
    result = fit_cumulative_incidence(measures, group="arm", min_cell=11, at_times=[6.0])
    rows = result.coefficients.set_index("term")
    assert set(result.coefficients["exposure"]) == {"arm"}
    assert result.exposure == "arm"
    reference = pd.read_csv(REFERENCE / "cuminc.csv", comment="#").set_index(
        ["group", "cause", "time"]
    )
    assert rows.loc["cif_dropout@6:a", "estimate"] == pytest.approx(
        reference.loc[("a", 1, 6), "estimate"], abs=1e-10
    )
    assert "logrank_cause_specific" in rows.index
    tertiles = fit_cumulative_incidence(measures, group="exposure_tertile", min_cell=11)
    assert set(tertiles.coefficients["exposure"]) == {"joint_goal_share"}
    # Kaplan-Meier rows grouped by arm are labelled arm, not the exposure
    km = fit_kaplan_meier(
        measures.assign(dropout_event=data["cause"].eq(1)), group="arm", min_cell=11
    )
    assert set(km.coefficients["exposure"]) == {"arm"}


def test_unknown_end_event_is_a_config_error():
    measures = pd.DataFrame(
        {"arm": ["a"] * 12, "sessions_to_dropout": 3, "end_event": ["dropout"] * 11 + ["left"]}
    )
    with pytest.raises(ConfigError, match="end_event value 'left'"):
        fit_cumulative_incidence(measures, min_cell=11)


def test_default_plan_draws_cumulative_incidence_and_labels_the_cox_model():
    specs = {spec.id: spec for spec in model_specs({})}
    assert specs["dropout_cif"].kind == "cumulative_incidence"
    assert specs["dropout_cif"].model_role == "descriptive"
    assert "dropout_km" not in specs


def test_cox_model_is_labelled_cause_specific():
    data = pd.read_csv(REFERENCE / "competing.csv")
    measures = pd.DataFrame(
        {
            "sessions_to_dropout": data["time"],
            "dropout_event": data["cause"].eq(1),
            "joint_goal_share": np.linspace(0, 1, len(data)),
        }
    )
    result = fit_cox(measures)
    assert result.diagnostics["method"].startswith("cause-specific Cox")
