"""Valid studies of many shapes, and the workflow's steps run on them in-process.

Some shapes come from the simulator with a table changed the way a real export differs; some
are written by hand, as a small clinic's CSV export arrives. `run_in_process` runs each step's
own workflow script (workflow/scripts) with the inputs and outputs Snakemake would give it, so
the shapes exercise the same code as `accord run` without a Snakemake run each.
"""

from __future__ import annotations

import copy
import json
import runpy
from pathlib import Path
from typing import Any

import pandas as pd

from accord.config import validate_config
from accord.models.mediation import MIN_BOOT
from accord.models.spec import DEFAULT_MODELS
from accord.simulate import simulate_study, write_study

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


class Files(dict):
    """A rule's named files, read as attributes (snakemake.input.panel) or by key."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def simulated(folder: Path, *, n_clients: int = 40, n_therapists: int = 6, seed: int = 5) -> Path:
    study = simulate_study(
        n_clients=n_clients, n_therapists=n_therapists, n_sites=1, max_sessions=6, seed=seed
    )
    write_study(study, folder)
    (folder / "truth.json").unlink(missing_ok=True)
    return folder


def _edit(folder: Path, table: str, change) -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


def no_therapist_ids(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "clients", lambda f: f.assign(therapist_id=""))
    return folder


def three_therapists(folder: Path) -> Path:
    return simulated(folder, n_therapists=3)


def no_goals_table(folder: Path) -> Path:
    simulated(folder)
    (folder / "goals.csv").unlink()
    _edit(folder, "measures", lambda f: f[f["instrument"] != "gas"])
    return folder


def no_gad7(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "measures", lambda f: f[f["instrument"] != "gad7"])
    return folder


def no_arm(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "clients", lambda f: f.drop(columns=["arm"]))
    return folder


def one_arm(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "clients", lambda f: f.assign(arm="collaborative"))
    return folder


def nobody_drops_out(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "clients", lambda f: f.assign(end_reason="completed"))
    return folder


def ten_clients(folder: Path) -> Path:
    """Written by hand: ten clients of two therapists, PHQ-9 totals at intake, sessions 1-3."""
    folder.mkdir(parents=True, exist_ok=True)
    clients = ["client_id,therapist_id,arm,end_reason"]
    sessions = ["client_id,session_number,status,day"]
    measures = ["client_id,session_number,instrument,rater,item,value"]
    goals = ["client_id,goal_id,set_session,set_by"]
    for i in range(10):
        client = f"K{i:02d}"
        clients.append(f"{client},T{i % 2},{'ab'[i % 2]},{'dropout' if i % 4 == 0 else ''}")
        for session in (1, 2, 3):
            status = "no_show" if (i + session) % 5 == 0 else "attended"
            sessions.append(f"{client},{session},{status},{7 * (session - 1)}")
        for session in (0, 2, 3):
            measures.append(f"{client},{session},phq9,client,total,{max(0, 18 - 2 * session - i)}")
        goals.append(f"{client},G1,1,{'joint' if i % 3 else 'client'}")
    for table, rows in (
        ("clients", clients),
        ("sessions", sessions),
        ("measures", measures),
        ("goals", goals),
    ):
        (folder / f"{table}.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    return folder


END = {True: "dropout", False: "completed"}


def two_waves(folder: Path) -> Path:
    """Written by hand: intake and one later wave only (a pre-post trial), no sessions between.

    Twelve clients per arm, PHQ-9 and GAD-7 item scores at intake (0) and at session 8.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clients = ["client_id,therapist_id,arm,end_reason"]
    sessions = ["client_id,session_number,status,day"]
    measures = ["client_id,session_number,instrument,rater,item,value,phase"]
    goals = ["client_id,goal_id,set_session,set_by"]
    for i in range(24):
        client = f"P{i:03d}"
        clients.append(f'{client},T{i % 6},"{["waitlist", "therapy"][i % 2]}",{END[i % 5 == 0]}')
        sessions.append(f"{client},8,attended,56")
        for session, phase in ((0, "intake"), (8, "treatment")):
            drop = (i % 4 + 1) if session else 0
            for item in range(1, 10):
                value = min(3, max(0, (i + item) % 4 - (drop if item <= 4 else 0)))
                measures.append(f"{client},{session},phq9,client,{item},{value},{phase}")
            for item in range(1, 8):
                value = min(3, max(0, (i + item + 1) % 4 - (drop if item <= 3 else 0)))
                measures.append(f"{client},{session},gad7,client,{item},{value},{phase}")
        goals.append(f"{client},G1,0,{'joint' if i % 3 else 'therapist'}")
    for table, rows in (
        ("clients", clients),
        ("sessions", sessions),
        ("measures", measures),
        ("goals", goals),
    ):
        (folder / f"{table}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def everyone_drops_out_after_session_1(folder: Path) -> Path:
    simulated(folder)
    _edit(folder, "clients", lambda f: f.assign(end_reason="dropout"))
    _edit(folder, "sessions", lambda f: f[f["session_number"].astype(int) <= 1])
    _edit(folder, "measures", lambda f: f[f["session_number"].astype(int) <= 1])
    _edit(
        folder, "goals", lambda f: f[f["set_session"].astype(int) <= 1].assign(revised_session="")
    )
    return folder


SHAPES = {
    "no_therapist_ids": no_therapist_ids,
    "three_therapists": three_therapists,
    "no_goals_table": no_goals_table,
    "no_gad7": no_gad7,
    "no_arm": no_arm,
    "one_arm": one_arm,
    "two_waves": two_waves,
    "ten_clients": ten_clients,
    "nobody_drops_out": nobody_drops_out,
    "everyone_drops_out_after_session_1": everyone_drops_out_after_session_1,
}


def _step(script: str, config: dict, inputs: dict, outputs: dict, log: Path, **params) -> None:
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    snakemake = Files(
        input=Files(inputs),
        output=Files(outputs),
        params=Files(params),
        config=config,
        log=[str(log)],
    )
    runpy.run_path(str(SCRIPTS / script), init_globals={"snakemake": snakemake})


def quick_default_models() -> list[dict]:
    """The default plan with its bootstraps at their smallest (the models and options are
    the defaults'; only the number of replicates is cut, to keep the tests fast)."""
    models = copy.deepcopy(DEFAULT_MODELS)
    for entry in models:
        if "n_boot" in entry.get("options", {}):
            entry["options"]["n_boot"] = MIN_BOOT if entry["kind"] == "mediation" else 10
    return models


def run_in_process(workdir: Path, study: str, folder: Path, extra: dict | None = None) -> Path:
    """validate -> scores -> measures -> plan -> models -> report, each by its workflow script,
    with the default plan (quick bootstraps) unless `extra` says otherwise; returns the
    report's path."""
    raw = {"studies": {study: {"path": str(folder)}}, "models": quick_default_models()}
    config = validate_config(raw | (extra or {}))
    res = workdir / "results" / study
    logs = workdir / "logs"
    validated = {t: str(res / "validated" / f"{t}.parquet") for t in TABLE_NAMES}
    _step(
        "validate_study.py",
        config,
        {},
        {
            **validated,
            "quarantine": str(res / "validation" / "quarantine.csv"),
            "summary": str(res / "validation" / "summary.json"),
        },
        logs / "validate.log",
        study=study,
        settings=config["studies"][study],
        partitions=1,
    )
    scored = {
        "scores": str(res / "scores.parquet"),
        "reliability": str(res / "reliability.csv"),
        "disagreements": str(res / "validation" / "total_disagreements.csv"),
    }
    _step("score_measures.py", config, validated, scored, logs / "score.log", partitions=1)
    built = {
        "client_measures": str(res / "client_measures.parquet"),
        "session_panel": str(res / "session_panel.parquet"),
        "metadata": str(res / "measures_metadata.json"),
    }
    _step(
        "build_measures.py",
        config,
        {**validated, "scores": scored["scores"]},
        built,
        logs / "build.log",
    )
    measures = {k: built[k] for k in ("client_measures", "session_panel")}
    plan = str(res / "models" / "plan.json")
    _step("plan_models.py", config, measures, {"plan": plan}, logs / "plan.log")
    fitted = [
        entry["id"]
        for entry in json.loads(Path(plan).read_text())["models"]
        if entry["status"] != "not_applicable"
    ]
    model_files = {"coefficients": [], "diagnostics": []}
    for model in fitted:
        outputs = {
            "coefficients": str(res / "models" / model / "coefficients.csv"),
            "diagnostics": str(res / "models" / model / "diagnostics.json"),
        }
        _step(
            "fit_model.py",
            config,
            {**measures, **validated, "plan": plan, "replicates": []},
            outputs,
            logs / f"fit_{model}.log",
            model=model,
        )
        for key, path in outputs.items():
            model_files[key].append(path)
    gathered = {
        "coefficients": str(res / "models" / "coefficients.csv"),
        "diagnostics": str(res / "models" / "diagnostics.json"),
    }
    _step("gather_models.py", config, {**model_files, "plan": plan}, gathered, logs / "g.log")
    missing = {
        "by_session": str(res / "models" / "missing_by_session.csv"),
        "vs_exposure": str(res / "models" / "missingness_vs_exposure.csv"),
    }
    _step("describe_missingness.py", config, measures, missing, logs / "missing.log")
    report = workdir / "reports" / study
    _step(
        "render_report.py",
        config,
        {"summary": str(res / "validation" / "summary.json")},
        {
            "html": str(report / "report.html"),
            "tables": str(report / "tables"),
            "figures": str(report / "figures"),
            "tidy": str(report / "tidy"),
            "docx": str(report / "report.docx"),
        },
        logs / "report.log",
        study=study,
    )
    return report / "report.html"


TABLE_NAMES = ("clients", "sessions", "measures", "goals")


def new_user_study(folder: Path) -> Path:
    """A small clinic's first study: 40 clients, 3 therapists, no arm, no GAD-7."""
    simulated(folder, n_therapists=3)
    _edit(folder, "clients", lambda f: f.drop(columns=["arm"]))
    _edit(folder, "measures", lambda f: f[f["instrument"] != "gad7"])
    return folder
