"""The configuration's `analysis` section turned into the settings objects of each stage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.measures.build import MeasureSettings
from accord.measures.scoring import ScoringSettings


def scoring_settings(config: Mapping[str, Any]) -> ScoringSettings:
    analysis = config.get("analysis", {})
    return ScoringSettings(
        gas_rho=analysis.get("gas_rho", 0.3), gas_weights=analysis.get("gas_weights", "equal")
    )


def measure_settings(config: Mapping[str, Any]) -> MeasureSettings:
    analysis = config.get("analysis", {})
    alliance = analysis.get("alliance", "wai_sr")
    return MeasureSettings(
        dropout_definition=analysis.get("dropout_definition", "end_reason"),
        dropout_min_sessions=analysis.get("dropout_min_sessions", 2),
        alliance_instrument=alliance,
        alliance_scale=analysis.get("alliance_scale", "total"),
        early_sessions=analysis.get("early_sessions", 3),
        rupture_repair_window=analysis.get("rupture_repair_window", 3),
        srs_alert_threshold=analysis.get("srs_alert_threshold", 36),
        srs_alert_drop=analysis.get("srs_alert_drop", 1),
        rupture_sds=tuple(analysis.get("rupture_sds", (1, 2))),
        rci_sd_source=analysis.get("rci_sd_source", "intake"),
        change_method=analysis.get("change_method", "published"),
        clinical_cutoff=analysis.get("clinical_cutoff", "registry"),
        end_of_treatment=analysis.get("end_of_treatment", "completed"),
        # Every scored instrument with a cut-off (the primary outcome among them).
        outcome_instruments=None,
        primary_exposure=analysis.get("primary_exposure", "joint_goal_share"),
    )
