"""Configuration: defaults filled in, and a bad key named in the message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from accord.config import load_config, study_input, validate_config
from accord.core.errors import ConfigError


def test_shipped_config_is_valid_and_gets_defaults() -> None:
    config = load_config(ROOT / "config" / "config.yaml")
    assert config["analysis"]["dropout_definition"] == "end_reason"
    assert config["analysis"]["change_method"] == "published"
    assert config["privacy"]["min_cell"] == 11
    assert config["studies"]["demo"]["missing_codes"] == []
    assert config["analysis"]["bootstrap_chunks"] == "auto"


def test_workflow_schema_is_the_package_schema() -> None:
    workflow = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    package = ROOT / "src" / "accord" / "schemas" / "config.schema.yaml"
    assert yaml.safe_load(workflow.read_text()) == yaml.safe_load(package.read_text())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"config key 'studies': is required"),
        ({"studies": {"s": {}}}, r"config key 'studies.s.path': is required"),
        (
            {"studies": {"s": {"path": "x", "missing_code": [1]}}},
            r"config key 'studies.s.missing_code': unknown setting",
        ),
        (
            {"studies": {"s": {"path": "x", "missing_codes": [[1]]}}},
            r"config key 'studies.s.missing_codes\[0\]': must be of type",
        ),
        (
            {"studies": {"s": {"path": "x"}}, "analysis": {"dropout_definition": "soon"}},
            r"config key 'analysis.dropout_definition': must be one of end_reason",
        ),
        (
            {"studies": {"s": {"path": "x"}}, "privacy": {"min_cell": 0}},
            r"config key 'privacy.min_cell'",
        ),
        (
            {"studies": {"s": {"path": "x"}}, "analysis": {"bootstrap_chunks": 0}},
            r"config key 'analysis.bootstrap_chunks'",
        ),
        (
            {"studies": {"s": {"path": "x"}}, "analysis": {"bootstrap_chunks": "many"}},
            r"config key 'analysis.bootstrap_chunks'",
        ),
        (
            {"studies": {"s": {"path": "x"}}, "colour": "blue"},
            r"config key 'colour': unknown setting",
        ),
    ],
)
def test_bad_config_names_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_study_input_resolves_paths(tmp_path: Path) -> None:
    config = validate_config(
        {
            "studies": {
                "s": {
                    "path": "data/s",
                    "missing_codes": [-99],
                    "acknowledged_columns": ["clients.referral_source"],
                }
            }
        }
    )
    study = study_input(config, "s", root=tmp_path)
    assert study.path == tmp_path / "data" / "s"
    assert study.missing_codes == (-99,)
    assert study.acknowledged_columns == ("clients.referral_source",)
    with pytest.raises(ConfigError, match=r"'studies.other': no such study \(configured: s\)"):
        study_input(config, "other")
