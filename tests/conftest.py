"""Shared fixtures: a tiny valid study written as CSV, and the opt-in switch for slow checks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run the slow, opt-in checks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow check: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Attack every study report the suite rendered as a reader would (subtraction,
    percentage and numbers-at-risk attacks, tests/disclosure_attacks.py); a withheld count
    worked back from any of them fails the run."""
    from disclosure_attacks import every_attack, reports_under

    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller attacks every worker's reports at the end
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is None:  # no test asked for a temporary folder, so none rendered a report
        return
    recovered = [
        f"{folder}: {leak}"
        for folder, min_cell in reports_under(Path(basetemp))
        for leak in every_attack(folder, min_cell)
    ]
    if recovered:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("withheld counts worked back from rendered reports:", red=True)
            for line in recovered:
                reporter.write_line(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def phq9_rows(client: str, session: int, values: list[int]) -> list[str]:
    return [f"{client},{session},phq9,client,{i},{v}," for i, v in enumerate(values, start=1)]


CLIENTS = """client_id,therapist_id,site_id,arm,intake_year,age,age_band,gender,end_reason
C1A,T1,S1,collaborative,2024,34,25-44,female,completed
C2B,T1,S1,usual_care,2024,51,45-64,male,dropout
C3C,T2,S1,collaborative,2025,,18-24,female,ongoing
"""

SESSIONS = """client_id,session_number,status,day,duration_min,modality,homework_assigned,homework_completion,goal_review
C1A,1,attended,0,50,in_person,true,1,true
C1A,2,attended,7,50,video,true,0.5,false
C2B,1,attended,0,45,in_person,false,,true
C2B,2,no_show,7,,,,,
C3C,1,attended,0,50,phone,,,
"""

GOALS = """client_id,goal_id,set_session,set_by,client_importance,therapist_importance,smart_specific,smart_measurable,smart_achievable,smart_relevant,smart_time_bound,status,revised_session
C1A,G1,0,joint,5,4,true,true,true,true,false,active,
C2B,G1,1,therapist,3,3,false,true,true,true,true,revised,2
"""


def measures_text() -> str:
    rows = ["client_id,session_number,instrument,rater,item,value,phase"]
    rows += phq9_rows("C1A", 0, [2, 2, 2, 2, 2, 2, 2, 2, 2])
    rows += phq9_rows("C1A", 2, [1, 1, 1, 1, 1, 1, 1, 1, 0])
    rows += phq9_rows("C2B", 0, [3, 3, 3, 3, 3, 3, 3, 3, 3])
    rows += phq9_rows("C3C", 1, [0, 1, 0, 1, 0, 1, 0, 1, 0])
    rows.append("C1A,1,gas,client,G1,1,")
    return "\n".join(rows) + "\n"


def write_study(folder: Path, **overrides: str | None) -> Path:
    """Write the tiny valid study into `folder`; `table=text` replaces a table, None drops it."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "clients": CLIENTS,
        "sessions": SESSIONS,
        "measures": measures_text(),
        "goals": GOALS,
    }
    tables.update(overrides)
    for table, text in tables.items():
        if text is not None:
            (folder / f"{table}.csv").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return write_study(tmp_path / "study")


def simulated_measures(**simulate_args):
    """Session panel, client measures and truth of a simulated study, scored and measured."""
    from accord.core.instruments import load_registry
    from accord.measures.build import build_measures
    from accord.measures.scoring import score_measures
    from accord.simulate import simulate_study

    study = simulate_study(**simulate_args)
    registry = load_registry()
    scores, _ = score_measures(study.measures, registry)
    built = build_measures(study.clients, study.sessions, study.goals, scores, registry)
    return built.session_panel, built.client_measures, study.truth


# One real Snakemake run of a small simulated study, shared by every test that reads its outputs.
SMALL_STUDY_CONFIG = {
    "studies": {
        "small": {
            "path": "data/small",
            "simulate": {"n_clients": 150, "n_therapists": 10, "n_sites": 2, "seed": 11},
        }
    },
    "privacy": {"min_cell": 11},
    # Two chunk jobs per bootstrap, so the scatter and gather run although the study is small.
    "analysis": {"bootstrap_chunks": 2},
}

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
OUTPUTS = [
    "validated/clients.parquet",
    "validated/sessions.parquet",
    "validated/measures.parquet",
    "validated/goals.parquet",
    "validation/quarantine.csv",
    "validation/summary.json",
    "scores.parquet",
    "reliability.csv",
    "client_measures.parquet",
    "session_panel.parquet",
    "models/coefficients.csv",
]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=workdir,
    )


def digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow run on SMALL_STUDY_CONFIG; its folder holds results/small and reports/small."""
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(SMALL_STUDY_CONFIG))
    # Through `accord run`, from a folder that is not the checkout, as a user runs it.
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "run", "--config", "config.yaml", "--cores", "2"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir
