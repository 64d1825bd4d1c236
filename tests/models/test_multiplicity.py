"""Benjamini-Hochberg adjustment: the family, the primary rows, hand-computed values."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from accord.core.errors import ConfigError
from accord.models.gather import gather_models
from accord.models.multiplicity import add_fdr, exposure_effect
from accord.models.spec import model_specs
from accord.models.tidy import coefficient_frame

EXPOSURE = "joint_goal_share"


def table() -> pd.DataFrame:
    def row(model, outcome, term, p, exposure=EXPOSURE):
        return {
            "model": model,
            "outcome": outcome,
            "exposure": exposure,
            "term": term,
            "p_value": p,
        }

    return coefficient_frame(
        [
            # primary pair: growth of PHQ-9 and its ANCOVA sensitivity analysis
            row("growth", "phq9", "Intercept", 1e-9),
            row("growth", "phq9", "time", 1e-6),
            row("growth", "phq9", EXPOSURE, 0.5),
            row("growth", "phq9", f"time:{EXPOSURE}", 0.002),
            row("ancova", "phq9", EXPOSURE, 0.03),
            row("ancova", "phq9", "phq9_first", 1e-20),
            # secondary: the family, p = 0.01, 0.04, 0.03, 0.20
            row("growth_gad7", "gad7", EXPOSURE, 0.9),
            row("growth_gad7", "gad7", f"time:{EXPOSURE}", 0.01),
            row("dropout", "dropout", EXPOSURE, 0.04),
            row("dropout", "dropout", "early_alliance", 0.001),
            row("recovery_arm", "phq9", "arm[T.usual_care]", 0.03, exposure="arm"),
            row("mediation", "phq9", "acme", 0.20, exposure="arm"),
            row("mediation", "phq9", "ade", 0.001, exposure="arm"),
            # a model that did not converge: no p-value, not in the family
            row("failed", "gad7", EXPOSURE, math.nan),
        ]
    )


def test_exposure_effect_rows():
    flags = exposure_effect(table())
    chosen = table().loc[flags.to_numpy(), ["model", "term"]].apply(tuple, axis=1).tolist()
    assert chosen == [
        ("growth", f"time:{EXPOSURE}"),
        ("ancova", EXPOSURE),
        ("growth_gad7", f"time:{EXPOSURE}"),
        ("dropout", EXPOSURE),
        ("recovery_arm", "arm[T.usual_care]"),
        ("mediation", "acme"),
        ("failed", EXPOSURE),
    ]


ROLES = {
    "growth": "primary",
    "ancova": "sensitivity",
    "mediation": "decomposition",
    "growth_gad7": "secondary",
    "dropout": "secondary",
    "recovery_arm": "secondary",
    "failed": "secondary",
}


def test_benjamini_hochberg_by_hand():
    # Family (the secondary models' exposure effects) p = 0.01, 0.04, 0.03 (m = 3). Sorted
    # with ranks: 0.01 (1), 0.03 (2), 0.04 (3); p * m / rank = 0.03, 0.045, 0.04. Step-up
    # (running minimum from the largest rank down): 0.04; min(0.045, 0.04) = 0.04;
    # min(0.03, 0.04) = 0.03. In the original order: 0.03, 0.04, 0.04.
    out = add_fdr(table(), ROLES).set_index(["model", "term"])
    assert out.loc[("growth_gad7", f"time:{EXPOSURE}"), "p_fdr"] == pytest.approx(0.03)
    assert out.loc[("dropout", EXPOSURE), "p_fdr"] == pytest.approx(0.04)
    assert out.loc[("recovery_arm", "arm[T.usual_care]"), "p_fdr"] == pytest.approx(0.04)


def test_exactly_one_primary_test_and_sensitivity_rows_outside_the_family():
    # The ANCOVA has the primary's outcome and exposure but is a sensitivity analysis: it is
    # neither primary nor adjusted; the mediation ACME is a decomposition.
    out = add_fdr(table(), ROLES).set_index(["model", "term"])
    primary = out.index[out["primary"].fillna(False).to_numpy(dtype=bool)].tolist()
    assert primary == [("growth", f"time:{EXPOSURE}")]
    assert out.loc[("growth", f"time:{EXPOSURE}"), "p_fdr"] == 0.002
    assert out.loc[("ancova", EXPOSURE), "role"] == "sensitivity"
    assert out.loc[("mediation", "acme"), "role"] == "decomposition"
    for key in [
        ("ancova", EXPOSURE),
        ("mediation", "acme"),
        ("growth", EXPOSURE),
        ("growth", "Intercept"),
        ("dropout", "early_alliance"),
        ("mediation", "ade"),
        ("failed", EXPOSURE),
    ]:
        assert math.isnan(out.loc[key, "p_fdr"])
    assert out["exposure_effect"].sum() == 7


def test_exposure_terms_override():
    out = add_fdr(table(), ROLES, exposure_terms={"dropout": "early_alliance"})
    out = out.set_index(["model", "term"])
    assert math.isnan(out.loc[("dropout", EXPOSURE), "p_fdr"])
    # family now 0.01, 0.001, 0.03: the alliance row is rank 1, 0.001 * 3 = 0.003
    assert out.loc[("dropout", "early_alliance"), "p_fdr"] == pytest.approx(0.003)
    # 0.01 is rank 2: 0.01 * 3 / 2 = 0.015
    assert out.loc[("growth_gad7", f"time:{EXPOSURE}"), "p_fdr"] == pytest.approx(0.015)


def test_no_secondary_tests():
    only_primary = table().query("model == 'growth'")
    out = add_fdr(only_primary, ROLES)
    assert out["p_fdr"].notna().sum() == 1


def test_unknown_role_is_an_error():
    with pytest.raises(ValueError, match="unknown role 'exploratory'"):
        add_fdr(table(), {"growth": "exploratory"})


def test_default_plan_has_one_primary_and_labelled_roles():
    specs = {spec.id: spec for spec in model_specs({})}
    roles = {model_id: spec.model_role for model_id, spec in specs.items()}
    assert [m for m, role in roles.items() if role == "primary"] == ["growth"]
    assert roles["mediation_early_alliance"] == "decomposition"
    assert roles["ancova"] == roles["sensitivity_mice"] == "sensitivity"
    assert roles["growth_lrt_interaction"] == "sensitivity"
    assert roles["sensitivity_dropout_alliance"] == "sensitivity"
    assert roles["dropout"] == roles["growth_gad7"] == "secondary"
    # the dropout model is the total association; early alliance (on the path from
    # goal-setting to dropout) only in the labelled sensitivity model
    assert specs["dropout"].covariates == ("phq9_first",)
    assert "early_alliance" in specs["sensitivity_dropout_alliance"].covariates
    assert "early_alliance" not in specs["sensitivity_dropout_min_sessions"].covariates


def test_two_primary_models_are_a_config_error():
    config = {
        "models": [
            {"id": "a", "kind": "growth", "primary": True},
            {"id": "b", "kind": "ancova", "primary": True},
        ]
    }
    with pytest.raises(ConfigError, match="exactly one model is the primary test"):
        model_specs(config)
    with pytest.raises(ConfigError, match="role 'main' is not one of"):
        model_specs({"models": [{"id": "a", "kind": "growth", "role": "main"}]})


def test_gathered_roles_come_from_the_diagnostics(tmp_path):
    rows = table()
    coefficients, diagnostics = [], []
    for model, part in rows.groupby("model", sort=False):
        folder = tmp_path / str(model)
        folder.mkdir()
        part.to_csv(folder / "coefficients.csv", index=False)
        role = {"model": model, "role": ROLES[str(model)]}
        (folder / "diagnostics.json").write_text(json.dumps(role), encoding="utf-8")
        coefficients.append(folder / "coefficients.csv")
        diagnostics.append(folder / "diagnostics.json")
    gathered, _ = gather_models(coefficients, diagnostics)
    flagged = gathered.loc[gathered["primary"].fillna(False).astype(bool), ["model", "term"]]
    assert flagged.apply(tuple, axis=1).tolist() == [("growth", f"time:{EXPOSURE}")]
    assert gathered.loc[gathered["model"] == "ancova", "role"].eq("sensitivity").all()
