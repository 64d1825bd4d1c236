# Configuration, its validation, and the input functions every stage shares.
import json
import re
from pathlib import Path

from snakemake.utils import validate

from accord.config import validate_config
from accord.core.contract import TABLES
from accord.core.job_memory import job_memory_mb, memory_budget_mb
from accord.core.partitions import study_clients, study_partitions
from accord.ingest import source_files
from accord.core.instruments import load_registry
from accord.core.io import TABLE_SUFFIXES
from accord.core.stages import table_rows
from accord.models.bootstrap import needs_client_count, scattered_chunks, study_bootstrap_chunks
from accord.models.plan import fitted_ids
from accord.models.spec import KIND_TABLES, model_context, model_specs
from accord.multisite.consortium import consortia
from accord.multisite.one_stage import one_stage_specs

# accord's own check first: its messages name the offending key.
config.update(validate_config(config))
validate(config, schema="../schemas/config.schema.yaml")
# Custom instruments are checked now, so a bad definition stops the run before any job.
load_registry(config["instruments"])

STUDIES = sorted(config["studies"])
# Jobs each model's bootstrap is drawn in, per study (analysis.bootstrap_chunks).
BOOTSTRAP_CHUNKS = {study: study_bootstrap_chunks(config, study) for study in STUDIES}
# Partitions of clients each study is validated in (performance.partitions).
PARTITIONS = {study: study_partitions(config, study) for study in STUDIES}
# Clients of each study before validation, for the memory its jobs declare (mem_mb), and the
# memory the jobs running at once share with `accord run` (performance.memory_mb).
CLIENTS = {study: study_clients(config, study) for study in STUDIES}
MEMORY_BUDGET_MB = memory_budget_mb(config)
MODELS = {spec.id: spec for spec in model_specs(config)}
# Study-wide model settings (seed, the mediation bootstrap's size limit).
CONTEXT = model_context(config)
SIMULATED = {
    study: entry for study, entry in config["studies"].items() if "simulate" in entry
}
SIMULATED_DIRS = sorted({entry["path"].rstrip("/") for entry in SIMULATED.values()})


wildcard_constraints:
    study="|".join(re.escape(study) for study in STUDIES),
    model="|".join(MODELS),
    part=r"\d+",


def job_memory(rule):
    """The mem_mb of a job of `rule` (accord.core.job_memory), at most the shared budget."""

    def mem_mb(wildcards):
        kind = MODELS[wildcards.model].kind if rule == "fit_model" else None
        study = wildcards.study
        needed = job_memory_mb(rule, CLIENTS[study], PARTITIONS[study], kind=kind)
        return min(needed, MEMORY_BUDGET_MB)

    return mem_mb


def study_path(study):
    return config["studies"][study]["path"].rstrip("/")


def study_tables(wildcards):
    """The input files of a study: the simulator's outputs, or whatever the folder holds.

    A missing required table is not an input error here: validation reports it by name.
    """
    folder = study_path(wildcards.study)
    if wildcards.study in SIMULATED:
        return {table: f"{folder}/{table}.csv" for table in TABLES}
    entry = config["studies"][wildcards.study]
    if entry.get("format", "contract") != "contract":
        # A mapped study's inputs are the files its mapping reads: a new export reruns it.
        sources = [path for path in source_files(folder, entry) if path.exists()]
        return {f"source_{i}": str(path) for i, path in enumerate(sources, start=1)}
    found = {}
    for table in TABLES:
        for suffix in TABLE_SUFFIXES:
            path = Path(folder) / f"{table}{suffix}"
            if path.exists():
                found[table] = str(path)
    return found


def validation_inputs(wildcards):
    """The study's input files; for a study in partitions, the validated partitions."""
    partitions = PARTITIONS[wildcards.study]
    if partitions == 1:
        return study_tables(wildcards)
    folder = f"results/{wildcards.study}/partitions"
    return {"parts": [f"{folder}/validated_{part}" for part in range(partitions)]}


def scoring_inputs(wildcards):
    """The validated measures and goals; for a study in partitions, the scored partitions and
    the validation summary (a study whose gathered validation stops is not scored)."""
    partitions = PARTITIONS[wildcards.study]
    folder = f"results/{wildcards.study}"
    if partitions == 1:
        return {
            "measures": f"{folder}/validated/measures.parquet",
            "goals": f"{folder}/validated/goals.parquet",
        }
    return {
        "parts": [f"{folder}/partitions/scored_{part}" for part in range(partitions)],
        "validation": f"{folder}/validation/summary.json",
    }


def measures_inputs(wildcards):
    """The validated tables and scores; for a study in partitions, each partition's measures
    and statistics."""
    folder = f"results/{wildcards.study}"
    if PARTITIONS[wildcards.study] == 1:
        names = ("clients", "sessions", "goals")
        tables = {name: f"{folder}/validated/{name}.parquet" for name in names}
        return {**tables, "scores": f"{folder}/scores.parquet"}
    parts = range(PARTITIONS[wildcards.study])
    return {
        "parts": [f"{folder}/partitions/measures_{part}" for part in parts],
        "statistics": measures_statistics(wildcards),
        # not read: new scores rebuild the measures although the partitions' files are gone
        "scores": f"{folder}/scores.parquet",
    }


def measures_statistics(wildcards):
    """Every partition's measure statistics: the study's scalars are their sum."""
    folder = f"results/{wildcards.study}/partitions"
    return [
        f"{folder}/measures_statistics_{part}.json" for part in range(PARTITIONS[wildcards.study])
    ]


