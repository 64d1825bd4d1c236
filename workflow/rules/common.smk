# Configuration, its validation, and the input functions every stage shares.
import re
from pathlib import Path

from snakemake.utils import validate

from accord.config import validate_config
from accord.contract import TABLES
from accord.instruments import load_registry
from accord.io import TABLE_SUFFIXES
from accord.models.spec import model_specs

# accord's own check first: its messages name the offending key.
config.update(validate_config(config))
validate(config, schema="../schemas/config.schema.yaml")
# Custom instruments are checked now, so a bad definition stops the run before any job.
load_registry(config["instruments"])

STUDIES = sorted(config["studies"])
MODELS = {spec.id: spec for spec in model_specs(config)}
SIMULATED = {
    study: entry for study, entry in config["studies"].items() if "simulate" in entry
}
SIMULATED_DIRS = sorted({entry["path"].rstrip("/") for entry in SIMULATED.values()})


wildcard_constraints:
    study="|".join(re.escape(study) for study in STUDIES),
    model="|".join(MODELS),


def study_path(study):
    return config["studies"][study]["path"].rstrip("/")


def study_tables(wildcards):
    """The input files of a study: the simulator's outputs, or whatever the folder holds.

    A missing required table is not an input error here: validation reports it by name.
    """
    folder = study_path(wildcards.study)
    if wildcards.study in SIMULATED:
        return {table: f"{folder}/{table}.csv" for table in TABLES}
    found = {}
    for table in TABLES:
        for suffix in TABLE_SUFFIXES:
            path = Path(folder) / f"{table}{suffix}"
            if path.exists():
                found[table] = str(path)
    return found


def simulation_settings(wildcards):
    matches = [e for e in SIMULATED.values() if e["path"].rstrip("/") == wildcards.simdir]
    return matches[0]["simulate"]


def model_settings(wildcards):
    """A model's config entry: a change to it reruns that model's job and no other."""
    spec = MODELS[wildcards.model]
    return {
        "kind": spec.kind,
        "outcome": spec.outcome,
        "exposure": spec.exposure,
        "covariates": list(spec.covariates),
        "time_coding": spec.time_coding,
        "therapist_effect": spec.therapist_effect,
        "primary": spec.primary,
        "options": dict(spec.options),
    }
