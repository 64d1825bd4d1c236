"""Every valid study shape reaches its report through the default plan.

Each shape runs the workflow's own step scripts in-process (tests/study_shapes.py); the
README's commands run one shape through the real `accord run`. A model that does not apply to
a shape, or that its data cannot estimate, is listed with its reason in the diagnostics, the
Models section and the Summary.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from study_shapes import SHAPES, new_user_study, run_in_process
from test_notebooks import NOTEBOOKS, run_notebook

from accord.core.errors import NotEstimableError
from accord.models import plan as plan_module
from accord.models.plan import (
    NOT_APPLICABLE,
    NOT_ESTIMABLE,
    PlanEntry,
    fit_planned,
    plan_models,
    plan_yaml,
)
from accord.models.spec import DEFAULT_MODELS, ModelContext, ModelSpec, model_specs
from accord.report.labels import label

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"fitted", NOT_ESTIMABLE, NOT_APPLICABLE}

NO_GAS = "no GAS ratings of the goals in this study"
# Per shape: the models that must not be fitted, with their status and (part of) the reason.
EXPECTED = {
    "no_therapist_ids": {
        "therapist": (NOT_APPLICABLE, "the study has no therapist IDs"),
    },
    "three_therapists": {
        "therapist": (NOT_ESTIMABLE, "3 therapist(s) with phq9 scores; at least 5 needed"),
    },
    "no_goals_table": {
        "growth": (NOT_APPLICABLE, "'joint_goal_share' has no values in this study: it is built"),
        "growth_lrt_interaction": (NOT_APPLICABLE, "the model it tests, 'growth', does not"),
        "ancova": (NOT_APPLICABLE, "'joint_goal_share' has no values"),
        "goal_importance_congruence": (NOT_APPLICABLE, "the study has no goals table"),
        "goal_attainment_gas": (NOT_APPLICABLE, "the study has no goals table"),
        "goal_attainment_achieved": (NOT_APPLICABLE, "the study has no goals table"),
        "not_on_track": (NOT_APPLICABLE, "'joint_goal_share' has no values"),
    },
    "no_gad7": {"growth_gad7": (NOT_APPLICABLE, "the outcome 'gad7' has no values")},
    "no_arm": {
        "dropout_cif": (NOT_APPLICABLE, "the grouping 'arm' has no values"),
        "clinical_change": (NOT_APPLICABLE, "the clients table has no arm"),
    },
    "one_arm": {},
    "two_waves": {
        "lagged": (NOT_APPLICABLE, "the exposure 'alliance' has no values"),
        "mediation_early_homework_rate": (
            NOT_APPLICABLE,
            "the mediator 'early_homework_rate' has no",
        ),
        "congruence_goal_phq9": (NOT_APPLICABLE, "no client ratings of wai_sr_goal"),
        "congruence_total": (NOT_APPLICABLE, "no client ratings of wai_sr in this study"),
        "goal_importance_congruence": (NOT_APPLICABLE, NO_GAS),
        "goal_attainment_gas": (NOT_APPLICABLE, NO_GAS),
        "goal_attainment_achieved": (NOT_ESTIMABLE, "no goal in the goals table has a status"),
    },
    "ten_clients": {
        "therapist": (NOT_ESTIMABLE, "2 therapist(s) with phq9 scores"),
        "dropout_cif": (NOT_ESTIMABLE, "no arm has at least 11 clients"),
        "growth_gad7": (NOT_APPLICABLE, "the outcome 'gad7' has no values"),
        "congruence_goal_phq9": (NOT_APPLICABLE, "no client ratings of wai_sr_goal"),
        "goal_attainment_gas": (NOT_APPLICABLE, NO_GAS),
        "goal_attainment_achieved": (NOT_ESTIMABLE, "no goal in the goals table has a status"),
    },
    "nobody_drops_out": {
        "dropout": (NOT_ESTIMABLE, "dropout does not vary (every client has False)"),
        "dropout_cox": (NOT_ESTIMABLE, "no events: dropout_event is false for every client"),
        "dropout_cif": (NOT_ESTIMABLE, "no events"),
    },
    "everyone_drops_out_after_session_1": {
        "dropout": (NOT_ESTIMABLE, "dropout does not vary (every client has True)"),
        "lagged": (NOT_ESTIMABLE, "0 client(s) with a pair of sessions with phq9 and alliance"),
        "sensitivity_dropout_min_sessions": (NOT_ESTIMABLE, "does not vary"),
        "congruence_goal_phq9": (NOT_APPLICABLE, "no therapist ratings of wai_sr_goal"),
        "goal_attainment_gas": (NOT_APPLICABLE, NO_GAS),
    },
}


def _text(report: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", report.read_text(encoding="utf-8")))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_reaches_its_report(shape: str, tmp_path: Path) -> None:
    folder = SHAPES[shape](tmp_path / "data" / shape)
    report = run_in_process(tmp_path, shape, folder)
    assert report.exists()
    diagnostics = json.loads(
        (tmp_path / "results" / shape / "models" / "diagnostics.json").read_text()
    )
    # Every model of the default plan is accounted for, with a status.
    assert set(diagnostics) == {entry["id"] for entry in DEFAULT_MODELS}
    assert {d["status"] for d in diagnostics.values()} <= STATUSES
    not_fitted = {m: d for m, d in diagnostics.items() if d["status"] != "fitted"}
    for model, (status, reason) in EXPECTED[shape].items():
        assert not_fitted[model]["status"] == status, (model, not_fitted[model])
        assert reason in not_fitted[model]["reason"], (model, not_fitted[model]["reason"])
    if shape == "one_arm":
        assert not not_fitted
    text = _text(report)
    plan_table = text[text.index("The analysis plan: every configured model") :]
    for model, record in not_fitted.items():
        assert f"{label(model)} " in plan_table and record["reason"] in plan_table, model
    if not_fitted:
        assert f"Of the {len(DEFAULT_MODELS)} models of the analysis plan" in text
    arms = pd.read_parquet(tmp_path / "results" / shape / "client_measures.parquet")
    if "arm" not in arms or arms["arm"].isna().all():
        # Captions follow the data: no arms, no "by arm".
        assert "by arm" not in text and "and arm" not in text and "in an arm" not in text
    coefficients = pd.read_csv(tmp_path / "results" / shape / "models" / "coefficients.csv")
    assert set(coefficients["model"]) <= set(diagnostics) - set(not_fitted)
    assert set(coefficients["status"]) <= {"fitted"}


def test_a_real_error_still_stops_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(id="growth", kind="growth", outcome="phq9", exposure="joint_goal_share")
    panel = pd.DataFrame({"session_number": [0, 1], "phq9": [10.0, 8.0], "therapist_id": "T"})
    clients = pd.DataFrame({"joint_goal_share": [0.2, 0.8]})

    def broken(*args, **kwargs):
        raise KeyError("arm")

    def inestimable(*args, **kwargs):
        raise NotEstimableError("growth model: 2 client(s) with phq9; at least 3 needed")

    monkeypatch.setattr(plan_module, "fit_model", broken)
    with pytest.raises(KeyError):
        fit_planned(spec, panel, clients, ModelContext())
    monkeypatch.setattr(plan_module, "fit_model", inestimable)
    result = fit_planned(spec, panel, clients, ModelContext())
    assert result.diagnostics["status"] == NOT_ESTIMABLE
    assert result.diagnostics["reason"] == "growth model: 2 client(s) with phq9; at least 3 needed"
    assert result.coefficients.empty


def test_arm_as_the_primary_exposure_describes_missingness() -> None:
    # The panel carries arm as well as the client measures: this was a KeyError 'arm'.
    from accord.models.missingness import missingness_vs_exposure

    panel = pd.DataFrame(
        {
            "client_id": ["A", "A", "B", "B", "C", "C", "D", "D"],
            "session_number": [1, 2] * 4,
            "attended": True,
            "arm": ["x", "x", "y", "y", "x", "x", "y", "y"],
            "phq9": [3.0, None, 4.0, 5.0, None, 2.0, 6.0, None],
        }
    )
    clients = panel.drop_duplicates("client_id")[["client_id", "arm"]]
    table = missingness_vs_exposure(panel, clients, ["phq9"], "arm")
    row = table.iloc[0]
    assert row["exposure"] == "arm[T.y]"
    assert row["n_sessions"] == 8 and row["missing_share"] == pytest.approx(3 / 8)
    # Arm x: 2 of 4 sessions missing (odds 1); arm y: 1 of 4 (odds 1/3): log odds ratio ln(1/3).
    assert row["log_odds"] == pytest.approx(-1.0986123, abs=1e-6)


def test_the_plan_as_yaml_is_the_config_entries_with_their_status() -> None:
    plan = [
        PlanEntry("growth", "growth", "planned"),
        PlanEntry("growth_gad7", "growth", NOT_APPLICABLE, "the outcome 'gad7' has no values"),
    ]
    text = plan_yaml(DEFAULT_MODELS[:2], plan, "The plan for study 'x'.")
    assert yaml.safe_load(text) == {"models": DEFAULT_MODELS[:2]}
    assert "  # growth: planned\n" in text
    assert "  # growth_gad7: not applicable: the outcome 'gad7' has no values\n" in text
    assert text.startswith("# The plan for study 'x'.\n")


def test_plan_leaves_out_what_a_study_lacks() -> None:
    from conftest import simulated_measures

    panel, clients, _ = simulated_measures(n_clients=40, n_therapists=3, n_sites=1, seed=4)
    panel = panel.assign(gad7=float("nan")).drop(columns=["arm"])
    clients = clients.drop(columns=["arm"])
    config = {"models": DEFAULT_MODELS}
    plan = {e.id: e for e in plan_models(model_specs(config), panel, clients, ModelContext())}
    assert plan["growth_gad7"].status == NOT_APPLICABLE
    assert plan["dropout_cif"].status == NOT_APPLICABLE
    assert plan["therapist"].status == NOT_ESTIMABLE
    assert plan["growth"].status == "planned"


def test_plan_of_the_goal_models_follows_what_the_study_has() -> None:
    from conftest import simulated_measures

    panel, clients, _ = simulated_measures(n_clients=40, n_therapists=3, n_sites=1, seed=4)
    goal_kinds = ("congruence", "goal_congruence", "goal_attainment", "not_on_track")
    config = {"models": [e for e in DEFAULT_MODELS if e["kind"] in goal_kinds]}
    specs = model_specs(config)

    def plan(panel: pd.DataFrame, clients: pd.DataFrame) -> dict[str, PlanEntry]:
        return {e.id: e for e in plan_models(specs, panel, clients, ModelContext())}

    assert {e.status for e in plan(panel, clients).values()} == {"planned"}
    # Therapist ratings of the Goal subscale for 9 clients only: applies, not estimable.
    rated = panel["client_id"].isin(sorted(panel["client_id"].unique())[:9])
    few = panel.assign(wai_sr_goal_therapist=panel["wai_sr_goal_therapist"].where(rated))
    entry = plan(few, clients)["congruence_goal_phq9"]
    assert entry.status == NOT_ESTIMABLE and "fewer than 10 clients" in entry.reason
    assert plan(few, clients)["congruence_total"].status == "planned"
    # No importance ratings: the goal-level surface does not apply; attainment still does.
    unrated = plan(panel, clients.assign(goal_agreement=float("nan")))
    assert unrated["goal_importance_congruence"].status == NOT_APPLICABLE
    assert (
        "client_importance and therapist_importance" in unrated["goal_importance_congruence"].reason
    )
    assert unrated["goal_attainment_gas"].status == "planned"
    # An outcome without severity bands: no expected-recovery curve.
    spec = ModelSpec(id="n", kind="not_on_track", outcome="srs", exposure="joint_goal_share")
    (entry,) = plan_models([spec], panel, clients, ModelContext())
    assert entry.status == NOT_APPLICABLE and "srs has no severity bands" in entry.reason


def test_accord_plan_prints_the_plan_for_a_study(tmp_path: Path, capsys, monkeypatch) -> None:
    from accord.cli import main

    new_user_study(tmp_path / "data" / "clinic")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"studies": {"clinic": {"path": "data/clinic"}}})
    )
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "clinic", "--config", "config.yaml", "--out", "plan.yaml"]) == 0
    text = (tmp_path / "plan.yaml").read_text()
    assert "  # growth: planned\n" in text
    assert "  # growth_gad7: not applicable: the outcome 'gad7' has no values" in text
    assert "  # therapist: not estimable: 3 therapist(s) with phq9 scores" in text
    assert yaml.safe_load(text)["models"] == DEFAULT_MODELS


def _readme_commands() -> list[list[str]]:
    """The `accord` commands of the README's "Check it, then run it" block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("Check it, then run it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(".venv/bin/accord "):
            commands.append(line.removeprefix(".venv/bin/accord ").split())
    return commands


