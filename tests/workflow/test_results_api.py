"""The results API: the contract's outputs by name, clear messages for missing files, refits."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml

from accord.config import load_config, validate_config
from accord.core.errors import ConfigError
from accord.models.tidy import write_model_result
from accord.results import OUTPUTS, ResultsNotFoundError, open_results, recorded_config

ROOT = Path(__file__).resolve().parents[2]
STUDY = "small"

# data-contract.md, "Outputs" and input tables: the columns each output must carry.
CONTRACT_COLUMNS = {
    "clients": {"client_id", "therapist_id"},
    "sessions": {"client_id", "session_number", "status"},
    "measures": {"client_id", "session_number", "instrument", "rater", "item", "value"},
    "goals": {"client_id", "goal_id", "set_session", "set_by"},
    "quarantine": {"table", "row_number", "client_id", "rule", "column"},
    "scores": {
        "client_id",
        "session_number",
        "instrument",
        "rater",
        "scale",
        "score",
        "items_answered",
        "prorated",
    },
    # Each scored scale is a column, plus within/between parts of time-varying predictors.
    "session_panel": {
        "client_id",
        "session_number",
        "status",
        "phq9",
        "gad7",
        "alliance_within",
        "alliance_between",
    },
    # measures.md names, and `<instrument>_<measure>` for outcome change.
    "client_measures": {
        "client_id",
        "sessions_attended",
        "attendance_rate",
        "dropout",
        "early_alliance",
        "joint_goal_share",
        "late_goal_share",
        "goal_alliance_client",
        "goal_consensus",
        "gas_t",
        "phq9_first",
        "phq9_last",
        "phq9_change",
        "phq9_category",
        "phq9_response",
        "phq9_remission",
        "nhs_recovery",
        "nhs_reliable_improvement",
    },
    "coefficients": {
        "model",
        "outcome",
        "exposure",
        "term",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "p_value",
        "n_obs",
        "n_clients",
        "converged",
        "p_fdr",
    },
    "reliability": {"instrument", "scale", "alpha", "omega"},
    "missing_by_session": {"instrument", "session_number", "missing_share"},
    "missingness_vs_exposure": {"instrument", "exposure", "missing_share"},
}


@pytest.fixture(scope="module")
def results(workflow_run: Path):
    return open_results(STUDY, root=workflow_run, config=workflow_run / "config.yaml")


def test_a_missing_output_names_the_file_its_rule_and_the_command(tmp_path: Path) -> None:
    (tmp_path / "results" / "pilot").mkdir(parents=True)
    results = open_results("pilot", root=tmp_path)
    with pytest.raises(ResultsNotFoundError) as caught:
        results.session_panel()
    message = str(caught.value)
    assert message.startswith("results/pilot/session_panel.parquet not found")
    assert "`accord run pilot`" in message
    assert "`snakemake -c2 results/pilot/session_panel.parquet`" in message
    assert "build_measures" in message
    # Callers that handle any missing file catch it as one.
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(ResultsNotFoundError, match=r"models/coefficients\.csv.*gather_models"):
        results.coefficients()


def test_a_study_without_results_lists_the_studies_that_have_them(tmp_path: Path) -> None:
    (tmp_path / "results" / "pilot").mkdir(parents=True)
    with pytest.raises(ResultsNotFoundError, match=r"results/main not found.*for: pilot"):
        open_results("main", root=tmp_path)


@pytest.mark.parametrize("table", ["clients", "sessions", "measures", "goals"])
def test_validated_tables_carry_the_contract_columns(results, table: str) -> None:
    assert CONTRACT_COLUMNS[table] <= set(results.validated(table).columns)


@pytest.mark.parametrize(
    "name",
    [
        "quarantine",
        "scores",
        "session_panel",
        "client_measures",
        "coefficients",
        "reliability",
        "missing_by_session",
        "missingness_vs_exposure",
    ],
)
def test_accessors_return_the_contract_columns(results, name: str) -> None:
    table = getattr(results, name)()
    assert isinstance(table, pd.DataFrame)
    assert CONTRACT_COLUMNS[name] <= set(table.columns)


def test_one_row_per_client_and_per_client_session(results) -> None:
    clients = results.client_measures()
    assert clients["client_id"].is_unique
    panel = results.session_panel()
    assert not panel.duplicated(["client_id", "session_number"]).any()
    assert set(panel["client_id"]) <= set(clients["client_id"])


def test_flow_counts_match_the_source_files(results, workflow_run: Path) -> None:
    flow = results.flow()
    assert list(flow.index[:4]) == ["clients", "sessions", "measures", "goals"]
    for table, counts in flow.iterrows():
        # Data rows of the source CSV, counted without the pipeline: lines minus the header.
        source = workflow_run / "data" / STUDY / f"{table}.csv"
        lines = source.read_text(encoding="utf-8").splitlines()
        assert counts["rows_in"] == len(lines) - 1
        assert counts["rows_in"] == counts["rows_accepted"] + counts["rows_quarantined"]
    assert flow.loc["clients", "rows_accepted"] == len(results.validated("clients"))


def test_summary_metadata_and_diagnostics_are_records(results) -> None:
    assert results.summary()["study"] == STUDY
    metadata = results.measures_metadata()
    assert metadata["n_clients"] == len(results.client_measures())
    diagnostics = results.diagnostics()
    assert set(diagnostics) == set(results.coefficients()["model"])
    assert results.diagnostics("growth")["model"] == "growth"
    with pytest.raises(KeyError, match="no model 'growht'"):
        results.diagnostics("growht")


def test_coefficients_of_one_model(results) -> None:
    growth = results.coefficients("growth")
    assert set(growth["model"]) == {"growth"}
    assert "time:joint_goal_share" in set(growth["term"])
    with pytest.raises(KeyError, match="no model 'growht'"):
        results.coefficients("growht")


def test_the_report_records_the_configuration_of_the_run(workflow_run: Path) -> None:
    recorded = recorded_config(workflow_run / "reports" / STUDY / "report.html")
    assert recorded is not None
    assert validate_config(recorded) == load_config(workflow_run / "config.yaml")
    results = open_results(STUDY, root=workflow_run)
    assert results.config_source.endswith("report.html")
    assert results.min_cell == 11


def test_without_a_report_the_config_file_under_the_root_is_used(tmp_path: Path) -> None:
    (tmp_path / "results" / "pilot").mkdir(parents=True)
    (tmp_path / "config").mkdir()
    config = {"studies": {"pilot": {"path": "data/pilot"}}, "privacy": {"min_cell": 5}}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    results = open_results("pilot", root=tmp_path)
    assert results.config_source == str(tmp_path / "config" / "config.yaml")
    assert results.min_cell == 5


def test_without_any_config_the_message_says_how_to_give_one(tmp_path: Path) -> None:
    (tmp_path / "results" / "pilot").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"config/config\.yaml does not exist.*config="):
        open_results("pilot", root=tmp_path).config  # noqa: B018


@pytest.mark.parametrize("model", ["growth", "dropout"])
def test_refit_without_changes_reproduces_the_workflow_files_byte_for_byte(
    results, model: str, tmp_path: Path
) -> None:
    refit = results.refit(model)
    write_model_result(refit, tmp_path / "coefficients.csv", tmp_path / "diagnostics.json")
    own = results.model_coefficients_path(model)
    assert (tmp_path / "coefficients.csv").read_bytes() == own.read_bytes()
    assert json.loads((tmp_path / "diagnostics.json").read_text()) == json.loads(
        (own.parent / "diagnostics.json").read_text()
    )


def test_refit_with_log_time_gives_a_different_valid_growth_fit(results) -> None:
    configured = results.coefficients("growth").set_index("term")
    refit = results.refit("growth", time_coding="log", label="growth_log_time")
    table = refit.coefficients.set_index("term")
    assert set(table["model"]) == {"growth_log_time"}
    assert set(table.index) == set(configured.index)
    assert table["converged"].all()
    assert np.isfinite(table[["estimate", "std_error"]].to_numpy()).all()
    assert (table["std_error"] > 0).all()
    # Same rows, another time scale: same n, different slopes.
    assert int(table["n_obs"].iloc[0]) == int(configured["n_obs"].iloc[0])
    assert not math.isclose(
        table.loc["time", "estimate"], configured.loc["time", "estimate"], rel_tol=1e-3
    )
    assert refit.diagnostics["extras"]["time_coding"] == "log"
    # Only the configured model is the primary analysis.
    assert configured["primary"].any()
    assert not table["primary"].any()


def test_refit_with_other_covariates_matches_an_independent_logistic_fit(results) -> None:
    refit = results.refit("dropout", covariates=["phq9_first", "gad7_first"])
    table = refit.coefficients.set_index("term")
    assert list(table.index) == ["Intercept", "joint_goal_share", "phq9_first", "gad7_first"]

    # The same model by Newton-Raphson on the logit likelihood, complete cases.
    data = results.client_measures()[["dropout", "joint_goal_share", "phq9_first", "gad7_first"]]
    data = data.dropna().astype(float)
    independent = smf.logit("dropout ~ joint_goal_share + phq9_first + gad7_first", data).fit(
        disp=False, method="newton", tol=1e-12
    )
    assert table["n_obs"].iloc[0] == len(data)
    np.testing.assert_allclose(
        table["estimate"].to_numpy(), independent.params.to_numpy(), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(
        table["std_error"].to_numpy(), independent.bse.to_numpy(), rtol=1e-5, atol=1e-8
    )


def test_refit_options_are_merged_into_the_configured_ones(results) -> None:
    spec = results.changed_spec("mediation_early_attendance_rate", options={"n_boot": 50})
    assert spec.options["mediator"] == "early_attendance_rate"
    assert spec.options["n_boot"] == 50
    assert spec.covariates == ("phq9_first",)


def test_refit_refuses_unknown_settings_and_models(results) -> None:
    with pytest.raises(ConfigError, match="'outcomes' is not a model setting"):
        results.refit("growth", outcomes="gad7")
    with pytest.raises(ConfigError, match="time_coding"):
        results.refit("growth", time_coding="quadratic")
    with pytest.raises(ConfigError, match="no model with id 'growht'"):
        results.refit("growht")


# Workflow jobs run with one BLAS thread (Snakemake sets OMP_NUM_THREADS and the like to the job's
# threads); so does this refit, so that even a fit on the boundary agrees to the last digit.
REFIT_ALL = """
import sys
from pathlib import Path
from accord.models.tidy import write_model_result
from accord.results import open_results

