"""Benjamini-Hochberg adjustment: the family, the primary rows, hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from accord.models.multiplicity import add_fdr, exposure_effect
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


def test_benjamini_hochberg_by_hand():
    # Family p = 0.01, 0.04, 0.03, 0.20 (m = 4). Sorted with ranks: 0.01 (1), 0.03 (2),
    # 0.04 (3), 0.20 (4); p * m / rank = 0.04, 0.06, 0.0533, 0.20. Step-up (running minimum
    # from the largest rank down): 0.20; min(0.0533, 0.20) = 0.0533; min(0.06, 0.0533) =
    # 0.0533; min(0.04, 0.0533) = 0.04. In the original order: 0.04, 0.0533, 0.0533, 0.20.
    out = add_fdr(table(), "phq9", EXPOSURE).set_index(["model", "term"])
    assert out.loc[("growth_gad7", f"time:{EXPOSURE}"), "p_fdr"] == pytest.approx(0.04)
    assert out.loc[("dropout", EXPOSURE), "p_fdr"] == pytest.approx(0.16 / 3)
    assert out.loc[("recovery_arm", "arm[T.usual_care]"), "p_fdr"] == pytest.approx(0.16 / 3)
    assert out.loc[("mediation", "acme"), "p_fdr"] == pytest.approx(0.20)


def test_primary_rows_unadjusted_and_others_missing():
    out = add_fdr(table(), "phq9", EXPOSURE).set_index(["model", "term"])
    primary = out.index[out["primary"].fillna(False).to_numpy(dtype=bool)].tolist()
    assert primary == [("growth", f"time:{EXPOSURE}"), ("ancova", EXPOSURE)]
    assert out.loc[("growth", f"time:{EXPOSURE}"), "p_fdr"] == 0.002
    assert out.loc[("ancova", EXPOSURE), "p_fdr"] == 0.03
    for key in [
        ("growth", EXPOSURE),
        ("growth", "Intercept"),
        ("dropout", "early_alliance"),
        ("mediation", "ade"),
        ("failed", EXPOSURE),
    ]:
        assert math.isnan(out.loc[key, "p_fdr"])
    assert out["exposure_effect"].sum() == 7


def test_exposure_terms_override():
    out = add_fdr(table(), "phq9", EXPOSURE, exposure_terms={"dropout": "early_alliance"})
    out = out.set_index(["model", "term"])
    assert math.isnan(out.loc[("dropout", EXPOSURE), "p_fdr"])
    # family now 0.01, 0.001, 0.03, 0.20: the alliance row is rank 1, 0.001 * 4 = 0.004
    assert out.loc[("dropout", "early_alliance"), "p_fdr"] == pytest.approx(0.004)
    assert out.loc[("growth_gad7", f"time:{EXPOSURE}"), "p_fdr"] == pytest.approx(0.02)


def test_no_secondary_tests():
    only_primary = table().query("model == 'growth'")
    out = add_fdr(only_primary, "phq9", EXPOSURE)
    assert out["p_fdr"].notna().sum() == 1