def study_settings(wildcards):
    """A study's config entry: a change to its mapping or missing codes reruns validation."""
    return config["studies"][wildcards.study]


def partition_count(wildcards):
    """How many partitions of clients the study is validated, scored and measured in
    (`performance.partitions`)."""
    return PARTITIONS[wildcards.study]


def simulation_settings(wildcards):
    matches = [e for e in SIMULATED.values() if e["path"].rstrip("/") == wildcards.simdir]
    return matches[0]["simulate"]


def model_settings(wildcards):
    """A model's config entry: a change to it reruns that model's job and no other (for a
    mediation model with method auto, also a change to the study size its method switches
    at)."""
    spec = MODELS[wildcards.model]
    settings = spec_settings(spec)
    if needs_client_count(spec):
        settings["bootstrap_max_clients"] = CONTEXT.mediation_bootstrap_max_clients
    return settings


def spec_settings(spec):
    return {
        "kind": spec.kind,
        "outcome": spec.outcome,
        "exposure": spec.exposure,
        "covariates": list(spec.covariates),
        "time_coding": spec.time_coding,
        "therapist_effect": spec.therapist_effect,
        "primary": spec.primary,
        "role": spec.model_role,
        "options": dict(spec.options),
    }


def plan_settings(wildcards):
    """Every model's entry and the smallest cell: a change to either replans the study."""
    return {
        "models": {model: spec_settings(spec) for model, spec in MODELS.items()},
        "min_cell": config.get("privacy", {}).get("min_cell"),
    }


def planned_model_results(wildcards):
    """The plan and the results of every model that applies to the study (plan_models)."""
    plan = checkpoints.plan_models.get(study=wildcards.study).output.plan
    with open(plan, encoding="utf-8") as handle:
        models = sorted(fitted_ids(json.load(handle)["models"]))
    folder = f"results/{wildcards.study}/models"
    return {
        "plan": plan,
        "coefficients": [f"{folder}/{model}/coefficients.csv" for model in models],
        "diagnostics": [f"{folder}/{model}/diagnostics.json" for model in models],
    }


def bootstrap_chunks(wildcards):
    return BOOTSTRAP_CHUNKS[wildcards.study]


def model_tables(wildcards):
    """The validated tables a model's kind reads besides the panel and client measures."""
    names = KIND_TABLES.get(MODELS[wildcards.model].kind, ())
    return {name: f"results/{wildcards.study}/validated/{name}.parquet" for name in names}


def bootstrap_replicates(wildcards):
    """The replicate tables of a model's bootstrap jobs; none for a model without a bootstrap,
    whose bootstrap is one chunk, drawn in the model's own job, or a mediation fitted
    quasi-Bayesian: with method auto that depends on the study's clients, counted in its
    client measures once plan_models has run (the count the model's job decides on)."""
    spec = MODELS[wildcards.model]
    chunks = scattered_chunks(spec, BOOTSTRAP_CHUNKS[wildcards.study])
    if chunks and needs_client_count(spec):
        checkpoints.plan_models.get(study=wildcards.study)
        chunks = scattered_chunks(
            spec,
            BOOTSTRAP_CHUNKS[wildcards.study],
            n_clients=table_rows(f"results/{wildcards.study}/client_measures.parquet"),
            max_clients=CONTEXT.mediation_bootstrap_max_clients,
        )
    return [
        f"results/{wildcards.study}/models/{wildcards.model}/bootstrap/chunk_{chunk}.parquet"
        for chunk in range(len(chunks))
    ]


# Multi-site studies (workflow/rules/multisite.smk): consortia and their input functions.
CONSORTIA = consortia(config)


wildcard_constraints:
    consortium="|".join(re.escape(name) for name in CONSORTIA) or "(?!)",


def consortium_site_results(wildcards):
    """Each site's coefficients and diagnostics: a local study's are built by the workflow;
    a shared file that is missing is left to pool_sites, whose message names the site."""
    files = {}
    for site in CONSORTIA[wildcards.consortium].sites:
        for kind, path in (("coefficients", site.coefficients), ("diagnostics", site.diagnostics)):
            if site.study is not None or Path(path).exists():
                files[f"{kind}_{site.name}"] = str(path)
    return files


def consortium_settings(wildcards):
    """A consortium's config entry: a change to it reruns the pooling."""
    return config["consortia"][wildcards.consortium]


def consortium_site_rows(wildcards):
    """The session panel and client measures of each local site, for the one-stage model."""
    files = {}
    for site in CONSORTIA[wildcards.consortium].local_sites:
        files[f"panel_{site.name}"] = f"results/{site.study}/session_panel.parquet"
        files[f"clients_{site.name}"] = f"results/{site.study}/client_measures.parquet"
    return files


def one_stage_models(wildcards):
    """The growth models the one-stage fit refits: a change to them reruns it."""
    chosen = one_stage_specs(MODELS.values(), CONSORTIA[wildcards.consortium])
    return [spec.id for spec in chosen]


def consortium_simulation(wildcards):
    """A simulated consortium's settings (its known effects), else an empty mapping."""
    return config["consortia"][wildcards.consortium].get("simulate", {})


def pooled_report_inputs(wildcards):
    folder = f"results/consortia/{wildcards.consortium}"
    files = {
        "pooled": f"{folder}/pooled.csv",
        "sites": f"{folder}/sites.csv",
        "record": f"{folder}/pooling.json",
    }
    if CONSORTIA[wildcards.consortium].one_stage:
        files["one_stage"] = f"{folder}/one_stage.csv"
    return files