results = open_results(sys.argv[1], root=sys.argv[2], config=sys.argv[3])
for spec in results.model_specs():
    folder = Path(sys.argv[4]) / spec.id
    result = results.refit(spec.id)
    write_model_result(result, folder / "coefficients.csv", folder / "diagnostics.json")
"""


@pytest.mark.slow
def test_refit_reproduces_every_configured_model(
    results, workflow_run: Path, tmp_path: Path
) -> None:
    """Every kind, bootstrapped ones included, refits to the workflow's own files."""
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", REFIT_ALL, STUDY, str(workflow_run), "config.yaml", str(tmp_path)],
        cwd=workflow_run,
        env={**os.environ, **threads},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    differing = [
        spec.id
        for spec in results.model_specs()
        if (tmp_path / spec.id / "coefficients.csv").read_bytes()
        != results.model_coefficients_path(spec.id).read_bytes()
    ]
    assert differing == []


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_each_output_is_written_by_the_rule_its_message_names(name: str) -> None:
    rules = "\n".join(path.read_text() for path in (ROOT / "workflow" / "rules").glob("*.smk"))
    output = OUTPUTS[name]
    block = re.search(rf"^rule {output.rule}:\n(.*?)(?=^rule |\Z)", rules, flags=re.M | re.S)
    assert block is not None, f"no rule {output.rule}"
    assert f'"results/{{study}}/{output.path}"' in block.group(1).split("log:")[0]
