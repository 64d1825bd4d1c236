"""The config's analysis section reaches each stage's settings, with the spec's defaults."""

from __future__ import annotations

from accord.config import validate_config
from accord.settings import measure_settings, scoring_settings


def test_defaults_are_the_specification_defaults() -> None:
    config = validate_config({"studies": {"s": {"path": "x"}}})
    measures = measure_settings(config)
    # measures.md: dropout by end_reason; min_sessions 2; early alliance over 3 sessions;
    # repair within 3 sessions; ruptures at 1 and 2 SD; SRS alert below 36 or a 1-point drop;
    # published reliable-change values; SD_pre from the study's intake.
    assert measures.dropout_definition == "end_reason"
    assert measures.dropout_min_sessions == 2
    assert measures.early_sessions == 3
    assert measures.rupture_repair_window == 3
    assert measures.rupture_sds == (1, 2)
    assert (measures.srs_alert_threshold, measures.srs_alert_drop) == (36, 1)
    assert measures.change_method == "published"
    assert measures.rci_sd_source == "intake"
    assert measures.primary_exposure == "joint_goal_share"
    scoring = scoring_settings(config)
    # Kiresuk & Sherman: rho = 0.3, equal weights unless importance is chosen.
    assert (scoring.gas_rho, scoring.gas_weights) == (0.3, "equal")


def test_choices_in_config_reach_the_settings() -> None:
    config = validate_config(
        {
            "studies": {"s": {"path": "x"}},
            "analysis": {
                "dropout_definition": "min_sessions",
                "dropout_min_sessions": 3,
                "change_method": "rci",
                "rupture_sds": [1.5],
                "gas_weights": "importance",
                "gas_rho": 0.4,
            },
        }
    )
    measures = measure_settings(config)
    assert measures.dropout_definition == "min_sessions"
    assert measures.dropout_min_sessions == 3
    assert measures.change_method == "rci"
    assert measures.rupture_sds == (1.5,)
    assert measures.to_metadata()["dropout_definition"] == "min_sessions"
    scoring = scoring_settings(config)
    assert (scoring.gas_rho, scoring.gas_weights) == (0.4, "importance")
