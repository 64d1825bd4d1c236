"""Clinical change: category shares by group and logistic models of recovery and of reliable
improvement, on a frame small enough to check by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures

from accord.core.errors import ConfigError
from accord.models.clinical_change import fit_clinical_change, fit_clinical_change_spec
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS, write_model_result


def clients() -> pd.DataFrame:
    """24 clients with a category and one without.

    Exposed (x = 1, collaborative): clinical at first 8 (4 recovered, 2 improved, 2 unchanged),
    not clinical 4 (2 improved, 2 unchanged).
    Unexposed (x = 0, usual_care): clinical at first 8 (2 recovered, 1 improved, 4 unchanged,
    1 deteriorated), not clinical 4 (1 improved, 3 unchanged).
    """
    exposed = [("recovered", True)] * 4 + [("improved", True)] * 2 + [("unchanged", True)] * 2
    exposed += [("improved", False)] * 2 + [("unchanged", False)] * 2
    unexposed = [("recovered", True)] * 2 + [("improved", True)] + [("unchanged", True)] * 4
    unexposed += [("deteriorated", True)] + [("improved", False)] + [("unchanged", False)] * 3
    rows = [(c, f, 1.0, "collaborative") for c, f in exposed]
    rows += [(c, f, 0.0, "usual_care") for c, f in unexposed]
    rows.append((None, True, 1.0, "collaborative"))
    frame = pd.DataFrame(rows, columns=["phq9_category", "phq9_clinical_first", "x", "arm"])
    frame.insert(0, "client_id", [f"C{i:02d}" for i in range(len(frame))])
    frame["phq9_category"] = frame["phq9_category"].astype("string")
    frame["phq9_clinical_first"] = frame["phq9_clinical_first"].astype("boolean")
    improved = frame["phq9_category"].isin(["recovered", "improved"])
    frame["phq9_reliable_improvement"] = improved.astype("boolean").where(
        frame["phq9_category"].notna(), pd.NA
    )
    return frame


def row(result, term: str) -> pd.Series:
    return result.coefficients.set_index("term").loc[term]


def test_odds_ratios_of_recovery_and_reliable_improvement_by_hand():
    result = fit_clinical_change(clients(), exposure="x", min_cell=11)
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    # Recovery among the 16 clinical at first: exposed 4 of 8, unexposed 2 of 8.
    # OR = (4/4) / (2/6) = 3; Woolf SE = sqrt(1/4 + 1/4 + 1/2 + 1/6).
    recovery = row(result, "recovery:x")
    assert recovery["ratio"] == pytest.approx(3.0, rel=1e-6)
    assert recovery["std_error"] == pytest.approx(math.sqrt(1 / 4 + 1 / 4 + 1 / 2 + 1 / 6), 1e-5)
    assert recovery["n_obs"] == 16
    assert recovery["outcome"] == "phq9_recovery"
    # Intercept: odds of recovery when unexposed, 2/6.
    assert row(result, "recovery:Intercept")["ratio"] == pytest.approx(1 / 3, rel=1e-6)
    # Reliable improvement among all 24: exposed 8 of 12, unexposed 4 of 12: (8/4)/(4/8) = 4.
    improvement = row(result, "reliable_improvement:x")
    assert improvement["ratio"] == pytest.approx(4.0, rel=1e-6)
    assert improvement["n_obs"] == 24
    assert improvement["outcome"] == "phq9_reliable_improvement"
    assert result.diagnostics["converged"] is True
    assert result.diagnostics["extras"]["clients_without_category"] == 1
    assert result.diagnostics["extras"]["clients_not_clinical_first"] == 8
    assert set(result.diagnostics["extras"]["models"]) == {"recovery", "reliable_improvement"}
    assert not result.coefficients["primary"].any()


def test_category_shares_by_arm_by_hand():
    result = fit_clinical_change(clients(), exposure="x", min_cell=11)
    table = pd.DataFrame(result.diagnostics["extras"]["categories"])
    shares = table.set_index(["group", "category"])
    collaborative = shares.loc["collaborative"]
    assert collaborative["n"].to_dict() == {
        "recovered": 4,
        "improved": 4,
        "unchanged": 4,
        "deteriorated": 0,
    }
    assert (collaborative["n_group"] == 12).all()
    usual = shares.loc["usual_care"]
    assert usual["share"].to_dict() == pytest.approx(
        {"recovered": 2 / 12, "improved": 2 / 12, "unchanged": 7 / 12, "deteriorated": 1 / 12}
    )
    everyone = shares.loc["all"]
    assert everyone["n"].sum() == 24 and everyone.loc["unchanged", "share"] == 11 / 24
    for _, part in table.groupby("group"):
        assert part["share"].sum() == pytest.approx(1.0)


def test_small_groups_are_left_out_and_all_rows_withheld():
    frame = clients()
    frame.loc[frame.index[:3], "arm"] = "pilot"  # 3 clients (all with a category)
    result = fit_clinical_change(frame, exposure="x", min_cell=5)
    groups = {r["group"] for r in result.diagnostics["extras"]["categories"]}
    # Shown: the two arms; withheld: the pilot group and the rows for all clients, which
    # together with the arms would give the pilot group's counts.
    assert groups == {"collaborative", "usual_care"}
    assert result.diagnostics["extras"]["groups_left_out"] == 1
    assert any("fewer than 5 clients" in w for w in result.diagnostics["warnings"])


def test_exposure_tertiles_and_spec_options():
    frame = clients()
    frame["share"] = np.linspace(0, 1, len(frame))
    spec = ModelSpec(
        id="clinical_change",
        kind="clinical_change",
        outcome="phq9",
        exposure="share",
        primary=True,
        options={"group": "exposure_tertile"},
    )
    result = fit_clinical_change_spec(pd.DataFrame(), frame, spec, ModelContext(min_cell=5))
    groups = {r["group"] for r in result.diagnostics["extras"]["categories"]}
    assert groups == {"T1 (low)", "T2", "T3 (high)", "all"}
    assert result.diagnostics["extras"]["grouping"] == "tertiles of share"
    assert {"recovery:share", "reliable_improvement:share"} <= set(result.coefficients["term"])
    assert not result.coefficients["primary"].any()


def test_missing_columns_and_unknown_categories_are_config_errors():
    frame = clients()
    with pytest.raises(ConfigError, match="gad7_category"):
        fit_clinical_change(frame, outcome="gad7", exposure="x")
    frame["phq9_category"] = frame["phq9_category"].replace("improved", "better")
    with pytest.raises(ConfigError, match="unknown categories"):
        fit_clinical_change(frame, exposure="x")


def test_a_model_that_cannot_be_fitted_is_reported_not_dropped():
    frame = clients()
    frame["phq9_clinical_first"] = pd.array([False] * len(frame), dtype="boolean")
    result = fit_clinical_change(frame, exposure="x", min_cell=5)
    assert result.diagnostics["converged"] is False
    assert result.diagnostics["extras"]["models"]["recovery"]["converged"] is False
    assert any("recovery model not fitted" in w for w in result.diagnostics["warnings"])
    assert row(result, "reliable_improvement:x")["ratio"] == pytest.approx(4.0, rel=1e-6)


def test_on_simulated_data_more_joint_goal_setting_more_recovery(tmp_path):
    _, client_measures, _ = simulated_measures(n_clients=800, n_therapists=30, seed=5)
    spec = ModelSpec(
        id="clinical_change", kind="clinical_change", outcome="phq9", exposure="joint_goal_share"
    )
    result = fit_clinical_change_spec(pd.DataFrame(), client_measures, spec, ModelContext())
    # The planted time x exposure effect steepens improvement, so both odds ratios exceed 1.
    assert row(result, "recovery:joint_goal_share")["ratio_ci_low"] > 1
    assert row(result, "reliable_improvement:joint_goal_share")["ratio_ci_low"] > 1
    assert result.diagnostics["converged"] is True
    write_model_result(result, tmp_path / "coefficients.csv", tmp_path / "diagnostics.json")
    written = json.loads((tmp_path / "diagnostics.json").read_text())
    assert {r["group"] for r in written["extras"]["categories"]} == {
        "collaborative",
        "usual_care",
        "all",
    }