def test_the_readme_commands_run_a_new_users_study_to_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new user's REDCap longitudinal export (40 clients, 3 therapists, no arm, no GAD-7) with
    its mapping: from the README's commands to a report, run in a folder that is not the
    checkout (so `accord run` finds the workflow itself); then every notebook runs on its
    results."""
    source = ROOT / "tests" / "data" / "byod" / "redcap_longitudinal"
    shutil.copytree(source, tmp_path / "data" / "raw" / "mystudy")
    shipped = yaml.safe_load((source / "config.yaml").read_text(encoding="utf-8"))
    study = {**shipped["studies"]["redcap_longitudinal"], "path": "data/raw/mystudy"}
    config = {"studies": {"mystudy": study}, "analysis": shipped["analysis"]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(config))
    commands = _readme_commands()
    assert [c[0] for c in commands] == ["validate", "plan", "run", "run", "run", "run", "run"]
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "accord.cli", *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (command, done.stderr[-3000:])
        if command[0] == "plan":
            assert "# therapist: not estimable: 3 therapist(s)" in done.stdout
    text = _text(tmp_path / "reports" / "mystudy" / "report.html")
    assert "3 therapist(s) with phq9 scores; at least 5 needed" in text
    assert "the outcome 'gad7' has no values in this study" in text
    assert "the grouping 'arm' has no values in this study" in text
    plan = json.loads((tmp_path / "results" / "mystudy" / "models" / "plan.json").read_text())
    assert not (tmp_path / "results" / "mystudy" / "models" / "growth_gad7").exists()
    assert {e["id"] for e in plan["models"] if e["status"] == NOT_APPLICABLE} == {
        "growth_gad7",
        "dropout_cif",
        "clinical_change",
        # The project has no therapist ratings of the WAI-SR.
        "congruence_goal_phq9",
        "congruence_total",
    }
    for path in NOTEBOOKS:
        notebook = run_notebook(path, tmp_path, monkeypatch, study="mystudy")
        errors = [
            output["ename"]
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if output.get("output_type") == "error"
        ]
        assert errors == [], path.name


def test_accord_run_puts_targets_before_the_config_file() -> None:
    from accord.cli import _parser, snakemake_command

    args = _parser().parse_args(["run", "s", "--config", "my.yaml", "--rerun-incomplete"])
    command = snakemake_command(args, Path("Snakefile"), args.config)
    assert command[3] == "reports/s/report.html"
    assert "--configfile=my.yaml" in command and "--configfile" not in command
    assert command[-1] == "--rerun-incomplete"


def test_an_unexpected_error_stops_its_step_with_one_line(tmp_path: Path, capsys) -> None:
    from accord.core.logs import run_step

    log = tmp_path / "logs" / "s" / "fit_model" / "growth.log"
    with pytest.raises(SystemExit) as stopped, run_step(log):
        {}["arm"]  # a bug
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "fit_model/growth failed: KeyError: 'arm'" in err and "Traceback" not in err
    assert "Traceback" in log.read_text()
