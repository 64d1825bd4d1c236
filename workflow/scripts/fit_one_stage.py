import pandas as pd

from accord.core.errors import ConfigError
from accord.core.io import write_csv, write_json
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.spec import find_spec, model_specs
from accord.models.tidy import json_ready
from accord.multisite.consortium import consortia
from accord.multisite.one_stage import fit_one_stage

with run_step(snakemake.log[0]) as log:
    consortium = consortia(snakemake.config)[snakemake.params.consortium]
    if not consortium.one_stage:
        raise ConfigError(
            f"config key 'consortia.{consortium.name}.one_stage': pooling the sites' row-level "
            "data is not enabled for this consortium"
        )
    rows = {
        site.name: (
            read_validated(snakemake.input[f"panel_{site.name}"]),
            read_validated(snakemake.input[f"clients_{site.name}"]),
        )
        for site in consortium.local_sites
    }
    specs = model_specs(snakemake.config)
    frames, diagnostics = [], {}
    for model in snakemake.params.models:
        result = fit_one_stage(rows, find_spec(specs, model), consortium=consortium.name)
        frames.append(result.coefficients)
        diagnostics[model] = result.diagnostics
        log.info(
            "%s: one-stage %s converged %s", consortium.name, model, result.diagnostics["converged"]
        )
    if not frames:
        log.warning("%s: no growth model to refit one-stage", consortium.name)
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=["consortium", "model", "term", "estimate", "std_error", "ci_low", "ci_high"]
        )
    )
    write_csv(snakemake.output.coefficients, table)
    write_json(snakemake.output.diagnostics, json_ready(diagnostics))
